"""Which watchdog observer watches each folder, and starting and stopping them.

inotify (the native observer on Linux) sees only changes made by this machine,
so a folder on a network share (NFS, SMB/CIFS, SSHFS, 9p and similar) is polled
instead. inotify also needs one watch per folder: at the per-user limit watchdog
fails on a top folder but skips sub-folders silently, so after start, and after
a folder is created, the folders are compared with the inodes the kernel lists
as watched (/proc/self/fdinfo), and a folder with unwatched sub-folders moves
to polling.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

logger = logging.getLogger(__name__)

ObserverChoice = Literal["auto", "native", "polling"]

# File systems whose changes made on other machines never reach inotify.
# fmt: off
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "9p", "afs",
    "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "davfs",
    "fuse.davfs2", "fuse.rclone", "fuse.s3fs", "vboxsf", "fuse.vmhgfs-fuse",
    "virtiofs", "webdav", "ncpfs", "coda",
})
# fmt: on


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, file-system type) pairs from `/proc/mounts`-style text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            # /proc/mounts escapes spaces and other characters as octal.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1])
            mounts.append((point, fields[2]))
    return mounts


def parse_mount_command(text: str) -> list[tuple[str, str]]:
    """(mount point, file-system type) pairs from BSD/macOS `mount` output."""
    pattern = re.compile(r"^.+? on (?P<point>.+) \((?P<fstype>[^,)]+)")
    return [
        (match["point"], match["fstype"])
        for line in text.splitlines()
        if (match := pattern.match(line))
    ]


def filesystem_type(path: Path, mounts: Sequence[tuple[str, str]]) -> str | None:
    """The type of the file system holding `path`: its longest matching mount."""
    resolved = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for point, fstype in mounts:
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > best[0]):
            best = (len(point), fstype)
    return best[1] if best else None


def network_filesystem(path: Path) -> str | None:
    """The network file system `path` is on (e.g. "cifs"), or None if local."""
    if sys.platform == "win32":
        return _windows_network_drive(path)

    mounts = _read_mounts()
    fstype = filesystem_type(path, mounts)
    return fstype if fstype in NETWORK_FILESYSTEMS else None


def _read_mounts() -> list[tuple[str, str]]:
    if sys.platform.startswith("linux"):
        try:
            return parse_mounts(Path("/proc/mounts").read_text())
        except OSError:
            return []

    import subprocess

    try:
        result = subprocess.run(
            ["mount"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_mount_command(result.stdout)


def _windows_network_drive(path: Path) -> str | None:
    resolved = os.path.abspath(path)
    if resolved.startswith("\\\\"):
        return "smb"
    if sys.platform == "win32":
        import ctypes

        drive_remote = 4
        root = os.path.splitdrive(resolved)[0] + "\\"
        if ctypes.windll.kernel32.GetDriveTypeW(root) == drive_remote:
            return "smb"
    return None


def inotify_watched_inodes() -> set[int] | None:
    """Inodes of the folders this process watches with inotify; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None

    inodes: set[int] = set()
    try:
        entries = list(Path("/proc/self/fd").iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            if os.readlink(entry) != "anon_inode:inotify":
                continue
            info = (Path("/proc/self/fdinfo") / entry.name).read_text()
        except OSError:
            continue
        inodes.update(
            int(match[1], 16)
            for match in re.finditer(r"^inotify wd:\S+ ino:(\w+)", info, re.M)
        )
    return inodes


def count_unwatched_folders(folder: Path, watched: set[int]) -> int:
    """How many readable folders at or below `folder` have no inotify watch."""
    missing = 0
    # os.walk passes over folders it may not read, as watchdog does.
    for root, _, _ in os.walk(folder):
        try:
            if os.stat(root).st_ino not in watched:
                missing += 1
        except OSError:
            continue
    return missing


class EventForwarder(FileSystemEventHandler):
    """Hands every watchdog event to one callable; logs what it raises."""

    def __init__(self, forward: Callable[[FileSystemEvent], None]) -> None:
        self._forward = forward

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._forward(event)
        except Exception:
            logger.exception("Unhandled exception while handling %r", event)


class Observers:
    """The observers watching the folders: native where possible, else polling.

    Limitations:
        Moving a folder to polling at run time leaves a gap of up to one poll
        during which changes are only found by the watcher's rescan.
    """

    def __init__(
        self,
        folders: Sequence[Path],
        on_event: Callable[[FileSystemEvent], None],
        *,
        choice: ObserverChoice,
        polling_interval_seconds: float,
    ) -> None:
        self._folders = list(folders)
        self._handler = EventForwarder(on_event)
        self._choice = choice
        self._polling_seconds = polling_interval_seconds
        self._native: BaseObserver | None = None
        self._native_watches: dict[Path, ObservedWatch] = {}
        self._polling: BaseObserver | None = None
        self._lock = threading.Lock()
        self.kinds: dict[Path, str] = {}

    def start(self) -> None:
        """Start recursive observers; `kinds` says "native"/"polling" per folder."""
        native: list[Path] = []
        polling: list[Path] = []
        for folder in self._folders:
            fstype = network_filesystem(folder) if self._choice == "auto" else None
            if self._choice == "polling" or fstype is not None:
                polling.append(folder)
            else:
                native.append(folder)
            if fstype is not None:
                logger.info(
                    "Watching %s by polling every %s s: it is on a %s share, and "
                    "native events miss changes made by other machines",
                    folder,
                    self._polling_seconds,
                    fstype,
                )

        if native and not self._start_native(native):
            polling.extend(native)
        for folder in polling:
            self._poll(folder)

    def stop(self) -> None:
        """Stop every observer and join its threads."""
        observers = [o for o in (self._native, self._polling) if o is not None]
        for observer in observers:
            observer.stop()
        for observer in observers:
            if observer.is_alive():
                observer.join()

    def recheck_inotify_watches(self) -> list[Path]:
        """Move folders with unwatched sub-folders to polling; returns them."""
        watched = inotify_watched_inodes()
        if watched is None:
            return []

        moved = []
        with self._lock:
            for folder, watch in list(self._native_watches.items()):
                missing = count_unwatched_folders(folder, watched)
                if not missing:
                    continue
                detail = f"{missing} of its sub-folders could not be watched"
                _warn_inotify_limit([folder], detail, self._polling_seconds)
                assert self._native is not None
                self._native.unschedule(watch)
                del self._native_watches[folder]
                self._poll(folder)
                moved.append(folder)
        return moved

    def _start_native(self, folders: list[Path]) -> bool:
        # The instance limit strikes when the observer is made, the watch limit
        # when a top folder is watched.
        observer: BaseObserver | None = None
        try:
            observer = Observer()
            watches = {
                folder: observer.schedule(self._handler, str(folder), recursive=True)
                for folder in folders
            }
            observer.start()
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            if observer is not None:
                observer.unschedule_all()
            _warn_inotify_limit(folders, str(error), self._polling_seconds)
            return False

        self._native = observer
        self._native_watches = watches
        self.kinds.update(dict.fromkeys(folders, "native"))
        self.recheck_inotify_watches()
        return True

    def _poll(self, folder: Path) -> None:
        if self._polling is None:
            self._polling = PollingObserver(timeout=self._polling_seconds)
            self._polling.start()
        self._polling.schedule(self._handler, str(folder), recursive=True)
        self.kinds[folder] = "polling"


def _warn_inotify_limit(
    folders: list[Path], detail: str, polling_seconds: float
) -> None:
    logger.warning(
        "Could not watch %s with inotify (%s); polling every %s s instead. To use "
        "native events, raise the limit, e.g. `sudo sysctl "
        "fs.inotify.max_user_watches=524288` (and fs.inotify.max_user_instances), "
        "then restart",
        ", ".join(map(str, folders)),
        detail,
        polling_seconds,
    )
