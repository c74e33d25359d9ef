"""Reading and writing workbooks: real CSV and XLSX files, some from LibreOffice."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.styles import PatternFill

from curation_sync.cells import number_text, value_text
from curation_sync.errors import WorkbookError
from curation_sync.workbook import (
    Table,
    WorkbookIdentity,
    format_table,
    read_identity,
    read_workbook,
    write_atomically,
    write_workbook,
)

FILES = Path(__file__).parent / "files"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["genotype"],
    "properties": {
        "animal_id": {"type": "string", "description": "The animal's unique id."},
        "genotype": {"type": "string"},
        "sex": {"type": "string", "enum": ["male", "female", "unknown"]},
        "weight_g": {"type": "number", "minimum": 0},
        "age_weeks": {"type": "integer"},
        "birth_date": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "vaccinated": {"type": "boolean"},
    },
}

HEADER = list(SCHEMA["properties"])

IDENTITY = WorkbookIdentity(task_id=4242, record_set_id="syn1234", base_version=7)

# Grid cell text as Synapse exports it, with every trap for a spreadsheet.
GRID_COLUMNS = (*HEADER, "notes")
GRID_ROWS = (
    ("007", "MARCH1", "male", "12.5", "7", "2024-01-05", '["a","b"]', "true", "NA"),
    ("=1+2", "SEPT2", "female", "1.0E10", "12345678901234567", "1899-12-31",
     '["a, b","c"]', "false", "@SUM(A1)"),
    ("+44", "DEC1", "unknown", "0.30000000000000004", "-0", "2024-02-30", "[]", "",
     "null"),
    ("-3", "", "bogus", "9007199254740993", "", "", '["x"]', "yes", "N/A"),
    ("0042", "Oct4", "", "", "", "1900-03-01", '["<\\/b>"]', "true",
     "line one\nline two"),
    ("A6", "wt", "male", "3", "4", "", "", "false", "  padded  "),
)  # fmt: skip


def soffice() -> str | None:
    return shutil.which("soffice")


def convert_with_libreoffice(
    sources: Sequence[Path], outdir: Path, target: str = "xlsx"
) -> list[Path]:
    """Open each file in LibreOffice and save it as `target` into outdir, in one run."""
    binary = soffice()
    assert binary is not None
    outdir.mkdir(parents=True, exist_ok=True)
    profile = f"file:///tmp/lo-{uuid.uuid4()}"
    try:
        subprocess.run(
            [
                binary,
                f"-env:UserInstallation={profile}",
                "--headless",
                "--norestore",
                "--convert-to",
                target,
                "--outdir",
                str(outdir),
                *map(str, sources),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    finally:
        shutil.rmtree(profile.removeprefix("file://"), ignore_errors=True)
    converted = [outdir / f"{source.stem}.{target}" for source in sources]
    for path in converted:
        assert path.exists(), f"LibreOffice did not write {path}"
    return converted


needs_libreoffice = pytest.mark.skipif(soffice() is None, reason="soffice not on PATH")


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def make_xlsx(path: Path, build: Callable[[openpyxl.Workbook], None]) -> Path:
    book = openpyxl.Workbook()
    build(book)
    book.save(path)
    return path


def text_cell(sheet: Any, ref: str, value: str) -> None:
    """A string cell openpyxl must not turn into a formula."""
    sheet[ref] = value
    sheet[ref].data_type = "s"


def build_traps(book: openpyxl.Workbook) -> None:
    """A workbook with the traps: title rows, helper sheets, formulas, dates."""
    intro = book.active
    intro.title = "Read me"
    intro["A1"] = "Fill in the data sheet."
    helper = book.create_sheet("lists")
    # A hidden sheet whose header matches better than the data sheet's.
    helper.append(HEADER)
    helper.append(["L1", "lookup", "male"])
    helper.sheet_state = "hidden"
    data = book.create_sheet("Animals")
    data["A1"] = "Animal metadata, cohort 3"
    headers = [
        "Animal_ID",
        " genotype ",
        "SEX",
        "weight g",
        "age_weeks",
        "Birth_Date",
        "tags",
        "vaccinated",
        "notes",
    ]
    for column, name in enumerate(headers, start=1):
        data.cell(row=3, column=column, value=name)
    rows: list[list[Any]] = [
        ["007", "MARCH1", "male", 12.5, 7, dt.date(2024, 1, 5), "a, b", True, "NA"],
        [
            "",
            "SEPT2",
            "female",
            "=0.1+0.2",
            "=3+4",
            dt.date(1901, 1, 15),
            "x; y,z",
            "=TRUE()",
            "null",
        ],
        [
            "A3",
            "wt",
            "unknown",
            2**53,
            1 / 3,
            dt.datetime(2024, 3, 4),
            '["x","y"]',
            "FALSE",
            "N/A",
        ],
    ]
    for offset, values in enumerate(rows):
        for column, value in enumerate(values, start=1):
            data.cell(row=4 + offset, column=column, value=value)
    text_cell(data, "A5", "=1+2")
    data["F4"].number_format = "yyyy-mm-dd"
    fill = PatternFill("solid", fgColor="FFFF00")
    for ref in ("A300", "T300", "K4", "C250"):
        data[ref].fill = fill


def build_formula_errors(book: openpyxl.Workbook) -> None:
    sheet = book.active
    sheet.title = "data"
    sheet["B1"] = "animal_id"
    sheet["C1"] = "genotype"
    sheet["D1"] = "weight_g"
    sheet["E1"] = "sex"
    for row, (key, genotype, weight) in enumerate(
        [("A1", "wt", "=1/0"), ("A2", "=NA()", "2"), ("A3", "ko", "=2+1")], start=2
    ):
        sheet[f"B{row}"] = key
        sheet[f"C{row}"] = genotype
        sheet[f"D{row}"] = weight
    # A formula whose result is the empty string is calculated, not missing.
    sheet["E4"] = '=""'
    sheet["E3"] = "male"


@pytest.fixture(scope="session")
def traps_workbooks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The traps workbook as openpyxl wrote it and as LibreOffice re-saved it."""
    folder = tmp_path_factory.mktemp("traps")
    original = make_xlsx(folder / "traps.xlsx", build_traps)
    # Dates typed into LibreOffice itself (its CSV import recognises ISO dates).
    early = write_csv(
        folder / "early.csv",
        "animal_id,genotype,birth_date\n"
        "A1,wt,1900-01-15\nA2,wt,1900-02-28\nA3,wt,1900-03-01\nA4,wt,2024-01-05\n",
    )
    errors = make_xlsx(folder / "errors.xlsx", build_formula_errors)
    pulled = folder / "pulled.xlsx"
    write_workbook(pulled, GRID_COLUMNS, GRID_ROWS, schema=SCHEMA, identity=IDENTITY)
    files = {"openpyxl": original, "pulled": pulled}
    if soffice() is not None:
        converted = convert_with_libreoffice(
            [original, early, pulled, errors], folder / "lo"
        )
        (
            files["libreoffice"],
            files["early-dates"],
            files["pulled-resaved"],
            files["formula-errors"],
        ) = converted
        # LibreOffice's CSV export writes fields as shown: 0042 and =1+2 go bare.
        files["pulled-csv"] = convert_with_libreoffice([pulled], folder / "csv", "csv")[
            0
        ]
    return files


