"""Which watchdog observer watches each folder, and starting it.

inotify (the native observer on Linux) sees only changes made by this machine,
so a folder on a network share (NFS, SMB/CIFS, SSHFS, 9p and similar) is polled
instead. inotify also needs one watch per folder: when the per-user limit is
reached, watchdog fails on the top folder but skips sub-folders silently, so
the number of watches is counted after start and a shortfall means polling.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
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


def inotify_watch_shortfall(folders: Sequence[Path]) -> int:
    """How many folders lack an inotify watch (watchdog skips sub-folders it
    cannot watch silently); 0 when unknown or off Linux."""
    if not sys.platform.startswith("linux"):
        return 0

    wanted = 0
    for folder in folders:
        for _ in os.walk(folder):
            wanted += 1

    watches = 0
    fd_dir = Path("/proc/self/fd")
    try:
        for entry in fd_dir.iterdir():
            try:
                if os.readlink(entry) != "anon_inode:inotify":
                    continue
                info = (Path("/proc/self/fdinfo") / entry.name).read_text()
            except OSError:
                continue
            watches += sum(
                1 for line in info.splitlines() if line.startswith("inotify wd:")
            )
    except OSError:
        return 0
    return max(0, wanted - watches)


def start_observers(
    folders: Sequence[Path],
    handler: FileSystemEventHandler,
    *,
    choice: ObserverChoice,
    polling_interval_seconds: float,
) -> tuple[list[BaseObserver], dict[Path, str]]:
    """Start recursive observers; returns them and "native"/"polling" per folder."""
    native: list[Path] = []
    polling: list[Path] = []
    for folder in folders:
        fstype = network_filesystem(folder) if choice == "auto" else None
        if choice == "polling" or fstype is not None:
            polling.append(folder)
        else:
            native.append(folder)
        if fstype is not None:
            logger.info(
                "Watching %s by polling every %s s: it is on a %s share, and "
                "native events miss changes made by other machines",
                folder,
                polling_interval_seconds,
                fstype,
            )

    observers: list[BaseObserver] = []
    if native:
        observer = _start_native(native, handler, polling_interval_seconds)
        if observer is None:
            polling.extend(native)
            native = []
        else:
            observers.append(observer)
    if polling:
        observer = PollingObserver(timeout=polling_interval_seconds)
        _schedule_and_start(observer, polling, handler)
        observers.append(observer)

    kinds = dict.fromkeys(native, "native") | dict.fromkeys(polling, "polling")
    return observers, kinds


def _start_native(
    folders: list[Path], handler: FileSystemEventHandler, polling_seconds: float
) -> BaseObserver | None:
    # The instance limit strikes when the observer is made, the watch limit
    # when the top folder is watched.
    observer: BaseObserver | None = None
    try:
        observer = Observer()
        _schedule_and_start(observer, folders, handler)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EMFILE):
            raise
        if observer is not None:
            observer.unschedule_all()
        _warn_inotify_limit(folders, str(error), polling_seconds)
        return None

    short = inotify_watch_shortfall(folders)
    if short:
        observer.stop()
        observer.join()
        detail = f"{short} of its sub-folders could not be watched"
        _warn_inotify_limit(folders, detail, polling_seconds)
        return None
    return observer


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


def _schedule_and_start(
    observer: BaseObserver, folders: list[Path], handler: FileSystemEventHandler
) -> None:
    for folder in folders:
        observer.schedule(handler, str(folder), recursive=True)
    observer.start()
