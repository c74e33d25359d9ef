"""The asynchronous-job protocol: `{stem}/async/start` and `{stem}/async/get/{token}`.

Design: a job runs to completion inside its start request, and its answer is stored.
The `get` call then answers 202 with an AsynchronousJobStatus for a configurable
number of polls (`job_polls_before_done`, default 0, so tests pay no client sleeps)
before it hands out the stored answer. Running the work at start keeps failures and
restarts simple and deterministic; the client cannot tell the difference, because it
only ever sees the protocol. A failed job answers `get` as Synapse does: with the
HTTP status of the worker's exception and its message as `reason`; an injected job
fault answers `jobState: FAILED` instead, the other style the client understands.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from curation_sync.sandbox.apierror import ApiError, bad_request, forbidden, not_found
from curation_sync.sandbox.server import App, Reply, Request, User
from curation_sync.sandbox.store import new_etag, now_iso

logger = logging.getLogger(__name__)

JobWork = Callable[[App, User, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    """One kind of job: its URL stem, request concreteType and work function."""

    stem: str
    request_type: str
    work: JobWork
    done_status: int = 200


JOB_TYPES: dict[str, JobType] = {}
FAILED_BY_FAULT = 0


def job_type(
    stem: str, request_type: str, *, done_status: int = 200
) -> Callable[[JobWork], JobWork]:
    """Register a function as the work of the job type with this stem."""

    def decorate(work: JobWork) -> JobWork:
        JOB_TYPES[stem] = JobType(stem, request_type, work, done_status)
        return work

    return decorate


def start_job(app: App, request: Request) -> Reply:
    """POST {stem}/async/start: run the job and hand out its token."""
    kind = JOB_TYPES[request.params["stem"]]
    body = request.json()
    user = request.caller
    token = str(app.store.next_id("job"))
    response: dict[str, Any] | None = None
    error_status: int | None = None
    reason: str | None = None
    if request.job_fault:
        error_status, reason = FAILED_BY_FAULT, "Injected job failure."
    elif body.get("concreteType") not in (None, kind.request_type):
        error_status = 400
        reason = f"Unexpected concreteType {body.get('concreteType')} for {kind.stem}."
    else:
        try:
            response = kind.work(app, user, body)
        except ApiError as error:
            error_status, reason = error.status, error.reason
        except Exception as error:
            logger.exception("Sandbox job %s failed", kind.stem)
            error_status, reason = 500, f"{type(error).__name__}: {error}"
    app.store.run(
        "INSERT INTO jobs (token, uri, user_id, request, response, error_status,"
        " error_reason, polls_left, started_on, etag)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token,
            kind.stem,
            user.id,
            json.dumps(body),
            None if response is None else json.dumps(response),
            error_status,
            reason,
            app.job_polls_before_done,
            now_iso(),
            new_etag(),
        ),
    )
    return Reply(201, {"token": token})


def get_job(app: App, request: Request) -> Reply:
    """GET {stem}/async/get/{token}: 202 while processing, then the answer."""
    kind = JOB_TYPES[request.params["stem"]]
    token = request.params["token"]
    row = app.store.one(
        "SELECT * FROM jobs WHERE token = ? AND uri = ?", (token, kind.stem)
    )
    if row is None:
        raise not_found(f"Asynchronous job not found: {token}")
    if int(row["user_id"]) != request.caller.id:
        raise forbidden("Only the user that started a job may read its status.")
    status = {
        "jobId": token,
        "jobCanceling": False,
        "etag": row["etag"],
        "startedByUserId": int(row["user_id"]),
        "startedOn": row["started_on"],
        "changedOn": row["started_on"],
    }
    if int(row["polls_left"]) > 0:
        app.store.run(
            "UPDATE jobs SET polls_left = polls_left - 1 WHERE token = ?", (token,)
        )
        return Reply(202, {**status, "jobState": "PROCESSING"})
    if row["error_status"] == FAILED_BY_FAULT:
        return Reply(
            200,
            {
                **status,
                "jobState": "FAILED",
                "errorMessage": row["error_reason"],
                "errorDetails": "Injected by the sandbox fault rules.",
            },
        )
    if row["error_status"] is not None:
        raise ApiError(int(row["error_status"]), row["error_reason"])
    return Reply(kind.done_status, json.loads(row["response"]))


def require_fields(body: dict[str, Any], *names: str) -> None:
    """Synapse's `"<field> is required."` check on a job request."""
    for name in names:
        if body.get(name) in (None, "", []):
            raise bad_request(f"{name} is required.")


def register(app: App) -> None:
    """Add the job routes for every registered job type."""
    stems = "|".join(
        sorted((kind.stem for kind in JOB_TYPES.values()), key=len, reverse=True)
    )
    stem = f"(?P<stem>{stems})"
    app.route("POST", stem + r"/async/start", start_job)
    app.route("GET", stem + r"/async/get/(?P<token>[^/]+)", get_job)
