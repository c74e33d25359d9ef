"""One push of one workbook to its record-based task.

The steps, each safe to repeat after a crash (the outbox entry records how far a
push got, and the grid import is an upsert, so importing the same rows twice leaves
one copy):

1. read the workbook; a content hash equal to the last push ends here, with no
   request to Synapse;
2. local checks and validation, written to the sidecar at once when they find
   something (a clean local report would be replaced by Synapse's within seconds);
3. diff against the base by upsert key; rows removed locally are only reported
   (an import cannot remove rows), and a push that would change or remove more than
   the configured share of rows waits for an explicit confirm;
4. if the record set moved on since the base, a three-way merge with its rows:
   a row changed on both sides to different values is a conflict and is not pushed;
5. reuse the task's grid session when it is alive and ours, else create one;
6. import only the changed and added rows;
7. synchronize (PULL_PUSH) or export the grid to a new record set version;
8. read the new version and its validation results, map them to sheet rows, write
   the sidecar, store the new base, record the push, update the task state.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curation_sync.checks import LocalCheck, check_table
from curation_sync.errors import RemoteError, TransientRemoteError, WorkbookError
from curation_sync.merge import (
    Key,
    cells_equal,
    change_share,
    diff_rows,
    key_rows,
    merge_rows,
    next_base,
)
from curation_sync.report import (
    WorkbookReport,
    local_report,
    note_report,
    synapse_report,
)
from curation_sync.session import advance_task_state, push_grid, session_for
from curation_sync.spreadsheet import write_atomically
from curation_sync.state import STATE_DIR, Base, PushRecord, StoredSchema
from curation_sync.tasks import RecordRows, TaskInfo, TaskKind
from curation_sync.workbook import Table, read_identity, read_workbook

if TYPE_CHECKING:
    from curation_sync.sync import Context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """What one push did. `outcome` is one word (see `OUTCOMES`)."""

    path: Path
    outcome: str
    message: str
    task_id: int | None = None
    version: int | None = None
    changed: int = 0
    added: int = 0
    removed: int = 0
    conflicts: int = 0
    held_back: int = 0
    invalid: int = 0
    bytes_uploaded: int = 0


OUTCOMES = (
    "pushed",  # rows went to Synapse and a new version exists
    "unchanged",  # same content as the last push: nothing done at all
    "nothing-to-push",  # no row differs from the base
    "up-to-date",  # Synapse already holds every local change
    "needs-confirm",  # the mass-change guard holds the push back
    "dry-run",  # what a push would do; nothing sent
    "blocked",  # the task no longer accepts pushes, or local checks block it
    "deferred",  # Synapse is unreachable; the outbox retries later
    "failed",  # Synapse refused; the outbox retries later
    "reference",  # a file-based task's reference workbook: never imported
    "unmapped",  # the workbook belongs to no task
)


def ensure_schema(
    ctx: Context, task: TaskInfo, *, refresh: bool = False
) -> StoredSchema:
    """The schema and upsert key of a task's record set, from the cache when fresh."""
    record_set_id = task.record_set_id or ""
    cached = ctx.state.schema(record_set_id)
    max_age = dt.timedelta(seconds=ctx.settings.schema_max_age_seconds)
    if cached is not None and not refresh and ctx.clock() - cached.fetched_at < max_age:
        return cached

    info = ctx.adapter.record_set(record_set_id)
    schema_id, body = ctx.adapter.bound_schema(record_set_id)
    ctx.state.save_schema(record_set_id, schema_id, body, info.upsert_key)
    stored = ctx.state.schema(record_set_id)
    assert stored is not None  # just written in the same thread
    return stored


