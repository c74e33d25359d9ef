"""Hostile and broken workbooks, made on the fly into a folder.

Each `Hostile` writes one file named `hostile_<name>.<ext>` whose rows (where it has
readable rows at all) agree with the demo record set, so that nothing in it is a
legitimate edit: whatever the daemon pushes from it would be damage. `expect` is a
regular expression the file's message (sidecar or log) must match.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import openpyxl

from tests.reliability.harness import DEMO_COLUMNS

FILES = Path(__file__).resolve().parents[1] / "files"

# The demo record set's rows, as Synapse holds them at version 1.
DEMO_ROWS = (
    ("A001", "male", "WT", "24.5", "8", "2026-01-05", '["cohort1","pilot"]'),
    ("A002", "female", "KO", "21.0", "8", "2026-01-05", '["cohort1"]'),
    ("A003", "female", "HET", "22.3", "9", "2025-12-29", '["cohort1"]'),
    ("A004", "male", "WT", "25.1", "10", "2025-12-22", '["cohort2"]'),
    ("A005", "unknown", "KO", "19.8", "7", "2026-01-12", "[]"),
)


@dataclass(frozen=True)
class Hostile:
    name: str
    suffix: str
    make: Callable[[Path], None]
    # None: the file is harmless and needs no message, only a fast, quiet read.
    expect: str | None
    # The watcher never passes it on (a folder is no file event): only the engine
    # is asked about it directly.
    skipped: bool = False

    @property
    def filename(self) -> str:
        return f"hostile_{self.name}{self.suffix}"

    def write(self, folder: Path) -> Path:
        path = folder / self.filename
        self.make(path)
        return path

    def matches(self, message: str) -> bool:
        if self.expect is None:
            return True
        return re.search(self.expect, message, re.IGNORECASE | re.DOTALL) is not None


def csv_text(
    rows: Sequence[Sequence[str]], header: Sequence[str] = DEMO_COLUMNS
) -> str:
    out = io.StringIO()
    import csv

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def good_csv_bytes() -> bytes:
    return csv_text(DEMO_ROWS).encode("utf-8")


def good_xlsx_bytes(
    rows: Sequence[Sequence[object]] = DEMO_ROWS,
    header: Sequence[str] = DEMO_COLUMNS,
    edit: Callable[[openpyxl.Workbook], None] | None = None,
) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Data"
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    if edit is not None:
        edit(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data() if callable(data) else data)

    return make


def _text(text: str, encoding: str) -> Callable[[Path], None]:
    return _bytes(lambda: text.encode(encoding))


def _rewrite_zip(
    data: bytes, change: Callable[[str, bytes], bytes | None], extra: dict[str, bytes]
) -> bytes:
    """The zip with members changed (None drops one) and members added."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            body = change(item.filename, source.read(item.filename))
            if body is not None:
                target.writestr(item.filename, body)
        for name, body in extra.items():
            target.writestr(name, body)
    return out.getvalue()