def column(table: Table, name: str) -> list[str]:
    index = table.columns.index(name)
    return [row[index] for row in table.rows]


def kinds(table: Table) -> list[str]:
    return [problem.kind for problem in table.problems]


# --- CSV -----------------------------------------------------------------------

CSV_TEXT = (
    "animal_id,genotype,sex,weight_g,age_weeks,birth_date,tags,vaccinated\n"
    '007,MARCH1,male,12.50,7,2024-01-05,"a, b",TRUE\n'
    "A2,Müller-1,female,,8,,,false\n"
)


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
    ],
)
def test_csv_in_utf8_or_utf16_reads_the_same_text(
    tmp_path: Path, encoding: str, prefix: bytes
) -> None:
    path = tmp_path / "animals.csv"
    path.write_bytes(prefix + CSV_TEXT.encode(encoding))

    table = read_workbook(path, schema=SCHEMA)

    assert table.columns == tuple(HEADER)
    assert column(table, "genotype") == ["MARCH1", "Müller-1"]
    assert table.rows[0][:2] == ("007", "MARCH1")
    assert "encoding" not in kinds(table)


def test_csv_that_is_not_utf8_is_read_as_cp1252_and_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "animals.csv", CSV_TEXT, encoding="cp1252")

    table = read_workbook(path, schema=SCHEMA)

    assert column(table, "genotype") == ["MARCH1", "Müller-1"]
    assert kinds(table) == ["encoding"]
    assert "Windows-1252" in table.problems[0].message


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    text = 'animal_id,genotype,weight_g\nA1,wt,1.5\nA2,"x,y",2\n'
    if delimiter != ",":
        text = text.replace(",", delimiter).replace('"x' + delimiter + 'y"', "x,y")
    path = write_csv(tmp_path / "animals.csv", text)

    table = read_workbook(path, schema=SCHEMA)

    assert table.columns == ("animal_id", "genotype", "weight_g")
    assert table.rows == (("A1", "wt", "1.5"), ("A2", "x,y", "2"))


def test_csv_keeps_na_words_leading_zeros_and_gene_names_as_text(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "animals.csv",
        "animal_id,genotype,sex\n0042,MARCH1,NA\n00,SEPT2,null\nA3,DEC1,N/A\n",
    )

    table = read_workbook(path, schema=SCHEMA)

    assert table.rows == (
        ("0042", "MARCH1", "NA"),
        ("00", "SEPT2", "null"),
        ("A3", "DEC1", "N/A"),
    )
    assert kinds(table) == ["missing-column"] * 5


def test_csv_cells_are_shaped_for_import_by_the_schema(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "animals.csv",
        "animal_id,weight_g,age_weeks,tags,vaccinated\n"
        'A1,12.50,7.0,"a, b",TRUE\n'
        "A2,1e3,007,x; y,False\n"
        'A3,.5,,"[""p"", ""q""]",\n',
    )

    table = read_workbook(path, schema=SCHEMA)

    assert table.rows == (
        ("A1", "12.50", "7", '["a","b"]', "true"),
        ("A2", "1e3", "007", '["x","y"]', "false"),
        ("A3", ".5", "", '["p", "q"]', ""),
    )
    assert table.sheet_rows == (2, 3, 4)


