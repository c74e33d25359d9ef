from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import close_client
from synapseclient import Synapse
from synapseclient.models import CurationTask

from curation_sync.cli import main

CLI = [sys.executable, "-m", "curation_sync"]


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[tuple[dict[str, object], Path]]:
    config = tmp_path / "synapseConfig"
    process = subprocess.Popen(
        [
            *CLI,
            "sandbox",
            "--print-info",
            "--data-dir",
            str(tmp_path / "data"),
            "--write-synapse-config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no output"
        yield json.loads(line), config
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_the_sandbox_command_serves_a_plain_synapse_client_from_its_config(
    sandbox_process: tuple[dict[str, object], Path], tmp_path: Path
) -> None:
    info, config = sandbox_process
    client = Synapse(
        skip_checks=True,
        configPath=str(config),
        cache_root_dir=str(tmp_path / "cache"),
        silent=True,
    )
    client.login()
    try:
        tasks = list(
            CurationTask.list(
                project_id="syn1000", assigned_to_me=True, synapse_client=client
            )
        )
    finally:
        close_client(client)

    assert str(info["endpoint"]).startswith("http://127.0.0.1:")
    assert client.repoEndpoint == info["endpoint"]
    assert [task.task_id for task in tasks] == [101, 102]
    assert os.stat(config).st_mode & 0o077 == 0


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["no-such-command"])

    assert caught.value.code == 2


def test_init_writes_a_private_config_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"

    code = main(
        [
            "init",
            "--config",
            str(path),
            "--folder",
            str(tmp_path / "w"),
            "--project",
            "syn1000",
        ]
    )

    assert code == 0
    assert path.stat().st_mode & 0o077 == 0
    assert 'project = "syn1000"' in path.read_text()


def test_init_refuses_to_overwrite_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\n")

    code = main(
        ["init", "--config", str(path), "--folder", str(tmp_path), "--project", "syn1"]
    )

    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert path.read_text() == "# mine\n"


def test_read_prints_the_cells_as_typed_and_reports_a_missing_file(
    tmp_path: Path,
) -> None:
    workbook = tmp_path / "animals.csv"
    workbook.write_text("animal_id,genotype\n007,NA\nA2,MARCH1\n", encoding="utf-8")

    done = subprocess.run(
        [*CLI, "read", str(workbook)], capture_output=True, text=True, timeout=60
    )
    missing = subprocess.run(
        [*CLI, "read", str(tmp_path / "absent.xlsx")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "animal_id,genotype\n007,NA\nA2,MARCH1\n"
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr
