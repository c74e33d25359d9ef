"""One pull: a task's record set written into the watched folder as a workbook.

A pull never drops an unpushed edit. It writes only when the workbook is not open
in an editor, has no row that differs from its base, no row held back by a local
check, no values in columns the schema does not know, and no push waiting in the
outbox; otherwise it waits, and the reason shows in `curation-sync status`.

For a file-based task the pull writes a reference workbook of the task's grid once
(Synapse cannot import into such a grid); saves to it are explained, not pushed.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from curation_sync.checks import check_table
from curation_sync.errors import RemoteError, TransientRemoteError, WorkbookError
from curation_sync.merge import Key, diff_rows, key_rows
from curation_sync.push import ensure_schema
from curation_sync.state import Base, StoredSchema
from curation_sync.tasks import TaskInfo, TaskKind
from curation_sync.workbook import (
    WorkbookIdentity,
    csv_safe_cell,
    read_workbook,
    write_atomically,
    write_workbook,
)

if TYPE_CHECKING:
    from curation_sync.sync import Context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    """What one pull did: `written`, `waiting`, `up-to-date`, `deferred` or `failed`."""

    path: Path
    task_id: int
    outcome: str
    message: str
    version: int | None = None


def pull_task(
    ctx: Context,
    task: TaskInfo,
    path: Path,
    *,
    source: str,
    refresh_reference: bool = False,
) -> PullResult:
    """Write a task's current rows into `path` when that loses nothing.

    `source` is how the workbook maps to the task (`name`, `identity` or `rule`),
    recorded with the mapping. A file-based task's reference copy is written once;
    `refresh_reference` rewrites it when it has not been edited since. Remote
    failures come back as `deferred`/`failed` results; they are not raised.
    """
    if task.kind is TaskKind.FILE:
        return _pull_reference(ctx, task, path, source, refresh_reference)
    if task.kind is not TaskKind.RECORD:
        message = "this task has no record set or grid to pull"
        return PullResult(path, task.task_id, "up-to-date", message)

    try:
        schema = ensure_schema(ctx, task)
        fetched = functools.cache(
            lambda: ctx.adapter.record_rows(task.record_set_id or "")
        )

        def remote() -> Mapping[Key, Mapping[str, str]]:
            rows = fetched()[1]
            if not rows.columns:
                return {}
            return key_rows(rows.columns, rows.rows, schema.upsert_key).rows

        reason = why_wait(ctx, path, schema, remote)
        if reason is not None:
            logger.info("Waiting to pull %s: %s", path.name, reason)
            return PullResult(path, task.task_id, "waiting", reason)

        info, rows = fetched()
        base = ctx.state.base(path)
        if base is not None and base.version == info.version and path.exists():
            return PullResult(
                path, task.task_id, "up-to-date", "no newer version", info.version
            )

        identity = WorkbookIdentity(task.task_id, info.record_set_id, info.version)
        columns, cells = _with_own_columns(path, rows.columns, rows.rows, schema)
        _write(path, columns, cells, schema, identity)
    except (RemoteError, WorkbookError) as error:
        outcome = "deferred" if isinstance(error, TransientRemoteError) else "failed"
        logger.warning(
            "Could not pull %s (%s); will retry on the next poll", path.name, error
        )
        return PullResult(path, task.task_id, outcome, str(error))

    # Record what was written, so the watcher's notice of it is a no-op push.
    ctx.on_own_write(path)
    table = read_workbook(path, schema=schema.body)
    ctx.state.set_content_hash(path, table.content_hash())
    keyed = (
        key_rows(rows.columns, rows.rows, schema.upsert_key) if rows.columns else None
    )
    ctx.state.save_base(
        path,
        Base(
            task_id=task.task_id,
            record_set_id=info.record_set_id,
            version=info.version,
            columns=rows.columns,
            upsert_key=schema.upsert_key,
            rows=keyed.rows if keyed else {},
        ),
    )
    ctx.state.set_mapping(path, task.task_id, source)
    ctx.state.clear_reported(path)
    logger.info(
        "Pulled %s into %s: %d rows, version %d",
        task.name,
        path.name,
        len(rows.rows),
        info.version,
    )
    return PullResult(
        path, task.task_id, "written", f"{len(rows.rows)} rows", info.version
    )


def why_wait(
    ctx: Context,
    path: Path,
    schema: StoredSchema,
    remote: Callable[[], Mapping[Key, Mapping[str, str]]] | None = None,
) -> str | None:
    """Why writing into `path` now could lose an edit, or None when it is safe.

    Cells that differ from the base are edits, unless the workbook already
    holds exactly the rows `remote` gives, the ones about to be written: then
    there is nothing to lose (a pull killed after writing the workbook but
    before storing its base leaves it so). `remote` is only called then.
    """
    if not path.exists():
        return None
    if ctx.is_open(path):
        return "the workbook is open in an editor; close it to receive the new rows"
    if ctx.state.outbox_entry("push", path) is not None:
        return "a push of this workbook has not finished yet"

    base = ctx.state.base(path)
    if base is None:
        return (
            "the workbook was never pulled or pushed, so it may hold edits; push it "
            "first, or move it out of the folder to get a fresh copy"
        )
    try:
        table = read_workbook(path, schema=schema.body)
    except WorkbookError as error:
        return f"the workbook cannot be read ({error})"

    check = check_table(
        table, schema.body, schema.upsert_key, schema_id=schema.schema_id
    )
    if check.blocking:
        return check.blocking
    if check.held_back:
        return f"{len(check.held_back)} rows have a blank or repeated upsert key"
    local = check.keyed.rows
    diff = diff_rows(base.rows, local, check.push_columns)
    if diff.is_empty:
        return None
    if remote is not None and diff_rows(remote(), local, check.push_columns).is_empty:
        return None
    edited = len(diff.changed) + len(diff.added) + len(diff.removed)
    return f"{edited} rows have edits that are not pushed yet"


def _with_own_columns(
    path: Path,
    columns: tuple[str, ...],
    rows: tuple[tuple[str, ...], ...],
    schema: StoredSchema,
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Synapse's rows plus the columns the person added that the schema lacks.

    A column such as "notes" is not pushed (Synapse would ignore it), so a pull
    carries its cells over by upsert key instead of dropping them. `why_wait` has
    made sure every keyed row of the workbook is also one of Synapse's rows.
    """
    if not path.exists():
        return columns, rows
    table = read_workbook(path, schema=schema.body)
    own = [c for c in table.columns if c not in columns]
    key_names = [n for n in schema.upsert_key if n in table.columns and n in columns]
    if not own or len(key_names) != len(schema.upsert_key):
        return columns, rows

    where = [table.columns.index(name) for name in key_names]
    carried = {
        tuple(row[i] for i in where): [row[table.columns.index(c)] for c in own]
        for row in table.rows
    }
    remote_where = [columns.index(name) for name in key_names]
    blank = [""] * len(own)
    merged = tuple(
        (*row, *carried.get(tuple(row[i] for i in remote_where), blank)) for row in rows
    )
    return (*columns, *own), merged


