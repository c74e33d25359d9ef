"""The daemon's lifecycle: wire each watched folder, start, reload and stop.

For every `[[folder]]` of the config the daemon takes the folder's lock (so two
daemons never push the same folder), opens its state store, builds a sync engine
over one shared Synapse adapter, starts a watcher whose settled notices become
pushes, and a poll job. Start-up then polls once (which pulls new tasks and resumes
the outbox) and checks every workbook, so edits made while the daemon was stopped are
pushed too.

Stopping waits for the push in flight (the watcher joins its workers), then closes
the state stores and releases the locks. Reloading builds the new folders first and
swaps them in only when that succeeded, so a bad config leaves the old one running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation_sync import service
from curation_sync.config import Config, FolderConfig
from curation_sync.errors import ConfigError, CurationSyncError, RemoteError
from curation_sync.filesystem import sweep_interrupted_writes, walk_files
from curation_sync.lock import FolderLock
from curation_sync.mapping import MappingRule
from curation_sync.scheduler import Poller
from curation_sync.state import STATE_DIR, StateStore
from curation_sync.synapse import SynapseAdapter
from curation_sync.sync import SyncEngine, SyncSettings
from curation_sync.watcher import Watcher

logger = logging.getLogger(__name__)

# A temporary file unchanged for this long is no write in progress.
_INTERRUPTED_WRITE_AGE_SECONDS = 60.0


@dataclass
class FolderRuntime:
    """The running parts of one watched folder."""

    config: FolderConfig
    lock: FolderLock
    state: StateStore
    engine: SyncEngine
    watcher: Watcher


class Daemon:
    """Runs every watched folder of one config (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        adapter_factory: Callable[[Config], SynapseAdapter] | None = None,
    ) -> None:
        self.config = config
        self._adapter_factory = adapter_factory or make_adapter
        self._adapter: SynapseAdapter | None = None
        self._folders: list[FolderRuntime] = []
        self._poller: Poller | None = None
        self._watchdog_stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Daemon({len(self._folders)} folders)"

    @property
    def folders(self) -> list[FolderRuntime]:
        return list(self._folders)

    def start(self) -> None:
        """Start every folder, resume pending work, and tell systemd it is ready.

        Raises:
            ConfigError: a watched folder is missing or locked by another daemon.
            RemoteError: Synapse refused the token.
        """
        with self._guard:
            self._adapter = self._adapter_factory(self.config)
            try:
                for folder in self.config.folders:
                    self._folders.append(self._start_folder(folder))
            except BaseException:
                # Release the folders already started, so no lock outlives a failure.
                self._stop_parts()
                raise
            self._poller = Poller(
                [(rt.config.poll_interval_seconds, rt.engine) for rt in self._folders]
            )
            self._poller.start()
        for runtime in self._folders:
            catch_up(runtime)
        self._start_watchdog()
        service.notify("READY=1")
        logger.info(
            "Started curation-sync on %s",
            ", ".join(str(rt.config.path) for rt in self._folders),
        )

    def stop(self) -> None:
        """Finish the push in flight, save state, release the folder locks."""
        service.notify("STOPPING=1")
        with self._guard:
            self._stop_parts()
        self._watchdog_stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        logger.info("Stopped curation-sync")

    def reload(self, config: Config) -> None:
        """Swap in a new config: stop the old folders, start the new ones."""
        service.notify("RELOADING=1")
        with self._guard:
            self._stop_parts()
            self.config = config
        self.start()
        logger.info("Reloaded the configuration from %s", config.source)

    def _stop_parts(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        for runtime in self._folders:
            runtime.watcher.stop()
            runtime.state.close()
            runtime.lock.release()
        self._folders = []
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None

    def _start_folder(self, folder: FolderConfig) -> FolderRuntime:
        if not folder.path.is_dir():
            raise ConfigError(
                f"The watched folder {folder.path} does not exist; create it or fix "
                "folder.path in the config."
            )
        assert self._adapter is not None
        lock = FolderLock(folder.path / STATE_DIR)
        lock.acquire()
        try:
            state = StateStore(folder.path)
            holder: dict[str, Watcher] = {}
            engine = SyncEngine(
                self._adapter,
                state,
                settings_for(folder),
                is_open=lambda path: holder["w"].is_open_in_editor(path),
                on_own_write=lambda path: holder["w"].record_own_write(path),
            )
            watcher = Watcher(
                [folder.path],
                lambda path: guarded(engine.on_settled, path),
                on_deleted=lambda path: guarded(engine.on_deleted, path),
                on_moved=lambda old, new: guarded(engine.on_moved, old, new),
                on_editor_closed=lambda _path: guarded(engine.resume_pending),
                debounce_seconds=folder.debounce_seconds,
                observer=folder.observer,  # type: ignore[arg-type]
                polling_interval_seconds=folder.polling_interval_seconds,
                incomplete_timeout_seconds=folder.incomplete_timeout_seconds,
                ignore=lambda path: not engine.is_candidate(path),
            )
            holder["w"] = watcher
            watcher.start()
        except BaseException:
            lock.release()
            raise
        return FolderRuntime(folder, lock, state, engine, watcher)

    def _start_watchdog(self) -> None:
        interval = service.watchdog_interval_seconds()
        if interval is None:
            return
        self._watchdog_stop.clear()

        def ping() -> None:
            while not self._watchdog_stop.wait(interval):
                for runtime in self._folders:
                    runtime.lock.refresh()
                service.notify("WATCHDOG=1")

        self._watchdog = threading.Thread(
            target=ping, name="curation-sync-watchdog", daemon=True
        )
        self._watchdog.start()


def make_adapter(config: Config) -> SynapseAdapter:
    """The one Synapse adapter of the daemon, logged in with the config's token."""
    if config.token is None:
        raise ConfigError(
            "No Synapse token was found; set SYNAPSE_AUTH_TOKEN, or synapse.token_file "
            "in the config (see `curation-sync doctor`)."
        )
    cache = config.state_dir / "synapse-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return SynapseAdapter(
        dict(config.endpoints),
        config.token.reveal(),
        cache_dir=cache,
        config_path=config.state_dir / "synapseConfig",
    )


