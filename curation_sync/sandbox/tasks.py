"""Curation tasks and their status: `/curation/task...` routes.

As in Synapse, a task and its status share one etag: updating either gives both a new
one. Listing pages with Synapse's `"<limit>a<offset>"` token, 50 per page, ordered by
task id, and the last page carries no token at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

from curation_sync.sandbox.access import has_access, parse_syn, require, syn
from curation_sync.sandbox.apierror import (
    ApiError,
    bad_request,
    conflict,
    forbidden,
    not_found,
)
from curation_sync.sandbox.server import App, Reply, Request, User
from curation_sync.sandbox.store import new_etag, now_iso

METADATA = "org.sagebionetworks.repo.model.curation.metadata."
RECORD_BASED = METADATA + "RecordBasedMetadataTaskProperties"
FILE_BASED = METADATA + "FileBasedMetadataTaskProperties"
STATES = (
    "NOT_STARTED",
    "IN_PROGRESS",
    "EXECUTING",
    "IN_REVIEW",
    "COMPLETED",
    "CANCELED",
)
AUTH_MODES = ("SESSION_OWNER", "SOURCE_BENEFACTOR")
PAGE_LIMIT = 50
TASK_FIELDS = ("dataType", "instructions", "assigneePrincipalId", "taskProperties")
TASK_CHANGED = (
    "The curation task was updated since you last fetched it, please fetch it again"
    " and reapply your changes."
)
STATUS_CHANGED = (
    "The task status was updated since you last fetched it, please fetch it again and"
    " reapply your changes."
)


def task_json(row: Any) -> dict[str, Any]:
    """The CurationTask JSON of a task row."""
    body = json.loads(row["body"])
    task = {"taskId": int(row["id"]), "projectId": syn(row["project_id"])}
    task.update(body)
    task["etag"] = row["etag"]
    return task


def status_json(row: Any) -> dict[str, Any]:
    """The TaskStatus JSON of a task row."""
    status: dict[str, Any] = {
        "taskId": int(row["id"]),
        "state": row["state"],
        "etag": row["etag"],
        "lastUpdatedBy": str(row["state_updated_by"]),
        "lastUpdatedOn": row["state_updated_on"],
    }
    if row["execution_details"]:
        status["executionDetails"] = json.loads(row["execution_details"])
    return status


def load_task(app: App, task_id: str | int) -> Any:
    """The task row, or a 404 answer."""
    text = str(task_id)
    row = (
        app.store.one("SELECT * FROM tasks WHERE id = ?", (text,))
        if text.isdigit()
        else None
    )
    if row is None:
        raise not_found(f"Task not found: {task_id}")
    return row


def validate_task(app: App, task: dict[str, Any]) -> None:
    """Synapse's `validateCurationTask` checks, with its messages."""
    for name in ("projectId", "dataType", "taskProperties"):
        if not task.get(name):
            raise bad_request(f"{name} is required.")
    properties = task["taskProperties"]
    kind = properties.get("concreteType")
    mode = properties.get("suggestedAuthorizationMode")
    if mode is not None and mode not in AUTH_MODES:
        raise bad_request(f"Unknown suggestedAuthorizationMode: {mode}")
    if kind == RECORD_BASED:
        if not properties.get("recordSetId"):
            raise bad_request("recordSetId is required.")
        if _entity_kind(app, properties["recordSetId"]) != "recordset":
            raise bad_request("The recordSetId must be a RecordSet.")
    elif kind == FILE_BASED:
        for name in ("fileViewId", "uploadFolderId"):
            if not properties.get(name):
                raise bad_request(f"{name} is required.")
        if _entity_kind(app, properties["fileViewId"]) != "entityview":
            raise bad_request("The fileViewId must be an EntityView.")
        if _entity_kind(app, properties["uploadFolderId"]) not in ("folder", "project"):
            raise bad_request("The uploadFolderId must be a Folder or Project.")
    else:
        raise bad_request(f"Unknown CurationTaskProperties concreteType: {kind}")


def _entity_kind(app: App, entity_id: object) -> str | None:
    try:
        number = parse_syn(entity_id)
    except ApiError:
        return None
    row = app.store.one("SELECT kind FROM entities WHERE id = ?", (number,))
    return None if row is None else str(row["kind"])


