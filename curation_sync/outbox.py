"""The outbox and push history of the state store.

The outbox holds one entry per pending push or pull of a workbook, with the stage a
push reached (`queued`, `merged`, `importing`, `imported`, `pushed`, or the waiting
stages `awaiting-confirm` and `blocked`), its attempts and when to try again. It is
what lets a restarted daemon finish the work a crash or an outage interrupted. The
history keeps one line per finished push.

`OutboxMixin` is part of `StateStore` (state.py); it is a separate module only to
keep each file readable.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def utc_now() -> dt.datetime:
    """The current time, UTC-aware."""
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class OutboxEntry:
    """A push or pull that has not finished yet."""

    id: int
    kind: str
    path: Path
    task_id: int | None
    stage: str
    detail: str | None
    session_id: str | None
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    last_error: str | None


@dataclass(frozen=True)
class PushRecord:
    """One finished push, for the history."""

    path: Path
    task_id: int
    version: int | None
    changed: int
    added: int
    removed: int
    conflicts: int
    held_back: int
    invalid: int
    pushed_at: dt.datetime


class OutboxMixin:
    """Outbox and history methods of `StateStore`, over its connection."""

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def relative(self, path: Path) -> str:
        raise NotImplementedError

    def absolute(self, stored: str) -> Path:
        raise NotImplementedError

    # Outbox ---------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        path: Path,
        task_id: int | None = None,
        *,
        detail: str | None = None,
    ) -> int:
        """Queue a push or pull for a workbook; one entry per kind and path.

        Queuing again keeps the entry's id, creation time and progress, and makes it
        due now.
        """
        now = stamp(utc_now())
        with self._transaction() as db:
            db.execute(
                "INSERT INTO outbox (kind, path, task_id, stage, detail, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, 'queued', ?, ?, ?) "
                "ON CONFLICT (kind, path) DO UPDATE SET next_attempt_at = excluded."
                "next_attempt_at, task_id = COALESCE(excluded.task_id, task_id), "
                "detail = COALESCE(excluded.detail, detail)",
                (kind, self.relative(path), task_id, detail, now, now),
            )
            row = db.execute(
                "SELECT id FROM outbox WHERE kind = ? AND path = ?",
                (kind, self.relative(path)),
            ).fetchone()
        return int(row[0])

    def advance(
        self,
        entry_id: int,
        stage: str,
        *,
        detail: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Record that an outbox entry reached a stage (kept across crashes)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET stage = ?, detail = COALESCE(?, detail), "
                "session_id = COALESCE(?, session_id) WHERE id = ?",
                (stage, detail, session_id, entry_id),
            )

    def defer(self, entry_id: int, error: str, retry_at: dt.datetime) -> None:
        """Count a failed attempt and set when to try again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ? WHERE id = ?",
                (error, stamp(retry_at), entry_id),
            )

    def finish(self, entry_id: int) -> None:
        """Remove a finished outbox entry."""
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def outbox(
        self, kind: str | None = None, *, due_at: dt.datetime | None = None
    ) -> list[OutboxEntry]:
        """Pending entries, oldest first; only those due by `due_at` when given."""
        query = (
            "SELECT id, kind, path, task_id, stage, detail, session_id, attempts, "
            "created_at, next_attempt_at, last_error FROM outbox WHERE 1 = 1"
        )
        params: list[Any] = []
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        if due_at is not None:
            query += " AND next_attempt_at <= ?"
            params.append(stamp(due_at))
        rows = self._all(query + " ORDER BY created_at, id", tuple(params))
        return [self._entry(row) for row in rows]

    def outbox_entry(self, kind: str, path: Path) -> OutboxEntry | None:
        """The pending entry of one kind for a workbook, or None."""
        row = self._one(
            "SELECT id, kind, path, task_id, stage, detail, session_id, attempts, "
            "created_at, next_attempt_at, last_error FROM outbox "
            "WHERE kind = ? AND path = ?",
            (kind, self.relative(path)),
        )
        return self._entry(row) if row else None

    def record_push(self, record: PushRecord) -> None:
        """Append a finished push to the history."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO history (path, task_id, version, changed, added, removed, "
                "conflicts, held_back, invalid, pushed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.relative(record.path),
                    record.task_id,
                    record.version,
                    record.changed,
                    record.added,
                    record.removed,
                    record.conflicts,
                    record.held_back,
                    record.invalid,
                    stamp(record.pushed_at),
                ),
            )

    def history(self, path: Path | None = None, *, limit: int = 50) -> list[PushRecord]:
        """The most recent pushes, newest first."""
        query = (
            "SELECT path, task_id, version, changed, added, removed, conflicts, "
            "held_back, invalid, pushed_at FROM history"
        )
        params: tuple[Any, ...] = ()
        if path is not None:
            query += " WHERE path = ?"
            params = (self.relative(path),)
        rows = self._all(query + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [
            PushRecord(
                path=self.absolute(r[0]),
                task_id=int(r[1]),
                version=r[2],
                changed=int(r[3]),
                added=int(r[4]),
                removed=int(r[5]),
                conflicts=int(r[6]),
                held_back=int(r[7]),
                invalid=int(r[8]),
                pushed_at=parse_moment(r[9]),
            )
            for r in rows
        ]

    def _entry(self, row: tuple[Any, ...]) -> OutboxEntry:
        return OutboxEntry(
            id=int(row[0]),
            kind=str(row[1]),
            path=self.absolute(row[2]),
            task_id=int(row[3]) if row[3] is not None else None,
            stage=str(row[4]),
            detail=row[5],
            session_id=row[6],
            attempts=int(row[7]),
            created_at=parse_moment(row[8]),
            next_attempt_at=parse_moment(row[9]),
            last_error=row[10],
        )


def stamp(moment: dt.datetime) -> str:
    """A moment as stored: ISO 8601 in UTC, to the microsecond."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def parse_moment(text: str) -> dt.datetime:
    """The inverse of `stamp`."""
    return dt.datetime.fromisoformat(text)
