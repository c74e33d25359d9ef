"""Grid jobs that move rows in: create a grid, download it, preview and import a CSV."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from curation_sync.sandbox import views
from curation_sync.sandbox.access import parse_syn, require
from curation_sync.sandbox.apierror import bad_request, forbidden
from curation_sync.sandbox.files import load_file_handle
from curation_sync.sandbox.grids import (
    accessible_grid,
    append_rows,
    grid_columns,
    grid_json,
    key_index,
    load_rows,
    replace_rows,
    rows_by_number,
    touch_grid,
    update_rows,
)
from curation_sync.sandbox.jobs import job_type, require_fields
from curation_sync.sandbox.records import (
    bound_schema,
    load_entity,
    read_version_table,
    require_upsert_key,
)
from curation_sync.sandbox.server import App, User
from curation_sync.sandbox.store import new_etag, now_iso
from curation_sync.sandbox.tables import (
    cell_text,
    column_models,
    key_text,
    read_csv,
    reconcile,
    row_from_cells,
    translate,
    translate_key,
    write_csv,
)

GRID = "org.sagebionetworks.repo.model.grid."
TABLE = "org.sagebionetworks.repo.model.table."


def schema_of_grid(app: App, grid: Any) -> dict[str, Any] | None:
    """The JSON schema body a grid validates against, if it has one."""
    if not grid["schema_id"]:
        return None
    row = app.store.one(
        "SELECT body FROM schemas WHERE schema_id = ?", (grid["schema_id"],)
    )
    return None if row is None else dict(json.loads(row["body"]))


def required_columns(schema: dict[str, Any] | None) -> set[str]:
    """The columns the schema requires."""
    return set((schema or {}).get("required") or [])


def source_rows(
    app: App,
    entity_id: int,
    version: int | None,
    types: dict[str, str],
    schema: dict[str, Any] | None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and typed rows of a record set version."""
    header, lines = read_version_table(app, entity_id, version)
    required = required_columns(schema)
    return header, [row_from_cells(header, cells, types, required) for cells in lines]


@dataclass
class _Source:
    entity: Any
    schema_id: str | None
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    keys: list[str]
    baseline: int | None


def _record_set_source(app: App, user: User, record_set_id: object) -> _Source:
    entity = load_entity(app, parse_syn(record_set_id), "recordset")
    require(app, user, entity["project_id"], "READ")
    require(app, user, entity["project_id"], "DOWNLOAD")
    schema_id, schema = bound_schema(app, int(entity["id"]))
    header, lines = read_version_table(app, int(entity["id"]))
    columns = column_models(header, lines, schema)
    types = {column["name"]: column["columnType"] for column in columns}
    required = required_columns(schema)
    rows = [row_from_cells(header, cells, types, required) for cells in lines]
    keys = require_upsert_key(json.loads(entity["props"]))
    return _Source(entity, schema_id, columns, rows, keys, int(entity["version"]))


def _view_source(app: App, user: User, query: dict[str, Any]) -> _Source:
    entity = views.view_of_query(app, query)
    require(app, user, entity["project_id"], "READ")
    schema_id, _ = views.view_schema(app, entity)
    columns = views.view_columns(entity)
    return _Source(
        entity, schema_id, columns, views.view_rows(app, entity), ["id"], None
    )


