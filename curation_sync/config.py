"""The configuration: a frozen `Config` loaded from TOML, every setting documented.

Each setting is declared once in `SETTINGS`, with its default and its help text. The
loader, `curation-sync init` (which writes a commented file) and the test that checks
the README's reference all read that one table, so a setting cannot exist without a
default and a sentence saying what it does.

The Synapse token is never a plain setting that could end up in a log: it is looked up
from `SYNAPSE_AUTH_TOKEN`, a token file, the `token` key of a private config file, or a
synapseConfig profile, in that order, and kept in a `Secret` whose repr hides it.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation_sync.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PRODUCTION_ENDPOINTS = {
    "repoEndpoint": "https://repo-prod.prod.sagebase.org/repo/v1",
    "authEndpoint": "https://auth-prod.prod.sagebase.org/auth/v1",
    "fileHandleEndpoint": "https://file-prod.prod.sagebase.org/file/v1",
    "portalEndpoint": "https://www.synapse.org/",
}
OBSERVERS = ("auto", "native", "polling")
PUSH_MODES = ("synchronize", "export")
SIDECAR_FORMATS = ("xlsx", "csv")


@dataclass(frozen=True)
class Setting:
    """One configuration key: where it lives, its default and what it does."""

    section: str
    key: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "synapse",
        "endpoint",
        "production",
        "Synapse to talk to: `production`, or one base URL that serves the repo, "
        "file and auth paths (the sandbox prints it).",
    ),
    Setting(
        "synapse",
        "token_file",
        "",
        "File holding a Synapse personal access token; must be readable by you only.",
    ),
    Setting(
        "synapse",
        "token",
        "",
        "A personal access token written here; refused unless this config file is "
        "readable by you only. Prefer SYNAPSE_AUTH_TOKEN or token_file.",
    ),
    Setting(
        "synapse",
        "synapse_config",
        "~/.synapseConfig",
        "synapseConfig file to read a token from when none of the above is set.",
    ),
    Setting(
        "synapse",
        "profile",
        "",
        "Profile in the synapseConfig file (`[profile NAME]`); empty uses "
        "`[default]` or `[authentication]`.",
    ),
    Setting(
        "daemon",
        "state_dir",
        "",
        "Where synapseclient's cache lives; empty uses the XDG state directory "
        "(~/.local/state/curation-sync). Each watched folder keeps its own state "
        "store and lock in its `.curation-sync` folder.",
    ),
    Setting("daemon", "log_level", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Setting(
        "folder",
        "path",
        "",
        "The watched folder (required). Sub-folders are watched too.",
    ),
    Setting(
        "folder",
        "project",
        "",
        "Synapse project id (synNNN) whose tasks assigned to you get a workbook in "
        "this folder.",
    ),
    Setting(
        "folder",
        "observer",
        "auto",
        "How to watch: `native` (inotify, FSEvents, ReadDirectoryChangesW), "
        "`polling`, or `auto` (polling on network shares).",
        OBSERVERS,
    ),
    Setting(
        "folder",
        "debounce_seconds",
        2.0,
        "Quiet period after the last change to a workbook before it is pushed.",
    ),
    Setting(
        "folder",
        "polling_interval_seconds",
        5.0,
        "How often the polling observer scans the folder.",
    ),
    Setting(
        "folder",
        "incomplete_timeout_seconds",
        300.0,
        "How long a workbook that is not whole yet (a copy still arriving, a damaged "
        "zip) is waited for before its sidecar says it cannot be read.",
    ),
    Setting(
        "folder",
        "retry_initial_seconds",
        30.0,
        "After a push or pull fails for a reason that can pass (Synapse down, too "
        "many requests), the first wait before trying again; it doubles with each "
        "failure. A new save is tried at once, and the wait after it keeps growing.",
    ),
    Setting(
        "folder",
        "retry_max_seconds",
        900.0,
        "The longest wait between two tries of a failed push or pull.",
    ),
    Setting(
        "folder",
        "poll_interval_seconds",
        300.0,
        "How often task states and record set versions are polled on Synapse.",
    ),
    Setting(
        "folder",
        "sidecar_name",
        "{stem}.validation.xlsx",
        "Sidecar file name; `{stem}` is the workbook's name without extension.",
    ),
    Setting(
        "folder",
        "sidecar_format",
        "xlsx",
        "Sidecar format, `xlsx` or `csv`.",
        SIDECAR_FORMATS,
    ),
    Setting(
        "folder",
        "remove_sidecar_when_valid",
        False,
        "Delete the sidecar when every row is valid, instead of saying so in it.",
    ),
    Setting(
        "folder",
        "push_mode",
        "synchronize",
        "`synchronize` (PULL_PUSH, the default) or `export` (the deprecated "
        "export_to_record_set).",
        PUSH_MODES,
    ),
    Setting(
        "folder",
        "auto_complete",
        False,
        "Mark a task COMPLETED when its validation report is clean.",
    ),
    Setting(
        "folder",
        "mass_change_share",
        0.5,
        "A push changing or removing more than this share of rows waits for "
        "`curation-sync push --confirm FILE`.",
    ),
    Setting(
        "rule",
        "pattern",
        "",
        "Glob, relative to the watched folder, of workbooks this rule maps.",
    ),
    Setting("rule", "task_id", 0, "Task id the matching workbooks belong to."),
    Setting(
        "rule",
        "task_name",
        "",
        "Task name, looked up in the folder's project, when task_id is not given.",
    ),
)


class Secret:
    """A token that never shows itself in a repr, str or log line."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Rule:
    """An explicit mapping from workbooks matching a glob to one task."""

    pattern: str
    task_id: int = 0
    task_name: str = ""


