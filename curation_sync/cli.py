"""The command line: argument parsing, logging set-up and exit codes.

This is the only module that prints or exits. Exit codes: 0 success, 1 runtime error,
2 usage or config error, 130 interrupted. `--json` output is documented in the README
and kept stable.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from curation_sync import __version__, service
from curation_sync.config import default_config_path, render_config
from curation_sync.errors import ConfigError, CurationSyncError

logger = logging.getLogger("curation_sync")

Handler = Callable[[argparse.Namespace], int]


def setup_logging(verbose: int) -> None:
    """Plain lines on stderr; no timestamps when journald stamps them."""
    level = logging.DEBUG if verbose else logging.INFO
    fmt = "%(levelname)s %(message)s"
    if not service.is_under_journald():
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logger.setLevel(level)


def wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from curation_sync.sandbox import Sandbox, write_synapse_config

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="curation-sync-sandbox-"))
    scenario = args.scenario if args.scenario != "none" else None
    with Sandbox(data_dir, host=args.host, port=args.port, scenario=scenario) as box:
        info = box.info()
        if args.write_synapse_config:
            users = info["users"]
            if args.user not in users:
                raise ConfigError(
                    f"The scenario has no user {args.user!r}; choose one of "
                    f"{', '.join(users)}."
                )
            token = users[args.user]["token"]
            write_synapse_config(args.write_synapse_config, box.endpoint, token)
            logger.info("Wrote synapseConfig %s", args.write_synapse_config)
        if args.print_info:
            print(json.dumps(info), flush=True)
        wait_for_stop()
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from curation_sync.workbook import format_table, read_workbook

    schema = None
    if args.schema:
        try:
            schema = json.loads(args.schema.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"Cannot read the schema {args.schema}: {error}"
            ) from None
    table = read_workbook(args.file, schema=schema, sheet=args.sheet)
    sys.stdout.write(format_table(table, args.format))
    if args.format == "csv":
        for problem in table.problems:
            print(f"warning: {problem.message}", file=sys.stderr)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    path: Path = args.config or default_config_path()
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists already; pass --force to overwrite it.")

    folder = args.folder or Path(_ask("Folder to watch", str(Path.home() / "curation")))
    project = args.project or _ask("Synapse project id (synNNN)", "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config(folder.expanduser(), project), encoding="utf-8")
    path.chmod(0o600)
    print(f"Wrote {path}; edit it, then start `curation-sync run`.")
    return 0


def _ask(question: str, default: str) -> str:
    if not sys.stdin.isatty():
        return default
    answer = input(f"{question} [{default}]: ").strip()
    return answer or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curation-sync",
        description="Keep spreadsheets in sync with Synapse curation tasks.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("init", cmd_init, "Write a commented config file.")
    sub.add_argument("--config", type=Path, help="where to write it")
    sub.add_argument("--folder", type=Path, help="the folder to watch")
    sub.add_argument("--project", help="the Synapse project id")
    sub.add_argument("--force", action="store_true", help="overwrite an existing file")

    sub = command("read", cmd_read, "Print a workbook's table as it would be pushed.")
    sub.add_argument("file", type=Path)
    sub.add_argument("--sheet", help="the data sheet (default: the first that fits)")
    sub.add_argument("--format", choices=("csv", "json"), default="csv")
    sub.add_argument("--schema", type=Path, help="a JSON schema file to shape cells")

    sub = command("sandbox", cmd_sandbox, "Run the local Synapse stand-in.")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=0, help="0 picks a free port")
    sub.add_argument("--data-dir", type=Path, help="state directory (kept)")
    sub.add_argument("--scenario", default="demo", help="demo, none or a FILE")
    sub.add_argument("--write-synapse-config", type=Path, metavar="FILE")
    sub.add_argument("--user", default="demo", help="whose token the config holds")
    sub.add_argument("--print-info", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (CurationSyncError, OSError) as error:
        if args.verbose:
            logger.exception("Failed")
        print(f"error: {error}", file=sys.stderr)
        return 1
