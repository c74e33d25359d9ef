from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from curation_sync.config import (
    PRODUCTION_ENDPOINTS,
    SETTINGS,
    load_config,
    render_config,
)
from curation_sync.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def write_config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_every_setting_is_documented_in_the_readme_reference() -> None:
    reference = README.read_text(encoding="utf-8").split("## Configuration reference")[
        1
    ]
    documented = set(re.findall(r"^\| `(\w+)\.(\w+)` \|", reference, re.MULTILINE))

    missing = {(s.section, s.key) for s in SETTINGS} - documented

    assert not missing, f"settings missing from README's reference: {sorted(missing)}"


def test_a_minimal_config_takes_every_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'[[folder]]\npath = "{tmp_path}"\n')

    config = load_config(path, environ={"SYNAPSE_AUTH_TOKEN": "tok"})

    assert config.endpoints == PRODUCTION_ENDPOINTS
    folder = config.folders[0]
    assert folder.path == tmp_path
    assert folder.observer == "auto"
    assert folder.push_mode == "synchronize"
    assert folder.debounce_seconds == 2.0
    assert config.token is not None
    assert config.token.reveal() == "tok"


def test_one_base_url_covers_all_four_endpoints(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[synapse]\nendpoint = "http://127.0.0.1:8123/"\n'
        f'[[folder]]\npath = "{tmp_path}"\n',
    )

    config = load_config(path, environ={})

    assert set(config.endpoints.values()) == {"http://127.0.0.1:8123"}
    assert set(config.endpoints) == set(PRODUCTION_ENDPOINTS)


def test_an_unknown_key_is_rejected_by_name(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f'[[folder]]\npath = "{tmp_path}"\ndebounce_secs = 3\n'
    )

    with pytest.raises(ConfigError, match="'debounce_secs'"):
        load_config(path, environ={})


def test_a_value_outside_its_choices_names_the_choices(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'[[folder]]\npath = "{tmp_path}"\nobserver = "x"\n')

    with pytest.raises(ConfigError, match="auto, native, polling"):
        load_config(path, environ={})


def test_a_negative_wait_is_refused_by_name(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f'[[folder]]\npath = "{tmp_path}"\nretry_max_seconds = -1\n'
    )

    with pytest.raises(ConfigError, match=r"folder\.retry_max_seconds .* negative"):
        load_config(path, environ={})


def test_the_waits_reach_the_sync_engine_and_the_watcher(tmp_path: Path) -> None:
    from curation_sync.daemon import settings_for

    path = write_config(
        tmp_path,
        f'[[folder]]\npath = "{tmp_path}"\nretry_initial_seconds = 5\n'
        "retry_max_seconds = 60.5\nincomplete_timeout_seconds = 12\n",
    )

    [folder] = load_config(path, environ={}).folders
    settings = settings_for(folder)

    assert (settings.retry_initial_seconds, settings.retry_max_seconds) == (5.0, 60.5)
    assert folder.incomplete_timeout_seconds == 12.0


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_token_in_a_config_readable_by_others_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    path = write_config(
        tmp_path,
        f'[synapse]\ntoken = "secret"\n[[folder]]\npath = "{tmp_path}"\n',
        mode=0o644,
    )

    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load_config(path, environ={})

    assert "secret" not in str(caught.value)


def test_the_token_never_shows_in_a_repr(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f'[synapse]\ntoken = "s3cr3t"\n[[folder]]\npath = "{tmp_path}"\n'
    )

    config = load_config(path, environ={})

    assert "s3cr3t" not in repr(config)
    assert config.token is not None
    assert config.token.reveal() == "s3cr3t"


def test_a_token_file_is_read_when_the_environment_has_none(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    token_file.chmod(0o600)
    path = write_config(
        tmp_path,
        f'[synapse]\ntoken_file = "{token_file}"\n[[folder]]\npath = "{tmp_path}"\n',
    )

    config = load_config(path, environ={})

    assert config.token is not None
    assert config.token.reveal() == "from-file"


def test_a_synapse_config_profile_supplies_the_token(tmp_path: Path) -> None:
    synapse_config = tmp_path / "synapseConfig"
    synapse_config.write_text("[profile lab]\nauthtoken = lab-token\n")
    synapse_config.chmod(0o600)
    path = write_config(
        tmp_path,
        f'[synapse]\nsynapse_config = "{synapse_config}"\nprofile = "lab"\n'
        f'[[folder]]\npath = "{tmp_path}"\n',
    )

    config = load_config(path, environ={})

    assert config.token is not None
    assert config.token.reveal() == "lab-token"


def test_rules_need_a_pattern_and_a_task(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f'[[folder]]\npath = "{tmp_path}"\n[[folder.rule]]\npattern = "*.xlsx"\n',
    )

    with pytest.raises(ConfigError, match="task_id"):
        load_config(path, environ={})


def test_the_rendered_config_loads_back_to_the_same_folder(tmp_path: Path) -> None:
    path = write_config(tmp_path, render_config(tmp_path / "work", "syn123"))

    config = load_config(path, environ={"SYNAPSE_AUTH_TOKEN": "x"})

    assert config.folders[0].path == tmp_path / "work"
    assert config.folders[0].project == "syn123"


def test_the_example_in_config_loads_and_matches_what_init_writes(
    tmp_path: Path,
) -> None:
    example = README.parent / "config" / "example.toml"
    text = example.read_text(encoding="utf-8")

    config = load_config(example, environ={"SYNAPSE_AUTH_TOKEN": "x"})

    assert config.folders[0].project == "syn123456789"
    rendered = render_config(Path("~/curation-sync"), "syn123456789")
    assert text.split("\n[synapse]", 1)[1] == rendered.split("\n[synapse]", 1)[1]
