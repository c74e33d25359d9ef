"""Cell text both ways: raw spreadsheet values to import text, per JSON schema.

Synapse's CSV import types each column from the bound JSON schema and parses
cell text with Java's rules: `Boolean.parseBoolean` (anything but `true` is
false), `Double.parseDouble`, `Long.parseLong`, and `new JSONArray(text)` for
list columns. The shapers here produce exactly that text from what a person
typed, and raise `CellProblem` instead of guessing when a cell cannot be
shaped. The same specs drive the cell types of the workbook written on pull.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

CellValue = str | int | float | bool | dt.date | dt.datetime | dt.time | dt.timedelta

# Excel keeps 15 significant digits; more are binary noise of the stored double.
SIGNIFICANT_DIGITS = 15

NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
DIGITS_RE = re.compile(r"[+-]?\d+")
_LONG_RANGE = 2**63

# ---------------------------------------------------------------------------
# Column specs from the JSON schema


@dataclass(frozen=True)
class ColumnSpec:
    """How the cells of one column must be shaped, from its schema property."""

    name: str
    kind: str = "string"  # string, number, integer, boolean or list
    format: str | None = None
    item_kind: str = "string"
    required: bool = False
    enum: tuple[Any, ...] = ()
    description: str = ""


def _resolve(schema: Mapping[str, Any], prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local `$ref` (`#/definitions/x`, `#/$defs/x`) one level deep."""
    ref = prop.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return prop
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, Mapping) else {}
    merged = dict(target) if isinstance(target, Mapping) else {}
    merged.update({k: v for k, v in prop.items() if k != "$ref"})
    return merged


def _json_type(prop: Mapping[str, Any]) -> str:
    declared = prop.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), "string")
    if isinstance(declared, str):
        return declared
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, bool) for v in enum):
        return "boolean"
    return "string"


_KINDS = {"number": "number", "integer": "integer", "boolean": "boolean"}


def column_specs(schema: Mapping[str, Any] | None) -> dict[str, ColumnSpec]:
    """Every top-level property of a JSON schema as a `ColumnSpec`, in order."""
    if not schema:
        return {}
    required = set(schema.get("required") or ())
    specs: dict[str, ColumnSpec] = {}
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolve(schema, raw if isinstance(raw, Mapping) else {})
        json_type = _json_type(prop)
        items = _resolve(schema, prop.get("items") or {})
        enum = prop.get("enum") or items.get("enum") or ()
        specs[name] = ColumnSpec(
            name=name,
            kind="list" if json_type == "array" else _KINDS.get(json_type, "string"),
            format=prop.get("format") if isinstance(prop.get("format"), str) else None,
            item_kind=_KINDS.get(_json_type(items), "string"),
            required=name in required,
            enum=tuple(enum),
            description=str(prop.get("description") or prop.get("title") or ""),
        )
    return specs


# How many rows from the top are searched for the header row.
HEADER_SEARCH_ROWS = 30


def find_header(
    head: Sequence[Sequence[CellValue]], specs: Mapping[str, ColumnSpec]
) -> tuple[int, int]:
    """The index of the header row among the top rows, and how many names match."""
    wanted = {normalize_header(name) for name in specs}
    first, best, best_score = -1, -1, 0
    for index, row in enumerate(head):
        names = {normalize_header(value_text(v)) for v in row} - {""}
        if not names:
            continue
        if first < 0:
            first = index
        score = len(names & wanted)
        if score > best_score:
            best, best_score = index, score
    return (best, best_score) if best >= 0 else (first, 0)


def normalize_header(name: str) -> str:
    """The forgiving form of a column name: case, outer space and `_` ignored."""
    return re.sub(r"[\s_]+", " ", name.strip()).casefold()


# ---------------------------------------------------------------------------
# Cell shaping


