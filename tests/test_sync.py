"""End-to-end tests of the sync engine: real workbooks, the real client, the sandbox."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synapseclient import Synapse
from synapseclient.models import CurationTask, RecordBasedMetadataTaskProperties

from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from curation_sync.state import STATE_DIR, STATE_FILE, StateStore
from curation_sync.synapse import SynapseAdapter
from curation_sync.sync import SyncEngine
from curation_sync.workbook import read_identity, read_workbook
from tests.synctools import (
    adapter_for,
    delete_xlsx_row,
    demo_ids,
    edit_remotely,
    edit_xlsx,
    make_engine,
    remote_rows,
    sheet_rows,
    wait_until,
)

WORKBOOK = "AnimalMetadata_Curation.xlsx"


@pytest.fixture
def ids(sandbox: Sandbox) -> dict[str, str]:
    return demo_ids(sandbox)


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    yield from adapter_for(sandbox, tmp_path / "daemon")


@pytest.fixture
def engine(adapter: SynapseAdapter, tmp_path: Path, ids: dict[str, str]) -> SyncEngine:
    return make_engine(adapter, tmp_path / "folder", ids["project"])


@pytest.fixture
def workbook(engine: SyncEngine) -> Path:
    engine.poll()
    path = engine.ctx.settings.folder.resolve() / WORKBOOK
    assert path.exists()
    return path


def test_a_saved_edit_lands_in_a_new_version_and_the_sidecar_shows_synapse_messages(
    workbook: Path,
    engine: SyncEngine,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    edit_xlsx(workbook, {(4, "sex"): "other", (3, "weight_g"): 30.5})

    result = engine.on_settled(workbook)

    assert result is not None
    assert (result.outcome, result.changed, result.added) == ("pushed", 2, 0)
    version, rows = remote_rows(synapse_client, ids["record_set"])
    assert version == 2
    by_key = {row["animal_id"]: row for row in rows}
    assert by_key["A003"]["sex"] == "other"
    assert float(by_key["A002"]["weight_g"]) == 30.5
    assert len(rows) == 5

    violations = sheet_rows(sidecar_path(workbook), "Violations")
    sheet_row, key, column, value, message = violations[1][:5]
    assert (sheet_row, key, column, value) == (4, "A003", "sex", "other")
    assert "other is not a valid enum value" in message


def test_a_save_that_changes_no_cell_sends_no_request(
    workbook: Path, engine: SyncEngine, sandbox: Sandbox
) -> None:
    # Re-saving rewrites the file's bytes but leaves every cell as it was.
    edit_xlsx(workbook, {})
    before = len(sandbox.request_log.entries())

    result = engine.on_settled(workbook)

    assert result is not None
    assert result.outcome == "unchanged"
    assert len(sandbox.request_log.entries()) == before


def test_a_row_edited_on_both_sides_is_a_conflict_and_is_not_pushed(
    workbook: Path,
    engine: SyncEngine,
    synapse_client: Synapse,
    make_client: object,
    sandbox: Sandbox,
    ids: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="curation_sync")
    edit_xlsx(workbook, {(2, "genotype"): "HET"})
    first = engine.on_settled(workbook)
    assert first is not None
    assert first.outcome == "pushed"

    other = make_client(sandbox.token("admin"))  # type: ignore[operator]
    _, rows = remote_rows(synapse_client, ids["record_set"])
    a002 = next(row for row in rows if row["animal_id"] == "A002")
    edit_remotely(other, ids["record_set"], tmp_path, [{**a002, "genotype": "WT"}])
    edit_xlsx(workbook, {(3, "genotype"): "HOM", (5, "age_weeks"): 11})

    second = engine.on_settled(workbook)

    assert second is not None
    assert (second.outcome, second.conflicts, second.changed) == ("pushed", 1, 2)
    assert f"Conflict in {WORKBOOK}: 1 rows changed on both sides" in caplog.text
    _, rows = remote_rows(synapse_client, ids["record_set"])
    by_key = {row["animal_id"]: row for row in rows}
    assert by_key["A002"]["genotype"] == "WT"
    assert by_key["A004"]["age_weeks"] == "11"
    not_pushed = sheet_rows(sidecar_path(workbook), "Not pushed")
    conflict = next(row for row in not_pushed if row[0] == "conflict")
    assert conflict[1:6] == [3, "A002", "genotype", "HOM", "WT"]

    # Saving again without resolving it still pushes nothing for that row.
    edit_xlsx(workbook, {(6, "genotype"): "KO2"})
    third = engine.on_settled(workbook)
    assert third is not None
    assert third.conflicts == 1
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert {row["animal_id"]: row for row in rows}["A002"]["genotype"] == "WT"


def test_rows_removed_or_with_blank_keys_are_reported_and_the_rest_still_go(
    workbook: Path,
    engine: SyncEngine,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    delete_xlsx_row(workbook, 6)  # A005
    edit_xlsx(workbook, {(2, "sex"): "female", (3, "animal_id"): None})

    result = engine.on_settled(workbook)

    assert result is not None
    # The blanked key no longer names A002, so A002 counts as removed too.
    assert (result.outcome, result.removed, result.held_back) == ("pushed", 2, 1)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    by_key = {row["animal_id"]: row for row in rows}
    assert by_key["A001"]["sex"] == "female"
    assert "A005" in by_key
    assert "" not in by_key
    not_pushed = sheet_rows(sidecar_path(workbook), "Not pushed")
    removed = {row[2] for row in not_pushed if row[0] == "removed locally"}
    held = [row[1] for row in not_pushed if row[0] == "held back"]
    assert removed == {"A002", "A005"}
    assert held == [3]


def test_a_save_changing_most_rows_waits_for_an_explicit_confirm(
    adapter: SynapseAdapter,
    tmp_path: Path,
    ids: dict[str, str],
    sandbox: Sandbox,
) -> None:
    engine = make_engine(
        adapter, tmp_path / "folder", ids["project"], mass_change_min_rows=3
    )
    engine.poll()
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    edit_xlsx(workbook, {(row, "genotype"): "KO" for row in range(2, 7)})
    before = len(sandbox.request_log.entries())

    held = engine.on_settled(workbook)
    statuses = {status.path.name: status for status in engine.status()}

    assert held is not None
    assert held.outcome == "needs-confirm"
    assert len(sandbox.request_log.entries()) == before
    assert statuses[WORKBOOK].state == "needs confirm"
    assert engine.resume_pending() == ()

    confirmed = engine.push(workbook, confirm=True)

    assert confirmed.outcome == "pushed"
    assert engine.ctx.state.outbox("push") == []


def test_a_new_task_assigned_to_the_user_appears_as_a_workbook_after_a_poll(
    engine: SyncEngine,
    make_client: object,
    sandbox: Sandbox,
    ids: dict[str, str],
) -> None:
    engine.poll()
    admin = make_client(sandbox.token("admin"))  # type: ignore[operator]
    demo_user = sandbox.info()["users"]["demo"]["id"]
    CurationTask(
        project_id=ids["project"],
        data_type="Mice: cohort 2/3",
        instructions="Fill in the second cohort.",
        task_properties=RecordBasedMetadataTaskProperties(
            record_set_id=ids["record_set"]
        ),
        assignee_principal_id=demo_user,
    ).store(synapse_client=admin)

    result = engine.poll()

    created = engine.ctx.settings.folder.resolve() / "Mice_ cohort 2_3.xlsx"
    assert created.exists()
    assert len(result.new_tasks) == 1
    assert [p.outcome for p in result.pulls] == ["written"]
    assert read_identity(created) is not None
    assert engine.on_settled(created) is not None


CHILD = """
import sys
from pathlib import Path
from curation_sync.state import StateStore
from curation_sync.synapse import RetryLimits, SynapseAdapter
from curation_sync.sync import SyncEngine, SyncSettings

