"""The command line: argument parsing, logging set-up and exit codes.

This is the only module that prints or exits. Exit codes: 0 success, 1 runtime error,
2 usage or config error, 130 interrupted. `--json` output is documented in the README
and kept stable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curation_sync import __version__, service
from curation_sync.config import Config, default_config_path, load_config, render_config
from curation_sync.errors import ConfigError, CurationSyncError, RemoteError

logger = logging.getLogger("curation_sync")

Handler = Callable[[argparse.Namespace], int]


@contextmanager
def logging_to_stderr(verbose: int) -> Iterator[None]:
    """Plain lines on stderr, no timestamps when journald stamps them.

    The handler and levels are put back on exit, so an in-process `main()` (as in
    tests) leaves no handler behind on a stream that is closed afterwards.
    """
    fmt = "%(levelname)s %(message)s"
    if not service.is_under_journald():
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logger.level)
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        yield
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        logger.setLevel(saved[2])


@contextmanager
def progress(what: str) -> Iterator[None]:
    """An elapsed-time bar on a terminal while long work runs; none under systemd."""
    if not sys.stderr.isatty() or service.is_under_journald():
        yield
        return

    import tqdm  # type: ignore[import-untyped]  # tqdm ships no type stubs

    done = threading.Event()
    bar = tqdm.tqdm(desc=what, total=None, bar_format="{desc} {elapsed}", leave=False)

    def tick() -> None:
        while not done.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="curation-sync-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        bar.close()


# Python runs signal handlers in the main thread, but the kernel may hand a
# signal to any thread, and then nothing wakes a wait with no timeout; the
# main thread wakes this often so that the handler runs.
_SIGNAL_CHECK_SECONDS = 0.5


def wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(_SIGNAL_CHECK_SECONDS):
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


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config or default_config_path())
    logger.setLevel(logging.DEBUG if args.verbose else config.log_level)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    reload = threading.Event()
    interrupted: list[int] = []

    def on_stop(signum: int, _frame: object) -> None:
        interrupted.append(signum)
        stop.set()

    def on_reload(_signum: int, _frame: object) -> None:
        reload.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_reload)

    # The handlers come first: importing the daemon (synapseclient) takes about
    # a second, and a stop asked for meanwhile must not kill the process.
    from curation_sync.daemon import Daemon

    config = _config(args)
    if interrupted:
        logger.info("Stopped before starting: asked to stop while loading")
        return 130 if signal.SIGINT in interrupted else 0
    stop.clear()
    reload.clear()
    daemon = Daemon(config)
    daemon.start()
    try:
        while not interrupted:
            if not stop.wait(_SIGNAL_CHECK_SECONDS) or interrupted:
                continue
            stop.clear()
            reload.clear()
            try:
                daemon.reload(load_config(args.config or default_config_path()))
            except ConfigError as error:
                logger.warning(
                    "Kept the running config: the new one failed (%s)", error
                )
    finally:
        daemon.stop()
    return 130 if signal.SIGINT in interrupted else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from curation_sync import demo

    with demo.demo_session(args.folder, args.port) as session:
        print(f"Sandbox: {session.sandbox.endpoint}")
        print(f"Watched folder: {session.folder}")
        print(f"The demo task's workbook is {session.workbook}")
        if not args.script:
            print(
                "Open it in Excel or LibreOffice, change a cell (try sex = other, or "
                "blank a genotype) and save; the sidecar beside it shows Synapse's "
                "validation report. Press Ctrl-C to stop."
            )
            wait_for_stop()
            return 0

        base = session.daemon.folders[0].engine.status()
        before = next(s.base_version for s in base if s.path == session.workbook)
        print("Playing a scripted edit:")
        for line in demo.play_scripted_edit(session.workbook):
            print(f"  {line}")
        sidecar = demo.wait_for_synapse_report(session, before)
        print(f"The sidecar {sidecar.name} says:")
        for line in demo.describe_sidecar(sidecar):
            print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from curation_sync.daemon import open_engine
    from curation_sync.lock import FolderLock
    from curation_sync.state import STATE_DIR

    config = _config(args)
    folders: list[dict[str, Any]] = []
    for folder in config.folders:
        owner = FolderLock(folder.path / STATE_DIR).owner()
        with open_engine(config, folder, online=False) as engine:
            rows = engine.status()
        folders.append(
            {
                "folder": str(folder.path),
                "daemon": owner.describe() if owner else None,
                "workbooks": [_status_json(row) for row in rows],
            }
        )
    if args.json:
        print(json.dumps({"folders": folders}, indent=2))
        return 0
    for entry in folders:
        print(f"{entry['folder']}: daemon {entry['daemon'] or 'not running'}")
        for row in entry["workbooks"]:
            task = f"task {row['task_id']}" if row["task_id"] else "no task"
            version = row["base_version"] if row["base_version"] is not None else "-"
            counts = ""
            if row["invalid_rows"] is not None:
                counts = f", {row['rows']} rows, {row['invalid_rows']} invalid"
            editor = ", open in an editor" if row["open_in_editor"] else ""
            print(
                f"  {row['workbook']}: {task} ({row['task_state'] or 'state unknown'})"
                f", {row['state']} ({row['detail']}), version {version}{counts}, "
                f"last push {row['last_pushed_at'] or 'never'}{editor}"
            )
    return 0


def _status_json(row: Any) -> dict[str, Any]:
    document = dataclasses.asdict(row)
    document["workbook"] = str(document.pop("path"))
    pushed = document["last_pushed_at"]
    document["last_pushed_at"] = pushed.isoformat() if pushed else None
    return document


def cmd_push(args: argparse.Namespace) -> int:
    from curation_sync.daemon import folder_of, open_engine

    config = _config(args)
    folder = folder_of(config, args.file)
    with open_engine(config, folder) as engine, progress(f"Pushing {args.file.name}"):
        result = engine.push(
            args.file,
            confirm=args.confirm,
            dry_run=args.dry_run,
            overwrite_conflicts=args.overwrite_conflicts,
        )
    print(f"{result.outcome}: {result.message}")
    return 0 if result.outcome not in {"failed", "deferred", "unmapped"} else 1


def cmd_check(args: argparse.Namespace) -> int:
    from curation_sync.daemon import folder_of, open_engine

    config = _config(args)
    folder = folder_of(config, args.file)
    # A workbook whose task and schema are cached is checked without going online.
    try:
        with open_engine(config, folder, online=False) as engine:
            table, check = engine.check(args.file)
    except RemoteError:
        with open_engine(config, folder) as engine:
            table, check = engine.check(args.file)
    problems = [p.message for p in table.problems]
    issues = [
        {
            "sheet_row": i.sheet_row,
            "key": i.key,
            "column": i.column,
            "value": i.value,
            "message": i.message,
        }
        for i in check.issues
    ]
    if args.json:
        document = {
            "valid_rows": check.valid_rows,
            "invalid_rows": check.invalid_rows,
            "blocking": check.blocking,
            "problems": problems,
            "issues": issues,
            "notes": list(check.notes),
        }
        print(json.dumps(document, indent=2))
    else:
        print(
            f"{args.file.name}: {check.valid_rows} valid rows, "
            f"{check.invalid_rows} invalid"
        )
        for line in [*problems, *check.notes]:
            print(f"  {line}")
        for issue in issues:
            print(
                f"  sheet row {issue['sheet_row']} ({issue['key']}): {issue['message']}"
            )
        if check.blocking:
            print(f"  not pushable: {check.blocking}")
    return 0 if not check.invalid_rows and not check.blocking and not problems else 1


def cmd_pull(args: argparse.Namespace) -> int:
    from curation_sync.daemon import folder_of, open_engine

    config = _config(args)
    if args.all:
        for folder in config.folders:
            with open_engine(config, folder) as engine, progress("Pulling"):
                result = engine.poll()
            print(f"{folder.path}: {len(result.pulls)} pulls, {result.tasks} tasks")
        return 0
    if args.file is None:
        raise ConfigError("Name a workbook to pull, or pass --all.")
    folder = folder_of(config, args.file)
    with open_engine(config, folder) as engine, progress(f"Pulling {args.file.name}"):
        pulled = engine.pull(args.file)
    print(f"{pulled.outcome}: {pulled.message}")
    return 0 if pulled.outcome in {"written", "up-to-date", "waiting"} else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    from curation_sync.daemon import open_engine

    config = _config(args)
    folder = config.folders[0]
    project = args.project or folder.project
    if not project:
        raise ConfigError("Name a project with --project, or set folder.project.")
    with open_engine(config, folder) as engine:
        tasks = engine.ctx.adapter.list_tasks(project)
    if args.json:
        print(json.dumps([task.to_json() for task in tasks], indent=2))
        return 0
    for task in tasks:
        record_set = task.record_set_id or ""
        print(f"{task.task_id}\t{task.name}\t{task.kind.value}\t{record_set}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from curation_sync.daemon import make_adapter
    from curation_sync.doctor import run_checks

    config = _config(args)

    def login() -> str:
        adapter = make_adapter(config)
        try:
            return adapter.user_id
        finally:
            adapter.close()

    checks = run_checks(config, login=login)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"{mark} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"     fix: {check.fix}")
    return 0 if all(check.ok for check in checks) else 1


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

    sub = command("run", cmd_run, "Run the daemon in the foreground.")
    sub.add_argument("--config", type=Path)

    sub = command("demo", cmd_demo, "Run the sandbox and the daemon on a folder.")
    sub.add_argument("--folder", type=Path, help="the folder (default: a fresh one)")
    sub.add_argument("--port", type=int, default=0, help="sandbox port (0: free)")
    sub.add_argument("--script", action="store_true", help="play an edit and exit")

    sub = command("status", cmd_status, "One line per workbook, and the daemon.")
    sub.add_argument("--config", type=Path)
    sub.add_argument("--json", action="store_true")

    sub = command("tasks", cmd_tasks, "List the tasks assigned to you.")
    sub.add_argument("--config", type=Path)
    sub.add_argument("--project", help="project id (default: the folder's)")
    sub.add_argument("--json", action="store_true")

    sub = command("push", cmd_push, "Push one workbook now.")
    sub.add_argument("file", type=Path)
    sub.add_argument("--config", type=Path)
    sub.add_argument(
        "--confirm", action="store_true", help="pass the mass-change guard"
    )
    sub.add_argument(
        "--dry-run", action="store_true", help="write the CSV; send nothing"
    )

    sub.add_argument(
        "--overwrite-conflicts",
        action="store_true",
        help="push your values for rows in conflict, replacing the remote edits",
    )

    sub = command("check", cmd_check, "Check a workbook locally; send nothing.")
    sub.add_argument("file", type=Path)
    sub.add_argument("--config", type=Path)
    sub.add_argument("--json", action="store_true")

    sub = command("pull", cmd_pull, "Pull one workbook, or every task, now.")
    sub.add_argument("file", type=Path, nargs="?")
    sub.add_argument("--config", type=Path)
    sub.add_argument("--all", action="store_true")

    sub = command("doctor", cmd_doctor, "Check the set-up and say how to fix it.")
    sub.add_argument("--config", type=Path)

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
    handler: Handler = args.handler
    try:
        with logging_to_stderr(args.verbose):
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
