"""Tabular data as Synapse handles it: CSV text, column types, cell translation.

Column types are inferred the way the table upload preview does (the first of
BOOLEAN, INTEGER, DOUBLE, DATE, ENTITYID, STRING, MEDIUMTEXT, LARGETEXT that accepts
every non-blank value) and then reconciled with the bound JSON schema, where the
schema wins. Cells are translated leniently: a value a column type cannot hold is kept
as text, which the validator then reports. A blank cell is NULL when the schema
requires the column and UNDEFINED (absent from the row) otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

NULL_LIKE = ""
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?)?")
ENTITY_PATTERN = re.compile(r"syn\d+(\.\d+)?", re.IGNORECASE)
LIST_TYPES = {
    "STRING": "STRING_LIST",
    "INTEGER": "INTEGER_LIST",
    "BOOLEAN": "BOOLEAN_LIST",
    "DATE": "DATE_LIST",
    "ENTITYID": "ENTITYID_LIST",
    "USERID": "USERID_LIST",
}
TEXT_TYPES = {"STRING", "MEDIUMTEXT", "LARGETEXT", "LINK", "ENTITYID"}
INTEGER_TYPES = {"INTEGER", "FILEHANDLEID", "SUBMISSIONID", "EVALUATIONID", "USERID"}

DEFAULT_CSV_DESCRIPTOR = {
    "separator": ",",
    "quoteCharacter": '"',
    "escapeCharacter": "\\",
    "lineEnd": "\n",
    "isFirstLineHeader": True,
}


def read_csv(
    data: bytes, descriptor: Mapping[str, Any] | None = None
) -> list[list[str]]:
    """Every line of a CSV file as a list of cell texts (header included)."""
    separator = str((descriptor or {}).get("separator") or ",")
    quote = str((descriptor or {}).get("quoteCharacter") or '"')
    text = data.decode("utf-8-sig")
    return [
        row
        for row in csv.reader(io.StringIO(text), delimiter=separator, quotechar=quote)
        if row
    ]


def write_csv(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> bytes:
    """CSV bytes as Synapse writes them: non-null fields quoted, nulls empty."""
    out = io.StringIO()
    out.write(",".join(_quote(name) for name in header) + "\n")
    for row in rows:
        out.write(",".join("" if cell is None else _quote(cell) for cell in row) + "\n")
    return out.getvalue().encode("utf-8")


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def infer_type(values: Iterable[str]) -> str:
    """The preview column type that accepts every non-blank value."""
    candidates = ["BOOLEAN", "INTEGER", "DOUBLE", "DATE", "ENTITYID", "STRING"]
    # Each distinct value is checked once; record sets repeat values a lot.
    distinct = set(values)
    distinct.discard(NULL_LIKE)
    longest = max(map(len, distinct), default=0)
    for value in distinct:
        candidates = [kind for kind in candidates if _accepts(kind, value)]
    if longest > 1000 and candidates[0] == "STRING":
        return "LARGETEXT" if longest > 50_000 else "MEDIUMTEXT"
    return candidates[0]


def _accepts(kind: str, value: str) -> bool:
    if kind == "BOOLEAN":
        return value.lower() in ("true", "false")
    if kind == "INTEGER":
        return re.fullmatch(r"[+-]?\d{1,18}", value) is not None
    if kind == "DOUBLE":
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "DATE":
        return DATE_PATTERN.fullmatch(value) is not None
    if kind == "ENTITYID":
        return ENTITY_PATTERN.fullmatch(value) is not None
    return True


def reconcile(column_type: str, prop: Mapping[str, Any] | None) -> str:
    """The column type once the bound JSON schema's property has its say."""
    if not prop:
        return column_type
    json_type = prop.get("type")
    if json_type == "array":
        items = prop.get("items") or {}
        item_type = reconcile("STRING", items) if items.get("type") else "STRING"
        if items.get("type") == "integer":
            item_type = "INTEGER"
        elif items.get("type") == "boolean":
            item_type = "BOOLEAN"
        return LIST_TYPES.get(item_type, "MEDIUMTEXT")
    if json_type == "string" and column_type not in TEXT_TYPES - {"ENTITYID"}:
        return "STRING"
    if json_type == "integer" and column_type == "ENTITYID":
        return "INTEGER"
    return column_type


def translate(text: str, column_type: str) -> Any:
    """A cell text as the typed value a grid cell holds (lenient: else the text)."""
    try:
        if column_type in INTEGER_TYPES:
            return int(text)
        if column_type == "DOUBLE":
            return float(text)
        if column_type == "BOOLEAN":
            return text.strip().lower() == "true"
        if column_type.endswith("_LIST") or column_type == "JSON":
            value = json.loads(text)
            if column_type.endswith("_LIST") and not isinstance(value, list):
                return text
            return value
    except ValueError:
        return text
    return text


def translate_key(text: str, column_type: str) -> Any:
    """An upsert-key cell, translated strictly; a 400 reason on failure."""
    if text.strip() == "":
        raise ValueError("The upsert key cannot have null or empty values.")
    if column_type in INTEGER_TYPES:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f'For input string: "{text}"') from None
    if column_type == "DOUBLE":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f'For input string: "{text}"') from None
    return text


def cell_text(value: Any) -> str | None:
    """A typed grid value written back as CSV cell text (None for NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def key_text(values: Sequence[Any]) -> str:
    """One text for the values of the upsert-key columns of a row."""
    # A unit separator cannot occur in key cells read from CSV text.
    return "\x1f".join(cell_text(value) or "" for value in values)


def row_from_cells(
    header: Sequence[str],
    cells: Sequence[str],
    types: Mapping[str, str],
    required: set[str],
) -> dict[str, Any]:
    """A grid row (column name to typed value) from the cells of one CSV line."""
    row: dict[str, Any] = {}
    for index, name in enumerate(header):
        text = cells[index] if index < len(cells) else ""
        if text == NULL_LIKE:
            if name in required:
                row[name] = None
            continue
        row[name] = translate(text, types.get(name, "STRING"))
    return row


def column_models(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    schema: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """ColumnModels for a CSV's columns: inferred, then reconciled with the schema."""
    properties = (schema or {}).get("properties") or {}
    models = []
    for index, name in enumerate(header):
        inferred = infer_type(row[index] for row in rows if index < len(row))
        column_type = reconcile(inferred, properties.get(name))
        model: dict[str, Any] = {"name": name, "columnType": column_type}
        if column_type in ("STRING", "STRING_LIST"):
            longest = max(
                (len(row[index]) for row in rows if index < len(row)), default=0
            )
            model["maximumSize"] = max(50, min(1000, longest))
        models.append(model)
    return models
