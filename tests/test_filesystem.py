"""Names, lock files and content fingerprints of real files in tmp_path."""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from curation_sync.filesystem import (
    IncompleteWorkbookError,
    fingerprint_workbook,
    is_default_sidecar,
    is_lock_file,
    is_open_in_editor,
    is_temporary_name,
    sweep_interrupted_writes,
    walk_files,
    workbooks_for_lock_file,
)


def save_xlsx(path: Path, rows: list[list[str]], *, creator: str = "someone") -> None:
    book = openpyxl.Workbook()
    book.properties.creator = creator
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)


@pytest.mark.parametrize(
    "name",
    ["~$Book1.xlsx", ".data.xlsx.tmp", "._data.xlsx", "data.xlsx~", ".~lock.a.xlsx#"],
)
def test_owner_dot_and_backup_names_are_temporary(name: str) -> None:
    assert is_temporary_name(name)


@pytest.mark.parametrize("name", ["Book1.xlsx", "animals.csv", "a~b.csv"])
def test_ordinary_workbook_names_are_not_temporary(name: str) -> None:
    assert not is_temporary_name(name)


def test_sidecars_and_lock_files_are_recognised_by_name() -> None:
    assert is_default_sidecar(Path("animals.validation.xlsx"))
    assert is_default_sidecar(Path("animals.Validation.CSV"))
    assert not is_default_sidecar(Path("animals.xlsx"))
    assert is_lock_file(Path("~$Book1.xlsx"))
    assert is_lock_file(Path(".~lock.data.csv#"))
    assert not is_lock_file(Path("data.csv"))


def test_a_lock_file_names_its_workbook(tmp_path: Path) -> None:
    (tmp_path / "Book1.xlsx").write_bytes(b"")
    (tmp_path / "MyReport.xlsx").write_bytes(b"")

    libre = workbooks_for_lock_file(tmp_path / ".~lock.data.csv#")
    excel = workbooks_for_lock_file(tmp_path / "~$Book1.xlsx")
    shortened = workbooks_for_lock_file(tmp_path / "~$Report.xlsx")

    assert libre == [tmp_path / "data.csv"]
    assert excel == [tmp_path / "Book1.xlsx"]
    assert shortened == [tmp_path / "Report.xlsx", tmp_path / "MyReport.xlsx"]


def test_a_workbook_is_open_while_either_editors_lock_file_exists(
    tmp_path: Path,
) -> None:
    book = tmp_path / "data.xlsx"
    assert not is_open_in_editor(book)

    (tmp_path / ".~lock.data.xlsx#").write_text(",me,host,03.12.2026 12:33,x;")
    assert is_open_in_editor(book)
    (tmp_path / ".~lock.data.xlsx#").unlink()
    (tmp_path / "~$data.xlsx").write_bytes(b"\x02me")
    assert is_open_in_editor(book)


def test_an_xlsx_fingerprint_ignores_document_properties(tmp_path: Path) -> None:
    save_xlsx(tmp_path / "a.xlsx", [["animal_id"], ["A1"]], creator="alice")
    save_xlsx(tmp_path / "b.xlsx", [["animal_id"], ["A1"]], creator="bob")
    save_xlsx(tmp_path / "c.xlsx", [["animal_id"], ["A2"]], creator="alice")

    a, b, c = (fingerprint_workbook(tmp_path / f"{n}.xlsx") for n in "abc")

    assert a == b
    assert a != c


def test_a_csv_fingerprint_is_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("animal_id\nA1\n")
    (tmp_path / "b.csv").write_text("animal_id\nA1\n")
    (tmp_path / "c.csv").write_text("animal_id\nA1\r\n")

    assert fingerprint_workbook(tmp_path / "a.csv") == fingerprint_workbook(
        tmp_path / "b.csv"
    )
    assert fingerprint_workbook(tmp_path / "a.csv") != fingerprint_workbook(
        tmp_path / "c.csv"
    )


def test_empty_truncated_and_corrupt_xlsx_files_are_incomplete(tmp_path: Path) -> None:
    save_xlsx(tmp_path / "whole.xlsx", [["animal_id"], ["A1"]])
    data = (tmp_path / "whole.xlsx").read_bytes()
    (tmp_path / "empty.xlsx").write_bytes(b"")
    (tmp_path / "half.xlsx").write_bytes(data[: len(data) // 2])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "no-types.xlsx").write_bytes(buffer.getvalue())
    # Flip a byte inside the stored data of the first member: its CRC fails.
    with zipfile.ZipFile(tmp_path / "whole.xlsx") as archive:
        first = archive.infolist()[0]
    offset = first.header_offset + 30 + len(first.filename.encode()) + 2
    corrupt = bytearray(data)
    corrupt[offset] ^= 0xFF
    (tmp_path / "corrupt.xlsx").write_bytes(bytes(corrupt))

    for name in ("empty", "half", "no-types", "corrupt"):
        with pytest.raises(IncompleteWorkbookError):
            fingerprint_workbook(tmp_path / f"{name}.xlsx")


def test_temporary_files_of_writes_a_crash_cut_short_are_swept_and_nothing_else(
    tmp_path: Path,
) -> None:
    nested = tmp_path / "lab"
    nested.mkdir()
    now = time.time()

    def interrupted(folder: Path, target: str, age: float) -> Path:
        # Named exactly as write_atomically names its temporary file.
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".{target}.", suffix=".tmp")
        os.write(handle, b"PK\x03\x04 half a workbook")
        os.close(handle)
        os.utime(name, (now - age, now - age))
        return Path(name)

    stale = interrupted(tmp_path, "animals.xlsx", 600)
    stale_sidecar = interrupted(nested, "animals.validation.xlsx", 600)
    fresh = interrupted(tmp_path, "mice.xlsx", 5)
    users = tmp_path / ".notes.tmp"
    users.write_text("mine")
    os.utime(users, (now - 600, now - 600))
    workbook = tmp_path / "animals.xlsx"
    workbook.write_bytes(b"PK\x03\x04")

    removed = sweep_interrupted_writes(walk_files([tmp_path]), older_than=60, now=now)

    assert sorted(removed) == sorted([stale, stale_sidecar])
    assert not stale.exists()
    assert not stale_sidecar.exists()
    assert fresh.exists()
    assert users.exists()
    assert workbook.exists()
