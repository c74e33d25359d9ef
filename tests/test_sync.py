"""End-to-end tests of the sync engine: real workbooks, the real client, the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from synapseclient import Synapse

from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from curation_sync.synapse import SynapseAdapter
from curation_sync.sync import SyncEngine
from tests.synctools import (
    delete_xlsx_row,
    edit_remotely,
    edit_xlsx,
    make_adapter,
    make_engine,
    remote_rows,
    sheet_rows,
)

WORKBOOK = "AnimalMetadata_Curation.xlsx"


@pytest.fixture
def ids(sandbox: Sandbox) -> dict[str, str]:
    info = sandbox.info()
    return {
        "project": info["projects"]["project"],
        "record_set": info["record_sets"]["animals"],
        "task": str(info["tasks"]["animal_task"]),
    }


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    made = make_adapter(sandbox, tmp_path / "daemon")
    yield made
    made.close()


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
    before = len(sandbox.request_log)

    result = engine.on_settled(workbook)

    assert result is not None
    assert result.outcome == "unchanged"
    assert len(sandbox.request_log) == before


def test_a_row_edited_on_both_sides_is_a_conflict_and_is_not_pushed(
    workbook: Path,
    engine: SyncEngine,
    synapse_client: Synapse,
    make_client: object,
    sandbox: Sandbox,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
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
    before = len(sandbox.request_log)

    held = engine.on_settled(workbook)
    statuses = {status.path.name: status for status in engine.status()}

    assert held is not None
    assert held.outcome == "needs-confirm"
    assert len(sandbox.request_log) == before
    assert statuses[WORKBOOK].state == "needs confirm"
    assert engine.resume_pending() == ()

    confirmed = engine.push(workbook, confirm=True)

    assert confirmed.outcome == "pushed"
    assert engine.ctx.state.outbox("push") == []
