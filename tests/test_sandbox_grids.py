"""Grid sessions in the sandbox, driven by the real client: query, list and delete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from synapseclient import Synapse
from synapseclient.core.exceptions import SynapseHTTPError
from synapseclient.models import CurationTask, File, Grid, RecordSet, SyncType
from synapseclient.models.curation import (
    CellValueFilter,
    CountStar,
    GridQuery,
    QueryRequest,
    RowIsValidFilter,
    RowValidationResultFilter,
    SelectAll,
    SelectByName,
)

from curation_sync.sandbox import Sandbox


def _import_rows(grid: Grid, tmp_path: Path, rows: list[dict[str, object]]) -> None:
    path = tmp_path / "import.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    grid.import_csv(path=str(path))


def _query(grid: Grid, *filters: object, **options: object) -> Any:
    query = GridQuery(
        column_selection=options.pop("select", [SelectAll()]),  # type: ignore[arg-type]
        filters=list(filters) or None,  # type: ignore[arg-type]
        include_validation_messages=True,
        **options,  # type: ignore[arg-type]
    )
    return grid.validate_rows(query_request=QueryRequest(query=query))


def test_validate_rows_reports_live_row_validity_without_a_new_version(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path
) -> None:
    task = CurationTask(task_id=sandbox.info()["tasks"]["animal_task"]).get()
    grid = task.create_grid_session()
    _import_rows(
        grid,
        tmp_path,
        [
            {"animal_id": "A002", "sex": "other", "genotype": "KO"},
            {"animal_id": "A009", "sex": "male", "genotype": "WT", "age_weeks": "3.5"},
        ],
    )

    with grid.connect():
        everything = _query(grid)
        invalid = _query(grid, RowIsValidFilter(value=False))
        females = _query(
            grid, CellValueFilter(column_name="sex", operator="EQUALS", value="female")
        )
        type_errors = _query(
            grid,
            RowValidationResultFilter(
                operator="LIKE", validation_result_value="%type%"
            ),
        )
        counted = _query(grid, select=[CountStar(alias="n")])
        names = _query(
            grid, select=[SelectByName(column_name="animal_id")], limit=2, offset=1
        )

    assert len(everything.rows) == 6
    by_id = {row.data["animal_id"]: row for row in everything.rows}
    assert by_id["A001"].validation_results.is_valid is True
    assert by_id["A002"].validation_results.all_validation_messages == [
        "#/sex: other is not a valid enum value"
    ]
    assert by_id["A009"].validation_results.validation_error_message == (
        "expected type: Integer, found: Double"
    )
    assert sorted(row.data["animal_id"] for row in invalid.rows) == ["A002", "A009"]
    assert sorted(row.data["animal_id"] for row in females.rows) == ["A003"]
    assert [row.data["animal_id"] for row in type_errors.rows] == ["A009"]
    assert counted.rows[0].data == {"n": 6}
    assert [row.data for row in names.rows] == [
        {"animal_id": "A002"},
        {"animal_id": "A003"},
    ]
    assert (
        RecordSet(id=sandbox.info()["record_sets"]["animals"]).get().version_number == 1
    )


def test_pull_brings_a_newer_record_set_version_into_an_older_grid(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path
) -> None:
    record_set_id = sandbox.info()["record_sets"]["animals"]
    older = Grid(record_set_id=record_set_id).create()
    newer = Grid(record_set_id=record_set_id).create()
    _import_rows(older, tmp_path, [{"animal_id": "A001", "genotype": "KO"}])
    _import_rows(
        newer,
        tmp_path,
        [
            {"animal_id": "A001", "tags": '["late"]'},
            {"animal_id": "A010", "genotype": "WT"},
        ],
    )
    newer.synchronize(sync_type=SyncType.PULL_PUSH)

    older.synchronize(sync_type=SyncType.PULL)
    csv_path = older.download_csv(destination=str(tmp_path), file_name="older.csv")

    rows = pd.read_csv(csv_path).set_index("animal_id")
    # The older grid keeps its own change and takes the other cells from upstream.
    assert rows.loc["A001", "genotype"] == "KO"
    assert rows.loc["A001", "tags"] == '["late"]'
    assert "A010" in rows.index
    assert RecordSet(id=record_set_id).get().version_number == 2


def test_file_based_grid_synchronize_merges_file_changes_and_writes_annotations(
    sandbox: Sandbox,
    synapse_client: Synapse,
    make_client: Callable[..., Synapse],
    tmp_path: Path,
) -> None:
    info = sandbox.info()
    task = CurationTask(task_id=info["tasks"]["sample_task"])
    grid = task.create_grid_session()
    csv_path = grid.download_csv(destination=str(tmp_path), file_name="files.csv")
    shown = pd.read_csv(csv_path)
    assert list(shown.columns) == ["id", "name", "sample_id", "tissue", "read_count"]
    assert list(shown["sample_id"].fillna("")) == ["S001", "S002", ""]

    # Meanwhile an administrator re-annotates the first file directly.
    admin = make_client(sandbox.token("admin"))
    first = File(id=info["files"]["sample_1"], download_file=False).get(
        synapse_client=admin
    )
    first.annotations["tissue"] = ["kidney"]
    first.store(synapse_client=admin)
    # The Grid web UI is the only editor of file-based grids; the sandbox stands in.
    edited = sandbox.edit_grid(
        grid.session_id,
        {"id": info["files"]["sample_3"]},
        {"sample_id": "S003", "tissue": "heart", "read_count": 77},
    )
    assert edited == 1

    task.synchronize_active_grid_session(sync_type=SyncType.PULL)

    def annotations(key: str) -> dict[str, object]:
        found = File(id=info["files"][key], download_file=False).get().annotations
        return dict(found)

    assert annotations("sample_3") == {
        "sample_id": ["S003"],
        "tissue": ["heart"],
        "read_count": [77],
    }
    assert annotations("sample_1")["tissue"] == ["kidney"]
    assert annotations("sample_1")["read_count"] == [1200]
    pulled = pd.read_csv(
        grid.download_csv(destination=str(tmp_path), file_name="b.csv")
    )
    assert list(pulled["tissue"]) == ["kidney", "brain", "heart"]


def test_grid_list_get_and_delete_follow_the_creator_rule(
    sandbox: Sandbox,
    synapse_client: Synapse,
    make_client: Callable[..., Synapse],
) -> None:
    record_set_id = sandbox.info()["record_sets"]["animals"]
    first = Grid(record_set_id=record_set_id).create()
    second = Grid(record_set_id=record_set_id).create()
    admin = make_client(sandbox.token("admin"))

    listed = [
        grid.session_id
        for grid in Grid.list(source_id=record_set_id, synapse_client=synapse_client)
    ]
    fetched = Grid(session_id=first.session_id).get(synapse_client=synapse_client)
    with pytest.raises(SynapseHTTPError, match="403 Client Error: Only the user"):
        Grid(session_id=first.session_id).delete(
            synapse_client=make_client(sandbox.token("viewer"))
        )
    Grid(session_id=first.session_id).delete(synapse_client=synapse_client)

    assert listed == [first.session_id, second.session_id]
    assert fetched.source_entity_id == record_set_id
    assert fetched.grid_json_schema_id == "org.example-animal.metadata-1.0.0"
    assert [g.session_id for g in Grid.list(synapse_client=synapse_client)] == [
        second.session_id
    ]
    assert list(Grid.list(synapse_client=admin)) == []
    with pytest.raises(
        SynapseHTTPError, match="404 Client Error: Grid session not found"
    ):
        Grid(session_id=first.session_id).get(synapse_client=synapse_client)


def test_the_demo_rows_start_valid_and_a_new_grid_can_adopt_an_existing_session(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    record_set_id = sandbox.info()["record_sets"]["animals"]
    first = Grid(record_set_id=record_set_id).create()

    adopted = Grid(record_set_id=record_set_id).create(attach_to_previous_session=True)
    with adopted.connect():
        result = _query(adopted, RowIsValidFilter(value=True))

    assert adopted.session_id == first.session_id
    assert len(result.rows) == 5
    assert sandbox.request_log.count("POST", r"^/grid/session/async/start$") == 1
