"""Run-time fault injection, the request log and the optional per-user throttle.

Fault rules match a method and a path pattern (a regular expression searched in the
path without its service prefix). Each rule fires either a fixed number of times
(`count`) or with a probability (`rate`), and does one thing: answer with an HTTP
status (5xx, 429, ...), sleep before answering normally, reset the connection, or make
the async job started by the matching request fail. Rules are checked in the order
they were added and the first one that fires wins.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_KINDS = ("status", "delay", "reset", "job_fail")

DEFAULT_REASONS = {
    429: "Requests are too frequent. Allowed 600 requests every 60 seconds.",
    500: "Injected server error.",
    502: "Injected bad gateway.",
    503: "Service unavailable. Please try again later.",
    504: "Injected gateway timeout.",
}


@dataclass
class FaultRule:
    """One fault: what it matches, how often it fires and what it does."""

    path: str
    kind: str = "status"
    method: str | None = None
    status: int = 503
    reason: str = ""
    count: int | None = None
    rate: float | None = None
    delay_seconds: float = 0.0
    fired: int = 0
    id: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request (ignoring count and rate)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self._pattern is None:
            self._pattern = re.compile(self.path)
        return self._pattern.search(path) is not None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description of the rule."""
        described = asdict(self)
        described.pop("_pattern")
        return described


class Faults:
    """The fault rules of a running sandbox; safe to change from any thread."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._next_id = 1

    def add(
        self,
        path: str,
        kind: str = "status",
        *,
        method: str | None = None,
        status: int = 503,
        reason: str | None = None,
        count: int | None = None,
        rate: float | None = None,
        delay_seconds: float = 0.0,
    ) -> FaultRule:
        """Add a rule; with neither `count` nor `rate` it fires on every match.

        Raises:
            ValueError: an unknown kind, or a rate outside 0..1.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; use one of {FAULT_KINDS}.")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError(f"A fault rate must be between 0 and 1, not {rate}.")
        text = reason if reason is not None else DEFAULT_REASONS.get(status, "")
        re.compile(path)
        with self._lock:
            rule = FaultRule(
                path,
                kind,
                method,
                status,
                text or "Injected fault.",
                count,
                rate,
                delay_seconds,
                id=self._next_id,
            )
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def add_from_dict(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule described by a JSON object (the admin HTTP path uses this)."""
        known = {"path", "kind", "method", "status", "reason", "count", "rate"}
        known.add("delay_seconds")
        unknown = set(spec) - known
        if unknown or "path" not in spec:
            raise ValueError(
                f"A fault needs 'path' and may have {sorted(known)};"
                f" got {sorted(spec)}."
            )
        return self.add(**spec)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """A copy of the current rules."""
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (and count it)."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.rate is not None and self._random.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
            return None


@dataclass(frozen=True)
class LoggedRequest:
    """One answered request: status 0 means the connection was reset."""

    method: str
    path: str
    status: int
    bytes: int
    user_id: int | None
    body: Any = None


class RequestLog:
    """Every request the sandbox answered, oldest first (bounded)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.capture_bodies = False

    def add(
        self,
        method: str,
        path: str,
        status: int,
        size: int,
        user_id: int | None,
        body: Any,
    ) -> None:
        """Record one answer; JSON bodies are kept only when `capture_bodies` is on."""
        kept = body if self.capture_bodies else None
        with self._lock:
            self._entries.append(
                LoggedRequest(method, path, status, size, user_id, kept)
            )

    def entries(self) -> list[LoggedRequest]:
        """A copy of the log."""
        with self._lock:
            return list(self._entries)

    def count(
        self, method: str | None = None, path: str = "", status: int | None = None
    ) -> int:
        """How many logged requests match a method, a path pattern and a status."""
        pattern = re.compile(path)
        return sum(
            1
            for entry in self.entries()
            if (method is None or entry.method == method)
            and pattern.search(entry.path)
            and (status is None or entry.status == status)
        )

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class Throttle:
    """Synapse's per-user limits: concurrent connections and requests per minute.

    Off by default; `enabled = True` switches it on.
    """

    def __init__(self, max_concurrent: int = 3, max_per_minute: int = 600) -> None:
        self.enabled = False
        self.max_concurrent = max_concurrent
        self.max_per_minute = max_per_minute
        self._active: dict[int, int] = {}
        self._recent: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def enter(self, user_id: int | None) -> str | None:
        """Admit a request, or return the 429 reason Synapse would give."""
        if not self.enabled or user_id is None:
            return None
        with self._lock:
            moment = time.monotonic()
            recent = self._recent.setdefault(user_id, deque())
            while recent and moment - recent[0] > 60.0:
                recent.popleft()
            if len(recent) >= self.max_per_minute:
                return (
                    f"Requests are too frequent. Allowed {self.max_per_minute}"
                    " requests every 60 seconds."
                )
            if self._active.get(user_id, 0) >= self.max_concurrent:
                return (
                    f"Too many concurrent requests. Allowed {self.max_concurrent}"
                    " concurrent connections at any time."
                )
            recent.append(moment)
            self._active[user_id] = self._active.get(user_id, 0) + 1
            return None

    def leave(self, user_id: int | None) -> None:
        """Release a request admitted by `enter`."""
        if not self.enabled or user_id is None:
            return
        with self._lock:
            if self._active.get(user_id, 0) > 0:
                self._active[user_id] -= 1
