"""Helpers for the sync engine's end-to-end tests: real files, real client, sandbox."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import openpyxl
from synapseclient import Synapse
from synapseclient.models import Grid, RecordSet
from synapseclient.models.curation import SyncType

from curation_sync.sandbox import Sandbox
from curation_sync.state import StateStore
from curation_sync.synapse import RetryLimits, SynapseAdapter
from curation_sync.sync import SyncEngine, SyncSettings

FAST_LIMITS = RetryLimits(
    max_wait_seconds=1.0, retries=1, http_timeout_seconds=10, job_timeout_seconds=20
)


def make_adapter(sandbox: Sandbox, home: Path, user: str = "demo") -> SynapseAdapter:
    """A daemon adapter with its own config file and cache under `home`."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "synapseConfig"
    config.write_text("")
    return SynapseAdapter(
        sandbox.endpoint,
        sandbox.token(user),
        cache_dir=home / "cache",
        config_path=config,
        limits=FAST_LIMITS,
    )


def demo_ids(sandbox: Sandbox) -> dict[str, str]:
    """The demo scenario's project, record set and record-based task ids."""
    info = sandbox.info()
    return {
        "project": info["projects"]["project"],
        "record_set": info["record_sets"]["animals"],
        "task": str(info["tasks"]["animal_task"]),
    }


def adapter_for(sandbox: Sandbox, home: Path) -> Iterator[SynapseAdapter]:
    """A fixture body: an adapter for the demo user, closed afterwards."""
    made = make_adapter(sandbox, home)
    yield made
    made.close()


def make_engine(
    adapter: SynapseAdapter,
    folder: Path,
    project_id: str,
    state: StateStore | None = None,
    **settings: Any,
) -> SyncEngine:
    folder.mkdir(parents=True, exist_ok=True)
    return SyncEngine(
        adapter,
        state or StateStore(folder),
        SyncSettings(folder=folder, project_id=project_id, **settings),
    )


def header_of(path: Path) -> list[str]:
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    return [str(cell.value) for cell in sheet[1]]


def edit_xlsx(path: Path, edits: Mapping[tuple[int, str], Any]) -> None:
    """Change cells as a person would, by sheet row and column name, and save."""
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    columns = [str(cell.value) for cell in sheet[1]]
    for (row, column), value in edits.items():
        # `cell(..., value=None)` would leave the old value; assign to clear it.
        sheet.cell(row=row, column=columns.index(column) + 1).value = value
    book.save(path)


def delete_xlsx_row(path: Path, row: int) -> None:
    book = openpyxl.load_workbook(path)
    book.worksheets[0].delete_rows(row)
    book.save(path)


def remote_rows(
    client: Synapse, record_set_id: str
) -> tuple[int, list[dict[str, str]]]:
    """The current version number and rows of a record set, read by another client."""
    entity = RecordSet(id=record_set_id).get(synapse_client=client)
    with open(entity.path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return int(entity.version_number), rows


def edit_remotely(
    client: Synapse, record_set_id: str, tmp: Path, rows: list[dict[str, str]]
) -> None:
    """Another contributor's edit: a grid of their own, an import, PULL_PUSH."""
    grid = Grid(record_set_id=record_set_id).create(synapse_client=client)
    path = tmp / f"remote-edit-{time.monotonic_ns()}.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    grid.import_csv(path=str(path), synapse_client=client)
    grid.synchronize(sync_type=SyncType.PULL_PUSH, synapse_client=client)


def sheet_rows(path: Path, title: str) -> list[list[Any]]:
    """The rows (header first) of one sheet of a sidecar."""
    book = openpyxl.load_workbook(path)
    return [[cell.value for cell in row] for row in book[title].iter_rows()]


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_daemon_config(
    sandbox: Sandbox, home: Path, folder: Path, extra: str = ""
) -> Path:
    """A daemon config for the demo user on `folder`, with its token in a file."""
    token_file = home / "token"
    token_file.write_text(sandbox.token("demo"))
    token_file.chmod(0o600)
    config = home / "config.toml"
    config.write_text(
        f'[synapse]\nendpoint = "{sandbox.endpoint}"\ntoken_file = "{token_file}"\n'
        f'[daemon]\nstate_dir = "{home / "state"}"\n'
        f'[[folder]]\npath = "{folder}"\nproject = "syn1000"\n{extra}'
    )
    return config
