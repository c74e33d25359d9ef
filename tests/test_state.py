from __future__ import annotations

import datetime as dt
import multiprocessing
import sqlite3
from pathlib import Path

from curation_sync.state import Base, PushRecord, StateStore, utc_now
from curation_sync.tasks import TaskInfo, TaskKind, TaskState


def make_base(version: int = 3) -> Base:
    return Base(
        task_id=101,
        record_set_id="syn2001",
        version=version,
        columns=("animal_id", "sex"),
        upsert_key=("animal_id",),
        rows={("A1",): {"animal_id": "A1", "sex": "male"}},
    )


def test_the_store_uses_wal_and_keeps_paths_relative_to_the_folder(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path)
    store.set_mapping(tmp_path / "sub" / "Mice.xlsx", 101, "name")
    store.close()

    db = sqlite3.connect(tmp_path / ".curation-sync" / "state.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT path FROM mappings").fetchall() == [("sub/Mice.xlsx",)]


def test_bases_hashes_and_mappings_survive_reopening_the_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    workbook = tmp_path / "Mice.xlsx"
    store.set_mapping(workbook, 101, "identity")
    store.save_base(workbook, make_base())
    store.set_content_hash(workbook, "abc")
    store.close()

    again = StateStore(tmp_path)

    assert again.mapping(workbook) == (101, "identity")
    assert again.base(workbook) == make_base()
    assert again.content_hash(workbook) == "abc"
    assert again.mappings() == {workbook.resolve(): (101, "identity")}


def test_moving_a_workbook_carries_its_state_to_the_new_path(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    old, new = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    store.set_mapping(old, 101, "name")
    store.save_base(old, make_base())
    store.set_content_hash(old, "h")
    store.enqueue("push", old, 101)

    store.move_workbook(old, new)

    assert store.mapping(old) is None
    assert store.base(new) == make_base()
    assert store.content_hash(new) == "h"
    entry = store.outbox_entry("push", new)
    assert entry is not None
    assert entry.task_id == 101


def test_forgetting_a_workbook_keeps_its_pending_push(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    path = tmp_path / "a.xlsx"
    store.set_mapping(path, 101, "name")
    store.enqueue("push", path, 101)
    store.enqueue("pull", path, 101)

    store.forget_workbook(path)

    assert store.mapping(path) is None
    assert store.outbox_entry("pull", path) is None
    assert store.outbox_entry("push", path) is not None


def test_the_outbox_keeps_one_entry_per_workbook_with_its_stage_and_retry_time(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path)
    path = tmp_path / "a.xlsx"
    first = store.enqueue("push", path, 101)
    store.advance(first, "imported", session_id="S1")
    later = utc_now() + dt.timedelta(minutes=5)
    store.defer(first, "Synapse did not answer", later)

    again = store.enqueue("push", path, 101)
    [entry] = store.outbox("push")

    assert again == first
    assert (entry.stage, entry.session_id, entry.attempts) == ("imported", "S1", 1)
    assert entry.last_error == "Synapse did not answer"
    assert store.outbox(due_at=utc_now()) == [entry]

    store.defer(first, "again", later)
    assert store.outbox(due_at=utc_now()) == []
    store.finish(first)
    assert store.outbox() == []


def test_tasks_keep_their_session_when_a_poll_saves_them_again(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    info = TaskInfo(101, "syn1000", "Mice", TaskKind.RECORD, record_set_id="syn2001")
    store.save_task(info, TaskState.NOT_STARTED)
    store.set_session(101, "S9")

    store.save_task(info, TaskState.IN_PROGRESS)
    stored = store.task(101)

    assert stored is not None
    assert (stored.info, stored.state, stored.session_id) == (
        info,
        TaskState.IN_PROGRESS,
        "S9",
    )
    assert [t.info.task_id for t in store.tasks("syn1000")] == [101]
    assert store.tasks("syn9") == []


def test_schemas_history_and_one_time_reports_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    path = tmp_path / "a.xlsx"
    store.save_schema("syn2001", "org-animal-1", {"type": "object"}, ["animal_id"])
    record = PushRecord(path, 101, 4, 1, 2, 0, 0, 1, 3, utc_now())
    store.record_push(record)

    schema = store.schema("syn2001")
    assert schema is not None
    assert (schema.body, schema.upsert_key) == ({"type": "object"}, ("animal_id",))
    assert store.history(path) == [record]
    assert store.mark_reported(path, "unmapped")
    assert not store.mark_reported(path, "unmapped")
    assert store.mark_reported(path, "other reason")
    store.clear_reported(path)
    assert store.mark_reported(path, "unmapped")


def _write_from_another_process(folder: str, count: int) -> None:
    store = StateStore(Path(folder))
    for n in range(count):
        store.enqueue("push", Path(folder) / f"other-{n}.xlsx", n)
    store.close()


def test_two_processes_can_write_the_store_at_once(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=_write_from_another_process, args=(str(tmp_path), 50)
    )
    child.start()
    for n in range(50):
        store.enqueue("push", tmp_path / f"mine-{n}.xlsx", n)
    child.join(timeout=60)

    assert child.exitcode == 0
    assert len(store.outbox("push")) == 100
