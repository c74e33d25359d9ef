"""Workbooks: reading CSV and XLSX into exact cell text, and writing XLSX on pull.

Design notes. A workbook is read into a `Table` of cell *text*, shaped the way
Synapse's CSV import wants it for the task's JSON schema, because import types
cells by column and silently turns some text into other values (any boolean but
`true` becomes false, a list cell must be JSON array text). So:

- Nothing is guessed. There is no NA list, text stays text, numbers are only
  turned into text (`7` not `7.0`, 15 significant digits like Excel shows), and
  a cell that does not fit its column is reported as a `Problem` with the row
  number the person sees, never coerced. Whole-file failures raise
  `WorkbookError`; cell and column issues do not, so one bad cell cannot stop
  the other rows.
- XLSX goes through python-calamine (Rust) for speed; openpyxl loads every
  cell as an object with styles (`pandas.read_excel` with openpyxl took 13
  times as long on 100,000 x 20 cells, see benchmarks/bench_workbook.py).
  Calamine already ignores value-less formatted cells; rows of empty strings
  are trimmed while streaming, so a sheet claiming a million rows stays cheap.
- Writing (pull) lives in `spreadsheet.py` and cell shaping in `cells.py`;
  this module re-exports the writing API so callers have one import.

Limitations:
    Formula errors (`#DIV/0!`) read as empty cells: calamine reports them as
    empty text. Formulas saved by a program that stores no cached value
    (openpyxl) read as empty until Excel or LibreOffice saves the file once.
    A date LibreOffice shows as 1900-02-27 reads as 1900-02-28 (its serial
    and that of Excel's fictional 1900-02-29 both read as the 28th).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_calamine import CalamineError, CalamineSheet

from curation_sync.cells import (
    HEADER_SEARCH_ROWS,
    SHAPERS,
    CellProblem,
    CellValue,
    ColumnSpec,
    column_specs,
    find_header,
    normalize_header,
    number_text,
    value_text,
)
from curation_sync.csvtext import csv_safe_cell, parse_csv
from curation_sync.errors import WorkbookError
from curation_sync.spreadsheet import (
    MAX_CELL_CHARACTERS,
    WorkbookIdentity,
    read_identity,
    write_atomically,
    write_workbook,
)
from curation_sync.xlsxzip import (
    open_workbook,
    pick_sheet,
    sheet_marks,
    undo_libreoffice_epoch,
    written_by_libreoffice,
)

__all__ = [
    "Problem",
    "Table",
    "WorkbookIdentity",
    "csv_safe_cell",
    "format_table",
    "read_identity",
    "read_workbook",
    "write_atomically",
    "write_workbook",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """Something in a workbook that needs the person's attention.

    `kind` is a short stable word (`unknown-column`, `not-a-number`, ...) for
    code; `message` is a full sentence for people.
    """

    kind: str
    message: str
    sheet_row: int | None = None
    column: str | None = None


@dataclass(frozen=True)
class Table:
    """The cell text of one sheet, shaped for Synapse's CSV import."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    sheet_rows: tuple[int, ...]
    sheet_name: str | None = None
    problems: tuple[Problem, ...] = ()

    def content_hash(self) -> str:
        """A fingerprint of the cell text only.

        The same cells give the same hash whatever the file format, formatting,
        column order or blank rows, so a save that changed none of them can be
        skipped. Row order counts.
        """
        order = sorted(range(len(self.columns)), key=lambda i: self.columns[i])
        payload = {
            "columns": [self.columns[i] for i in order],
            "rows": [[row[i] for i in order] for row in self.rows],
        }
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def problems_for_row(self, sheet_row: int) -> tuple[Problem, ...]:
        """The problems reported for one sheet row."""
        return tuple(p for p in self.problems if p.sheet_row == sheet_row)


# ---------------------------------------------------------------------------
# From raw rows to a Table


