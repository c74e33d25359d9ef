"""Bad input: hostile and broken files get one clear message and change nothing.

Every file of `hostile.HOSTILE` maps to the demo task by a rule (`hostile_*`). Each
is first pushed on its own through the sync engine (one test per file, so a failure
names the file), then all of them are dropped at once into the folder of a running
daemon with its real watcher: the daemon keeps running and still pushes a good edit
afterwards, and no record set version is created by any hostile file.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from synapseclient import Synapse

from curation_sync.mapping import MappingRule
from curation_sync.sandbox import Sandbox, write_synapse_config
from curation_sync.sidecar import sidecar_path
from curation_sync.synapse import SynapseAdapter
from curation_sync.sync import SyncEngine
from tests.conftest import close_client
from tests.reliability.harness import (
    InProcessDaemon,
    report,
    sidecar_text,
    write_config,
)
from tests.reliability.hostile import HOSTILE, Hostile
from tests.synctools import (
    edit_xlsx,
    make_adapter,
    make_engine,
    remote_rows,
    wait_until,
)

pytestmark = pytest.mark.reliability

RECORD_SET = "syn1003"
TASK = 101
WRITES = r"/grid/import|/grid/synchronize|/grid/export|/entity/syn1003/version"


def message_for(hostile: Hostile, path: Path, log: list[logging.LogRecord]) -> str:
    """What a person is told about one file: its sidecar, and log lines naming it."""
    parts = [
        record.getMessage()
        for record in log
        if record.levelno >= logging.INFO and hostile.filename in record.getMessage()
    ]
    sidecar = sidecar_path(path)
    if sidecar.exists():
        parts.append(sidecar_text(sidecar))
    return "\n".join(parts)


def sandbox_writes(sandbox: Sandbox) -> int:
    return sum(
        1
        for entry in sandbox.request_log.entries()
        if entry.method in ("POST", "PUT") and re.search(WRITES, entry.path)
    )


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    made = make_adapter(sandbox, tmp_path / "daemon")
    yield made
    made.close()


@pytest.fixture
def engine(adapter: SynapseAdapter, tmp_path: Path) -> SyncEngine:
    made = make_engine(
        adapter,
        tmp_path / "folder",
        "syn1000",
        rules=(MappingRule(pattern="hostile_*", task_id=TASK),),
    )
    made.poll()
    return made


@dataclass
class Shared:
    sandbox: Sandbox
    engine: SyncEngine
    client: Synapse


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One sandbox and engine for every file: none of them may change Synapse."""
    home = tmp_path_factory.mktemp("bad-input")
    with Sandbox(home / "sandbox-data", scenario="demo") as sandbox:
        adapter = make_adapter(sandbox, home / "daemon")
        engine = make_engine(
            adapter,
            home / "folder",
            "syn1000",
            rules=(MappingRule(pattern="hostile_*", task_id=TASK),),
        )
        engine.poll()
        client_home = home / "client"
        client_home.mkdir()
        endpoint = sandbox.endpoint
        client = Synapse(
            repoEndpoint=endpoint,
            authEndpoint=endpoint,
            fileHandleEndpoint=endpoint,
            portalEndpoint=endpoint + "/",
            skip_checks=True,
            configPath=str(
                write_synapse_config(
                    client_home / "synapseConfig", endpoint, sandbox.token("admin")
                )
            ),
            cache_root_dir=str(client_home / "cache"),
            silent=True,
        )
        client.login(authToken=sandbox.token("admin"))
        try:
            yield Shared(sandbox, engine, client)
        finally:
            close_client(client)
            adapter.close()
            engine.ctx.state.close()


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.filename)
def test_a_hostile_file_gets_one_clear_message_and_changes_nothing_on_synapse(
    hostile: Hostile, shared: Shared, caplog: pytest.LogCaptureFixture
) -> None:
    engine, sandbox, synapse_client = shared.engine, shared.sandbox, shared.client
    folder = engine.ctx.settings.folder.resolve()
    path = hostile.write(folder)
    before = sandbox_writes(sandbox)
    caplog.set_level(logging.INFO, logger="curation_sync")

    started = time.monotonic()
    engine.on_settled(folder / hostile.filename)
    took = time.monotonic() - started

    message = message_for(hostile, path, caplog.records)
    assert hostile.matches(message), (
        f"no clear message for {hostile.filename}: {message!r}"
    )
    assert sandbox_writes(sandbox) == before
    assert remote_rows(synapse_client, RECORD_SET)[0] == 1
    assert took < 60, f"{hostile.filename} took {took:.1f} s"


