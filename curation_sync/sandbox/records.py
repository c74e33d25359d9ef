"""Record sets: their versions, data CSVs, bound schemas and validation reports.

A record set version points at a data CSV file handle and, after a push from a grid,
at a validation CSV and a summary. Validation uses `curation_sync.validation`, the
same everit-style messages the daemon uses for its local checks, so both sides agree
word for word.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from curation_sync import validation
from curation_sync.sandbox.access import syn
from curation_sync.sandbox.apierror import bad_request, not_found
from curation_sync.sandbox.server import App
from curation_sync.sandbox.store import new_etag, now_iso
from curation_sync.sandbox.tables import cell_text, read_csv, write_csv

VALIDATION_HEADER = (
    "row_index",
    "is_valid",
    "validation_error_message",
    "all_validation_messages",
)


def load_entity(app: App, entity_id: int, kind: str | None = None) -> Any:
    """The entity row, or a 404 answer (also when it is not of `kind`)."""
    row = app.store.one("SELECT * FROM entities WHERE id = ?", (entity_id,))
    if row is None or (kind is not None and row["kind"] != kind):
        raise not_found(f"Entity {syn(entity_id)} does not exist.")
    return row


def load_version(app: App, entity_id: int, version: int | None = None) -> Any:
    """A record set version row (the latest when `version` is None), or 404."""
    entity = load_entity(app, entity_id)
    number = entity["version"] if version is None else version
    row = app.store.one(
        "SELECT * FROM entity_versions WHERE entity_id = ? AND version = ?",
        (entity_id, number),
    )
    if row is None:
        raise not_found(f"Entity {syn(entity_id)} version {number} does not exist.")
    return row


def bound_schema(app: App, entity_id: int) -> tuple[str | None, dict[str, Any] | None]:
    """The `$id` and body of the JSON schema bound to an entity, if any."""
    row = app.store.one(
        "SELECT s.schema_id, s.body FROM bindings b JOIN schemas s"
        " ON s.schema_id = b.schema_id WHERE b.entity_id = ?",
        (entity_id,),
    )
    if row is None:
        return None, None
    return str(row["schema_id"]), json.loads(row["body"])


def read_version_table(
    app: App, entity_id: int, version: int | None = None
) -> tuple[list[str], list[list[str]]]:
    """The header and the data lines of a record set version's CSV."""
    version_row = load_version(app, entity_id, version)
    if version_row["data_fh"] is None:
        return [], []
    props = json.loads(load_entity(app, entity_id)["props"])
    lines = read_csv(
        app.store.read_file(version_row["data_fh"]), props.get("csvDescriptor")
    )
    if not lines:
        return [], []
    return lines[0], lines[1:]


def validate_rows(
    schema: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[bool | None, str | None, list[str]]]:
    """Per row: valid or not (None without a schema), the one-line and all messages."""
    if schema is None:
        return [(None, None, []) for _ in rows]
    return [
        (not messages, validation.summarize_messages(messages), list(messages))
        for messages in validation.validate_records(schema, rows)
    ]


def validation_csv(
    results: Sequence[tuple[bool | None, str | None, list[str]]],
) -> bytes:
    """The validation CSV in Synapse's layout: nulls empty, everything else quoted."""
    lines: list[list[str | None]] = []
    for index, (is_valid, message, messages) in enumerate(results):
        if is_valid is None:
            lines.append([str(index), None, None, None])
        elif is_valid:
            lines.append([str(index), "true", None, None])
        else:
            compact = json.dumps(messages, separators=(",", ":"), ensure_ascii=False)
            lines.append([str(index), "false", message, compact])
    return write_csv(VALIDATION_HEADER, lines)


def summary(
    entity_id: int, results: Sequence[tuple[bool | None, str | None, list[str]]]
) -> dict[str, Any]:
    """The ValidationSummaryStatistics of a set of row results."""
    valid = sum(1 for result in results if result[0] is True)
    invalid = sum(1 for result in results if result[0] is False)
    return {
        "containerId": syn(entity_id),
        "totalNumberOfChildren": len(results),
        "numberOfValidChildren": valid,
        "numberOfInvalidChildren": invalid,
        "numberOfUnknownChildren": len(results) - valid - invalid,
        "generatedOn": now_iso(),
    }


def write_version(
    app: App,
    user_id: int,
    entity_id: int,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    validate: bool = True,
) -> tuple[int, int | None, dict[str, Any] | None]:
    """Write grid rows as a new record set version, validated against its schema.

    Returns the new version number, the validation file handle id and the summary.
    """
    entity = load_entity(app, entity_id, "recordset")
    props = json.loads(entity["props"])
    data = write_csv(
        columns, ([cell_text(row.get(name)) for name in columns] for row in rows)
    )
    name = props.get("fileNameOverride") or f"{entity['name']}.csv"
    with app.store.tx():
        data_fh = app.store.add_file(data, name, "text/csv", user_id)
        validation_fh: int | None = None
        stats: dict[str, Any] | None = None
        if validate:
            _, schema = bound_schema(app, entity_id)
            results = validate_rows(schema, rows)
            validation_fh = app.store.add_file(
                validation_csv(results),
                "grid_validation_details.csv",
                "text/csv",
                user_id,
            )
            stats = summary(entity_id, results)
        version = add_version(app, user_id, entity_id, data_fh, validation_fh, stats)
    return version, validation_fh, stats


def add_version(
    app: App,
    user_id: int,
    entity_id: int,
    data_fh: int | None,
    validation_fh: int | None = None,
    stats: Mapping[str, Any] | None = None,
    comment: str | None = None,
) -> int:
    """Insert the next version of an entity and make it the current one."""
    with app.store.tx():
        entity = load_entity(app, entity_id)
        latest = app.store.one(
            "SELECT MAX(version) AS v FROM entity_versions WHERE entity_id = ?",
            (entity_id,),
        )
        version = int(latest["v"] or 0) + 1 if latest is not None else 1
        stamp = now_iso()
        app.store.run(
            "INSERT INTO entity_versions (entity_id, version, data_fh, validation_fh,"
            " summary, comment, created_on, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entity_id,
                version,
                data_fh,
                validation_fh,
                json.dumps(stats) if stats else None,
                comment,
                stamp,
                user_id,
            ),
        )
        app.store.run(
            "UPDATE entities SET version = ?, etag = ?, modified_on = ?,"
            " modified_by = ?"
            " WHERE id = ?",
            (version, new_etag(), stamp, user_id, entity["id"]),
        )
    return version


def require_upsert_key(props: Mapping[str, Any]) -> list[str]:
    """The record set's upsert key, or the server's 400 when it has none."""
    keys = props.get("upsertKey") or []
    if not keys:
        raise bad_request("The upsertKey is required and must not be empty.")
    return [str(key) for key in keys]
