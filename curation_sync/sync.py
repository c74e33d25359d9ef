"""The sync engine of one watched folder: pushes on saves, pulls on polls.

`SyncEngine` is what the daemon wires up. The watcher calls `on_settled`,
`on_deleted` and `on_moved`; the scheduler calls `poll` (which also retries the
outbox); the command line calls `push`, `pull` and `status`; start-up calls
`resume_pending`. Each workbook is handled by one thread at a time, and every
Synapse call happens in the calling thread, which must be a plain worker thread
(synapseclient's blocking calls run their own event loop).

The steps of a push are in `push.py` and those of a pull in `pull.py`; this module
maps workbooks to tasks, keeps the outbox moving and reports status.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

from curation_sync.errors import (
    CurationSyncError,
    MappingError,
    RemoteError,
    TransientRemoteError,
)
from curation_sync.mapping import (
    MappingRule,
    WorkbookMapping,
    is_workbook_path,
    resolve_mapping,
    workbook_names,
)
from curation_sync.pull import PullResult, pull_task
from curation_sync.push import PushResult, push_workbook
from curation_sync.report import ReportWriter, sidecar_writer
from curation_sync.sidecar import DEFAULT_NAME_TEMPLATE
from curation_sync.state import STATE_DIR, StateStore, utc_now
from curation_sync.synapse import SynapseAdapter
from curation_sync.tasks import TaskInfo, TaskKind, TaskState
from curation_sync.workbook import read_identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncSettings:
    """How the engine of one watched folder behaves (built by the daemon's config)."""

    folder: Path
    project_id: str
    rules: tuple[MappingRule, ...] = ()
    sidecar_name_template: str = DEFAULT_NAME_TEMPLATE
    sidecar_format: Literal["xlsx", "csv"] = "xlsx"
    remove_sidecar_when_valid: bool = False
    push_mode: Literal["synchronize", "export"] = "synchronize"
    auto_complete: bool = False
    mass_change_share: float = 0.5
    mass_change_min_rows: int = 10
    new_workbook_suffix: Literal[".xlsx", ".csv"] = ".xlsx"
    retry_initial_seconds: float = 30.0
    retry_max_seconds: float = 900.0
    schema_max_age_seconds: float = 3600.0


@dataclass
class Context:
    """What the push and pull steps share."""

    adapter: SynapseAdapter
    state: StateStore
    settings: SyncSettings
    write_report: ReportWriter
    is_open: Callable[[Path], bool]
    on_own_write: Callable[[Path], None]
    clock: Callable[[], dt.datetime] = utc_now


@dataclass(frozen=True)
class WorkbookStatus:
    """One line of `curation-sync status`."""

    path: Path
    task_id: int | None
    task_name: str | None
    state: str
    detail: str
    base_version: int | None = None
    last_pushed_at: dt.datetime | None = None


@dataclass(frozen=True)
class PollResult:
    """What one poll of a project noticed and did."""

    project_id: str
    tasks: int
    new_tasks: tuple[int, ...] = ()
    changed_tasks: tuple[int, ...] = ()
    pulls: tuple[PullResult, ...] = ()
    pushes: tuple[PushResult, ...] = field(default=())


class SyncEngine:
    """Pushes and pulls for one watched folder (see the module docstring)."""

    def __init__(
        self,
        adapter: SynapseAdapter,
        state: StateStore,
        settings: SyncSettings,
        *,
        is_open: Callable[[Path], bool] | None = None,
        on_own_write: Callable[[Path], None] | None = None,
        write_report: ReportWriter | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        writer = write_report or sidecar_writer(
            fmt=settings.sidecar_format,
            name_template=settings.sidecar_name_template,
            remove_when_valid=settings.remove_sidecar_when_valid,
        )
        self.ctx = Context(
            adapter=adapter,
            state=state,
            settings=settings,
            write_report=writer,
            is_open=is_open or (lambda _path: False),
            on_own_write=on_own_write or (lambda _path: None),
            clock=clock,
        )
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"SyncEngine({str(self.ctx.settings.folder)!r})"

    # Watcher events ---------------------------------------------------------------

    def on_settled(self, path: Path) -> PushResult | None:
        """A workbook was saved and settled: push it (a no-op save sends nothing)."""
        if not self.is_candidate(path):
            return None
        try:
            return self.push(path)
        except CurationSyncError as error:
            logger.warning(
                "Could not push %s (%s); will retry on the next save", path, error
            )
            return None

    def on_deleted(self, path: Path) -> None:
        """A workbook was deleted: forget its mapping and base (a poll re-pulls it)."""
        if self.ctx.state.mapping(path) is None:
            return
        with self._lock(path):
            self.ctx.state.forget_workbook(path)
        logger.info("Forgot %s: the workbook was deleted", path.name)

    def on_moved(self, old: Path, new: Path) -> PushResult | None:
        """A workbook was renamed or moved: carry its state, then push if it changed."""
        with self._lock(old):
            if self.is_candidate(new):
                self.ctx.state.move_workbook(old, new)
            else:
                self.ctx.state.forget_workbook(old)
        return self.on_settled(new)

    # Push, pull, poll ---------------------------------------------------------------

    def push(
        self,
        path: Path,
        *,
        confirm: bool = False,
        dry_run: bool = False,
        overwrite_conflicts: bool = False,
    ) -> PushResult:
        """Push one workbook now; `confirm` passes the mass-change guard.

        Raises:
            WorkbookError: the workbook cannot be read (the sidecar says why).
            MappingError: an explicit mapping rule names no task.
        """
        path = path.resolve()
        with self._lock(path):
            mapping = self.map_workbook(path)
            if mapping is None:
                return self._unmapped(path)
            task = self._task(mapping.task_id)
            return push_workbook(
                self.ctx,
                path,
                task,
                confirm=confirm,
                dry_run=dry_run,
                overwrite_conflicts=overwrite_conflicts,
            )

    def pull(self, target: Path | int) -> PullResult:
        """Pull one task (by id) or the task of one workbook (by path) now.

        Raises:
            MappingError: the workbook maps to no task.
            RemoteError: the task cannot be fetched.
        """
        if isinstance(target, int):
            task = self._task(target)
            path, source = self._workbook_for(task)
        else:
            path = target.resolve()
            mapping = self.map_workbook(path)
            if mapping is None:
                raise_unmapped(path)
            task = self._task(mapping.task_id)
            source = mapping.source
        with self._lock(path):
            result = pull_task(self.ctx, task, path, source=source)
        self._settle_pull_entry(result)
        return result

    def poll(self, project_id: str | None = None) -> PollResult:
        """List the project's tasks, queue and run pulls, and retry the outbox.

        Raises:
            TransientRemoteError, RemoteError: the task list could not be fetched.
        """
        project = project_id or self.ctx.settings.project_id
        listed = self.ctx.adapter.list_tasks(project)
        known = {
            stored.info.task_id: stored for stored in self.ctx.state.tasks(project)
        }
        new, changed = [], []
        for task in listed:
            old = known.get(task.task_id)
            state = self._poll_state(task, old.state if old else None)
            self.ctx.state.save_task(task, state)
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
                self._requeue_blocked(task.task_id)
            self._queue_pull_if_needed(task, state)

        pulls = self._run_pulls()
        pushes = self.resume_pending(pulls_too=False)
        return PollResult(
            project, len(listed), tuple(new), tuple(changed), pulls, pushes
        )

    def resume_pending(self, *, pulls_too: bool = True) -> tuple[PushResult, ...]:
        """Run every due push left in the outbox (after a crash, or Synapse outage)."""
        results = []
        for entry in self.ctx.state.outbox("push", due_at=self.ctx.clock()):
            if entry.stage in ("awaiting-confirm", "blocked"):
                continue
            if not entry.path.exists():
                logger.warning(
                    "Dropped the pending push of %s: the workbook no longer exists",
                    entry.path,
                )
                self.ctx.state.finish(entry.id)
                continue
            try:
                results.append(self.push(entry.path))
            except CurationSyncError as error:
                self.ctx.state.defer(
                    entry.id, str(error), self._retry_at(entry.attempts)
                )
                logger.warning("Could not push %s (%s)", entry.path.name, error)
        if pulls_too:
            self._run_pulls()
        return tuple(results)

    # Mapping and status ---------------------------------------------------------------

    def is_candidate(self, path: Path) -> bool:
        """Whether a path is a workbook of this folder (not a sidecar or state file)."""
        folder = self.ctx.settings.folder.resolve()
        try:
            relative = path.resolve().relative_to(folder)
        except ValueError:
            return False
        if relative.parts and relative.parts[0] == STATE_DIR:
            return False
        return is_workbook_path(path) and not self._is_sidecar(path)

    def map_workbook(self, path: Path) -> WorkbookMapping | None:
        """The task a workbook belongs to, recording it; None when it maps to nothing.

        Raises:
            MappingError: an explicit rule names no task or an ambiguous one.
        """
        if not self.is_candidate(path):
            return None
        identity = read_identity(path) if path.exists() else None
        settings = self.ctx.settings
        found = resolve_mapping(
            path,
            folder=settings.folder,
            rules=settings.rules,
            tasks=self._known_tasks(),
            project_id=settings.project_id,
            identity_task_id=identity.task_id if identity else None,
        )
        if found is None:
            recorded = self.ctx.state.mapping(path)
            if recorded is None:
                return None
            found = WorkbookMapping(path, recorded[0], recorded[1])  # type: ignore[arg-type]
        if self.ctx.state.mapping(path) != (found.task_id, found.source):
            self.ctx.state.set_mapping(path, found.task_id, found.source)
        return found

    def status(self) -> list[WorkbookStatus]:
        """The state of every workbook in the folder and every mapped one."""
        paths = set(self._scan()) | set(self.ctx.state.mappings())
        return [self._status_of(path) for path in sorted(paths)]

    # Internals ------------------------------------------------------------------

    @contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        key = path.resolve()
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _is_sidecar(self, path: Path) -> bool:
        template = self.ctx.settings.sidecar_name_template
        tail = template.format(stem="", name="")
        endings = {tail.lower(), str(Path(tail).with_suffix(".csv")).lower()}
        return bool(tail) and path.name.lower().endswith(tuple(endings))

    def _known_tasks(self) -> list[TaskInfo]:
        project = self.ctx.settings.project_id
        stored = self.ctx.state.tasks(project)
        if stored:
            return [task.info for task in stored]
        listed = self.ctx.adapter.list_tasks(project)
        for task in listed:
            self.ctx.state.save_task(task, None)
        return listed

    def _task(self, task_id: int) -> TaskInfo:
        stored = self.ctx.state.task(task_id)
        if stored is not None:
            return stored.info
        task = self.ctx.adapter.get_task(task_id)
        self.ctx.state.save_task(task, None)
        return task

    def _workbook_for(self, task: TaskInfo) -> tuple[Path, str]:
        for path, (task_id, source) in self.ctx.state.mappings().items():
            if task_id == task.task_id:
                return path, source
        names = workbook_names(
            self._known_tasks(), suffix=self.ctx.settings.new_workbook_suffix
        )
        name = names.get(task.task_id) or workbook_names([task])[task.task_id]
        return self.ctx.settings.folder.resolve() / name, "name"

    def _unmapped(self, path: Path) -> PushResult:
        message = (
            "it maps to no task: name it after a task assigned to you, or add a "
            "mapping rule to the configuration"
        )
        if self.ctx.state.mark_reported(path, "unmapped"):
            logger.info("Left %s alone: %s", path.name, message)
        return PushResult(path, "unmapped", message)

    def _poll_state(self, task: TaskInfo, old: TaskState | None) -> TaskState | None:
        if task.kind is TaskKind.OTHER:
            return old
        try:
            state = self.ctx.adapter.get_status(task.task_id).state
        except RemoteError as error:
            logger.warning(
                "Could not read the state of task %s (%s)", task.task_id, error
            )
            return old
        if old is not None and state is not old:
            logger.info("Task %s is now %s", task.name, state.value)
        return state

    def _requeue_blocked(self, task_id: int) -> None:
        for entry in self.ctx.state.outbox("push"):
            if entry.task_id == task_id and entry.stage == "blocked":
                self.ctx.state.advance(entry.id, "queued")

    def _queue_pull_if_needed(self, task: TaskInfo, state: TaskState | None) -> None:
        if task.kind is TaskKind.OTHER:
            return
        path, _ = self._workbook_for(task)
        if not path.exists():
            if state is None or state.accepts_pushes:
                self.ctx.state.enqueue("pull", path, task.task_id)
            return
        if task.kind is not TaskKind.RECORD:
            return

        base = self.ctx.state.base(path)
        try:
            version = self.ctx.adapter.record_set(task.record_set_id or "").version
        except RemoteError as error:
            logger.warning("Could not check %s for new rows (%s)", task.name, error)
            return
        if base is None or version > base.version:
            self.ctx.state.enqueue("pull", path, task.task_id)

    def _run_pulls(self) -> tuple[PullResult, ...]:
        results = []
        for entry in self.ctx.state.outbox("pull", due_at=self.ctx.clock()):
            if entry.task_id is None:
                self.ctx.state.finish(entry.id)
                continue
            try:
                task = self._task(entry.task_id)
            except RemoteError as error:
                self.ctx.state.defer(
                    entry.id, str(error), self._retry_at(entry.attempts)
                )
                continue
            source = (self.ctx.state.mapping(entry.path) or (0, "name"))[1]
            with self._lock(entry.path):
                result = pull_task(self.ctx, task, entry.path, source=source)
            self._settle_pull_entry(result)
            results.append(result)
        return tuple(results)

    def _settle_pull_entry(self, result: PullResult) -> None:
        entry = self.ctx.state.outbox_entry("pull", result.path)
        if entry is None:
            return
        if result.outcome in ("written", "up-to-date"):
            self.ctx.state.finish(entry.id)
        elif result.outcome == "waiting":
            self.ctx.state.advance(entry.id, "waiting", detail=result.message)
        else:
            self.ctx.state.defer(
                entry.id, result.message, self._retry_at(entry.attempts)
            )

    def _retry_at(self, attempts: int) -> dt.datetime:
        settings = self.ctx.settings
        wait = min(
            settings.retry_initial_seconds * 2**attempts, settings.retry_max_seconds
        )
        return self.ctx.clock() + dt.timedelta(seconds=wait)

    def _scan(self) -> Iterator[Path]:
        folder = self.ctx.settings.folder.resolve()
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(root) / name
                if self.is_candidate(path):
                    yield path

    def _status_of(self, path: Path) -> WorkbookStatus:
        state = self.ctx.state
        mapped = state.mapping(path)
        if mapped is None:
            return WorkbookStatus(path, None, None, "unmapped", "maps to no task")

        stored = state.task(mapped[0])
        base = state.base(path)
        history = state.history(path, limit=1)
        last = history[0] if history else None
        push = state.outbox_entry("push", path)
        pull = state.outbox_entry("pull", path)
        if not path.exists():
            word, detail = "missing", "the file is gone"
        elif push is not None:
            word, detail = _push_state(
                push.stage, push.attempts, push.detail, push.last_error
            )
        elif pull is not None:
            word = "pull waiting"
            detail = pull.detail or pull.last_error or "a newer version is waiting"
        elif last is not None and last.conflicts:
            word = "conflicts"
            detail = (
                f"{last.conflicts} rows in conflict at the last push; see the sidecar"
            )
        else:
            word, detail = "in sync", "nothing pending"
        return WorkbookStatus(
            path=path,
            task_id=mapped[0],
            task_name=stored.info.name if stored else None,
            state=word,
            detail=detail,
            base_version=base.version if base else None,
            last_pushed_at=last.pushed_at if last else None,
        )


def _push_state(
    stage: str, attempts: int, detail: str | None, error: str | None
) -> tuple[str, str]:
    if stage == "awaiting-confirm":
        return "needs confirm", detail or "the push waits for an explicit confirm"
    if stage == "blocked":
        return "blocked", detail or "the task takes no pushes"
    if attempts:
        return "retrying", error or "the last attempt failed"
    return "push pending", f"the push reached stage {stage!r}"


def raise_unmapped(path: Path) -> NoReturn:
    """Raise the error for a workbook that maps to no task."""
    raise MappingError(
        f"{path.name} maps to no task: name it after a task assigned to you, or add "
        "a mapping rule for it to the configuration."
    )


__all__ = [
    "Context",
    "PollResult",
    "PullResult",
    "PushResult",
    "RemoteError",
    "SyncEngine",
    "SyncSettings",
    "TransientRemoteError",
    "WorkbookStatus",
]
