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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, cast

from curation_sync.checks import LocalCheck, check_table
from curation_sync.errors import (
    CurationSyncError,
    MappingError,
    RemoteError,
    TransientRemoteError,
)
from curation_sync.mapping import (
    MappingRule,
    MappingSource,
    WorkbookMapping,
    is_workbook_path,
    resolve_mapping,
    workbook_names,
)
from curation_sync.poll import (
    PollResult,
    poll_project,
    retry_at,
    run_pulls,
    settle_pull_entry,
)
from curation_sync.pull import PullResult, pull_task
from curation_sync.push import PushResult, ensure_schema, push_workbook
from curation_sync.report import ReportWriter, sidecar_writer
from curation_sync.sidecar import DEFAULT_NAME_TEMPLATE
from curation_sync.state import STATE_DIR, StateStore, utc_now
from curation_sync.status import WorkbookStatus, workbook_status
from curation_sync.synapse import SynapseAdapter
from curation_sync.tasks import TaskInfo
from curation_sync.workbook import Table, read_identity, read_workbook

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
        """A workbook was saved and settled: push it (a no-op save sends nothing).

        A save is tried at once even while an earlier failure waits to be
        retried; if it fails too, the wait keeps growing from where it was
        (resetting it made a fault storm use up the request budget on retries).
        """
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

        A file-based task's reference copy is rewritten too, unless it was edited.

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
            result = pull_task(
                self.ctx, task, path, source=source, refresh_reference=True
            )
        settle_pull_entry(self.ctx, result)
        return result

    def poll(self, project_id: str | None = None) -> PollResult:
        """List the project's tasks, queue and run pulls, and retry the outbox.

        Raises:
            TransientRemoteError, RemoteError: the task list could not be fetched.
        """
        return poll_project(self, project_id or self.ctx.settings.project_id)

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
                    entry.id, str(error), retry_at(self.ctx, entry.attempts)
                )
                logger.warning("Could not push %s (%s)", entry.path.name, error)
        if pulls_too:
            run_pulls(self)
        return tuple(results)

    # Mapping and status ---------------------------------------------------------------

    def is_candidate(self, path: Path) -> bool:
        """Whether a path is a workbook of this folder (not a sidecar or state file)."""
        folder = self.ctx.settings.folder.resolve()
        try:
            relative = path.resolve().relative_to(folder)
        except ValueError:
            self._explain_link(path, folder, "a file outside the watched folder")
            return False
        if relative.parts and relative.parts[0] == STATE_DIR:
            return False
        if not is_workbook_path(path) or self._is_sidecar(path):
            return False
        if path.is_symlink() and not path.exists():
            self._explain_link(path, folder, "a file that does not exist")
            return False
        if path.exists() and not path.is_file():
            # A directory or a named pipe: reading a pipe would block forever.
            self._explain_skip(
                path,
                "not-a-file",
                "it is not a regular file (a folder, pipe or device); only "
                "workbook files are synced",
            )
            return False
        return True

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
            task_id, source = recorded
            found = WorkbookMapping(path, task_id, cast(MappingSource, source))
        if self.ctx.state.mapping(path) != (found.task_id, found.source):
            self.ctx.state.set_mapping(path, found.task_id, found.source)
        return found

    def check(self, path: Path) -> tuple[Table, LocalCheck]:
        """Run the local checks of a push on one workbook; send and write nothing.

        The schema comes from the state store when it is cached there, else from
        Synapse once.

        Raises:
            MappingError: the workbook maps to no task, or to a file-based one.
            WorkbookError: the file cannot be read.
        """
        path = path.resolve()
        mapping = self.map_workbook(path)
        if mapping is None:
            raise_unmapped(path)
        task = self._task(mapping.task_id)
        if task.record_set_id is None:
            raise MappingError(
                f"{path.name} belongs to the file-based task {task.name}, which has "
                "no schema to check against here; edit it in the web grid."
            )
        schema = self.ctx.state.schema(task.record_set_id) or ensure_schema(
            self.ctx, task
        )
        table = read_workbook(path, schema=schema.body)
        return table, check_table(
            table, schema.body, schema.upsert_key, schema_id=schema.schema_id
        )

    def status(self) -> list[WorkbookStatus]:
        """The state of every workbook in the folder and every mapped one."""
        paths = set(self._scan()) | set(self.ctx.state.mappings())
        return [workbook_status(self.ctx.state, path) for path in sorted(paths)]

    # Internals ------------------------------------------------------------------

    @contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        key = path.resolve()
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _explain_link(self, path: Path, folder: Path, target: str) -> None:
        """Say once why a symbolic link in the folder is left alone."""
        try:
            path.parent.resolve().relative_to(folder)
        except ValueError:
            return
        if path.is_symlink() and is_workbook_path(path):
            self._explain_skip(
                path,
                "symlink",
                f"it is a symbolic link to {target}; only files inside the watched "
                "folder are synced, so copy the workbook in instead",
            )

    def _explain_skip(self, path: Path, reason: str, message: str) -> None:
        key = path.parent.resolve() / path.name
        if self.ctx.state.mark_reported(key, reason):
            logger.warning("Left %s alone: %s", path.name, message)

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

    def _scan(self) -> Iterator[Path]:
        folder = self.ctx.settings.folder.resolve()
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(root) / name
                if self.is_candidate(path):
                    yield path


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