def create_task(
    app: App, user: User, task: dict[str, Any], state: str = "NOT_STARTED"
) -> int:
    """Validate and store a new task; returns its id (used by routes and scenarios)."""
    validate_task(app, task)
    project_id = parse_syn(task["projectId"])
    require(app, user, project_id, "CREATE")
    stamp = now_iso()
    body = {name: task[name] for name in TASK_FIELDS if task.get(name) is not None}
    body.update(createdOn=stamp, modifiedOn=stamp, createdBy=str(user.id))
    body["modifiedBy"] = str(user.id)
    if task.get("dueDate"):
        body["dueDate"] = task["dueDate"]
    with app.store.tx():
        if app.store.one(
            "SELECT id FROM tasks WHERE project_id = ? AND data_type = ?",
            (project_id, task["dataType"]),
        ):
            raise bad_request(
                "A curation task with the specified data type already exists in this"
                " project."
            )
        task_id = app.store.next_id("task")
        app.store.run(
            "INSERT INTO tasks (id, project_id, data_type, body, etag, state,"
            " execution_details, state_updated_by, state_updated_on)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                task_id,
                project_id,
                task["dataType"],
                json.dumps(body),
                new_etag(),
                state,
                user.id,
                stamp,
            ),
        )
    return task_id


def post_task(app: App, request: Request) -> Reply:
    """POST /curation/task."""
    task_id = create_task(app, request.caller, request.json())
    return Reply(201, task_json(load_task(app, task_id)))


def readable_task(app: App, request: Request) -> Any:
    """The task of the path, after checking READ on its project."""
    row = load_task(app, request.params["task"])
    require(app, request.caller, row["project_id"], "READ")
    return row


def get_task(app: App, request: Request) -> Reply:
    """GET /curation/task/{id}."""
    return Reply(200, task_json(readable_task(app, request)))


def put_task(app: App, request: Request) -> Reply:
    """PUT /curation/task/{id}: the body's taskId is the one updated, as in Synapse."""
    task = request.json()
    row = load_task(app, task.get("taskId") or request.params["task"])
    require(app, request.caller, row["project_id"], "READ")
    require(app, request.caller, row["project_id"], "UPDATE")
    validate_task(app, task)
    if parse_syn(task["projectId"]) != row["project_id"]:
        raise bad_request("The project for a MetadataTask cannot be changed.")
    if task.get("etag") != row["etag"]:
        raise conflict(TASK_CHANGED)
    old = json.loads(row["body"])
    body = {name: task[name] for name in TASK_FIELDS if task.get(name) is not None}
    body.update(createdOn=old["createdOn"], createdBy=old["createdBy"])
    body.update(modifiedOn=now_iso(), modifiedBy=str(request.caller.id))
    if task.get("dueDate"):
        body["dueDate"] = task["dueDate"]
    details = row["execution_details"]
    old_mode = old.get("taskProperties", {}).get("suggestedAuthorizationMode")
    new_mode = task["taskProperties"].get("suggestedAuthorizationMode")
    if details and old_mode != new_mode:
        # Changing the authorization mode unlinks the active grid session.
        cleared = json.loads(details)
        cleared.pop("activeSessionId", None)
        details = json.dumps(cleared)
    app.store.run(
        "UPDATE tasks SET body = ?, data_type = ?, etag = ?, execution_details = ?"
        " WHERE id = ?",
        (json.dumps(body), task["dataType"], new_etag(), details, row["id"]),
    )
    return Reply(200, task_json(load_task(app, row["id"])))


def delete_task(app: App, request: Request) -> Reply:
    """DELETE /curation/task/{id}."""
    row = load_task(app, request.params["task"])
    require(app, request.caller, row["project_id"], "READ")
    require(app, request.caller, row["project_id"], "DELETE")
    app.store.run("DELETE FROM tasks WHERE id = ?", (row["id"],))
    return Reply(200, None)


