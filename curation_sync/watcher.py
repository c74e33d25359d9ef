"""Turn raw file-system events into one "workbook settled" notice per real change.

Design, and the alternatives rejected:

- An event never causes work by itself. Every event for a workbook only restarts
  that workbook's timer (the debounce), because Excel, LibreOffice, copies and
  Python writers all produce bursts whose event types differ between platforms and
  observers. Acting on `closed` was rejected: Windows, macOS and the polling
  observer never send it, and LibreOffice sends it at load and close without
  writing anything.
- When the timer fires, a worker looks at the file itself: two `stat` looks
  `stable_seconds` apart must agree, an XLSX must open as a zip whose members all
  pass their CRC check (the central directory is written last, so a partial copy
  or an in-place openpyxl save fails), and the content fingerprint must differ
  from the last settled one. That absorbs touches, re-saves without changes,
  LibreOffice's close events and the daemon's own writes, which are recognised
  by the fingerprint recorded with `record_own_write`, never by timing.
- Fingerprints: the SHA-256 of a CSV's bytes; for an XLSX the SHA-256 of every
  member's name and uncompressed bytes except `docProps/`, where the office
  programs rewrite timestamps on every save. Comparing mtimes was rejected:
  `shutil.copy2` sets an older mtime than the file it replaces.
- One timer thread and a small worker pool, rather than a `threading.Timer` per
  event: the observer thread never stats, hashes or calls back, and at most one
  check or callback runs per workbook at a time. A save during a callback marks
  the workbook for exactly one more check afterwards.
- Network shares: inotify sees no changes made by other machines, so folders on
  NFS, SMB/CIFS, SSHFS and similar file systems get watchdog's polling observer.
  A periodic rescan also catches events lost to an inotify queue overflow.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent

from curation_sync.deadlines import Deadlines, Key
from curation_sync.errors import ConfigError
from curation_sync.filesystem import (
    IncompleteWorkbookError,
    Signature,
    fingerprint_workbook,
    hash_file,
    is_default_sidecar,
    is_lock_file,
    is_open_in_editor,
    is_temporary_name,
    stat_signature,
    walk_files,
    workbooks_for_lock_file,
)
from curation_sync.observers import ObserverChoice, Observers

logger = logging.getLogger(__name__)

WORKBOOK_SUFFIXES = (".csv", ".xlsx")

_MAX_BACKOFF_SECONDS = 30.0
_OWN_WRITES_KEPT = 4


@dataclass
class _PathState:
    """What the watcher knows about one workbook path."""

    known: bool = False
    fingerprint: str | None = None
    settled_signature: Signature | None = None
    probe_signature: Signature | None = None
    moved_from: Path | None = None
    incomplete_since: float | None = None
    attempts: int = 0
    busy: bool = False
    rerun: bool = False
    own_fingerprints: deque[str] = field(
        default_factory=lambda: deque(maxlen=_OWN_WRITES_KEPT)
    )


class Watcher:
    """Watches folders and calls `on_settled` once per real change of a workbook.

    Callbacks run on the watcher's worker threads, never on the observer thread,
    with at most one callback in flight per workbook. A workbook saved while its
    callback runs is checked once more afterwards and, if its content changed,
    gets exactly one more `on_settled`.

    - `on_settled(path)`: a `.csv`/`.xlsx` workbook (not a sidecar, lock or temp
      file, nor a file under a dot-folder) has new content and is complete.
    - `on_deleted(path)`: a workbook the watcher knew has gone and stayed gone
      for the quiet period (Excel's save briefly removes it).
    - `on_moved(old, new)`: a known workbook was renamed or moved inside the
      watched folders; `on_settled(new)` follows only if its content changed too.
      Without `on_moved`, a rename is reported as `on_deleted(old)` and
      `on_settled(new)`.
    - `on_editor_opened(path)` / `on_editor_closed(path)`: Excel's `~$` owner
      file or LibreOffice's `.~lock.` file appeared, or has gone for the quiet
      period (LibreOffice removes and re-takes it during a save).

    Workbooks present at `start()` are taken as the baseline: they are
    fingerprinted in the background and get no notice.

    A Watcher starts once; `stop()` joins every thread it started.

    Limitations:
        A stale lock file left by a crashed editor keeps the workbook "open"
        until it is deleted. On macOS and BSD the network-share check relies on
        the `mount` command. A CSV has no internal structure, so a copy that
        pauses for longer than the quiet period can be seen half-written.
    """

    def __init__(
        self,
        folders: Sequence[Path],
        on_settled: Callable[[Path], None],
        *,
        on_deleted: Callable[[Path], None] | None = None,
        on_moved: Callable[[Path, Path], None] | None = None,
        on_editor_opened: Callable[[Path], None] | None = None,
        on_editor_closed: Callable[[Path], None] | None = None,
        debounce_seconds: float = 2.0,
        stable_seconds: float = 0.5,
        observer: ObserverChoice = "auto",
        polling_interval_seconds: float = 5.0,
        rescan_interval_seconds: float | None = 600.0,
        incomplete_timeout_seconds: float = 300.0,
        is_own_write: Callable[[Path], bool] | None = None,
        ignore: Callable[[Path], bool] | None = None,
        suffixes: Sequence[str] = WORKBOOK_SUFFIXES,
        max_workers: int = 4,
    ) -> None:
        if observer not in ("auto", "native", "polling"):
            raise ConfigError(
                f"Unknown observer {observer!r}; use 'auto', 'native' or 'polling'."
            )
        for folder in folders:
            if not Path(folder).is_dir():
                raise ConfigError(
                    f"The watched folder {folder} does not exist or is not a "
                    "folder; create it or fix the configuration."
                )

        self._folders = [Path(os.path.realpath(folder)) for folder in folders]
        self._on_settled = on_settled
        self._on_deleted = on_deleted
        self._on_moved = on_moved
        self._on_editor_opened = on_editor_opened
        self._on_editor_closed = on_editor_closed
        self._debounce_seconds = debounce_seconds
        self._stable_seconds = stable_seconds
        self._rescan_interval_seconds = rescan_interval_seconds
        self._incomplete_timeout_seconds = incomplete_timeout_seconds
        self._is_own_write = is_own_write
        self._ignore = ignore if ignore is not None else is_default_sidecar
        self._suffixes = tuple(suffix.lower() for suffix in suffixes)
        self._max_workers = max_workers

        self._lock = threading.Lock()
        self._states: dict[Path, _PathState] = {}
        self._open_in_editor: set[Path] = set()
        self._observers = Observers(
            self._folders,
            self._on_event,
            choice=observer,
            polling_interval_seconds=polling_interval_seconds,
        )
        self._timers = Deadlines(self._fire)
        self._workers: ThreadPoolExecutor | None = None
        self._running = False

    @property
    def folders(self) -> list[Path]:
        return list(self._folders)

    @property
    def observer_kinds(self) -> dict[Path, str]:
        """Which observer ("native" or "polling") watches each folder."""
        return dict(self._observers.kinds)

    def start(self) -> None:
        """Take the baseline and start observing; returns once events flow."""
        self._workers = ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="curation-sync-watcher"
        )
        self._running = True
        self._timers.start()

        # Signatures are taken before observing: a workbook that changes before
        # its baseline fingerprint is read gets no baseline, so it is noticed.
        workbooks, locked = self._scan()
        with self._lock:
            self._open_in_editor = locked
        for path in workbooks:
            with self._lock:
                self._states[path] = _PathState(
                    known=True, busy=True, settled_signature=stat_signature(path)
                )
            self._submit(self._take_baseline, path)

        self._observers.start()

        if self._rescan_interval_seconds:
            self._timers.arm(("rescan", Path()), self._rescan_interval_seconds)

    def stop(self) -> None:
        """Stop observing and join every thread; waits for running callbacks.

        Do not call it from inside a callback.
        """
        self._running = False
        self._observers.stop()
        self._timers.stop()
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)

    def is_open_in_editor(self, path: Path) -> bool:
        """Whether the workbook has an Excel or LibreOffice lock file beside it."""
        return is_open_in_editor(Path(path))

    def workbooks_open_in_editor(self) -> list[Path]:
        """Workbooks that had an editor lock file at the last look."""
        with self._lock:
            return sorted(self._open_in_editor)

    def record_own_write(self, path: Path) -> None:
        """Remember the content the daemon just wrote to `path` so it is no change.

        Call it right after the atomic replace; the notice is suppressed because
        the fingerprint matches, whenever the events arrive.
        """
        path = self._normalise(path)
        try:
            fingerprint = fingerprint_workbook(path)
        except IncompleteWorkbookError:
            fingerprint = hash_file(path)
        with self._lock:
            state = self._states.setdefault(path, _PathState())
            state.own_fingerprints.append(fingerprint)

    def pending(self) -> int:
        """How many workbooks and lock files wait for their quiet period."""
        return self._timers.pending(exclude="rescan")

    def is_idle(self) -> bool:
        """Whether no workbook is waiting for its quiet period or being checked."""
        with self._lock:
            busy = any(state.busy for state in self._states.values())
        return not busy and not self._timers.pending(exclude="rescan")

    # Events (observer thread: classify and arm timers, nothing slower).

    def _on_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return

        src = Path(os.fsdecode(event.src_path))
        dest = Path(os.fsdecode(event.dest_path)) if event.dest_path else None
        logger.debug("Event %s %s%s", kind, src, f" -> {dest}" if dest else "")
        if event.is_directory:
            self._on_directory_event(kind, src, dest)
            return

        for path in (src, dest):
            if path is not None and is_lock_file(path):
                for workbook in workbooks_for_lock_file(path):
                    self._timers.arm(("editor", workbook), self._debounce_seconds)

        src_is_workbook = self._is_workbook(src)
        dest_is_workbook = dest is not None and self._is_workbook(dest)
        if dest is not None and src_is_workbook and dest_is_workbook:
            self._note_move(src, dest)
        if src_is_workbook:
            self._arm(src)
        if dest is not None and dest_is_workbook:
            self._arm(dest)

    def _on_directory_event(self, kind: str, src: Path, dest: Path | None) -> None:
        # Files inside a created or moved-in folder get their own synthesised
        # events; a folder moved or deleted away only tells about the folder.
        # A new folder may be one more than the inotify watch limit allows.
        if kind in ("created", "moved"):
            self._timers.arm(("watches", Path()), self._debounce_seconds)
        if kind not in ("moved", "deleted"):
            return
        if kind == "deleted" and src in self._folders:
            logger.warning(
                "The watched folder %s was removed or unmounted; its workbooks "
                "are reported deleted (nothing is deleted on Synapse); until the "
                "daemon restarts, only the periodic rescan sees changes in it",
                src,
            )

        with self._lock:
            inside = [path for path in self._states if src in path.parents]
        for path in inside:
            if dest is not None:
                moved = dest / path.relative_to(src)
                if self._is_workbook(moved):
                    self._note_move(path, moved)
                    self._arm(moved)
            self._arm(path)

    def _note_move(self, src: Path, dest: Path) -> None:
        with self._lock:
            old = self._states.get(src)
            if old is None or not old.known or old.busy:
                return
            del self._states[src]
            new = self._states.setdefault(dest, _PathState())
            new.known = True
            new.fingerprint = old.fingerprint
            new.own_fingerprints.extend(old.own_fingerprints)
            new.settled_signature = None
            new.moved_from = old.moved_from or src
        self._timers.cancel(("settle", src))

    def _arm(self, path: Path) -> None:
        self._timers.arm(("settle", path), self._debounce_seconds)

    # Timers and workers.

    def _fire(self, key: Key) -> None:
        what, path = key
        if what == "settle":
            with self._lock:
                state = self._states.setdefault(path, _PathState())
                if state.busy:
                    state.rerun = True
                    return
                state.busy = True
            self._submit(self._settle, path)
        elif what == "editor":
            self._submit(self._check_editor, path)
        elif what == "rescan":
            self._submit(self._rescan)
        elif what == "watches":
            self._submit(self._recheck_watches)

    def _submit(self, job: Callable[..., None], *args: Path) -> None:
        if not self._running or self._workers is None:
            return
        try:
            self._workers.submit(job, *args)
        except RuntimeError:
            # The pool refuses work once stop() has begun.
            logger.debug("Dropped %s for %s: the watcher is stopping", job, args)

    def _settle(self, path: Path) -> None:
        delay: float | None = None
        try:
            delay = self._examine(path)
        except Exception:
            logger.exception("Unhandled exception while examining %s", path)
        self._release(path, delay)

    def _release(self, path: Path, delay: float | None) -> None:
        # An event while busy means one more look after the quiet period.
        with self._lock:
            state = self._states.get(path)
            rerun = False
            if state is not None:
                state.busy = False
                rerun, state.rerun = state.rerun, False
                # Forget paths that are gone: temp names, deleted workbooks.
                gone = not (state.known or state.own_fingerprints)
                if gone and not rerun and delay is None:
                    del self._states[path]

        if rerun:
            self._arm(path)
        elif delay is not None:
            self._timers.arm(("settle", path), delay, extend_only=True)

    def _examine(self, path: Path) -> float | None:
        """Decide about one workbook; returns a delay to look at it again."""
        try:
            signature = stat_signature(path)
        except OSError as error:
            logger.warning(
                "Could not look at %s (%s); will retry on its next change", path, error
            )
            return None
        if signature is None:
            self._report_missing(path)
            return None

        with self._lock:
            state = self._states.get(path)
            if state is None:
                return None
            if signature == state.settled_signature and state.moved_from is None:
                state.probe_signature = None
                return None
            if signature != state.probe_signature:
                state.probe_signature = signature
                return self._stable_seconds

        try:
            fingerprint = fingerprint_workbook(path)
        except FileNotFoundError:
            return self._stable_seconds
        except (IncompleteWorkbookError, OSError) as error:
            return self._retry_incomplete(path, state, signature, str(error))

        # The file changed while it was being read: look again.
        if stat_signature(path) != signature:
            with self._lock:
                state.probe_signature = None
            return self._stable_seconds

        self._conclude(path, state, signature, fingerprint)
        return None

    def _conclude(
        self, path: Path, state: _PathState, signature: Signature, fingerprint: str
    ) -> None:
        with self._lock:
            previous = state.fingerprint
            moved_from, state.moved_from = state.moved_from, None
            state.known = True
            state.fingerprint = fingerprint
            state.settled_signature = signature
            state.probe_signature = None
            state.incomplete_since = None
            state.attempts = 0
            own = fingerprint in state.own_fingerprints

        if moved_from is not None and self._on_moved is not None:
            logger.debug("Moved %s -> %s", moved_from, path)
            self._call(self._on_moved, moved_from, path)
        elif moved_from is not None:
            self._report_deleted(moved_from)
            previous = None

        # A touch, a re-save without changes or a close: same content as before.
        if fingerprint == previous:
            logger.debug("Unchanged content in %s; no notice", path)
            return
        if own or (self._is_own_write is not None and self._is_own_write(path)):
            logger.debug("Own write to %s; no notice", path)
            return

        logger.debug("Settled %s", path)
        self._call(self._on_settled, path)

    def _retry_incomplete(
        self, path: Path, state: _PathState, signature: Signature, reason: str
    ) -> float | None:
        now = time.monotonic()
        with self._lock:
            if state.incomplete_since is None:
                state.incomplete_since = now
            waited = now - state.incomplete_since
            state.attempts += 1
            attempts = state.attempts
        remaining = self._incomplete_timeout_seconds - waited
        if remaining > 0:
            backoff = self._debounce_seconds * 2.0 ** min(attempts, 16)
            delay = min(backoff, _MAX_BACKOFF_SECONDS, max(remaining, 0.01))
            logger.debug(
                "%s is incomplete (%s); next look in %.2f s", path, reason, delay
            )
            return delay

        # Hand it over after all, so the daemon reports it as unreadable.
        logger.warning(
            "%s has not become a complete workbook in %.0f s (%s); passing it on "
            "so that it is reported",
            path,
            self._incomplete_timeout_seconds,
            reason,
        )
        try:
            fingerprint = hash_file(path)
        except FileNotFoundError:
            return self._stable_seconds
        except OSError as error:
            fingerprint = f"unreadable:{error.errno}"
        self._conclude(path, state, signature, fingerprint)
        return None

    def _report_missing(self, path: Path) -> None:
        # Gone for the whole quiet period: Excel's rename dance would be over.
        # The state is emptied, not removed, while this job still holds it.
        with self._lock:
            state = self._states.get(path)
            if state is None:
                return
            was_known = state.known
            self._states[path] = _PathState(busy=True, rerun=state.rerun)
        if was_known:
            self._report_deleted(path)

    def _report_deleted(self, path: Path) -> None:
        if self._on_deleted is None:
            logger.info(
                "Removed %s from the watched folder: nothing is deleted on Synapse",
                path,
            )
            return
        self._call(self._on_deleted, path)

    def _take_baseline(self, path: Path) -> None:
        try:
            fingerprint: str | None = fingerprint_workbook(path)
        except (IncompleteWorkbookError, OSError):
            fingerprint = None
        signature = stat_signature(path)

        with self._lock:
            state = self._states.get(path)
            if state is not None and state.settled_signature == signature:
                state.fingerprint = fingerprint
            elif state is not None:
                state.settled_signature = None
        self._release(path, None)

    def _check_editor(self, workbook: Path) -> None:
        is_open = is_open_in_editor(workbook) and workbook.exists()
        with self._lock:
            was_open = workbook in self._open_in_editor
            if is_open:
                self._open_in_editor.add(workbook)
            else:
                self._open_in_editor.discard(workbook)

        if is_open and not was_open:
            logger.debug("Opened in an editor: %s", workbook)
            if self._on_editor_opened is not None:
                self._call(self._on_editor_opened, workbook)
        elif was_open and not is_open:
            logger.debug("Closed in its editor: %s", workbook)
            if self._on_editor_closed is not None:
                self._call(self._on_editor_closed, workbook)

    def _recheck_watches(self) -> None:
        # A folder moved to polling may have missed changes meanwhile.
        if self._observers.recheck_inotify_watches():
            self._timers.arm(("rescan", Path()), 0)

    def _rescan(self) -> None:
        # Catch what events missed: an overflowed queue, an unwatched sub-folder.
        workbooks, locked = self._scan()
        with self._lock:
            known = {
                path: state.settled_signature for path, state in self._states.items()
            }
            editor_changes = locked ^ self._open_in_editor
        for path in workbooks:
            if path not in known or known[path] != stat_signature(path):
                self._arm(path)
        for path in known.keys() - set(workbooks):
            self._arm(path)
        for path in editor_changes:
            self._timers.arm(("editor", path), 0)
        if self._rescan_interval_seconds:
            self._timers.arm(("rescan", Path()), self._rescan_interval_seconds)

    def _scan(self) -> tuple[list[Path], set[Path]]:
        """Workbooks in the watched folders, and those with an editor lock file."""
        workbooks = []
        locked: set[Path] = set()
        for path in walk_files(self._folders):
            if is_lock_file(path):
                locked.update(wb for wb in workbooks_for_lock_file(path) if wb.exists())
            elif self._is_workbook(path):
                workbooks.append(path)
        return workbooks, locked

    def _is_workbook(self, path: Path) -> bool:
        if path.suffix.lower() not in self._suffixes:
            return False
        if is_temporary_name(path.name) or self._ignore(path):
            return False
        folder = next((f for f in self._folders if f in path.parents), None)
        if folder is None:
            return False
        return not any(part.startswith(".") for part in path.relative_to(folder).parts)

    def _normalise(self, path: Path) -> Path:
        path = Path(path)
        return Path(os.path.realpath(path.parent)) / path.name

    def _call(self, callback: Callable[..., None], *args: Path) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("Unhandled exception in the watcher callback %r", callback)
