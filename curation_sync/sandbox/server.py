"""The HTTP side of the sandbox: routing, authentication, JSON answers, fault hooks.

Design: the stdlib `ThreadingHTTPServer` with HTTP/1.1 keep-alive, because httpx
pools connections and the client's retry logic must see real sockets (resets,
delays). Routes are regular expressions over the path with the service prefixes
(`/repo/v1`, `/file/v1`, `/auth/v1`) stripped, so one base URL serves all services
and prefixed bases work too. Every answer goes through `_send`, which is where the
request log is written; every error is JSON with a `reason`, as the client needs.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from curation_sync.sandbox.apierror import ApiError
from curation_sync.sandbox.faults import Faults, RequestLog, Throttle
from curation_sync.sandbox.store import Store

logger = logging.getLogger(__name__)

SERVICE_PREFIXES = ("/repo/v1", "/file/v1", "/auth/v1")


@dataclass(frozen=True)
class User:
    """A sandbox user, as resolved from a bearer token."""

    id: int
    user_name: str
    display_name: str
    email: str
    is_admin: bool


@dataclass
class Request:
    """One parsed HTTP request handed to a route handler."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    user: User | None
    params: dict[str, str] = field(default_factory=dict)
    job_fault: bool = False
    delay_seconds: float = 0.0

    def json(self) -> Any:
        """The body parsed as JSON; a 400 answer when it is not JSON."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise ApiError(
                400, f"The request body is not valid JSON: {error}"
            ) from None

    @property
    def caller(self) -> User:
        """The authenticated user (routes that need no token never ask)."""
        if self.user is None:
            raise ApiError(401, "Missing or invalid access token.")
        return self.user


@dataclass
class Reply:
    """What a route handler answers: a JSON body, or raw bytes with a content type."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["App", Request], Reply]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    needs_token: bool


@dataclass
class App:
    """Shared state every handler sees: the store, settings and hooks."""

    store: Store
    faults: Faults
    request_log: RequestLog
    throttle: Throttle
    secret: bytes
    base_url: str = ""
    job_polls_before_done: int = 0
    routes: list[Route] = field(default_factory=list)

    def route(
        self, method: str, pattern: str, handler: Handler, *, needs_token: bool = True
    ) -> None:
        """Register a handler for a method and a full-match path pattern."""
        self.routes.append(Route(method, re.compile(pattern), handler, needs_token))

    def user_for_token(self, token: str) -> User | None:
        """The user a bearer token belongs to, or None."""
        row = self.store.one("SELECT * FROM users WHERE token = ?", (token,))
        if row is None:
            return None
        return User(
            int(row["id"]),
            row["user_name"],
            row["display_name"],
            row["email"],
            bool(row["is_admin"]),
        )

    def user_by_id(self, user_id: int) -> User | None:
        """The user with this principal id, or None."""
        row = self.store.one("SELECT token FROM users WHERE id = ?", (user_id,))
        return None if row is None else self.user_for_token(row["token"])


def strip_prefix(path: str) -> str:
    """The path without a leading service prefix such as `/repo/v1`."""
    for prefix in SERVICE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests against the `App` on the server."""

    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections end after this many seconds.
    timeout = 60
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.client_address[0], format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        path = strip_prefix(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""

        # Injected faults come first, so that they hit before any state changes.
        fault = app.faults.pick(self.command, path)
        if fault is not None and fault.kind == "reset":
            self._reset(path)
            return
        elif fault is not None and fault.kind == "status":
            self._send(path, Reply(fault.status, {"reason": fault.reason}))
            return

        token = _bearer(self.headers.get("Authorization"))
        user = app.user_for_token(token) if token else None
        request = Request(
            self.command, path, dict(parse_qsl(parts.query)), self.headers, body, user
        )
        request.job_fault = fault is not None and fault.kind == "job_fail"
        if fault is not None and fault.kind == "delay":
            request.delay_seconds = fault.delay_seconds
        self._send(path, self._dispatch(app, request), user)

    def _dispatch(self, app: App, request: Request) -> Reply:
        allowed_methods = set()
        for route in app.routes:
            found = route.pattern.fullmatch(request.path)
            if found is None:
                continue
            if route.method != request.method:
                allowed_methods.add(route.method)
                continue
            if route.needs_token and request.user is None:
                return Reply(401, {"reason": "Missing or invalid access token."})
            request.params = found.groupdict()
            return self._call(app, route, request)

        if allowed_methods:
            return Reply(405, {"reason": f"Method {request.method} is not allowed."})
        return Reply(404, {"reason": f"No such resource: {request.path}"})

    def _call(self, app: App, route: Route, request: Request) -> Reply:
        slot = app.throttle.enter(request.user.id if request.user else None)
        if slot is not None:
            return Reply(429, {"reason": slot})
        try:
            # A slow answer holds its connection slot, as a slow server would.
            time.sleep(request.delay_seconds)
            return route.handler(app, request)
        except ApiError as error:
            return Reply(error.status, _error_body(error.reason))
        except Exception as error:
            logger.exception(
                "Sandbox handler failed for %s %s", request.method, request.path
            )
            return Reply(500, _error_body(f"{type(error).__name__}: {error}"))
        finally:
            app.throttle.leave(request.user.id if request.user else None)

    def _send(self, path: str, reply: Reply, user: User | None = None) -> None:
        app = self.server.app
        if reply.raw is not None:
            data = reply.raw
            content_type = reply.content_type
        else:
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            content_type = "application/json; charset=UTF-8"
        # Logged before the answer goes out, so a client never sees an unlogged reply.
        app.request_log.add(
            self.command,
            path,
            reply.status,
            len(data),
            user.id if user else None,
            reply.body if reply.raw is None else None,
        )
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset(self, path: str) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.close_connection = True
        self.server.app.request_log.add(self.command, path, 0, 0, None, None)


class SandboxServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the sandbox `App`.

    It remembers open connections, so that `close_connections` can end idle
    keep-alive connections at shutdown and `server_close` can join every handler
    thread instead of leaving them behind.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (killed, timed out) is no error."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            logger.debug("Client %s went away mid-request: %s", client_address, error)
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open client connection."""
        with self._open_lock:
            sockets = list(self._open)
        for connection in sockets:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("Connection already closed at shutdown")


def _bearer(header: str | None) -> str | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None


def _error_body(reason: str) -> dict[str, Any]:
    return {
        "concreteType": "org.sagebionetworks.repo.model.ErrorResponse",
        "reason": reason,
    }
