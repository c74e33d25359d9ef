"""Every JSON body the sandbox sends in the guide run conforms to Synapse's models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rest_models import check_body, require_models
from synapseclient import Synapse
from synapseclient.models import CurationTask, Grid
from synapseclient.models.curation import GridQuery, QueryRequest, SelectAll
from test_sandbox_guide import _run_guide

from curation_sync.sandbox import Sandbox

MODEL = "org.sagebionetworks.repo.model."
# (method, path pattern, status class) to the model of the answer; None means the
# body names its model in concreteType; "skip" marks answers with no model file.
ANSWER_MODELS: list[tuple[str, str, str | None]] = [
    ("GET", r"/userProfile", "skip"),
    ("POST", r"/curation/task/list", MODEL + "curation.ListCurationTaskResponse"),
    ("POST", r"/curation/task", MODEL + "curation.CurationTask"),
    ("GET", r"/curation/task/\d+", MODEL + "curation.CurationTask"),
    ("PUT", r"/curation/task/\d+", MODEL + "curation.CurationTask"),
    ("GET", r"/curation/task/\d+/status", MODEL + "curation.TaskStatus"),
    ("PUT", r"/curation/task/\d+/status", MODEL + "curation.TaskStatus"),
    ("POST", r"/entity/syn\d+(/version/\d+)?/bundle2", "bundle"),
    ("GET", r"/entity/syn\d+/column", "columns"),
    ("POST", r"/fileHandle/batch", MODEL + "file.BatchFileResult"),
    ("GET", r"/fileHandle/\d+", None),
    ("POST", r"/file/multipart", MODEL + "file.MultipartUploadStatus"),
    (
        "POST",
        r"/file/multipart/\d+/presigned/url/batch",
        MODEL + "file.BatchPresignedUploadUrlResponse",
    ),
    ("PUT", r"/file/multipart/\d+/add/\d+", MODEL + "file.AddPartResponse"),
    ("PUT", r"/file/multipart/\d+/complete", MODEL + "file.MultipartUploadStatus"),
    ("POST", r"/.+/async/start", MODEL + "asynch.AsyncJobId"),
    ("GET", r"/.+/async/get/\d+", "job"),
    ("POST", r"/grid/session/list", MODEL + "grid.ListGridSessionsResponse"),
    ("GET", r"/grid/session/\d+", MODEL + "grid.GridSession"),
    ("POST", r"/grid/session/\d+/replica", MODEL + "grid.CreateReplicaResponse"),
]


def _problems(method: str, path: str, status: int, body: Any) -> list[str]:
    if status >= 400:
        return check_body(body, MODEL + "ErrorResponse")
    for wanted_method, pattern, model in ANSWER_MODELS:
        if wanted_method != method or not re.fullmatch(pattern, path):
            continue
        if model == "skip":
            return []
        if model == "bundle":
            # No EntityView model file exists in Synapse's sources we hold.
            entity = body["entity"]
            is_view = entity["concreteType"].endswith(".EntityView")
            found = [] if is_view else check_body(entity)
            for handle in body.get("fileHandles", []):
                found += check_body(handle)
            return found
        if model == "columns":
            return [
                p
                for column in body["results"]
                for p in check_body(column, MODEL + "table.ColumnModel")
            ]
        if model == "job":
            job_model = (
                MODEL + "asynch.AsynchronousJobStatus" if status == 202 else None
            )
            return check_body(body, job_model)
        return check_body(body, model)
    return [f"{method} {path}: no model is known for this answer"]


def test_every_json_answer_of_the_guide_run_matches_its_rest_model(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path
) -> None:
    require_models()
    sandbox.request_log.capture_bodies = True
    sandbox.set_job_polls(1)

    (tmp_path / "guide").mkdir()
    _run_guide(sandbox, tmp_path / "guide", "synchronize")
    file_task = CurationTask(task_id=sandbox.info()["tasks"]["sample_task"])
    file_grid = file_task.create_grid_session(synapse_client=synapse_client)
    with file_grid.connect(synapse_client=synapse_client):
        file_grid.validate_rows(
            query_request=QueryRequest(
                query=GridQuery(
                    column_selection=[SelectAll()], include_validation_messages=True
                )
            ),
            synapse_client=synapse_client,
        )
    list(Grid.list(synapse_client=synapse_client))
    Grid(session_id=file_grid.session_id).get(synapse_client=synapse_client)

    checked = [
        entry for entry in sandbox.request_log.entries() if entry.body is not None
    ]
    problems = [
        f"{entry.method} {entry.path} ({entry.status}): {problem}"
        for entry in checked
        for problem in _problems(entry.method, entry.path, entry.status, entry.body)
    ]

    assert problems == [], "\n".join(problems)
    kinds = {re.sub(r"\d+", "N", entry.path) for entry in checked}
    assert len(checked) > 40
    assert {
        "/grid/session/query/async/get/N",
        "/entity/synN/column",
        "/grid/synchronize/async/get/N",
    } <= kinds
