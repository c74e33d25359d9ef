"""The XLSX file around the cells: opening it, its data sheet, who wrote it, errors.

calamine reads cell values fast but drops two facts that matter for faithful
reading. A formula whose cached result is an error (`#DIV/0!`, `#N/A`) comes
back as an empty string, which would push an empty cell over the value on
Synapse; and the program that saved the file decides how date serials before
March 1900 are meant. Both are found here from the zip itself: the error scan
streams the sheet's XML once looking for `t="e"` (about 0.3 s for 87 MB of XML,
run while calamine loads the sheet) and parses only when it finds one. The
same pass tells whether any text can hold a control character.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    SheetVisibleEnum,
)

from curation_sync.cells import HEADER_SEARCH_ROWS, CellValue, ColumnSpec, find_header
from curation_sync.errors import WorkbookError

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_ERROR_MARK = b't="e"'
_FORMULA_MARK = b"<f"
_STRING_RESULT = b't="str"'
# A formula cell whose value is missing or empty.
_FORMULA_CELL = re.compile(
    rb"<c\b([^>]*)>\s*<f\b[^>]*(?:/>|>[^<]*</f>)\s*(?:<v\s*/>|<v>\s*</v>)?\s*</c>"
)
_CELL = re.compile(rb"<c\b([^>]*)>")
_REF = re.compile(rb'\br="([A-Z]+)([0-9]+)"')
_CHUNK = 1 << 20
# XML 1.0 cannot hold C0 control characters, so OOXML writes them as escapes
# such as `_x0007_` (tab, line feed and carriage return are allowed as they
# are); DEL may appear raw. A character reference (`&#7;`) is not valid XML
# but is looked for too.
_ESCAPE_MARK = b"_x00"
_DEL_MARK = b"\x7f"
_REFERENCE_MARK = b"&#"
_CONTROL_ESCAPE = re.compile(rb"_x00(?:0[0-8BCEFbcef]|1[0-9A-Fa-f]|7[Ff])_")
_CONTROL_ESCAPE_LENGTH = 7
_TEXT_MARKS = frozenset((_ESCAPE_MARK, _DEL_MARK, _REFERENCE_MARK))


def _password_message(label: str) -> str:
    return (
        f"{label} is password-protected; remove the password in Excel "
        "(File > Info > Protect Workbook) and save again."
    )


def open_workbook(path: Path, label: str) -> CalamineWorkbook:
    """Open an XLSX with calamine, turning every failure into a clear WorkbookError."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(8)
    except OSError as error:
        raise WorkbookError(
            f"Could not read {label} ({error.strerror}); check that it exists "
            "and is readable."
        ) from None
    if not magic:
        raise WorkbookError(
            f"{label} is empty (0 bytes); save the workbook again from Excel or "
            "LibreOffice."
        )
    # An encrypted XLSX is an OLE compound file holding the encrypted package.
    if magic == OLE_MAGIC and path.suffix.lower() in (".xlsx", ".xlsm"):
        raise WorkbookError(_password_message(label))
    if magic.startswith(ZIP_MAGIC) and _has_macros(path):
        raise WorkbookError(
            f"{label} is a macro-enabled workbook saved under an .xlsx name; "
            "curation-sync neither reads nor keeps macros. Save a copy without macros "
            "(File > Save As > Excel Workbook) and work in that."
        )
    try:
        return CalamineWorkbook.from_path(str(path))
    except CalamineError as error:
        if "password" in str(error).lower():
            raise WorkbookError(_password_message(label)) from None
        raise WorkbookError(
            f"{label} is not a readable workbook ({error}); it may be damaged or "
            "still being copied. Open it in Excel and save it again."
        ) from None


def _has_macros(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                name.lower().endswith("vbaproject.bin") for name in archive.namelist()
            )
    except (OSError, zipfile.BadZipFile):
        return False


