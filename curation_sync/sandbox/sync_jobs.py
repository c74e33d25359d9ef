"""Grid jobs that move rows out or look at them: export, synchronize and query.

Synchronize merges at cell level against the session's baseline version: a cell the
grid did not change since the baseline takes the record set's newer value, a cell the
grid changed keeps the grid's value. Keys new upstream are added, keys that were in
the baseline but are gone from the grid count as deleted by the user.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from curation_sync.sandbox import views
from curation_sync.sandbox.access import require, syn
from curation_sync.sandbox.apierror import bad_request, forbidden
from curation_sync.sandbox.grid_jobs import GRID, schema_of_grid, source_rows
from curation_sync.sandbox.grids import (
    accessible_grid,
    grid_columns,
    load_rows,
    replace_rows,
    row_key,
    touch_grid,
)
from curation_sync.sandbox.jobs import job_type, require_fields
from curation_sync.sandbox.records import (
    load_entity,
    require_upsert_key,
    validate_rows,
    write_version,
)
from curation_sync.sandbox.server import App, User
from curation_sync.sandbox.tables import cell_text, column_models

SYNC_TYPES = ("PULL", "PULL_PUSH")


def _push(
    app: App, user: User, grid: Any
) -> tuple[int, int | None, dict[str, Any] | None]:
    entity = load_entity(app, int(grid["source_id"]), "recordset")
    require(app, user, entity["project_id"], "UPDATE")
    names = [column["name"] for column in grid_columns(grid)]
    rows = [row for _, row in load_rows(app, int(grid["id"]))]
    version, validation_fh, stats = write_version(
        app, user.id, int(entity["id"]), names, rows
    )
    touch_grid(app, int(grid["id"]), baseline_version=version)
    return version, validation_fh, stats


@job_type(
    "/grid/export/recordset", GRID + "GridRecordSetExportRequest", done_status=201
)
def export_grid(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Write the grid as a new record set version (the deprecated export)."""
    require_fields(body, "sessionId")
    grid = accessible_grid(app, user, body["sessionId"])
    if grid["source_kind"] != "recordset":
        raise bad_request(
            f"The source of grid session {grid['id']} is not a RecordSet."
        )
    version, validation_fh, stats = _push(app, user, grid)
    answer = {
        "concreteType": GRID + "GridRecordSetExportResponse",
        "sessionId": str(grid["id"]),
        "recordSetId": syn(grid["source_id"]),
        "recordSetVersionNumber": version,
        "validationSummaryStatistics": stats,
    }
    if validation_fh is not None:
        answer["validationFileHandleId"] = str(validation_fh)
    return answer


