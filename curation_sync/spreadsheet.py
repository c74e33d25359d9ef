"""Writing XLSX files: the workbook a person fills in on pull, and safe cells.

Design notes. openpyxl is the writer because it can set what a person needs to
fill in a sheet correctly: text number formats (so Excel keeps `007` and
`MARCH1`), dropdowns, header comments and custom document properties.

- Every value from Synapse is written as a string cell unless the cell type can
  hold it *and* reading it back gives exactly the same text (a number that
  LibreOffice's 15 significant digits keep, an ISO date after February 1900, a
  boolean, a list shown as `a, b`). So a pulled grid survives an open and save
  in Excel or LibreOffice unchanged, and no text ever becomes a formula.
- Enum dropdowns point at a hidden sheet rather than an inline list: Excel
  limits an inline list to 255 characters, a range has no such limit.
- The task id and base version go into custom document properties and a very
  hidden sheet, so a renamed or moved copy is still known; LibreOffice keeps
  both when it saves as XLSX.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
from openpyxl.cell.cell import Cell
from openpyxl.comments import Comment
from openpyxl.packaging.custom import IntProperty, StringProperty
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import IllegalCharacterError
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet
from python_calamine import CalamineError, CalamineWorkbook

from curation_sync.cells import (
    DIGITS_RE,
    CellProblem,
    ColumnSpec,
    column_specs,
    number_text,
    shape_cell,
    value_text,
)
from curation_sync.errors import WorkbookError

DATA_SHEET = "data"
LISTS_SHEET = "_lists"
IDENTITY_SHEET = "_curation_sync"
_PROPERTY_PREFIX = "curation_sync."

# Characters that make Excel or LibreOffice treat typed text as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# Excel's limits for one cell.
MAX_CELL_CHARACTERS = 32_767
LAST_ROW = 1_048_576

HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
REQUIRED_FILL = PatternFill("solid", fgColor="F8CBAD")
HEADER_FONT = Font(bold=True)

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# LibreOffice and Excel disagree about serial days before 1900-03-01.
_FIRST_SAFE_DATE = dt.date(1900, 3, 1)
# Integers LibreOffice stores exactly (it writes 15 significant digits).
_EXACT_INTEGER_LIMIT = 10**15


@dataclass(frozen=True)
class WorkbookIdentity:
    """Which task a workbook belongs to, stored inside the file on pull."""

    task_id: int
    record_set_id: str
    base_version: int


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file only.

    The bytes go to a dot-named temporary file in the same folder (watchers
    ignore dot files), are flushed to disk, and then renamed over the target,
    which keeps its permission bits.
    """
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        # Reading the umask means changing it, which races other threads.
        mode = 0o644
    handle, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def cell_at(sheet: Worksheet, row: int, column: int) -> Cell:
    """The writable cell at (row, column), 1-based."""
    cell = sheet.cell(row=row, column=column)
    assert isinstance(cell, Cell), "no merged cells in sheets curation-sync writes"
    return cell


def set_text(cell: Cell, text: str) -> None:
    """Put `text` in a cell as a string, never as a formula, whatever it starts with."""
    try:
        cell.value = text
    except IllegalCharacterError:
        raise WorkbookError(
            f"Cell {cell.coordinate} holds a control character that XLSX cannot "
            "store; remove it from the value in Synapse and pull again."
        ) from None
    cell.data_type = "s"
    if text.startswith(FORMULA_PREFIXES):
        # Excel shows the apostrophe in the formula bar and keeps the cell text
        # when the person edits it.
        cell.quotePrefix = True


