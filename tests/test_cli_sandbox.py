"""The one-shot commands, in-process, against the sandbox and a real folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation_sync.cli import main
from curation_sync.sandbox import Sandbox
from tests.synctools import edit_xlsx

WORKBOOK = "AnimalMetadata_Curation.xlsx"


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Path:
    folder = tmp_path / "folder"
    folder.mkdir()
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.token("demo"))
    token_file.chmod(0o600)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[synapse]\nendpoint = "{sandbox.endpoint}"\ntoken_file = "{token_file}"\n'
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[folder]]\npath = "{folder}"\nproject = "syn1000"\n'
    )
    return path


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNAPSE_AUTH_TOKEN", raising=False)


def test_tasks_lists_the_demo_users_tasks_as_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["tasks", "--config", str(config), "--json"])

    assert code == 0
    tasks = json.loads(capsys.readouterr().out)
    assert {t["task_id"]: t["kind"] for t in tasks} == {
        101: "record",
        102: "file",
    }


def test_pull_all_then_status_shows_each_workbook_in_sync_offline(
    config: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "--all", "--config", str(config)]) == 0
    capsys.readouterr()
    sandbox.stop()

    code = main(["status", "--config", str(config), "--json"])

    assert code == 0
    folders = json.loads(capsys.readouterr().out)["folders"]
    rows = {Path(w["workbook"]).name: w for w in folders[0]["workbooks"]}
    assert rows[WORKBOOK]["task_id"] == 101
    assert rows[WORKBOOK]["state"] == "in sync"
    assert rows[WORKBOOK]["base_version"] == 1
    assert folders[0]["daemon"] is None


def test_push_dry_run_sends_nothing_and_push_then_lands_a_version(
    config: Path, sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "--all", "--config", str(config)]) == 0
    workbook = tmp_path / "folder" / WORKBOOK
    edit_xlsx(workbook, {(2, "weight_g"): 40.5})
    syncs = sandbox.request_log.count("POST", r"/grid/synchronize/async/start")

    dry = main(["push", str(workbook), "--dry-run", "--config", str(config)])
    after_dry = sandbox.request_log.count("POST", r"/grid/synchronize/async/start")
    real = main(["push", str(workbook), "--config", str(config)])

    out = capsys.readouterr().out
    assert (dry, real) == (0, 0)
    assert after_dry == syncs
    assert "dry-run" in out
    assert "pushed" in out
    assert sandbox.request_log.count("POST", r"/grid/synchronize/async/start") == (
        syncs + 1
    )


def test_push_of_a_file_outside_the_watched_folders_is_a_usage_error(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = tmp_path / "elsewhere.xlsx"
    stray.write_bytes(b"")

    code = main(["push", str(stray), "--config", str(config)])

    assert code == 2
    assert "not in a watched folder" in capsys.readouterr().err


def test_doctor_passes_against_the_sandbox(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--config", str(config)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok   login: signed in as" in out


def test_check_reports_synapse_messages_offline_and_sends_nothing(
    config: Path, sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "--all", "--config", str(config)]) == 0
    workbook = tmp_path / "folder" / WORKBOOK
    edit_xlsx(workbook, {(3, "sex"): "other", (4, "genotype"): None})
    capsys.readouterr()
    sandbox.stop()

    code = main(["check", str(workbook), "--config", str(config), "--json"])

    assert code == 1
    found = json.loads(capsys.readouterr().out)
    assert found["invalid_rows"] == 2
    assert {(i["sheet_row"], i["message"]) for i in found["issues"]} == {
        (3, "#/sex: other is not a valid enum value"),
        (4, "#/genotype: expected type: String, found: Null"),
    }