def push_workbook(
    ctx: Context,
    path: Path,
    task: TaskInfo,
    *,
    confirm: bool = False,
    dry_run: bool = False,
    overwrite_conflicts: bool = False,
) -> PushResult:
    """Push one workbook (see the module docstring); never raises for remote trouble.

    Raises:
        WorkbookError: the file cannot be read (also written to the sidecar).
    """
    if task.kind is not TaskKind.RECORD:
        # Explained once per content: the pull's own write or a re-save says nothing.
        # The recorded hash stays the pulled one, so a refresh never drops edits.
        current = _read(ctx, path, task, None).content_hash()
        if ctx.state.content_hash(path) == current:
            return PushResult(path, "unchanged", "no change since the last pull")
        if not ctx.state.mark_reported(path, f"reference save {current}"):
            return PushResult(path, "unchanged", "this content was explained already")
        return _reference_save(ctx, path, task)

    # Step 1: read; a no-op save stops here before any request.
    cached = ctx.state.schema(task.record_set_id or "")
    table = _read(ctx, path, task, cached)
    content_hash = table.content_hash()
    forced = confirm or overwrite_conflicts
    if not forced and ctx.state.content_hash(path) == content_hash:
        # The hash is stored only once a push got past its last remote step (or
        # the file is back to what was pushed), so an entry a crash left behind
        # is done; left in the outbox it would hold back every pull for good.
        leftover = None if dry_run else ctx.state.outbox_entry("push", path)
        if leftover is not None:
            ctx.state.finish(leftover.id)
        return PushResult(
            path, "unchanged", "no change since the last push", task.task_id
        )

    entry_id = None if dry_run else ctx.state.enqueue("push", path, task.task_id)
    try:
        schema = cached or ensure_schema(ctx, task)
        if cached is None:
            table = _read(ctx, path, task, schema)
        return _push(
            ctx,
            path,
            task,
            table,
            schema,
            entry_id,
            confirm,
            dry_run,
            overwrite_conflicts,
        )
    except TransientRemoteError as error:
        return _defer(ctx, path, task, entry_id, "deferred", str(error))
    except RemoteError as error:
        return _defer(ctx, path, task, entry_id, "failed", str(error))


@dataclass(frozen=True)
class _Plan:
    """What the local phase of a push decided, for the remote phase."""

    path: Path
    task: TaskInfo
    schema: StoredSchema
    check: LocalCheck
    base: Base
    removed: tuple[Key, ...]
    counts: dict[str, int]
    report: WorkbookReport
    content_hash: str
    entry_id: int
    overwrite: bool


