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
  Calamine already ignores value-less formatted cells; a sheet's cells are
  loaded whole up to 4M of them and streamed beyond, dropping rows of empty
  strings, so a sheet claiming a million rows stays cheap.
- Cells are shaped a column at a time, each distinct value once, so most of
  the work runs in C (maps, sets, `repr`); the cycle collector is paused
  meanwhile, since none of the row and column containers can form a cycle.
- Writing (pull) lives in `spreadsheet.py` and cell shaping in `cells.py`;
  this module re-exports the writing API so callers have one import.

Limitations:
    calamine gives formula errors (`#DIV/0!`) and formulas saved without a
    cached value (by openpyxl) as empty text; `xlsxzip.sheet_marks` finds
    them in the zip so they are reported rather than pushed empty. A date
    LibreOffice shows as 1900-02-27 reads as 1900-02-28 (its serial and that
    of Excel's fictional 1900-02-29 both read as the 28th).
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import hashlib
import io
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

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
    likely_sheet,
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
    # False when the file is known to hold no control character in any text.
    control_text: bool = True

    def report(
        self, kind: str, message: str, row: int | None = None, column: str | None = None
    ) -> None:
        where = f" row {row}, column {column}" if row is not None and column else ""
        self.problems.append(
            Problem(kind, f"{self.label}{where}: {message}.", row, column)
        )


@dataclass(frozen=True)
class _Sheet:
    """A loaded sheet's cells in one list, row after row, every row `width` wide."""

    cells: list[CellValue]
    width: int
    # The sheet row number of the first row.
    first_row: int

    def row(self, index: int) -> list[CellValue]:
        return self.cells[index * self.width : (index + 1) * self.width]


@dataclass(frozen=True)
class _Body:
    """The data rows under the header, without blank rows, flat as in `_Sheet`.

    A column is then one slice of the list: about twice as quick as
    zip(*rows), which steps through a hundred thousand row iterators.
    """

    cells: list[CellValue]
    width: int
    sheet_rows: list[int]
    # Where the first row starts in `cells` (after the header, when the list
    # is the whole sheet's).
    offset: int = 0

    def column(self, index: int) -> list[CellValue]:
        return self.cells[self.offset + index :: self.width]


# Up to this many columns unknown to the schema get a line each; more get one
# line between them (a sheet can have 16,384 columns).
_UNKNOWN_COLUMNS_NAMED = 10


def _report_unnamed(grid: _Grid, index: int, body: _Body) -> None:
    cells = body.column(index)
    if cells.count("") != len(cells):
        grid.report(
            "unnamed-column",
            f"column {index + 1} has values but no header; give it the name "
            "of a schema property or delete it",
            column=str(index + 1),
        )


def _map_columns(
    grid: _Grid,
    header: Sequence[CellValue],
    body: _Body,
    specs: Mapping[str, ColumnSpec],
) -> list[tuple[int, str, ColumnSpec | None]]:
    """Which sheet columns become table columns, under which names."""
    by_key = {normalize_header(name): spec for name, spec in specs.items()}
    taken: dict[str, str] = {}
    kept: list[tuple[int, str, ColumnSpec | None]] = []
    unknown: list[str] = []
    for index, cell in enumerate(header):
        text = value_text(cell).strip()
        if not text:
            _report_unnamed(grid, index, body)
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
            unknown.append(text)
        kept.append((index, name, spec))
    if len(unknown) > _UNKNOWN_COLUMNS_NAMED:
        shown = ", ".join(map(repr, unknown[:_UNKNOWN_COLUMNS_NAMED]))
        grid.report(
            "unknown-column",
            f"{len(unknown):,} columns are not in the task's schema ({shown}, ...); "
            "Synapse will ignore them",
        )
        unknown = []
    for text in unknown:
        grid.report(
            "unknown-column",
            f"column {text!r} is not in the task's schema; Synapse will ignore it",
            column=text,
        )
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


# Numeric cell classes that compare equal across classes (True == 1 == 1.0);
# a column mixing them is shaped by (class, value) so that no value stands in
# for another.
_NUMERIC_CLASSES = frozenset((bool, int, float))
_EXACT_FLOAT = 2.0**53


def _float_text(value: float) -> str:
    # A float that prints exactly in 16 characters has no binary noise.
    if value.is_integer() and -_EXACT_FLOAT <= value <= _EXACT_FLOAT:
        return str(int(value))
    text = repr(value)
    return text if len(text) <= 16 else number_text(value)


def _number_texts(cells: Sequence[float]) -> list[str]:
    """A column of floats as number text; the same as `_float_text`, cell by cell.

    `repr` runs in C over the whole column. A repr of at most 16 characters
    has no binary noise; if it ends in `.0` it is a whole number below 10**14
    whose digits are exact. Anything else (`-0.0`, exponents, long reprs)
    takes `_float_text`.
    """
    return [
        text
        if text[-1] != "0" and len(text) <= 16
        else text[:-2]
        if text[-2:] == ".0" and len(text) <= 16 and text != "-0.0"
        else _float_text(value)
        for value, text in zip(cells, map(repr, cells), strict=True)
    ]


def _integer_texts(values: Sequence[float]) -> list[str | None]:
    """Whole floats as integer text, as `_shape_integer` gives it; None for others."""
    return [
        str(int(value))
        if value.is_integer() and -_EXACT_FLOAT <= value <= _EXACT_FLOAT
        else None
        for value in values
    ]


def _longest_text(cells: Sequence[CellValue]) -> int | None:
    """The length of the longest cell if every cell is text, else None.

    Only text has a length among cell values, so one pass answers both.
    """
    try:
        return max(map(len, cells), default=0)  # type: ignore[arg-type]
    except TypeError:
        return None


def _shape_column(
    grid: _Grid,
    cells: Sequence[CellValue],
    spec: ColumnSpec | None,
    name: str,
    sheet_rows: Sequence[int],
) -> tuple[Sequence[str], int | None]:
    """Shape one column's cells, reporting the ones that do not fit.

    Returns the shaped column and, when it is the cells as they were, the
    length of its longest cell (None when that is not known yet).

    Columns repeat values (enums, dates, small integers), so each distinct
    value is shaped once and the column is then mapped through the results in
    C; floats in number and integer columns are printed a column at a time.
    Two common columns skip even that: text in a text column is kept as it
    is, and a number column of floats only is printed in one pass.
    """
    kind = spec.kind if spec is not None else "string"
    if kind == "string" and (longest := _longest_text(cells)) is not None:
        return cells, longest  # type: ignore[return-value]
    if kind == "number" and set(map(type, cells)) == {float}:
        return _number_texts(cells), None  # type: ignore[arg-type]

    distinct: set[Any] = set(cells)
    classes = set(map(type, distinct))
    if classes & _NUMERIC_CLASSES:
        # Equal values of two classes (True == 1.0) share one entry of the set.
        classes = set(map(type, cells))
    if spec is not None and spec.format is not None and classes <= {str, dt.date}:
        # Dates in a date column: ISO text of each distinct day, text kept.
        days = [value for value in distinct if value.__class__ is not str]
        fixed = cast(list[dt.date], list(map(grid.fix, days)))
        iso = dict(zip(days, map(dt.date.isoformat, fixed), strict=True))
        return list(map(iso.get, cells, cells)), None

    keys: Sequence[Any] = cells
    texts: dict[Any, str] = {}
    if len(classes & _NUMERIC_CLASSES) > 1:
        keys = list(zip(map(type, cells), cells, strict=True))
        distinct = set(keys)
    elif kind in ("number", "integer"):
        floats = [value for value in distinct if value.__class__ is float]
        printed = _number_texts(floats) if kind == "number" else _integer_texts(floats)
        texts = {v: t for v, t in zip(floats, printed, strict=True) if t is not None}
    fix = grid.fix
    shaper = SHAPERS.get(kind) if spec is not None else None
    failed: dict[Any, CellProblem] = {}
    for key in distinct:
        if key in texts:
            continue
        value = key[1] if keys is not cells else key
        if value.__class__ is str and (kind == "string" or value == ""):
            texts[key] = value
            continue
        try:
            if shaper is None:
                texts[key] = value_text(fix(value), spec)
            else:
                texts[key] = shaper(fix(value), spec)  # type: ignore[arg-type]
        except CellProblem as problem:
            failed[key] = problem
            texts[key] = value_text(value)
    if failed:
        for index, key in enumerate(keys):
            if key in failed:
                found = failed[key]
                grid.report(found.kind, found.message, sheet_rows[index], name)
    return list(map(texts.__getitem__, keys)), None


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
    longest: Sequence[int | None],
    sheet_rows: Sequence[int],
    header_row: int,
) -> None:
    """Report cells whose text is not what the person sees, or cannot be stored.

    `longest` holds each column's longest cell where shaping already knows it.
    """
    names = {grid.first_column + index: name for index, name, _ in kept}
    for kind, positions in grid.marked.items():
        for row, column in sorted(positions):
            if row > header_row and column in names:
                grid.report(kind, _MARKED_MESSAGES[kind], row, names[column])

    # Only text can hold control characters or be too long. Joining a column
    # first keeps the common case (no such cell) to one search, and the XLSX
    # scan can rule control characters out without it.
    for (_, name, spec), cells, known in zip(kept, columns, longest, strict=True):
        if spec is not None and spec.kind not in ("string", "list"):
            continue
        control = grid.control_text and _CONTROL.search("".join(cells))
        if known is None:
            known = max(map(len, cells), default=0)
        if not control and known < MAX_CELL_CHARACTERS:
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


