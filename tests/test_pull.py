"""Pulls into the watched folder, and saves that must not be pushed, end to end."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from synapseclient import Synapse
from synapseclient.models import CurationTask

from curation_sync.mapping import MappingRule
from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from curation_sync.synapse import SynapseAdapter
from curation_sync.sync import SyncEngine
from curation_sync.tasks import TaskState
from curation_sync.workbook import read_workbook
from tests.synctools import (
    adapter_for,
    demo_ids,
    edit_remotely,
    edit_xlsx,
    make_engine,
    remote_rows,
    sheet_rows,
)

WORKBOOK = "AnimalMetadata_Curation.xlsx"
REFERENCE = "SampleFiles_Curation.xlsx"


class Editor:
    """Which workbooks are open, as the watcher would report it."""

    def __init__(self) -> None:
        self.open: set[str] = set()

    def is_open(self, path: Path) -> bool:
        return path.name in self.open


@pytest.fixture
def ids(sandbox: Sandbox) -> dict[str, str]:
    return demo_ids(sandbox)


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    yield from adapter_for(sandbox, tmp_path / "daemon")


@pytest.fixture
def editor() -> Editor:
    return Editor()


@pytest.fixture
def engine(
    adapter: SynapseAdapter, tmp_path: Path, ids: dict[str, str], editor: Editor
) -> SyncEngine:
    made = make_engine(adapter, tmp_path / "folder", ids["project"])
    made.ctx.is_open = editor.is_open
    made.poll()
    return made


@pytest.fixture
def admin(make_client: object, sandbox: Sandbox) -> Synapse:
    return make_client(sandbox.token("admin"))  # type: ignore[operator, no-any-return]


def cell(path: Path, key: str, column: str) -> str:
    table = read_workbook(path)
    row = next(r for r in table.rows if r[table.columns.index("animal_id")] == key)
    return row[table.columns.index(column)]


def change_remotely(
    admin: Synapse, client: Synapse, record_set: str, tmp: Path, key: str, **cells: str
) -> None:
    _, rows = remote_rows(client, record_set)
    row = next(r for r in rows if r["animal_id"] == key)
    edit_remotely(admin, record_set, tmp, [{**row, **cells}])


def test_a_newer_version_is_written_into_a_closed_workbook_with_no_unpushed_edit(
    engine: SyncEngine,
    admin: Synapse,
    synapse_client: Synapse,
    sandbox: Sandbox,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    change_remotely(
        admin, synapse_client, ids["record_set"], tmp_path, "A004", genotype="HOM"
    )

    result = engine.poll()

    assert [(p.path.name, p.outcome) for p in result.pulls] == [(WORKBOOK, "written")]
    assert cell(workbook, "A004", "genotype") == "HOM"
    base = engine.ctx.state.base(workbook)
    assert base is not None
    assert base.version == 2
    before = len(sandbox.request_log)
    settled = engine.on_settled(workbook)
    assert settled is not None
    assert settled.outcome == "unchanged"
    assert len(sandbox.request_log) == before


def test_a_pull_waits_while_the_workbook_is_open_and_says_why(
    engine: SyncEngine,
    editor: Editor,
    admin: Synapse,
    synapse_client: Synapse,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    change_remotely(
        admin, synapse_client, ids["record_set"], tmp_path, "A001", sex="female"
    )
    editor.open.add(WORKBOOK)

    waiting = engine.poll()
    status = {s.path.name: s for s in engine.status()}[WORKBOOK]

    assert [p.outcome for p in waiting.pulls] == ["waiting"]
    assert cell(workbook, "A001", "sex") == "male"
    assert status.state == "pull waiting"
    assert "open in an editor" in status.detail

    editor.open.clear()
    engine.poll()

    assert cell(workbook, "A001", "sex") == "female"
    assert {s.path.name: s for s in engine.status()}[WORKBOOK].state == "in sync"


def test_a_pull_never_drops_an_unpushed_edit_and_both_edits_survive(
    engine: SyncEngine,
    admin: Synapse,
    synapse_client: Synapse,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    edit_xlsx(workbook, {(2, "genotype"): "HET"})  # A001, saved but not yet pushed
    change_remotely(
        admin, synapse_client, ids["record_set"], tmp_path, "A005", genotype="HOM"
    )

    waiting = engine.poll()

    assert [p.outcome for p in waiting.pulls] == ["waiting"]
    assert "not pushed" in waiting.pulls[0].message
    assert cell(workbook, "A001", "genotype") == "HET"

    pushed = engine.on_settled(workbook)
    assert pushed is not None
    assert (pushed.outcome, pushed.conflicts) == ("pushed", 0)
    engine.poll()

    assert cell(workbook, "A001", "genotype") == "HET"
    assert cell(workbook, "A005", "genotype") == "HOM"
    _, rows = remote_rows(synapse_client, ids["record_set"])
    by_key = {row["animal_id"]: row for row in rows}
    assert (by_key["A001"]["genotype"], by_key["A005"]["genotype"]) == ("HET", "HOM")


def test_a_save_to_a_file_based_reference_workbook_is_explained_not_imported(
    engine: SyncEngine, sandbox: Sandbox
) -> None:
    reference = engine.ctx.settings.folder.resolve() / REFERENCE
    assert read_workbook(reference).rows
    imports = sandbox.request_log.count("POST", r"/grid/import/csv/async/start")

    # The pull's own write says nothing; only an edit gets the explanation.
    untouched = engine.on_settled(reference)
    assert untouched is not None
    assert untouched.outcome == "unchanged"
    assert not sidecar_path(reference).exists()
    edit_xlsx(reference, {(2, "tissue"): "heart"})

    result = engine.on_settled(reference)

    assert result is not None
    assert result.outcome == "reference"
    assert sandbox.request_log.count("POST", r"/grid/import/csv/async/start") == imports
    messages = [row[4] for row in sheet_rows(sidecar_path(reference), "Violations")]
    assert any(
        "file-based" in str(m) and "Grid:default?sessionId=" in str(m) for m in messages
    )
    again = engine.on_settled(reference)
    assert again is not None
    assert again.outcome == "unchanged"
    kept = engine.pull(reference)
    assert kept.outcome == "waiting"


def test_a_completed_task_takes_no_push_until_it_is_reopened(
    engine: SyncEngine,
    admin: Synapse,
    synapse_client: Synapse,
    ids: dict[str, str],
) -> None:
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    task = CurationTask(task_id=int(ids["task"]))
    task.set_task_state(state="COMPLETED", synapse_client=admin)
    edit_xlsx(workbook, {(3, "sex"): "unknown"})

    blocked = engine.on_settled(workbook)

    assert blocked is not None
    assert blocked.outcome == "blocked"
    assert "COMPLETED" in blocked.message
    notes = [str(row[4]) for row in sheet_rows(sidecar_path(workbook), "Violations")]
    assert any("COMPLETED" in note for note in notes)
    assert {s.path.name: s for s in engine.status()}[WORKBOOK].state == "blocked"
    version, _ = remote_rows(synapse_client, ids["record_set"])
    assert version == 1

    task.set_task_state(state="IN_PROGRESS", synapse_client=admin)
    result = engine.poll()

    assert [p.outcome for p in result.pushes] == ["pushed"]
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert {r["animal_id"]: r for r in rows}["A002"]["sex"] == "unknown"


def test_the_first_push_starts_the_task_and_auto_complete_finishes_a_clean_one(
    adapter: SynapseAdapter,
    tmp_path: Path,
    ids: dict[str, str],
) -> None:
    engine = make_engine(adapter, tmp_path / "auto", ids["project"], auto_complete=True)
    engine.poll()
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK

    edit_xlsx(workbook, {(2, "sex"): "other"})
    engine.on_settled(workbook)
    assert adapter.get_status(int(ids["task"])).state is TaskState.IN_PROGRESS

    edit_xlsx(workbook, {(2, "sex"): "female"})
    engine.on_settled(workbook)
    assert adapter.get_status(int(ids["task"])).state is TaskState.COMPLETED


def test_export_mode_pushes_through_a_record_set_export(
    adapter: SynapseAdapter,
    tmp_path: Path,
    ids: dict[str, str],
    sandbox: Sandbox,
    synapse_client: Synapse,
) -> None:
    engine = make_engine(
        adapter, tmp_path / "export", ids["project"], push_mode="export"
    )
    engine.poll()
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    edit_xlsx(workbook, {(6, "weight_g"): 18.25})

    result = engine.on_settled(workbook)

    assert result is not None
    assert (result.outcome, result.version) == ("pushed", 2)
    assert sandbox.request_log.count("POST", r"/grid/export/recordset/async/start") == 1
    assert sandbox.request_log.count("POST", r"/grid/synchronize/async/start") == 0
    _, rows = remote_rows(synapse_client, ids["record_set"])
    assert float({r["animal_id"]: r for r in rows}["A005"]["weight_g"]) == 18.25


def test_a_workbook_that_maps_to_no_task_is_left_alone_and_reported_once(
    engine: SyncEngine, caplog: pytest.LogCaptureFixture, sandbox: Sandbox
) -> None:
    stray = engine.ctx.settings.folder.resolve() / "my notes.xlsx"
    book = openpyxl.Workbook()
    sheet = book.worksheets[0]
    sheet.append(["animal_id", "sex"])
    sheet.append(["Z1", "male"])
    book.save(stray)
    before = len(sandbox.request_log)

    with caplog.at_level(logging.INFO, logger="curation_sync"):
        first = engine.on_settled(stray)
        second = engine.on_settled(stray)

    assert first is not None
    assert second is not None
    assert (first.outcome, second.outcome) == ("unmapped", "unmapped")
    assert (
        len([r for r in caplog.records if "Left my notes.xlsx alone" in r.message]) == 1
    )
    assert len(sandbox.request_log) == before
    assert not sidecar_path(stray).exists()


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_csv_workbooks_are_pulled_pushed_and_pulled_again(
    adapter: SynapseAdapter,
    tmp_path: Path,
    ids: dict[str, str],
    admin: Synapse,
    synapse_client: Synapse,
) -> None:
    engine = make_engine(
        adapter, tmp_path / "csv", ids["project"], new_workbook_suffix=".csv"
    )
    engine.poll()
    workbook = engine.ctx.settings.folder.resolve() / "AnimalMetadata_Curation.csv"
    rows = read_csv(workbook)
    assert rows[0][0] == "animal_id"
    rows[2][rows[0].index("sex")] = "unknown"  # A002
    write_csv(workbook, rows)

    pushed = engine.on_settled(workbook)

    assert pushed is not None
    assert (pushed.outcome, pushed.changed) == ("pushed", 1)
    change_remotely(
        admin, synapse_client, ids["record_set"], tmp_path, "A003", genotype="KO"
    )
    engine.poll()
    by_key = {row[0]: row for row in read_csv(workbook)[1:]}
    assert by_key["A002"][rows[0].index("sex")] == "unknown"
    assert by_key["A003"][rows[0].index("genotype")] == "KO"


def test_an_explicit_rule_maps_a_hand_made_csv_in_a_subfolder_to_a_task(
    adapter: SynapseAdapter,
    tmp_path: Path,
    ids: dict[str, str],
    synapse_client: Synapse,
) -> None:
    rule = MappingRule("lab/*.csv", task_name="AnimalMetadata_Curation")
    engine = make_engine(adapter, tmp_path / "ruled", ids["project"], rules=(rule,))
    mine = engine.ctx.settings.folder / "lab" / "mice.csv"
    mine.parent.mkdir(parents=True)
    write_csv(
        mine,
        [
            ["animal_id", "genotype", "sex"],
            ["A001", "WT", "female"],
            ["A099", "KO", "male"],
        ],
    )

    result = engine.on_settled(mine)

    assert result is not None
    assert (result.outcome, result.changed, result.added) == ("pushed", 1, 1)
    _, rows = remote_rows(synapse_client, ids["record_set"])
    by_key = {row["animal_id"]: row for row in rows}
    assert by_key["A001"]["sex"] == "female"
    assert by_key["A001"]["weight_g"] == "24.5"  # columns not in the sheet stay
    assert by_key["A099"]["genotype"] == "KO"


def test_an_explicit_pull_refreshes_an_unedited_reference_copy_only(
    engine: SyncEngine, sandbox: Sandbox
) -> None:
    reference = engine.ctx.settings.folder.resolve() / REFERENCE
    task_id = int(sandbox.info()["tasks"]["sample_task"])

    fresh = engine.pull(task_id)

    assert fresh.outcome == "written"
    edit_xlsx(reference, {(2, "tissue"): "kidney"})
    kept = engine.pull(reference)
    assert kept.outcome == "waiting"
    assert "has edits" in kept.message
    assert (
        read_workbook(reference).rows[0][
            read_workbook(reference).columns.index("tissue")
        ]
        == "kidney"
    )


def test_a_pull_keeps_the_cells_of_a_column_the_person_added(
    engine: SyncEngine,
    admin: Synapse,
    synapse_client: Synapse,
    ids: dict[str, str],
    tmp_path: Path,
) -> None:
    workbook = engine.ctx.settings.folder.resolve() / WORKBOOK
    book = openpyxl.load_workbook(workbook)
    sheet = book.worksheets[0]
    sheet.cell(row=1, column=sheet.max_column + 1).value = "my notes"
    sheet.cell(row=4, column=sheet.max_column).value = "limping"  # A003
    book.save(workbook)
    saved = engine.on_settled(workbook)
    assert saved is not None
    assert saved.outcome == "nothing-to-push"
    change_remotely(
        admin, synapse_client, ids["record_set"], tmp_path, "A003", genotype="KO"
    )

    result = engine.poll()

    assert [p.outcome for p in result.pulls] == ["written"]
    assert cell(workbook, "A003", "genotype") == "KO"
    assert cell(workbook, "A003", "my notes") == "limping"
    assert cell(workbook, "A001", "my notes") == ""
