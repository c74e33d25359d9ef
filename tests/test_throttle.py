from __future__ import annotations

import threading

from curation_sync.throttle import RequestLimiter


class FakeTime:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_no_more_than_the_allowed_calls_run_at_once() -> None:
    limiter = RequestLimiter(max_concurrent=3, max_per_minute=600)
    inside = threading.Barrier(3, timeout=10)
    release = threading.Event()
    waiting = []

    def call() -> None:
        with limiter.slot():
            try:
                inside.wait()
            except threading.BrokenBarrierError:
                waiting.append(1)
            release.wait(timeout=10)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(timeout=10)

    assert limiter.peak_active == 3
    assert not any(thread.is_alive() for thread in threads)


def test_the_minute_budget_makes_a_call_wait_until_old_requests_expire() -> None:
    fake = FakeTime()
    limiter = RequestLimiter(3, 10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):
        with limiter.slot(cost=2):
            fake.now += 1

    with limiter.slot(cost=4):
        pass

    assert fake.slept
    assert fake.now >= 1000.0 + 60
    assert limiter.requests_in_window() <= 10


def test_a_call_costing_more_than_the_budget_is_charged_the_whole_budget() -> None:
    fake = FakeTime()
    limiter = RequestLimiter(3, 5, clock=fake.clock, sleep=fake.sleep)

    with limiter.slot(cost=50):
        pass

    assert limiter.requests_in_window() == 5
