"""Concurrency: saves during a push, two workbooks on one task, two daemons on one
folder, and a web-grid edit between two local saves. No update is lost, and a real
conflict is reported in the sidecar instead of being overwritten.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from tests.conftest import ConnectFactory
from tests.reliability.harness import (
    DaemonProcess,
    InProcessDaemon,
    report,
    sidecar_text,
    write_config,
)
from tests.synctools import edit_remotely, edit_xlsx, remote_rows, wait_until

pytestmark = pytest.mark.reliability

RECORD_SET = "syn1003"
WORKBOOK = "AnimalMetadata_Curation.xlsx"


def remote_cell(client: object, key: str, column: str) -> str:
    _, rows = remote_rows(client, RECORD_SET)  # type: ignore[arg-type]
    return {row["animal_id"]: row for row in rows}[key][column]


def eventually(check: object, seconds: float, what: str) -> None:
    """Like wait_until, but a check that raises (a file mid-write) is just False."""

    def safe() -> bool:
        try:
            return bool(check())  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - try again on the next look
            return False

    wait_until(safe, seconds, what)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "folder"
    made.mkdir()
    return made


def test_a_save_during_a_push_lands_after_it(
    sandbox: Sandbox, tmp_path: Path, folder: Path, connect: ConnectFactory
) -> None:
    admin = connect(sandbox, sandbox.token("admin"))
    config = write_config(sandbox, tmp_path / "home", folder)
    with InProcessDaemon(config) as running:
        workbook = folder / WORKBOOK
        wait_until(workbook.exists, 60, "the pull")
        sandbox.faults.add(
            r"/grid/synchronize/async/start", "delay", delay_seconds=2, count=1
        )
        edit_xlsx(workbook, {(2, "genotype"): "FIRST"})
        wait_until(
            lambda: running.log.count("Synapse: synchronize grid session") > 0,
            60,
            "the first push to reach synchronize",
        )
        edit_xlsx(workbook, {(3, "genotype"): "SECOND"})
        eventually(
            lambda: remote_cell(admin, "A002", "genotype") == "SECOND",
            90,
            "the second save",
        )
    assert remote_cell(admin, "A001", "genotype") == "FIRST"
    assert running.log.count("Unexpected failure") == 0


def test_two_workbooks_of_one_task_land_and_a_stale_copy_is_a_conflict_regression(
    sandbox: Sandbox, tmp_path: Path, folder: Path, connect: ConnectFactory
) -> None:
    admin = connect(sandbox, sandbox.token("admin"))
    config = write_config(sandbox, tmp_path / "home", folder)
    with InProcessDaemon(config):
        original = folder / WORKBOOK
        wait_until(original.exists, 60, "the pull")
        # A copy made at version 1 keeps the task identity inside it.
        copy = folder / "AnimalMetadata copy.xlsx"
        shutil.copyfile(original, tmp_path / "copy.xlsx")
        shutil.move(tmp_path / "copy.xlsx", copy)

        edit_xlsx(original, {(3, "genotype"): "FROM-ORIGINAL"})
        eventually(
            lambda: remote_cell(admin, "A002", "genotype") == "FROM-ORIGINAL",
            60,
            "the original's push",
        )
        edit_xlsx(copy, {(4, "genotype"): "FROM-COPY", (3, "genotype"): "CLASH"})
        eventually(
            lambda: remote_cell(admin, "A003", "genotype") == "FROM-COPY",
            60,
            "the copy's push",
        )
        eventually(
            lambda: "conflict" in sidecar_text(sidecar_path(copy)).lower(),
            30,
            "the conflict in the copy's sidecar",
        )
    # The copy never saw FROM-ORIGINAL: its CLASH is a conflict, not an overwrite.
    assert remote_cell(admin, "A002", "genotype") == "FROM-ORIGINAL"
    not_pushed = sidecar_text(sidecar_path(copy))
    assert "CLASH" in not_pushed
    assert "FROM-ORIGINAL" in not_pushed


def test_a_second_daemon_on_the_same_folder_refuses_and_the_first_pushes_once(
    sandbox: Sandbox, tmp_path: Path, folder: Path, connect: ConnectFactory
) -> None:
    admin = connect(sandbox, sandbox.token("admin"))
    first_config = write_config(sandbox, tmp_path / "home-1", folder)
    second_config = write_config(sandbox, tmp_path / "home-2", folder)
    first = DaemonProcess(first_config, tmp_path / "first.log")
    second = None
    try:
        wait_until(lambda: "Started curation-sync" in first.text(), 60, "the first")
        second = DaemonProcess(second_config, tmp_path / "second.log")
        second.process.wait(timeout=60)
        code = second.stop()
        assert code != 0
        assert "lock" in second.text().lower()

        syncs = sandbox.request_log.count("POST", r"/grid/synchronize/async/start")
        edit_xlsx(folder / WORKBOOK, {(2, "genotype"): "ONCE"})
        eventually(
            lambda: remote_cell(admin, "A001", "genotype") == "ONCE", 60, "the push"
        )
        time.sleep(1.0)  # room for a second push, if there were one to come
        pushes = (
            sandbox.request_log.count("POST", r"/grid/synchronize/async/start") - syncs
        )
        assert pushes == 1
    finally:
        assert first.stop() == 0
    version, _ = remote_rows(admin, RECORD_SET)
    assert version == 2
    report("concurrency", second_daemon_exit=code, pushes_of_one_save=pushes)


def test_a_web_grid_edit_between_two_saves_is_kept_and_a_clash_reported(
    sandbox: Sandbox, tmp_path: Path, folder: Path, connect: ConnectFactory
) -> None:
    admin = connect(sandbox, sandbox.token("admin"))
    config = write_config(sandbox, tmp_path / "home", folder)
    with InProcessDaemon(config):
        workbook = folder / WORKBOOK
        wait_until(workbook.exists, 60, "the pull")
        edit_xlsx(workbook, {(2, "weight_g"): 30})
        eventually(
            lambda: remote_cell(admin, "A001", "weight_g") == "30", 60, "save one"
        )

        # Another curator edits the record set in the web grid.
        _, rows = remote_rows(admin, RECORD_SET)
        a004 = next(row for row in rows if row["animal_id"] == "A004")
        edit_remotely(admin, RECORD_SET, tmp_path, [{**a004, "genotype": "WEB"}])

        edit_xlsx(workbook, {(5, "genotype"): "LOCAL", (6, "genotype"): "HOM"})
        eventually(
            lambda: remote_cell(admin, "A005", "genotype") == "HOM", 60, "save two"
        )
        eventually(
            lambda: (
                "conflict" in sidecar_text(sidecar_path(workbook)).lower()
                and "WEB" in sidecar_text(sidecar_path(workbook))
            ),
            30,
            "the conflict in the sidecar",
        )
    assert remote_cell(admin, "A004", "genotype") == "WEB"
    assert remote_cell(admin, "A001", "weight_g") == "30"