@job_type("/grid/synchronize", GRID + "SynchronizeGridRequest")
def synchronize_grid(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """PULL (record set into grid) or PULL_PUSH (then grid into a new version)."""
    require_fields(body, "gridSessionId")
    sync_type = body.get("syncType") or "PULL_PUSH"
    if sync_type not in SYNC_TYPES:
        raise bad_request(f"Unknown syncType: {sync_type}")
    grid = accessible_grid(app, user, body["gridSessionId"])
    problems: list[str] = []
    if grid["source_kind"] == "entityview":
        if sync_type != "PULL_PUSH":
            raise bad_request("Grids on an entity view support only PULL_PUSH.")
        problems = _pull_push_view(app, user, grid)
    else:
        _pull(app, grid)
        if sync_type == "PULL_PUSH":
            _push(app, user, accessible_grid(app, user, grid["id"]))
    return {
        "concreteType": GRID + "SynchronizeGridResponse",
        "gridSessionId": str(grid["id"]),
        "errorMessages": problems,
    }


def _pull_push_view(app: App, user: User, grid: Any) -> list[str]:
    """Merge the files' annotations into a view grid, then write the grid back."""
    view = load_entity(app, int(grid["source_id"]))
    upstream = views.view_rows(app, view)
    baseline = {row["id"]: row for row in json.loads(grid["view_baseline"] or "[]")}
    rows = [row for _, row in load_rows(app, int(grid["id"]))]
    _merge_source(rows, upstream, baseline, ["id"])
    replace_rows(app, int(grid["id"]), rows, ["id"])

    problems = views.write_annotations(app, user, view, rows)
    written = json.dumps(views.view_rows(app, view))
    touch_grid(app, int(grid["id"]), view_baseline=written)
    return problems


def _pull(app: App, grid: Any) -> None:
    """Merge the record set's latest version into the grid (cell level)."""
    entity = load_entity(app, int(grid["source_id"]), "recordset")
    latest, baseline_version = int(entity["version"]), grid["baseline_version"]
    if baseline_version is not None and latest == int(baseline_version):
        return

    # Both versions are typed the way the grid types its columns.
    keys = require_upsert_key(json.loads(entity["props"]))
    schema = schema_of_grid(app, grid)
    columns = grid_columns(grid)
    types = {column["name"]: column["columnType"] for column in columns}
    header, source = source_rows(app, int(entity["id"]), latest, types, schema)
    baseline: dict[str, dict[str, Any]] = {}
    if baseline_version is not None:
        _, old = source_rows(
            app, int(entity["id"]), int(baseline_version), types, schema
        )
        baseline = {k: row for row in old if (k := row_key(row, keys)) is not None}

    rows = [row for _, row in load_rows(app, int(grid["id"]))]
    _merge_source(rows, source, baseline, keys)

    # Columns that are new upstream join the grid after its own.
    new_columns = [name for name in header if name not in types]
    if new_columns:
        lines = [
            [cell_text(row.get(name)) or "" for name in new_columns] for row in source
        ]
        columns.extend(column_models(new_columns, lines, schema))
    with app.store.tx():
        replace_rows(app, int(grid["id"]), rows, keys)
        touch_grid(
            app, int(grid["id"]), baseline_version=latest, columns=json.dumps(columns)
        )


def _merge_source(
    rows: list[dict[str, Any]],
    source: list[dict[str, Any]],
    baseline: dict[str, dict[str, Any]],
    keys: list[str],
) -> None:
    """Merge source rows into grid rows in place, as the server's row phase does."""
    counts = Counter(k for row in rows if (k := row_key(row, keys)) is not None)
    # Grid rows with an incomplete or repeated key cannot be matched.
    matchable = {
        k: row
        for row in rows
        if (k := row_key(row, keys)) is not None and counts[k] == 1
    }
    matched: set[str] = set()
    for upstream in source:
        found = row_key(upstream, keys)
        if found is not None and found in matchable and found not in matched:
            matched.add(found)
            _merge_row(matchable[found], baseline.get(found), upstream)
        elif found is not None and found in baseline and found not in counts:
            # In the baseline but gone from the grid: the user deleted it.
            continue
        else:
            rows.append(dict(upstream))


def _merge_row(
    row: dict[str, Any], base: dict[str, Any] | None, upstream: dict[str, Any]
) -> None:
    base = base or {}
    if base == upstream:
        return
    for name in set(upstream) | set(base):
        if name not in upstream and name not in base:
            continue
        if row.get(name, _ABSENT) == base.get(name, _ABSENT):
            if name in upstream:
                row[name] = upstream[name]
            else:
                row.pop(name, None)


_ABSENT = object()


@job_type("/grid/session/query", GRID + "GridQueryJobRequest")
def query_grid(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """One page of grid rows with their live validation results."""
    # The caller must query through a replica of their own.
    require_fields(body, "sessionId", "replicaId", "queryRequest")
    grid = accessible_grid(app, user, body["sessionId"])
    replica = app.store.one(
        "SELECT created_by FROM replicas WHERE session_id = ? AND id = ?",
        (grid["id"], body["replicaId"]),
    )
    if replica is None or int(replica["created_by"]) != user.id:
        raise forbidden("The replica does not exist or does not belong to the caller.")
    query = (body["queryRequest"] or {}).get("query") or {}
    require_fields(query, "columnSelection")

    # Every row is validated, so filters on validity see the whole grid.
    schema = schema_of_grid(app, grid)
    numbered = load_rows(app, int(grid["id"]))
    results = validate_rows(schema, [row for _, row in numbered])
    kept = [
        (number, row, result)
        for (number, row), result in zip(numbered, results, strict=True)
        if all(_passes(f, number, row, result) for f in query.get("filters") or [])
    ]
    names = [column["name"] for column in grid_columns(grid)]
    selected = _selection(query["columnSelection"], names)
    if selected and selected[0][0] == "count":
        alias = selected[0][1]
        return _query_answer([alias], [{"rowId": "0", "data": {alias: len(kept)}}])

    # One page of the kept rows, with the selected columns.
    columns = [name for _, name in selected]
    offset = int(query.get("offset") or 0)
    limit = int(query.get("limit") or 100)
    answer_rows = []
    for number, row, (is_valid, message, messages) in kept[offset : offset + limit]:
        answer: dict[str, Any] = {
            "rowId": str(number),
            "data": {n: row[n] for n in columns if n in row},
        }
        if is_valid is not None:
            checks: dict[str, Any] = {"isValid": is_valid}
            if not is_valid:
                checks["validationErrorMessage"] = message
            if not is_valid and query.get("includeValidationMessages"):
                checks["allValidationMessages"] = messages
            answer["validationResults"] = checks
        answer_rows.append(answer)
    return _query_answer(columns, answer_rows)


def _query_answer(columns: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "concreteType": GRID + "GridQueryJobResponse",
        "queryResult": {
            "selectColumns": [
                {"columnName": name, "columnIndex": index}
                for index, name in enumerate(columns)
            ],
            "rows": rows,
        },
    }


def _selection(items: list[dict[str, Any]], names: list[str]) -> list[tuple[str, str]]:
    chosen: list[tuple[str, str]] = []
    for item in items:
        kind = str(item.get("concreteType", "")).rsplit(".", 1)[-1]
        if kind in ("SelectAll", "SelectSelection"):
            chosen.extend(("column", name) for name in names)
        elif kind == "SelectByName":
            if item.get("columnName") not in names:
                raise bad_request(f"Unknown column: {item.get('columnName')}")
            chosen.append(("column", str(item["columnName"])))
        elif kind == "CountStar":
            return [("count", str(item.get("alias") or "COUNT(*)"))]
        else:
            raise bad_request(f"Unsupported select item: {item.get('concreteType')}")
    return chosen


def _passes(
    spec: dict[str, Any],
    number: int,
    row: dict[str, Any],
    result: tuple[bool | None, str | None, list[str]],
) -> bool:
    kind = str(spec.get("concreteType", "")).rsplit(".", 1)[-1]
    if kind == "RowIsValidFilter":
        return result[0] is not None and result[0] == bool(spec.get("value"))
    if kind == "RowIdFilter":
        return str(number) in {str(v) for v in spec.get("rowIdsIn") or []}
    if kind == "RowSelectionFilter":
        return not spec.get("isSelected")
    if kind == "RowValidationResultFilter":
        texts = [result[1] or "", *result[2]]
        hit = any(_like(str(spec.get("validationResultValue") or ""), t) for t in texts)
        return hit if spec.get("operator", "LIKE") == "LIKE" else not hit
    if kind == "CellValueFilter":
        return _cell_passes(spec, row)
    raise bad_request(f"Unsupported filter: {spec.get('concreteType')}")


def _like(pattern: str, text: str) -> bool:
    regex = "".join(
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _cell_passes(spec: dict[str, Any], row: dict[str, Any]) -> bool:
    name, operator = str(spec.get("columnName")), str(spec.get("operator") or "EQUALS")
    defined = name in row
    value = row.get(name)
    if operator in ("IS_NULL", "IS_NOT_NULL"):
        return (value is None) == (operator == "IS_NULL")
    if operator in ("IS_UNDEFINED", "IS_DEFINED"):
        return defined == (operator == "IS_DEFINED")
    wanted = spec.get("value")
    text = cell_text(value)
    if operator in ("IN", "NOT_IN"):
        options = {
            cell_text(v) for v in (wanted if isinstance(wanted, list) else [wanted])
        }
        return (text in options) == (operator == "IN")
    if operator in ("LIKE", "NOT_LIKE"):
        hit = text is not None and _like(str(wanted), text)
        return hit == (operator == "LIKE")
    if operator in ("EQUALS", "NOT_EQUALS"):
        return (text == cell_text(wanted)) == (operator == "EQUALS")
    return _compare(operator, value, wanted)


def _compare(operator: str, value: Any, wanted: Any) -> bool:
    if value is None:
        return False
    try:
        left, right = float(value), float(wanted)
    except (TypeError, ValueError):
        left, right = str(value), str(wanted)  # type: ignore[assignment]
    checks = {
        "GREATER_THAN": left > right,
        "LESS_THAN": left < right,
        "GREATER_THAN_OR_EQUALS": left >= right,
        "LESS_THAN_OR_EQUALS": left <= right,
    }
    if operator not in checks:
        raise bad_request(f"Unsupported operator: {operator}")
    return checks[operator]