@dataclass
class _Grid:
    """Raw cells of one sheet while a Table is being built."""

    label: str
    sheet_name: str | None
    problems: list[Problem] = field(default_factory=list)
    # Applied to every non-text cell before shaping (see undo_libreoffice_epoch).
    fix: Callable[[CellValue], CellValue] = lambda value: value
    # Cells (row, column; 1-based, whole sheet) whose text is not what the sheet
    # shows, by problem kind; and the sheet column of each row's first value.
    marked: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    first_column: int = 1

    def report(
        self, kind: str, message: str, row: int | None = None, column: str | None = None
    ) -> None:
        where = f" row {row}, column {column}" if row is not None and column else ""
        self.problems.append(
            Problem(kind, f"{self.label}{where}: {message}.", row, column)
        )


def _map_columns(
    grid: _Grid,
    header: Sequence[CellValue],
    data: Sequence[Sequence[CellValue]],
    specs: Mapping[str, ColumnSpec],
) -> list[tuple[int, str, ColumnSpec | None]]:
    """Which sheet columns become table columns, under which names."""
    by_key = {normalize_header(name): spec for name, spec in specs.items()}
    taken: dict[str, str] = {}
    kept: list[tuple[int, str, ColumnSpec | None]] = []
    for index, cell in enumerate(header):
        text = value_text(cell).strip()
        if not text:
            if any(index < len(row) and row[index] != "" for row in data):
                grid.report(
                    "unnamed-column",
                    f"column {index + 1} has values but no header; give it the name "
                    "of a schema property or delete it",
                    column=str(index + 1),
                )
            continue
        spec = by_key.get(normalize_header(text))
        name = spec.name if spec else text
        if name in taken:
            grid.report(
                "duplicate-column",
                f"column {name!r} appears more than once ({taken[name]!r} and "
                f"{text!r}); only the first is read, merge them into one",
                column=name,
            )
            continue
        taken[name] = text
        if specs and spec is None:
            grid.report(
                "unknown-column",
                f"column {text!r} is not in the task's schema; Synapse will ignore it",
                column=text,
            )
        kept.append((index, name, spec))
    for spec in specs.values():
        if spec.name not in taken:
            need = (
                "the task's schema requires it" if spec.required else "it is optional"
            )
            grid.report(
                "missing-column",
                f"column {spec.name!r} is missing; {need}",
                column=spec.name,
            )
    return kept


# Distinct raw values remembered per column while shaping (enums, dates and
# small integers repeat); capped so that columns of unique values stay lean.
_MEMO_LIMIT = 10_000
_MEMO_CLASSES = (str, float, dt.date)
_EXACT_FLOAT = 2.0**53


def _float_text(value: float) -> str:
    # A float that prints exactly in 16 characters has no binary noise.
    if value.is_integer() and -_EXACT_FLOAT <= value <= _EXACT_FLOAT:
        return str(int(value))
    text = repr(value)
    return text if len(text) <= 16 else number_text(value)


def _shape_column(
    grid: _Grid,
    cells: Sequence[CellValue],
    spec: ColumnSpec | None,
    name: str,
    sheet_rows: Sequence[int],
) -> list[str]:
    """Shape one column's cells, reporting the ones that do not fit.

    The common cell of each kind (text in a text column, a float in a number
    column, a boolean in a boolean column) takes an inline path in a
    comprehension; everything else goes through `shape`, which remembers the
    text of repeated values.
    """
    fix = grid.fix
    memo: dict[CellValue, str] = {"": ""}
    kind = spec.kind if spec is not None else "string"
    shaper = SHAPERS.get(kind) if spec is not None else None

    def shape(index: int, value: CellValue) -> str:
        # Only exact classes are remembered, so True never stands in for 1.0.
        remember = value.__class__ in _MEMO_CLASSES
        if remember and value in memo:
            return memo[value]
        try:
            if shaper is None:
                text = value_text(fix(value), spec)
            else:
                text = shaper(fix(value), spec)  # type: ignore[arg-type]
        except CellProblem as problem:
            grid.report(problem.kind, problem.message, sheet_rows[index], name)
            return value_text(value)
        if remember and len(memo) < _MEMO_LIMIT:
            memo[value] = text
        return text

    pairs = enumerate(cells)
    if kind == "string":
        return [
            v if v.__class__ is str else memo[v] if v in memo else shape(i, v)
            for i, v in pairs
        ]
    if kind == "number":
        return [
            _float_text(v) if isinstance(v, float) else shape(i, v) for i, v in pairs
        ]
    if kind == "integer":
        return [
            str(int(v))
            if isinstance(v, float) and v.is_integer() and abs(v) <= _EXACT_FLOAT
            else shape(i, v)
            for i, v in pairs
        ]
    if kind == "boolean":
        return [
            ("true" if v else "false") if v.__class__ is bool else shape(i, v)
            for i, v in pairs
        ]
    return [memo[v] if v in memo else shape(i, v) for i, v in pairs]