def _push(
    ctx: Context,
    path: Path,
    task: TaskInfo,
    table: Table,
    schema: StoredSchema,
    entry_id: int | None,
    confirm: bool,
    dry_run: bool,
    overwrite: bool,
) -> PushResult:
    content_hash = table.content_hash()

    # Step 2: local checks. Their report is written at once when it has something
    # to say; a clean one would be replaced by Synapse's seconds later, and writing
    # a large sidecar twice is most of a push's time.
    check = check_table(
        table, schema.body, schema.upsert_key, schema_id=schema.schema_id
    )
    first_report = local_report(path, task, table, check, at=ctx.clock())
    if not dry_run and not (first_report.is_clean and not first_report.notes):
        ctx.write_report(first_report)
    if check.blocking:
        logger.warning("Did not push %s: %s", path.name, check.blocking)
        _finish(ctx, entry_id)
        return PushResult(path, "blocked", check.blocking, task.task_id)

    # Step 3: diff against the base (the remote rows when there is none yet).
    base = ctx.state.base(path) or _first_base(ctx, path, task, schema, check)
    # A key held back as repeated is still in the sheet: not a removal.
    repeated = {row.key for row in check.held_back}
    diff = diff_rows(base.rows, check.keyed.rows, check.push_columns)
    diff = replace(diff, removed=tuple(k for k in diff.removed if k not in repeated))
    counts: dict[str, int] = {
        "task_id": task.task_id,
        "changed": len(diff.changed),
        "added": len(diff.added),
        "removed": len(diff.removed),
        "held_back": len(check.held_back),
        "invalid": check.invalid_rows,
    }
    if not diff.changed and not diff.added:
        if not dry_run:
            ctx.state.set_content_hash(path, content_hash)
            _finish(ctx, entry_id)
        return PushResult(
            path, "nothing-to-push", "no row differs from the base", **counts
        )

    share = change_share(diff, len(base.rows))
    guard = ctx.settings.mass_change_share
    if (
        not confirm
        and len(base.rows) >= ctx.settings.mass_change_min_rows
        and share > guard
    ):
        message = (
            f"this save would change or remove {share:.0%} of the {len(base.rows)} "
            f"rows (more than {guard:.0%}); confirm it with "
            f"`curation-sync push --confirm {path.name}` if it is intended"
        )
        if entry_id is not None:
            ctx.state.advance(entry_id, "awaiting-confirm", detail=message)
            ctx.write_report(first_report.with_note(message))
        logger.warning("Holding back the push of %s: %s", path.name, message)
        return PushResult(path, "needs-confirm", message, **counts)
    if dry_run or entry_id is None:
        written = _write_dry_run_csv(
            ctx.settings.folder / STATE_DIR / "dry-run" / f"{path.stem}.import.csv",
            check.push_columns,
            check.keyed.rows,
            [*diff.changed, *diff.added],
        )
        message = f"nothing sent; the rows it would import are in {written}"
        return PushResult(path, "dry-run", message, **counts)

    plan = _Plan(
        path,
        task,
        schema,
        check,
        base,
        diff.removed,
        counts,
        first_report,
        content_hash,
        entry_id,
        overwrite,
    )
    try:
        return _push_remote(ctx, plan)
    except RemoteError as error:
        ctx.write_report(first_report.with_note(f"Not pushed yet: {error}"))
        raise


def _push_remote(ctx: Context, plan: _Plan) -> PushResult:
    """Steps 4-8: everything that talks to Synapse."""
    task, check, base, entry_id = plan.task, plan.check, plan.base, plan.entry_id
    local = check.keyed.rows

    # Step 4: the task must accept pushes; merge with Synapse if it moved on.
    status = ctx.adapter.get_status(task.task_id)
    ctx.state.set_task_state(task.task_id, status.state)
    if not status.state.accepts_pushes:
        message = (
            f"task {task.name!r} is {status.state.value}, so it takes no more pushes; "
            "ask the task's administrator to reopen it"
        )
        ctx.state.advance(entry_id, "blocked", detail=message)
        ctx.write_report(plan.report.with_note(message))
        logger.warning("Did not push %s: %s", plan.path.name, message)
        return PushResult(plan.path, "blocked", message, **plan.counts)

    info = ctx.adapter.record_set(task.record_set_id or "")
    remote = base.rows
    if info.version != base.version:
        _, remote_rows = ctx.adapter.record_rows(task.record_set_id or "")
        remote = _keyed_remote(remote_rows, plan.schema.upsert_key)
        base = replace(base, rows=_own_rows(ctx, plan.path, base.rows, remote))
    merged = merge_rows(base.rows, local, remote, check.push_columns)
    merged = replace(merged, removed_locally=plan.removed)
    to_push = list(merged.to_push)
    if plan.overwrite:
        to_push += [conflict.key for conflict in merged.conflicts]
    ctx.state.advance(entry_id, "merged")

    # Steps 5-7: session, import of changed and added rows only, push.
    uploaded = 0
    errors: list[str] = []
    if to_push:
        session_id = session_for(ctx, task, status)
        # The rows sent are kept with the entry until it finishes: after a crash
        # they tell this push's own values on Synapse from someone else's edit.
        sent = _sent_rows(ctx, plan.path) + [
            [list(key), {c: local[key][c] for c in check.push_columns}]
            for key in to_push
        ]
        ctx.state.advance(
            entry_id, "importing", session_id=session_id, detail=json.dumps(sent)
        )
        cells = [[local[key][c] for c in check.push_columns] for key in to_push]
        uploaded = ctx.adapter.import_rows(session_id, check.push_columns, cells)
        ctx.state.advance(entry_id, "imported")
        errors = push_grid(ctx, session_id)
        ctx.state.advance(entry_id, "pushed")

    # Step 8: the new version's results, the new base, the history.
    after_info, after_rows, validation = ctx.adapter.validation_report(
        task.record_set_id or ""
    )
    remote_after = _keyed_remote(after_rows, plan.schema.upsert_key)
    open_conflicts = () if plan.overwrite else merged.conflicts
    new_rows, settled = next_base(
        remote_after, local, base.rows, check.push_columns, pushed=set(to_push)
    )
    ctx.state.save_base(
        plan.path,
        replace(
            base,
            version=after_info.version if settled else base.version,
            rows=new_rows,
            columns=after_rows.columns or base.columns,
        ),
    )
    ctx.state.set_content_hash(plan.path, plan.content_hash)
    report = synapse_report(
        plan.report,
        check,
        merged,
        open_conflicts,
        after_rows,
        validation,
        plan.schema.upsert_key,
        errors=errors,
        at=ctx.clock(),
    )
    ctx.write_report(report)
    result = PushResult(
        plan.path,
        "pushed" if to_push else "up-to-date",
        f"{len(to_push)} rows imported, version {after_info.version}",
        version=after_info.version,
        conflicts=len(open_conflicts),
        bytes_uploaded=uploaded,
        **{**plan.counts, "invalid": report.invalid},
    )
    _record(ctx, result)
    advance_task_state(ctx, task, status, report.is_clean and bool(to_push))
    ctx.state.finish(entry_id)
    if open_conflicts:
        logger.info(
            "Conflict in %s: %d rows changed on both sides were not pushed; "
            "the sidecar shows both values",
            plan.path.name,
            len(open_conflicts),
        )
    logger.info(
        "Pushed %s to %s: %d rows changed, %d added, version %d",
        plan.path.name,
        task.record_set_id,
        result.changed,
        result.added,
        after_info.version,
    )
    return result