def _non_blank_rows(
    rows: Iterable[Sequence[CellValue]], first: int
) -> tuple[list[Sequence[CellValue]], list[int]]:
    """The rows holding a value, and their sheet row numbers.

    The rows are streamed, so trailing rows that only carry formatting (or
    empty strings) cost nothing to hold.
    """
    pairs = [
        pair
        for pair in enumerate(rows, start=first)
        if (row := pair[1]) and (row[0] != "" or row.count("") != len(row))
    ]
    return [row for _, row in pairs], [number for number, _ in pairs]


def _body_of_rows(
    rows: Sequence[Sequence[CellValue]], sheet_rows: list[int], width: int
) -> _Body:
    """Rows of any widths (CSV rows can be short or long), padded to the longest.

    `width` is the header's; a row longer than it widens the body.
    """
    widths = set(map(len, rows))
    if widths - {width}:
        width = max(width, *widths)
        rows = [[*row, *[""] * (width - len(row))] for row in rows]
    return _Body(list(itertools.chain.from_iterable(rows)), width, sheet_rows)


def _body_of_sheet(sheet: _Sheet, start: int) -> _Body:
    """The sheet's rows from row index `start` on, without its blank rows.

    The first cell decides most rows without looking at the others, for all
    of them at once. The sheet's list is only copied when it has blank rows.
    """
    width = sheet.width
    cells = sheet.cells
    firsts = cells[start * width :: width]
    numbers = list(
        range(sheet.first_row + start, sheet.first_row + start + len(firsts))
    )
    blank = set()
    if "" in firsts:
        blank = {
            index
            for index, first in enumerate(firsts)
            if first == "" and sheet.row(start + index).count("") == width
        }
    if not blank:
        return _Body(cells, width, numbers, offset=start * width)
    kept = [index for index in range(len(firsts)) if index not in blank]
    rows = (sheet.row(start + index) for index in kept)
    return _Body(
        list(itertools.chain.from_iterable(rows)),
        width,
        [numbers[index] for index in kept],
    )