def test_cells_that_do_not_fit_their_column_are_reported_not_coerced(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "animals.csv",
        "animal_id,genotype,weight_g,age_weeks,vaccinated\n"
        "A1,wt,heavy,7.5,yes\n"
        'A2,wt,"1,5",x,1\n'
        "A3,wt,3,4,true\n",
    )

    table = read_workbook(path, schema=SCHEMA)

    cell_problems = [(p.kind, p.sheet_row, p.column) for p in table.problems]
    assert cell_problems[-6:] == [
        ("not-a-number", 2, "weight_g"),
        ("not-a-number", 3, "weight_g"),
        ("not-an-integer", 2, "age_weeks"),
        ("not-an-integer", 3, "age_weeks"),
        ("not-a-boolean", 2, "vaccinated"),
        ("not-a-boolean", 3, "vaccinated"),
    ]
    assert table.rows[0] == ("A1", "wt", "heavy", "7.5", "yes")
    assert table.problems_for_row(4) == ()
    yes = next(p for p in table.problems if p.kind == "not-a-boolean")
    assert yes.message == (
        "animals.csv row 2, column vaccinated: 'yes' is not true or false "
        "(Synapse would store it as false); type true or false."
    )
    assert "use a dot for decimals" in table.problems_for_row(3)[0].message


def test_headers_match_forgivingly_and_odd_columns_are_named(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "animals.csv",
        " Animal ID ,GENOTYPE,age weeks,Age_Weeks,colour,,sex\n"
        "A1,wt,3,4,brown,,male\n"
        "A2,wt,5,6,black,stray,female\n",
    )

    table = read_workbook(path, schema=SCHEMA)

    assert table.columns == ("animal_id", "genotype", "age_weeks", "colour", "sex")
    assert table.rows[1] == ("A2", "wt", "5", "black", "female")
    by_kind = {p.kind: p for p in table.problems}
    assert by_kind["duplicate-column"].column == "age_weeks"
    assert by_kind["unknown-column"].column == "colour"
    assert by_kind["unnamed-column"].column == "6"
    missing = [p.column for p in table.problems if p.kind == "missing-column"]
    assert missing == ["weight_g", "birth_date", "tags", "vaccinated"]
    assert "'colour' is not in the task's schema" in by_kind["unknown-column"].message


def test_csv_rows_shorter_or_longer_than_the_header_lose_no_value(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "animals.csv",
        "animal_id,genotype,sex\nA1,wt\nA2,ko,male,stray\nA3\n",
    )

    table = read_workbook(path, schema=SCHEMA)

    assert table.columns == ("animal_id", "genotype", "sex")
    assert table.rows == (("A1", "wt", ""), ("A2", "ko", "male"), ("A3", "", ""))
    unnamed = [p for p in table.problems if p.kind == "unnamed-column"]
    assert [p.column for p in unnamed] == ["4"]
    assert "column 4 has values but no header" in unnamed[0].message


def test_csv_rows_all_shorter_than_the_header_read_as_blank_cells(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "animals.csv", "animal_id,genotype,sex\nA1,wt\nA2,ko\n")

    table = read_workbook(path, schema=SCHEMA)

    assert table.rows == (("A1", "wt", ""), ("A2", "ko", ""))


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("animal_id,genotype\nA1,wt,stray\nA2,ko,\n", "3"),
        # The row that reaches furthest counts, not the first row's width.
        ("animal_id,genotype\nA1,wt,,,,\nA2,ko,,,,,,stray\n", "8"),
    ],
)
def test_a_value_right_of_every_csv_header_is_reported(
    tmp_path: Path, text: str, column: str
) -> None:
    path = write_csv(tmp_path / "animals.csv", text)

    table = read_workbook(path, schema=SCHEMA)

    assert table.rows == (("A1", "wt"), ("A2", "ko"))
    assert [p.column for p in table.problems if p.kind == "unnamed-column"] == [column]


def test_without_a_schema_cells_are_kept_as_typed(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "animals.csv", "id,flag,n\n007,yes,1.50\n")

    table = read_workbook(path)

    assert table.columns == ("id", "flag", "n")
    assert table.rows == (("007", "yes", "1.50"),)
    assert table.problems == ()


# --- XLSX ----------------------------------------------------------------------


def test_datetimes_keep_milliseconds_and_round_serial_noise() -> None:
    noisy = dt.datetime(2024, 1, 5, 13, 4, 4, 999_999)

    assert value_text(noisy) == "2024-01-05T13:04:05"
    assert value_text(noisy.replace(microsecond=250_400)) == "2024-01-05T13:04:04.250"
    assert value_text(dt.datetime(2024, 1, 5)) == "2024-01-05T00:00:00"


def test_numbers_become_text_without_dot_zero_or_binary_noise() -> None:
    assert number_text(7.0) == "7"
    assert number_text(-0.0) == "0"
    assert number_text(0.1 + 0.2) == "0.3"
    assert number_text(1 / 3) == "0.333333333333333"
    assert number_text(12.5) == "12.5"
    assert number_text(2.0**53) == "9007199254740992"
    assert number_text(1e20) == "1e+20"
    assert number_text(1.5e-7) == "1.5e-07"


def expected_traps_rows(libreoffice: bool) -> list[tuple[str, ...]]:
    # openpyxl writes formulas without cached values; LibreOffice computes them.
    # LibreOffice keeps 15 significant digits, so 2**53 loses its last digit.
    return [
        ("007", "MARCH1", "male", "12.5", "7", "2024-01-05", '["a","b"]', "true",
         "NA"),
        ("=1+2", "SEPT2", "female", "0.3" if libreoffice else "",
         "7" if libreoffice else "", "1901-01-15", '["x","y,z"]',
         "true" if libreoffice else "", "null"),
        ("A3", "wt", "unknown", "9007199254740990" if libreoffice else
         "9007199254740992", "0.333333333333333", "2024-03-04", '["x","y"]',
         "false", "N/A"),
    ]  # fmt: skip


