"""Shared parts of the reliability suites: scenarios, configs, daemons, checks.

Everything here drives real parts: a `Sandbox` on loopback, the daemon either in
this process (`InProcessDaemon`, with its real watcher and threads) or as a
`curation-sync run` subprocess (`DaemonProcess`), and real files. Counts come from
environment variables so that CI runs a reduced set and a person can run the full
one (see `count`).
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import sqlite3
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl

from curation_sync.config import load_config
from curation_sync.daemon import Daemon
from curation_sync.sandbox import Sandbox
from curation_sync.sandbox.scenario import load_scenario
from curation_sync.state import STATE_DIR, STATE_FILE
from tests.test_daemon import Run

REPO = Path(__file__).resolve().parents[2]
DEMO_COLUMNS = (
    "animal_id",
    "sex",
    "genotype",
    "weight_g",
    "age_weeks",
    "birth_date",
    "tags",
)


def count(name: str, ci_default: int) -> int:
    """A count from `CURATION_SYNC_<NAME>`, or the small CI default."""
    return int(os.environ.get(f"CURATION_SYNC_{name}", ci_default))


def report(suite: str, **figures: object) -> None:
    """Print one suite's figures on one line (`pytest -s` shows them)."""
    shown = ", ".join(f"{name}={value}" for name, value in figures.items())
    print(f"\n[reliability:{suite}] {shown}")  # noqa: T201 - the figures are the point


def scenario_with_workbooks(
    workbooks: int, *, rows: int = 5, name_format: str = "Cohort_{:03d}"
) -> dict[str, Any]:
    """The demo scenario plus `workbooks` record-based tasks, each on its own set.

    Each extra record set has the demo schema and `rows` rows keyed `A001`...; each
    task is assigned to the demo user and named by `name_format`.
    """
    scenario = copy.deepcopy(load_scenario("demo"))
    template = scenario["record_sets"][0]
    task_template = scenario["tasks"][0]
    for number in range(1, workbooks + 1):
        key = f"extra_{number}"
        scenario["record_sets"].append(
            {
                **template,
                "key": key,
                "name": f"cohort_{number}",
                "rows": [demo_row(i) for i in range(1, rows + 1)],
            }
        )
        scenario["tasks"].append(
            {
                **task_template,
                "key": f"task_{number}",
                "data_type": name_format.format(number),
                "record_set": key,
            }
        )
    return scenario


def demo_row(number: int) -> list[str]:
    return [
        f"A{number:03d}",
        ("male", "female", "unknown")[number % 3],
        "WT",
        f"{20 + number % 10}.5",
        str(6 + number % 5),
        "2026-01-05",
        '["cohort1"]',
    ]


def write_config(
    sandbox: Sandbox,
    home: Path,
    folder: Path,
    *,
    debounce: float = 0.3,
    poll: float = 300.0,
    rules: Sequence[tuple[str, int]] = (),
    project: str = "syn1000",
    extra: str = "",
) -> Path:
    """A daemon config for one watched folder, the token in a private file.

    `extra` holds more `[[folder]]` settings, one `key = value` per line.
    """
    home.mkdir(parents=True, exist_ok=True)
    token_file = home / "token"
    token_file.write_text(sandbox.token("demo"))
    token_file.chmod(0o600)
    text = (
        f'[synapse]\nendpoint = "{sandbox.endpoint}"\ntoken_file = "{token_file}"\n'
        f'[daemon]\nstate_dir = "{home / "state"}"\nlog_level = "DEBUG"\n'
        f'[[folder]]\npath = "{folder}"\nproject = "{project}"\n'
        f"debounce_seconds = {debounce}\npolling_interval_seconds = 0.5\n"
        f"poll_interval_seconds = {poll}\n{extra}"
    )
    for pattern, task_id in rules:
        text += f'[[folder.rule]]\npattern = "{pattern}"\ntask_id = {task_id}\n'
    config = home / "config.toml"
    config.write_text(text)
    config.chmod(0o600)
    return config


class Records(logging.Handler):
    """Collects every log record of the daemon's loggers, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    def text(self) -> str:
        return "\n".join(self.lines)

    def count(self, fragment: str) -> int:
        return sum(1 for line in list(self.lines) if fragment in line)


class InProcessDaemon:
    """`Daemon(config)` started in this process, its log records collected."""

    def __init__(
        self,
        config: Path,
    ) -> None:
        self.config = load_config(config, environ={})
        self.daemon = Daemon(self.config)
        self.log = Records()
        self._logger = logging.getLogger("curation_sync")
        self._old_level = self._logger.level

    def __enter__(self) -> InProcessDaemon:
        self._logger.addHandler(self.log)
        self._logger.setLevel(logging.DEBUG)
        self.daemon.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.daemon.stop()
        finally:
            self._logger.removeHandler(self.log)
            self._logger.setLevel(self._old_level)

    @property
    def engine(self) -> Any:
        return self.daemon.folders[0].engine


class DaemonProcess(Run):
    """One `curation-sync run` subprocess that can also be killed with SIGKILL."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when the machine loses power."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log_file.close()


def state_store_ok(folder: Path) -> str:
    """`PRAGMA integrity_check` of the folder's state store."""
    connection = sqlite3.connect(folder / STATE_DIR / STATE_FILE)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


def opens_cleanly(path: Path) -> bool:
    """Whether an XLSX file is a whole zip that openpyxl loads."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                return False
        openpyxl.load_workbook(path).close()
    except Exception:  # noqa: BLE001 - any failure means the file is damaged
        return False
    return True


def sidecar_text(path: Path) -> str:
    """Every cell of every sheet of an XLSX sidecar, as one text."""
    book = openpyxl.load_workbook(path)
    parts = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            parts.extend(str(value) for value in row if value is not None)
    return "\n".join(parts)


def folder_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            yield path