endpoint, token, home, folder, project, workbook = sys.argv[1:]
Path(home).mkdir(parents=True)
config = Path(home) / "synapseConfig"
config.write_text("")
adapter = SynapseAdapter(endpoint, token, cache_dir=Path(home) / "cache",
                         config_path=config, limits=RetryLimits(1.0, 1, 10, 60))
engine = SyncEngine(adapter, StateStore(Path(folder)),
                    SyncSettings(folder=Path(folder), project_id=project))
engine.push(Path(workbook))
"""


def test_a_push_killed_mid_way_completes_after_a_restart_without_duplicate_rows(
    workbook: Path,
    engine: SyncEngine,
    sandbox: Sandbox,
    synapse_client: Synapse,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
    edit_xlsx(
        workbook,
        {(2, "genotype"): "HOM", (7, "animal_id"): "A006", (7, "genotype"): "WT"},
    )
    # The daemon will hang polling the synchronize job: kill it there.
    sandbox.faults.add(r"/grid/synchronize/async/get/", kind="delay", delay_seconds=2)
    folder = engine.ctx.settings.folder
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            sandbox.endpoint,
            sandbox.token("demo"),
            str(tmp_path / "child"),
            str(folder),
            ids["project"],
            str(workbook),
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        wait_until(
            lambda: (
                child.poll() is not None
                or sandbox.request_log.count("GET", r"/grid/synchronize/async/get/") > 0
            ),
            60,
            "the child's push to reach the synchronize step",
        )
        assert child.poll() is None, "the child push ended before it could be killed"
    finally:
        child.kill()
        child.wait(timeout=30)
    sandbox.faults.clear()
    [entry] = engine.ctx.state.outbox("push")
    assert entry.stage == "pushed" or entry.stage == "imported"

    restarted = make_engine(engine.ctx.adapter, folder, ids["project"])
    [result] = restarted.resume_pending()

    assert result.outcome in ("pushed", "up-to-date")
    assert restarted.ctx.state.outbox("push") == []
    _, rows = remote_rows(synapse_client, ids["record_set"])
    keys = [row["animal_id"] for row in rows]
    assert sorted(keys) == ["A001", "A002", "A003", "A004", "A005", "A006"]
    assert {row["animal_id"]: row for row in rows}["A001"]["genotype"] == "HOM"
    assert restarted.on_settled(workbook) is not None
    # Nothing the killed process was writing is left half-written.
    assert read_workbook(workbook).rows
    assert read_workbook(sidecar_path(workbook)) is not None
    check = sqlite3.connect(folder / STATE_DIR / STATE_FILE)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


def test_a_push_that_failed_after_the_import_is_retried_without_duplicate_rows(
    workbook: Path,
    engine: SyncEngine,
    sandbox: Sandbox,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    edit_xlsx(workbook, {(7, "animal_id"): "A006", (7, "genotype"): "KO"})
    sandbox.faults.add(r"/grid/synchronize/async/start", kind="job_fail", count=1)

    failed = engine.on_settled(workbook)

    assert failed is not None
    assert failed.outcome == "failed"
    [entry] = engine.ctx.state.outbox("push")
    assert entry.stage == "imported"
    later = engine.ctx.clock() + dt.timedelta(hours=1)
    engine.ctx.clock = lambda: later

    [retried] = engine.resume_pending()

    assert retried.outcome == "pushed"
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert [row["animal_id"] for row in rows].count("A006") == 1
    assert engine.ctx.state.outbox("push") == []


def test_an_edit_saved_while_synapse_is_down_is_queued_and_lands_afterwards(
    workbook: Path,
    engine: SyncEngine,
    sandbox: Sandbox,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    sandbox.faults.add(r".*", kind="status", status=503)
    edit_xlsx(workbook, {(4, "weight_g"): 23.75})

    queued = engine.on_settled(workbook)
    status = {s.path.name: s for s in engine.status()}[WORKBOOK]

    assert queued is not None
    assert queued.outcome == "deferred"
    assert status.state == "retrying"
    assert "try again later" in status.detail
    assert engine.resume_pending() == ()  # not due yet

    sandbox.faults.clear()
    later = engine.ctx.clock() + dt.timedelta(hours=1)
    engine.ctx.clock = lambda: later
    [landed] = engine.resume_pending()

    assert landed.outcome == "pushed"
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert float({r["animal_id"]: r for r in rows}["A003"]["weight_g"]) == 23.75


def test_local_checks_reach_the_sidecar_even_when_synapse_cannot_be_reached(
    workbook: Path, engine: SyncEngine, sandbox: Sandbox
) -> None:
    sandbox.faults.add(r".*", kind="status", status=503)
    edit_xlsx(workbook, {(4, "sex"): "other", (5, "genotype"): None})

    result = engine.on_settled(workbook)

    assert result is not None
    assert result.outcome == "deferred"
    violations = sheet_rows(sidecar_path(workbook), "Violations")[1:]
    found = {(row[0], row[2], row[4]) for row in violations}
    assert (4, "sex", "#/sex: other is not a valid enum value") in found
    assert (5, "genotype", "#/genotype: expected type: String, found: Null") in found
    assert any("Not pushed yet" in str(row[4]) for row in violations)


def test_a_dry_run_sends_nothing_and_changes_no_state(
    workbook: Path, engine: SyncEngine, sandbox: Sandbox
) -> None:
    edit_xlsx(workbook, {(2, "genotype"): "HET"})
    before = len(sandbox.request_log.entries())

    result = engine.push(workbook, dry_run=True)

    assert (result.outcome, result.changed) == ("dry-run", 1)
    assert len(sandbox.request_log.entries()) == before
    assert engine.ctx.state.outbox() == []
    assert engine.on_settled(workbook) is not None
    assert len(engine.ctx.state.history(workbook)) == 1


def test_overwrite_conflicts_pushes_the_local_value_of_a_conflicting_row(
    workbook: Path,
    engine: SyncEngine,
    synapse_client: Synapse,
    make_client: object,
    sandbox: Sandbox,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
    other = make_client(sandbox.token("admin"))  # type: ignore[operator]
    _, rows = remote_rows(synapse_client, ids["record_set"])
    a001 = next(row for row in rows if row["animal_id"] == "A001")
    edit_remotely(other, ids["record_set"], tmp_path, [{**a001, "sex": "unknown"}])
    edit_xlsx(workbook, {(2, "sex"): "female"})
    conflicted = engine.on_settled(workbook)
    assert conflicted is not None
    assert conflicted.conflicts == 1

    forced = engine.push(workbook, overwrite_conflicts=True)

    assert (forced.outcome, forced.conflicts) == ("pushed", 0)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert {r["animal_id"]: r for r in rows}["A001"]["sex"] == "female"
    assert engine.push(workbook).outcome == "unchanged"


def test_a_renamed_workbook_keeps_its_task_and_base(
    workbook: Path, engine: SyncEngine, sandbox: Sandbox
) -> None:
    renamed = workbook.with_name("my animals.xlsx")
    workbook.rename(renamed)
    before = len(sandbox.request_log.entries())

    moved = engine.on_moved(workbook, renamed)

    assert moved is not None
    assert moved.outcome == "unchanged"
    assert len(sandbox.request_log.entries()) == before
    mapped = engine.ctx.state.mapping(renamed)
    assert mapped is not None
    assert mapped[0] == int(sandbox.info()["tasks"]["animal_task"])
    edit_xlsx(renamed, {(2, "genotype"): "HET"})
    pushed = engine.on_settled(renamed)
    assert pushed is not None
    assert (pushed.outcome, pushed.changed) == ("pushed", 1)


def test_a_deleted_workbook_is_forgotten_and_pulled_again_by_the_next_poll(
    workbook: Path, engine: SyncEngine
) -> None:
    workbook.unlink()

    engine.on_deleted(workbook)

    assert engine.ctx.state.mapping(workbook) is None
    assert engine.ctx.state.base(workbook) is None
    engine.poll()
    assert workbook.exists()
    assert engine.ctx.state.base(workbook) is not None


@pytest.mark.libreoffice
def test_a_workbook_saved_by_libreoffice_pushes_only_the_edited_row(
    workbook: Path, engine: SyncEngine, tmp_path: Path
) -> None:
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.skip("soffice is not installed")
    edit_xlsx(workbook, {(3, "genotype"): "HOM"})
    out = tmp_path / "lo-out"
    subprocess.run(
        [
            soffice,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo-profile",
            "--convert-to",
            "xlsx:Calc MS Excel 2007 XML",
            "--outdir",
            str(out),
            str(workbook),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    shutil.copyfile(out / workbook.name, workbook)

    result = engine.on_settled(workbook)

    assert result is not None
    assert (result.outcome, result.changed, result.added) == ("pushed", 1, 0)


def test_each_poll_refreshes_a_cached_schema_once_it_is_older_than_allowed(
    adapter: SynapseAdapter, tmp_path: Path, ids: dict[str, str], sandbox: Sandbox
) -> None:
    young = make_engine(adapter, tmp_path / "young", ids["project"])
    old = make_engine(
        adapter, tmp_path / "old", ids["project"], schema_max_age_seconds=0
    )
    young.poll()
    old.poll()
    before = sandbox.request_log.count("GET", r"/schema/binding")

    young.poll()
    after_young = sandbox.request_log.count("GET", r"/schema/binding")
    old.poll()

    assert after_young == before
    assert sandbox.request_log.count("GET", r"/schema/binding") == before + 1


def test_pushes_reuse_a_live_grid_session_and_replace_a_deleted_one(
    workbook: Path, engine: SyncEngine, sandbox: Sandbox
) -> None:
    creations = r"/grid/session/async/start"
    edit_xlsx(workbook, {(2, "genotype"): "HET"})
    engine.on_settled(workbook)
    created = sandbox.request_log.count("POST", creations)

    edit_xlsx(workbook, {(3, "genotype"): "HET"})
    reused = engine.on_settled(workbook)

    assert reused is not None
    assert reused.outcome == "pushed"
    assert sandbox.request_log.count("POST", creations) == created

    stored = engine.ctx.state.task(int(sandbox.info()["tasks"]["animal_task"]))
    assert stored is not None
    assert stored.session_id is not None
    engine.ctx.adapter.delete_grid_session(stored.session_id)
    edit_xlsx(workbook, {(4, "genotype"): "HOM"})
    replaced = engine.on_settled(workbook)

    assert replaced is not None
    assert replaced.outcome == "pushed"
    assert sandbox.request_log.count("POST", creations) == created + 1


class Killed(BaseException):
    """Stands for kill -9: nothing in the engine catches it, no cleanup runs."""


class DiesAfterStage(StateStore):
    """The state store of a daemon killed right after one state update was stored.

    `stage` is an outbox stage (`merged`, `importing`, `imported`, `pushed`) or
    the name of a later update (`save_base`, `set_content_hash`).
    """

    def __init__(self, folder: Path, stage: str) -> None:
        super().__init__(folder)
        self.stage = stage

    def _die_at(self, point: str) -> None:
        if point == self.stage:
            self.close()
            raise Killed(point)

    def advance(self, entry_id: int, stage: str, **fields: str | None) -> None:
        super().advance(entry_id, stage, **fields)
        self._die_at(stage)

    def save_base(self, path: Path, base: Any) -> None:
        super().save_base(path, base)
        self._die_at("save_base")

    def set_content_hash(self, path: Path, content_hash: str) -> None:
        super().set_content_hash(path, content_hash)
        self._die_at("set_content_hash")

    def set_mapping(self, path: Path, task_id: int, source: str) -> None:
        super().set_mapping(path, task_id, source)
        self._die_at("set_mapping")


def restarted_engine(
    adapter: SynapseAdapter, folder: Path, project: str, dies_after: str | None = None
) -> SyncEngine:
    """A new engine on the folder's state, as after a restart of the daemon."""
    dying = None if dies_after is None else DiesAfterStage(folder, dies_after)
    return make_engine(adapter, folder, project, state=dying)


