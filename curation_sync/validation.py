"""Row validation that writes the messages Synapse's everit 1.12.2 validator writes.

Shared by the sandbox (which plays Synapse) and the daemon (local checks before a
push), so it is pure: stdlib only, with ``everit`` and ``javatext`` as its own leaves.

Design notes (SEMANTICS.md is the reference; the contributor guide wins on conflict):

* Empty cells. The guide's sample report says an empty required cell reads
  ``#/genotype: expected type: String, found: Null``, which is what everit says for a
  key that is present with a JSON null. SEMANTICS.md §2 says a blank non-key cell is
  NULL when the bound schema requires the column and UNDEFINED otherwise, and §3 says
  undefined cells are omitted. So ``record_from_cells`` keeps an empty *required* cell
  as a present ``None`` and drops an empty optional cell. The rejected alternative,
  SEMANTICS.md's inference that NULL is dropped too, would give ``required key
  [genotype] not found`` and contradicts the guide.
* Message order follows everit (SEMANTICS.md §4): per object, ``required`` in array
  order, then property-count, dependency and additional-key checks, then the property
  schemas in Java ``HashMap`` iteration order of the property names. In the message
  list, leaf messages of a level come first and the leaves of nested failures
  (wrappers, combined keywords) after them, as ``getAllMessages`` builds it.
* A property mixing keyword families (``type: string`` plus ``enum``) is everit's
  synthetic ``allOf``: the leaves are reported as usual, and when it is the row's only
  failure the row's error message is ``#: only 1 subschema matches out of 2``. An
  ``enum``-only property gives the bare ``x is not a valid enum value`` that the
  guide's sample shows.
* The error message is everit's ``getErrorMessage()``, without a pointer, as the
  validation CSV holds it (``2 schema violations found``); ``with_pointer`` gives
  ``getMessage()``.
* Numbers print as Java prints them: ``int`` as a Java Integer/Long, ``float`` as a
  Java Double (``1500.0``, ``1.5``, ``1.0E7``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curation_sync.everit import SchemaError, check_records, resolve_ref
from curation_sync.javatext import java_text

__all__ = [
    "SchemaError",
    "ViolationList",
    "cell_to_json",
    "enum_values",
    "json_to_cell",
    "list_property",
    "record_from_cells",
    "required_properties",
    "schema_properties",
    "summarize_messages",
    "validate_record",
    "validate_records",
]

_LONG = re.compile(r"[+-]?\d+")
_DOUBLE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?")
# Synapse column types whose cells are read with Long.parseLong.
_LONG_COLUMNS = {"INTEGER", "DATE", "FILEHANDLEID", "SUBMISSIONID", "EVALUATIONID",
                 "USERID"}  # fmt: skip


class ViolationList(list[str]):
    """The leaf messages of a row, plus everit's one-line messages for the row.

    ``error_message`` is ``getErrorMessage()`` (what the validation CSV holds) and
    ``message`` is ``getMessage()`` (the same with its pointer); both are None for a
    valid row.
    """

    def __init__(
        self, messages: Iterable[str], error_message: str | None, message: str | None
    ) -> None:
        super().__init__(messages)
        self.error_message = error_message
        self.message = message


def validate_record(schema: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """Return every violation of ``record`` as Synapse writes it, in everit's order.

    The result is a ``ViolationList``; ``summarize_messages`` reads its exact error
    message from it. A key whose value is ``None`` is present with a JSON null; leave
    a key out for an undefined cell.

    Raises:
        SchemaError: the schema holds a reference that does not resolve.
    """
    return validate_records(schema, [record])[0]


def validate_records(
    schema: Mapping[str, Any], records: Iterable[Mapping[str, Any]]
) -> list[ViolationList]:
    """Return ``validate_record`` for each record, reading the schema only once."""
    return [ViolationList(*outcome) for outcome in check_records(schema, records)]


def summarize_messages(
    messages: Sequence[str], *, with_pointer: bool = False
) -> str | None:
    """Return the row's one-line ``validation_error_message``, or None when valid.

    It is everit's ``getErrorMessage()``: the single message without its ``#/x: ``
    prefix, or ``N schema violations found``. ``with_pointer`` gives ``getMessage()``
    instead (``#: 2 schema violations found``). Messages from ``validate_record``
    carry the exact text, combined keywords included; any other list is summarised
    from its leaves alone.
    """
    if not messages:
        return None
    exact = getattr(messages, "message" if with_pointer else "error_message", None)
    if isinstance(exact, str):
        return exact
    if len(messages) == 1:
        return messages[0] if with_pointer else _bare(messages[0])
    summary = f"{len(messages)} schema violations found"
    return f"#: {summary}" if with_pointer else summary


def _bare(message: str) -> str:
    return message.split(": ", 1)[1] if message.startswith("#") else message


def schema_properties(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Return the top-level property schemas, with local references resolved."""
    root = _resolved(schema, schema)
    properties = root.get("properties", {})
    return {name: _resolved(schema, sub) for name, sub in properties.items()}


def required_properties(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the names in the top-level ``required`` list, in schema order."""
    return tuple(_resolved(schema, schema).get("required", ()))


def enum_values(prop: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Return the allowed values of an enum (or const) property, else None."""
    if "enum" in prop:
        return tuple(prop["enum"])
    return (prop["const"],) if "const" in prop else None


def list_property(prop: Mapping[str, Any]) -> bool:
    """Return True for a property whose cells hold JSON array text."""
    return _kind(prop) == "array"


def _resolved(root: Mapping[str, Any], schema: Any) -> Mapping[str, Any]:
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 32:
        schema, seen = resolve_ref(root, schema["$ref"]), seen + 1
    return schema if isinstance(schema, Mapping) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(prop: Mapping[str, Any]) -> str:
    declared = prop.get("type")
    if isinstance(declared, list):
        declared = next((name for name in declared if name != "null"), None)
    if isinstance(declared, str):
        return declared
    values = enum_values(prop) or ()
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(_is_number(v) for v in values):
        return "number"
    return "string"


def cell_to_json(
    text: str,
    prop_schema: Mapping[str, Any],
    *,
    root: Mapping[str, Any] | None = None,
    column_type: str | None = None,
) -> Any:
    """Return the JSON value Synapse validates for one grid cell's text.

    Follows the grid's column translators (SEMANTICS.md §2): "" is no value (None);
    integer columns take ``Long.parseLong`` text; number columns take
    ``Double.parseDouble`` text (an integral literal stays an int, as in a column
    inferred INTEGER); boolean columns are True only for "true" in any case; list
    columns need JSON array text. Text a type cannot hold is kept as the string,
    as the lenient translator does, so validation reports the wrong type.
    ``root`` resolves a ``$ref`` in ``prop_schema``. ``column_type``, a Synapse
    column type such as ``DOUBLE`` or ``STRING_LIST``, overrides the property's
    type when the grid's column type is known.
    """
    if text == "":
        return None
    kind = _column_kind(column_type) if column_type else None
    kind = kind or _kind(_resolved(root or prop_schema, prop_schema))
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "integer":
        return _parse_long(text)
    if kind in ("number", "double"):
        trimmed = text.strip()
        whole = _parse_long(trimmed) if kind == "number" else trimmed
        if isinstance(whole, int):
            return whole
        if _DOUBLE.fullmatch(trimmed) is not None:
            value = float(trimmed.rstrip("fFdD"))
            return value if math.isfinite(value) else text
        return text
    if kind in ("array", "json"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        return parsed if kind == "json" or isinstance(parsed, list) else text
    return text


def _parse_long(text: str) -> int | str:
    if _LONG.fullmatch(text) is None or not -(2**63) <= int(text) < 2**63:
        return text
    return int(text)


def _column_kind(column_type: str) -> str:
    if column_type.endswith("_LIST"):
        return "array"
    kinds = {"DOUBLE": "double", "BOOLEAN": "boolean", "JSON": "json"}
    return kinds.get(
        column_type, "integer" if column_type in _LONG_COLUMNS else "string"
    )


def json_to_cell(value: Any) -> str:
    """Return the cell text Synapse writes for a JSON value (``value.toString()``)."""
    return "" if value is None else java_text(value)


def record_from_cells(
    schema: Mapping[str, Any],
    columns: Sequence[str],
    cells: Sequence[str],
    *,
    column_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the JSON object Synapse validates for one row of cell text.

    An empty cell of a required property is kept as a null (the guide's
    ``expected type: String, found: Null``); an empty optional cell is left out.
    Columns the schema does not know are kept as text. ``column_types`` gives the
    grid's column types by name, where known (see ``cell_to_json``).
    """
    properties = schema_properties(schema)
    required = set(required_properties(schema))
    types = column_types or {}
    record: dict[str, Any] = {}
    for column, text in zip(columns, cells, strict=False):
        prop = properties.get(column, {})
        kind = types.get(column)
        value = cell_to_json(text, prop, root=schema, column_type=kind)
        if value is not None or column in required:
            record[column] = value
    return record
