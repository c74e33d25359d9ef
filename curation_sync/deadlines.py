"""Keyed deadlines on one thread: the watcher's per-path debounce timers.

One thread with a heap was chosen over a `threading.Timer` per event: a burst of
events for 1,000 workbooks stays one thread, and a re-armed key costs a heap
push, not a thread start.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

Key = tuple[str, Path]


class Deadlines:
    """One thread that calls `fire(key)` when a key's deadline passes.

    Re-arming a key replaces its deadline, which is what a debounce needs: one
    entry per path however many events arrive. `fire` runs on this thread, so it
    must only hand work on.
    """

    def __init__(self, fire: Callable[[Key], None]) -> None:
        self._fire = fire
        self._deadlines: dict[Key, float] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name="curation-sync-watcher-timers", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def arm(self, key: Key, delay: float, *, extend_only: bool = False) -> None:
        """Fire `key` after `delay`; with `extend_only`, never earlier than now."""
        with self._wake:
            if self._stopped:
                return
            deadline = time.monotonic() + delay
            current = self._deadlines.get(key)
            if extend_only and current is not None and current >= deadline:
                return
            self._deadlines[key] = deadline
            heapq.heappush(self._heap, (deadline, next(self._order), key))
            self._wake.notify()

    def cancel(self, key: Key) -> None:
        with self._wake:
            self._deadlines.pop(key, None)

    def pending(self, *, exclude: str = "") -> int:
        """How many keys are armed, not counting those of kind `exclude`."""
        with self._wake:
            return sum(1 for kind, _ in self._deadlines if kind != exclude)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
                if due is None:
                    return

            try:
                self._fire(due)
            except Exception:
                logger.exception("Unhandled exception in the deadline thread")

    def _next_due(self) -> Key | None:
        # Stale heap entries (re-armed or cancelled keys) are dropped here.
        while not self._stopped:
            if not self._heap:
                self._wake.wait()
                continue
            deadline, _, key = self._heap[0]
            if self._deadlines.get(key) != deadline:
                heapq.heappop(self._heap)
                continue
            wait = deadline - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)
                continue
            heapq.heappop(self._heap)
            del self._deadlines[key]
            return key
        return None