_MARKED_MESSAGES = {
    "formula-error": "the formula gives an error (such as #DIV/0! or #N/A), so the "
    "cell would be pushed empty; fix the formula or type the value",
    "merged-cells": "the cell is part of merged cells, so only the first of them has "
    "a value; unmerge them and fill in each row",
    "formula-without-value": "the cell holds a formula that was never calculated "
    "(the file was not saved by Excel or LibreOffice), so it would be pushed empty; "
    "open the file in a spreadsheet program and save it",
}

# C0 control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _report_unsafe_cells(
    grid: _Grid,
    kept: Sequence[tuple[int, str, ColumnSpec | None]],
    columns: Sequence[Sequence[str]],
    sheet_rows: Sequence[int],
    header_row: int,
) -> None:
    """Report cells whose text is not what the person sees, or cannot be stored."""
    names = {grid.first_column + index: name for index, name, _ in kept}
    for kind, positions in grid.marked.items():
        for row, column in sorted(positions):
            if row > header_row and column in names:
                grid.report(kind, _MARKED_MESSAGES[kind], row, names[column])

    # Only text can hold control characters or be too long. Joining a column
    # first keeps the common case (no such cell) to one search.
    for (_, name, spec), cells in zip(kept, columns, strict=True):
        if spec is not None and spec.kind not in ("string", "list"):
            continue
        if not _CONTROL.search("".join(cells)) and max(map(len, cells), default=0) < (
            MAX_CELL_CHARACTERS
        ):
            continue
        for number, text in zip(sheet_rows, cells, strict=True):
            # calamine cuts longer XLSX cells to the limit, so reaching it is a cut.
            if len(text) >= MAX_CELL_CHARACTERS:
                grid.report(
                    "cell-too-long",
                    f"the cell holds {len(text):,} characters, at or over the "
                    f"{MAX_CELL_CHARACTERS:,} a spreadsheet cell can hold, so it may "
                    "have been cut off; shorten it",
                    number,
                    name,
                )
            elif _CONTROL.search(text):
                grid.report(
                    "control-character",
                    "the cell holds a control character (such as a bell or escape "
                    "code) that a spreadsheet cannot store; delete it",
                    number,
                    name,
                )


def _build_table(
    grid: _Grid,
    rows: Iterator[Sequence[CellValue]],
    specs: Mapping[str, ColumnSpec],
    first_row_number: int = 1,
) -> Table:
    """Find the header, drop empty rows and columns, shape every cell."""
    head = [row for _, row in zip(range(HEADER_SEARCH_ROWS), rows, strict=False)]
    header_index, _ = find_header(head, specs)
    if header_index < 0:
        raise WorkbookError(
            f"{grid.label} is empty; type a header row with the task's column "
            "names and the data below it."
        )
    header = head[header_index]

    # Stream the data rows, keeping only rows with a value: trailing rows that
    # only carry formatting (or empty strings) cost nothing to hold.
    numbered = enumerate(
        itertools.chain(head[header_index + 1 :], rows),
        start=first_row_number + header_index + 1,
    )
    kept_rows = [pair for pair in numbered if pair[1].count("") != len(pair[1])]
    sheet_rows = [number for number, _ in kept_rows]
    data = [row for _, row in kept_rows]
    del kept_rows
    if not data:
        grid.report("no-rows", "there is a header but no data rows; nothing to push")

    kept = _map_columns(grid, header, data, specs)
    width = max(len(header), *(len(row) for row in data)) if data else len(header)
    # CSV rows can be short; zip(*rows) would cut every column to the shortest.
    if any(len(row) != width for row in data):
        data = [[*row, *[""] * (width - len(row))] for row in data]
    columns: list[list[str]] = []
    for index, name, spec in kept:
        cells = list(map(operator.itemgetter(index), data))
        columns.append(_shape_column(grid, cells, spec, name, sheet_rows))
    _report_unsafe_cells(
        grid, kept, columns, sheet_rows, first_row_number + header_index
    )
    return Table(
        columns=tuple(name for _, name, _ in kept),
        rows=tuple(zip(*columns, strict=True)) if columns else tuple(() for _ in data),
        sheet_rows=tuple(sheet_rows),
        sheet_name=grid.sheet_name,
        problems=tuple(grid.problems),
    )


