from __future__ import annotations

import socket
from pathlib import Path

from curation_sync.config import Config, FolderConfig, Secret
from curation_sync.doctor import check_endpoint, check_folder, check_lock, run_checks
from curation_sync.lock import FolderLock
from curation_sync.state import STATE_DIR


def config_for(tmp_path: Path, endpoint: str, token: str | None = "t") -> Config:
    return Config(
        endpoints=dict.fromkeys(("repoEndpoint", "fileHandleEndpoint"), endpoint),
        token=Secret(token) if token else None,
        state_dir=tmp_path / "state",
        folders=(FolderConfig(path=tmp_path),),
    )


def test_an_endpoint_that_listens_passes(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        check = check_endpoint(f"http://127.0.0.1:{port}")

    assert check.ok, check.detail


def test_a_dead_endpoint_fails_and_says_how_to_fix_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

    check = check_endpoint(f"http://127.0.0.1:{port}", timeout_seconds=2)

    assert not check.ok
    assert "synapse.endpoint" in check.fix


def test_a_missing_folder_is_reported_with_the_command_that_creates_it(
    tmp_path: Path,
) -> None:
    check = check_folder(tmp_path / "absent")

    assert not check.ok
    assert "mkdir -p" in check.fix


def test_a_refused_login_names_the_token_fix(tmp_path: Path) -> None:
    def refuse() -> str:
        raise PermissionError("401 Client Error: invalid token")

    checks = run_checks(config_for(tmp_path, "http://127.0.0.1:9"), login=refuse)

    login = next(c for c in checks if c.name == "login")
    assert not login.ok
    assert "Personal Access Tokens" in login.fix


def test_no_token_is_the_first_failure(tmp_path: Path) -> None:
    checks = run_checks(config_for(tmp_path, "http://127.0.0.1:9", token=None))

    assert checks[0].name == "token"
    assert not checks[0].ok
    assert all(c.name != "login" for c in checks)


def test_the_lock_check_names_the_daemon_holding_the_folder(tmp_path: Path) -> None:
    lock = FolderLock(tmp_path / STATE_DIR, host="lab-pc")
    free = check_lock(tmp_path)
    lock.acquire()
    try:
        held = check_lock(tmp_path)
    finally:
        lock.release()

    assert free.detail == "no daemon holds the folder"
    assert "held by lab-pc pid" in held.detail