@job_type("/grid/session", GRID + "CreateGridRequest")
def create_grid(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Start a grid session on a record set or on a view query."""
    if bool(body.get("recordSetId")) == bool(body.get("initialQuery")):
        raise bad_request("Exactly one of recordSetId or initialQuery is required.")
    owner = body.get("ownerPrincipalId") or user.id
    if not str(owner).isdigit():
        raise bad_request(f"Invalid ownerPrincipalId: '{owner}'")
    if int(owner) != user.id and not user.is_admin:
        raise forbidden("Caller must be a member of the owner's team.")
    if body.get("recordSetId"):
        source = _record_set_source(app, user, body["recordSetId"])
    else:
        source = _view_source(app, user, body["initialQuery"])
    with app.store.tx():
        session_id = app.store.next_id("grid")
        stamp = now_iso()
        app.store.run(
            "INSERT INTO grids (id, source_id, source_kind, baseline_version,"
            " started_by, owner, auth_mode, schema_id, columns, started_on,"
            " modified_on, etag, last_replica, view_baseline)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                session_id,
                source.entity["id"],
                source.entity["kind"],
                source.baseline,
                user.id,
                int(owner),
                body.get("authorizationMode"),
                source.schema_id,
                json.dumps(source.columns),
                stamp,
                stamp,
                new_etag(),
                None if source.baseline is not None else json.dumps(source.rows),
            ),
        )
        replace_rows(app, session_id, source.rows, source.keys)
    grid = accessible_grid(app, user, session_id)
    return {"concreteType": GRID + "CreateGridResponse", "gridSession": grid_json(grid)}


@job_type("/grid/download/csv", GRID + "DownloadFromGridRequest", done_status=201)
def download_grid(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Write the grid's rows to a CSV file handle."""
    require_fields(body, "sessionId")
    grid = accessible_grid(app, user, body["sessionId"])
    names = [column["name"] for column in grid_columns(grid)]
    header = list(names)
    with_ids = bool(body.get("includeRowIdAndRowVersion"))
    if with_ids:
        header = ["ROW_ID", "ROW_VERSION", *header]
    if body.get("includeEtag"):
        header.append("ROW_ETAG")
    lines = []
    for number, row in load_rows(app, int(grid["id"])):
        cells = [cell_text(row.get(name)) for name in names]
        if with_ids:
            cells = [str(number), "1", *cells]
        if body.get("includeEtag"):
            cells.append(grid["etag"])
        lines.append(cells)
    data = write_csv(header, lines)
    if body.get("writeHeader") is False:
        data = data.split(b"\n", 1)[1]
    name = body.get("fileName") or f"grid_{grid['id']}.csv"
    handle_id = app.store.add_file(data, name, "text/csv", user.id)
    return {
        "concreteType": GRID + "DownloadFromGridResult",
        "sessionId": str(grid["id"]),
        "resultsFileHandleId": str(handle_id),
    }


def read_uploaded_csv(
    app: App, user: User, handle_id: object, descriptor: dict[str, Any] | None
) -> list[list[str]]:
    """The lines of a CSV file handle the caller uploaded."""
    handle = load_file_handle(app, handle_id)
    if int(handle["created_by"]) != user.id and not user.is_admin:
        raise forbidden(
            "Only the creator of a FileHandle can access it directly by its ID."
        )
    try:
        return read_csv(app.store.read_file(int(handle["id"])), descriptor)
    except (UnicodeDecodeError, ValueError) as error:
        raise bad_request(f"The file is not a readable CSV: {error}") from None


@job_type("/table/upload/csv/preview", TABLE + "UploadToTablePreviewRequest")
def preview_csv(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Suggest columns for a CSV, as the table upload preview does."""
    require_fields(body, "uploadFileHandleId")
    lines = read_uploaded_csv(
        app, user, body["uploadFileHandleId"], body.get("csvTableDescriptor")
    )
    skip = int(body.get("linesToSkip") or 0)
    lines = lines[skip:]
    if not lines or not any(lines[0]):
        raise bad_request(
            "Cannot determine the schema from the CSV file, at least one column header"
            " must be present."
        )
    header, rows = lines[0], lines[1:]
    return {
        "concreteType": TABLE + "UploadToTablePreviewResult",
        "suggestedColumns": column_models(header, rows, None),
        "sampleRows": [{"values": list(row)} for row in rows[:5]],
        "rowsScanned": len(rows),
    }


def check_import_header(
    header: list[str], schema_columns: list[dict[str, Any]]
) -> None:
    """The server's exact header-against-schema checks."""
    if len(header) != len(schema_columns):
        raise bad_request("The CSV header does not match the schema size.")
    for index, (name, column) in enumerate(zip(header, schema_columns, strict=True)):
        if name != column.get("name"):
            raise bad_request(
                f'The CSV header column "{name}" does not match the schema column'
                f' "{column.get("name")}" at index: {index}'
            )


@job_type("/grid/import/csv", GRID + "GridCsvImportRequest", done_status=201)
def import_csv(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Upsert a CSV into a record-set grid on the record set's upsert key."""
    require_fields(body, "sessionId", "fileHandleId", "csvDescriptor", "schema")
    if body["csvDescriptor"].get("isFirstLineHeader") is not True:
        raise bad_request("The request.csvDescriptor.isFirstLineHeader must be true.")
    grid = accessible_grid(app, user, body["sessionId"])
    if grid["source_kind"] != "recordset":
        raise bad_request(
            f"The source of grid session {grid['id']} is not a RecordSet."
        )
    keys = require_upsert_key(
        json.loads(load_entity(app, int(grid["source_id"]))["props"])
    )
    lines = read_uploaded_csv(app, user, body["fileHandleId"], body["csvDescriptor"])
    if not lines:
        raise bad_request("The CSV file cannot be empty.")
    header, data = lines[0], lines[1:]
    check_import_header(header, body["schema"])
    schema = schema_of_grid(app, grid)
    properties = (schema or {}).get("properties") or {}
    columns = grid_columns(grid)
    grid_names = [column["name"] for column in columns]
    for key in keys:
        if key not in header:
            raise bad_request(
                f'The upsert key column "{key}" does not exist in the CSV schema.'
            )
        if key not in grid_names:
            raise bad_request(
                f'The upsert key column "{key}" does not exist in the grid schema.'
            )
    types = {
        column["name"]: reconcile(column["columnType"], properties.get(column["name"]))
        for column in body["schema"]
    }
    changes = _translate_import(
        header, data, keys, types, required_columns(schema), set(grid_names)
    )
    return _apply_import(app, grid, keys, changes)


def _translate_import(
    header: list[str],
    data: list[list[str]],
    keys: list[str],
    types: dict[str, str],
    required: set[str],
    grid_names: set[str],
) -> list[tuple[list[Any], dict[str, Any | None]]]:
    key_index = [header.index(key) for key in keys]
    changes = []
    for cells in data:
        try:
            key_values = [
                translate_key(_cell(cells, i), types[keys[n]])
                for n, i in enumerate(key_index)
            ]
        except ValueError as error:
            raise bad_request(str(error)) from None
        # None marks a blank optional cell: it becomes UNDEFINED in the grid.
        values: dict[str, Any | None] = {}
        for index, name in enumerate(header):
            if name not in grid_names:
                continue
            text = _cell(cells, index)
            if text == "":
                values[name] = _NULL if name in required else None
            else:
                values[name] = translate(text, types[name])
        changes.append((key_values, values))
    # The server joins CSV to grid ordered by the key columns, descending.
    changes.sort(
        key=lambda change: [_sortable(value) for value in change[0]], reverse=True
    )
    return changes


_NULL = object()


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def _apply_import(
    app: App,
    grid: Any,
    keys: list[str],
    changes: list[tuple[list[Any], dict[str, Any | None]]],
) -> dict[str, Any]:
    session_id = int(grid["id"])
    by_key = key_index(app, grid, keys)
    matched = {
        key_text(key_values): by_key.get(key_text(key_values), [])
        for key_values, _ in changes
    }
    rows = rows_by_number(app, session_id, (n for ns in matched.values() for n in ns))
    added: list[dict[str, Any]] = []
    created = updated = 0
    for key_values, values in changes:
        numbers = matched[key_text(key_values)]
        targets = [rows[number] for number in numbers] or [{}]
        for target in targets:
            for name, value in values.items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = None if value is _NULL else value
        if numbers:
            updated += len(numbers)
        else:
            created += 1
            added.append(targets[0])
    with app.store.tx():
        update_rows(app, session_id, rows, keys)
        append_rows(app, session_id, added, keys)
        touch_grid(app, session_id)
    return {
        "concreteType": GRID + "GridCsvImportResponse",
        "sessionId": str(grid["id"]),
        "totalCount": created + updated,
        "createdCount": created,
        "updatedCount": updated,
    }
