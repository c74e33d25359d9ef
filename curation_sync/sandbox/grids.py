"""Grid sessions: their rows, access rules and the `/grid/session` REST routes.

A grid row is stored as one JSON object (column name to typed value; an absent key is
an UNDEFINED cell, a JSON null a NULL cell) with the text of its upsert-key values, so
imports can match rows without decoding every row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curation_sync.sandbox.access import parse_syn, require, syn
from curation_sync.sandbox.apierror import forbidden, not_found
from curation_sync.sandbox.records import load_entity
from curation_sync.sandbox.server import App, Reply, Request, User
from curation_sync.sandbox.store import new_etag, now_iso
from curation_sync.sandbox.tables import key_text
from curation_sync.sandbox.tasks import parse_page_token


def load_grid(app: App, session_id: object) -> Any:
    """The grid session row, or Synapse's 404."""
    text = str(session_id)
    row = (
        app.store.one("SELECT * FROM grids WHERE id = ?", (text,))
        if text.isdigit()
        else None
    )
    if row is None:
        raise not_found(f"Grid session not found: {session_id}")
    return row


def check_grid_access(app: App, user: User, grid: Any) -> None:
    """Synapse's session access rule: owner or admin, plus rights on the source."""
    if not (user.is_admin or int(grid["owner"]) == user.id):
        raise forbidden()
    source = load_entity(app, int(grid["source_id"]))
    wanted = (
        ("READ",)
        if grid["source_kind"] == "entityview"
        else ("READ", "DOWNLOAD", "UPDATE")
    )
    for permission in wanted:
        require(app, user, source["project_id"], permission)


def accessible_grid(app: App, user: User, session_id: object) -> Any:
    """The grid session, after the access check."""
    grid = load_grid(app, session_id)
    check_grid_access(app, user, grid)
    return grid


def grid_json(grid: Any) -> dict[str, Any]:
    """The GridSession JSON of a grid row."""
    session: dict[str, Any] = {
        "sessionId": str(grid["id"]),
        "startedBy": str(grid["started_by"]),
        "startedOn": grid["started_on"],
        "etag": grid["etag"],
        "modifiedOn": grid["modified_on"],
        "lastReplicaIdClient": int(grid["last_replica"]),
        "lastReplicaIdService": -1,
        "sourceEntityId": syn(grid["source_id"]),
        "ownerPrincipalId": str(grid["owner"]),
    }
    if grid["schema_id"]:
        session["gridJsonSchema$Id"] = grid["schema_id"]
    if grid["baseline_version"] is not None:
        session["sourceEntityVersionNumber"] = int(grid["baseline_version"])
    if grid["auth_mode"]:
        session["authorizationMode"] = grid["auth_mode"]
    return session


def grid_columns(grid: Any) -> list[dict[str, Any]]:
    """The grid's ColumnModels, in grid order."""
    columns: list[dict[str, Any]] = json.loads(grid["columns"])
    return columns


def load_rows(app: App, session_id: int) -> list[tuple[int, dict[str, Any]]]:
    """Every grid row as (row number, data), in grid order."""
    return [
        (int(row["row_no"]), json.loads(row["data"]))
        for row in app.store.all(
            "SELECT row_no, data FROM grid_rows WHERE session_id = ? ORDER BY row_no",
            (session_id,),
        )
    ]