def _read_csv(path: Path, specs: Mapping[str, ColumnSpec], grid: _Grid) -> Table:
    rows, fell_back = parse_csv(path, grid.label)
    if fell_back:
        grid.report(
            "encoding",
            "the file is not UTF-8, so it was read as Windows-1252; save it as CSV "
            "UTF-8 so that every character survives",
        )
    return _build_table(grid, iter(rows), specs)


# ---------------------------------------------------------------------------
# XLSX


def _merged_cells(worksheet: CalamineSheet) -> set[tuple[int, int]]:
    """Every cell of each merged range, within the sheet's data.

    The first cell holds the value, but the person meant it for every row the
    range covers, so all of them are reported.
    """
    end = worksheet.end
    if end is None:
        return set()
    # A range can cover whole columns; only the part with data matters.
    last_row, last_column = end[0] + 1, end[1] + 1
    return {
        (row, column)
        for (top, left), (bottom, right) in worksheet.merged_cell_ranges or ()
        for row in range(top + 1, min(bottom + 1, last_row) + 1)
        for column in range(left + 1, min(right + 1, last_column) + 1)
    }


def _read_xlsx(
    path: Path, specs: Mapping[str, ColumnSpec], sheet: str | None, grid: _Grid
) -> Table:
    book = open_workbook(path, grid.label)
    with book:
        try:
            worksheet = pick_sheet(book, specs, sheet, grid.label)
            if written_by_libreoffice(path):
                grid.fix = undo_libreoffice_epoch
            grid.sheet_name = worksheet.name
            marks = sheet_marks(path, worksheet.name)
            grid.marked = {
                "formula-error": set(marks.errors),
                "formula-without-value": set(marks.uncalculated),
                "merged-cells": _merged_cells(worksheet),
            }
            start = worksheet.start
            grid.first_column = start[1] + 1 if start else 1
            # iter_rows starts at the sheet's first row, even when it is empty.
            return _build_table(grid, worksheet.iter_rows(), specs)
        except CalamineError as error:
            raise WorkbookError(
                f"{grid.label} is not a readable workbook ({error}); open it in Excel "
                "and save it again."
            ) from None


def read_workbook(
    path: Path,
    *,
    schema: Mapping[str, Any] | None = None,
    sheet: str | None = None,
) -> Table:
    """Read a CSV or XLSX workbook into the cell text Synapse's import wants.

    Args:
        path: the workbook (`.csv`; anything else is read as a spreadsheet).
        schema: the JSON schema bound to the task's record set; headers are
            matched to its properties and cells shaped by their types.
        sheet: the data sheet's name; by default the first visible sheet whose
            header matches the schema.

    Raises:
        WorkbookError: the file cannot be read at all (damaged, encrypted,
            empty, binary, no matching sheet). Cell and column issues are
            `Table.problems` instead.
    """
    specs = column_specs(schema)
    grid = _Grid(label=path.name, sheet_name=None)
    if path.suffix.lower() == ".csv":
        return _read_csv(path, specs, grid)
    return _read_xlsx(path, specs, sheet, grid)


def format_table(table: Table, fmt: str = "csv") -> str:
    """The table as the `read` command prints it: CSV as pushed, or JSON."""
    if fmt == "json":
        document = {
            "sheet": table.sheet_name,
            "columns": list(table.columns),
            "rows": [list(row) for row in table.rows],
            "sheet_rows": list(table.sheet_rows),
            "problems": [
                {
                    "kind": p.kind,
                    "message": p.message,
                    "sheet_row": p.sheet_row,
                    "column": p.column,
                }
                for p in table.problems
            ],
        }
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if fmt != "csv":
        raise ValueError(f"unknown table format {fmt!r}; use csv or json")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buffer.getvalue()
