"""Throttle: many workbooks saved at once, under Synapse's per-user limits.

The sandbox enforces what Synapse does per user (3 concurrent connections, 600
requests a minute, 429 beyond either). A `curation-sync run` subprocess pulls
`CURATION_SYNC_THROTTLE_WORKBOOKS` workbooks (20 in CI, 200 for the full run), then
every one of them is saved at the same moment: all are pushed, and the sandbox never
had to answer 429. The time the pushes took is reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from curation_sync.sandbox import Sandbox
from tests.conftest import ConnectFactory
from tests.reliability.harness import (
    DaemonProcess,
    count,
    report,
    scenario_with_workbooks,
    write_config,
)
from tests.synctools import edit_xlsx, remote_rows, wait_until

pytestmark = pytest.mark.reliability

WORKBOOKS = count("THROTTLE_WORKBOOKS", 20)


def test_workbooks_saved_at_once_are_all_pushed_without_a_single_429(
    tmp_path: Path, connect: ConnectFactory
) -> None:
    with Sandbox(
        tmp_path / "sandbox", scenario=scenario_with_workbooks(WORKBOOKS)
    ) as sandbox:
        sandbox.throttle.enabled = True
        info = sandbox.info()
        demo_id = int(info["users"]["demo"]["id"])
        folder = tmp_path / "folder"
        folder.mkdir()
        config = write_config(sandbox, tmp_path / "home", folder)
        paths = [folder / f"Cohort_{n:03d}.xlsx" for n in range(1, WORKBOOKS + 1)]

        run = DaemonProcess(config, tmp_path / "daemon.log")
        try:
            pull_started = time.monotonic()
            wait_until(
                lambda: "Started curation-sync" in run.text(),
                60 + WORKBOOKS * 3,
                "the pulls of every workbook",
            )
            pulled = time.monotonic() - pull_started
            assert all(path.exists() for path in paths)

            # Everyone saves at once.
            pushed_before = run.text().count("Pushed Cohort_")
            started = time.monotonic()
            for number, path in enumerate(paths, start=1):
                edit_xlsx(path, {(2, "genotype"): f"G{number}"})
            wait_until(
                lambda: run.text().count("Pushed Cohort_") - pushed_before >= WORKBOOKS,
                120 + WORKBOOKS * 6,
                "every push",
            )
            took = time.monotonic() - started
        finally:
            code = run.stop()
        assert code == 0

        entries = [e for e in sandbox.request_log.entries() if e.user_id == demo_id]
        throttled = [e for e in entries if e.status == 429]
        check = connect(sandbox, sandbox.token("admin"))
        for number in (1, WORKBOOKS):
            record_set = info["record_sets"][f"extra_{number}"]
            _, rows = remote_rows(check, record_set)
            genotype = {r["animal_id"]: r["genotype"] for r in rows}["A001"]
            assert genotype == f"G{number}"

    assert throttled == [], f"{len(throttled)} answers were 429: {throttled[:3]}"
    report(
        "throttle",
        workbooks=WORKBOOKS,
        requests=len(entries),
        answers_429=len(throttled),
        seconds_to_pull_all=f"{pulled:.0f}",
        seconds_to_push_all=f"{took:.0f}",
        requests_per_minute=f"{len(entries) / max((pulled + took) / 60, 1e-9):.0f}",
    )