@dataclass(frozen=True)
class FolderConfig:
    """One watched folder and how its workbooks sync."""

    path: Path
    project: str = ""
    observer: str = "auto"
    debounce_seconds: float = 2.0
    polling_interval_seconds: float = 5.0
    incomplete_timeout_seconds: float = 300.0
    retry_initial_seconds: float = 30.0
    retry_max_seconds: float = 900.0
    poll_interval_seconds: float = 300.0
    sidecar_name: str = "{stem}.validation.xlsx"
    sidecar_format: str = "xlsx"
    remove_sidecar_when_valid: bool = False
    push_mode: str = "synchronize"
    auto_complete: bool = False
    mass_change_share: float = 0.5
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs, loaded once and replaced whole on reload."""

    endpoints: Mapping[str, str]
    token: Secret | None
    state_dir: Path
    log_level: str = "INFO"
    folders: tuple[FolderConfig, ...] = ()
    source: Path | None = field(default=None, compare=False)


def default_config_path() -> Path:
    """The config file's default place: `$XDG_CONFIG_HOME/curation-sync/config.toml`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "curation-sync" / "config.toml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "curation-sync"


def endpoints_for(endpoint: str) -> dict[str, str]:
    """The four synapseclient endpoints for `production` or one base URL."""
    if endpoint == "production":
        return dict(PRODUCTION_ENDPOINTS)
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"synapse.endpoint {endpoint!r} is neither `production` nor an http(s) "
            "URL; set it to the URL the sandbox printed, or remove it."
        )
    base = endpoint.rstrip("/")
    return dict.fromkeys(PRODUCTION_ENDPOINTS, base)


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check a config file.

    Raises:
        ConfigError: the file is missing, not TOML, has an unknown key, a value of
            the wrong type, or a token that others can read.
    """
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"No config file at {path}; create one with `curation-sync init`."
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None

    _reject_unknown(raw, {"synapse", "daemon", "folder"}, "top level", path)
    synapse = _section(raw, "synapse", path)
    daemon = _section(raw, "daemon", path)
    folders = raw.get("folder", [])
    if not isinstance(folders, list) or not folders:
        raise ConfigError(
            f"{path} has no [[folder]] table; add one with at least `path = ...`."
        )

    state_dir = _value(daemon, "daemon", "state_dir", path)
    return Config(
        endpoints=endpoints_for(_value(synapse, "synapse", "endpoint", path)),
        token=find_token(synapse, path, environ),
        state_dir=Path(state_dir).expanduser() if state_dir else default_state_dir(),
        log_level=_value(daemon, "daemon", "log_level", path).upper(),
        folders=tuple(_folder(entry, path) for entry in folders),
        source=path,
    )


def find_token(
    synapse: Mapping[str, Any], path: Path, environ: Mapping[str, str]
) -> Secret | None:
    """The token from the first source that has one, or None."""
    if environ.get("SYNAPSE_AUTH_TOKEN"):
        return Secret(environ["SYNAPSE_AUTH_TOKEN"].strip())

    token_file = _value(synapse, "synapse", "token_file", path)
    if token_file:
        token_path = Path(token_file).expanduser()
        _require_private(token_path, "token_file")
        try:
            return Secret(token_path.read_text(encoding="utf-8").strip())
        except OSError as error:
            raise ConfigError(f"Cannot read token_file {token_path}: {error}") from None

    if _value(synapse, "synapse", "token", path):
        _require_private(path, "the config file holding `token`")
        return Secret(str(synapse["token"]).strip())

    profile = _value(synapse, "synapse", "profile", path)
    synapse_config = Path(_value(synapse, "synapse", "synapse_config", path))
    return _token_from_synapse_config(synapse_config.expanduser(), profile)


def _token_from_synapse_config(path: Path, profile: str) -> Secret | None:
    import configparser

    if not path.is_file():
        return None
    parser = configparser.RawConfigParser()
    parser.read(path, encoding="utf-8")
    sections = [f"profile {profile}"] if profile else ["default", "authentication"]
    for section in sections:
        if parser.has_option(section, "authtoken"):
            _require_private(path, "the synapseConfig holding `authtoken`")
            return Secret(parser.get(section, "authtoken").strip())

    if profile:
        raise ConfigError(f"{path} has no [profile {profile}] with an authtoken.")
    return None


def _require_private(path: Path, what: str) -> None:
    if os.name == "nt" or not path.exists():
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{what} ({path}) is readable by other users, so its token is refused; "
            f"run `chmod 600 {path}` and start again."
        )


def _folder(entry: Any, path: Path) -> FolderConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: each [[folder]] must be a table.")

    _reject_unknown(entry, _keys("folder") | {"rule"}, "[[folder]]", path)
    if not entry.get("path"):
        raise ConfigError(
            f"{path}: a [[folder]] has no `path`; set the folder to watch."
        )

    rules = []
    for rule in entry.get("rule", []):
        _reject_unknown(rule, _keys("rule"), "[[folder.rule]]", path)
        if not rule.get("pattern") or not (
            rule.get("task_id") or rule.get("task_name")
        ):
            raise ConfigError(
                f"{path}: each [[folder.rule]] needs `pattern` and `task_id` or "
                "`task_name`."
            )
        rules.append(
            Rule(
                pattern=_value(rule, "rule", "pattern", path),
                task_id=_value(rule, "rule", "task_id", path),
                task_name=_value(rule, "rule", "task_name", path),
            )
        )

    values = {key: _value(entry, "folder", key, path) for key in _keys("folder")}
    values["path"] = Path(values["path"]).expanduser()
    return FolderConfig(**values, rules=tuple(rules))


def _keys(section: str) -> set[str]:
    return {setting.key for setting in SETTINGS if setting.section == section}


def _setting(section: str, key: str) -> Setting:
    return next(s for s in SETTINGS if s.section == section and s.key == key)


def _section(raw: Mapping[str, Any], name: str, path: Path) -> Mapping[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{name}] must be a table.")
    _reject_unknown(section, _keys(name), f"[{name}]", path)
    return section


def _reject_unknown(
    table: Mapping[str, Any], known: set[str], where: str, path: Path
) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {', '.join(map(repr, unknown))} in {where}; "
            f"known keys are {', '.join(sorted(known))}."
        )


def _value(table: Mapping[str, Any], section: str, key: str, path: Path) -> Any:
    setting = _setting(section, key)
    value = table.get(key, setting.default)
    expected = type(setting.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ConfigError(
            f"{path}: {section}.{key} should be {expected.__name__}, not {value!r}."
        )
    if expected is float and value < 0:
        raise ConfigError(
            f"{path}: {section}.{key} is {value!r}; it cannot be negative."
        )
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"{path}: {section}.{key} is {value!r}; choose one of "
            f"{', '.join(setting.choices)}."
        )
    return value


def render_config(folder: Path, project: str) -> str:
    """A commented config file, as `curation-sync init` writes it."""
    lines = ["# curation-sync configuration; every setting shows its default.", ""]
    values = {("folder", "path"): str(folder), ("folder", "project"): project}
    for section in ("synapse", "daemon", "folder", "rule"):
        header = {"folder": "[[folder]]", "rule": "# [[folder.rule]]"}
        lines.append(header.get(section, f"[{section}]"))
        for setting in (s for s in SETTINGS if s.section == section):
            lines.extend(
                textwrap.wrap(
                    setting.help, 86, initial_indent="# ", subsequent_indent="# "
                )
            )
            value = values.get((section, setting.key), setting.default)
            commented = section == "rule" or (section, setting.key) not in values
            prefix = "# " if commented else ""
            lines.append(f"{prefix}{setting.key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
