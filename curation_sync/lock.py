"""The folder lock: one daemon pushes from a watched folder at a time.

Two daemons on one shared folder (two machines mounting the same network drive, or
a second copy started by mistake) would both push every save. The lock is a small
JSON file in the folder's state directory naming the host, the process id and the
time it was last refreshed.

A lock is stale, and may be taken over, when its process is gone (same host), or
when it was not refreshed within `stale_after_seconds` (any host: a process on
another machine cannot be checked, so the holder refreshes the lock on every poll).
A takeover holds a second file, created with O_EXCL, while it checks the lock is
still stale, moves it aside and creates a new one with O_EXCL, so of two daemons
racing for a stale lock only one can win.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from curation_sync.errors import CurationSyncError

LOCK_FILE = "lock.json"
DEFAULT_STALE_AFTER_SECONDS = 600.0
TAKEOVER_SECONDS = 60.0


class FolderLockedError(CurationSyncError):
    """Another daemon holds the watched folder's lock."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a folder lock."""

    host: str
    pid: int
    refreshed_at: dt.datetime

    def describe(self) -> str:
        """`host pid 1234, refreshed 2026-12-03 13:05 UTC`."""
        moment = self.refreshed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.host} pid {self.pid}, refreshed {moment}"


class FolderLock:
    """The lock of one watched folder (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.path = state_dir / LOCK_FILE
        self.stale_after_seconds = stale_after_seconds
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self._held = False

    def __repr__(self) -> str:
        return f"FolderLock({str(self.path)!r}, held={self._held})"

    @property
    def is_held(self) -> bool:
        """Whether this object acquired the lock and has not released it."""
        return self._held

    def owner(self) -> LockOwner | None:
        """The current holder according to the lock file, or None when free."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return LockOwner(
                host=str(data["host"]),
                pid=int(data["pid"]),
                refreshed_at=dt.datetime.fromisoformat(data["refreshed_at"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A half-written or hand-edited file names nobody; treat it as stale.
            return LockOwner(
                "unknown", 0, dt.datetime.min.replace(tzinfo=dt.timezone.utc)
            )

    def is_stale(self, owner: LockOwner, *, now: dt.datetime | None = None) -> bool:
        """Whether a lock held by `owner` may be taken over."""
        moment = now or dt.datetime.now(dt.timezone.utc)
        age = (moment - owner.refreshed_at).total_seconds()
        if age > self.stale_after_seconds:
            return True
        return owner.host == self.host and not _process_alive(owner.pid)

    def acquire(self) -> None:
        """Take the lock, or take over a stale one.

        Raises:
            FolderLockedError: a live daemon holds it; the message names its host.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._create_exclusive():
            self._held = True
            return

        owner = self.owner()
        if owner is not None and self._is_mine(owner):
            self.refresh()
            return
        if owner is not None and not self.is_stale(owner):
            raise FolderLockedError(
                f"The watched folder {self.path.parent.parent} is in use by another "
                f"curation-sync daemon ({owner.describe()}); stop that daemon first, "
                f"or delete {self.path} if it is no longer running."
            )

        self._take_over()

    def _take_over(self) -> None:
        """Replace a stale lock, one daemon at a time (see the module docstring)."""
        guard = self.path.with_name(f"{LOCK_FILE}.takeover")
        try:
            fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            # A takeover that crashed half-way must not block the folder forever.
            if time.time() - guard.stat().st_mtime > TAKEOVER_SECONDS:
                guard.unlink(missing_ok=True)
            raise FolderLockedError(
                f"Another curation-sync daemon is taking over the stale lock "
                f"{self.path} right now; this one will not watch the folder."
            ) from None
        try:
            current = self.owner()
            if current is not None and not self.is_stale(current):
                raise FolderLockedError(
                    f"Another curation-sync daemon ({current.describe()}) took over "
                    f"the stale lock {self.path} first; this one will not watch the "
                    "folder."
                )
            aside = self.path.with_name(f".{LOCK_FILE}.stale.{self.host}.{self.pid}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path, aside)
                aside.unlink()
            if not self._create_exclusive():
                raise FolderLockedError(
                    f"Another curation-sync daemon created {self.path} at the same "
                    "moment; this one will not watch the folder."
                )
            self._held = True
        finally:
            os.close(fd)
            guard.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Renew the timestamp, so other hosts keep seeing the lock as live.

        Raises:
            FolderLockedError: another daemon has taken the lock over meanwhile.
        """
        owner = self.owner()
        if owner is not None and not self._is_mine(owner):
            self._held = False
            raise FolderLockedError(
                f"The lock {self.path} now belongs to {owner.describe()}; this daemon "
                "stops pushing from the folder."
            )
        self._write()
        self._held = True

    def release(self) -> None:
        """Give the lock up if this object holds it."""
        owner = self.owner()
        if self._held and owner is not None and self._is_mine(owner):
            self.path.unlink(missing_ok=True)
        self._held = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _is_mine(self, owner: LockOwner) -> bool:
        return owner.host == self.host and owner.pid == self.pid

    def _payload(self) -> str:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return json.dumps({"host": self.host, "pid": self.pid, "refreshed_at": now})

    def _create_exclusive(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self._payload())
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _write(self) -> None:
        temporary = self.path.with_name(f".{LOCK_FILE}.{self.host}.{self.pid}.tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(self._payload())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
