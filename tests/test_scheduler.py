"""The poller on a real APScheduler, driving a real engine against the sandbox."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation_sync.errors import TransientRemoteError
from curation_sync.sandbox import Sandbox
from curation_sync.scheduler import Poller, run_job
from curation_sync.synapse import SynapseAdapter
from tests.synctools import (
    adapter_for,
    make_engine,
    wait_until,
)


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    yield from adapter_for(sandbox, tmp_path / "daemon")


def test_the_poll_job_writes_the_workbooks_of_the_users_tasks(
    adapter: SynapseAdapter, sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    engine = make_engine(adapter, folder, sandbox.info()["projects"]["project"])
    poller = Poller([(0.2, engine)], retry_interval_seconds=0.2)

    poller.start()
    try:
        wait_until(
            lambda: (
                (folder / "AnimalMetadata_Curation.xlsx").exists()
                and (folder / "SampleFiles_Curation.xlsx").exists()
            ),
            30,
            "the first poll to pull both tasks",
        )
    finally:
        poller.stop()

    assert not poller.is_running


def test_a_failing_poll_logs_one_warning_per_run_and_runs_again(
    adapter: SynapseAdapter,
    sandbox: Sandbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "folder"
    engine = make_engine(adapter, folder, sandbox.info()["projects"]["project"])
    sandbox.faults.add(r"/curation/task/list", kind="status", status=503)
    poller = Poller([(0.3, engine)], retry_interval_seconds=60)

    def warnings() -> list[logging.LogRecord]:
        return [
            record
            for record in caplog.records
            if record.name == "curation_sync.scheduler"
            and record.levelname == "WARNING"
        ]

    with caplog.at_level(logging.WARNING, logger="curation_sync"):
        poller.start()
        try:
            wait_until(lambda: len(warnings()) >= 2, 60, "two failed polls")
            sandbox.faults.clear()
            wait_until(
                lambda: (folder / "AnimalMetadata_Curation.xlsx").exists(),
                60,
                "a poll after the outage",
            )
        finally:
            poller.stop()

    first = warnings()[0].getMessage()
    assert "The poll of" in first
    assert "runs again" in first
    assert "Traceback" not in first


def test_run_job_keeps_going_after_an_unexpected_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise KeyError("boom")

    def offline() -> None:
        raise TransientRemoteError("Synapse did not answer.")

    with caplog.at_level(logging.WARNING, logger="curation_sync.scheduler"):
        assert not run_job("The broken job", broken)
        assert not run_job("The offline job", offline)
        assert run_job("The fine job", lambda: None)

    levels = [
        (record.levelname, record.exc_info is not None) for record in caplog.records
    ]
    assert levels == [("ERROR", True), ("WARNING", False)]
