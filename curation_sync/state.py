"""The local SQLite store of one watched folder.

It holds what must survive a restart: which task each workbook maps to, the base of
each workbook (the rows of the last record set version both sides agreed on), the
content hash of the last push or pull, the outbox of pending pushes and pulls, the
push history, and caches of tasks and schemas seen on the last poll.

The store lives in `<folder>/.curation-sync/state.sqlite3`, in WAL mode, so a crash
leaves either the old or the new state of each transaction. Paths are kept relative
to the watched folder, so the folder itself can be moved or mounted elsewhere.
One connection is shared by the daemon's threads behind a lock; every method is a
single short transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from curation_sync.merge import Key
from curation_sync.outbox import (
    OutboxEntry,
    OutboxMixin,
    PushRecord,
    parse_moment,
    stamp,
    utc_now,
)
from curation_sync.tasks import TaskInfo, TaskState

STATE_DIR = ".curation-sync"
STATE_FILE = "state.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mappings (
    path TEXT PRIMARY KEY, task_id INTEGER NOT NULL, source TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY, project_id TEXT NOT NULL, info TEXT NOT NULL,
    state TEXT, session_id TEXT, seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schemas (
    record_set_id TEXT PRIMARY KEY, schema_id TEXT, body TEXT,
    upsert_key TEXT NOT NULL, fetched_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bases (
    path TEXT PRIMARY KEY, task_id INTEGER NOT NULL, record_set_id TEXT NOT NULL,
    version INTEGER NOT NULL, columns TEXT NOT NULL, upsert_key TEXT NOT NULL,
    rows TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, content_hash TEXT NOT NULL, written_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, path TEXT NOT NULL,
    task_id INTEGER, stage TEXT NOT NULL, detail TEXT, session_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL, last_error TEXT, UNIQUE (kind, path));
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, task_id INTEGER NOT NULL,
    version INTEGER, changed INTEGER NOT NULL, added INTEGER NOT NULL,
    removed INTEGER NOT NULL, conflicts INTEGER NOT NULL, held_back INTEGER NOT NULL,
    invalid INTEGER NOT NULL, pushed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reported (
    path TEXT PRIMARY KEY, reason TEXT NOT NULL, reported_at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Base:
    """The rows of the last record set version a workbook and Synapse agreed on."""

    task_id: int
    record_set_id: str
    version: int
    columns: tuple[str, ...]
    upsert_key: tuple[str, ...]
    rows: dict[Key, dict[str, str]]


@dataclass(frozen=True)
class StoredTask:
    """A task as the last poll saw it."""

    info: TaskInfo
    state: TaskState | None
    session_id: str | None
    seen_at: dt.datetime


@dataclass(frozen=True)
class StoredSchema:
    """The JSON schema bound to a record set, and its upsert key, as last fetched."""

    record_set_id: str
    schema_id: str | None
    body: dict[str, Any] | None
    upsert_key: tuple[str, ...]
    fetched_at: dt.datetime


class StateStore(OutboxMixin):
    """The SQLite state of one watched folder (see the module docstring)."""

    def __init__(self, folder: Path, *, db_path: Path | None = None) -> None:
        self.folder = folder.resolve()
        self.db_path = db_path or self.folder / STATE_DIR / STATE_FILE
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.db_path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
        )

    def __repr__(self) -> str:
        return f"StateStore({str(self.db_path)!r})"

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def relative(self, path: Path) -> str:
        """The key a workbook path is stored under: relative to the folder, POSIX."""
        resolved = path if path.is_absolute() else self.folder / path
        try:
            inside = resolved.resolve().relative_to(self.folder)
        except ValueError:
            return resolved.resolve().as_posix()
        return PurePosixPath(inside.as_posix()).as_posix()

    def absolute(self, stored: str) -> Path:
        """The inverse of `relative`."""
        candidate = Path(stored)
        return candidate if candidate.is_absolute() else self.folder / candidate

    # Mappings -----------------------------------------------------------------

    def set_mapping(self, path: Path, task_id: int, source: str) -> None:
        """Remember which task a workbook maps to."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO mappings VALUES (?, ?, ?, ?)",
                (self.relative(path), task_id, source, stamp(utc_now())),
            )

    def mapping(self, path: Path) -> tuple[int, str] | None:
        """The task id and mapping source last recorded for a workbook."""
        row = self._one(
            "SELECT task_id, source FROM mappings WHERE path = ?",
            (self.relative(path),),
        )
        return (int(row[0]), str(row[1])) if row else None

    def mappings(self) -> dict[Path, tuple[int, str]]:
        """Every recorded mapping, by absolute workbook path."""
        rows = self._all("SELECT path, task_id, source FROM mappings ORDER BY path")
        return {self.absolute(p): (int(t), str(s)) for p, t, s in rows}

    def forget_workbook(self, path: Path) -> None:
        """Drop everything kept for a workbook that was deleted."""
        key = (self.relative(path),)
        with self._transaction() as db:
            for table in ("mappings", "bases", "hashes", "reported"):
                db.execute(f"DELETE FROM {table} WHERE path = ?", key)
            db.execute("DELETE FROM outbox WHERE path = ? AND kind = 'pull'", key)

    def move_workbook(self, old: Path, new: Path) -> None:
        """Carry a workbook's mapping, base, hash and pending work to its new path."""
        before, after = self.relative(old), self.relative(new)
        with self._transaction() as db:
            for table in ("mappings", "bases", "hashes", "reported", "outbox"):
                db.execute(f"DELETE FROM {table} WHERE path = ?", (after,))
                db.execute(
                    f"UPDATE {table} SET path = ? WHERE path = ?",
                    (after, before),
                )

    # Tasks and schemas ----------------------------------------------------------

    def save_task(
        self, info: TaskInfo, state: TaskState | None, session_id: str | None = None
    ) -> None:
        """Remember a task as a poll or a fetch saw it."""
        with self._transaction() as db:
            old = db.execute(
                "SELECT session_id FROM tasks WHERE task_id = ?", (info.task_id,)
            ).fetchone()
            keep = session_id if session_id is not None else (old[0] if old else None)
            db.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?)",
                (
                    info.task_id,
                    info.project_id,
                    json.dumps(info.to_json()),
                    state.value if state else None,
                    keep,
                    stamp(utc_now()),
                ),
            )

    def set_task_state(self, task_id: int, state: TaskState) -> None:
        """Record a task's state after a change this daemon made or saw."""
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET state = ? WHERE task_id = ?", (state.value, task_id)
            )

    def set_session(self, task_id: int, session_id: str | None) -> None:
        """Remember the grid session this daemon last pushed through for a task."""
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET session_id = ? WHERE task_id = ?",
                (session_id, task_id),
            )

    def task(self, task_id: int) -> StoredTask | None:
        """A task as last seen, or None."""
        row = self._one(
            "SELECT info, state, session_id, seen_at FROM tasks WHERE task_id = ?",
            (task_id,),
        )
        return _stored_task(row) if row else None

    def tasks(self, project_id: str | None = None) -> list[StoredTask]:
        """Every task seen, optionally for one project, by task id."""
        query = "SELECT info, state, session_id, seen_at FROM tasks"
        if project_id is None:
            rows = self._all(query + " ORDER BY task_id")
        else:
            rows = self._all(
                query + " WHERE project_id = ? ORDER BY task_id", (project_id,)
            )
        return [_stored_task(row) for row in rows]

    def save_schema(
        self,
        record_set_id: str,
        schema_id: str | None,
        body: Mapping[str, Any] | None,
        upsert_key: Sequence[str],
    ) -> None:
        """Cache the schema bound to a record set and its upsert key."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO schemas VALUES (?, ?, ?, ?, ?)",
                (
                    record_set_id,
                    schema_id,
                    json.dumps(body) if body is not None else None,
                    json.dumps(list(upsert_key)),
                    stamp(utc_now()),
                ),
            )

    def schema(self, record_set_id: str) -> StoredSchema | None:
        """The cached schema of a record set, or None."""
        row = self._one(
            "SELECT schema_id, body, upsert_key, fetched_at FROM schemas "
            "WHERE record_set_id = ?",
            (record_set_id,),
        )
        if row is None:
            return None
        return StoredSchema(
            record_set_id=record_set_id,
            schema_id=row[0],
            body=json.loads(row[1]) if row[1] else None,
            upsert_key=tuple(json.loads(row[2])),
            fetched_at=parse_moment(row[3]),
        )

    # Bases and content hashes -----------------------------------------------------

    def save_base(self, path: Path, base: Base) -> None:
        """Store a workbook's new base, replacing the old one."""
        rows = [[list(key), row] for key, row in base.rows.items()]
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO bases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.relative(path),
                    base.task_id,
                    base.record_set_id,
                    base.version,
                    json.dumps(list(base.columns)),
                    json.dumps(list(base.upsert_key)),
                    json.dumps(rows, separators=(",", ":")),
                    stamp(utc_now()),
                ),
            )

    def base(self, path: Path) -> Base | None:
        """A workbook's base, or None before its first pull or push."""
        row = self._one(
            "SELECT task_id, record_set_id, version, columns, upsert_key, rows "
            "FROM bases WHERE path = ?",
            (self.relative(path),),
        )
        if row is None:
            return None
        return Base(
            task_id=int(row[0]),
            record_set_id=str(row[1]),
            version=int(row[2]),
            columns=tuple(json.loads(row[3])),
            upsert_key=tuple(json.loads(row[4])),
            rows={tuple(key): dict(cells) for key, cells in json.loads(row[5])},
        )

    def set_content_hash(self, path: Path, content_hash: str) -> None:
        """Record the content hash of a workbook as last pushed or written by a pull."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)",
                (self.relative(path), content_hash, stamp(utc_now())),
            )

    def content_hash(self, path: Path) -> str | None:
        """The content hash recorded by `set_content_hash`, or None."""
        row = self._one(
            "SELECT content_hash FROM hashes WHERE path = ?", (self.relative(path),)
        )
        return str(row[0]) if row else None

    # One-time reports -------------------------------------------------------------

    def mark_reported(self, path: Path, reason: str) -> bool:
        """Note that a problem with a workbook was reported; False if it already was."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT reason FROM reported WHERE path = ?", (self.relative(path),)
            ).fetchone()
            if row is not None and row[0] == reason:
                return False
            db.execute(
                "INSERT OR REPLACE INTO reported VALUES (?, ?, ?)",
                (self.relative(path), reason, stamp(utc_now())),
            )
        return True

    def clear_reported(self, path: Path) -> None:
        """Forget a reported problem, so a new occurrence is reported again."""
        with self._transaction() as db:
            db.execute("DELETE FROM reported WHERE path = ?", (self.relative(path),))

    # Internals ------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row = self._db.execute(query, params).fetchone()
        return tuple(row) if row is not None else None

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return [tuple(row) for row in self._db.execute(query, params).fetchall()]


def _stored_task(row: tuple[Any, ...]) -> StoredTask:
    return StoredTask(
        info=TaskInfo.from_json(json.loads(row[0])),
        state=TaskState(row[1]) if row[1] else None,
        session_id=row[2],
        seen_at=parse_moment(row[3]),
    )


__all__ = [
    "STATE_DIR",
    "STATE_FILE",
    "Base",
    "OutboxEntry",
    "PushRecord",
    "StateStore",
    "StoredSchema",
    "StoredTask",
    "utc_now",
]