def list_tasks(app: App, request: Request) -> Reply:
    """POST /curation/task/list with Synapse's filters and paging."""
    query = request.json()
    user = request.caller
    limit, offset = parse_page_token(query.get("nextPageToken"))
    clauses, params = [], []
    if query.get("projectId"):
        project_id = parse_syn(query["projectId"])
        require(app, user, project_id, "READ")
        clauses.append("project_id = ?")
        params.append(project_id)
    if query.get("assignedToMe") and query.get("assigneeIds"):
        raise bad_request("Cannot specify both 'assignedToMe' and 'assigneeIds'.")
    assignees = (
        [str(user.id)] if query.get("assignedToMe") else query.get("assigneeIds")
    )
    rows = app.store.all(
        "SELECT * FROM tasks"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " ORDER BY id",
        params,
    )
    visible = [
        row
        for row in rows
        if _matches(row, assignees, query.get("stateFilter"), query.get("taskIds"))
        and (query.get("projectId") or has_access(app, user, row["project_id"], "READ"))
    ]
    page = visible[offset : offset + limit + 1]
    answer: dict[str, Any] = {"page": [task_json(row) for row in page[:limit]]}
    if len(page) > limit:
        answer["nextPageToken"] = f"{limit}a{offset + limit}"
    return Reply(200, answer)


def _matches(row: Any, assignees: Any, states: Any, task_ids: Any) -> bool:
    body = json.loads(row["body"])
    if assignees and str(body.get("assigneePrincipalId")) not in {
        str(a) for a in assignees
    }:
        return False
    if states and row["state"] not in states:
        return False
    return not task_ids or int(row["id"]) in {int(t) for t in task_ids}


def parse_page_token(token: object) -> tuple[int, int]:
    """The limit and offset of a `"<limit>a<offset>"` page token."""
    if token is None:
        return PAGE_LIMIT, 0
    found = re.fullmatch(r"(\d+)a(\d+)", str(token))
    if found is None:
        raise bad_request(f"Unknow token format: {token}")
    limit, offset = int(found.group(1)), int(found.group(2))
    if limit > PAGE_LIMIT:
        raise bad_request(f"Limit must not exceed: {PAGE_LIMIT}")
    return limit, offset


def get_status(app: App, request: Request) -> Reply:
    """GET /curation/task/{id}/status."""
    return Reply(200, status_json(readable_task(app, request)))


def put_status(app: App, request: Request) -> Reply:
    """PUT /curation/task/{id}/status: etag checked, executionDetails replaced."""
    status = request.json()
    row = load_task(app, request.params["task"])
    user = request.caller
    assignee = json.loads(row["body"]).get("assigneePrincipalId")
    if not (
        has_access(app, user, row["project_id"], "UPDATE")
        or str(assignee) == str(user.id)
    ):
        raise forbidden(
            "You must have UPDATE access on the project or be an assignee of the task."
        )
    if not status.get("state"):
        raise bad_request("state is required.")
    if status["state"] not in STATES:
        raise bad_request(f"Unknown TaskState: {status['state']}")
    if not status.get("etag"):
        raise bad_request("etag is required.")
    details = status.get("executionDetails")
    with app.store.tx():
        changed = app.store.run(
            "UPDATE tasks SET state = ?, execution_details = ?, state_updated_by = ?,"
            " state_updated_on = ?, etag = ? WHERE id = ? AND etag = ?",
            (
                status["state"],
                json.dumps(details) if details else None,
                user.id,
                now_iso(),
                new_etag(),
                row["id"],
                status["etag"],
            ),
        )
        if not changed:
            raise conflict(STATUS_CHANGED)
    return Reply(200, status_json(load_task(app, row["id"])))


def register(app: App) -> None:
    """Add the routes of this module."""
    app.route("POST", r"/curation/task", post_task)
    app.route("POST", r"/curation/task/list", list_tasks)
    app.route("GET", r"/curation/task/(?P<task>[^/]+)", get_task)
    app.route("PUT", r"/curation/task/(?P<task>[^/]+)", put_task)
    app.route("DELETE", r"/curation/task/(?P<task>[^/]+)", delete_task)
    app.route("GET", r"/curation/task/(?P<task>[^/]+)/status", get_status)
    app.route("PUT", r"/curation/task/(?P<task>[^/]+)/status", put_status)
