"""The sidecar: the validation report written beside a workbook.

Design notes. The person's workbook is never touched; the report is a separate
file (`animals.validation.xlsx` by default) replaced atomically, so Excel can
keep the workbook open while the daemon writes. It has a summary, one row per
violation (with the row number as the person sees it), what was not pushed and
why, and a copy of the data with each invalid cell highlighted and its message
as a comment. Every cell holding text is a string cell (and in CSV, text that
starts like a formula gets a leading apostrophe), because messages echo user
values such as `=HYPERLINK(...)`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import openpyxl
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell, WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from curation_sync.errors import ConfigError
from curation_sync.spreadsheet import (
    FORMULA_PREFIXES,
    HEADER_FILL,
    HEADER_FONT,
    set_text,
    workbook_bytes,
    write_atomically,
)

logger = logging.getLogger(__name__)

DEFAULT_NAME_TEMPLATE = "{stem}.validation.xlsx"
INVALID_FILL = PatternFill("solid", fgColor="FFC7CE")
CONFLICT_FILL = PatternFill("solid", fgColor="FFEB9C")


@dataclass(frozen=True)
class Violation:
    """One schema violation of one row, as Synapse (or the local check) said it."""

    sheet_row: int | None
    key: str
    column: str | None
    value: str
    message: str
    all_messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conflict:
    """A cell changed both locally and on Synapse since the base; not pushed."""

    key: str
    column: str
    local_value: str
    remote_value: str
    sheet_row: int | None = None


@dataclass(frozen=True)
class HeldBack:
    """A row not pushed because a local check failed."""

    sheet_row: int | None
    key: str
    reason: str


@dataclass(frozen=True)
class NotPushed:
    """Everything a push left out, so that the person can act on it."""

    conflicts: tuple[Conflict, ...] = ()
    # Import can add and change rows but not remove them.
    removed_keys: tuple[str, ...] = ()
    held_back: tuple[HeldBack, ...] = ()

    def is_empty(self) -> bool:
        return not (self.conflicts or self.removed_keys or self.held_back)


@dataclass(frozen=True)
class Counts:
    """Rows by validation outcome."""

    valid: int = 0
    invalid: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.invalid + self.unknown


@dataclass(frozen=True)
class ReportData:
    """The rows that were validated, for the highlighted copy."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    # The row numbers the person sees; by default 2, 3, ... in order.
    sheet_rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class SidecarReport:
    """What a validation told about one workbook."""

    task_id: int
    task_name: str
    record_set_id: str
    version: int | None
    validated_at: dt.datetime
    counts: Counts
    violations: tuple[Violation, ...] = ()
    not_pushed: NotPushed = field(default_factory=NotPushed)
    data: ReportData | None = None
    # "Synapse" for the server's validation, "local check" for ours.
    source: str = "Synapse"
    # Sentences about the whole workbook ("the task is COMPLETED"), in the summary.
    notes: tuple[str, ...] = ()

    def is_clean(self) -> bool:
        """Every row valid, nothing unknown, nothing held back."""
        return (
            self.counts.invalid == 0
            and self.counts.unknown == 0
            and not self.violations
            and self.not_pushed.is_empty()
        )

    def status(self) -> str:
        """The one-sentence verdict at the top of the summary."""
        if self.is_clean():
            rows = "row is" if self.counts.valid == 1 else "rows are"
            return f"All {self.counts.valid} {rows} valid."
        parts = []
        if self.counts.invalid:
            parts.append(
                f"{self.counts.invalid} of {self.counts.total} rows are invalid; "
                "see the Violations sheet."
            )
        if self.counts.unknown:
            parts.append(f"{self.counts.unknown} rows were not validated yet.")
        if not self.not_pushed.is_empty():
            parts.append("Some changes were not pushed; see the Not pushed sheet.")
        if not parts:
            parts.append(f"{len(self.violations)} problems; see the Violations sheet.")
        return " ".join(parts)