def test_a_running_daemon_survives_every_hostile_file_at_once_and_still_pushes(
    sandbox: Sandbox, tmp_path: Path, synapse_client: Synapse
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    config = write_config(
        sandbox,
        tmp_path / "home",
        folder,
        rules=[("hostile_*", TASK)],
        extra="incomplete_timeout_seconds = 5\n",
    )
    with InProcessDaemon(config) as running:
        workbook = folder / "AnimalMetadata_Curation.xlsx"
        wait_until(workbook.exists, 60, "the demo task's workbook")
        started = time.monotonic()
        for hostile in HOSTILE:
            hostile.write(folder)

        def told(hostile: Hostile) -> bool:
            return hostile.matches(
                message_for(hostile, folder / hostile.filename, running.log.records)
            )

        deadline = time.monotonic() + 180
        missing = [h for h in HOSTILE if not h.skipped]
        while missing and time.monotonic() < deadline:
            missing = [h for h in missing if not told(h)]
            time.sleep(0.2)
        assert not missing, f"no message for {[h.filename for h in missing]}"
        handled = time.monotonic() - started
        assert sandbox_writes(sandbox) == 0
        assert remote_rows(synapse_client, RECORD_SET)[0] == 1
        unexpected = [r for r in running.log.records if "Unexpected failure" in r.msg]
        assert not unexpected, running.log.text()

        # The daemon still works: a person's real edit lands.
        edit_xlsx(workbook, {(2, "genotype"): "HOM"})
        wait_until(
            lambda: running.log.count("Pushed AnimalMetadata_Curation.xlsx") > 0,
            60,
            "the good edit's push",
        )
    version, rows = remote_rows(synapse_client, RECORD_SET)
    assert version == 2
    assert {r["animal_id"]: r["genotype"] for r in rows}["A001"] == "HOM"
    report("bad-input", files=len(HOSTILE), seconds_to_handle_all=f"{handled:.1f}")


# Regression tests, one per failure the suite found -------------------------------


def hostile_named(filename: str) -> Hostile:
    return next(h for h in HOSTILE if h.filename == filename)


def push_hostile(
    engine: SyncEngine, sandbox: Sandbox, filename: str
) -> tuple[object, int]:
    """Push one hostile file; the result and how many writes reached Synapse."""
    before = sandbox_writes(sandbox)
    path = hostile_named(filename).write(engine.ctx.settings.folder.resolve())
    result = engine.on_settled(path)
    return result, sandbox_writes(sandbox) - before


def test_a_csv_cut_short_mid_row_is_refused_instead_of_pushing_blank_cells_regression(
    engine: SyncEngine, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    result, writes = push_hostile(engine, sandbox, "hostile_truncated_row.csv")

    assert result is None  # the read failed, with the message in the sidecar
    assert writes == 0
    assert "looks cut short" in caplog.text


def test_an_unclosed_quote_in_a_csv_is_refused_instead_of_swallowing_rows_regression(
    engine: SyncEngine, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    result, writes = push_hostile(engine, sandbox, "hostile_unbalanced_quote.csv")

    assert result is None
    assert writes == 0
    assert "not a well-formed CSV file" in caplog.text


@pytest.mark.parametrize(
    ("filename", "held"),
    [
        ("hostile_merged_data_cells.xlsx", 3),
        ("hostile_formulas_keep_keys.xlsx", 5),
        ("hostile_huge_cell.xlsx", 1),
        ("hostile_control_characters.xlsx", 1),
        ("hostile_control_characters_only_bell.csv", 1),
    ],
)
def test_cells_not_read_as_shown_hold_their_rows_back_instead_of_pushing_regression(
    engine: SyncEngine, sandbox: Sandbox, filename: str, held: int
) -> None:
    # Merged cells and uncalculated formulas read as empty, calamine cuts long
    # cells at 32,767 characters, and control characters broke the sidecar.
    result, writes = push_hostile(engine, sandbox, filename)

    assert result is not None
    assert result.outcome == "nothing-to-push"  # type: ignore[attr-defined]
    assert result.held_back == held  # type: ignore[attr-defined]
    assert writes == 0
    sidecar = sidecar_path(engine.ctx.settings.folder.resolve() / filename)
    assert "held back" in sidecar_text(sidecar)


def test_a_macro_enabled_workbook_named_xlsx_is_refused_with_a_clear_message_regression(
    engine: SyncEngine, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    result, writes = push_hostile(engine, sandbox, "hostile_macro_enabled.xlsx")

    assert result is None
    assert writes == 0
    assert "macro-enabled workbook" in caplog.text


def test_a_named_pipe_with_a_workbook_name_is_skipped_not_hanging_the_push_regression(
    engine: SyncEngine, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    result, writes = push_hostile(engine, sandbox, "hostile_fifo.csv")

    assert result is None
    assert writes == 0
    assert time.monotonic() - started < 10
    assert "not a regular file" in caplog.text


def test_a_symlink_to_a_file_outside_the_folder_is_left_alone_with_a_message_regression(
    engine: SyncEngine, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="curation_sync")
    result, writes = push_hostile(engine, sandbox, "hostile_symlink_outside.xlsx")
    engine.on_settled(
        engine.ctx.settings.folder.resolve() / "hostile_symlink_outside.xlsx"
    )

    assert result is None
    assert writes == 0
    assert caplog.text.count("symbolic link to a file outside the watched folder") == 1