@pytest.mark.parametrize("writer", ["openpyxl", pytest.param("libreoffice", marks=[
    pytest.mark.libreoffice, needs_libreoffice])])  # fmt: skip
def test_xlsx_traps_read_as_the_cell_text_a_person_typed(
    traps_workbooks: dict[str, Path], writer: str
) -> None:
    table = read_workbook(traps_workbooks[writer], schema=SCHEMA)

    assert table.sheet_name == "Animals"
    assert table.columns == (*HEADER, "notes")
    assert table.sheet_rows == (4, 5, 6)
    assert list(table.rows) == expected_traps_rows(writer == "libreoffice")
    # openpyxl stores no formula results: those cells are reported, not pushed empty.
    uncalculated = [] if writer == "libreoffice" else ["formula-without-value"] * 3
    kinds = [p.kind for p in table.problems]
    assert kinds == ["unknown-column", "not-an-integer", *uncalculated]
    assert table.problems[1].sheet_row == 6


@pytest.mark.libreoffice
@needs_libreoffice
def test_dates_typed_in_libreoffice_before_march_1900_keep_their_day(
    traps_workbooks: dict[str, Path],
) -> None:
    table = read_workbook(traps_workbooks["early-dates"], schema=SCHEMA)

    assert column(table, "birth_date") == [
        "1900-01-15",
        "1900-02-28",
        "1900-03-01",
        "2024-01-05",
    ]


def test_datetimes_and_times_become_iso_text_without_invented_zones(
    tmp_path: Path,
) -> None:
    schema = {
        "properties": {
            "seen_at": {"type": "string", "format": "date-time"},
            "noted": {"type": "string"},
            "birth_date": {"type": "string", "format": "date"},
        }
    }

    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet.append(["seen_at", "noted", "birth_date"])
        sheet.append(
            [
                dt.datetime(2024, 1, 5, 13, 4, 4, 999_999),
                dt.time(12, 30),
                dt.datetime(2024, 1, 5, 9, 30),
            ]
        )
        sheet.append(
            [dt.datetime(2024, 1, 5, 13, 4, 5, 250_000), dt.date(2024, 2, 1), ""]
        )

    table = read_workbook(make_xlsx(tmp_path / "times.xlsx", build), schema=schema)

    assert table.rows == (
        ("2024-01-05T13:04:05", "12:30:00", "2024-01-05T09:30:00"),
        ("2024-01-05T13:04:05.250", "2024-02-01", ""),
    )


def test_a_date_in_a_text_column_is_reported_as_the_gene_name_trap(
    tmp_path: Path,
) -> None:
    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet.append(["animal_id", "genotype", "birth_date"])
        # What Excel stores after someone types MARCH1 into a General cell.
        sheet.append(["A1", dt.datetime(2026, 3, 1), dt.date(2024, 1, 5)])
        sheet.append(["A2", "MARCH1", dt.date(2024, 1, 6)])
        sheet.append(["A3", dt.datetime(2026, 3, 1), ""])

    table = read_workbook(make_xlsx(tmp_path / "genes.xlsx", build), schema=SCHEMA)

    assert column(table, "genotype") == ["2026-03-01", "MARCH1", "2026-03-01"]
    trapped = [p for p in table.problems if p.kind == "date-in-text-column"]
    assert [(p.sheet_row, p.column) for p in trapped] == [
        (2, "genotype"),
        (4, "genotype"),
    ]
    assert "MARCH1" in trapped[0].message


@pytest.mark.libreoffice
@needs_libreoffice
def test_a_formula_that_gives_an_error_is_reported_not_pushed_empty(
    traps_workbooks: dict[str, Path],
) -> None:
    table = read_workbook(traps_workbooks["formula-errors"], schema=SCHEMA)

    assert table.rows == (
        ("A1", "wt", "", ""),
        ("A2", "", "2", "male"),
        ("A3", "ko", "3", ""),
    )
    errors = [p for p in table.problems if p.kind == "formula-error"]
    assert [(p.sheet_row, p.column) for p in errors] == [
        (2, "weight_g"),
        (3, "genotype"),
    ]
    assert "#DIV/0!" in errors[0].message
    assert "formula-without-value" not in kinds(table)


def test_the_data_sheet_can_be_named_and_a_missing_name_is_an_error(
    traps_workbooks: dict[str, Path],
) -> None:
    path = traps_workbooks["openpyxl"]

    assert read_workbook(path, schema=SCHEMA, sheet="animals").sheet_name == "Animals"
    helper = read_workbook(path, schema=SCHEMA, sheet="lists")
    assert helper.columns == tuple(HEADER)
    assert helper.rows[0][:3] == ("L1", "lookup", "male")
    with pytest.raises(WorkbookError, match=r"has no sheet named 'Samples'"):
        read_workbook(path, schema=SCHEMA, sheet="Samples")


