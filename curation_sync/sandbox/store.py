"""SQLite state of the sandbox under its data directory.

Design: one connection, guarded by a re-entrant lock, in WAL mode. The HTTP server
answers requests on many threads, but the sandbox serves one test or one person, so a
single writer is simpler than per-thread connections with busy retries and is fast
enough. Structured objects that the REST API only passes through (task bodies, column
lists, annotations) are kept as JSON text; things that are looked up or filtered have
columns. Grid rows are one JSON object per row, keyed by the upsert-key text, so a
100,000-row grid is a bulk `executemany` and not a table per grid. File bytes live in
plain files beside the database, named by file handle id.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seq (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, user_name TEXT NOT NULL, display_name TEXT NOT NULL,
    email TEXT NOT NULL, token TEXT NOT NULL UNIQUE, is_admin INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    project_id INTEGER NOT NULL, principal_id INTEGER NOT NULL, access TEXT NOT NULL,
    PRIMARY KEY (project_id, principal_id));
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
    parent_id INTEGER, project_id INTEGER, created_by INTEGER NOT NULL,
    created_on TEXT NOT NULL, modified_on TEXT NOT NULL, modified_by INTEGER NOT NULL,
    etag TEXT NOT NULL, version INTEGER NOT NULL, props TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entity_versions (
    entity_id INTEGER NOT NULL, version INTEGER NOT NULL, data_fh INTEGER,
    validation_fh INTEGER, summary TEXT, comment TEXT, created_on TEXT NOT NULL,
    created_by INTEGER NOT NULL, PRIMARY KEY (entity_id, version));
CREATE TABLE IF NOT EXISTS file_handles (
    id INTEGER PRIMARY KEY, file_name TEXT NOT NULL, content_type TEXT NOT NULL,
    md5 TEXT NOT NULL, size INTEGER NOT NULL, created_by INTEGER NOT NULL,
    created_on TEXT NOT NULL, etag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, data_type TEXT NOT NULL,
    body TEXT NOT NULL, etag TEXT NOT NULL, state TEXT NOT NULL,
    execution_details TEXT, state_updated_by INTEGER NOT NULL,
    state_updated_on TEXT NOT NULL, UNIQUE (project_id, data_type));
CREATE TABLE IF NOT EXISTS grids (
    id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, source_kind TEXT NOT NULL,
    baseline_version INTEGER, started_by INTEGER NOT NULL, owner INTEGER NOT NULL,
    auth_mode TEXT, schema_id TEXT, columns TEXT NOT NULL, started_on TEXT NOT NULL,
    modified_on TEXT NOT NULL, etag TEXT NOT NULL, last_replica INTEGER NOT NULL,
    row_keys TEXT NOT NULL DEFAULT '[]', view_baseline TEXT);
CREATE TABLE IF NOT EXISTS grid_rows (
    session_id INTEGER NOT NULL, row_no INTEGER NOT NULL, row_key TEXT,
    data TEXT NOT NULL, PRIMARY KEY (session_id, row_no));
CREATE INDEX IF NOT EXISTS grid_rows_by_key ON grid_rows (session_id, row_key);
CREATE TABLE IF NOT EXISTS replicas (
    id INTEGER NOT NULL, session_id INTEGER NOT NULL, created_by INTEGER NOT NULL,
    created_on TEXT NOT NULL, PRIMARY KEY (session_id, id));
CREATE TABLE IF NOT EXISTS jobs (
    token TEXT PRIMARY KEY, uri TEXT NOT NULL, user_id INTEGER NOT NULL,
    request TEXT NOT NULL, response TEXT, error_status INTEGER, error_reason TEXT,
    polls_left INTEGER NOT NULL, started_on TEXT NOT NULL, etag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, request_key TEXT NOT NULL,
    request TEXT NOT NULL, parts_state TEXT NOT NULL, part_md5 TEXT NOT NULL,
    state TEXT NOT NULL, result_fh INTEGER);
CREATE TABLE IF NOT EXISTS organizations (
    name TEXT PRIMARY KEY, id INTEGER NOT NULL, created_by INTEGER NOT NULL,
    created_on TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schemas (
    schema_id TEXT PRIMARY KEY, organization TEXT NOT NULL, name TEXT NOT NULL,
    semantic_version TEXT, body TEXT NOT NULL, version_id INTEGER NOT NULL,
    created_by INTEGER NOT NULL, created_on TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (
    entity_id INTEGER PRIMARY KEY, schema_id TEXT NOT NULL, bound_by INTEGER NOT NULL,
    bound_on TEXT NOT NULL);
"""

# Where each id sequence starts, so that ids of different kinds are easy to tell apart
# in logs (users 33500xx, entities syn1000+, tasks 101+, file handles 5000+).
SEQUENCE_STARTS = {
    "user": 3350001,
    "entity": 1000,
    "task": 101,
    "file_handle": 5001,
    "grid": 37030001,
    "job": 9000,
    "upload": 7000,
    "organization": 800,
    "schema_version": 600,
}


def now_iso() -> str:
    """The current UTC time in Synapse's millisecond ISO form."""
    moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_etag() -> str:
    """A fresh etag, a random UUID as Synapse uses."""
    return str(uuid.uuid4())


class Store:
    """The sandbox database and file area under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.parts_dir = data_dir / "parts"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            data_dir / "sandbox.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[Store]:
        """Hold the store lock and run the block in one transaction (re-entrant)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Every row of a query."""
        with self._lock:
            return list(self._db.execute(sql, params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of a query, or None."""
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; returns the number of rows changed."""
        with self.tx():
            return self._db.execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Execute one statement for many parameter rows, in one transaction."""
        with self.tx():
            self._db.executemany(sql, rows)

    def next_id(self, name: str) -> int:
        """The next value of a named id sequence."""
        with self.tx():
            row = self.one("SELECT value FROM seq WHERE name = ?", (name,))
            value = SEQUENCE_STARTS[name] if row is None else int(row["value"])
            self._db.execute(
                "INSERT OR REPLACE INTO seq (name, value) VALUES (?, ?)",
                (name, value + 1),
            )
            return value

    def get_meta(self, key: str) -> Any:
        """A JSON value stored under `key` in the meta table, or None."""
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under `key` in the meta table."""
        self.run(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (key, json.dumps(value)),
        )

    def add_file(
        self, data: bytes, file_name: str, content_type: str, created_by: int
    ) -> int:
        """Store bytes as a new file handle; returns its id."""
        with self.tx():
            handle_id = self.next_id("file_handle")
            self.file_path(handle_id).write_bytes(data)
            self.run(
                "INSERT INTO file_handles (id, file_name, content_type, md5, size,"
                " created_by, created_on, etag) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    handle_id,
                    file_name,
                    content_type,
                    hashlib.md5(data).hexdigest(),
                    len(data),
                    created_by,
                    now_iso(),
                    new_etag(),
                ),
            )
            return handle_id

    def file_path(self, handle_id: int) -> Path:
        """Where the bytes of a file handle are kept."""
        return self.files_dir / str(handle_id)

    def read_file(self, handle_id: int) -> bytes:
        """The bytes of a file handle."""
        return self.file_path(handle_id).read_bytes()