def written_by_libreoffice(path: Path) -> bool:
    """Whether LibreOffice saved the file last (docProps/app.xml says so)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return b"LibreOffice" in archive.read("docProps/app.xml")[:4096]
    except (KeyError, OSError, zipfile.BadZipFile):
        return False


# Serials 59 and 60 both read as 1900-02-28 (60 is Excel's fictional 1900-02-29),
# so only dates before that day can be moved back safely.
_LIBREOFFICE_SHIFT_END = dt.date(1900, 2, 28)


def undo_libreoffice_epoch(value: CellValue) -> CellValue:
    """A date LibreOffice wrote, as the day it showed.

    LibreOffice counts serial days from 1899-12-30 without Excel's fictional
    1900-02-29, so the dates it writes before March 1900 read one day late.
    """
    if isinstance(value, dt.datetime):
        late = value.date() < _LIBREOFFICE_SHIFT_END
    else:
        late = isinstance(value, dt.date) and value < _LIBREOFFICE_SHIFT_END
    return value - dt.timedelta(days=1) if late else value  # type: ignore[operator]


def _workbook_targets(archive: zipfile.ZipFile) -> dict[str, tuple[str, str]]:
    """The workbook's relationships: id to (type, zip member)."""
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {}
    for rel in rels.iter(f"{_PACKAGE_REL}Relationship"):
        target = rel.get("Target", "")
        if target.startswith("/"):
            member = target.lstrip("/")
        else:
            member = posixpath.normpath(posixpath.join("xl", target))
        targets[rel.get("Id", "")] = (rel.get("Type", ""), member)
    return targets


def _sheet_part(archive: zipfile.ZipFile, sheet_name: str) -> str | None:
    """The zip member holding the sheet called `sheet_name`."""
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    rel_id = next(
        (
            sheet.get(_REL_ID)
            for sheet in book.iter(f"{_MAIN}sheet")
            if sheet.get("name") == sheet_name
        ),
        None,
    )
    found = _workbook_targets(archive).get(rel_id or "")
    return found[1] if found else None


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _marks_in(
    archive: zipfile.ZipFile, part: str, wanted: frozenset[bytes]
) -> set[bytes]:
    """Which of the `wanted` marks occur in a member, in one pass."""
    found: set[bytes] = set()
    tail = b""
    overlap = max(map(len, wanted)) + _CONTROL_ESCAPE_LENGTH
    with archive.open(part) as stream:
        while (chunk := stream.read(_CHUNK)) and found != wanted:
            window = tail + chunk
            hits = {mark for mark in wanted - found if mark in window}
            # Every escape starts with `_x00`; only some codes are controls.
            if _ESCAPE_MARK in hits and not _CONTROL_ESCAPE.search(window):
                hits.discard(_ESCAPE_MARK)
            found |= hits
            tail = chunk[-overlap:]
    return found


def _text_parts(archive: zipfile.ZipFile) -> list[str]:
    """The shared strings part (the text of most cells), as the workbook names it."""
    return [
        member
        for kind, member in _workbook_targets(archive).values()
        if kind.endswith("/sharedStrings")
    ]


@dataclass(frozen=True)
class SheetMarks:
    """Cells whose value calamine cannot show faithfully, as (row, column), 1-based."""

    # A formula whose stored result is an error value such as #DIV/0!.
    errors: frozenset[tuple[int, int]] = frozenset()
    # A formula stored without any result (written by a program with no
    # calculation engine, such as openpyxl); a string result, even an empty one,
    # is marked t="str" and is not counted.
    uncalculated: frozenset[tuple[int, int]] = frozenset()
    # Whether any cell text may hold a control character; when False, the
    # cells need not be searched for one.
    control_text: bool = True


