"""The REST model checker catches each kind of departure and accepts real bodies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import rest_models
from rest_models import MODEL_FOLDERS, check_body, model_properties, require_models

MODEL = "org.sagebionetworks.repo.model"
TASK = f"{MODEL}.curation.CurationTask"
RECORD_PROPERTIES = f"{MODEL}.curation.metadata.RecordBasedMetadataTaskProperties"


@pytest.fixture(autouse=True)
def _models() -> None:
    require_models()


def curation_task() -> dict[str, Any]:
    return {
        "taskId": 7,
        "dataType": "AnimalMetadata",
        "projectId": "syn100",
        "instructions": "Fill in one row per animal.",
        "etag": "2b5e1d1c-0c5e-4b8e-9d7e-2f1f6c1e8a11",
        "createdOn": "2026-12-03T09:15:00.000Z",
        "modifiedOn": "2026-12-03T09:15:00.000Z",
        "createdBy": "3350001",
        "modifiedBy": "3350001",
        "assigneePrincipalId": "3350002",
        "taskProperties": {
            "concreteType": RECORD_PROPERTIES,
            "recordSetId": "syn101",
            "collaboratorPrincipalIds": ["3350003"],
            "suggestedAuthorizationMode": "SESSION_OWNER",
        },
    }


def grid_session() -> dict[str, Any]:
    return {
        "sessionId": "9f2c",
        "startedBy": "3350002",
        "startedOn": "2026-12-03T09:20:00.000Z",
        "etag": "e1",
        "modifiedOn": "2026-12-03T09:20:01.000Z",
        "lastReplicaIdClient": 1,
        "lastReplicaIdService": -1,
        "gridJsonSchema$Id": "demo.animal-1.0.0",
        "sourceEntityId": "syn101",
        "sourceEntityVersionNumber": 3,
        "ownerPrincipalId": "3350002",
        "authorizationMode": "SESSION_OWNER",
    }


def record_set() -> dict[str, Any]:
    return {
        "concreteType": f"{MODEL}.RecordSet",
        "id": "syn101",
        "name": "animals",
        "parentId": "syn100",
        "etag": "e2",
        "createdOn": "2026-12-01T08:00:00.000Z",
        "modifiedOn": "2026-12-03T09:30:00.000Z",
        "createdBy": "3350001",
        "modifiedBy": "3350002",
        "versionNumber": 3,
        "versionLabel": "3",
        "isLatestVersion": True,
        "dataFileHandleId": "501",
        "upsertKey": ["animal_id"],
        "csvDescriptor": {"separator": ",", "isFirstLineHeader": True},
        "validationSummary": {
            "containerId": "syn101",
            "totalNumberOfChildren": 4,
            "numberOfValidChildren": 2,
            "numberOfInvalidChildren": 2,
            "numberOfUnknownChildren": 0,
            "generatedOn": "2026-12-03T09:30:00.000Z",
        },
        "validationFileHandleId": "502",
    }


def test_correct_task_grid_session_and_record_set_bodies_pass() -> None:
    assert check_body(curation_task(), TASK) == []
    assert check_body(grid_session(), f"{MODEL}.grid.GridSession") == []
    assert check_body(record_set()) == []


def test_a_task_bundle_page_checks_every_nested_model() -> None:
    status = {
        "taskId": 7,
        "state": "IN_PROGRESS",
        "lastUpdatedBy": "3350002",
        "lastUpdatedOn": "2026-12-03T10:00:00.000Z",
        "etag": "e3",
    }
    page: dict[str, Any] = {
        "page": [curation_task()],
        "bundlePage": [{"task": curation_task(), "status": status}],
        "nextPageToken": "50a50",
    }

    assert check_body(page, f"{MODEL}.curation.ListCurationTaskResponse") == []
    page["bundlePage"][0]["status"]["state"] = "DONE"
    assert check_body(page, f"{MODEL}.curation.ListCurationTaskResponse") == [
        "$.bundlePage[0].status.state: 'DONE' is not one of NOT_STARTED, "
        "IN_PROGRESS, EXECUTING, IN_REVIEW, COMPLETED, CANCELED."
    ]


def test_an_unknown_field_is_reported() -> None:
    body = curation_task()
    body["owner"] = "3350002"

    assert check_body(body, TASK) == [f"$: unknown field 'owner' for {TASK}."]


def test_a_concrete_type_on_a_model_without_one_is_an_unknown_field() -> None:
    body = curation_task()
    body["concreteType"] = TASK

    assert check_body(body) == [f"$: unknown field 'concreteType' for {TASK}."]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("taskId", "7", "$.taskId: expected integer, found string."),
        ("taskId", True, "$.taskId: expected integer, found boolean."),
        ("dataType", 5, "$.dataType: expected string, found integer."),
        ("instructions", ["a"], "$.instructions: expected string, found array."),
        ("createdOn", "03/12/2026", "$.createdOn: '03/12/2026' is not an ISO 8601 "
         "date-time."),
        ("taskProperties", "syn101", f"$.taskProperties: expected a {MODEL}.curation."
         "CurationTaskProperties object, found string."),
    ],
)  # fmt: skip
def test_a_wrong_type_is_reported(field: str, value: Any, problem: str) -> None:
    body = curation_task()
    body[field] = value

    assert check_body(body, TASK) == [problem]


def test_booleans_integers_and_arrays_are_told_apart() -> None:
    body = record_set()
    body["isLatestVersion"] = "true"
    body["versionNumber"] = 3.5
    body["upsertKey"] = "animal_id"

    assert sorted(check_body(body)) == [
        "$.isLatestVersion: expected boolean, found string.",
        "$.upsertKey: expected array, found string.",
        "$.versionNumber: expected integer, found number.",
    ]


def test_a_bad_enum_value_is_reported() -> None:
    body = grid_session()
    body["authorizationMode"] = "EVERYONE"

    assert check_body(body, f"{MODEL}.grid.GridSession") == [
        "$.authorizationMode: 'EVERYONE' is not one of SESSION_OWNER, "
        "SOURCE_BENEFACTOR."
    ]


def test_nested_models_are_checked_field_by_field() -> None:
    body = curation_task()
    body["taskProperties"]["recordSetId"] = 101
    body["taskProperties"]["colour"] = "blue"
    body["taskProperties"]["collaboratorPrincipalIds"] = ["3350003", 3350004]

    assert check_body(body, TASK) == [
        "$.taskProperties.recordSetId: expected string, found integer.",
        "$.taskProperties.collaboratorPrincipalIds[1]: expected string, found integer.",
        f"$.taskProperties: unknown field 'colour' for {RECORD_PROPERTIES}.",
    ]


def test_an_interface_needs_a_concrete_type_that_implements_it() -> None:
    missing = curation_task()
    del missing["taskProperties"]["concreteType"]
    wrong = curation_task()
    wrong["taskProperties"]["concreteType"] = f"{MODEL}.grid.GridSession"

    assert check_body(missing, TASK) == [
        f"$.taskProperties: {MODEL}.curation.CurationTaskProperties is an interface; "
        "the body needs a concreteType naming its implementation."
    ]
    assert check_body(wrong, TASK) == [
        f"$.taskProperties: concreteType '{MODEL}.grid.GridSession' is not a model "
        f"that implements {MODEL}.curation.CurationTaskProperties."
    ]


def test_inherited_fields_come_from_extends_and_implements() -> None:
    fields = model_properties(f"{MODEL}.RecordSet")

    assert {"upsertKey", "dataFileHandleId", "versionNumber", "name", "id"} <= set(
        fields
    )


def test_nested_objects_and_arrays_of_models_are_checked() -> None:
    body = record_set()
    body["csvDescriptor"]["isFirstLineHeader"] = "yes"
    body["validationSummary"]["totalNumberOfChildren"] = "4"

    assert sorted(check_body(body)) == [
        "$.csvDescriptor.isFirstLineHeader: expected boolean, found string.",
        "$.validationSummary.totalNumberOfChildren: expected integer, found string.",
    ]


def test_nulls_pass_unless_the_check_is_strict() -> None:
    body = curation_task()
    body["dueDate"] = None

    assert check_body(body, TASK) == []
    assert check_body(body, TASK, allow_null=False) == [
        "$.dueDate: is null; Synapse leaves unset fields out."
    ]


def test_a_body_without_a_model_or_concrete_type_is_reported() -> None:
    assert check_body(grid_session()) == [
        "$: the body has no concreteType and no model name was given."
    ]
    assert check_body({}, f"{MODEL}.NoSuchThing") == [
        f"$: No REST model file for {MODEL}.NoSuchThing (expected "
        f"{require_models()}/org/sagebionetworks/repo/model/NoSuchThing.json)."
    ]


def test_the_repository_copy_of_the_models_is_preferred() -> None:
    copy_in_repo, shared = MODEL_FOLDERS

    assert copy_in_repo.name == "rest_models"
    assert shared.parts[-2:] == ("shared", "synapse-rest-models")
    assert (copy_in_repo / "org").is_dir()
    assert require_models() == copy_in_repo


def test_checking_does_not_change_the_body() -> None:
    body = curation_task()
    before = copy.deepcopy(body)

    check_body(body, TASK)

    assert body == before


def test_checks_skip_with_a_reason_when_no_model_files_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = (tmp_path / "rest_models", tmp_path / "shared" / "synapse-rest-models")
    monkeypatch.setattr(rest_models, "MODEL_FOLDERS", missing)

    with pytest.raises(pytest.skip.Exception, match="REST model files are not"):
        require_models()