_Rows = tuple[Iterable[Sequence[CellValue]], int]


def _head_and_body(
    grid: _Grid, loaded: _Sheet | _Rows, specs: Mapping[str, ColumnSpec]
) -> tuple[Sequence[CellValue], _Body, int]:
    """The header row, the data rows under it and the header's sheet row number."""
    if isinstance(loaded, _Sheet):
        count = min(HEADER_SEARCH_ROWS, len(loaded.cells) // loaded.width)
        head: list[Sequence[CellValue]] = [loaded.row(index) for index in range(count)]
        first_row = loaded.first_row
    else:
        rows, first_row = loaded
        stream = iter(rows)
        head = [row for _, row in zip(range(HEADER_SEARCH_ROWS), stream, strict=False)]
    header_index, _ = find_header(head, specs)
    if header_index < 0:
        raise WorkbookError(
            f"{grid.label} is empty; type a header row with the task's column "
            "names and the data below it."
        )
    header = head[header_index]

    if isinstance(loaded, _Sheet):
        body = _body_of_sheet(loaded, header_index + 1)
    else:
        below = itertools.chain(head[header_index + 1 :], stream)
        data, sheet_rows = _non_blank_rows(below, first_row + header_index + 1)
        body = _body_of_rows(data, sheet_rows, len(header))
    return header, body, first_row + header_index


def _build_table(
    grid: _Grid, load: Callable[[], _Sheet | _Rows], specs: Mapping[str, ColumnSpec]
) -> Table:
    """Find the header, drop empty rows and columns, shape every cell.

    `load` gives the sheet's cells. They are loaded here, not passed in, so
    that nothing else holds them: the sheet's list is freed once the cells
    are in columns, and each column's raw cells once it is shaped, which
    keeps the peak memory of a read down.
    """
    header, body, header_row = _head_and_body(grid, load(), specs)
    if not body.sheet_rows:
        grid.report("no-rows", "there is a header but no data rows; nothing to push")

    kept = _map_columns(grid, header, body, specs)
    # Values beyond the header's last cell (a CSV row longer than its header).
    for index in range(len(header), body.width):
        _report_unnamed(grid, index, body)
    raw = [body.column(index) for index, _, _ in kept]
    sheet_rows = body.sheet_rows
    del body

    columns: list[Sequence[str]] = []
    longest: list[int | None] = []
    for index, (_, name, spec) in enumerate(kept):
        cells, raw[index] = raw[index], []
        column, known = _shape_column(grid, cells, spec, name, sheet_rows)
        columns.append(column)
        longest.append(known)
    _report_unsafe_cells(grid, kept, columns, longest, sheet_rows, header_row)
    rows_text = zip(*columns, strict=True) if columns else (() for _ in sheet_rows)
    return Table(
        columns=tuple(name for _, name, _ in kept),
        rows=tuple(rows_text),
        sheet_rows=tuple(sheet_rows),
        sheet_name=grid.sheet_name,
        problems=tuple(grid.problems),
    )


def _read_csv(path: Path, specs: Mapping[str, ColumnSpec], grid: _Grid) -> Table:
    def load() -> _Rows:
        rows, fell_back = parse_csv(path, grid.label)
        if fell_back:
            grid.report(
                "encoding",
                "the file is not UTF-8, so it was read as Windows-1252; save it as "
                "CSV UTF-8 so that every character survives",
            )
        return rows, 1

    return _build_table(grid, load, specs)


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


# Sheets up to this many cells are loaded whole (faster than row by row); a
# larger range, such as formatting claimed down to row 1,048,576, is streamed.
_WHOLE_SHEET_CELLS = 4_000_000


def _load_sheet(worksheet: CalamineSheet) -> _Sheet | _Rows:
    """The sheet's cells in one list, or its rows streamed when there are many."""
    start, end = worksheet.start, worksheet.end
    if start is not None and end is not None:
        height, width = end[0] - start[0] + 1, end[1] - start[1] + 1
        if height * width <= _WHOLE_SHEET_CELLS:
            # iter_rows starts at the sheet's first row, even when it is empty,
            # and at the first column with data. Chaining its rows into one list
            # never holds a list per row, unlike to_python().
            rows = itertools.islice(worksheet.iter_rows(), start[0], None)
            cells = list(itertools.chain.from_iterable(rows))
            if len(cells) == height * width:
                return _Sheet(cells, width, start[0] + 1)
    # A larger sheet (or one whose rows are not all as wide) is streamed.
    return worksheet.iter_rows(), 1


def _read_xlsx(
    path: Path, specs: Mapping[str, ColumnSpec], sheet: str | None, grid: _Grid
) -> Table:
    book = open_workbook(path, grid.label)
    with book, ThreadPoolExecutor(max_workers=1) as pool:
        # The error scan reads the zip while calamine (which releases the GIL)
        # loads the sheet, so on two cores it costs no time.
        guess = likely_sheet(book, sheet)
        early = pool.submit(sheet_marks, path, guess) if guess is not None else None
        try:
            worksheet = pick_sheet(book, specs, sheet, grid.label)
            if written_by_libreoffice(path):
                grid.fix = undo_libreoffice_epoch
            grid.sheet_name = worksheet.name
            if early is not None and guess == worksheet.name:
                marks = early.result()
            else:
                marks = sheet_marks(path, worksheet.name)
            grid.control_text = marks.control_text
            grid.marked = {
                "formula-error": set(marks.errors),
                "formula-without-value": set(marks.uncalculated),
                "merged-cells": _merged_cells(worksheet),
            }
            start = worksheet.start
            grid.first_column = start[1] + 1 if start else 1
            return _build_table(grid, lambda: _load_sheet(worksheet), specs)
        except CalamineError as error:
            raise WorkbookError(
                f"{grid.label} is not a readable workbook ({error}); open it in Excel "
                "and save it again."
            ) from None


_collector_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = True


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a sheet becomes Python objects.

    A read makes a list per sheet row, a tuple per table row and a list per
    column, and none of them can form a cycle; with the collector running, its
    passes over all of them took about a third of the time spent after
    calamine. Reads in several threads share one pause, and a collector that
    was off stays off.

    When the pause ends, everything the read made is still in the youngest
    generation, so the next collection would walk every cell of the table
    (about 80 ms for 100,000 x 20 cells, nearly all of it cache misses) only to
    find that rows of text are not garbage. freeze() then unfreeze() moves all
    young objects to the oldest generation at once instead. A table is usually
    freed by its reference count before a full collection looks at it, and
    any cycle among the moved objects is still found by that collection.
    Objects that someone else froze stay frozen.
    """
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()


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
    with _collector_paused():
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