def test_trailing_rows_of_empty_strings_are_trimmed(tmp_path: Path) -> None:
    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet.append(["animal_id", "genotype"])
        sheet.append(["A1", "wt"])
        for row in range(3, 5003):
            text_cell(sheet, f"A{row}", "")
            text_cell(sheet, f"H{row}", "")

    table = read_workbook(make_xlsx(tmp_path / "a.xlsx", build), schema=SCHEMA)

    assert table.columns == ("animal_id", "genotype")
    assert table.rows == (("A1", "wt"),)


def test_a_sheet_claiming_a_million_formatted_rows_reads_only_the_data(
    tmp_path: Path,
) -> None:
    path = write_formatted_rows_workbook(tmp_path / "big.xlsx", rows=1_048_576)

    tracemalloc.start()
    try:
        table = read_workbook(path, schema=SCHEMA)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert table.rows == (("A1", "male"),)
    assert table.columns == ("animal_id", "sex")
    assert peak < 20 * 2**20, f"reading held {peak / 2**20:.0f} MB of Python objects"


def test_a_sheet_whose_data_starts_away_from_a1_keeps_the_row_numbers_people_see(
    tmp_path: Path,
) -> None:
    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet["C3"] = "animal_id"
        sheet["D3"] = "sex"
        sheet["C4"] = "A1"
        sheet["D6"] = "male"

    table = read_workbook(make_xlsx(tmp_path / "a.xlsx", build), schema=SCHEMA)

    assert table.columns == ("animal_id", "sex")
    assert table.rows == (("A1", ""), ("", "male"))
    assert table.sheet_rows == (4, 6)


def test_list_items_are_typed_by_the_items_schema_and_bad_items_reported(
    tmp_path: Path,
) -> None:
    schema = {
        "properties": {
            "counts": {"type": "array", "items": {"type": "integer"}},
            "flags": {"type": ["array", "null"], "items": {"$ref": "#/$defs/flag"}},
        },
        "$defs": {"flag": {"type": "boolean"}},
    }
    path = write_csv(
        tmp_path / "a.csv", 'counts,flags\n"1, 2",true; FALSE\n"3, x",\n7,yes\n'
    )

    table = read_workbook(path, schema=schema)

    assert table.rows == (("[1,2]", "[true,false]"), ("3, x", ""), ("[7]", "yes"))
    assert [(p.kind, p.sheet_row) for p in table.problems] == [
        ("not-an-integer", 3),
        ("not-a-boolean", 4),
    ]


def minimal_parts(shared_strings: bool = False) -> dict[str, str]:
    """The parts of a one-sheet XLSX around its sheet XML (and shared strings)."""
    strings_type = (
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        if shared_strings
        else ""
    )
    strings_rel = (
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
        if shared_strings
        else ""
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
            'openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/><Override '
            'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/'
            'worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.worksheet+xml"/>' + strings_type + "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://'
            'schemas.openxmlformats.org/package/2006/relationships"><Relationship '
            'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.'
            'openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet '
            'name="data" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://'
            'schemas.openxmlformats.org/package/2006/relationships"><Relationship '
            'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
            + strings_rel
            + "</Relationships>"
        ),
    }
    return parts


def write_formatted_rows_workbook(path: Path, rows: int) -> Path:
    """An XLSX whose sheet has data in two rows and formatting down to `rows`."""
    parts = minimal_parts()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://'
                b'schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension '
                b'ref="A1:T%d"/><sheetData><row r="1"><c r="A1" t="inlineStr"><is>'
                b'<t>animal_id</t></is></c><c r="B1" t="inlineStr"><is><t>sex</t>'
                b'</is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>A1</t>'
                b'</is></c><c r="B2" t="inlineStr"><is><t>male</t></is></c></row>'
                % rows
            )
            for start in range(3, rows + 1, 10_000):
                stop = min(start + 10_000, rows + 1)
                sheet.write(
                    "".join(
                        f'<row r="{r}" s="1" customFormat="1"><c r="A{r}" s="1"/>'
                        f'<c r="T{r}" s="1"/></row>'
                        for r in range(start, stop)
                    ).encode()
                )
            sheet.write(b"</sheetData></worksheet>")
    return path


# --- Files that cannot be read ---------------------------------------------------