def sidecar_path(workbook: Path, *, name_template: str = DEFAULT_NAME_TEMPLATE) -> Path:
    """Where the sidecar of `workbook` goes: the same folder, a templated name.

    Raises:
        ConfigError: the template is malformed or names the workbook itself.
    """
    try:
        name = name_template.format(stem=workbook.stem, name=workbook.name)
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"The sidecar name template {name_template!r} is not valid ({error}); "
            "use {stem} for the workbook's name, e.g. '{stem}.validation.xlsx'."
        ) from None
    path = workbook.parent / name
    if path.name == workbook.name or "/" in name or not name.strip():
        raise ConfigError(
            f"The sidecar name template {name_template!r} gives {name!r} for "
            f"{workbook.name}; it must give a different file name in the same "
            "folder, e.g. '{stem}.validation.xlsx'."
        )
    return path


def write_sidecar(
    workbook: Path,
    report: SidecarReport,
    *,
    fmt: str = "xlsx",
    name_template: str = DEFAULT_NAME_TEMPLATE,
    remove_when_valid: bool = False,
) -> Path | None:
    """Write (or, when clean and asked to, remove) the sidecar of `workbook`.

    Returns the sidecar's path, or None when it was removed.
    """
    path = sidecar_path(workbook, name_template=name_template)
    if fmt == "csv" and path.suffix.lower() == ".xlsx":
        path = path.with_suffix(".csv")
    if path.name == workbook.name:
        raise ConfigError(f"The sidecar of {workbook.name} would replace it.")

    if remove_when_valid and report.is_clean():
        path.unlink(missing_ok=True)
        logger.info("Removed sidecar %s: every row is valid", path.name)
        return None

    if fmt == "csv":
        data = _csv_bytes(report)
    elif fmt == "xlsx":
        data = _xlsx_bytes(report)
    else:
        raise ConfigError(f"Unknown sidecar format {fmt!r}; use xlsx or csv.")
    write_atomically(path, data)
    logger.info("Wrote sidecar %s: %s", path.name, report.status())
    return path


# ---------------------------------------------------------------------------
# XLSX
#
# The sidecar is written in openpyxl's write-only mode: each row goes straight
# to the sheet's XML, so a 10,000-row data copy costs no cell objects except for
# the few cells that are styled, commented or need a quote prefix.

# One value of a write-only row: a plain value openpyxl stores as it is, or a cell.
_RowValue = Cell | str | int | None


def _clean(text: str) -> str:
    # A report must still be written when a cell it quotes holds a control
    # character XLSX cannot store: show each as the replacement mark.
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)


