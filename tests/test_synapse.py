"""The adapter over the real synapseclient, against the sandbox."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation_sync.errors import RemoteError, TransientRemoteError
from curation_sync.sandbox import Sandbox
from curation_sync.synapse import Endpoints, SynapseAdapter
from curation_sync.tasks import TaskKind, TaskState
from curation_sync.throttle import RequestLimiter
from tests.synctools import (
    FAST_LIMITS,
    adapter_for,
    make_adapter,
)


@pytest.fixture
def adapter(sandbox: Sandbox, tmp_path: Path) -> Iterator[SynapseAdapter]:
    yield from adapter_for(sandbox, tmp_path / "daemon")


def test_the_adapter_logs_in_and_never_shows_its_token(
    adapter: SynapseAdapter, sandbox: Sandbox
) -> None:
    token = sandbox.token("demo")

    shown = repr(adapter) + str(vars(adapter))

    assert adapter.user_id == sandbox.info()["users"]["demo"]["id"]
    assert token not in shown


def test_a_bad_token_is_a_remote_error_that_does_not_repeat_the_token(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "synapseConfig"
    config.write_text("")

    with pytest.raises(RemoteError) as raised:
        SynapseAdapter(
            sandbox.endpoint,
            "not-a-real-token-1234",
            cache_dir=tmp_path / "cache",
            config_path=config,
            limits=FAST_LIMITS,
        )

    assert "log in" in str(raised.value)
    assert "not-a-real-token-1234" not in str(raised.value)
    assert not isinstance(raised.value, TransientRemoteError)


def test_tasks_statuses_record_sets_and_schemas_come_back_as_plain_values(
    adapter: SynapseAdapter, sandbox: Sandbox
) -> None:
    info = sandbox.info()
    project = info["projects"]["project"]

    tasks = {task.task_id: task for task in adapter.list_tasks(project)}
    record_task = tasks[info["tasks"]["animal_task"]]
    status = adapter.get_status(record_task.task_id)
    record_set, rows = adapter.record_rows(info["record_sets"]["animals"])

    assert record_task.kind is TaskKind.RECORD
    assert record_task.record_set_id == info["record_sets"]["animals"]
    assert tasks[info["tasks"]["sample_task"]].kind is TaskKind.FILE
    assert status.state is TaskState.NOT_STARTED
    assert record_set.upsert_key == ("animal_id",)
    assert rows.columns[0] == "animal_id"
    assert len(rows.rows) == 5


def test_an_unreachable_server_is_a_transient_error_within_the_retry_bound(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    made = make_adapter(sandbox, tmp_path / "daemon")
    task_id = sandbox.info()["tasks"]["animal_task"]
    sandbox.stop()

    with pytest.raises(TransientRemoteError, match="try again later"):
        made.get_status(task_id)
    made.close()
    sandbox.start()


def test_a_server_answering_503_is_a_transient_error(
    adapter: SynapseAdapter, sandbox: Sandbox
) -> None:
    sandbox.faults.add(r"/curation/task/\d+/status", kind="status", status=503)

    with pytest.raises(TransientRemoteError):
        adapter.get_status(sandbox.info()["tasks"]["animal_task"])

    assert sandbox.request_log.count("GET", r"/curation/task/\d+/status", 503) >= 2


def test_a_short_429_burst_is_absorbed_by_the_clients_own_retries(
    adapter: SynapseAdapter, sandbox: Sandbox
) -> None:
    sandbox.faults.add(r"/curation/task/\d+/status", kind="status", status=429, count=2)

    status = adapter.get_status(sandbox.info()["tasks"]["animal_task"])

    assert status.state is TaskState.NOT_STARTED


def test_an_unknown_grid_session_is_none_not_an_error(adapter: SynapseAdapter) -> None:
    assert adapter.grid_session("99999999") is None


def test_calls_from_inside_a_running_event_loop_are_refused(
    adapter: SynapseAdapter, sandbox: Sandbox
) -> None:
    task_id = sandbox.info()["tasks"]["animal_task"]

    async def inside() -> None:
        adapter.get_status(task_id)

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(inside())


def test_the_client_prints_nothing_and_leaves_no_thread_behind(
    sandbox: Sandbox,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = {thread.name for thread in threading.enumerate()}
    made = make_adapter(sandbox, tmp_path / "daemon")
    task = next(
        t
        for t in made.list_tasks(sandbox.info()["projects"]["project"])
        if t.kind is TaskKind.RECORD
    )

    with caplog.at_level(logging.DEBUG, logger="curation_sync.synapse.client"):
        session = made.create_grid_session(task)
        made.import_rows(session.session_id, ["animal_id", "sex"], [["A001", "female"]])
        made.synchronize(session.session_id)
        made.validation_report(task.record_set_id or "")
    made.close()

    printed = capfd.readouterr()
    assert printed.out == ""
    assert printed.err == ""
    assert any(r.name == "curation_sync.synapse.client" for r in caplog.records)
    after = {thread.name for thread in threading.enumerate()}
    assert not {name for name in after - before if "tqdm" in name or "asyncio" in name}


def test_every_call_goes_through_the_limiter(sandbox: Sandbox, tmp_path: Path) -> None:
    limiter = RequestLimiter(max_concurrent=3, max_per_minute=600)
    config = tmp_path / "synapseConfig"
    config.write_text("")
    made = SynapseAdapter(
        Endpoints.from_base(sandbox.endpoint),
        sandbox.token("demo"),
        cache_dir=tmp_path / "cache",
        config_path=config,
        limiter=limiter,
        limits=FAST_LIMITS,
    )
    task_id = sandbox.info()["tasks"]["animal_task"]
    threads = [
        threading.Thread(target=made.get_status, args=(task_id,)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    made.close()

    assert 1 <= limiter.peak_active <= 3
    assert limiter.requests_in_window() == 9  # the login and eight calls


def test_a_reset_connection_is_a_transient_error(
    adapter: SynapseAdapter, sandbox: Sandbox
) -> None:
    sandbox.faults.add(r"/curation/task/\d+/status", kind="reset")

    with pytest.raises(TransientRemoteError):
        adapter.get_status(sandbox.info()["tasks"]["animal_task"])
