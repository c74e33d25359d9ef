"""Bad requests, permissions and paging answered with the real server's statuses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from synapseclient import Synapse
from synapseclient.core.exceptions import (
    SynapseAuthenticationError,
    SynapseHTTPError,
)
from synapseclient.models import (
    CurationTask,
    Grid,
    RecordBasedMetadataTaskProperties,
    RecordSet,
    TaskState,
)

from curation_sync.sandbox import Sandbox
from curation_sync.sandbox.scenario import load_scenario

ClientFactory = Callable[..., Synapse]


def _raw(
    sandbox: Sandbox, path: str, token: str | None = None
) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    request = urllib.request.Request(sandbox.endpoint + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return (
                answer.status,
                json.loads(answer.read()),
                answer.headers["Content-Type"],
            )
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        content_type = error.headers["Content-Type"]
        error.close()
        return error.code, body, content_type


def test_unknown_ids_answer_404_with_the_servers_reason(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    with pytest.raises(SynapseHTTPError, match="404 Client Error: Task not found: 999"):
        CurationTask(task_id=999).get()
    with pytest.raises(SynapseHTTPError, match="404 Client Error: Entity syn9999"):
        RecordSet(id="syn9999").get()
    with pytest.raises(
        SynapseHTTPError, match="404 Client Error: Grid session not found"
    ):
        Grid(session_id="123").get()


def test_a_stale_status_etag_answers_412_and_a_fresh_one_succeeds(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    task = CurationTask(task_id=sandbox.info()["tasks"]["animal_task"])
    stale = task.get_status()
    task.set_task_state(state=TaskState.IN_PROGRESS)

    with pytest.raises(SynapseHTTPError, match="412 Client Error: The task status was"):
        task.update_status(curation_task_status=stale)

    fresh = task.get_status()
    assert fresh.etag != stale.etag
    fresh.state = TaskState.IN_REVIEW
    answered = task.update_status(curation_task_status=fresh)
    assert answered.state == "IN_REVIEW"
    assert answered.etag != fresh.etag


def test_a_stale_task_etag_answers_412(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    task = CurationTask(task_id=sandbox.info()["tasks"]["animal_task"]).get()
    # Status and task share one etag: a status change makes the fetched task stale.
    task.set_task_state(state=TaskState.IN_PROGRESS)
    task.instructions = "Changed instructions."

    with pytest.raises(SynapseHTTPError, match="412 Client Error: The curation task"):
        task.store()


def _record_grid(sandbox: Sandbox) -> Grid:
    return CurationTask(
        task_id=sandbox.info()["tasks"]["animal_task"]
    ).create_grid_session()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(
            "animal_id,genotype\nA001,KO\n,WT\n",
            r"400 Client Error: The upsert key cannot have null or empty values\.",
            id="blank-key",
        ),
        pytest.param(
            "animal,genotype\nA001,KO\n",
            'upsert key column "animal_id" does not exist in the CSV schema',
            id="no-key-column",
        ),
        pytest.param("\n", "at least one column header", id="empty-file"),
    ],
)
def test_a_bad_import_is_refused_with_the_servers_reason_and_changes_nothing(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path, content: str, reason: str
) -> None:
    grid = _record_grid(sandbox)
    path = tmp_path / "bad.csv"
    path.write_text(content)

    with pytest.raises(SynapseHTTPError, match=reason):
        grid.import_csv(path=str(path))

    csv_path = grid.download_csv(destination=str(tmp_path), file_name="after.csv")
    assert '"A001","male","WT"' in Path(csv_path).read_text()


def test_import_inserts_duplicate_new_keys_and_ignores_unknown_columns(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path
) -> None:
    grid = _record_grid(sandbox)
    path = tmp_path / "dupes.csv"
    path.write_text(
        "animal_id,genotype,colour\nA100,WT,brown\nA100,KO,white\nA001,HET,grey\n"
    )

    grid.import_csv(path=str(path))

    csv_path = grid.download_csv(destination=str(tmp_path), file_name="after.csv")
    text = Path(csv_path).read_text()
    lines = text.splitlines()
    assert lines[0] == (
        '"animal_id","sex","genotype","weight_g","age_weeks","birth_date","tags"'
    )
    assert [line.split(",")[0] for line in lines[1:]] == [
        '"A001"',
        '"A002"',
        '"A003"',
        '"A004"',
        '"A005"',
        '"A100"',
        '"A100"',
    ]
    assert lines[1].startswith('"A001","male","HET"')
    assert "colour" not in text
    assert "brown" not in text


def test_a_bad_token_fails_login_with_an_authentication_error(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    with pytest.raises(SynapseAuthenticationError):
        make_client("not-a-real-token")


def test_every_rest_path_needs_a_token_and_errors_are_json_with_a_reason(
    sandbox: Sandbox,
) -> None:
    status, body, content_type = _raw(sandbox, "/repo/v1/userProfile")
    assert status == 401
    assert body["reason"] == "Missing or invalid access token."
    assert content_type.startswith("application/json")

    status, body, _ = _raw(sandbox, "/curation/task/101", "wrong")
    assert status == 401

    status, body, content_type = _raw(
        sandbox, "/curation/task/101", sandbox.token("demo")
    )
    assert status == 200
    assert content_type.startswith("application/json")

    status, body, _ = _raw(sandbox, "/s3/download/5001?X-Amz-Signature=x")
    assert status == 403
    assert body["reason"] == "Request has expired"


def test_a_non_member_gets_403_on_the_projects_tasks_and_record_sets(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    info = sandbox.info()
    outsider = make_client(sandbox.token("outsider"))

    with pytest.raises(SynapseHTTPError, match="403 Client Error: You lack READ"):
        list(
            CurationTask.list(
                project_id=info["projects"]["project"], synapse_client=outsider
            )
        )
    with pytest.raises(SynapseHTTPError, match="403"):
        CurationTask(task_id=info["tasks"]["animal_task"]).get(synapse_client=outsider)
    with pytest.raises(SynapseHTTPError, match="403"):
        RecordSet(id=info["record_sets"]["animals"]).get(synapse_client=outsider)
    assert list(CurationTask.list(project_id=None, synapse_client=outsider)) == []


def test_only_assignees_or_project_editors_may_change_a_task_state(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    info = sandbox.info()
    viewer = make_client(sandbox.token("viewer"))
    admin = make_client(sandbox.token("admin"))
    animal_task = CurationTask(task_id=info["tasks"]["animal_task"])

    with pytest.raises(
        SynapseHTTPError, match="403 Client Error: You must have UPDATE"
    ):
        animal_task.set_task_state(state="COMPLETED", synapse_client=viewer)

    review = CurationTask(
        project_id=info["projects"]["project"],
        data_type="AnimalMetadata_Review",
        instructions="Review the animal metadata.",
        assignee_principal_id=info["users"]["viewer"]["id"],
        task_properties=RecordBasedMetadataTaskProperties(
            record_set_id=info["record_sets"]["animals"]
        ),
    ).store(synapse_client=admin)
    review.set_task_state(state="IN_REVIEW", synapse_client=viewer)

    assert review.get_status(synapse_client=admin).state == "IN_REVIEW"
    assert (
        review.get_status(synapse_client=admin).last_updated_by
        == (info["users"]["viewer"]["id"])
    )
    with pytest.raises(SynapseHTTPError, match="403 Client Error: You lack CREATE"):
        CurationTask(
            project_id=info["projects"]["project"],
            data_type="Forbidden",
            instructions="x",
            task_properties=RecordBasedMetadataTaskProperties(
                record_set_id=info["record_sets"]["animals"]
            ),
        ).store(synapse_client=viewer)


def test_task_listing_pages_by_50_and_the_last_page_has_no_token(
    tmp_path: Path, connect: ClientFactory
) -> None:
    scenario = {**load_scenario("demo"), "extra_tasks": 60}
    with Sandbox(tmp_path / "data", scenario=scenario) as sandbox:
        sandbox.request_log.capture_bodies = True
        client = connect(sandbox, sandbox.token("demo"))
        project = sandbox.info()["projects"]["project"]
        tasks = list(CurationTask.list(project_id=project, synapse_client=client))
        mine = list(
            CurationTask.list(
                project_id=project, assigned_to_me=True, synapse_client=client
            )
        )
        pages = [
            entry.body
            for entry in sandbox.request_log.entries()
            if entry.path == "/curation/task/list"
        ]

    assert len(tasks) == 62
    assert len({task.task_id for task in tasks}) == 62
    assert [task.task_id for task in tasks] == sorted(task.task_id for task in tasks)
    assert len(mine) == 2
    assert [len(page["page"]) for page in pages] == [50, 12, 2]
    assert pages[0]["nextPageToken"] == "50a50"
    assert "nextPageToken" not in pages[1]
    assert "nextPageToken" not in pages[2]


def test_a_client_killed_mid_request_leaves_no_traceback(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import struct
    import time
    import urllib.parse

    where = urllib.parse.urlsplit(sandbox.endpoint)
    client = socket.create_connection((where.hostname, where.port))
    client.sendall(b"GET /repo/v1/version HTTP/1.1\r\nHost: sandbox\r\n")
    time.sleep(0.2)
    # SO_LINGER of 0 makes close() reset the connection, as a killed process does.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    time.sleep(0.5)

    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{sandbox.endpoint}/repo/v1/userProfile")
    refused.value.close()
    assert refused.value.code == 401
