"""Crashes: `kill -9` of a running daemon at random points of pushes and pulls.

`curation-sync run` runs as a subprocess on a real folder. Each round makes one
change, a local save (a new row `K<n>` and a counter cell) or a remote edit by
another contributor (a new row `R<n>`, which the next poll pulls into the
workbook), then SIGKILLs the daemon at a random moment: after a random number of
requests reached the sandbox, or after a random delay (a fifth of requests answer
slowly, which widens the windows between requests and mid-write). The daemon is
started again each time. After each restart, once it has caught up: every local
save is on Synapse exactly once, every remote edit is in the workbook, no upsert
key is repeated, the workbook and sidecar open with openpyxl, and the state
store passes `PRAGMA integrity_check`. Rounds: `CURATION_SYNC_KILLS` (8 in CI, 50
for the full run); the seed is `CURATION_SYNC_SEED`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import openpyxl
import pytest
from synapseclient import Synapse

from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from tests.conftest import ConnectFactory
from tests.reliability.harness import (
    DaemonProcess,
    count,
    opens_cleanly,
    report,
    sidecar_text,
    state_store_ok,
    write_config,
)
from tests.synctools import edit_remotely, remote_rows

pytestmark = pytest.mark.reliability

KILLS = count("KILLS", 8)
SEED = count("SEED", 20261203)
RECORD_SET = "syn1003"
WORKBOOK = "AnimalMetadata_Curation.xlsx"


def local_save(path: Path, number: int) -> None:
    """A person's save: one new row and the A001 counter, renamed into place."""
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    values = {"animal_id": f"K{number:03d}", "genotype": "WT", "sex": "female"}
    sheet.append([values.get(str(name)) for name in header])
    for cells in sheet.iter_rows(min_row=2):
        if cells[header.index("animal_id")].value == "A001":
            cells[header.index("age_weeks")].value = number
    temporary = path.with_name(f"~${path.stem}.tmp")
    book.save(temporary)
    temporary.replace(path)


def workbook_keys(path: Path) -> list[str]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = list(next(rows))
        index = header.index("animal_id")
        return [str(row[index]) for row in rows if row and row[index]]
    finally:
        book.close()


def wait_for(check: object, seconds: float, what: str, run: DaemonProcess) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # noqa: BLE001 - a half-written file or a busy server
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{run.text()[-4000:]}")
        time.sleep(0.3)


def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    sandbox: Sandbox, tmp_path: Path, connect: ConnectFactory
) -> None:
    chooser = random.Random(SEED)
    folder = tmp_path / "folder"
    folder.mkdir()
    config = write_config(sandbox, tmp_path / "home", folder, poll=1.0)
    admin: Synapse = connect(sandbox, sandbox.token("admin"))
    workbook = folder / WORKBOOK
    logs = tmp_path / "logs"
    logs.mkdir()

    run = DaemonProcess(config, logs / "run-0.log")
    wait_for(lambda: "Started curation-sync" in run.text(), 90, "the first start", run)
    sandbox.faults.add(r".*", "delay", delay_seconds=0.15, rate=0.2)

    local: list[str] = []
    history: list[str] = []
    remote: list[str] = []
    kinds = {"save": 0, "remote": 0}
    kill_after = {"requests": 0, "delay": 0}
    started = time.monotonic()
    try:
        for round_number in range(1, KILLS + 1):
            before = len(sandbox.request_log)
            if chooser.random() < 0.6:
                kinds["save"] += 1
                local_save(workbook, round_number)
                local.append(f"K{round_number:03d}")
                history.append(f"save {round_number}")
            else:
                kinds["remote"] += 1
                _, rows = remote_rows(admin, RECORD_SET)
                template = dict(rows[0])
                key = f"R{round_number:03d}"
                edit_remotely(
                    admin, RECORD_SET, tmp_path, [{**template, "animal_id": key}]
                )
                remote.append(key)
                history.append(f"remote {round_number}")
                before = len(sandbox.request_log)

            # Kill on a request count or after a delay, as a crash would.
            if chooser.random() < 0.6:
                kill_after["requests"] += 1
                target = before + chooser.randint(1, 40)
                deadline = time.monotonic() + 20
                while len(sandbox.request_log) < target and time.monotonic() < deadline:
                    time.sleep(0.005)
            else:
                kill_after["delay"] += 1
                time.sleep(chooser.uniform(0.0, 2.5))
            history.append(f"kill after {len(sandbox.request_log) - before} requests")
            run.kill()

            run = DaemonProcess(config, logs / f"run-{round_number}.log")

            def caught_up() -> bool:
                _, rows = remote_rows(admin, RECORD_SET)
                keys = {row["animal_id"] for row in rows}
                if not set(local) <= keys:
                    return False
                return set(remote) <= set(workbook_keys(workbook))

            wait_for(caught_up, 120, f"round {round_number} to catch up", run)

            # The invariants, after every restart.
            version, rows = remote_rows(admin, RECORD_SET)
            keys = [row["animal_id"] for row in rows]
            assert len(keys) == len(set(keys)), f"round {round_number}: repeated keys"
            local_keys = workbook_keys(workbook)
            assert len(local_keys) == len(set(local_keys)), f"round {round_number}"
            assert opens_cleanly(workbook), f"round {round_number}: damaged workbook"
            sidecar = sidecar_path(workbook)
            if sidecar.exists():
                assert opens_cleanly(sidecar), f"round {round_number}: damaged sidecar"
            assert state_store_ok(folder) == "ok", f"round {round_number}"
    finally:
        sandbox.faults.clear()
        if run.alive():
            # A stop during start-up is a kill; let the last restart finish first.
            wait_for(lambda: "Started curation-sync" in run.text(), 90, "a start", run)
            assert run.stop() == 0

    a001 = next(row for row in rows if row["animal_id"] == "A001")
    last_save = max((int(k[1:]) for k in local), default=None)
    if last_save is not None:
        sidecar = sidecar_path(workbook)
        detail = sidecar_text(sidecar) if sidecar.exists() else "(no sidecar)"
        assert a001["age_weeks"] == str(last_save), (
            "; ".join(history) + " || " + detail[:1500].replace("\n", " | ")
        )
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    report(
        "crashes",
        kills=KILLS,
        seed=SEED,
        local_saves=kinds["save"],
        remote_edits=kinds["remote"],
        killed_on_request_count=kill_after["requests"],
        killed_after_delay=kill_after["delay"],
        lost_edits=0,
        duplicated_rows=0,
        versions=version,
        leftover_temp_files=len(leftovers),
        seconds=f"{time.monotonic() - started:.0f}",
    )