class CellProblem(Exception):
    """Raised by a shaper for a cell that does not fit its column."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def number_text(value: float) -> str:
    """A float as the text a person sees: no `.0`, no binary noise."""
    if value.is_integer() and abs(value) <= 2**53:
        return str(int(value))
    text = repr(value)
    mantissa = text.split("e")[0].lstrip("-").replace(".", "").strip("0")
    if len(mantissa) > SIGNIFICANT_DIGITS:
        text = repr(float(f"{value:.{SIGNIFICANT_DIGITS}g}"))
    return text[:-2] if text.endswith(".0") else text


def _datetime_text(value: dt.datetime) -> str:
    # Serial day fractions come back a few microseconds off; keep milliseconds.
    micros = round(value.microsecond / 1000) * 1000
    value = value.replace(microsecond=0) + dt.timedelta(microseconds=micros)
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def value_text(value: CellValue, spec: ColumnSpec | None = None) -> str:
    """Any cell value as plain text, before column-specific checks."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, dt.datetime):
        if spec is not None and spec.format == "date" and value.time() == dt.time():
            return value.date().isoformat()
        return _datetime_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _shape_number(value: CellValue, spec: ColumnSpec) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CellProblem("not-a-number", f"{value_text(value)!r} is not a number")
    if isinstance(value, int | float):
        return value_text(value)

    # Number text is kept as typed (Java parses it the same), only trimmed.
    text = value.strip()
    if not text:
        return ""
    if not NUMBER_RE.fullmatch(text):
        hint = "; use a dot for decimals" if re.fullmatch(r"-?\d+,\d+", text) else ""
        raise CellProblem("not-a-number", f"{value!r} is not a number{hint}")
    if not math.isfinite(float(text)):
        raise CellProblem("not-a-number", f"{value!r} is too large for a number")
    return text


def _shape_integer(value: CellValue, spec: ColumnSpec) -> str:
    if isinstance(value, str) and DIGITS_RE.fullmatch(value.strip()):
        text = value.strip()
    else:
        # Long.parseLong rejects `7.0`, so a whole number in any other form is
        # written as plain digits.
        try:
            number = float(_shape_number(value, spec) or "nan")
        except CellProblem:
            number = 0.5
        if math.isnan(number):
            return ""
        if not number.is_integer():
            shown = value_text(value).strip()
            raise CellProblem("not-an-integer", f"{shown!r} is not a whole number")
        text = str(int(number))
    if abs(int(text)) >= _LONG_RANGE:
        raise CellProblem("not-an-integer", f"{text} is too large for an integer")
    return text


def _shape_boolean(value: CellValue, spec: ColumnSpec) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # LibreOffice stores a formula's boolean result as the number 1 or 0.
    if isinstance(value, int | float) and value in (0, 1):
        return "true" if value else "false"
    text = value_text(value).strip()
    if text.lower() in ("true", "false", ""):
        return text.lower()
    raise CellProblem(
        "not-a-boolean",
        f"{text!r} is not true or false (Synapse would store it as false); "
        "type true or false",
    )


def _split_list(text: str) -> list[str]:
    separator = ";" if ";" in text else ","
    return [item.strip() for item in text.split(separator) if item.strip()]


def _shape_list(value: CellValue, spec: ColumnSpec) -> str:
    item_spec = ColumnSpec(name=spec.name, kind=spec.item_kind)
    if not isinstance(value, str):
        items: list[str] = [value_text(value)]
    else:
        text = value.strip()
        if not text:
            return ""
        if text.startswith("["):
            # A cell already holding JSON array text is kept as typed.
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return text
        items = _split_list(text)
    shaper = SHAPERS.get(spec.item_kind) if spec.item_kind != "string" else None
    if shaper is None:
        # Compact JSON of strings, as org.json writes it, without json.dumps.
        return "[" + ",".join(map(encode_basestring, items)) + "]"
    typed = [_json_scalar(shaper(item, item_spec), spec.item_kind) for item in items]
    return json.dumps(typed, ensure_ascii=False, separators=(",", ":"))


def _json_scalar(text: str, kind: str) -> Any:
    if kind == "boolean":
        return text == "true"
    if kind == "integer":
        return int(text)
    if kind == "number":
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number
    return text


def _shape_string(value: CellValue, spec: ColumnSpec) -> str:
    # Excel turns gene names such as MARCH1 or SEPT2 typed into a General cell
    # into dates; a date in a text column without a date format is that trap.
    if isinstance(value, dt.date) and spec.format is None:
        raise CellProblem(
            "date-in-text-column",
            f"{value_text(value)} is a date, but the column holds text; if you "
            "typed a name such as MARCH1 or SEPT2, Excel turned it into a date: "
            "format the column as Text, type the value again and save",
        )
    return value_text(value, spec)


SHAPERS: dict[str, Callable[[CellValue, ColumnSpec], str]] = {
    "string": _shape_string,
    "number": _shape_number,
    "integer": _shape_integer,
    "boolean": _shape_boolean,
    "list": _shape_list,
}


def shape_cell(value: CellValue, spec: ColumnSpec | None) -> str:
    """One cell as import text for its column; raises `CellProblem` if it cannot be.

    Without a spec (an unknown column or no schema) the text is kept as is.
    """
    if spec is None:
        return value_text(value)
    return SHAPERS.get(spec.kind, _shape_string)(value, spec)