def settings_for(folder: FolderConfig) -> SyncSettings:
    rules = tuple(
        MappingRule(pattern=r.pattern, task_id=r.task_id or None, task_name=r.task_name)
        for r in folder.rules
    )
    return SyncSettings(
        folder=folder.path,
        project_id=folder.project,
        rules=rules,
        sidecar_name_template=folder.sidecar_name,
        sidecar_format=folder.sidecar_format,  # type: ignore[arg-type]
        remove_sidecar_when_valid=folder.remove_sidecar_when_valid,
        push_mode=folder.push_mode,  # type: ignore[arg-type]
        auto_complete=folder.auto_complete,
        mass_change_share=folder.mass_change_share,
        retry_initial_seconds=folder.retry_initial_seconds,
        retry_max_seconds=folder.retry_max_seconds,
    )


def catch_up(runtime: FolderRuntime) -> None:
    """Poll once, then push every workbook edited while the daemon was off.

    The poll also resumes the outbox left by a crash or an outage. The one walk
    of the folder also finds the temporary files of writes a crash cut short,
    and deletes them.
    """
    if runtime.config.project:
        guarded(runtime.engine.poll)
    else:
        guarded(runtime.engine.resume_pending)
    paths = sorted(walk_files([runtime.config.path]))
    removed = sweep_interrupted_writes(
        paths, _INTERRUPTED_WRITE_AGE_SECONDS, time.time()
    )
    if removed:
        logger.info(
            "Removed %d temporary files left by writes a crash cut short in %s",
            len(removed),
            runtime.config.path,
        )
    for path in paths:
        if runtime.engine.is_candidate(path):
            guarded(runtime.engine.on_settled, path)


def guarded(action: Callable[..., object], *args: object) -> None:
    """Run one callback; log what failed and keep the daemon alive."""
    try:
        action(*args)
    except CurationSyncError as error:
        logger.warning("%s", error)
    except Exception:
        logger.exception("Unexpected failure in %s; the daemon keeps running", action)


def folder_of(config: Config, path: Path) -> FolderConfig:
    """The watched folder a workbook lives in.

    Raises:
        ConfigError: the workbook is in none of the config's folders.
    """
    resolved = path.resolve()
    for folder in config.folders:
        root = folder.path.resolve()
        if resolved == root or root in resolved.parents:
            return folder
    watched = ", ".join(str(folder.path) for folder in config.folders)
    raise ConfigError(
        f"{path} is not in a watched folder ({watched}); move it there or add its "
        "folder to the config."
    )


@contextmanager
def open_engine(
    config: Config, folder: FolderConfig, *, online: bool = True
) -> Iterator[SyncEngine]:
    """A sync engine for one-shot commands (`push`, `pull`, `tasks`, `status`).

    `online=False` gives an engine for local work only (status, checks): it never
    logs in, and any call that needs Synapse fails with a RemoteError.
    """
    adapter = make_adapter(config) if online else OfflineAdapter()
    state = StateStore(folder.path)
    try:
        yield SyncEngine(adapter, state, settings_for(folder))  # type: ignore[arg-type]
    finally:
        state.close()
        adapter.close()


class OfflineAdapter:
    """Stands in for the Synapse adapter where a command must not go online."""

    user_id = ""

    def __getattr__(self, name: str) -> Any:
        raise RemoteError(
            f"This command works offline and cannot {name.replace('_', ' ')}; "
            "run it with the daemon's config online."
        )

    def close(self) -> None:
        return None
