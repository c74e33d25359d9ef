"""The sandbox's own control paths under `/sandbox/...`, for administrators only.

They let a test or a script steer a sandbox running in another process: add and
clear fault rules, read the request log, change the job polling and the throttle.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from curation_sync.sandbox.apierror import bad_request, forbidden
from curation_sync.sandbox.server import App, Reply, Request


def _admin(request: Request) -> None:
    if not request.caller.is_admin:
        raise forbidden("Only a sandbox administrator may use the /sandbox paths.")


def list_faults(app: App, request: Request) -> Reply:
    """GET /sandbox/faults."""
    _admin(request)
    return Reply(200, {"faults": [rule.as_dict() for rule in app.faults.rules()]})


def add_fault(app: App, request: Request) -> Reply:
    """POST /sandbox/faults with a rule object (see `Faults.add`)."""
    _admin(request)
    spec = request.json()
    try:
        rule = app.faults.add_from_dict(spec)
    except (TypeError, ValueError) as error:
        raise bad_request(str(error)) from None
    return Reply(201, rule.as_dict())


def clear_faults(app: App, request: Request) -> Reply:
    """DELETE /sandbox/faults."""
    _admin(request)
    app.faults.clear()
    return Reply(200, {"faults": []})


def get_requests(app: App, request: Request) -> Reply:
    """GET /sandbox/requests: the request log (without bodies)."""
    _admin(request)
    entries: list[dict[str, Any]] = []
    for entry in app.request_log.entries():
        described = asdict(entry)
        described.pop("body")
        entries.append(described)
    return Reply(200, {"requests": entries})


def clear_requests(app: App, request: Request) -> Reply:
    """DELETE /sandbox/requests."""
    _admin(request)
    app.request_log.clear()
    return Reply(200, {"requests": []})


def put_settings(app: App, request: Request) -> Reply:
    """PUT /sandbox/settings: `jobPollsBeforeDone` and `throttle` (booleans/ints)."""
    _admin(request)
    body = request.json()
    if "jobPollsBeforeDone" in body:
        polls = body["jobPollsBeforeDone"]
        if not isinstance(polls, int) or polls < 0:
            raise bad_request("jobPollsBeforeDone must be a non-negative integer.")
        app.job_polls_before_done = polls
    if "throttle" in body:
        app.throttle.enabled = bool(body["throttle"])
    return Reply(200, settings_json(app))


def get_settings(app: App, request: Request) -> Reply:
    """GET /sandbox/settings."""
    _admin(request)
    return Reply(200, settings_json(app))


def settings_json(app: App) -> dict[str, Any]:
    """The run-time settings as JSON."""
    return {
        "jobPollsBeforeDone": app.job_polls_before_done,
        "throttle": app.throttle.enabled,
    }


def register(app: App) -> None:
    """Add the routes of this module."""
    app.route("GET", r"/sandbox/faults", list_faults)
    app.route("POST", r"/sandbox/faults", add_fault)
    app.route("DELETE", r"/sandbox/faults", clear_faults)
    app.route("GET", r"/sandbox/requests", get_requests)
    app.route("DELETE", r"/sandbox/requests", clear_requests)
    app.route("GET", r"/sandbox/settings", get_settings)
    app.route("PUT", r"/sandbox/settings", put_settings)
