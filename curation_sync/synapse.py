"""The adapter over synapseclient: the only module of the daemon that imports it.

`SynapseAdapter` builds one `Synapse` client that talks only to the configured
endpoints (`skip_checks=True`, all four endpoints, its own config file and cache,
no process-wide default client), logs in with a token it never shows, and offers
the few typed operations the sync engine needs. Every call:

* goes through the process-wide `RequestLimiter` (3 at once, 600 requests a minute);
* runs synapseclient's synchronous methods, so it must be made from a plain worker
  thread with no running event loop (the watcher's and scheduler's threads are);
* turns the client's failures into `TransientRemoteError` (429, 5xx, resets,
  timeouts: the outbox retries later) or `RemoteError` (everything else).

The client's own retry windows are bounded when an adapter is built
(`STANDARD_RETRY_ASYNC_PARAMS["retry_max_wait_before_failure"]` and
`STANDARD_RETRY_PARAMS["retries"]` are module-level dicts the client copies on each
call), so one call cannot hang for the default twenty minutes. Those dicts are
process-wide; each adapter call sets them to its own limits first.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import requests
import synapseclient.client
import tqdm  # type: ignore[import-untyped]  # tqdm ships no type stubs
from synapseclient import Synapse
from synapseclient.core import exceptions as client_errors
from synapseclient.core.async_utils import wrap_async_to_sync
from synapseclient.models import (
    CurationTask,
    FileBasedMetadataTaskProperties,
    Grid,
    RecordBasedMetadataTaskProperties,
    RecordSet,
)
from synapseclient.models.curation import SynchronizeGridRequest, SyncType

from curation_sync.connection import Endpoints, RetryLimits, route_client_logging
from curation_sync.errors import RemoteError, TransientRemoteError
from curation_sync.records import (
    read_csv_file,
    record_rows_from,
    validation_report_from,
)
from curation_sync.tasks import (
    GridSessionInfo,
    RecordRows,
    RecordSetInfo,
    TaskInfo,
    TaskKind,
    TaskState,
    TaskStatus,
    ValidationReport,
)
from curation_sync.throttle import LIMITER, RequestLimiter

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = {429, 500, 502, 503, 504}


def bound_client_retries(limits: RetryLimits) -> None:
    """Bound synapseclient's process-wide retry windows (see the module docstring)."""
    async_params = synapseclient.client.STANDARD_RETRY_ASYNC_PARAMS
    async_params["retry_max_wait_before_failure"] = limits.max_wait_seconds
    # The wait before the last retry may exceed the total; cap each wait as well.
    async_params["retry_max_back_off"] = min(
        10.0, max(0.5, limits.max_wait_seconds / 2)
    )
    synapseclient.client.STANDARD_RETRY_PARAMS["retries"] = limits.retries
    synapseclient.client.STANDARD_RETRY_PARAMS["max_wait"] = min(
        30, max(1, math.ceil(limits.max_wait_seconds))
    )


