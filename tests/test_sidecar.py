"""The validation report beside a workbook: real XLSX and CSV files in tmp_path."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from test_workbook import convert_with_libreoffice, needs_libreoffice

from curation_sync.errors import ConfigError
from curation_sync.sidecar import (
    Conflict,
    Counts,
    HeldBack,
    NotPushed,
    ReportData,
    SidecarReport,
    Violation,
    sidecar_path,
    write_sidecar,
)

VALIDATED_AT = dt.datetime(2026, 12, 3, 14, 5, 9, tzinfo=dt.timezone.utc)
INJECTION = '=HYPERLINK("http://example.invalid","click")'


def make_report(**changes: object) -> SidecarReport:
    fields: dict[str, object] = {
        "task_id": 4242,
        "task_name": "Animal metadata",
        "record_set_id": "syn1234",
        "version": 8,
        "validated_at": VALIDATED_AT,
        "counts": Counts(valid=1, invalid=2, unknown=0),
        "violations": (
            Violation(
                sheet_row=3,
                key="A2",
                column="sex",
                value="other",
                message="#/sex: other is not a valid enum value",
                all_messages=(
                    "#/sex: other is not a valid enum value",
                    "#/weight_g: -1 is not greater or equal to 0",
                ),
            ),
            Violation(
                sheet_row=3,
                key="A2",
                column="weight_g",
                value="-1",
                message="#/weight_g: -1 is not greater or equal to 0",
            ),
            Violation(
                sheet_row=5,
                key=INJECTION,
                column="genotype",
                value=INJECTION,
                message=f"#/genotype: string [{INJECTION}] does not match pattern",
            ),
        ),
        "not_pushed": NotPushed(
            conflicts=(Conflict("A1", "genotype", "ko", "wt", sheet_row=2),),
            removed_keys=("A9",),
            held_back=(HeldBack(6, "A6", "'yes' is not true or false"),),
        ),
        "data": ReportData(
            columns=("animal_id", "genotype", "sex", "weight_g"),
            rows=(
                ("A1", "ko", "male", "3"),
                ("A2", "wt", "other", "-1"),
                (INJECTION, INJECTION, "female", "2"),
                ("A6", "wt", "male", "1"),
            ),
            sheet_rows=(2, 3, 5, 6),
        ),
    }
    fields.update(changes)
    return SidecarReport(**fields)  # type: ignore[arg-type]


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    path = tmp_path / "animals.xlsx"
    path.write_bytes(b"the person's workbook, never touched")
    return path


def sheet_values(path: Path, title: str) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(path)
    return [tuple(row) for row in book[title].iter_rows(values_only=True)]


def test_the_sidecar_name_follows_the_template_and_never_is_the_workbook(
    workbook: Path,
) -> None:
    assert sidecar_path(workbook) == workbook.parent / "animals.validation.xlsx"
    assert sidecar_path(workbook, name_template="{stem}-report.xlsx").name == (
        "animals-report.xlsx"
    )
    with pytest.raises(ConfigError, match="must give a different file name"):
        sidecar_path(workbook, name_template="{stem}.xlsx")
    with pytest.raises(ConfigError, match="is not valid"):
        sidecar_path(workbook, name_template="{folder}.xlsx")


def test_the_sidecar_has_a_summary_violations_and_what_was_not_pushed(
    workbook: Path,
) -> None:
    written = write_sidecar(workbook, make_report(notes=("The task is COMPLETED.",)))

    assert written == workbook.parent / "animals.validation.xlsx"
    summary = dict(row[:2] for row in sheet_values(written, "Summary"))
    assert summary["Status"] == (
        "2 of 3 rows are invalid; see the Violations sheet. "
        "Some changes were not pushed; see the Not pushed sheet."
    )
    assert summary["Task"] == "Animal metadata"
    assert summary["Task id"] == 4242
    assert summary["Record set"] == "syn1234"
    assert summary["Version"] == 8
    assert summary["Validated at (UTC)"] == "2026-12-03 14:05:09"
    assert summary["Checked by"] == "Synapse"
    assert (summary["Valid rows"], summary["Invalid rows"]) == (1, 2)
    assert summary["Unknown rows"] == 0
    assert summary["Conflicts not pushed"] == 1
    assert summary["Note"] == "The task is COMPLETED."

    violations = sheet_values(written, "Violations")
    assert violations[0] == (
        "Row",
        "Key",
        "Column",
        "Value",
        "Message",
        "All messages for the row",
    )
    assert violations[1] == (
        3,
        "A2",
        "sex",
        "other",
        "#/sex: other is not a valid enum value",
        "#/sex: other is not a valid enum value\n"
        "#/weight_g: -1 is not greater or equal to 0",
    )
    not_pushed = sheet_values(written, "Not pushed")
    assert [row[:6] for row in not_pushed[1:]] == [
        ("conflict", 2, "A1", "genotype", "ko", "wt"),
        ("removed locally", None, "A9", None, None, None),
        ("held back", 6, "A6", None, None, None),
    ]
    assert not_pushed[3][6] == "'yes' is not true or false"


def test_the_data_copy_highlights_invalid_cells_at_the_persons_row_numbers(
    workbook: Path,
) -> None:
    written = write_sidecar(workbook, make_report())
    assert written is not None

    sheet = openpyxl.load_workbook(written)["Data"]
    assert [c.value for c in sheet[1]] == ["animal_id", "genotype", "sex", "weight_g"]
    assert sheet["A3"].value == "A2"
    assert sheet["A4"].value is None
    assert sheet["A6"].value == "A6"
    invalid = sheet["C3"]
    assert invalid.fill.fgColor.rgb.endswith("FFC7CE")
    assert invalid.comment.text == "#/sex: other is not a valid enum value"
    assert "not greater or equal" in sheet["D3"].comment.text
    assert "Synapse has 'wt'" in sheet["B2"].comment.text
    assert sheet["A2"].comment is None
    assert sheet["A2"].fill.fgColor.rgb != invalid.fill.fgColor.rgb


def test_no_text_in_the_sidecar_becomes_a_formula(workbook: Path) -> None:
    written = write_sidecar(workbook, make_report())
    assert written is not None

    with zipfile.ZipFile(written) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert not any(b"<f>" in archive.read(name) for name in sheets)
    book = openpyxl.load_workbook(written)
    assert book["Violations"]["B4"].value == INJECTION
    assert book["Violations"]["B4"].data_type == "s"
    assert book["Data"]["A5"].value == INJECTION
    assert book["Data"]["A5"].data_type == "s"


def test_a_clean_report_says_so_plainly_or_removes_the_sidecar(
    workbook: Path,
) -> None:
    clean = make_report(
        counts=Counts(valid=4),
        violations=(),
        not_pushed=NotPushed(),
        data=None,
    )

    written = write_sidecar(workbook, clean)
    assert written is not None
    summary = dict(row[:2] for row in sheet_values(written, "Summary"))
    assert summary["Status"] == "All 4 rows are valid."
    assert openpyxl.load_workbook(written).sheetnames == ["Summary", "Violations"]

    assert write_sidecar(workbook, clean, remove_when_valid=True) is None
    assert not written.exists()
    kept = write_sidecar(workbook, make_report(), remove_when_valid=True)
    assert kept is not None
    assert kept.exists()


def test_a_csv_sidecar_keeps_every_section_and_defuses_formula_text(
    workbook: Path,
) -> None:
    written = write_sidecar(workbook, make_report(), fmt="csv")

    assert written == workbook.parent / "animals.validation.csv"
    data = written.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == [
        "section",
        "row",
        "key",
        "column",
        "value",
        "message",
        "all_messages",
    ]
    sections = [row[0] for row in rows[1:]]
    assert sections.count("summary") == 10
    assert sections.count("violation") == 3
    assert sections[-3:] == [
        "not pushed: conflict",
        "not pushed: removed locally",
        "not pushed: held back",
    ]
    injected = rows[sections.index("violation") + 3]
    assert injected[2] == "'" + INJECTION
    assert injected[4] == "'" + INJECTION
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    weight = rows[sections.index("violation") + 2]
    assert weight[4] == "'-1"


def test_writing_a_sidecar_leaves_the_workbook_alone_and_no_temp_file(
    workbook: Path,
) -> None:
    before = (workbook.read_bytes(), workbook.stat().st_mtime_ns)
    old = workbook.parent / "animals.validation.xlsx"
    old.write_bytes(b"an older report")

    write_sidecar(workbook, make_report())
    write_sidecar(workbook, make_report(), fmt="csv")

    assert (workbook.read_bytes(), workbook.stat().st_mtime_ns) == before
    assert sorted(p.name for p in workbook.parent.iterdir()) == [
        "animals.validation.csv",
        "animals.validation.xlsx",
        "animals.xlsx",
    ]
    assert zipfile.is_zipfile(old)


@pytest.mark.libreoffice
@needs_libreoffice
def test_libreoffice_opens_a_sidecar_with_thousands_of_commented_cells(
    workbook: Path, tmp_path: Path
) -> None:
    many = tuple(
        Violation(
            n + 2, f"A{n}", "sex", "other", "#/sex: other is not a valid enum value"
        )
        for n in range(2_000)
    )
    data = ReportData(
        ("animal_id", "sex"), tuple((f"A{n}", "other") for n in range(2_000))
    )
    report = make_report(
        counts=Counts(invalid=2_000),
        violations=many,
        not_pushed=NotPushed(),
        data=data,
    )
    written = write_sidecar(workbook, report)
    assert written is not None

    resaved = convert_with_libreoffice([written], tmp_path / "lo")[0]

    book = openpyxl.load_workbook(resaved)
    assert book.sheetnames == ["Summary", "Violations", "Data"]
    assert book["Summary"]["B1"].value == (
        "2000 of 2000 rows are invalid; see the Violations sheet."
    )
    assert book["Violations"].max_row == 2_001
    assert (
        book["Data"]["B2001"].comment.text == "#/sex: other is not a valid enum value"
    )


def test_a_message_quoting_a_control_character_leaves_a_sidecar_that_opens(
    workbook: Path,
) -> None:
    message = "#/genotype: string [a\x01b] does not match pattern ^[A-Z]+$"
    report = make_report(
        violations=(
            Violation(
                sheet_row=3,
                key="A2",
                column="genotype",
                value="a\x01b",
                message=message,
            ),
        )
    )

    written = write_sidecar(workbook, report)

    assert written is not None
    book = openpyxl.load_workbook(written)
    comment = book["Data"]["B3"].comment
    assert comment is not None
    assert "\x01" not in comment.text
    assert "does not match pattern" in comment.text