def _value(sheet: WriteOnlyWorksheet, value: str | int | None) -> _RowValue:
    """A row value that is stored as a number or a string cell, never a formula."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = _clean(value)
    if not text.startswith(FORMULA_PREFIXES):
        # openpyxl makes a string cell of any text that does not start with "=".
        return text
    cell = WriteOnlyCell(sheet)
    set_text(cell, text)
    return cell


def _styled(
    sheet: WriteOnlyWorksheet,
    value: str | int | None,
    *,
    font: Font | None = None,
    fill: PatternFill | None = None,
    alignment: Alignment | None = None,
    comment: str | None = None,
) -> Cell:
    plain = _value(sheet, value)
    cell = plain if isinstance(plain, Cell) else WriteOnlyCell(sheet)
    if isinstance(plain, str):
        set_text(cell, plain)
    elif isinstance(plain, int):
        cell.value = plain
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if alignment is not None:
        cell.alignment = alignment
    if comment is not None:
        cell.comment = Comment(_clean(comment), "curation-sync", width=300, height=90)
    return cell


def _row(
    sheet: WriteOnlyWorksheet, values: Sequence[str | int | None]
) -> list[_RowValue]:
    return [_value(sheet, value) for value in values]


def _header_row(sheet: WriteOnlyWorksheet, header: Sequence[str]) -> list[_RowValue]:
    return [_styled(sheet, name, font=HEADER_FONT, fill=HEADER_FILL) for name in header]


def _layout(
    sheet: WriteOnlyWorksheet, widths: Sequence[int], filter_ref: str | None = None
) -> None:
    """Column widths, a frozen header and a filter; set before the first row."""
    # types-openpyxl leaves column_dimensions and auto_filter off
    # WriteOnlyWorksheet; openpyxl 3.1 has both.
    dimensions = sheet.column_dimensions  # type: ignore[attr-defined]
    for index, width in enumerate(widths, start=1):
        dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    if filter_ref:
        sheet.auto_filter.ref = filter_ref  # type: ignore[attr-defined]


# Plain rows (no style, no comment, no quote prefix) by sheet and row number.
_PlainRows = dict[WriteOnlyWorksheet, dict[int, Sequence[str | int | None]]]


def _append(
    sheet: WriteOnlyWorksheet,
    number: int,
    values: Sequence[str | int | None],
    plain: _PlainRows | None,
) -> None:
    """Append a row; a plain one is left empty, to be filled in after saving."""
    if plain is None or any(
        isinstance(value, str) and value.startswith(FORMULA_PREFIXES)
        for value in values
    ):
        sheet.append(_row(sheet, values))
    else:
        plain.setdefault(sheet, {})[number] = values
        sheet.append(())


def _table_sheet(
    book: openpyxl.Workbook,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str | int | None]],
    widths: Sequence[int],
    plain: _PlainRows | None,
) -> None:
    sheet: WriteOnlyWorksheet = book.create_sheet(title)
    last = f"{get_column_letter(len(header))}{len(rows) + 1}"
    _layout(sheet, widths, f"A1:{last}" if rows else None)
    sheet.append(_header_row(sheet, header))
    for number, values in enumerate(rows, start=2):
        _append(sheet, number, values, plain)


def _summary_sheet(book: openpyxl.Workbook, report: SidecarReport) -> None:
    sheet: WriteOnlyWorksheet = book.create_sheet("Summary")
    validated_at = report.validated_at.astimezone(dt.timezone.utc)
    lines: list[tuple[str, str | int | None]] = [
        ("Task", report.task_name),
        ("Task id", report.task_id),
        ("Record set", report.record_set_id),
        ("Version", report.version),
        ("Validated at (UTC)", validated_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("Checked by", report.source),
        ("Valid rows", report.counts.valid),
        ("Invalid rows", report.counts.invalid),
        ("Unknown rows", report.counts.unknown),
        ("Conflicts not pushed", len(report.not_pushed.conflicts)),
        (
            "Rows removed locally, not removed on Synapse",
            len(report.not_pushed.removed_keys),
        ),
        ("Rows held back by local checks", len(report.not_pushed.held_back)),
    ]
    lines += [("Note", note) for note in report.notes]
    dimensions = sheet.column_dimensions  # type: ignore[attr-defined]
    dimensions["A"].width = 44
    dimensions["B"].width = 70

    status_font = Font(bold=True, color="006100" if report.is_clean() else "9C0006")
    status = _styled(
        sheet,
        report.status(),
        font=status_font,
        alignment=Alignment(wrap_text=True),
    )
    sheet.append([_styled(sheet, "Status", font=HEADER_FONT), status])
    for label, value in lines:
        sheet.append([_styled(sheet, label, font=HEADER_FONT), _value(sheet, value)])


def _violations_sheet(
    book: openpyxl.Workbook, report: SidecarReport, plain: _PlainRows | None
) -> None:
    rows = [
        (
            v.sheet_row,
            v.key,
            v.column,
            v.value,
            v.message,
            "\n".join(v.all_messages),
        )
        for v in report.violations
    ]
    _table_sheet(
        book,
        "Violations",
        ["Row", "Key", "Column", "Value", "Message", "All messages for the row"],
        rows,
        [8, 18, 16, 24, 60, 80],
        plain,
    )


def _not_pushed_rows(not_pushed: NotPushed) -> list[tuple[str | int | None, ...]]:
    rows: list[tuple[str | int | None, ...]] = []
    for conflict in not_pushed.conflicts:
        rows.append(
            (
                "conflict",
                conflict.sheet_row,
                conflict.key,
                conflict.column,
                conflict.local_value,
                conflict.remote_value,
                "Changed here and on Synapse since the last pull; pick one value "
                "and save again.",
            )
        )
    for key in not_pushed.removed_keys:
        rows.append(
            (
                "removed locally",
                None,
                key,
                None,
                None,
                None,
                "The row is gone from the workbook but import cannot remove rows; "
                "it stays on Synapse. Ask the task's administrator to delete it.",
            )
        )
    for held in not_pushed.held_back:
        rows.append(
            ("held back", held.sheet_row, held.key, None, None, None, held.reason)
        )
    return rows


def _not_pushed_sheet(
    book: openpyxl.Workbook, report: SidecarReport, plain: _PlainRows | None
) -> None:
    if report.not_pushed.is_empty():
        return
    _table_sheet(
        book,
        "Not pushed",
        ["What", "Row", "Key", "Column", "Your value", "Value on Synapse", "Why"],
        _not_pushed_rows(report.not_pushed),
        [16, 8, 18, 16, 24, 24, 70],
        plain,
    )


def _cell_notes(report: SidecarReport, data: ReportData) -> dict[int, dict[int, str]]:
    """The comment of each highlighted data cell, by sheet row and column."""
    messages: dict[tuple[int, int], list[str]] = defaultdict(list)
    positions = {name: index for index, name in enumerate(data.columns, start=1)}
    for violation in report.violations:
        if violation.sheet_row is None:
            continue
        column = positions.get(violation.column or "", 1)
        messages[(violation.sheet_row, column)].append(violation.message)
    for conflict in report.not_pushed.conflicts:
        if conflict.sheet_row is not None and conflict.column in positions:
            position = (conflict.sheet_row, positions[conflict.column])
            messages[position].append(
                f"Not pushed: Synapse has {conflict.remote_value!r} "
                "since the last pull."
            )
    notes: dict[int, dict[int, str]] = defaultdict(dict)
    for (row, column), texts in messages.items():
        notes[row][column] = "\n".join(texts)
    return notes


def _marked_row(
    sheet: WriteOnlyWorksheet,
    values: Sequence[str],
    marks: dict[int, str],
    *,
    font: Font | None = None,
    fill: PatternFill | None = None,
) -> list[_RowValue]:
    """A row whose marked columns are highlighted, with the message as a comment."""
    width = max(len(values), max(marks, default=0))
    cells: list[_RowValue] = []
    for column in range(1, width + 1):
        value = values[column - 1] if column <= len(values) else None
        text = marks.get(column)
        if text is not None:
            cells.append(
                _styled(sheet, value, font=font, fill=INVALID_FILL, comment=text)
            )
        elif font is not None or fill is not None:
            cells.append(_styled(sheet, value, font=font, fill=fill))
        else:
            cells.append(_value(sheet, value))
    return cells


def _data_sheet(
    book: openpyxl.Workbook,
    report: SidecarReport,
    plain: _PlainRows | None,
) -> None:
    data = report.data
    if data is None:
        return
    sheet: WriteOnlyWorksheet = book.create_sheet("Data")
    _layout(sheet, ())
    notes = _cell_notes(report, data)
    sheet.append(
        _marked_row(
            sheet, data.columns, notes.get(1, {}), font=HEADER_FONT, fill=HEADER_FILL
        )
    )

    # Rows keep the numbers the person sees, so "row 7" means row 7 here too. A
    # write-only sheet numbers rows as they come, so a gap is filled with empty rows.
    sheet_rows = data.sheet_rows or range(2, len(data.rows) + 2)
    by_number = dict(zip(sheet_rows, data.rows, strict=True))
    written = 1
    for number in sorted(n for n in {*by_number, *notes} if n > 1):
        for _ in range(number - written - 1):
            sheet.append(())
        values = by_number.get(number, ())
        marks = notes.get(number)
        if marks:
            sheet.append(_marked_row(sheet, values, marks))
        else:
            _append(sheet, number, values, plain)
        written = number


# Plain rows, nearly all rows of a big sidecar, skip openpyxl's per-cell XML
# writer: openpyxl writes each as an empty row, and the package is then rewritten
# with those rows filled in, each cell as the same XML openpyxl writes for it (an
# inline string or a number).
_EMPTY_ROW = re.compile(r'<row r="(\d+)"\s*(?:/>|></row>)')


def _row_xml(
    number: int, values: Sequence[str | int | None], letters: Sequence[str]
) -> str:
    cells = []
    for letter, value in zip(letters, values, strict=False):
        if value is None or value == "":
            continue
        if isinstance(value, int):
            cells.append(f'<c r="{letter}{number}" t="n"><v>{value}</v></c>')
            continue
        text = _clean(value)
        # The same rule as openpyxl's: keep leading and trailing spaces.
        stripped = text.strip()
        space = ' xml:space="preserve"' if stripped and stripped != text else ""
        cells.append(
            f'<c r="{letter}{number}" t="inlineStr">'
            f"<is><t{space}>{escape(text)}</t></is></c>"
        )
    return f'<row r="{number}">{"".join(cells)}</row>'


def _fill_rows(xml: str, rows: Mapping[int, Sequence[str | int | None]]) -> str | None:
    """A sheet's XML with `rows` written into its empty rows.

    None when the sheet does not have exactly those empty rows.
    """
    width = max(len(values) for values in rows.values())
    letters = [get_column_letter(index) for index in range(1, width + 1)]
    filled = 0

    def fill(match: re.Match[str]) -> str:
        nonlocal filled
        values = rows.get(int(match[1]))
        if values is None:
            return match[0]
        filled += 1
        return _row_xml(int(match[1]), values, letters)

    result = _EMPTY_ROW.sub(fill, xml)
    return result if filled == len(rows) else None


def _with_plain_rows(package: bytes, plain: _PlainRows) -> bytes | None:
    """The saved package with every plain row filled in, or None if one was lost."""
    members = {sheet.path.lstrip("/"): rows for sheet, rows in plain.items() if rows}
    with zipfile.ZipFile(io.BytesIO(package)) as source:
        sheets: dict[str, bytes] = {}
        for member, rows in members.items():
            xml = _fill_rows(source.read(member).decode("utf-8"), rows)
            if xml is None:
                return None
            sheets[member] = xml.encode("utf-8")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
            for name in source.namelist():
                target.writestr(name, sheets.get(name) or source.read(name))
    return buffer.getvalue()


def _xlsx_bytes(report: SidecarReport, *, fill_rows: bool = True) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    plain: _PlainRows | None = {} if fill_rows else None
    _summary_sheet(book, report)
    _violations_sheet(book, report, plain)
    _not_pushed_sheet(book, report, plain)
    _data_sheet(book, report, plain)
    package = workbook_bytes(book)
    if not plain:
        return package

    filled = _with_plain_rows(package, plain)
    if filled is None:
        # openpyxl wrote empty rows some other way: let it write every row.
        logger.debug("Writing every row of the sidecar through openpyxl")
        return _xlsx_bytes(report, fill_rows=False)
    return filled


# ---------------------------------------------------------------------------
# CSV


def _csv_safe(value: str | int | None) -> str:
    if value is None:
        return ""
    text = str(value)
    # The usual spreadsheet-injection defence: text that Excel would run as a
    # formula is prefixed with an apostrophe, which Excel hides.
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _csv_bytes(report: SidecarReport) -> bytes:
    """One table: summary lines, then violations, then what was not pushed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        ["section", "row", "key", "column", "value", "message", "all_messages"]
    )
    summary: list[tuple[str, str | int | None]] = [
        ("status", report.status()),
        ("task", report.task_name),
        ("task_id", report.task_id),
        ("record_set", report.record_set_id),
        ("version", report.version),
        ("validated_at", report.validated_at.astimezone(dt.timezone.utc).isoformat()),
        ("checked_by", report.source),
        ("valid_rows", report.counts.valid),
        ("invalid_rows", report.counts.invalid),
        ("unknown_rows", report.counts.unknown),
    ]
    summary += [("note", note) for note in report.notes]
    for name, value in summary:
        writer.writerow(["summary", "", "", name, _csv_safe(value), "", ""])
    for v in report.violations:
        writer.writerow(
            [
                "violation",
                _csv_safe(v.sheet_row),
                _csv_safe(v.key),
                _csv_safe(v.column),
                _csv_safe(v.value),
                _csv_safe(v.message),
                _csv_safe("\n".join(v.all_messages)),
            ]
        )
    for what, row, key, column, local, remote, why in _not_pushed_rows(
        report.not_pushed
    ):
        if remote is not None:
            why = f"{why} Value on Synapse: {remote}"
        writer.writerow(
            [
                f"not pushed: {what}",
                _csv_safe(row),
                _csv_safe(key),
                _csv_safe(column),
                _csv_safe(local),
                _csv_safe(why),
                "",
            ]
        )
    # UTF-8 with a byte-order mark, so Excel opens non-ASCII text correctly.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
