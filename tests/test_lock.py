from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from curation_sync.lock import FolderLock, FolderLockedError


def test_a_second_daemon_cannot_take_a_live_lock_and_is_told_which_host_has_it(
    tmp_path: Path,
) -> None:
    first = FolderLock(tmp_path, host="lab-pc")
    first.acquire()
    second = FolderLock(tmp_path, host="laptop", pid=first.pid + 1)

    with pytest.raises(FolderLockedError, match="lab-pc pid"):
        second.acquire()

    data = json.loads((tmp_path / "lock.json").read_text())
    assert data["host"] == "lab-pc"
    assert data["pid"] == first.pid
    first.release()
    assert not (tmp_path / "lock.json").exists()


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(
    tmp_path: Path,
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = FolderLock(tmp_path, pid=int(dead.stdout))
    stale.acquire()

    mine = FolderLock(tmp_path)
    mine.acquire()

    owner = mine.owner()
    assert owner is not None
    assert owner.pid == mine.pid
    assert mine.is_held


def test_a_lock_from_another_host_is_stale_only_when_not_refreshed_in_time(
    tmp_path: Path,
) -> None:
    other = FolderLock(tmp_path, host="far-away", pid=4242, stale_after_seconds=60)
    other.acquire()
    mine = FolderLock(tmp_path, stale_after_seconds=60)
    owner = other.owner()
    assert owner is not None

    assert not mine.is_stale(owner)
    later = owner.refreshed_at + dt.timedelta(seconds=61)
    assert mine.is_stale(owner, now=later)


def test_refresh_notices_that_another_daemon_took_the_lock_over(tmp_path: Path) -> None:
    mine = FolderLock(tmp_path, host="a", pid=1)
    mine.acquire()
    (tmp_path / "lock.json").write_text(
        json.dumps({"host": "b", "pid": 2, "refreshed_at": "2026-01-01T00:00:00+00:00"})
    )

    with pytest.raises(FolderLockedError, match="now belongs to b pid 2"):
        mine.refresh()
    assert not mine.is_held


def test_an_unreadable_lock_file_counts_as_stale(tmp_path: Path) -> None:
    (tmp_path / "lock.json").write_text("{half")

    with FolderLock(tmp_path) as lock:
        assert lock.is_held


def _race_for(lock: FolderLock, start: threading.Barrier, outcomes: list[bool]) -> None:
    start.wait(timeout=10)
    try:
        lock.acquire()
    except FolderLockedError:
        outcomes.append(False)
    else:
        outcomes.append(True)


def test_of_two_daemons_taking_over_a_stale_lock_at_once_one_wins(
    tmp_path: Path,
) -> None:
    stale = {"host": "gone", "pid": 7, "refreshed_at": "2026-01-01T00:00:00+00:00"}
    for round_number in range(30):
        folder = tmp_path / f"round-{round_number}"
        folder.mkdir()
        (folder / "lock.json").write_text(json.dumps(stale))
        # Different hosts: a fresh lock of the other racer is then never stale.
        racers = [FolderLock(folder, host=f"host-{n}", pid=100 + n) for n in range(2)]
        start = threading.Barrier(2)
        outcomes: list[bool] = []
        threads = [
            threading.Thread(target=_race_for, args=(racer, start, outcomes))
            for racer in racers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)

        assert sorted(outcomes) == [False, True]
        owner = racers[0].owner()
        assert owner is not None
        assert owner.pid in (100, 101)
        assert [r.is_held for r in racers].count(True) == 1