@pytest.mark.parametrize(
    "point",
    ["merged", "importing", "imported", "pushed", "save_base", "set_content_hash"],
)
def test_a_push_killed_after_any_state_update_lands_once_after_a_restart(
    workbook: Path,
    adapter: SynapseAdapter,
    synapse_client: Synapse,
    ids: dict[str, str],
    point: str,
) -> None:
    folder = workbook.parent
    edit_xlsx(
        workbook,
        {(2, "age_weeks"): 20, (7, "animal_id"): "A006", (7, "genotype"): "KO"},
    )
    with pytest.raises(Killed):
        restarted_engine(adapter, folder, ids["project"], point).on_settled(workbook)

    engine = restarted_engine(adapter, folder, ids["project"])
    engine.resume_pending(pulls_too=False)
    engine.on_settled(workbook)
    edit_xlsx(workbook, {(2, "age_weeks"): 21})
    later = engine.on_settled(workbook)

    assert later is not None
    assert (later.outcome, later.conflicts) == ("pushed", 0)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    keys = [row["animal_id"] for row in rows]
    assert sorted(keys) == ["A001", "A002", "A003", "A004", "A005", "A006"]
    by_key = {row["animal_id"]: row for row in rows}
    assert (by_key["A001"]["age_weeks"], by_key["A006"]["genotype"]) == ("21", "KO")
    assert engine.ctx.state.outbox("push") == []


