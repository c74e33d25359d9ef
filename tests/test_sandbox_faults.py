"""Fault injection makes the real client retry; the admin paths steer a sandbox."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from synapseclient import Synapse
from synapseclient import client as synapse_client_module
from synapseclient.core.exceptions import SynapseError, SynapseHTTPError
from synapseclient.models import CurationTask, Grid

from curation_sync.sandbox import Sandbox

ClientFactory = Callable[..., Synapse]


def _admin_call(
    sandbox: Sandbox, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sandbox.endpoint + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token or sandbox.token('admin')}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        answer_body = json.loads(error.read())
        error.close()
        return error.code, answer_body


def test_503s_and_429s_are_retried_until_the_call_succeeds(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    task_id = sandbox.info()["tasks"]["animal_task"]
    sandbox.faults.add(r"^/curation/task/\d+/status$", status=503, count=3)
    sandbox.faults.add(r"^/curation/task/\d+$", status=429, count=2, method="GET")

    status = CurationTask(task_id=task_id).get_status()
    task = CurationTask(task_id=task_id).get()

    assert status.state == "NOT_STARTED"
    assert task.data_type == "AnimalMetadata_Curation"
    log = sandbox.request_log
    assert log.count("GET", r"/status$", status=503) == 3
    assert log.count("GET", r"/status$", status=200) == 1
    assert log.count("GET", rf"^/curation/task/{task_id}$", status=429) == 2
    assert log.count("GET", rf"^/curation/task/{task_id}$", status=200) == 1


def test_a_reset_connection_and_a_slow_answer_are_survived(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    task_id = sandbox.info()["tasks"]["animal_task"]
    sandbox.faults.add(r"/status$", kind="reset", count=1)
    sandbox.faults.add(r"/status$", kind="delay", delay_seconds=0.3, count=1)

    status = CurationTask(task_id=task_id).get_status()

    assert status.task_id == task_id
    assert sandbox.request_log.count("GET", r"/status$", status=0) == 1
    assert sandbox.request_log.count("GET", r"/status$", status=200) == 1


def test_a_rate_rule_fires_on_about_that_share_of_requests(sandbox: Sandbox) -> None:
    rule = sandbox.faults.add(r"^/nowhere$", rate=0.5)
    fired = sum(sandbox.faults.pick("GET", "/nowhere") is not None for _ in range(400))
    assert rule.fired == fired
    assert 120 < fired < 280


def test_an_injected_job_failure_raises_a_synapse_error(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    record_set_id = sandbox.info()["record_sets"]["animals"]
    sandbox.faults.add(r"^/grid/session/async/start$", kind="job_fail", count=1)

    with pytest.raises(SynapseError, match="Injected job failure"):
        Grid(record_set_id=record_set_id).create()
    grid = Grid(record_set_id=record_set_id).create()

    assert grid.session_id


def test_jobs_can_answer_processing_polls_before_their_result(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    sandbox.set_job_polls(1)
    Grid(record_set_id=sandbox.info()["record_sets"]["animals"]).create()

    assert sandbox.request_log.count("GET", r"^/grid/session/async/get/", 202) == 1
    assert sandbox.request_log.count("GET", r"^/grid/session/async/get/", 200) == 1


def test_admin_paths_add_list_and_clear_faults_for_admins_only(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    status, body = _admin_call(
        sandbox,
        "POST",
        "/sandbox/faults",
        {"path": "^/userProfile$", "status": 500, "count": 1},
    )
    assert status == 201
    assert body["count"] == 1

    refused, reason = _admin_call(
        sandbox, "GET", "/sandbox/faults", token=sandbox.token("demo")
    )
    assert refused == 403
    assert "administrator" in reason["reason"]

    listed = _admin_call(sandbox, "GET", "/sandbox/faults")[1]["faults"]
    assert [rule["path"] for rule in listed] == ["^/userProfile$"]

    synapse_client.restGET("/userProfile")
    log = _admin_call(sandbox, "GET", "/sandbox/requests")[1]["requests"]
    assert [entry["status"] for entry in log if entry["path"] == "/userProfile"][
        -2:
    ] == [
        500,
        200,
    ]

    assert _admin_call(sandbox, "DELETE", "/sandbox/faults")[1] == {"faults": []}
    assert sandbox.faults.rules() == []
    bad = _admin_call(sandbox, "POST", "/sandbox/faults", {"kind": "explode"})
    assert bad[0] == 400


def test_the_throttle_answers_429_like_synapse_when_switched_on(
    sandbox: Sandbox, synapse_client: Synapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client retries 429s; one second of retrying is enough to see them.
    monkeypatch.setitem(
        synapse_client_module.STANDARD_RETRY_ASYNC_PARAMS,
        "retry_max_wait_before_failure",
        1,
    )
    sandbox.throttle.max_per_minute = 3
    _admin_call(sandbox, "PUT", "/sandbox/settings", {"throttle": True})
    task = CurationTask(task_id=sandbox.info()["tasks"]["animal_task"])

    for _ in range(3):
        task.get_status()
    with pytest.raises(SynapseHTTPError, match="429 Client Error: Requests are too"):
        task.get_status()

    assert sandbox.request_log.count("GET", r"/status$", status=429) >= 1


def test_the_throttle_refuses_a_fourth_concurrent_request_of_one_user(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    task = CurationTask(task_id=sandbox.info()["tasks"]["animal_task"])
    sandbox.faults.add(r"/status$", kind="delay", delay_seconds=1.0, count=4)
    sandbox.throttle.enabled = True

    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(lambda _: task.get_status().state, range(4)))

    # The refused request is retried by the client and then succeeds.
    assert states == ["NOT_STARTED"] * 4
    assert sandbox.request_log.count("GET", r"/status$", status=429) >= 1
    assert sandbox.request_log.count("GET", r"/status$", status=200) == 4
