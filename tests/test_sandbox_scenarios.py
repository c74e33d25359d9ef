"""Scenario files, the info the CLI prints, and the synapseConfig for plain clients."""

from __future__ import annotations

import configparser
import json
import stat
from pathlib import Path

import pytest
from synapseclient import Synapse
from synapseclient.models import CurationTask, RecordSet

from curation_sync.sandbox import Sandbox, write_synapse_config
from curation_sync.sandbox.scenario import load_scenario

SMALL = {
    "name": "small",
    "users": [
        {"key": "boss", "token": "boss-token", "admin": True},
        {"key": "ann", "token": "ann-token", "display_name": "Ann Example"},
    ],
    "projects": [
        {"key": "p", "name": "Small", "owner": "boss", "members": {"ann": "edit"}}
    ],
    "schemas": [
        {
            "key": "s",
            "organization": "org.small",
            "name": "thing",
            "version": "0.1.0",
            "body": {
                "properties": {"id": {"type": "string"}, "size": {"type": "integer"}},
                "required": ["id"],
            },
        }
    ],
    "record_sets": [
        {
            "key": "things",
            "parent": "p",
            "name": "things",
            "upsert_key": ["id"],
            "schema": "s",
            "columns": ["id", "size"],
            "rows": [["t1", "3"], ["t2", "x"]],
        }
    ],
    "tasks": [
        {
            "key": "t",
            "project": "p",
            "data_type": "Things",
            "record_set": "things",
            "assignee": "ann",
            "state": "IN_PROGRESS",
        }
    ],
}


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_scenario_file_seeds_users_record_sets_and_tasks(
    tmp_path: Path,
    connect,
    suffix: str,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / f"small{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(SMALL))
    else:
        path.write_text(_as_toml(SMALL))

    with Sandbox(tmp_path / "data", scenario=path) as sandbox:
        info = sandbox.info()
        client = connect(sandbox, "ann-token")
        task = CurationTask(task_id=info["tasks"]["t"]).get(synapse_client=client)
        status = task.get_status(synapse_client=client)
        record_set = RecordSet(id=info["record_sets"]["things"]).get(
            synapse_client=client
        )

    assert info["scenario"] == "small"
    assert info["users"]["ann"]["token"] == "ann-token"
    assert task.assignee_principal_id == info["users"]["ann"]["id"]
    assert status.state == "IN_PROGRESS"
    assert record_set.upsert_keys == ["id"]
    assert Path(record_set.path).read_text() == '"id","size"\n"t1","3"\n"t2","x"\n'


def _as_toml(scenario: dict) -> str:  # type: ignore[type-arg]
    # JSON values are valid TOML values for these strings, lists and tables.
    lines = [f"name = {json.dumps(scenario['name'])}"]
    for kind, items in scenario.items():
        if kind == "name":
            continue
        for item in items:
            lines.append(f"[[{kind}]]")
            for key, value in item.items():
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items())
        return "{ " + inner + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(value)


def test_an_unknown_scenario_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a bundled scenario"):
        load_scenario("no-such-scenario")
    text_file = tmp_path / "scenario.txt"
    text_file.write_text("")
    with pytest.raises(ValueError, match=r"must end in \.toml or \.json"):
        load_scenario(text_file)


def test_info_is_json_and_names_every_demo_object(sandbox: Sandbox) -> None:
    info = json.loads(json.dumps(sandbox.info()))

    assert info["endpoint"] == sandbox.endpoint
    assert info["endpoint"].startswith("http://127.0.0.1:")
    assert set(info["users"]) == {"demo", "admin", "viewer", "outsider"}
    assert info["users"]["admin"]["admin"] is True
    assert set(info["tasks"]) == {"animal_task", "sample_task"}
    assert info["record_sets"]["animals"].startswith("syn")
    assert info["views"]["sample_view"].startswith("syn")
    assert info["schemas"]["animal"] == "org.example-animal.metadata-1.0.0"


def test_the_synapse_config_points_a_plain_client_at_the_sandbox(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = write_synapse_config(
        tmp_path / "cfg", sandbox.endpoint, sandbox.token("demo")
    )

    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    assert dict(parser["endpoints"]) == {
        "repoEndpoint": sandbox.endpoint,
        "authEndpoint": sandbox.endpoint,
        "fileHandleEndpoint": sandbox.endpoint,
        "portalEndpoint": sandbox.endpoint + "/",
    }
    assert parser["authentication"]["authtoken"] == sandbox.token("demo")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    client = Synapse(
        skip_checks=True,
        configPath=str(path),
        cache_root_dir=str(tmp_path / "cache"),
        silent=True,
    )
    try:
        client.login()
        assert client.credentials.owner_id == sandbox.info()["users"]["demo"]["id"]
        assert client.repoEndpoint == sandbox.endpoint
    finally:
        client._requests_session.close()
        client._requests_session_storage.close()
