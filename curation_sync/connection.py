"""How the Synapse adapter connects: endpoints, retry limits, the client's logs.

Kept apart from `synapse.py` (the one module importing synapseclient) because none
of it needs the client: the endpoints and limits are plain settings, and the log
bridge is a `logging.Filter` put on the client's loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

client_logger = logging.getLogger("curation_sync.synapse.client")

CLIENT_LOGGER_NAMES = (
    "synapseclient_default",
    "synapseclient_debug",
    "synapseclient_silent",
)
# Client messages that are noise for a daemon: dropped to DEBUG.
_NOISE = ("ifcollision", "Downloaded to", "completed successfully", "Uploading")


@dataclass(frozen=True)
class Endpoints:
    """The four Synapse base URLs, without trailing slashes."""

    repo: str
    file: str
    auth: str
    portal: str

    @classmethod
    def from_base(cls, base: str) -> Endpoints:
        """Endpoints of a server that serves every service under one base URL."""
        root = base.rstrip("/")
        return cls(f"{root}/repo/v1", f"{root}/file/v1", f"{root}/auth/v1", f"{root}/")

    @classmethod
    def from_mapping(cls, given: Mapping[str, str]) -> Endpoints:
        """Endpoints from synapseclient's keys (`repoEndpoint`, `authEndpoint`, ...)."""
        return cls(
            repo=given["repoEndpoint"].rstrip("/"),
            file=given["fileHandleEndpoint"].rstrip("/"),
            auth=given["authEndpoint"].rstrip("/"),
            portal=given["portalEndpoint"],
        )

    @classmethod
    def of(cls, given: Endpoints | Mapping[str, str] | str) -> Endpoints:
        """Endpoints from any of the accepted forms."""
        if isinstance(given, Endpoints):
            return given
        if isinstance(given, str):
            return cls.from_base(given)
        return cls.from_mapping(given)


@dataclass(frozen=True)
class RetryLimits:
    """How long synapseclient may retry one call before the adapter gives up."""

    max_wait_seconds: float = 10.0
    retries: int = 3
    http_timeout_seconds: int = 30
    job_timeout_seconds: int = 120


class _Forward(logging.Filter):
    """Sends the client's log records to our logger instead of its handlers.

    Used as a filter on the client's loggers: it re-emits each record through
    `client_logger` (INFO and the known noise become DEBUG) and returns False, so
    the client's own handlers, and the tqdm handler it attaches during jobs, never
    print anything.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        level = record.levelno
        text = record.getMessage()
        if level <= logging.INFO or any(noise in text for noise in _NOISE):
            level = logging.DEBUG
        if client_logger.isEnabledFor(level):
            client_logger.log(level, "synapseclient: %s", text)
        return False


_FORWARD = _Forward()


def route_client_logging(client_log: logging.Logger) -> None:
    """Send the client's loggers (its named ones and `client_log`) to ours only."""
    for name in CLIENT_LOGGER_NAMES:
        named = logging.getLogger(name)
        if _FORWARD not in named.filters:
            named.addFilter(_FORWARD)
        named.propagate = False
    if _FORWARD not in client_log.filters:
        client_log.addFilter(_FORWARD)
