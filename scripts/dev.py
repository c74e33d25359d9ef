"""Set up a virtual environment and run the demo, the tests or the checks.

Usage (needs only python3):
    python3 scripts/dev.py demo [ARGS...]   # sandbox + daemon + scripted edit
    python3 scripts/dev.py test [ARGS...]   # the test suite (pytest ARGS)
    python3 scripts/dev.py check            # format, lint and type checks

The environment lives in `.venv` beside this repository and is reused; it is
reinstalled when `pyproject.toml` changes. pip is upgraded inside it first, because
pip 23 cannot resolve `synapseclient[curator]`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".curation-sync-installed"


def venv_bin(name: str) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / scripts / f"{name}{suffix}"


def ensure_environment() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return

    if not venv_bin("python").exists():
        print(f"Creating a virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)

    python = str(venv_bin("python"))
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def run(command: list[str]) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "check"}:
        print(__doc__)
        return 2

    ensure_environment()
    what, rest = argv[0], argv[1:]
    if what == "demo":
        return run([str(venv_bin("curation-sync")), "demo", *(rest or ["--script"])])
    if what == "test":
        return run([str(venv_bin("python")), "-m", "pytest", *rest])

    checks = [
        [str(venv_bin("ruff")), "format", "--check", "."],
        [str(venv_bin("ruff")), "check", "."],
        [str(venv_bin("mypy"))],
    ]
    return max(run(check) for check in checks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
