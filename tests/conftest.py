"""Shared fixtures: a running sandbox and real synapseclient clients pointed at it.

`sandbox` starts a fresh `Sandbox` with the demo scenario on a free port in tmp_path.
`synapse_client` is a real `synapseclient.Synapse`, logged in as the demo user, that
talks HTTP to it and to nothing else. `make_client(token)` builds more clients, for
other users or bad tokens. Retries are bounded so that a sandbox fault makes a test
fail in seconds, not the client's default twenty minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tqdm

# tqdm otherwise starts a monitor thread with the first (even disabled) bar.
tqdm.tqdm.monitor_interval = 0

from synapseclient import Synapse  # noqa: E402 - after the tqdm setting
from synapseclient import client as synapse_client_module  # noqa: E402

from curation_sync.sandbox import Sandbox, write_synapse_config  # noqa: E402

ClientFactory = Callable[..., Synapse]
ConnectFactory = Callable[..., Synapse]

RETRY_WAIT_SECONDS = 15


def _wait_for_threads(
    before: set[threading.Thread], deadline_seconds: float
) -> list[str]:
    deadline = time.monotonic() + deadline_seconds
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            return [t.name for t in extra]
        time.sleep(0.02)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A started sandbox with the demo scenario; fails the test if it leaks threads."""
    before = set(threading.enumerate())
    instance = Sandbox(tmp_path / "sandbox-data", scenario="demo")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
    leaked = [
        name
        for name in _wait_for_threads(before, 5.0)
        if "sandbox" in name or "process_request" in name
    ]
    assert not leaked, f"the sandbox left threads running: {leaked}"


@pytest.fixture
def bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the client give up on a failing server within seconds."""
    monkeypatch.setitem(
        synapse_client_module.STANDARD_RETRY_ASYNC_PARAMS,
        "retry_max_wait_before_failure",
        RETRY_WAIT_SECONDS,
    )
    monkeypatch.setitem(synapse_client_module.STANDARD_RETRY_PARAMS, "retries", 3)


def close_client(client: Synapse) -> None:
    """Close the client's pooled connections (login, downloads, part uploads)."""
    client._requests_session.close()
    client._requests_session_storage.close()


@pytest.fixture
def connect(tmp_path: Path, bounded_retries: None) -> Iterator[ConnectFactory]:
    """A factory: `connect(sandbox, token, login=True)` gives a client for any sandbox.

    Each client has its own synapseConfig (all four endpoints and the token) and its
    own cache directory under tmp_path; all are closed at teardown.
    """
    clients: list[Synapse] = []

    def factory(instance: Sandbox, token: str, *, login: bool = True) -> Synapse:
        folder = tmp_path / f"client-{len(clients) + 1}"
        folder.mkdir()
        endpoint = instance.endpoint
        config = write_synapse_config(folder / "synapseConfig", endpoint, token)
        client = Synapse(
            repoEndpoint=endpoint,
            authEndpoint=endpoint,
            fileHandleEndpoint=endpoint,
            portalEndpoint=endpoint + "/",
            skip_checks=True,
            configPath=str(config),
            cache_root_dir=str(folder / "cache"),
            silent=True,
        )
        clients.append(client)
        if login:
            client.login(authToken=token)
        return client

    yield factory
    for client in clients:
        close_client(client)


@pytest.fixture
def make_client(sandbox: Sandbox, connect: ConnectFactory) -> ClientFactory:
    """A factory: `make_client(token, login=True)` gives a client of `sandbox`."""

    def factory(token: str, *, login: bool = True) -> Synapse:
        return connect(sandbox, token, login=login)

    return factory


@pytest.fixture
def synapse_client(sandbox: Sandbox, make_client: ClientFactory) -> Synapse:
    """A real client logged in as the demo scenario's demo user."""
    return make_client(sandbox.token("demo"))
