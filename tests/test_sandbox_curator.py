"""The curator extension's task set-up, run by an administrator against the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synapseclient import Synapse
from synapseclient.extensions.curator import create_record_based_metadata_task
from synapseclient.models import (
    CurationTask,
    JSONSchema,
    Organization,
    RecordSet,
    SyncType,
)

from curation_sync.sandbox import Sandbox

ClientFactory = Callable[..., Synapse]


def test_create_record_based_metadata_task_sets_up_a_task_a_curator_can_push_to(
    sandbox: Sandbox, make_client: ClientFactory, tmp_path: Path
) -> None:
    info = sandbox.info()
    admin = make_client(sandbox.token("admin"))

    record_set, task, _grid = create_record_based_metadata_task(
        synapse_client=admin,
        folder_id=info["folders"]["records"],
        record_set_name="cohort_two",
        record_set_description="Animals of the second cohort.",
        curation_task_name="CohortTwo_Curation",
        upsert_keys=["animal_id"],
        instructions="One row per animal of cohort two.",
        schema_uri=info["schemas"]["animal"],
        assignee_principal_id=info["users"]["demo"]["id"],
    )
    curator = make_client(sandbox.token("demo"))
    mine = list(
        CurationTask.list(
            project_id=info["projects"]["project"],
            assigned_to_me=True,
            synapse_client=curator,
        )
    )
    grid = task.create_grid_session(synapse_client=curator)
    rows = tmp_path / "rows.csv"
    rows.write_text("animal_id,sex,genotype\nC001,female,WT\nC002,other,\n")
    grid.import_csv(path=str(rows), synapse_client=curator)
    grid.synchronize(sync_type=SyncType.PULL_PUSH, synapse_client=curator)
    pushed = RecordSet(id=record_set.id).get(synapse_client=curator)
    report = pushed.get_detailed_validation_results(synapse_client=curator)

    assert record_set.upsert_keys == ["animal_id"]
    binding = admin.restGET(f"/entity/{record_set.id}/schema/binding")
    assert binding["jsonSchemaVersionInfo"]["$id"] == info["schemas"]["animal"]
    assert task.data_type in {t.data_type for t in mine}
    # The template's header comes from the schema's property titles.
    assert Path(pushed.path).read_text().splitlines()[0].startswith('"animal_id"')
    assert pushed.version_number == 2
    # New rows are appended in the server's join order: upsert key descending.
    assert [line[:6] for line in Path(pushed.path).read_text().splitlines()[1:]] == [
        '"C002"',
        '"C001"',
    ]
    assert list(report["is_valid"]) == [False, True]
    assert report.loc[0, "validation_error_message"] == "2 schema violations found"


def test_a_schema_registered_through_the_client_validates_the_next_push(
    sandbox: Sandbox, make_client: ClientFactory, tmp_path: Path
) -> None:
    info = sandbox.info()
    admin = make_client(sandbox.token("admin"))
    Organization(name="org.lab").store(synapse_client=admin)
    schema = JSONSchema(organization_name="org.lab", name="mouse")
    schema.store(
        schema_body={
            "properties": {
                "mouse_id": {"type": "string"},
                "strain": {"enum": ["B6", "BALBc"]},
            },
            "required": ["mouse_id", "strain"],
        },
        version="0.1.0",
        synapse_client=admin,
    )

    record_set, task = create_record_based_metadata_task(
        synapse_client=admin,
        folder_id=info["folders"]["records"],
        record_set_name="mice",
        record_set_description="Mice.",
        curation_task_name="Mice_Curation",
        upsert_keys=["mouse_id"],
        instructions="One row per mouse.",
        schema_uri="org.lab-mouse-0.1.0",
        create_grid=False,
    )
    grid = task.create_grid_session(synapse_client=admin)
    rows = tmp_path / "mice.csv"
    rows.write_text("mouse_id,strain\nM1,B6\nM2,C57\n")
    grid.import_csv(path=str(rows), synapse_client=admin)
    grid.synchronize(sync_type=SyncType.PULL_PUSH, synapse_client=admin)
    pushed = RecordSet(id=record_set.id).get(synapse_client=admin)
    report = pushed.get_detailed_validation_results(synapse_client=admin)

    assert schema.uri == "org.lab-mouse"
    assert list(report["is_valid"]) == [False, True]
    assert report.loc[0, "validation_error_message"] == "C57 is not a valid enum value"
