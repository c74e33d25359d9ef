"""One poll of a project: notice task changes, queue pulls, run the due ones.

A poll lists the tasks assigned to the user (one request per page), reads each
task's state (a completed or cancelled task takes no more pushes; one reopened gets
its held pushes back in the queue), checks each mapped record set's version, queues
a pull for every task without a workbook and every workbook whose record set has a
newer version than its base, runs the due pulls, and retries the outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curation_sync.errors import RemoteError
from curation_sync.pull import PullResult, pull_task
from curation_sync.push import PushResult, ensure_schema
from curation_sync.tasks import TaskInfo, TaskKind, TaskState

if TYPE_CHECKING:
    from curation_sync.sync import Context, SyncEngine

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    """What one poll of a project noticed and did."""

    project_id: str
    tasks: int
    new_tasks: tuple[int, ...] = ()
    changed_tasks: tuple[int, ...] = ()
    pulls: tuple[PullResult, ...] = ()
    pushes: tuple[PushResult, ...] = ()


def poll_project(engine: SyncEngine, project: str) -> PollResult:
    """Poll one project for one engine (see the module docstring)."""
    ctx = engine.ctx
    listed = ctx.adapter.list_tasks(project)
    known = {stored.info.task_id: stored for stored in ctx.state.tasks(project)}
    new, changed = [], []
    for task in listed:
        old = known.get(task.task_id)
        state = _poll_state(ctx, task, old.state if old else None)
        ctx.state.save_task(task, state)
        if old is None:
            new.append(task.task_id)
            logger.info("New task %s (%s) in %s", task.name, task.task_id, project)
        elif old.info != task or old.state != state:
            changed.append(task.task_id)
        reopened = (
            state is not None
            and state.accepts_pushes
            and old is not None
            and old.state is not None
            and not old.state.accepts_pushes
        )
        if reopened:
            _requeue_blocked(ctx, task.task_id)
        _queue_pull_if_needed(engine, task, state)

    pulls = run_pulls(engine)
    pushes = engine.resume_pending(pulls_too=False)
    return PollResult(project, len(listed), tuple(new), tuple(changed), pulls, pushes)


def run_pulls(engine: SyncEngine) -> tuple[PullResult, ...]:
    """Run every due pull in the outbox."""
    ctx = engine.ctx
    results = []
    for entry in ctx.state.outbox("pull", due_at=ctx.clock()):
        if entry.task_id is None:
            ctx.state.finish(entry.id)
            continue
        try:
            task = engine._task(entry.task_id)
        except RemoteError as error:
            ctx.state.defer(entry.id, str(error), retry_at(ctx, entry.attempts))
            continue
        source = (ctx.state.mapping(entry.path) or (0, "name"))[1]
        with engine._lock(entry.path):
            result = pull_task(ctx, task, entry.path, source=source)
        settle_pull_entry(ctx, result)
        results.append(result)
    return tuple(results)


def settle_pull_entry(ctx: Context, result: PullResult) -> None:
    """Finish, park or defer the outbox entry of a pull, by its outcome."""
    entry = ctx.state.outbox_entry("pull", result.path)
    if entry is None:
        return
    if result.outcome in ("written", "up-to-date"):
        ctx.state.finish(entry.id)
    elif result.outcome == "waiting":
        ctx.state.advance(entry.id, "waiting", detail=result.message)
    else:
        ctx.state.defer(entry.id, result.message, retry_at(ctx, entry.attempts))


def retry_at(ctx: Context, attempts: int) -> dt.datetime:
    """When to try an outbox entry again after `attempts` failures."""
    settings = ctx.settings
    wait = min(settings.retry_initial_seconds * 2**attempts, settings.retry_max_seconds)
    return ctx.clock() + dt.timedelta(seconds=wait)


def _poll_state(
    ctx: Context, task: TaskInfo, old: TaskState | None
) -> TaskState | None:
    if task.kind is TaskKind.OTHER:
        return old
    try:
        state = ctx.adapter.get_status(task.task_id).state
    except RemoteError as error:
        logger.warning("Could not read the state of task %s (%s)", task.task_id, error)
        return old
    if old is not None and state is not old:
        logger.info("Task %s is now %s", task.name, state.value)
    return state


def _requeue_blocked(ctx: Context, task_id: int) -> None:
    for entry in ctx.state.outbox("push"):
        if entry.task_id == task_id and entry.stage == "blocked":
            ctx.state.advance(entry.id, "queued")


def _queue_pull_if_needed(
    engine: SyncEngine, task: TaskInfo, state: TaskState | None
) -> None:
    ctx = engine.ctx
    if task.kind is TaskKind.OTHER:
        return
    path, _ = engine._workbook_for(task)
    if not path.exists():
        if state is None or state.accepts_pushes:
            ctx.state.enqueue("pull", path, task.task_id)
        return
    if task.kind is not TaskKind.RECORD:
        return

    base = ctx.state.base(path)
    try:
        # Keep the cached schema fresh for local checks (cheap when it is young).
        ensure_schema(ctx, task)
        version = ctx.adapter.record_set(task.record_set_id or "").version
    except RemoteError as error:
        logger.warning("Could not check %s for new rows (%s)", task.name, error)
        return
    if base is None or version > base.version:
        ctx.state.enqueue("pull", path, task.task_id)
