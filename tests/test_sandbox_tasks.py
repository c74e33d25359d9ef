"""Task and record set administration in the sandbox, through the real client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from synapseclient import Synapse
from synapseclient.core.exceptions import SynapseHTTPError
from synapseclient.models import (
    CurationTask,
    Grid,
    RecordBasedMetadataTaskProperties,
    RecordSet,
    SyncType,
)

from curation_sync.sandbox import Sandbox

ClientFactory = Callable[..., Synapse]
RECORD_BASED = (
    "org.sagebionetworks.repo.model.curation.metadata.RecordBasedMetadataTaskProperties"
)


def test_tasks_are_created_updated_and_deleted_with_the_servers_rules(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    info = sandbox.info()
    admin = make_client(sandbox.token("admin"))
    properties = RecordBasedMetadataTaskProperties(
        record_set_id=info["record_sets"]["animals"]
    )
    task = CurationTask(
        project_id=info["projects"]["project"],
        data_type="Weights_Curation",
        instructions="Weigh every animal.",
        task_properties=properties,
    ).store(synapse_client=admin)

    def post_task(data_type: str, record_set_id: str) -> None:
        body = {
            "projectId": info["projects"]["project"],
            "dataType": data_type,
            "taskProperties": {
                "concreteType": RECORD_BASED,
                "recordSetId": record_set_id,
            },
        }
        admin.restPOST("/curation/task", body=json.dumps(body))

    with pytest.raises(SynapseHTTPError, match="data type already exists"):
        post_task("Weights_Curation", info["record_sets"]["animals"])
    with pytest.raises(SynapseHTTPError, match="The recordSetId must be a RecordSet"):
        post_task("Wrong", info["folders"]["records"])

    task.instructions = "Weigh every animal twice."
    task = task.store(synapse_client=admin)
    assert CurationTask(task_id=task.task_id).get(
        synapse_client=admin
    ).instructions == ("Weigh every animal twice.")

    task.delete(synapse_client=admin)
    with pytest.raises(SynapseHTTPError, match="404 Client Error: Task not found"):
        CurationTask(task_id=task.task_id).get(synapse_client=admin)


def test_changing_the_authorization_mode_unlinks_the_active_grid_session(
    sandbox: Sandbox, synapse_client: Synapse, make_client: ClientFactory
) -> None:
    task_id = sandbox.info()["tasks"]["animal_task"]
    CurationTask(task_id=task_id).create_grid_session()
    admin = make_client(sandbox.token("admin"))
    task = CurationTask(task_id=task_id).get(synapse_client=admin)
    assert task.get_status(synapse_client=admin).execution_details.active_session_id

    task.task_properties.suggested_authorization_mode = "SOURCE_BENEFACTOR"
    task.store(synapse_client=admin)

    details = task.get_status(synapse_client=admin).execution_details
    assert getattr(details, "active_session_id", None) is None


def test_grids_and_jobs_belong_to_the_user_who_owns_them(
    sandbox: Sandbox, synapse_client: Synapse, make_client: ClientFactory
) -> None:
    grid = Grid(record_set_id=sandbox.info()["record_sets"]["animals"]).create()
    viewer = make_client(sandbox.token("viewer"))

    with pytest.raises(SynapseHTTPError, match="403 Client Error: You are not auth"):
        Grid(session_id=grid.session_id).get(synapse_client=viewer)

    token = [
        e.path
        for e in sandbox.request_log.entries()
        if e.path.startswith("/grid/session/async/get/")
    ][-1].rsplit("/", 1)[1]
    request = urllib.request.Request(
        f"{sandbox.endpoint}/grid/session/async/get/{token}",
        headers={"Authorization": f"Bearer {sandbox.token('viewer')}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert "started a job" in json.loads(refused.value.read())["reason"]
    refused.value.close()


def test_a_new_record_set_version_from_an_admin_is_pulled_into_a_grid(
    sandbox: Sandbox,
    synapse_client: Synapse,
    make_client: ClientFactory,
    tmp_path: Path,
) -> None:
    record_set_id = sandbox.info()["record_sets"]["animals"]
    grid = Grid(record_set_id=record_set_id).create()
    admin = make_client(sandbox.token("admin"))
    record_set = RecordSet(id=record_set_id).get(synapse_client=admin)
    upload = tmp_path / "v2.csv"
    upload.write_text(
        "animal_id,sex,genotype,weight_g,age_weeks,birth_date,tags\n"
        'A001,male,WT,24.5,8,2026-01-05,"[""cohort1"",""pilot""]"\n'
        "A006,female,KO,20.0,6,2026-01-19,[]\n"
    )
    record_set.path = str(upload)
    stored = record_set.store(synapse_client=admin)

    grid.synchronize(sync_type=SyncType.PULL)
    pulled = Path(grid.download_csv(destination=str(tmp_path), file_name="g.csv"))
    first = RecordSet(id=record_set_id, version_number=1).get(synapse_client=admin)

    assert stored.version_number == 2
    assert stored.validation_file_handle_id is None
    assert first.version_number == 1
    assert first.data_file_handle_id != stored.data_file_handle_id
    ids = [line.split(",")[0] for line in pulled.read_text().splitlines()[1:]]
    # The merge adds and updates rows; rows gone upstream stay in the grid.
    assert ids == ['"A001"', '"A002"', '"A003"', '"A004"', '"A005"', '"A006"']
