from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from curation_sync import service

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")


def test_notify_sends_the_message_to_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(address)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", address)

        sent = service.notify("READY=1")

        assert sent
        assert receiver.recv(100) == b"READY=1"


def test_notify_without_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    assert not service.notify("READY=1")


def test_the_watchdog_is_pinged_at_half_its_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    assert service.watchdog_interval_seconds() == 30.0


def test_a_watchdog_meant_for_another_process_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")

    assert service.watchdog_interval_seconds() is None
