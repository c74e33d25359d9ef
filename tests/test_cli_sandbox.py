"""The one-shot commands against the sandbox and a real folder.

Each test runs its commands twice over: in-process through `main()`, and as a
`python -m curation_sync` subprocess, as a person or a service would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from curation_sync.cli import main
from curation_sync.sandbox import Sandbox
from tests.synctools import edit_xlsx, write_daemon_config

WORKBOOK = "AnimalMetadata_Curation.xlsx"

Invoke = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture(params=["in-process", "subprocess"])
def invoke(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Invoke:
    """Run one command; give back its exit code, stdout and stderr."""

    def in_process(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def as_subprocess(argv: list[str]) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "curation_sync", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout, done.stderr

    return in_process if request.param == "in-process" else as_subprocess


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Path:
    folder = tmp_path / "folder"
    folder.mkdir()
    return write_daemon_config(sandbox, tmp_path, folder)


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNAPSE_AUTH_TOKEN", raising=False)


def test_tasks_lists_the_demo_users_tasks_as_json(config: Path, invoke: Invoke) -> None:
    code, out, _ = invoke(["tasks", "--config", str(config), "--json"])

    assert code == 0
    tasks = json.loads(out)
    assert {t["task_id"]: t["kind"] for t in tasks} == {
        101: "record",
        102: "file",
    }


def test_pull_all_then_status_shows_each_workbook_in_sync_offline(
    config: Path, sandbox: Sandbox, invoke: Invoke
) -> None:
    assert invoke(["pull", "--all", "--config", str(config)])[0] == 0
    sandbox.stop()
    lock = config.parent / "folder" / f".~lock.{WORKBOOK}#"
    lock.write_text("someone,host,2026")

    code, out, _ = invoke(["status", "--config", str(config), "--json"])
    text_code, text, _ = invoke(["status", "--config", str(config)])

    assert code == 0
    folders = json.loads(out)["folders"]
    rows = {Path(w["workbook"]).name: w for w in folders[0]["workbooks"]}
    assert rows[WORKBOOK]["task_id"] == 101
    assert rows[WORKBOOK]["state"] == "in sync"
    assert rows[WORKBOOK]["base_version"] == 1
    assert rows[WORKBOOK]["rows"] == 5
    assert rows[WORKBOOK]["open_in_editor"] is True
    assert rows["SampleFiles_Curation.xlsx"]["open_in_editor"] is False
    assert folders[0]["daemon"] is None
    assert text_code == 0
    assert "daemon not running" in text
    assert f"{WORKBOOK}: task 101" in text
    assert "open in an editor" in text


def test_push_dry_run_sends_nothing_and_push_then_lands_a_version(
    config: Path, sandbox: Sandbox, tmp_path: Path, invoke: Invoke
) -> None:
    assert invoke(["pull", "--all", "--config", str(config)])[0] == 0
    workbook = tmp_path / "folder" / WORKBOOK
    edit_xlsx(workbook, {(2, "weight_g"): 40.5})
    syncs = sandbox.request_log.count("POST", r"/grid/synchronize/async/start")

    dry, dry_out, _ = invoke(
        ["push", str(workbook), "--dry-run", "--config", str(config)]
    )
    after_dry = sandbox.request_log.count("POST", r"/grid/synchronize/async/start")
    real, real_out, _ = invoke(["push", str(workbook), "--config", str(config)])

    assert (dry, real) == (0, 0)
    assert after_dry == syncs
    assert dry_out.startswith("dry-run")
    written = workbook.parent / ".curation-sync" / "dry-run"
    lines = (written / "AnimalMetadata_Curation.import.csv").read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("animal_id,")
    assert lines[1].startswith("A001,")
    assert "40.5" in lines[1].split(",")
    assert real_out.startswith("pushed")
    assert sandbox.request_log.count("POST", r"/grid/synchronize/async/start") == (
        syncs + 1
    )


def test_push_of_a_file_outside_the_watched_folders_is_a_usage_error(
    config: Path, tmp_path: Path, invoke: Invoke
) -> None:
    stray = tmp_path / "elsewhere.xlsx"
    stray.write_bytes(b"")

    code, _, err = invoke(["push", str(stray), "--config", str(config)])

    assert code == 2
    assert "not in a watched folder" in err


def test_doctor_passes_against_the_sandbox(config: Path, invoke: Invoke) -> None:
    code, out, _ = invoke(["doctor", "--config", str(config)])

    assert code == 0, out
    assert "ok   login: signed in as" in out


def test_check_reports_synapse_messages_offline_and_sends_nothing(
    config: Path, sandbox: Sandbox, tmp_path: Path, invoke: Invoke
) -> None:
    assert invoke(["pull", "--all", "--config", str(config)])[0] == 0
    workbook = tmp_path / "folder" / WORKBOOK
    edit_xlsx(workbook, {(3, "sex"): "other", (4, "genotype"): None})
    sandbox.stop()

    code, out, _ = invoke(["check", str(workbook), "--config", str(config), "--json"])

    assert code == 1
    found = json.loads(out)
    assert found["invalid_rows"] == 2
    assert {(i["sheet_row"], i["message"]) for i in found["issues"]} == {
        (3, "#/sex: other is not a valid enum value"),
        (4, "#/genotype: expected type: String, found: Null"),
    }


def test_demo_script_plays_the_whole_loop_and_exits_0(invoke: Invoke) -> None:
    code, out, err = invoke(["demo", "--script"])

    assert code == 0, err
    assert "Checked by: Synapse" in out
    assert "#/sex: other is not a valid enum value" in out
    assert "#/genotype: expected type: String, found: Null" in out