def _read(
    ctx: Context, path: Path, task: TaskInfo, schema: StoredSchema | None
) -> Table:
    try:
        return read_workbook(path, schema=schema.body if schema else None)
    except WorkbookError as error:
        ctx.write_report(note_report(path, task, str(error), at=ctx.clock()))
        logger.warning(
            "Could not read %s (%s); will retry on the next save", path, error
        )
        raise


def _write_dry_run_csv(
    target: Path,
    columns: Sequence[str],
    rows: Mapping[Key, Mapping[str, str]],
    keys: Sequence[Key],
) -> Path:
    """Write the import CSV a push would send, at `target` in the state directory.

    The watcher ignores the state directory, so the CSV is not taken for a new
    workbook.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([rows[key][column] for column in columns] for key in keys)
    write_atomically(target, buffer.getvalue().encode("utf-8"))
    return target


def _first_base(
    ctx: Context, path: Path, task: TaskInfo, schema: StoredSchema, check: LocalCheck
) -> Base:
    """A base for a workbook with none stored: the version it was pulled at.

    A copy of a pulled workbook carries that version in its identity; diffing it
    against the current rows instead would push its stale cells over edits made
    since, silently. Without an identity the base is Synapse's current rows.
    """
    record_set_id = task.record_set_id or ""
    identity = read_identity(path)
    version = None
    if identity is not None and identity.record_set_id == record_set_id:
        version = identity.base_version or None
    try:
        _, rows = ctx.adapter.record_rows(record_set_id, version=version)
    except TransientRemoteError:
        raise
    except RemoteError:
        # The version is gone (or the identity is foreign): use the current rows.
        if version is None:
            raise
        _, rows = ctx.adapter.record_rows(record_set_id)
    return Base(
        task_id=task.task_id,
        record_set_id=task.record_set_id or "",
        version=rows.version,
        columns=rows.columns or check.push_columns,
        upsert_key=schema.upsert_key,
        rows=_keyed_remote(rows, schema.upsert_key),
    )


def _own_rows(
    ctx: Context,
    path: Path,
    base: Mapping[Key, dict[str, str]],
    remote: Mapping[Key, dict[str, str]],
) -> dict[Key, dict[str, str]]:
    """The base, with rows a crashed push of ours already put on Synapse.

    A push killed after its import but before it stored the new base leaves its
    rows on Synapse; without this, the next save would see them as edits made by
    someone else and report its own change to the same cell as a conflict.
    """
    sent = _sent_rows(ctx, path)
    adjusted = dict(base)
    for key_parts, cells in sent:
        key = tuple(key_parts)
        there = remote.get(key)
        if there is not None and all(
            cells_equal(there.get(name, ""), value) for name, value in cells.items()
        ):
            adjusted[key] = dict(there)
    return adjusted


def _sent_rows(ctx: Context, path: Path) -> list[Any]:
    """Every row an unfinished push of this workbook sent, oldest first.

    The rows stay with the outbox entry whatever stage a later attempt reached, so
    a crash before that attempt's own import still finds them.
    """
    entry = ctx.state.outbox_entry("push", path)
    if entry is None:
        return []
    try:
        sent = json.loads(entry.detail or "")
    except ValueError:
        return []
    return sent if isinstance(sent, list) else []


def _keyed_remote(
    rows: RecordRows, upsert_key: tuple[str, ...]
) -> dict[Key, dict[str, str]]:
    if not rows.columns or any(name not in rows.columns for name in upsert_key):
        return {}
    return key_rows(rows.columns, rows.rows, upsert_key).rows


def _defer(
    ctx: Context,
    path: Path,
    task: TaskInfo,
    entry_id: int | None,
    outcome: str,
    message: str,
) -> PushResult:
    if entry_id is None:
        return PushResult(path, outcome, message, task.task_id)
    entry = next((e for e in ctx.state.outbox("push") if e.id == entry_id), None)
    attempts = entry.attempts if entry else 0
    wait = min(
        ctx.settings.retry_initial_seconds * 2**attempts, ctx.settings.retry_max_seconds
    )
    ctx.state.defer(entry_id, message, ctx.clock() + dt.timedelta(seconds=wait))
    logger.warning(
        "Could not push %s yet (%s); will retry in %.0f s", path.name, message, wait
    )
    return PushResult(path, outcome, message, task.task_id)


def _finish(ctx: Context, entry_id: int | None) -> None:
    if entry_id is not None:
        ctx.state.finish(entry_id)


def _record(ctx: Context, result: PushResult) -> None:
    ctx.state.record_push(
        PushRecord(
            path=result.path,
            task_id=result.task_id or 0,
            version=result.version,
            changed=result.changed,
            added=result.added,
            removed=result.removed,
            conflicts=result.conflicts,
            held_back=result.held_back,
            invalid=result.invalid,
            pushed_at=ctx.clock(),
        )
    )


def _reference_save(ctx: Context, path: Path, task: TaskInfo) -> PushResult:
    """A save to a file-based task's workbook: explained, never imported."""
    session = ctx.state.task(task.task_id)
    where = (
        ctx.adapter.grid_url(session.session_id)
        if session is not None and session.session_id
        else "the task's grid in the Synapse web portal"
    )
    message = (
        f"task {task.name!r} is file-based: Synapse cannot import a workbook into its "
        f"grid, so this save was not pushed. Copy your edits into {where} and press "
        "synchronize there; this workbook is a reference copy."
    )
    ctx.write_report(note_report(path, task, message, at=ctx.clock()))
    logger.info("Not pushed %s: file-based task %s", path.name, task.name)
    return PushResult(path, "reference", message, task.task_id)
