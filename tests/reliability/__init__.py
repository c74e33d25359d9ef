"""Reliability suites: faults, crashes, bad input, throttle, concurrency, security."""
