"""`curation-sync doctor`: checks of the set-up, each with how to fix it."""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from curation_sync.config import Config
from curation_sync.lock import FolderLock
from curation_sync.state import STATE_DIR

INOTIFY_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


@dataclass(frozen=True)
class Check:
    """The outcome of one check: what was looked at, whether it passed, the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(
    config: Config, *, login: Callable[[], str] | None = None
) -> list[Check]:
    """Every check, in the order a person would fix them.

    `login` signs in and returns the user name; it is passed in so that this module
    stays free of the Synapse adapter.
    """
    checks = [check_token(config)]
    checks.extend(check_endpoint(url) for url in sorted(set(config.endpoints.values())))
    if login is not None and config.token is not None:
        checks.append(check_login(login))
    checks.extend(check_folder(folder.path) for folder in config.folders)
    checks.extend(check_lock(folder.path) for folder in config.folders)
    checks.append(check_inotify(sum(count_dirs(f.path) for f in config.folders)))
    return checks


def check_token(config: Config) -> Check:
    if config.token is None:
        return Check(
            "token",
            False,
            "no Synapse token was found",
            "set SYNAPSE_AUTH_TOKEN, or synapse.token_file in the config",
        )
    return Check("token", True, "a token was found (not shown)")


def check_endpoint(url: str, timeout_seconds: float = 5.0) -> Check:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            pass
    except OSError as error:
        return Check(
            f"endpoint {url}",
            False,
            f"cannot connect to {host}:{port} ({error})",
            "check the network, or synapse.endpoint in the config",
        )
    return Check(f"endpoint {url}", True, f"{host}:{port} accepts connections")


def check_login(login: Callable[[], str]) -> Check:
    try:
        user = login()
    except Exception as error:  # noqa: BLE001 - the check reports any failure
        return Check(
            "login",
            False,
            f"Synapse refused the token ({error})",
            "create a new personal access token with view, download and modify "
            "scopes at synapse.org (Account Settings > Personal Access Tokens)",
        )
    return Check("login", True, f"signed in as {user}")


def check_folder(path: Path) -> Check:
    if not path.is_dir():
        return Check(
            f"folder {path}",
            False,
            "does not exist",
            f"create it (mkdir -p {path}) or fix folder.path",
        )
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return Check(
            f"folder {path}",
            False,
            "is not readable and writable by this user",
            f"fix its permissions (chmod u+rwx {path})",
        )
    return Check(f"folder {path}", True, "readable and writable")


def check_lock(path: Path) -> Check:
    """Who holds the folder's lock: nobody, a live daemon, or a stale one."""
    lock = FolderLock(path / STATE_DIR)
    owner = lock.owner()
    if owner is None:
        return Check(f"lock {path}", True, "no daemon holds the folder")
    if lock.is_stale(owner):
        return Check(
            f"lock {path}",
            True,
            f"a stale lock from {owner.describe()}; the next daemon takes it over",
        )
    return Check(
        f"lock {path}",
        True,
        f"held by {owner.describe()}; a second daemon on this folder will not start",
    )


def count_dirs(path: Path) -> int:
    """How many directories an inotify observer would watch under `path`."""
    if not path.is_dir():
        return 0
    return 1 + sum(len(dirs) for _, dirs, _ in os.walk(path))


def check_inotify(needed: int) -> Check:
    if not sys.platform.startswith("linux") or not INOTIFY_WATCHES.exists():
        return Check("inotify", True, "not used on this platform")
    limit = int(INOTIFY_WATCHES.read_text().strip())
    if needed > limit:
        return Check(
            "inotify",
            False,
            f"{needed} folders to watch but max_user_watches is {limit}",
            f"sudo sysctl fs.inotify.max_user_watches={needed * 2}, or set "
            "folder.observer = 'polling'",
        )
    return Check("inotify", True, f"{needed} of {limit} watches needed")