# Regression tests, one per failure the suite found -------------------------------


def start(config: Path, log: Path) -> DaemonProcess:
    run = DaemonProcess(config, log)
    wait_for(lambda: "Started curation-sync" in run.text(), 90, "the start", run)
    return run


def kill_when_logged(run: DaemonProcess, line: str) -> None:
    wait_for(lambda: line in run.text(), 60, repr(line), run)
    run.kill()


def test_a_kill_after_the_hash_was_stored_does_not_hold_back_pulls_forever_regression(
    sandbox: Sandbox, tmp_path: Path, connect: ConnectFactory
) -> None:
    # Killed while setting the task to IN_PROGRESS, the last step of the first
    # push: the stored hash made every later push "unchanged", so the outbox
    # entry stayed and every pull waited for it.
    folder = tmp_path / "folder"
    folder.mkdir()
    config = write_config(sandbox, tmp_path / "home", folder, poll=1.0)
    admin = connect(sandbox, sandbox.token("admin"))
    run = start(config, tmp_path / "run-1.log")
    sandbox.faults.add(
        r"/curation/task/\d+/status", "delay", method="PUT", delay_seconds=5
    )
    local_save(folder / WORKBOOK, 1)
    kill_when_logged(run, "Synapse: set task 101 to IN_PROGRESS")
    sandbox.faults.clear()

    _, rows = remote_rows(admin, RECORD_SET)
    edit_remotely(admin, RECORD_SET, tmp_path, [{**rows[0], "animal_id": "R001"}])
    run = start(config, tmp_path / "run-2.log")
    try:
        wait_for(
            lambda: "R001" in workbook_keys(folder / WORKBOOK), 60, "the pull", run
        )
    finally:
        assert run.stop() == 0


def test_a_kill_after_synchronize_does_not_make_the_next_save_a_conflict_regression(
    sandbox: Sandbox, tmp_path: Path, connect: ConnectFactory
) -> None:
    # Killed after the grid was synchronized but before the new base was stored:
    # the next save of the same cell met this push's own value on Synapse and
    # called it a conflict, so the save never landed.
    folder = tmp_path / "folder"
    folder.mkdir()
    config = write_config(sandbox, tmp_path / "home", folder, poll=1.0)
    admin = connect(sandbox, sandbox.token("admin"))
    run = start(config, tmp_path / "run-1.log")
    sandbox.faults.add(r"/entity/syn1003", "delay", method="GET", delay_seconds=2)
    local_save(folder / WORKBOOK, 1)
    kill_when_logged(run, "Synapse: fetch the validation results of syn1003")
    sandbox.faults.clear()
    assert remote_rows(admin, RECORD_SET)[1][0]["age_weeks"] == "1"

    local_save(folder / WORKBOOK, 2)
    run = start(config, tmp_path / "run-2.log")
    try:
        wait_for(
            lambda: (
                {r["animal_id"]: r for r in remote_rows(admin, RECORD_SET)[1]}["A001"][
                    "age_weeks"
                ]
                == "2"
            ),
            60,
            "the second save on Synapse",
            run,
        )
    finally:
        assert run.stop() == 0
    assert "Conflicts not pushed\n0\n" in sidecar_text(sidecar_path(folder / WORKBOOK))