def sheet_marks(path: Path, sheet_name: str) -> SheetMarks:
    """Find error and uncalculated formula cells of one sheet, and control text.

    The sheet's XML is streamed once looking for `t="e"` and `<f` (and, with
    the shared strings, for escaped control characters); it is read whole and
    searched only when one of the first two occurs.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            part = _sheet_part(archive, sheet_name)
            if part is None:
                return SheetMarks()
            found = _marks_in(archive, part, _TEXT_MARKS | {_ERROR_MARK, _FORMULA_MARK})
            for text_part in _text_parts(archive):
                found |= _marks_in(archive, text_part, _TEXT_MARKS)
            control_text = bool(found & _TEXT_MARKS)
            if not found & {_ERROR_MARK, _FORMULA_MARK}:
                return SheetMarks(control_text=control_text)
            xml = archive.read(part)
    except (KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError):
        return SheetMarks()

    errors: set[tuple[int, int]] = set()
    if _ERROR_MARK in found:
        for match in _CELL.finditer(xml):
            attributes = match.group(1)
            if _ERROR_MARK in attributes and (ref := _REF.search(attributes)):
                errors.add((int(ref.group(2)), _column_number(ref.group(1))))
    uncalculated: set[tuple[int, int]] = set()
    if _FORMULA_MARK in found:
        for match in _FORMULA_CELL.finditer(xml):
            attributes = match.group(1)
            if _STRING_RESULT not in attributes and (ref := _REF.search(attributes)):
                uncalculated.add((int(ref.group(2)), _column_number(ref.group(1))))
    return SheetMarks(frozenset(errors), frozenset(uncalculated), control_text)


def _named(names: list[str], wanted: str) -> str | None:
    for name in names:
        if name == wanted or name.casefold() == wanted.strip().casefold():
            return name
    return None


def likely_sheet(book: CalamineWorkbook, wanted: str | None) -> str | None:
    """The sheet `pick_sheet` most likely returns, known without loading any sheet.

    It is the one named, else the first visible sheet; the error scan of that
    sheet can then run while calamine loads it.
    """
    if wanted is not None:
        return _named([meta.name for meta in book.sheets_metadata], wanted)
    visible = (
        meta.name
        for meta in book.sheets_metadata
        if meta.visible == SheetVisibleEnum.Visible
    )
    return next(visible, None)


def pick_sheet(
    book: CalamineWorkbook,
    specs: Mapping[str, ColumnSpec],
    wanted: str | None,
    label: str,
) -> CalamineSheet:
    """The data sheet: the one named, or the first whose header fits the schema."""
    names = [meta.name for meta in book.sheets_metadata]
    if wanted is not None:
        if (name := _named(names, wanted)) is not None:
            return book.get_sheet_by_name(name)
        raise WorkbookError(
            f"{label} has no sheet named {wanted!r}; its sheets are "
            f"{', '.join(map(repr, names))}. Fix the sheet name in the configuration."
        )
    visible = [
        meta.name
        for meta in book.sheets_metadata
        if meta.visible == SheetVisibleEnum.Visible
    ]
    if not visible:
        raise WorkbookError(f"{label} has no visible sheet; unhide the data sheet.")
    if not specs:
        return book.get_sheet_by_name(visible[0])

    # The first sheet whose header names at least half of the schema's
    # properties wins; otherwise the best partial match. Loading a sheet
    # parses all of it, so the loaded sheet is what is returned.
    enough = max(1, (len(specs) + 1) // 2)
    best: CalamineSheet | None = None
    best_score = 0
    for name in visible:
        candidate = book.get_sheet_by_name(name)
        head = zip(range(HEADER_SEARCH_ROWS), candidate.iter_rows(), strict=False)
        _, score = find_header([row for _, row in head], specs)
        if score >= enough:
            return candidate
        if score > best_score:
            best, best_score = candidate, score
    if best is not None:
        return best
    raise WorkbookError(
        f"{label} has no sheet whose header matches the task's columns "
        f"({', '.join(list(specs)[:6])}); put the header in the first rows of the "
        "data sheet or set the sheet name in the configuration."
    )
