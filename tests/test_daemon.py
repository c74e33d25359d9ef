"""The daemon as people run it: `curation-sync run` in a subprocess on a real folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from synapseclient import Synapse

from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from tests.synctools import (
    edit_xlsx,
    remote_rows,
    sheet_rows,
    wait_until,
    write_daemon_config,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")

WORKBOOK = "AnimalMetadata_Curation.xlsx"


class Run:
    """One `curation-sync run` process, its stderr collected in a file."""

    def __init__(
        self, config: Path, log: Path, command: list[str] | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SYNAPSE_AUTH_TOKEN"}
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            command
            or [sys.executable, "-m", "curation_sync", "run", "--config", str(config)],
            stderr=self._log_file,
            stdout=subprocess.DEVNULL,
            env=env,
        )

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self._log_file.close()
        return code


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "folder"
    path.mkdir()
    return path


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path, folder: Path) -> Path:
    return write_daemon_config(
        sandbox,
        tmp_path,
        folder,
        "debounce_seconds = 0.5\npolling_interval_seconds = 0.5\n",
    )


@pytest.fixture
def run(config: Path, tmp_path: Path) -> Iterator[Run]:
    started = Run(config, tmp_path / "daemon-1.log")
    yield started
    if started.process.poll() is None:
        started.stop()


def test_run_pulls_the_task_and_pushes_a_save_with_the_sidecar(
    run: Run, folder: Path, sandbox: Sandbox, synapse_client: Synapse
) -> None:
    workbook = folder / WORKBOOK
    wait_until(workbook.exists, 60, "the demo task's workbook")
    wait_until(lambda: "Started curation-sync" in run.text(), 30, "the daemon start")

    edit_xlsx(workbook, {(3, "sex"): "other"})

    sidecar = sidecar_path(workbook)
    wait_until(lambda: "Pushed " in run.text(), 60, "the push")
    version, rows = remote_rows(synapse_client, "syn1003")
    assert version == 2
    assert [r["sex"] for r in rows if r["animal_id"] == "A002"] == ["other"]
    violations = sheet_rows(sidecar, "Violations")
    assert [row[2] for row in violations[1:]] == ["sex"]
    assert run.stop() == 0


def test_sigterm_in_the_middle_of_a_push_lets_it_finish_exactly_once(
    run: Run,
    folder: Path,
    config: Path,
    tmp_path: Path,
    sandbox: Sandbox,
    synapse_client: Synapse,
) -> None:
    workbook = folder / WORKBOOK
    wait_until(workbook.exists, 60, "the demo task's workbook")
    wait_until(lambda: "Started curation-sync" in run.text(), 30, "the daemon start")
    sandbox.faults.add(r"/grid/synchronize/async/start", "delay", delay_seconds=3)

    edit_xlsx(workbook, {(2, "weight_g"): 77.25})
    wait_until(
        lambda: sandbox.request_log.count("GET", r"/grid/import/csv/async/get") > 0,
        60,
        "the import step of the push",
    )
    code = run.stop()

    assert code == 0
    version, rows = remote_rows(synapse_client, "syn1003")
    assert version == 2
    assert [r["weight_g"] for r in rows if r["animal_id"] == "A001"] == ["77.25"]
    assert len({r["animal_id"] for r in rows}) == len(rows)

    # A restart finds the push done: no second version, no duplicated row.
    sandbox.faults.clear()
    syncs_before = sandbox.request_log.count("POST", r"/grid/synchronize/async/start")
    again = Run(config, tmp_path / "daemon-2.log")
    wait_until(lambda: "Started curation-sync" in again.text(), 60, "the restart")
    assert again.stop() == 0
    assert sandbox.request_log.count("POST", r"/grid/synchronize") == syncs_before
    assert remote_rows(synapse_client, "syn1003")[0] == 2


def test_sighup_reloads_the_config_and_starts_a_new_folder(
    run: Run, folder: Path, config: Path, tmp_path: Path
) -> None:
    wait_until(lambda: "Started curation-sync" in run.text(), 60, "the daemon start")
    second = tmp_path / "second"
    second.mkdir()
    config.write_text(
        config.read_text() + f'[[folder]]\npath = "{second}"\nproject = "syn1000"\n'
    )

    run.process.send_signal(signal.SIGHUP)

    wait_until(lambda: "Reloaded the configuration" in run.text(), 60, "the reload")
    wait_until((second / WORKBOOK).exists, 60, "the pull into the new folder")
    assert run.process.poll() is None
    assert run.stop() == 0


def test_a_broken_config_on_sighup_keeps_the_running_one(
    run: Run, folder: Path, config: Path
) -> None:
    wait_until(lambda: "Started curation-sync" in run.text(), 60, "the daemon start")
    good = config.read_text()
    config.write_text(good + "surprise = 1\n")

    run.process.send_signal(signal.SIGHUP)

    wait_until(lambda: "Kept the running config" in run.text(), 60, "the refusal")
    assert "'surprise'" in run.text()
    assert run.process.poll() is None
    assert run.stop() == 0


def test_a_folder_locked_by_another_daemon_stops_the_start_and_frees_the_others(
    sandbox: Sandbox, tmp_path: Path, folder: Path
) -> None:
    from curation_sync.config import load_config
    from curation_sync.daemon import Daemon
    from curation_sync.errors import CurationSyncError
    from curation_sync.lock import FolderLock
    from curation_sync.state import STATE_DIR

    second = tmp_path / "second"
    second.mkdir()
    config = write_daemon_config(
        sandbox, tmp_path, folder, f'[[folder]]\npath = "{second}"\n'
    )
    other = FolderLock(second / STATE_DIR, host="other-host")
    other.acquire()
    try:
        with pytest.raises(CurationSyncError, match="other-host"):
            Daemon(load_config(config, environ={})).start()

        assert FolderLock(folder / STATE_DIR).owner() is None
    finally:
        other.release()


def test_a_sigterm_while_the_daemon_is_still_loading_stops_it_cleanly(
    config: Path, tmp_path: Path
) -> None:
    """Importing synapseclient takes about a second; a stop then must be clean.

    The signal is sent 0.4 s after the process starts: past the interpreter's
    start, while the daemon's modules load (or, on a fast machine, later).
    """
    early = Run(config, tmp_path / "early.log")
    time.sleep(0.4)

    code = early.stop()

    assert code == 0, early.text()
    assert "Traceback" not in early.text()
    stopped = ("Stopped before starting", "Stopped curation-sync")
    assert any(line in early.text() for line in stopped), early.text()


def test_run_sweeps_temporary_files_a_killed_write_left_behind(
    config: Path, tmp_path: Path, folder: Path
) -> None:
    left = folder / f".{WORKBOOK}.k2x9_q7a.tmp"
    left.write_bytes(b"PK\x03\x04 cut short by kill -9")
    an_hour_ago = time.time() - 3600
    os.utime(left, (an_hour_ago, an_hour_ago))
    daemon = Run(config, tmp_path / "sweep.log")
    try:
        wait_until(lambda: not left.exists(), 60, "the sweep of the temporary file")
        wait_until(
            lambda: "Removed 1 temporary files" in daemon.text(), 30, "the log line"
        )
    finally:
        assert daemon.stop() == 0


# A `curation-sync run` whose stop signal reaches a thread other than the main
# one: the kernel may hand a process's signal to any of its threads.
SIGNAL_FROM_ANOTHER_THREAD = """
import signal, sys, threading, time
from pathlib import Path
from curation_sync import cli

def stop_from_this_thread():
    log = Path(sys.argv[2])
    while "Started curation-sync" not in log.read_text():
        time.sleep(0.1)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

threading.Thread(target=stop_from_this_thread, daemon=True).start()
sys.exit(cli.main(["run", "--config", sys.argv[1]]))
"""


def test_a_sigterm_taken_by_another_thread_still_stops_the_daemon(
    config: Path, tmp_path: Path
) -> None:
    log = tmp_path / "thread.log"
    driver = [sys.executable, "-c", SIGNAL_FROM_ANOTHER_THREAD, str(config), str(log)]
    daemon = Run(config, log, command=driver)
    try:
        code = daemon.process.wait(timeout=60)
    finally:
        daemon.process.kill()
        daemon.stop()

    assert code == 0, daemon.text()
    assert "Stopped curation-sync" in daemon.text()
