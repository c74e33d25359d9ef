"""Entity views over files: their rows, columns and annotation write-back.

A view's rows are the file entities directly inside its scope folders. The `id` and
`name` columns come from the entity; every other column is an annotation. Pushing a
file-based grid first merges the files' current annotations into the grid, against
the snapshot taken when the grid was made or last pushed, and then writes the
annotation columns back to each file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from curation_sync.sandbox.access import has_access, parse_syn, syn
from curation_sync.sandbox.apierror import bad_request
from curation_sync.sandbox.entities import set_annotations
from curation_sync.sandbox.records import bound_schema, load_entity
from curation_sync.sandbox.server import App, User
from curation_sync.sandbox.tables import cell_text, translate

ENTITY_COLUMNS = ("id", "name")
ANNOTATION_TYPES = {
    "INTEGER": "LONG",
    "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "DATE": "TIMESTAMP_MS",
    "ENTITYID": "STRING",
}


def view_of_query(app: App, query: dict[str, Any]) -> Any:
    """The view a `SELECT * FROM synNNN` query reads."""
    found = re.search(r"\bfrom\s+(syn\d+)", str(query.get("sql") or ""), re.IGNORECASE)
    if found is None:
        raise bad_request(f"Cannot find a table id in the query: {query.get('sql')}")
    return load_entity(app, parse_syn(found.group(1)), "entityview")


def view_columns(view: Any) -> list[dict[str, Any]]:
    """The view's ColumnModels."""
    columns: list[dict[str, Any]] = json.loads(view["props"]).get("columns", [])
    return columns


def view_schema(app: App, view: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The schema bound to the view, or else to its first scope folder."""
    schema_id, schema = bound_schema(app, int(view["id"]))
    scopes = json.loads(view["props"]).get("scopeIds") or []
    if schema is None and scopes:
        schema_id, schema = bound_schema(app, parse_syn(scopes[0]))
    return schema_id, schema


def view_files(app: App, view: Any) -> list[Any]:
    """The file entities in the view's scope, by id."""
    scopes = [
        parse_syn(scope) for scope in json.loads(view["props"]).get("scopeIds", [])
    ]
    if not scopes:
        return []
    marks = ",".join("?" for _ in scopes)
    return app.store.all(
        f"SELECT * FROM entities WHERE kind = 'file' AND parent_id IN ({marks})"
        " ORDER BY id",
        scopes,
    )


def view_rows(app: App, view: Any) -> list[dict[str, Any]]:
    """One grid row per file in scope: entity fields plus annotation values."""
    columns = view_columns(view)
    rows = []
    for entity in view_files(app, view):
        annotations = json.loads(entity["props"]).get("annotations") or {}
        row: dict[str, Any] = {"id": syn(entity["id"]), "name": entity["name"]}
        for column in columns:
            name = column["name"]
            if name in ENTITY_COLUMNS or name not in annotations:
                continue
            values = annotations[name].get("value") or []
            base_type = column["columnType"].removesuffix("_LIST")
            typed = [translate(str(value), base_type) for value in values]
            if column["columnType"].endswith("_LIST"):
                row[name] = typed
            elif typed:
                row[name] = typed[0]
        rows.append(row)
    return rows


def write_annotations(
    app: App, user: User, view: Any, rows: list[dict[str, Any]]
) -> list[str]:
    """Write each row's annotation columns to its file; returns per-row problems."""
    columns = [c for c in view_columns(view) if c["name"] not in ENTITY_COLUMNS]
    in_scope = {int(entity["id"]) for entity in view_files(app, view)}
    problems = []
    for row in rows:
        try:
            file_id = parse_syn(row.get("id"))
        except ValueError:
            file_id = -1
        if file_id not in in_scope:
            problems.append(
                f"Row for {row.get('id')}: the file is not in the view's scope."
            )
            continue
        entity = load_entity(app, file_id)
        if not has_access(app, user, entity["project_id"], "UPDATE"):
            problems.append(
                f"Row for {syn(file_id)}: you lack UPDATE access to the file."
            )
            continue
        annotations = json.loads(entity["props"]).get("annotations") or {}
        for column in columns:
            annotations.pop(column["name"], None)
            value = row.get(column["name"])
            if value is None or value == []:
                continue
            values = value if isinstance(value, list) else [value]
            base_type = column["columnType"].removesuffix("_LIST")
            annotations[column["name"]] = {
                "type": ANNOTATION_TYPES.get(base_type, "STRING"),
                "value": [cell_text(item) or "" for item in values],
            }
        set_annotations(app, file_id, annotations)
    return problems
