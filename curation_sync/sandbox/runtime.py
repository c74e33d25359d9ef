"""The `Sandbox` object: a store, an HTTP server thread and the scenario's ids.

A sandbox seeds its scenario only into an empty data directory. Started again on the
same directory it keeps everything (tasks, grids, versions, files) and reports the
same ids from `info()`; only the port may change.
"""

from __future__ import annotations

import configparser
import logging
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from curation_sync.sandbox import (  # noqa: F401 - register job types
    access,
    admin,
    entities,
    entity_writes,
    files,
    grid_jobs,
    grids,
    jobs,
    schemas,
    sync_jobs,
    tasks,
)
from curation_sync.sandbox.faults import Faults, RequestLog, Throttle
from curation_sync.sandbox.scenario import load_scenario, seed
from curation_sync.sandbox.server import App, SandboxServer
from curation_sync.sandbox.store import Store

logger = logging.getLogger(__name__)


class Sandbox:
    """A local stand-in for the Synapse REST API on one base URL.

    Args:
        data_dir: where the SQLite database and file bytes live (created if missing).
        host: the address to bind; loopback unless told otherwise.
        port: the port; 0 picks a free one.
        scenario: a bundled scenario name (`demo`), a .toml/.json path, or a dict;
            seeded only when the data directory is new.
        job_polls_before_done: how many 202 PROCESSING answers each async job gives
            before its result (0 keeps tests fast).
    """

    def __init__(
        self,
        data_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: str | Path | Mapping[str, Any] | None = None,
        *,
        job_polls_before_done: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.scenario = scenario
        self.faults = Faults()
        self.request_log = RequestLog()
        self.throttle = Throttle()
        self.job_polls_before_done = job_polls_before_done
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._app: App | None = None

    @property
    def app(self) -> App:
        """The running application state (store, settings, routes)."""
        if self._app is None:
            raise RuntimeError("The sandbox is not running; call start() first.")
        return self._app

    @property
    def endpoint(self) -> str:
        """The base URL of every service, without a trailing slash."""
        return self.app.base_url

    def start(self) -> Sandbox:
        """Open the store, seed a new data directory and start serving."""
        # The URL-signing secret is kept, so presigned URLs survive a restart.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(self.data_dir)
        secret = store.get_meta("secret")
        if secret is None:
            secret = secrets.token_hex(16)
            store.set_meta("secret", secret)
        app = App(
            store,
            self.faults,
            self.request_log,
            self.throttle,
            bytes.fromhex(secret),
            job_polls_before_done=self.job_polls_before_done,
        )

        # Routes, then the scenario (only into a new data directory).
        for module in (
            access,
            tasks,
            entities,
            entity_writes,
            schemas,
            files,
            grids,
            jobs,
            admin,
        ):
            module.register(app)
        if store.get_meta("ids") is None:
            ids = seed(app, load_scenario(self.scenario)) if self.scenario else {}
            store.set_meta("ids", ids)

        # Bind first: with port 0 the base URL is known only afterwards.
        self._server = SandboxServer((self.host, self.port), app)
        host, port = (str(part) for part in self._server.server_address[:2])
        shown = f"[{host}]" if ":" in str(host) else str(host)
        app.base_url = f"http://{shown}:{port}"
        self._app = app
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Started sandbox %s on %s", self.data_dir, app.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the store."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.app.store.close()
        logger.info("Stopped sandbox %s", self.data_dir)
        self._server = self._thread = self._app = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        """The endpoint, users with tokens and the scenario's ids, as plain JSON."""
        ids = dict(self.app.store.get_meta("ids") or {})
        return {"endpoint": self.endpoint, "data_dir": str(self.data_dir), **ids}

    def token(self, user_key: str) -> str:
        """The bearer token of a scenario user."""
        return str(self.info()["users"][user_key]["token"])

    def edit_grid(
        self,
        session_id: str | int,
        match: Mapping[str, Any],
        changes: Mapping[str, Any],
    ) -> int:
        """Edit grid cells as a person in the Grid web UI would (a test seam).

        Rows whose cells equal every value in `match` get `changes`; returns how many.
        """
        return grids.edit_rows(self.app, int(session_id), match, changes)

    def set_job_polls(self, polls: int) -> None:
        """Change how many PROCESSING answers each new async job gives."""
        self.job_polls_before_done = polls
        self.app.job_polls_before_done = polls


def write_synapse_config(path: Path | str, endpoint: str, token: str) -> Path:
    """Write a synapseConfig that points a plain `Synapse()` at `endpoint`.

    Sets all four endpoints and `[authentication] authtoken`, so
    `Synapse(skip_checks=True, configPath=path).login()` reaches the sandbox and
    nothing else. The file is readable only by its owner, as it holds a token.
    """
    config = configparser.ConfigParser()
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config["endpoints"] = {
        "repoEndpoint": endpoint,
        "authEndpoint": endpoint,
        "fileHandleEndpoint": endpoint,
        "portalEndpoint": endpoint + "/",
    }
    config["authentication"] = {"authtoken": token}
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(
        os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w"
    ) as out:
        config.write(out)
    os.replace(temporary, target)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
