"""CSV files: bytes to rows of text, with the encoding and delimiter detected.

Design notes. Nothing about a CSV says how it is encoded, so the order is fixed
and the fallback is reported: a byte-order mark (UTF-8, UTF-16 LE or BE) wins;
then strict UTF-8; then Windows-1252, which is what Excel writes for "CSV" on
Western Windows, and the caller reports it. The delimiter is the one of `,`
`;` and tab that splits the header into most fields and the following lines
into the same number. Files that are not text, or that look cut short by an
interrupted copy, are refused rather than half read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from curation_sync.errors import WorkbookError
from curation_sync.spreadsheet import FORMULA_PREFIXES
from curation_sync.xlsxzip import OLE_MAGIC, ZIP_MAGIC

BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def decode_csv(data: bytes, label: str) -> tuple[str, bool]:
    """The text of a CSV file, and whether it was read as the cp1252 fallback."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), False
            except UnicodeDecodeError as error:
                raise WorkbookError(
                    f"{label} starts with a {encoding} byte-order mark but is not "
                    f"valid {encoding} ({error.reason}); save it again as CSV UTF-8."
                ) from None
    if data.startswith((ZIP_MAGIC, OLE_MAGIC)):
        raise WorkbookError(
            f"{label} is an Excel workbook with a .csv name; rename it to .xlsx "
            "or save it from Excel as CSV UTF-8."
        )
    if b"\x00" in data:
        raise WorkbookError(
            f"{label} is not a text file (it holds binary data); save the sheet "
            "as CSV UTF-8 and try again."
        )
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise WorkbookError(
            f"{label} is neither UTF-8 nor Windows-1252 text; save it as CSV "
            "UTF-8 and try again."
        ) from None
    return text, True


def sniff_delimiter(text: str) -> str:
    """The delimiter (`,` `;` or tab) that splits the top lines most consistently."""
    sample = text[:65536]
    best, best_score = ",", (0, 0)
    for delimiter in (",", ";", "\t"):
        try:
            rows = [
                row
                for _, row in zip(
                    range(20),
                    csv.reader(io.StringIO(sample), delimiter=delimiter),
                    strict=False,
                )
                if row
            ]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        agreeing = sum(1 for row in rows[1:-1] if len(row) == width)
        score = (width if width > 1 else 0, agreeing)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def parse_csv(path: Path, label: str) -> tuple[list[list[str]], bool]:
    """The rows of a CSV file, and whether it was read as the cp1252 fallback.

    Raises:
        WorkbookError: the file is unreadable, binary, empty, an XLSX in
            disguise, malformed or cut short.
    """
    text, fell_back = decode_csv(read_bytes(path, label), label)
    if not text.strip():
        raise WorkbookError(
            f"{label} is empty; type a header row with the task's column names "
            "and the data below it."
        )
    delimiter = sniff_delimiter(text)
    # strict: a quote left open swallows every later row into one cell.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise WorkbookError(
            f"{label} is not a well-formed CSV file ({error}); save it again as "
            "CSV UTF-8."
        ) from None
    if "'" in text:
        rows = [[_unescape_csv_cell(cell) for cell in row] for row in rows]
    refuse_cut_short(label, text, rows)
    return rows, fell_back


def csv_safe_cell(text: str) -> str:
    """Cell text for a CSV file that a spreadsheet will not run as a formula.

    Text starting with `=`, `+`, `-`, `@`, tab or CR (other than a plain number)
    gets a leading apostrophe, the usual defence; reading the CSV back removes it,
    so the value round-trips unchanged.
    """
    if text.startswith(FORMULA_PREFIXES) and not _plain_number(text):
        return "'" + text
    return text


def _unescape_csv_cell(text: str) -> str:
    if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES):
        return text[1:]
    return text


def _plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


def refuse_cut_short(label: str, text: str, rows: Sequence[Sequence[str]]) -> None:
    """Refuse a CSV file whose last line looks like an interrupted write."""
    filled = [row for row in rows if any(cell.strip() for cell in row)]
    if len(filled) < 2 or text.endswith(("\n", "\r")):
        return
    if len(filled[-1]) < len(filled[0]):
        raise WorkbookError(
            f"{label} looks cut short: its last line has {len(filled[-1])} of "
            f"the {len(filled[0])} columns and no line end, as when a copy or save "
            "is interrupted; save the file again completely."
        )


def read_bytes(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise WorkbookError(
            f"Could not read {label} ({error.strerror}); check that it exists "
            "and is readable."
        ) from None