def is_transient(error: BaseException) -> bool:
    """Whether a client failure may go away if the same call is made later."""
    if isinstance(error, client_errors.SynapseHTTPError):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        return status in TRANSIENT_STATUSES
    transient_types = (
        client_errors.SynapseTimeoutError,
        httpx.TransportError,
        requests.ConnectionError,
        requests.Timeout,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(error, transient_types)


class SynapseAdapter:
    """Typed Synapse operations for the sync engine (see the module docstring)."""

    def __init__(
        self,
        endpoints: Endpoints | Mapping[str, str] | str,
        token: str,
        *,
        cache_dir: Path,
        config_path: Path,
        limiter: RequestLimiter = LIMITER,
        limits: RetryLimits | None = None,
    ) -> None:
        self.endpoints = Endpoints.of(endpoints)
        self.limits = limits or RetryLimits()
        self.limiter = limiter
        self.cache_dir = cache_dir
        self.work_dir = cache_dir / "curation-sync"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.calls = 0

        # The monitor thread would outlive every call; the client must not start it.
        tqdm.tqdm.monitor_interval = 0
        bound_client_retries(self.limits)
        self._syn = Synapse(
            repoEndpoint=self.endpoints.repo,
            authEndpoint=self.endpoints.auth,
            fileHandleEndpoint=self.endpoints.file,
            portalEndpoint=self.endpoints.portal,
            skip_checks=True,
            configPath=str(config_path),
            cache_root_dir=str(cache_dir),
            silent=True,
            cache_client=False,
            http_timeout_seconds=self.limits.http_timeout_seconds,
        )
        route_client_logging(self._syn.logger)
        self._call("log in", 1, lambda: self._syn.login(authToken=token, silent=True))
        self.user_id = str(self._syn.credentials.owner_id)
        logger.debug("Logged in to %s as user %s", self.endpoints.repo, self.user_id)

    def __repr__(self) -> str:
        return f"SynapseAdapter({self.endpoints.repo!r}, user={self.user_id!r})"

    def close(self) -> None:
        """Close the client's pooled connections (login, downloads, part uploads)."""
        self._syn._requests_session.close()
        self._syn._requests_session_storage.close()

    # Tasks --------------------------------------------------------------------

    def list_tasks(
        self, project_id: str, *, assigned_to_me: bool = True
    ) -> list[TaskInfo]:
        """Every task of a project (only the user's by default), one request a page."""

        def run() -> list[TaskInfo]:
            listed = CurationTask.list(
                project_id=project_id,
                assigned_to_me=assigned_to_me or None,
                synapse_client=self._syn,
            )
            return [_task_info(task) for task in listed]

        return self._call(f"list the tasks of {project_id}", 2, run)

    def get_task(self, task_id: int) -> TaskInfo:
        """One task by id."""
        return self._call(
            f"fetch task {task_id}",
            1,
            lambda: _task_info(
                CurationTask(task_id=task_id).get(synapse_client=self._syn)
            ),
        )

    def get_status(self, task_id: int) -> TaskStatus:
        """A task's state and active grid session."""

        def run() -> TaskStatus:
            status = CurationTask(task_id=task_id).get_status(synapse_client=self._syn)
            return _task_status(task_id, status)

        return self._call(f"fetch the status of task {task_id}", 1, run)

    def set_state(self, task_id: int, state: TaskState) -> TaskStatus:
        """Move a task to another state, keeping its linked grid session."""

        def run() -> TaskStatus:
            status = CurationTask(task_id=task_id).set_task_state(
                state=state.value, synapse_client=self._syn
            )
            return _task_status(task_id, status)

        return self._call(f"set task {task_id} to {state.value}", 2, run)

    # Record sets and schemas ----------------------------------------------------

    def record_set(self, record_set_id: str) -> RecordSetInfo:
        """A record set's current version and upsert key, without downloading rows."""

        def run() -> RecordSetInfo:
            entity = RecordSet(id=record_set_id, download_file=False).get(
                synapse_client=self._syn
            )
            return _record_set_info(entity)

        return self._call(f"fetch record set {record_set_id}", 1, run)

    def record_rows(
        self, record_set_id: str, *, version: int | None = None
    ) -> tuple[RecordSetInfo, RecordRows]:
        """A record set's rows (the data CSV, cached): the current version or one."""

        def run() -> tuple[RecordSetInfo, RecordRows]:
            entity = RecordSet(id=record_set_id, version_number=version).get(
                synapse_client=self._syn
            )
            info = _record_set_info(entity)
            return info, record_rows_from(info, entity.path)

        return self._call(f"download the rows of {record_set_id}", 3, run)

    def bound_schema(self, entity_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """The `$id` and body of the JSON schema bound to an entity, or (None, None).

        There is no model method that returns the schema body, so this reads the
        binding and then the registered schema with the client's REST helper.
        """

        def run() -> tuple[str | None, dict[str, Any] | None]:
            try:
                binding = self._syn.restGET(f"/entity/{entity_id}/schema/binding")
            except client_errors.SynapseHTTPError as error:
                if getattr(error.response, "status_code", None) == 404:
                    return None, None
                raise
            schema_id = str(binding["jsonSchemaVersionInfo"]["$id"])
            body = self._syn.restGET(f"/schema/type/registered/{schema_id}")
            return schema_id, dict(body)

        return self._call(f"fetch the schema bound to {entity_id}", 2, run)

    def validation_report(
        self, record_set_id: str
    ) -> tuple[RecordSetInfo, RecordRows, ValidationReport | None]:
        """The current version's rows and Synapse's detailed validation results."""

        def run() -> tuple[RecordSetInfo, RecordRows, ValidationReport | None]:
            entity = RecordSet(id=record_set_id).get(synapse_client=self._syn)
            info = _record_set_info(entity)
            rows = record_rows_from(info, entity.path)
            frame = entity.get_detailed_validation_results(
                download_location=str(self.work_dir), synapse_client=self._syn
            )
            if frame is None:
                return info, rows, None
            return info, rows, validation_report_from(info, frame)

        return self._call(f"fetch the validation results of {record_set_id}", 5, run)

    # Grid sessions --------------------------------------------------------------

    def grid_session(self, session_id: str) -> GridSessionInfo | None:
        """A grid session, or None when it no longer exists."""

        def run() -> GridSessionInfo | None:
            try:
                grid = Grid(session_id=session_id).get(synapse_client=self._syn)
            except client_errors.SynapseHTTPError as error:
                if getattr(error.response, "status_code", None) == 404:
                    return None
                raise
            return _session_info(grid)

        return self._call(f"fetch grid session {session_id}", 1, run)

    def create_grid_session(self, task: TaskInfo) -> GridSessionInfo:
        """Start a grid session for a task and link it to the task."""

        def run() -> GridSessionInfo:
            grid = _curation_task(task).create_grid_session(
                timeout=self.limits.job_timeout_seconds, synapse_client=self._syn
            )
            return _session_info(grid)

        return self._call(f"create a grid session for task {task.task_id}", 7, run)

    def import_rows(
        self, session_id: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
    ) -> int:
        """Upsert rows into a grid session through a CSV import; the bytes uploaded."""
        with tempfile.TemporaryDirectory(dir=self.work_dir) as folder:
            path = Path(folder) / "rows.csv"
            with open(path, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(columns)
                writer.writerows(rows)
            size = path.stat().st_size

            def run() -> None:
                Grid(session_id=session_id).import_csv(
                    path=str(path),
                    timeout=self.limits.job_timeout_seconds,
                    synapse_client=self._syn,
                )

            self._call(
                f"import {len(rows)} rows into grid session {session_id}", 10, run
            )
        return size

    def synchronize(self, session_id: str) -> list[str]:
        """Push a grid session to its source (PULL_PUSH); the error messages."""

        def run() -> list[str]:
            request = SynchronizeGridRequest(
                grid_session_id=session_id, sync_type=SyncType.PULL_PUSH
            )
            done = wrap_async_to_sync(
                request.send_job_and_wait_async(
                    timeout=self.limits.job_timeout_seconds, synapse_client=self._syn
                )
            )
            return list(done.error_messages or [])

        return self._call(f"synchronize grid session {session_id}", 2, run)

    def export(self, session_id: str) -> int:
        """Export a grid session to a new record set version; the version number."""

        def run() -> int:
            grid = Grid(session_id=session_id).export_to_record_set(
                timeout=self.limits.job_timeout_seconds, synapse_client=self._syn
            )
            return int(grid.record_set_version_number)

        return self._call(f"export grid session {session_id}", 2, run)

    def download_grid(self, session_id: str) -> tuple[tuple[str, ...], list[list[str]]]:
        """The current rows of a grid session (for file-based reference workbooks)."""

        def run() -> tuple[tuple[str, ...], list[list[str]]]:
            with tempfile.TemporaryDirectory(dir=self.work_dir) as folder:
                path = Grid(session_id=session_id).download_csv(
                    destination=folder,
                    file_name="grid.csv",
                    timeout=self.limits.job_timeout_seconds,
                    synapse_client=self._syn,
                )
                header, rows = read_csv_file(Path(path))
            return header, rows

        return self._call(f"download grid session {session_id}", 5, run)

    def delete_grid_session(self, session_id: str) -> None:
        """Delete a grid session (the engine only deletes its own)."""
        self._call(
            f"delete grid session {session_id}",
            1,
            lambda: Grid(session_id=session_id).delete(synapse_client=self._syn),
        )

    def grid_url(self, session_id: str) -> str:
        """Where a person edits a grid session in the web portal."""
        return f"https://www.synapse.org/Grid:default?sessionId={session_id}"

    # Internals ------------------------------------------------------------------

    def _call(self, what: str, cost: int, run: Callable[[], T]) -> T:
        """Run one client operation under the limiter, translating its failures."""
        _refuse_inside_event_loop(what)
        # Other code in the process may have changed the shared retry dicts.
        bound_client_retries(self.limits)
        with self.limiter.slot(cost):
            self.calls += 1
            logger.debug("Synapse: %s", what)
            try:
                return run()
            except (RemoteError, TransientRemoteError):
                raise
            except Exception as error:
                raise _translate(what, error) from error


def _refuse_inside_event_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"Cannot {what} from inside a running event loop; synapseclient's blocking "
        "calls must run in a plain worker thread."
    )


def _translate(what: str, error: BaseException) -> RemoteError:
    detail = (
        str(error).strip().splitlines()[0]
        if str(error).strip()
        else type(error).__name__
    )
    if is_transient(error):
        return TransientRemoteError(
            f"Could not {what}: Synapse did not answer in time or is overloaded "
            f"({detail}); the daemon will try again later."
        )
    return RemoteError(f"Could not {what}: {detail}.")


def _task_info(task: Any) -> TaskInfo:
    properties = task.task_properties
    if isinstance(properties, RecordBasedMetadataTaskProperties):
        kind, record_set, view = TaskKind.RECORD, properties.record_set_id, None
    elif isinstance(properties, FileBasedMetadataTaskProperties):
        kind, record_set, view = TaskKind.FILE, None, properties.file_view_id
    else:
        kind, record_set, view = TaskKind.OTHER, None, None
    return TaskInfo(
        task_id=int(task.task_id),
        project_id=str(task.project_id),
        name=str(task.data_type or f"task-{task.task_id}"),
        kind=kind,
        record_set_id=record_set,
        file_view_id=view,
        assignee_principal_id=task.assignee_principal_id,
        etag=task.etag,
        modified_on=task.modified_on,
        instructions=task.instructions,
    )


def _curation_task(task: TaskInfo) -> CurationTask:
    """A client task object that needs no extra fetch before creating a session."""
    if task.kind is TaskKind.RECORD:
        properties: Any = RecordBasedMetadataTaskProperties(
            record_set_id=task.record_set_id
        )
    elif task.kind is TaskKind.FILE:
        properties = FileBasedMetadataTaskProperties(file_view_id=task.file_view_id)
    else:
        properties = None
    return CurationTask(
        task_id=task.task_id,
        project_id=task.project_id,
        data_type=task.name,
        task_properties=properties,
    )


def _task_status(task_id: int, status: Any) -> TaskStatus:
    details = getattr(status, "execution_details", None)
    session = getattr(details, "active_session_id", None)
    state = getattr(status, "state", None)
    value = getattr(state, "value", state)
    return TaskStatus(task_id, TaskState(str(value)), str(session) if session else None)


def _record_set_info(entity: Any) -> RecordSetInfo:
    return RecordSetInfo(
        record_set_id=str(entity.id),
        version=int(entity.version_number or 0),
        upsert_key=tuple(entity.upsert_keys or ()),
        etag=entity.etag,
        validation_file_handle_id=entity.validation_file_handle_id,
    )


def _session_info(grid: Any) -> GridSessionInfo:
    return GridSessionInfo(
        session_id=str(grid.session_id),
        started_by=str(grid.started_by) if grid.started_by else None,
        source_entity_id=grid.source_entity_id,
    )


__all__ = [
    "Endpoints",
    "RetryLimits",
    "SynapseAdapter",
    "bound_client_retries",
    "is_transient",
]