def replace_rows(
    app: App, session_id: int, rows: Iterable[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Replace every row of a grid, in the given order, keyed by `keys`."""
    with app.store.tx():
        app.store.run("DELETE FROM grid_rows WHERE session_id = ?", (session_id,))
        append_rows(app, session_id, rows, keys, first_row=1)
        touch_grid(app, session_id, row_keys=json.dumps(list(keys)))


def append_rows(
    app: App,
    session_id: int,
    rows: Iterable[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    first_row: int | None = None,
) -> None:
    """Add rows after the grid's last row."""
    with app.store.tx():
        if first_row is None:
            last = app.store.one(
                "SELECT MAX(row_no) AS n FROM grid_rows WHERE session_id = ?",
                (session_id,),
            )
            first_row = int(last["n"] or 0) + 1 if last is not None else 1
        app.store.run_many(
            "INSERT INTO grid_rows (session_id, row_no, row_key, data)"
            " VALUES (?, ?, ?, ?)",
            (
                (session_id, number, row_key(row, keys), json.dumps(row))
                for number, row in enumerate(rows, start=first_row)
            ),
        )


def update_rows(
    app: App,
    session_id: int,
    rows: Mapping[int, Mapping[str, Any]],
    keys: Sequence[str],
) -> None:
    """Write changed rows back under their row numbers."""
    app.store.run_many(
        "UPDATE grid_rows SET data = ?, row_key = ?"
        " WHERE session_id = ? AND row_no = ?",
        (
            (json.dumps(row), row_key(row, keys), session_id, number)
            for number, row in rows.items()
        ),
    )


def key_index(app: App, grid: Any, keys: Sequence[str]) -> dict[str, list[int]]:
    """Row numbers by upsert-key text, re-keying the grid if its key changed."""
    if json.loads(grid["row_keys"]) != list(keys):
        rows = [row for _, row in load_rows(app, int(grid["id"]))]
        replace_rows(app, int(grid["id"]), rows, keys)
    index: dict[str, list[int]] = {}
    for found in app.store.all(
        "SELECT row_no, row_key FROM grid_rows WHERE session_id = ?"
        " AND row_key IS NOT NULL ORDER BY row_no",
        (grid["id"],),
    ):
        index.setdefault(found["row_key"], []).append(int(found["row_no"]))
    return index


def rows_by_number(
    app: App, session_id: int, numbers: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """The data of some rows, by row number."""
    wanted = sorted(set(numbers))
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        for row in app.store.all(
            f"SELECT row_no, data FROM grid_rows WHERE session_id = ?"
            f" AND row_no IN ({marks})",
            [session_id, *chunk],
        ):
            found[int(row["row_no"])] = json.loads(row["data"])
    return found


def row_key(row: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """The upsert-key text of a row; None when a key cell is NULL or UNDEFINED."""
    if not keys or any(row.get(key) is None for key in keys):
        return None
    return key_text([row[key] for key in keys])


def touch_grid(app: App, session_id: int, **changes: Any) -> None:
    """Give a grid a new etag and modification time, plus column changes."""
    sets = ["etag = ?", "modified_on = ?"]
    params: list[Any] = [new_etag(), now_iso()]
    for column, value in changes.items():
        sets.append(f"{column} = ?")
        params.append(value)
    app.store.run(
        f"UPDATE grids SET {', '.join(sets)} WHERE id = ?", [*params, session_id]
    )


def edit_rows(
    app: App, session_id: int, match: Mapping[str, Any], changes: Mapping[str, Any]
) -> int:
    """Change cells of the rows whose values equal `match`, as the Grid web UI would.

    The client cannot edit cells of a file-based grid (the UI uses a websocket), so
    this is the seam tests use instead. A None in `changes` makes a cell UNDEFINED.
    Returns the number of rows changed.
    """
    grid = load_grid(app, session_id)
    keys = ["id"] if grid["source_kind"] == "entityview" else []
    rows = [row for _, row in load_rows(app, int(grid["id"]))]
    changed = 0
    for row in rows:
        if all(row.get(name) == value for name, value in match.items()):
            changed += 1
            for name, value in changes.items():
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
    replace_rows(app, int(grid["id"]), rows, keys or _upsert_key(app, grid))
    return changed


def _upsert_key(app: App, grid: Any) -> list[str]:
    props = json.loads(load_entity(app, int(grid["source_id"]))["props"])
    return [str(key) for key in props.get("upsertKey") or []]


def get_grid(app: App, request: Request) -> Reply:
    """GET /grid/session/{id}."""
    return Reply(
        200, grid_json(accessible_grid(app, request.caller, request.params["grid"]))
    )


def delete_grid(app: App, request: Request) -> Reply:
    """DELETE /grid/session/{id}: only the user who started it may delete it."""
    grid = load_grid(app, request.params["grid"])
    if int(grid["started_by"]) != request.caller.id and not request.caller.is_admin:
        raise forbidden("Only the user that created a grid session may delete it.")
    with app.store.tx():
        for table, column in (
            ("grid_rows", "session_id"),
            ("replicas", "session_id"),
            ("grids", "id"),
        ):
            app.store.run(f"DELETE FROM {table} WHERE {column} = ?", (grid["id"],))
    return Reply(200, None)


def list_grids(app: App, request: Request) -> Reply:
    """POST /grid/session/list: the caller's sessions, optionally for one source."""
    query = request.json()
    limit, offset = parse_page_token(query.get("nextPageToken"))
    user = request.caller
    sql = "SELECT * FROM grids WHERE (started_by = ? OR owner = ?)"
    params: list[Any] = [user.id, user.id]
    if query.get("sourceId"):
        sql += " AND source_id = ?"
        params.append(parse_syn(query["sourceId"]))
    rows = app.store.all(
        sql + " ORDER BY id LIMIT ? OFFSET ?", [*params, limit + 1, offset]
    )
    answer: dict[str, Any] = {"page": [grid_json(row) for row in rows[:limit]]}
    if len(rows) > limit:
        answer["nextPageToken"] = f"{limit}a{offset + limit}"
    return Reply(200, answer)


def create_replica(app: App, request: Request) -> Reply:
    """POST /grid/session/{id}/replica."""
    grid = accessible_grid(app, request.caller, request.params["grid"])
    with app.store.tx():
        replica_id = int(grid["last_replica"]) + 1
        stamp = now_iso()
        app.store.run(
            "INSERT INTO replicas (id, session_id, created_by, created_on)"
            " VALUES (?, ?, ?, ?)",
            (replica_id, grid["id"], request.caller.id, stamp),
        )
        touch_grid(app, int(grid["id"]), last_replica=replica_id)
    replica = {
        "gridSessionId": str(grid["id"]),
        "replicaId": replica_id,
        "createdBy": str(request.caller.id),
        "isAgentReplica": False,
        "createdOn": stamp,
    }
    return Reply(201, {"replica": replica})


def register(app: App) -> None:
    """Add the routes of this module."""
    app.route("POST", r"/grid/session/list", list_grids)
    app.route("GET", r"/grid/session/(?P<grid>\d+)", get_grid)
    app.route("DELETE", r"/grid/session/(?P<grid>\d+)", delete_grid)
    app.route("POST", r"/grid/session/(?P<grid>\d+)/replica", create_replica)
