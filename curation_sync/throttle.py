"""The process-wide request limiter every Synapse adapter call goes through.

Synapse throttles each user to 3 concurrent connections and 600 requests a minute,
answering 429 beyond that (SEMANTICS.md §6). The daemon stays under both limits on
its own instead of relying on the client's retries: at most `max_concurrent` adapter
calls run at once, and each call first takes as many tokens from a sliding one-minute
window as the HTTP requests it is expected to make.

Limitations: synapseclient does not report how many requests a call really made, so
the per-minute count uses each call's expected request count (`cost`), and a call
that downloads while it checks a file handle may hold two connections at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEFAULT_MAX_CONCURRENT = 3
DEFAULT_MAX_PER_MINUTE = 600
WINDOW_SECONDS = 60.0


class RequestLimiter:
    """At most `max_concurrent` calls at once and `max_per_minute` requests a minute."""

    def __init__(
        self,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        max_per_minute: int = DEFAULT_MAX_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.max_per_minute = max_per_minute
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._active = 0
        self.peak_active = 0

    def __repr__(self) -> str:
        return (
            f"RequestLimiter(max_concurrent={self.max_concurrent}, "
            f"max_per_minute={self.max_per_minute})"
        )

    @contextmanager
    def slot(self, cost: int = 1) -> Iterator[None]:
        """Hold a concurrent slot and `cost` requests of the minute's budget."""
        with self._slots:
            self._take(min(max(cost, 1), self.max_per_minute))
            with self._lock:
                self._active += 1
                self.peak_active = max(self.peak_active, self._active)
            try:
                yield
            finally:
                with self._lock:
                    self._active -= 1

    def requests_in_window(self) -> int:
        """How many requests the last minute's calls were charged."""
        with self._lock:
            self._expire(self._clock())
            return len(self._sent)

    def _take(self, cost: int) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                if len(self._sent) + cost <= self.max_per_minute:
                    self._sent.extend([now] * cost)
                    return
                oldest_needed = self._sent[
                    len(self._sent) + cost - self.max_per_minute - 1
                ]
                wait = oldest_needed + WINDOW_SECONDS - now
            self._sleep(max(wait, 0.01))

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - WINDOW_SECONDS:
            self._sent.popleft()


# Costs are estimates, so the daemon's own budget stays a tenth under Synapse's:
# at the full 600, 200 workbooks pushed at once drew a 429 in 13 minutes.
BUDGET_PER_MINUTE = DEFAULT_MAX_PER_MINUTE * 9 // 10

LIMITER = RequestLimiter(max_per_minute=BUDGET_PER_MINUTE)
"""The one limiter of this process, shared by every adapter."""
