"""The systemd integration: readiness, stopping and watchdog notices, and journald.

This is the one module with Linux-only calls, and each one is a no-op when the daemon
does not run under systemd (no `NOTIFY_SOCKET`), so the daemon runs unchanged on macOS
and Windows. The notify protocol is a datagram on a Unix socket; writing it here keeps
the dependency list free of a systemd binding.
"""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger(__name__)


def is_under_journald() -> bool:
    """True when stderr goes to the journal, which stamps each line itself."""
    return bool(os.environ.get("JOURNAL_STREAM"))


def notify(message: str) -> bool:
    """Send one sd_notify message (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, ...).

    Returns whether a notify socket was there to send to; a failed send is logged at
    DEBUG and otherwise ignored, because a lost notice must not stop the daemon.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not hasattr(socket, "AF_UNIX"):
        return False

    # A leading "@" names a socket in the abstract namespace.
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.sendall(message.encode("utf-8"))
    except OSError as error:
        logger.debug("Could not notify systemd (%s): %s", message, error)
        return False
    return True


def watchdog_interval_seconds() -> float | None:
    """Half the watchdog period systemd asked for, or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
