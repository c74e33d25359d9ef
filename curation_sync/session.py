"""The grid session a push goes through, and the task's state after it.

A push reuses a grid session when it is alive, started by this user and on the
task's record set: first the one this daemon used last, then the task's active
session. Otherwise it creates one, which `create_grid_session` links to the task.
Reusing saves the session creation and the record set download it starts with.

After a push the task moves to IN_PROGRESS if it had not started, or to COMPLETED
when the report is clean and `auto_complete` is on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from curation_sync.errors import RemoteError
from curation_sync.tasks import TaskInfo, TaskState, TaskStatus

if TYPE_CHECKING:
    from curation_sync.sync import Context

logger = logging.getLogger(__name__)


def session_for(ctx: Context, task: TaskInfo, status: TaskStatus) -> str:
    """A live grid session of ours on the task's record set, reused or created."""
    stored = ctx.state.task(task.task_id)
    candidates = [stored.session_id if stored else None, status.active_session_id]
    for session_id in dict.fromkeys(c for c in candidates if c):
        found = ctx.adapter.grid_session(session_id)
        if (
            found is not None
            and found.started_by == ctx.adapter.user_id
            and found.source_entity_id == task.record_set_id
        ):
            return found.session_id

    created = ctx.adapter.create_grid_session(task)
    if stored is None:
        ctx.state.save_task(task, status.state, created.session_id)
    else:
        ctx.state.set_session(task.task_id, created.session_id)
    return created.session_id


def push_grid(ctx: Context, session_id: str) -> list[str]:
    """Push a grid session to the record set the configured way; Synapse's errors."""
    if ctx.settings.push_mode == "export":
        ctx.adapter.export(session_id)
        return []
    return ctx.adapter.synchronize(session_id)


def advance_task_state(
    ctx: Context, task: TaskInfo, status: TaskStatus, clean: bool
) -> None:
    """IN_PROGRESS after a first push; COMPLETED after a clean one if configured."""
    wanted = None
    if ctx.settings.auto_complete and clean:
        wanted = TaskState.COMPLETED
    elif status.state is TaskState.NOT_STARTED:
        wanted = TaskState.IN_PROGRESS
    if wanted is None:
        return
    try:
        ctx.adapter.set_state(task.task_id, wanted)
    except RemoteError as error:
        logger.warning(
            "Could not set task %s to %s (%s)", task.task_id, wanted.value, error
        )
        return
    ctx.state.set_task_state(task.task_id, wanted)
    logger.info("Set task %s to %s", task.name, wanted.value)
