"""Faults: Synapse misbehaving at 20% of requests while a person keeps saving.

A daemon (in this process, with its real watcher, scheduler and client) watches 5
workbooks. The sandbox answers about a fifth of all requests with a 5xx, a 429, a
slow answer or a reset connection, and fails a fifth of the async jobs it starts.
A scripted person makes `CURATION_SYNC_SAVES` saves (40 in CI, 200 for the full
run) round-robin over the workbooks: each save adds one row and sets a counter
cell. Afterwards every added row is on Synapse exactly once, each counter holds the
last save's value, the counters never went backwards from one version to the next,
and the daemon is still running.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import openpyxl
import pytest
from synapseclient import Synapse
from synapseclient.models import RecordSet

from curation_sync.sandbox import Sandbox
from tests.conftest import ConnectFactory
from tests.reliability.harness import (
    InProcessDaemon,
    count,
    report,
    scenario_with_workbooks,
    write_config,
)
from tests.synctools import remote_rows, wait_until

pytestmark = pytest.mark.reliability

WORKBOOKS = 5
SAVES = count("SAVES", 40)
TRANSIENT = (0, 429, 500, 502, 503, 504)


def save_like_excel(path: Path, number: int) -> None:
    """One save: a new row `S<number>` and the A001 counter set to `number`.

    Written to a temporary file and renamed over the workbook, as Excel does.
    """
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    row = {"animal_id": f"S{number:04d}", "genotype": "WT", "sex": "male"}
    sheet.append([row.get(str(name)) for name in header])
    for cells in sheet.iter_rows(min_row=2):
        if cells[header.index("animal_id")].value == "A001":
            cells[header.index("age_weeks")].value = number
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix="~tmp", suffix=".tmp")
    os.close(handle)
    book.save(temporary)
    os.replace(temporary, path)


def add_faults(sandbox: Sandbox) -> None:
    faults = sandbox.faults
    faults.add(r"/async/start", "job_fail", rate=0.2)
    faults.add(r".*", "status", status=503, rate=0.06)
    faults.add(r".*", "status", status=500, rate=0.04)
    faults.add(r".*", "status", status=502, rate=0.02)
    faults.add(r".*", "status", status=429, rate=0.05)
    faults.add(r".*", "delay", delay_seconds=0.5, rate=0.03)
    faults.add(r".*", "reset", rate=0.03)


def versions_of(client: Synapse, record_set_id: str, last: int) -> list[list[dict]]:
    """The rows of every version of a record set, oldest first."""
    import csv

    found = []
    for version in range(1, last + 1):
        entity = RecordSet(id=record_set_id, version_number=version).get(
            synapse_client=client
        )
        with open(entity.path, encoding="utf-8", newline="") as handle:
            found.append(list(csv.DictReader(handle)))
    return found


def test_every_save_lands_exactly_once_and_in_order_through_faults(
    tmp_path: Path, connect: ConnectFactory
) -> None:
    scenario = scenario_with_workbooks(WORKBOOKS)
    with Sandbox(tmp_path / "sandbox", scenario=scenario) as sandbox:
        info = sandbox.info()
        record_sets = {
            f"Cohort_{n:03d}.xlsx": info["record_sets"][f"extra_{n}"]
            for n in range(1, WORKBOOKS + 1)
        }
        folder = tmp_path / "folder"
        folder.mkdir()
        config = write_config(
            sandbox,
            tmp_path / "home",
            folder,
            poll=2.0,
            extra="retry_initial_seconds = 1.0\nretry_max_seconds = 8.0\n",
        )
        with InProcessDaemon(config) as running:
            paths = [folder / name for name in record_sets]
            wait_until(lambda: all(p.exists() for p in paths), 90, "the pulls")

            # One clean save per workbook: what a push costs without faults.
            before = len(sandbox.request_log)
            for number, path in enumerate(paths, start=1):
                save_like_excel(path, number)
            wait_until(
                lambda: running.log.count("Pushed Cohort_") >= WORKBOOKS,
                90,
                "the clean pushes",
            )
            clean_cost = (len(sandbox.request_log) - before) / WORKBOOKS

            add_faults(sandbox)
            started = time.monotonic()
            faulty_from = len(sandbox.request_log)
            saved: dict[str, list[int]] = {p.name: [n] for n, p in enumerate(paths, 1)}
            for number in range(WORKBOOKS + 1, WORKBOOKS + SAVES + 1):
                path = paths[number % WORKBOOKS]
                save_like_excel(path, number)
                saved[path.name].append(number)
                time.sleep(0.25)

            # The edits must land while the faults go on (the poll retries the
            # outbox); the checking client sees the same faults, so a failed
            # look is just another look.
            check = connect(sandbox, sandbox.token("admin"))

            def landed() -> bool:
                for name, record_set in record_sets.items():
                    try:
                        _, rows = remote_rows(check, record_set)
                    except Exception:  # noqa: BLE001 - a fault hit the check itself
                        return False
                    by_key = {r["animal_id"]: r for r in rows}
                    if by_key.get("A001", {}).get("age_weeks") != str(saved[name][-1]):
                        return False
                return True

            deadline = time.monotonic() + 600
            while not landed():
                assert time.monotonic() < deadline, "the last saves never landed"
                time.sleep(1.0)
            took = time.monotonic() - started
            fired = {
                f"{r.kind}{r.status if r.kind == 'status' else ''}": r.fired
                for r in sandbox.faults.rules()
            }
            sandbox.faults.clear()
            window = len(sandbox.request_log) - faulty_from
            demo_id = int(info["users"]["demo"]["id"])
            faulty = [
                e
                for e in sandbox.request_log.entries()[faulty_from:]
                if e.user_id in (demo_id, None)
            ]
            pushes = running.log.count("Pushed Cohort_")
            retried_pushes = running.log.count("Could not push")
            unexpected = running.log.count("Unexpected failure")
            assert running.daemon.folders, "the daemon stopped its folders"
            wait_until(
                lambda: not running.engine.ctx.state.outbox("push"),
                120,
                "the outbox to drain",
            )

        # Every save's row exactly once, counters only moving forward.
        for name, record_set in record_sets.items():
            version, rows = remote_rows(check, record_set)
            keys = [r["animal_id"] for r in rows]
            assert len(keys) == len(set(keys)), f"duplicated rows in {name}"
            wanted = {f"S{n:04d}" for n in saved[name]}
            assert wanted <= set(keys), f"lost saves in {name}: {wanted - set(keys)}"
            counters = [
                int(next(r for r in rows_v if r["animal_id"] == "A001")["age_weeks"])
                for rows_v in versions_of(check, record_set, version)[1:]
            ]  # version 1 is the seeded record set, before any save
            assert counters == sorted(counters), f"{name} went back: {counters}"

    faulted = [e for e in faulty if e.status in TRANSIENT]
    injected = sum(fired.values())
    extra = len(faulty) - clean_cost * pushes
    assert unexpected == 0
    report(
        "faults",
        saves=SAVES,
        workbooks=WORKBOOKS,
        daemon_requests=len(faulty),
        faulted_answers=len(faulted),
        faults_injected=injected,
        fault_share=f"{injected / max(window, 1):.0%}",
        pushes=pushes,
        failed_push_attempts=retried_pushes,
        faults_fired=fired,
        clean_requests_per_push=f"{clean_cost:.1f}",
        extra_requests=f"{extra:.0f}",
        seconds=f"{took:.0f}",
    )