def _macro_enabled() -> bytes:
    def change(name: str, body: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return body.replace(
                b"application/vnd.openxmlformats-officedocument.spreadsheetml."
                b"sheet.main+xml",
                b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
            ).replace(
                b"</Types>",
                b'<Default Extension="bin" ContentType="application/'
                b'vnd.ms-office.vbaProject"/></Types>',
            )
        return body

    return _rewrite_zip(
        good_xlsx_bytes(),
        change,
        {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(2048)},
    )


def _formulas(book: openpyxl.Workbook) -> None:
    sheet = book.active
    assert sheet is not None
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.value = f'=UPPER("{cell.value}")' if cell.column == 1 else "=1+1"


def _formulas_no_keys(book: openpyxl.Workbook) -> None:
    sheet = book.active
    assert sheet is not None
    for row in sheet.iter_rows(min_row=2):
        for cell in row[1:]:
            cell.value = f"=B{cell.row}&C{cell.row}"


def _merged_data(book: openpyxl.Workbook) -> None:
    sheet = book.active
    assert sheet is not None
    sheet.merge_cells("C2:C4")  # genotype of A001..A003 in one merged cell


def _merged_keys(book: openpyxl.Workbook) -> None:
    sheet = book.active
    assert sheet is not None
    sheet.merge_cells("A3:A4")


def _hidden_sheets() -> bytes:
    # openpyxl refuses to save a book with no visible sheet; hide it in the XML.
    def change(name: str, body: bytes) -> bytes:
        if name == "xl/workbook.xml":
            return body.replace(b'state="visible" r:id', b'state="hidden" r:id')
        return body

    return _rewrite_zip(good_xlsx_bytes(), change, {})


def _million_rows(book: openpyxl.Workbook) -> None:
    sheet = book.active
    assert sheet is not None
    sheet.cell(row=1_048_576, column=16_384).number_format = "0.00"


def _wide_xlsx() -> bytes:
    header = [*DEMO_COLUMNS, *(f"extra_{n}" for n in range(16_384 - len(DEMO_COLUMNS)))]
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    sheet.append(header)
    for row in DEMO_ROWS:
        sheet.append([*row, *[f"v{n}" for n in range(16_384 - len(row))]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _wide_csv() -> bytes:
    width = 16_384 - len(DEMO_COLUMNS)
    header = [*DEMO_COLUMNS, *(f"extra_{n}" for n in range(width))]
    rows = [[*row, *(["x"] * width)] for row in DEMO_ROWS]
    return csv_text(rows, header).encode()


def _inline_control_xlsx() -> bytes:
    # openpyxl refuses control characters, so put the OOXML escape in by hand.
    def change(name: str, body: bytes) -> bytes:
        if name == "xl/worksheets/sheet1.xml":
            return body.replace(b">HET<", b">HET_x0007__x001B_[2J<")
        if name == "xl/sharedStrings.xml":
            return body.replace(b">HET<", b">HET_x0007__x001B_[2J<")
        return body

    return _rewrite_zip(good_xlsx_bytes(), change, {})


def _truncated(data: Callable[[], bytes], keep: float) -> Callable[[], bytes]:
    return lambda: (whole := data())[: int(len(whole) * keep)]


def _symlink_to(target_of: Callable[[Path], Path]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        target = target_of(path)
        os.symlink(target, path)

    return make


def _outside_workbook(path: Path) -> Path:
    outside = path.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    target = outside / f"secret-{path.stem}.xlsx"
    target.write_bytes(
        good_xlsx_bytes([(r[0], r[1], "EXFIL", *r[3:]) for r in DEMO_ROWS])
    )
    return target


def _outside_csv(path: Path) -> Path:
    outside = path.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    target = outside / f"secret-{path.stem}.csv"
    target.write_text(csv_text([(r[0], r[1], "EXFIL", *r[3:]) for r in DEMO_ROWS]))
    return target


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _copy(name: str) -> Callable[[Path], None]:
    return lambda path: shutil.copyfile(FILES / name, path)


def _rows_with(changes: dict[int, dict[int, str]]) -> list[list[str]]:
    rows = [list(row) for row in DEMO_ROWS]
    for index, cells in changes.items():
        for column, value in cells.items():
            rows[index][column] = value
    return rows


def _unbalanced_quote() -> bytes:
    text = good_csv_bytes().decode()
    return text.replace(",HET,", ',"HET,', 1).encode()


HOSTILE: tuple[Hostile, ...] = (
    Hostile("zero_bytes", ".xlsx", _bytes(b""), r"empty \(0 bytes\)"),
    Hostile("zero_bytes", ".csv", _bytes(b""), r"is empty"),
    Hostile("whitespace_only", ".csv", _bytes(b" \n\n \r\n"), r"is empty"),
    Hostile(
        "corrupt_zip",
        ".xlsx",
        _bytes(lambda: b"PK\x03\x04" + os.urandom(4000)),
        r"not a readable workbook",
    ),
    Hostile(
        "truncated_half",
        ".xlsx",
        _bytes(_truncated(good_xlsx_bytes, 0.5)),
        r"not a readable workbook|damaged",
    ),
    Hostile(
        "truncated_tail",
        ".xlsx",
        _bytes(_truncated(good_xlsx_bytes, 0.97)),
        r"not a readable workbook|damaged",
    ),
    Hostile(
        "zip_without_sheets",
        ".xlsx",
        _bytes(
            lambda: _rewrite_zip(
                good_xlsx_bytes(),
                lambda name, body: None if "worksheets" in name else body,
                {},
            )
        ),
        r"not a readable workbook|no visible sheet|damaged",
    ),
    Hostile(
        "plain_text",
        ".xlsx",
        _bytes(b"animal_id,genotype\nA001,WT\n"),
        r"not a readable workbook",
    ),
    Hostile("password", ".xlsx", _copy("password-protected.xlsx"), r"password"),
    Hostile(
        "legacy_ole",
        ".xlsx",
        _bytes(lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(4000)),
        r"password|not a readable workbook",
    ),
    Hostile(
        "png_named_xlsx",
        ".xlsx",
        _bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
        r"not a readable workbook",
    ),
    Hostile("macro_enabled", ".xlsx", _bytes(_macro_enabled), r"macro"),
    Hostile(
        "binary",
        ".csv",
        _bytes(lambda: bytes(range(256)) * 16),
        r"not a text file|binary",
    ),
    Hostile(
        "xlsx_named_csv",
        ".csv",
        _bytes(good_xlsx_bytes),
        r"Excel workbook with a \.csv name",
    ),
    Hostile(
        "truncated_row",
        ".csv",
        _bytes(lambda: good_csv_bytes()[:-25]),
        r"cut short|truncated|incomplete",
    ),
    Hostile(
        "unbalanced_quote", ".csv", _bytes(_unbalanced_quote), r"quote|well-formed"
    ),
    Hostile(
        "huge_cell",
        ".csv",
        _text(csv_text(_rows_with({0: {2: "W" * 200_000}})), "utf-8"),
        r"32,?767|field limit",
    ),
    Hostile(
        "huge_row",
        ".csv",
        _text(
            csv_text(
                _rows_with({1: {6: '["' + '","'.join(["t" * 50] * 20_000) + '"]'}})
            ),
            "utf-8",
        ),
        r"32,?767|field limit",
    ),
    Hostile(
        "huge_cell",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes(_rows_with({2: {2: "H" * 40_000}}))),
        r"32,?767|field limit",
    ),
    Hostile("columns_16384", ".xlsx", _bytes(_wide_xlsx), r"not in the task's schema"),
    Hostile("columns_16384", ".csv", _bytes(_wide_csv), r"not in the task's schema"),
    Hostile(
        "claims_a_million_rows",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes(edit=_million_rows)),
        None,
    ),
    Hostile(
        "control_characters",
        ".csv",
        _text(
            csv_text(_rows_with({0: {2: "WT\x07\x1b[2J"}, 1: {1: "fe\x00male"}})),
            "utf-8",
        ),
        r"control character|not a text file",
    ),
    Hostile(
        "control_characters_only_bell",
        ".csv",
        _text(csv_text(_rows_with({3: {2: "W\x08T\x0b"}})), "utf-8"),
        r"control character",
    ),
    Hostile(
        "control_characters",
        ".xlsx",
        _bytes(_inline_control_xlsx),
        r"control character",
    ),
    Hostile(
        "utf16_without_bom",
        ".csv",
        _text(csv_text(DEMO_ROWS), "utf-16-le"),
        r"not a text file|binary",
    ),
    Hostile(
        "utf8_bom_then_latin1",
        ".csv",
        _bytes(
            lambda: (
                b"\xef\xbb\xbf"
                + csv_text(_rows_with({2: {2: "H\xc9T"}})).encode("latin-1")
            )
        ),
        r"byte-order mark",
    ),
    Hostile(
        "utf16_bom_odd_length",
        ".csv",
        _bytes(lambda: b"\xff\xfe" + csv_text(DEMO_ROWS).encode("utf-16-le") + b"\x00"),
        r"byte-order mark|not valid",
    ),
    Hostile(
        "cp1252_unknown_column",
        ".csv",
        _text(
            csv_text(
                [[*row, "café"] for row in DEMO_ROWS], [*DEMO_COLUMNS, "remarque"]
            ),
            "cp1252",
        ),
        r"not UTF-8",
    ),
    Hostile(
        "duplicate_keys",
        ".csv",
        _text(
            csv_text([*DEMO_ROWS, ("A001", "female", "KO", "1", "1", "", "[]")]),
            "utf-8",
        ),
        r"more than one row",
    ),
    Hostile(
        "duplicate_keys",
        ".xlsx",
        _bytes(
            lambda: good_xlsx_bytes(
                [*DEMO_ROWS, ("A003", "male", "HOM", "3", "3", "", "[]")]
            )
        ),
        r"more than one row",
    ),
    Hostile(
        "blank_keys",
        ".csv",
        _text(csv_text([*DEMO_ROWS, ("", "male", "HOM", "3", "3", "", "[]")]), "utf-8"),
        r"blank",
    ),
    Hostile(
        "space_keys",
        ".csv",
        _text(
            csv_text([*DEMO_ROWS, ("   ", "male", "HOM", "3", "3", "", "[]")]), "utf-8"
        ),
        r"blank",
    ),
    Hostile(
        "duplicate_header",
        ".csv",
        _text(
            csv_text([[*row, "HOM"] for row in DEMO_ROWS], [*DEMO_COLUMNS, "genotype"]),
            "utf-8",
        ),
        r"appears more than once",
    ),
    Hostile(
        "no_key_column",
        ".csv",
        _text(csv_text([row[1:] for row in DEMO_ROWS], DEMO_COLUMNS[1:]), "utf-8"),
        r"upsert key",
    ),
    Hostile("header_only", ".csv", _text(csv_text([]), "utf-8"), r"no data rows"),
    Hostile(
        "formulas_everywhere",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes(edit=_formulas)),
        r"formula",
    ),
    Hostile(
        "formulas_keep_keys",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes(edit=_formulas_no_keys)),
        r"formula",
    ),
    Hostile(
        "merged_data_cells",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes(edit=_merged_data)),
        r"merged",
    ),
    Hostile(
        "merged_key_cells",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes(edit=_merged_keys)),
        r"merged",
    ),
    Hostile(
        "only_hidden_sheets",
        ".xlsx",
        _bytes(_hidden_sheets),
        r"no visible sheet",
    ),
    Hostile(
        "unrelated_sheet",
        ".xlsx",
        _bytes(lambda: good_xlsx_bytes([("1", "2")], ["colour", "size"])),
        r"upsert key|header",
    ),
    Hostile(
        "symlink_outside",
        ".xlsx",
        _symlink_to(_outside_workbook),
        r"outside the watched folder|symbolic link",
    ),
    Hostile(
        "symlink_outside",
        ".csv",
        _symlink_to(_outside_csv),
        r"outside the watched folder|symbolic link",
    ),
    Hostile(
        "symlink_dangling",
        ".csv",
        _symlink_to(lambda path: path.parent / "no-such-file.csv"),
        r"outside the watched folder|symbolic link|does not exist|not exist",
    ),
    Hostile(
        "fifo",
        ".csv",
        _fifo,
        r"not a regular file",
    ),
    Hostile(
        "directory",
        ".xlsx",
        _directory,
        r"not a regular file|directory",
        skipped=True,
    ),
)