def test_a_password_protected_workbook_says_how_to_remove_the_password(
    tmp_path: Path,
) -> None:
    path = tmp_path / "animals.xlsx"
    shutil.copyfile(FILES / "password-protected.xlsx", path)

    with pytest.raises(WorkbookError) as caught:
        read_workbook(path, schema=SCHEMA)

    assert str(caught.value) == (
        "animals.xlsx is password-protected; remove the password in Excel "
        "(File > Info > Protect Workbook) and save again."
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("animals.xlsx", b"PK\x03\x04 half a zip", r"animals.xlsx is not a readable "),
        ("animals.xlsx", b"", r"animals.xlsx is empty \(0 bytes\)"),
        ("animals.csv", b"", r"animals.csv is empty; type a header row"),
        ("animals.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"not a text file"),
        ("animals.csv", b"PK\x03\x04\x14\x00", r"Excel workbook with a .csv name"),
        ("animals.csv", b"a,b\n\x81\x8d\x8f\n", r"neither UTF-8 nor Windows-1252"),
    ],
)
def test_unreadable_files_give_one_clear_message(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(WorkbookError, match=message):
        read_workbook(path, schema=SCHEMA)


def test_a_zip_that_is_not_a_workbook_and_a_missing_file_are_clear_errors(
    tmp_path: Path,
) -> None:
    not_a_workbook = tmp_path / "animals.xlsx"
    with zipfile.ZipFile(not_a_workbook, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")

    with pytest.raises(WorkbookError, match=r"animals\.xlsx is not a readable"):
        read_workbook(not_a_workbook, schema=SCHEMA)
    with pytest.raises(WorkbookError, match=r"Could not read gone\.xlsx"):
        read_workbook(tmp_path / "gone.xlsx", schema=SCHEMA)
    with pytest.raises(WorkbookError, match=r"Could not read gone\.csv"):
        read_workbook(tmp_path / "gone.csv", schema=SCHEMA)


def test_format_table_refuses_an_unknown_format(tmp_path: Path) -> None:
    table = read_workbook(write_csv(tmp_path / "a.csv", "animal_id\nA1\n"))

    with pytest.raises(ValueError, match="use csv or json"):
        format_table(table, "tsv")


def test_a_truncated_workbook_is_reported_as_damaged(
    tmp_path: Path, traps_workbooks: dict[str, Path]
) -> None:
    data = traps_workbooks["openpyxl"].read_bytes()
    path = tmp_path / "animals.xlsx"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(WorkbookError, match="may be damaged or still being copied"):
        read_workbook(path, schema=SCHEMA)


def test_an_empty_sheet_is_an_error_and_a_header_alone_is_a_problem(
    tmp_path: Path,
) -> None:
    empty = make_xlsx(tmp_path / "empty.xlsx", lambda book: None)
    header_only = make_xlsx(
        tmp_path / "header.xlsx", lambda book: book.active.append(HEADER)
    )

    with pytest.raises(WorkbookError, match=r"empty\.xlsx is empty"):
        read_workbook(empty)
    table = read_workbook(header_only, schema=SCHEMA)
    assert table.columns == tuple(HEADER)
    assert table.rows == ()
    assert kinds(table) == ["no-rows"]


def test_a_workbook_without_a_matching_sheet_names_the_expected_columns(
    tmp_path: Path,
) -> None:
    path = make_xlsx(tmp_path / "other.xlsx", lambda book: book.active.append(["x"]))

    with pytest.raises(
        WorkbookError, match=r"no sheet whose header matches .*animal_id"
    ):
        read_workbook(path, schema=SCHEMA)


# --- Hash, formatting, atomic writes ------------------------------------------------


def test_content_hash_ignores_file_format_column_order_and_formatting(
    tmp_path: Path,
) -> None:
    csv_path = write_csv(
        tmp_path / "a.csv", "animal_id,genotype,weight_g\nA1,wt,12.5\nA2,ko,3\n"
    )

    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet.append(["genotype", "Animal ID", "weight_g"])
        sheet.append(["wt", "A1", 12.5])
        sheet.append([])
        sheet.append(["ko", "A2", 3.0])
        sheet["A2"].fill = PatternFill("solid", fgColor="FF0000")
        sheet["E9"].fill = PatternFill("solid", fgColor="FF0000")

    xlsx_path = make_xlsx(tmp_path / "a.xlsx", build)
    changed = write_csv(
        tmp_path / "b.csv", "animal_id,genotype,weight_g\nA1,wt,12.51\nA2,ko,3\n"
    )

    from_csv = read_workbook(csv_path, schema=SCHEMA)
    from_xlsx = read_workbook(xlsx_path, schema=SCHEMA)
    assert from_csv.content_hash() == from_xlsx.content_hash()
    assert read_workbook(changed, schema=SCHEMA).content_hash() != (
        from_csv.content_hash()
    )


def test_format_table_prints_csv_as_pushed_and_json_with_problems(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "a.csv", 'animal_id,tags,x\nA1,"a, b",=1\n')
    table = read_workbook(path, schema=SCHEMA)

    assert format_table(table, "csv") == 'animal_id,tags,x\nA1,"[""a"",""b""]",=1\n'
    document = json.loads(format_table(table, "json"))
    assert document["rows"] == [["A1", '["a","b"]', "=1"]]
    assert document["sheet_rows"] == [2]
    assert {p["kind"] for p in document["problems"]} == {
        "unknown-column",
        "missing-column",
    }


def test_write_atomically_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.xlsx"
    target.write_bytes(b"old")
    target.chmod(0o600)

    write_atomically(target, b"new")

    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xlsx"]


def test_write_atomically_leaves_the_old_file_when_writing_fails(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.xlsx"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xlsx"]


# --- Writing the workbook a person fills in (pull) ---------------------------------


@pytest.mark.parametrize("copy", ["pulled", *(pytest.param(name, marks=[
    pytest.mark.libreoffice, needs_libreoffice]) for name in ("pulled-resaved",
    "pulled-csv"))])  # fmt: skip
def test_a_pulled_workbook_reads_back_exactly_the_grid_cell_text(
    traps_workbooks: dict[str, Path], copy: str
) -> None:
    table = read_workbook(traps_workbooks[copy], schema=SCHEMA)

    assert table.columns == GRID_COLUMNS
    assert table.rows == GRID_ROWS
    assert table.sheet_rows == tuple(range(2, len(GRID_ROWS) + 2))
    if copy != "pulled-csv":
        assert read_identity(traps_workbooks[copy]) == IDENTITY


def test_a_pulled_workbook_formats_text_columns_and_explains_the_header(
    traps_workbooks: dict[str, Path],
) -> None:
    book = openpyxl.load_workbook(traps_workbooks["pulled"])
    sheet = book["data"]

    assert book.sheetnames[0] == "data"
    assert sheet.freeze_panes == "A2"
    assert sheet["A2"].value == "007"
    assert sheet["A2"].number_format == "@"
    assert sheet.column_dimensions["A"].number_format == "@"
    assert sheet.column_dimensions["B"].number_format == "@"
    assert sheet["D2"].value == 12.5
    assert sheet["F2"].value == dt.datetime(2024, 1, 5)
    assert sheet["G2"].value == "a, b"
    assert sheet["G3"].value == '["a, b","c"]'
    assert sheet["H2"].value is True
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet["B1"].fill.fgColor.rgb != sheet["A1"].fill.fgColor.rgb
    assert sheet["A1"].comment.text == "The animal's unique id."
    assert "Required." in sheet["B1"].comment.text
    assert "One of: male, female, unknown." in sheet["C1"].comment.text
    assert sheet["I1"].comment is None


def test_enum_and_boolean_columns_get_dropdowns_from_a_hidden_sheet(
    tmp_path: Path,
) -> None:
    colours = [f"colour number {n:03d}" for n in range(300)]
    schema = {
        "properties": {
            "colour": {"type": "string", "enum": colours},
            "sex": {"type": "string", "enum": ["male", "female"]},
            "ok": {"type": "boolean"},
        }
    }
    path = tmp_path / "pulled.xlsx"

    write_workbook(path, ("colour", "sex", "ok"), (), schema=schema, identity=IDENTITY)

    book = openpyxl.load_workbook(path)
    lists = book["_lists"]
    assert lists.sheet_state == "hidden"
    assert [row[0] for row in lists.iter_rows(values_only=True)] == colours
    formulas = {
        str(v.sqref): v.formula1 for v in book["data"].data_validations.dataValidation
    }
    assert formulas == {
        "A2:A1048576": "'_lists'!$A$1:$A$300",
        "B2:B1048576": "'_lists'!$B$1:$B$2",
        "C2:C1048576": '"true,false"',
    }
    assert read_workbook(path, schema=schema).columns == ("colour", "sex", "ok")


def test_no_value_from_synapse_becomes_a_formula(
    traps_workbooks: dict[str, Path],
) -> None:
    with zipfile.ZipFile(traps_workbooks["pulled"]) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()

    assert "<f>" not in sheet_xml
    book = openpyxl.load_workbook(traps_workbooks["pulled"])
    for ref in ("A3", "A4", "A5", "I3"):
        assert book["data"][ref].data_type == "s"
        assert book["data"][ref].quotePrefix


def test_identity_is_found_after_a_rename_and_from_the_hidden_sheet_alone(
    tmp_path: Path, traps_workbooks: dict[str, Path]
) -> None:
    renamed = tmp_path / "my copy of animals.xlsx"
    shutil.copyfile(traps_workbooks["pulled"], renamed)
    stripped = tmp_path / "stripped.xlsx"
    with (
        zipfile.ZipFile(renamed) as source,
        zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            if item.filename != "docProps/custom.xml":
                target.writestr(item, source.read(item))

    assert read_identity(renamed) == IDENTITY
    assert read_identity(stripped) == IDENTITY
    assert read_identity(traps_workbooks["openpyxl"]) is None
    assert read_identity(write_csv(tmp_path / "a.csv", "animal_id\nA1\n")) is None


def test_a_value_xlsx_cannot_store_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pulled.xlsx"

    with pytest.raises(WorkbookError, match="control character"):
        write_workbook(
            path, ("animal_id",), (("bell\x07",),), schema=SCHEMA, identity=IDENTITY
        )
    with pytest.raises(WorkbookError, match="more than an XLSX cell holds"):
        write_workbook(
            path, ("animal_id",), (("x" * 40_000,),), schema=SCHEMA, identity=IDENTITY
        )
    assert list(tmp_path.iterdir()) == []


SHEET_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
    'openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" '
    't="inlineStr"><is><t>animal_id</t></is></c><c r="B1" t="inlineStr"><is><t>'
    'genotype</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>A1</t>'
    "</is></c>{cell}</row></sheetData></worksheet>"
)


@pytest.mark.parametrize(
    ("where", "escape", "control"),
    [
        ("shared", "_x0007_", True),
        ("shared", "_x001b_", True),
        ("shared", "\x7f", True),
        ("shared", "_x000D_", False),
        ("shared", "_x0009_", False),
        ("inline", "_x0007_", True),
        ("inline", "_x000A_", False),
    ],
)
def test_control_characters_are_found_wherever_the_xlsx_keeps_the_text(
    tmp_path: Path, where: str, escape: str, control: bool
) -> None:
    """The XLSX scan that lets clean files skip the search must miss nothing."""
    text = f"HET{escape}"
    parts = minimal_parts(shared_strings=where == "shared")
    if where == "shared":
        cell = '<c r="B2" t="s"><v>0</v></c>'
        parts["xl/sharedStrings.xml"] = (
            '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.'
            'openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
            f"<si><t>{text}</t></si></sst>"
        )
    else:
        cell = f'<c r="B2" t="inlineStr"><is><t>{text}</t></is></c>'
    parts["xl/worksheets/sheet1.xml"] = SHEET_XML.format(cell=cell)
    path = tmp_path / "a.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in parts.items():
            archive.writestr(name, body)

    table = read_workbook(path, schema=SCHEMA)

    genotype = column(table, "genotype")[0]
    assert genotype.startswith("HET")
    assert len(genotype) == 4
    assert ("control-character" in kinds(table)) is control


def test_column_fast_paths_give_the_text_of_the_cell_by_cell_rules() -> None:
    import random
    import struct

    from curation_sync.workbook import _float_text, _number_texts

    chance = random.Random(20261203)
    values = [0.0, -0.0, 1.0, -7.0, 1e14, 1e15, 2.0**53, 2.0**53 + 2, 1e16, 1e-5]
    values += [0.1 + 0.2, 1 / 3, 25000.25, 1e300, 5e-324, 123456789012345.0]
    for _ in range(20_000):
        bits = struct.unpack("d", struct.pack("Q", chance.getrandbits(64)))[0]
        values += [
            chance.uniform(-1e6, 1e6),
            float(chance.randint(-(10**16), 10**16)),
            round(chance.uniform(-1000, 1000), chance.randint(0, 6)),
            bits,
        ]
    values = [v for v in values if v == v and abs(v) != float("inf")]

    assert _number_texts(values) == [_float_text(v) for v in values]
    assert _float_text(-0.0) == "0"
    assert _float_text(0.1 + 0.2) == "0.3"


def test_a_column_mixing_true_and_one_shapes_each_by_its_own_class(
    tmp_path: Path,
) -> None:
    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet.append(["animal_id", "genotype", "age_weeks", "vaccinated"])
        sheet.append(["A1", "wt", 1, True])
        sheet.append(["A2", "wt", True, 1])
        sheet.append(["A3", "wt", 0, False])
        sheet.append(["A4", "wt", 1.0, 0])

    table = read_workbook(make_xlsx(tmp_path / "a.xlsx", build), schema=SCHEMA)

    assert column(table, "age_weeks") == ["1", "true", "0", "1"]
    assert column(table, "vaccinated") == ["true", "true", "false", "false"]
    problems = [(p.kind, p.sheet_row) for p in table.problems if p.sheet_row]
    assert problems == [("not-an-integer", 3)]


def test_reading_pauses_the_cycle_collector_only_while_it_reads(
    tmp_path: Path,
) -> None:
    import gc
    import threading

    path = write_csv(tmp_path / "a.csv", "animal_id,genotype\nA1,wt\n")
    assert gc.isenabled()

    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(bool(read_workbook(path))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 8
    assert gc.isenabled()

    gc.disable()
    try:
        read_workbook(path)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_after_a_read_cycles_are_still_collected_and_frozen_objects_stay_frozen(
    tmp_path: Path,
) -> None:
    import gc
    import weakref

    class Node:
        partner: object = None

    path = write_csv(tmp_path / "a.csv", "animal_id,genotype\nA1,wt\n")
    gc.collect()
    node = Node()
    node.partner = node
    alive = weakref.ref(node)
    del node

    read_workbook(path)
    gc.collect()

    assert alive() is None

    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        read_workbook(path)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_number_and_integer_columns_with_blanks_and_text_keep_each_cells_rule(
    tmp_path: Path,
) -> None:
    def build(book: openpyxl.Workbook) -> None:
        sheet = book.active
        sheet.append(["animal_id", "genotype", "weight_g", "age_weeks"])
        cells = [
            (1.0, 7.0),
            (None, None),
            (2.5, 7.5),
            ("abc", "3"),
            (0.30000000000000004, 3.0),
            (1e16, 2.0**53),
            (-0.0, -0.0),
            (2.5, 7.0),
        ]
        for number, (weight, age) in enumerate(cells):
            sheet.append([f"A{number}", "wt", weight, age])

    table = read_workbook(make_xlsx(tmp_path / "a.xlsx", build), schema=SCHEMA)

    assert column(table, "weight_g") == [
        "1", "", "2.5", "abc", "0.3", "1e+16", "0", "2.5"
    ]  # fmt: skip
    assert column(table, "age_weeks") == [
        "7", "", "7.5", "3", "3", "9007199254740992", "0", "7"
    ]  # fmt: skip
    problems = [(p.kind, p.sheet_row, p.column) for p in table.problems if p.sheet_row]
    assert problems == [
        ("not-a-number", 5, "weight_g"),
        ("not-an-integer", 4, "age_weeks"),
    ]


def test_many_unknown_columns_share_one_line_and_a_few_get_one_each(
    tmp_path: Path,
) -> None:
    extra = [f"extra_{n}" for n in range(16_000)]
    wide = write_csv(
        tmp_path / "wide.csv",
        ",".join(["animal_id", "genotype", *extra])
        + "\n"
        + ",".join(["A1", "wt", *["x"] * len(extra)])
        + "\n",
    )
    few = write_csv(tmp_path / "few.csv", "animal_id,genotype,colour,size\nA1,wt,r,s\n")

    wide_table = read_workbook(wide, schema=SCHEMA)
    few_table = read_workbook(few, schema=SCHEMA)

    [summary] = [p for p in wide_table.problems if p.kind == "unknown-column"]
    assert "16,000 columns are not in the task's schema" in summary.message
    assert "'extra_0', 'extra_1'" in summary.message
    assert wide_table.rows[0][:2] == ("A1", "wt")
    named = [p.column for p in few_table.problems if p.kind == "unknown-column"]
    assert named == ["colour", "size"]