def test_a_kill_before_the_next_import_leaves_no_false_conflict_after_restart(
    workbook: Path,
    adapter: SynapseAdapter,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    """Found by the crash suite: two kills in a row made our own value a conflict.

    The first push is killed after its rows reached the record set but before
    the new base was stored; the second, for a later edit of the same cell,
    after it merged but before it imported. The third must push the edit.
    """
    folder, project = workbook.parent, ids["project"]
    edit_xlsx(workbook, {(2, "age_weeks"): 20})
    with pytest.raises(Killed):
        restarted_engine(adapter, folder, project, "pushed").on_settled(workbook)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert {r["animal_id"]: r for r in rows}["A001"]["age_weeks"] == "20"

    edit_xlsx(workbook, {(2, "age_weeks"): 21})
    with pytest.raises(Killed):
        restarted_engine(adapter, folder, project, "merged").on_settled(workbook)

    engine = restarted_engine(adapter, folder, project)
    result = engine.on_settled(workbook)

    assert result is not None
    assert (result.outcome, result.conflicts) == ("pushed", 0)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert {r["animal_id"]: r for r in rows}["A001"]["age_weeks"] == "21"
    assert engine.ctx.state.outbox("push") == []


def test_a_new_save_during_an_outage_is_tried_at_once_and_the_wait_keeps_growing(
    workbook: Path,
    engine: SyncEngine,
    sandbox: Sandbox,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    sandbox.faults.add(r".*", kind="status", status=503)
    edit_xlsx(workbook, {(4, "weight_g"): 23.75})
    assert engine.on_settled(workbook) is not None
    now = engine.ctx.clock()
    for hours in (1, 2, 3):
        moment = now + dt.timedelta(hours=hours)
        engine.ctx.clock = lambda moment=moment: moment
        [retried] = engine.resume_pending(pulls_too=False)
        assert retried.outcome == "deferred"
    [entry] = engine.ctx.state.outbox("push")
    waited = entry.next_attempt_at - engine.ctx.clock()
    assert (entry.attempts, waited) == (4, dt.timedelta(seconds=240))

    edit_xlsx(workbook, {(4, "weight_g"): 24.5})
    requests_before = len(sandbox.request_log.entries())
    saved = engine.on_settled(workbook)

    assert saved is not None
    assert saved.outcome == "deferred"
    assert len(sandbox.request_log.entries()) > requests_before
    [entry] = engine.ctx.state.outbox("push")
    waited = entry.next_attempt_at - engine.ctx.clock()
    assert (entry.attempts, waited) == (5, dt.timedelta(seconds=480))

    sandbox.faults.clear()
    assert engine.on_settled(workbook) is not None
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert float({r["animal_id"]: r for r in rows}["A003"]["weight_g"]) == 24.5


@pytest.mark.parametrize("point", ["set_content_hash", "save_base", "set_mapping"])
def test_a_pull_killed_after_any_state_update_loses_neither_side_after_a_restart(
    workbook: Path,
    adapter: SynapseAdapter,
    synapse_client: Synapse,
    make_client: object,
    sandbox: Sandbox,
    ids: dict[str, str],
    tmp_path: Path,
    point: str,
) -> None:
    """The pull of someone else's edit is killed once the workbook was written."""
    folder, project = workbook.parent, ids["project"]
    other = make_client(sandbox.token("admin"))  # type: ignore[operator]
    _, rows = remote_rows(synapse_client, ids["record_set"])
    a002 = next(row for row in rows if row["animal_id"] == "A002")
    edit_remotely(other, ids["record_set"], tmp_path, [{**a002, "genotype": "WT"}])
    with pytest.raises(Killed):
        restarted_engine(adapter, folder, project, point).poll()
    table = read_workbook(workbook)
    pulled = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
    assert {r["animal_id"]: r for r in pulled}["A002"]["genotype"] == "WT"

    engine = restarted_engine(adapter, folder, project)
    engine.poll()
    engine.on_settled(workbook)
    edit_xlsx(workbook, {(2, "genotype"): "HOM"})
    pushed = engine.on_settled(workbook)

    assert pushed is not None
    assert (pushed.outcome, pushed.conflicts, pushed.changed) == ("pushed", 0, 1)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    by_key = {row["animal_id"]: row for row in rows}
    assert (by_key["A001"]["genotype"], by_key["A002"]["genotype"]) == ("HOM", "WT")
    assert engine.ctx.state.outbox() == []
