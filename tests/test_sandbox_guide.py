"""The contributor guide's record-based workflow, run against the sandbox.

Steps 1 to 8 are the guide's own code, with two necessary changes: step 1 points the
client at the sandbox through a synapseConfig (the guide's bare `Synapse()` would
reach production), and the name filter of option B compares `data_type`, because
`CurationTask` in synapseclient 4.14 has no `name` attribute. Step 4's random numbers
are replaced by real edits, as the guide itself asks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from synapseclient import Synapse

from curation_sync.sandbox import Sandbox, write_synapse_config

EDITS = {
    # A valid change.
    "A001": {"weight_g": 26.0},
    # An invalid enum value.
    "A002": {"sex": "other"},
    # A blank required genotype.
    "A003": {"genotype": None},
    # Two problems in one row.
    "A004": {"weight_g": -1.5, "sex": "none"},
}


def _step_1_authenticate(sandbox: Sandbox, tmp_path: Path) -> Synapse:
    config = write_synapse_config(
        tmp_path / "synapseConfig", sandbox.endpoint, sandbox.token("demo")
    )
    syn = Synapse(
        skip_checks=True,
        configPath=str(config),
        cache_root_dir=str(tmp_path / "cache"),
        silent=True,
    )
    syn.login()
    return syn


def _step_2_find_the_task(project_id: str, demo_user_id: str) -> Any:
    from synapseclient.models import CurationTask

    all_tasks = list(CurationTask.list(project_id=project_id))
    assert {task.data_type for task in all_tasks} == {
        "AnimalMetadata_Curation",
        "SampleFiles_Curation",
    }

    my_tasks = list(CurationTask.list(project_id=project_id, assigned_to_me=True))
    team_tasks = list(
        CurationTask.list(project_id=project_id, assignee_ids=[demo_user_id, "7654321"])
    )
    in_progress_tasks = list(
        CurationTask.list(project_id=project_id, state_filter=["IN_PROGRESS"])
    )
    target_name = "AnimalMetadata_Curation"
    named_tasks = [
        task
        for task in CurationTask.list(project_id=project_id)
        if task.data_type == target_name
    ]
    assert len(my_tasks) == 2
    assert len(team_tasks) == 2
    assert in_progress_tasks == []
    assert len(named_tasks) == 1

    fetched = CurationTask(task_id=named_tasks[0].task_id).get()
    assert fetched.task_properties == named_tasks[0].task_properties
    return named_tasks[0]


def _step_4_edit(csv_path: str, tmp_path: Path) -> str:
    df = pd.read_csv(csv_path)
    assert list(df["animal_id"]) == ["A001", "A002", "A003", "A004", "A005"]
    for animal_id, changes in EDITS.items():
        for column, value in changes.items():
            df.loc[df["animal_id"] == animal_id, column] = value
    edited_path = str(tmp_path / "grid_edited.csv")
    df.to_csv(edited_path, index=False)
    return edited_path


def _assert_report(validation_df: pd.DataFrame) -> None:
    assert len(validation_df) == 5
    assert list(validation_df["row_index"]) == [0, 1, 2, 3, 4]
    assert list(validation_df["is_valid"]) == [True, False, False, False, True]
    rows = validation_df.set_index("row_index")
    assert rows.loc[1, "validation_error_message"] == "other is not a valid enum value"
    assert json.loads(rows.loc[1, "all_validation_messages"]) == [
        "#/sex: other is not a valid enum value"
    ]
    assert (
        rows.loc[2, "validation_error_message"] == "expected type: String, found: Null"
    )
    assert json.loads(rows.loc[2, "all_validation_messages"]) == [
        "#/genotype: expected type: String, found: Null"
    ]
    assert rows.loc[3, "validation_error_message"] == "2 schema violations found"
    assert sorted(json.loads(rows.loc[3, "all_validation_messages"])) == [
        "#/sex: none is not a valid enum value",
        "#/weight_g: -1.5 is not greater or equal to 0",
    ]
    assert pd.isna(rows.loc[0, "validation_error_message"])


def _run_guide(sandbox: Sandbox, tmp_path: Path, push: str) -> None:

    info = sandbox.info()
    syn = _step_1_authenticate(sandbox, tmp_path)
    try:
        _run_steps_2_to_8(info, tmp_path, push)
    finally:
        syn._requests_session.close()
        syn._requests_session_storage.close()


def _run_steps_2_to_8(info: dict[str, Any], tmp_path: Path, push: str) -> None:
    from synapseclient.models import (
        RecordBasedMetadataTaskProperties,
        RecordSet,
        SyncType,
    )

    curation_task = _step_2_find_the_task(
        info["projects"]["project"], info["users"]["demo"]["id"]
    )

    # Step 3
    latest_grid = curation_task.create_grid_session()
    assert curation_task.get_status().execution_details.active_session_id == (
        latest_grid.session_id
    )

    # Step 4
    csv_path = latest_grid.download_csv(
        destination=str(tmp_path), file_name="grid_export.csv"
    )
    edited_path = _step_4_edit(csv_path, tmp_path)

    # Step 5
    latest_grid = latest_grid.import_csv(path=edited_path)

    # Step 6
    if push == "export":
        latest_grid.export_to_record_set()
        assert latest_grid.record_set_version_number == 2
        assert latest_grid.validation_summary_statistics.number_of_invalid_children == 3
    else:
        latest_grid.synchronize(sync_type=SyncType.PULL_PUSH)

    # Step 7
    assert isinstance(curation_task.task_properties, RecordBasedMetadataTaskProperties)
    record_set = RecordSet(id=curation_task.task_properties.record_set_id).get()
    assert record_set.version_number == 2
    assert record_set.validation_summary.number_of_valid_children == 2
    pushed = pd.read_csv(record_set.path)
    assert pushed.loc[pushed["animal_id"] == "A001", "weight_g"].item() == 26.0
    validation_df = record_set.get_detailed_validation_results()
    _assert_report(validation_df)

    # Step 8
    curation_task.set_task_state(state="COMPLETED")
    assert curation_task.get_status().state == "COMPLETED"


def test_guide_steps_run_unchanged_with_export_to_record_set(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    _run_guide(sandbox, tmp_path, "export")


def test_guide_steps_run_unchanged_with_synchronize_pull_push(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    _run_guide(sandbox, tmp_path, "synchronize")