def workbook_bytes(book: openpyxl.Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _typed_value(text: str, spec: ColumnSpec | None) -> Any:
    """The native cell value for grid text, or None to keep it a string cell.

    A native value is used only when reading it back gives the same text.
    """
    kind = spec.kind if spec else "string"
    if kind == "boolean":
        return {"true": True, "false": False}.get(text)
    if kind in ("number", "integer"):
        if DIGITS_RE.fullmatch(text):
            number = int(text)
            fits = str(number) == text and abs(number) < _EXACT_INTEGER_LIMIT
            return number if fits else None
        try:
            value = float(text)
        except ValueError:
            return None
        return value if kind == "number" and number_text(value) == text else None
    if spec is not None and spec.format == "date" and _ISO_DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            return None
        return day if day >= _FIRST_SAFE_DATE else None
    return None


def list_display(text: str, spec: ColumnSpec) -> str:
    """A JSON array cell as `a, b` when that reads back as the same JSON text."""
    try:
        items = json.loads(text)
    except ValueError:
        return text
    if not isinstance(items, list) or not items:
        return text
    shown = ", ".join(
        item if isinstance(item, str) else json.dumps(item) for item in items
    )
    try:
        same = shape_cell(shown, spec) == text
    except CellProblem:
        same = False
    return shown if same else text


def _header_note(spec: ColumnSpec) -> str:
    lines = [spec.description] if spec.description else []
    if spec.required:
        lines.append("Required.")
    if spec.enum:
        lines.append("One of: " + ", ".join(str(value) for value in spec.enum) + ".")
    if spec.kind == "list":
        lines.append("A list: separate items with commas, or semicolons.")
    if spec.kind == "boolean":
        lines.append("true or false.")
    if spec.format == "date":
        lines.append("A date, yyyy-mm-dd.")
    return "\n".join(lines)


def _write_header(
    sheet: Worksheet, columns: Sequence[str], specs: Mapping[str, ColumnSpec]
) -> None:
    for index, name in enumerate(columns, start=1):
        cell = cell_at(sheet, 1, index)
        set_text(cell, name)
        spec = specs.get(name)
        cell.font = HEADER_FONT
        cell.fill = REQUIRED_FILL if spec and spec.required else HEADER_FILL
        note = _header_note(spec) if spec else ""
        if note:
            cell.comment = Comment(note, "curation-sync", width=260, height=110)
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = min(max(len(name) + 4, 12), 50)
        # The column's own format applies to cells the person adds later.
        if spec is None or spec.kind in ("string", "list"):
            fmt = "yyyy-mm-dd" if spec and spec.format == "date" else "@"
            sheet.column_dimensions[letter].number_format = fmt
    sheet.freeze_panes = "A2"


def _add_dropdowns(
    book: openpyxl.Workbook,
    sheet: Worksheet,
    columns: Sequence[str],
    specs: Mapping[str, ColumnSpec],
) -> None:
    lists: Worksheet | None = None
    used_list_columns = 0
    for index, name in enumerate(columns, start=1):
        spec = specs.get(name)
        if spec is None:
            continue
        letter = get_column_letter(index)
        if spec.enum and spec.kind != "list":
            if lists is None:
                lists = book.create_sheet(LISTS_SHEET)
                lists.sheet_state = "hidden"
            used_list_columns += 1
            list_column = get_column_letter(used_list_columns)
            for row, value in enumerate(spec.enum, start=1):
                set_text(cell_at(lists, row, used_list_columns), _enum_text(value))
            end = len(spec.enum)
            formula = f"'{LISTS_SHEET}'!${list_column}$1:${list_column}${end}"
        elif spec.kind == "boolean":
            formula = '"true,false"'
        else:
            continue
        validation = DataValidation(
            type="list",
            formula1=formula,
            allow_blank=True,
            showErrorMessage=True,
            errorStyle="warning",
            errorTitle=f"Not a value for {name}",
            error="Pick a value from the list; Synapse will reject other values.",
        )
        sheet.add_data_validation(validation)
        validation.add(f"{letter}2:{letter}{LAST_ROW}")


def _enum_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def _write_identity(book: openpyxl.Workbook, identity: WorkbookIdentity) -> None:
    # types-openpyxl does not declare custom_doc_props (openpyxl 3.1 has it).
    properties = book.custom_doc_props  # type: ignore[attr-defined]
    properties.append(
        IntProperty(name=_PROPERTY_PREFIX + "task_id", value=identity.task_id)
    )
    properties.append(
        StringProperty(
            name=_PROPERTY_PREFIX + "record_set_id", value=identity.record_set_id
        )
    )
    properties.append(
        IntProperty(name=_PROPERTY_PREFIX + "base_version", value=identity.base_version)
    )
    sheet = book.create_sheet(IDENTITY_SHEET)
    sheet.sheet_state = "veryHidden"
    for row, (key, value) in enumerate(_identity_items(identity), start=1):
        set_text(cell_at(sheet, row, 1), key)
        set_text(cell_at(sheet, row, 2), value)


def _identity_items(identity: WorkbookIdentity) -> list[tuple[str, str]]:
    return [
        ("task_id", str(identity.task_id)),
        ("record_set_id", identity.record_set_id),
        ("base_version", str(identity.base_version)),
    ]


def write_workbook(
    path: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    schema: Mapping[str, Any] | None,
    identity: WorkbookIdentity,
    sheet_name: str = DATA_SHEET,
) -> None:
    """Write grid rows as an XLSX a person can fill in, atomically.

    String columns are formatted as text, the header is styled, frozen and
    commented with each property's description (required columns coloured),
    enum and boolean columns get dropdowns, and `identity` is stored inside.

    Raises:
        WorkbookError: a value cannot be stored in XLSX (a control character,
            or more than 32,767 characters in one cell).
    """
    specs = column_specs(schema)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = sheet_name
    _write_header(sheet, columns, specs)

    column_specs_in_order = [specs.get(name) for name in columns]
    for row_number, row in enumerate(rows, start=2):
        for index, (text, spec) in enumerate(
            zip(row, column_specs_in_order, strict=True), start=1
        ):
            if text == "":
                continue
            if len(text) > MAX_CELL_CHARACTERS:
                raise WorkbookError(
                    f"{path.name}: row {row_number}, column {columns[index - 1]} has "
                    f"{len(text)} characters, more than an XLSX cell holds "
                    f"({MAX_CELL_CHARACTERS}); shorten it in Synapse and pull again."
                )
            _write_cell(cell_at(sheet, row_number, index), text, spec)

    _add_dropdowns(book, sheet, columns, specs)
    _write_identity(book, identity)
    write_atomically(path, workbook_bytes(book))


def _write_cell(cell: Cell, text: str, spec: ColumnSpec | None) -> None:
    value = _typed_value(text, spec)
    if value is None:
        shown = list_display(text, spec) if spec and spec.kind == "list" else text
        set_text(cell, shown)
        cell.number_format = "@"
        return
    cell.value = value
    if isinstance(value, dt.date):
        cell.number_format = "yyyy-mm-dd"


def read_identity(path: Path) -> WorkbookIdentity | None:
    """The task identity stored in a pulled XLSX, or None (CSV, or none stored)."""
    if path.suffix.lower() == ".csv":
        return None
    values = _identity_from_properties(path) or _identity_from_sheet(path)
    try:
        return WorkbookIdentity(
            task_id=_whole_number(values["task_id"]),
            record_set_id=values["record_set_id"],
            base_version=_whole_number(values["base_version"]),
        )
    except (KeyError, ValueError):
        return None


def _whole_number(text: str) -> int:
    # LibreOffice re-saves integer properties as doubles (`vt:r8`).
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _identity_from_properties(path: Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            root = ElementTree.fromstring(archive.read("docProps/custom.xml"))
    except (KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError):
        return {}
    values: dict[str, str] = {}
    for prop in root:
        name = prop.get("name", "")
        if name.startswith(_PROPERTY_PREFIX) and len(prop):
            values[name.removeprefix(_PROPERTY_PREFIX)] = (prop[0].text or "").strip()
    return values


def _identity_from_sheet(path: Path) -> dict[str, str]:
    try:
        with CalamineWorkbook.from_path(str(path)) as book:
            rows = book.get_sheet_by_name(IDENTITY_SHEET).to_python()
    except (CalamineError, OSError):
        return {}
    return {value_text(row[0]): value_text(row[1]) for row in rows if len(row) >= 2}
