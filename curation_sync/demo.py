"""`curation-sync demo`: the sandbox, the daemon and a folder, in one command.

The demo starts the sandbox with its demo scenario, points a daemon at a folder, and
waits for the demo task's workbook to be pulled into it. The scripted variant then
plays a person's edit (a valid change, an invalid enum, a blank required cell), saves
the way Excel does (a temp file renamed into place), waits for the sidecar that
carries Synapse's validation report, and returns its lines.
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import openpyxl

from curation_sync.config import Config, FolderConfig, Secret, endpoints_for
from curation_sync.daemon import Daemon
from curation_sync.errors import CurationSyncError
from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from curation_sync.sync import WorkbookStatus

DEMO_PROJECT = "syn1000"
DEMO_TASK_ID = 101

T = TypeVar("T")


@dataclass(frozen=True)
class DemoSession:
    """A running demo: its sandbox, daemon, folder and the demo task's workbook."""

    sandbox: Sandbox
    daemon: Daemon
    folder: Path
    workbook: Path


def demo_config(endpoint: str, token: str, folder: Path, state_dir: Path) -> Config:
    return Config(
        endpoints=endpoints_for(endpoint),
        token=Secret(token),
        state_dir=state_dir,
        folders=(
            FolderConfig(
                path=folder,
                project=DEMO_PROJECT,
                debounce_seconds=1.0,
                polling_interval_seconds=1.0,
                poll_interval_seconds=30.0,
            ),
        ),
    )


@contextmanager
def demo_session(
    folder: Path | None, port: int, timeout_seconds: float = 60.0
) -> Iterator[DemoSession]:
    """Start the sandbox and the daemon; yield once the demo workbook is pulled."""
    work = Path(tempfile.mkdtemp(prefix="curation-sync-demo-"))
    folder = folder or work / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    with Sandbox(work / "sandbox", port=port, scenario="demo") as sandbox:
        config = demo_config(
            sandbox.endpoint, sandbox.token("demo"), folder, work / "state"
        )
        daemon = Daemon(config)
        daemon.start()
        try:
            engine = daemon.folders[0].engine
            status = wait_for(
                lambda: _task_status(engine.status(), DEMO_TASK_ID),
                timeout_seconds,
                "the demo task's workbook to be pulled",
            )
            yield DemoSession(sandbox, daemon, folder, status.path)
        finally:
            daemon.stop()


def _task_status(statuses: list[WorkbookStatus], task_id: int) -> WorkbookStatus | None:
    for status in statuses:
        if status.task_id == task_id and status.path.exists():
            return status
    return None


def play_scripted_edit(workbook: Path) -> list[str]:
    """Edit three rows as a person would and save like Excel; return what was done."""
    book = openpyxl.load_workbook(workbook)
    sheet = book.worksheets[0]
    header = {cell.value: cell.column for cell in sheet[1] if cell.value}
    key = header["animal_id"]

    def edit(row: int, column: str, value: str | float | None) -> str:
        sheet.cell(row=row, column=header[column]).value = value
        animal = sheet.cell(row=row, column=key).value
        shown = "blank" if value is None else repr(value)
        return f"row {row} ({animal}): {column} set to {shown}"

    done = [
        edit(2, "weight_g", 31.5),
        edit(3, "sex", "other"),
        edit(4, "genotype", None),
    ]

    # Excel's pattern: write a temp file beside the workbook, then rename it over.
    temp = workbook.with_name(f"~demo{os.getpid()}.tmp")
    book.save(temp)
    os.replace(temp, workbook)
    return done


def wait_for_synapse_report(
    session: DemoSession, since_version: int | None, timeout_seconds: float = 90.0
) -> Path:
    """Wait for a sidecar checked by Synapse for a version after `since_version`."""
    folder = session.daemon.folders[0].config
    path = sidecar_path(session.workbook, name_template=folder.sidecar_name)

    def reported() -> Path | None:
        summary = read_summary(path)
        version = str(summary.get("Version", ""))
        if summary.get("Checked by") != "Synapse" or not version.isdigit():
            return None
        moved = since_version is None or int(version) > since_version
        return path if moved else None

    return wait_for(reported, timeout_seconds, "Synapse's validation report")


def read_summary(path: Path) -> dict[str, object]:
    """The sidecar's Summary sheet as label: value; empty while it is not there."""
    try:
        book = openpyxl.load_workbook(path, read_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    try:
        rows = book["Summary"].iter_rows(max_col=2, values_only=True)
        return {str(label): value for label, value in rows}
    finally:
        book.close()


def describe_sidecar(path: Path) -> list[str]:
    """The sidecar's summary and violations as plain lines."""
    book = openpyxl.load_workbook(path, read_only=True)
    lines = []
    for label, value in book["Summary"].iter_rows(values_only=True):
        lines.append(f"  {label}: {value}")
    if "Violations" in book.sheetnames:
        rows = list(book["Violations"].iter_rows(values_only=True))
        lines.append("  Violations:")
        for row, key, column, value, message, *_ in rows[1:]:
            shown = "" if value in (None, "") else f" = {value!r}"
            lines.append(f"    sheet row {row} ({key}) {column}{shown}: {message}")
    book.close()
    return lines


def wait_for(check: Callable[[], T | None], timeout_seconds: float, what: str) -> T:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)
    raise CurationSyncError(
        f"Gave up after {timeout_seconds:.0f} s waiting for {what}."
    )
