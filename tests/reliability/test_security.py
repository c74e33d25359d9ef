"""Security: formula injection, hostile task names, the token, the sandbox's door.

* Values on Synapse that start with `=`, `+`, `-`, `@`, tab or CR are pulled into
  workbooks and quoted in sidecars (XLSX and CSV) as text, never as formulas.
* Task names with `../`, `/`, reserved device names or 300 characters give
  workbooks directly inside the watched folder.
* The token never appears in the daemon's log (at DEBUG, with a traceback), its
  state store, sidecars, workbooks, or the reprs of its objects.
* The sandbox refuses requests without a valid token and binds loopback by default.
"""

from __future__ import annotations

import csv
import traceback
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
import requests
from synapseclient import Synapse
from synapseclient.models import CurationTask, RecordBasedMetadataTaskProperties

from curation_sync.config import load_config
from curation_sync.daemon import Daemon
from curation_sync.errors import CurationSyncError
from curation_sync.mapping import safe_name
from curation_sync.sandbox import Sandbox
from curation_sync.sidecar import sidecar_path
from curation_sync.synapse import SynapseAdapter
from tests.reliability.harness import DaemonProcess, report, write_config
from tests.synctools import (
    edit_remotely,
    edit_xlsx,
    make_adapter,
    make_engine,
    remote_rows,
    wait_until,
)

pytestmark = pytest.mark.reliability

RECORD_SET = "syn1003"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_VALUES = {
    "A001": '=HYPERLINK("http://evil.example/","click")',
    "A002": "+cmd|' /C calc'!A0",
    "A003": "-2+3",
    "A004": "@SUM(1+1)*cmd|' /C calc'!A0",
    "A005": "\t=1+1",
}
CR_VALUE = "\r=1+1"


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    made = make_adapter(sandbox, tmp_path / "daemon")
    yield made
    made.close()


def plant_formulas(
    sandbox: Sandbox, make_client: object, synapse_client: Synapse, tmp_path: Path
) -> None:
    """Another contributor stores formula-like text in every row on Synapse."""
    admin = make_client(sandbox.token("admin"))  # type: ignore[operator]
    _, rows = remote_rows(synapse_client, RECORD_SET)
    planted = [
        {**row, "genotype": HOSTILE_VALUES[row["animal_id"]], "tags": '["=1+1"]'}
        for row in rows
    ]
    planted[0]["sex"] = CR_VALUE
    edit_remotely(admin, RECORD_SET, tmp_path, planted)


def formula_cells(path: Path) -> list[str]:
    """Every cell of every sheet that a spreadsheet would run as a formula."""
    book = openpyxl.load_workbook(path)
    found = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f" or (
                    isinstance(cell.value, str)
                    and cell.value.startswith("=")
                    and cell.data_type != "s"
                ):
                    found.append(f"{sheet.title}!{cell.coordinate}")
    return found


def risky_csv_fields(path: Path) -> list[str]:
    """CSV fields a spreadsheet would run as a formula (numbers are fine)."""
    found = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            for field in row:
                if field.startswith(FORMULA_STARTS) and not _is_number(field):
                    found.append(f"line {line}: {field!r}")
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_formula_text_from_synapse_is_pulled_into_an_xlsx_workbook_as_text(
    sandbox: Sandbox,
    adapter: SynapseAdapter,
    make_client: object,
    synapse_client: Synapse,
    tmp_path: Path,
) -> None:
    engine = make_engine(adapter, tmp_path / "folder", "syn1000")
    engine.poll()
    workbook = engine.ctx.settings.folder.resolve() / "AnimalMetadata_Curation.xlsx"
    plant_formulas(sandbox, make_client, synapse_client, tmp_path)

    engine.poll()

    book = openpyxl.load_workbook(workbook)
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    by_key = {row[0].value: row for row in sheet.iter_rows(min_row=2) if row[0].value}
    for key, value in HOSTILE_VALUES.items():
        cell = by_key[key][header.index("genotype")]
        assert (cell.value, cell.data_type) == (value, "s")
    assert formula_cells(workbook) == []

    # A save of that workbook pushes the same text back, unchanged.
    edit_xlsx(workbook, {(2, "weight_g"): 30})
    result = engine.on_settled(workbook)
    assert result is not None
    assert result.outcome == "pushed"
    _, rows = remote_rows(synapse_client, RECORD_SET)
    assert {r["animal_id"]: r["genotype"] for r in rows} == HOSTILE_VALUES
    sidecar = sidecar_path(workbook)
    assert sidecar.exists()
    assert formula_cells(sidecar) == []