def _write(
    path: Path,
    columns: tuple[str, ...],
    rows: tuple[tuple[str, ...], ...],
    schema: StoredSchema | None,
    identity: WorkbookIdentity,
) -> None:
    if path.suffix.lower() == ".csv":
        text = io.StringIO()
        # CRLF line ends make the writer quote a cell holding a lone CR too.
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([csv_safe_cell(name) for name in columns])
        writer.writerows([[csv_safe_cell(cell) for cell in row] for row in rows])
        write_atomically(path, text.getvalue().encode("utf-8"))
        return
    write_workbook(
        path, columns, rows, schema=schema.body if schema else None, identity=identity
    )


def _pull_reference(
    ctx: Context, task: TaskInfo, path: Path, source: str, refresh: bool
) -> PullResult:
    """Write a file-based task's grid as a reference workbook (see `pull_task`)."""
    if path.exists() and not refresh:
        return PullResult(path, task.task_id, "up-to-date", "the reference copy exists")
    if ctx.is_open(path):
        return PullResult(path, task.task_id, "waiting", "the workbook is open")
    if path.exists() and _edited_since_written(ctx, path):
        message = (
            "the reference copy has edits; copy them into the web grid, then delete "
            "the file to get a fresh copy"
        )
        return PullResult(path, task.task_id, "waiting", message)
    try:
        session = ctx.adapter.create_grid_session(task)
        columns, rows = ctx.adapter.download_grid(session.session_id)
        identity = WorkbookIdentity(task.task_id, task.file_view_id or "", 0)
        _write(path, columns, tuple(tuple(row) for row in rows), None, identity)
    except (RemoteError, WorkbookError) as error:
        logger.warning(
            "Could not pull %s (%s); will retry on the next poll", path.name, error
        )
        return PullResult(path, task.task_id, "deferred", str(error))

    ctx.on_own_write(path)
    ctx.state.save_task(task, None, session.session_id)
    ctx.state.set_content_hash(path, read_workbook(path).content_hash())
    ctx.state.set_mapping(path, task.task_id, source)
    logger.info(
        "Pulled %s into %s as a reference copy (file-based task)", task.name, path.name
    )
    return PullResult(
        path, task.task_id, "written", f"{len(rows)} rows, reference copy"
    )


def _edited_since_written(ctx: Context, path: Path) -> bool:
    try:
        current = read_workbook(path).content_hash()
    except WorkbookError:
        return True
    return current != ctx.state.content_hash(path)