def test_formula_text_and_a_lone_cr_from_synapse_reach_csv_files_escaped_regression(
    sandbox: Sandbox,
    adapter: SynapseAdapter,
    make_client: object,
    synapse_client: Synapse,
    tmp_path: Path,
) -> None:
    engine = make_engine(
        adapter,
        tmp_path / "folder",
        "syn1000",
        new_workbook_suffix=".csv",
        sidecar_format="csv",
    )
    plant_formulas(sandbox, make_client, synapse_client, tmp_path)

    engine.poll()

    workbook = engine.ctx.settings.folder.resolve() / "AnimalMetadata_Curation.csv"
    assert workbook.exists()
    assert risky_csv_fields(workbook) == []

    # The escaped text reads back as the value on Synapse: a save pushes only
    # the cell that changed.
    data = workbook.read_bytes()  # bytes: a lone CR in a cell must survive
    workbook.write_bytes(data.replace(b"A002,female", b"A002,male"))
    result = engine.on_settled(workbook)
    assert result is not None
    assert (result.outcome, result.changed) == ("pushed", 1)
    _, rows = remote_rows(synapse_client, RECORD_SET)
    assert {r["animal_id"]: r["genotype"] for r in rows} == HOSTILE_VALUES
    sidecar = sidecar_path(workbook).with_suffix(".csv")
    assert sidecar.exists()
    assert risky_csv_fields(sidecar) == []


HOSTILE_NAMES = (
    "../../escape",
    "../",
    "a/b/c",
    "/etc/passwd",
    "..\\..\\windows",
    "CON",
    "com1.txt",
    "LPT9",
    "NUL.xlsx",
    "x" * 300,
    "\x00\x1b[31mred",
    " . ",
    "~$lock",
    ".hidden",
)


def test_hostile_task_names_give_workbooks_directly_inside_the_folder(
    sandbox: Sandbox,
    adapter: SynapseAdapter,
    make_client: object,
    tmp_path: Path,
) -> None:
    admin = make_client(sandbox.token("admin"))  # type: ignore[operator]
    demo_user = sandbox.info()["users"]["demo"]["id"]
    for name in HOSTILE_NAMES:
        CurationTask(
            project_id="syn1000",
            data_type=name,
            instructions="hostile name",
            task_properties=RecordBasedMetadataTaskProperties(record_set_id=RECORD_SET),
            assignee_principal_id=demo_user,
        ).store(synapse_client=admin)
    folder = tmp_path / "folder"
    engine = make_engine(adapter, folder, "syn1000")

    result = engine.poll()

    outside = [
        p
        for p in tmp_path.rglob("*.xlsx")
        if folder.resolve() not in p.resolve().parents
        and "client-" not in str(p)
        and "daemon" not in p.parts
    ]
    assert outside == []
    written = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix == ".xlsx" and ".validation" not in p.name
    )
    # Every task, including the two of the demo scenario, has its own workbook.
    assert len(written) == len(HOSTILE_NAMES) + 2, written
    assert all(len(name.encode()) <= 255 for name in written)
    assert all(not name.startswith((".", "~$")) for name in written)
    device_stems = {"CON", "COM1", "LPT9", "NUL", "PRN", "AUX"}
    assert not [n for n in written if n.split(".")[0].upper() in device_stems]
    assert [p.outcome for p in result.pulls].count("written") == len(written)


def test_the_token_never_appears_in_logs_state_files_or_reprs(
    sandbox: Sandbox, tmp_path: Path, synapse_client: Synapse
) -> None:
    token = sandbox.token("demo")
    folder = tmp_path / "folder"
    folder.mkdir()
    home = tmp_path / "home"
    config = write_config(sandbox, home, folder)

    # A run at DEBUG level: a pull, a push, a failing push with a traceback-worthy
    # server error, and a stop.
    run = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        workbook = folder / "AnimalMetadata_Curation.xlsx"
        wait_until(workbook.exists, 60, "the pull")
        wait_until(lambda: "Started curation-sync" in run.text(), 60, "the start")
        edit_xlsx(workbook, {(2, "genotype"): "HOM"})
        wait_until(lambda: "Pushed " in run.text(), 60, "the push")
        sandbox.faults.add(r".*", kind="status", status=500)
        edit_xlsx(workbook, {(3, "genotype"): "HET"})
        wait_until(lambda: "Could not push" in run.text(), 60, "the failed push")
        sandbox.faults.clear()
    finally:
        assert run.stop() == 0
    log = run.text()
    assert "DEBUG" in log

    leaks = []
    token_file = home / "token"
    for path in [*tmp_path.rglob("*")]:
        if not path.is_file() or path in (token_file, config):
            continue
        if "sandbox-data" in path.parts or "client-1" in path.parts:
            continue  # the server's own user table and the test's own client
        if token.encode() in path.read_bytes():
            leaks.append(str(path.relative_to(tmp_path)))
    assert leaks == []

    # Reprs and strings of what the daemon holds.
    loaded = load_config(config, environ={})
    daemon = Daemon(loaded)
    adapter = make_adapter(sandbox, tmp_path / "repr-home")
    try:
        engine = make_engine(adapter, tmp_path / "repr-folder", "syn1000")
        shown = [
            repr(loaded),
            str(loaded),
            repr(loaded.token),
            str(loaded.token),
            repr(daemon),
            repr(adapter),
            repr(engine),
            repr(engine.ctx),
            repr(vars(adapter)),
        ]
    finally:
        adapter.close()
    assert not [text for text in shown if token in text]
    report("security", files_checked=sum(1 for _ in tmp_path.rglob("*")), leaks=0)


def test_the_token_is_not_in_a_traceback_of_a_failed_login(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # A login against a server that refuses: the error and its traceback name the
    # endpoint but never the token.
    sandbox.faults.add(r".*", kind="status", status=500)
    with pytest.raises(CurationSyncError) as caught:
        make_adapter(sandbox, tmp_path / "home")
    text = "".join(traceback.format_exception(caught.value, chain=True))
    assert sandbox.token("demo") not in text
    assert sandbox.token("demo") not in repr(caught.value)


def test_the_sandbox_refuses_requests_without_a_valid_token(sandbox: Sandbox) -> None:
    url = f"{sandbox.endpoint}/repo/v1/entity/{RECORD_SET}"
    session = requests.Session()
    try:
        missing = session.get(url, timeout=10)
        wrong = session.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        empty = session.get(url, headers={"Authorization": "Bearer "}, timeout=10)
        basic = session.get(url, headers={"Authorization": "Basic eDp5"}, timeout=10)
        good = session.get(
            url,
            headers={"Authorization": f"Bearer {sandbox.token('demo')}"},
            timeout=10,
        )
    finally:
        session.close()
    assert [r.status_code for r in (missing, wrong, empty, basic)] == [401] * 4
    assert good.status_code == 200


def test_the_sandbox_binds_loopback_by_default(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "data", scenario="demo") as box:
        assert box.endpoint.startswith("http://127.0.0.1:")
        host = box._server.server_address[0]  # type: ignore[union-attr]
        assert host == "127.0.0.1"

    from curation_sync import cli

    assert _sandbox_host_default(cli) == "127.0.0.1"


def _sandbox_host_default(cli: object) -> str:
    """The `curation-sync sandbox --host` default, from the real parser."""
    parser = cli.build_parser()  # type: ignore[attr-defined]
    args = parser.parse_args(["sandbox"])
    return str(args.host)


def test_a_task_named_like_an_office_lock_file_gets_a_watched_workbook_regression(
    sandbox: Sandbox, adapter: SynapseAdapter, make_client: object, tmp_path: Path
) -> None:
    # `~$lock.xlsx` is what Excel calls its lock files, so the watcher ignored it.
    admin = make_client(sandbox.token("admin"))  # type: ignore[operator]
    CurationTask(
        project_id="syn1000",
        data_type="~$lock",
        instructions="a name like a lock file",
        task_properties=RecordBasedMetadataTaskProperties(record_set_id=RECORD_SET),
        assignee_principal_id=sandbox.info()["users"]["demo"]["id"],
    ).store(synapse_client=admin)
    engine = make_engine(adapter, tmp_path / "folder", "syn1000")

    engine.poll()

    [written] = [p for p in engine.ctx.settings.folder.iterdir() if "lock" in p.name]
    assert written.name == "_$lock.xlsx"
    assert engine.is_candidate(written)


@pytest.mark.parametrize(
    ("name", "expected"), [("NUL.xlsx", "NUL_.xlsx"), ("com1.txt", "com1_.txt")]
)
def test_a_device_name_with_an_extension_is_renamed_before_its_dot_regression(
    name: str, expected: str
) -> None:
    # Windows takes `NUL.xlsx_.xlsx` for the device NUL: the mark must come first.
    assert safe_name(name) == expected
