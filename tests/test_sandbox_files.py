"""Files in the sandbox: restart persistence, presigned ranges, multipart, big files."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from synapseclient import Synapse
from synapseclient.models import CurationTask, Grid, RecordSet, SyncType

from curation_sync.sandbox import Sandbox
from curation_sync.sandbox.scenario import load_scenario

MULTIPART_REQUEST = "org.sagebionetworks.repo.model.file.MultipartUploadRequest"


ConnectFactory = Callable[..., Synapse]


def test_a_restart_on_the_same_data_dir_keeps_tasks_grids_versions_and_files(
    tmp_path: Path, connect: ConnectFactory
) -> None:
    with Sandbox(tmp_path / "data", scenario="demo") as first:
        info = first.info()
        connect(first, first.token("demo"))
        task = CurationTask(task_id=info["tasks"]["animal_task"]).get()
        grid = task.create_grid_session()
        edited = tmp_path / "edited.csv"
        edited.write_text("animal_id,genotype\nA001,KO\nA050,WT\n")
        grid.import_csv(path=str(edited))
        grid.synchronize(sync_type=SyncType.PULL_PUSH)
        task.set_task_state(state="IN_PROGRESS")

    with Sandbox(tmp_path / "data", scenario="demo") as second:
        connect(second, second.token("demo"))
        again = second.info()
        second_endpoint = second.endpoint
        status = CurationTask(task_id=info["tasks"]["animal_task"]).get_status()
        session = Grid(session_id=grid.session_id).get()
        record_set = RecordSet(id=info["record_sets"]["animals"]).get()
        report = record_set.get_detailed_validation_results()
        csv_path = session.download_csv(destination=str(tmp_path), file_name="g.csv")

    assert {key: again[key] for key in ("users", "tasks", "record_sets")} == {
        key: info[key] for key in ("users", "tasks", "record_sets")
    }
    assert again["endpoint"] == second_endpoint
    assert status.state == "IN_PROGRESS"
    assert status.execution_details.active_session_id == grid.session_id
    assert record_set.version_number == 2
    assert len(report) == 6
    assert list(pd.read_csv(csv_path)["animal_id"]) == [
        "A001",
        "A002",
        "A003",
        "A004",
        "A005",
        "A050",
    ]


def test_presigned_downloads_serve_ranges_and_refuse_bad_signatures(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    record_set_id = sandbox.info()["record_sets"]["animals"]
    handle_id = (
        RecordSet(id=record_set_id, download_file=False).get().data_file_handle_id
    )
    answer = synapse_client.restPOST(
        "/fileHandle/batch",
        body=json.dumps(
            {
                "includeFileHandles": True,
                "includePreSignedURLs": True,
                "requestedFiles": [
                    {
                        "fileHandleId": handle_id,
                        "associateObjectId": record_set_id,
                        "associateObjectType": "FileEntity",
                    }
                ],
            }
        ),
        endpoint=synapse_client.fileHandleEndpoint,
    )
    found = answer["requestedFiles"][0]
    url = found["preSignedURL"]
    assert "X-Amz-Date=" in url
    assert "X-Amz-Expires=900" in url

    with urllib.request.urlopen(url, timeout=10) as whole:
        data = whole.read()
    ranged = urllib.request.Request(url, headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(ranged, timeout=10) as part:
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert part.read() == data[10:20]
    assert hashlib.md5(data).hexdigest() == found["fileHandle"]["contentMd5"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=10
        )
    assert refused.value.code == 403
    refused.value.close()


def test_an_identical_finished_upload_is_answered_completed_without_parts(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path
) -> None:
    grid = Grid(record_set_id=sandbox.info()["record_sets"]["animals"]).create()
    path = tmp_path / "same.csv"
    path.write_text("animal_id,genotype\nA001,KO\n")

    grid.import_csv(path=str(path))
    grid.import_csv(path=str(path))

    log = sandbox.request_log
    assert log.count("POST", r"^/file/multipart$") == 2
    assert log.count("PUT", r"^/s3/upload/") == 1
    assert log.count("PUT", r"/complete$") == 1


def test_a_part_with_the_wrong_md5_is_not_added(
    sandbox: Sandbox, synapse_client: Synapse
) -> None:
    endpoint = synapse_client.fileHandleEndpoint
    status = synapse_client.restPOST(
        "/file/multipart",
        body=json.dumps(
            {
                "concreteType": MULTIPART_REQUEST,
                "contentType": "text/csv",
                "contentMD5Hex": hashlib.md5(b"abc").hexdigest(),
                "fileName": "abc.csv",
                "fileSizeBytes": 3,
                "partSizeBytes": 8388608,
            }
        ),
        endpoint=endpoint,
    )
    urls = synapse_client.restPOST(
        f"/file/multipart/{status['uploadId']}/presigned/url/batch",
        body=json.dumps({"uploadId": status["uploadId"], "partNumbers": [1]}),
        endpoint=endpoint,
    )
    put = urllib.request.Request(
        urls["partPresignedUrls"][0]["uploadPresignedUrl"], data=b"abc", method="PUT"
    )
    urllib.request.urlopen(put, timeout=10).close()

    added = synapse_client.restPUT(
        f"/file/multipart/{status['uploadId']}/add/1?partMD5Hex=00", endpoint=endpoint
    )

    assert added["addPartState"] == "ADD_FAILED"
    assert "does not match" in added["errorMessage"]


def test_a_record_set_over_8_mib_downloads_in_parallel_ranges(
    tmp_path: Path, connect: ConnectFactory
) -> None:
    scenario = load_scenario("demo")
    notes = "x" * 3000
    big = {
        **scenario["record_sets"][0],
        "columns": [*scenario["record_sets"][0]["columns"], "notes"],
    }
    big["rows"] = [
        [f"B{n:05d}", "male", "WT", "1", "1", "2026-01-01", "[]", notes]
        for n in range(3000)
    ]
    with Sandbox(
        tmp_path / "data", scenario={**scenario, "record_sets": [big]}
    ) as sandbox:
        connect(sandbox, sandbox.token("demo"))
        record_set = RecordSet(id=sandbox.info()["record_sets"]["animals"]).get()
        ranged = sandbox.request_log.count("GET", r"^/s3/download/", status=206)

    assert Path(record_set.path).stat().st_size > 8 * 1024 * 1024
    assert ranged >= 2
    assert len(pd.read_csv(record_set.path)) == 3000


def test_an_import_over_8_mib_is_uploaded_in_two_checked_parts(
    sandbox: Sandbox, synapse_client: Synapse, tmp_path: Path
) -> None:
    grid = Grid(record_set_id=sandbox.info()["record_sets"]["animals"]).create()
    path = tmp_path / "big.csv"
    notes = "y" * 3000
    lines = [f"A{n:05d},WT,{notes}" for n in range(3000)]
    path.write_text("animal_id,genotype,notes\n" + "\n".join(lines) + "\n")
    assert path.stat().st_size > 8 * 1024 * 1024

    grid.import_csv(path=str(path))

    log = sandbox.request_log
    assert log.count("PUT", r"^/s3/upload/\d+/1$") == 1
    assert log.count("PUT", r"^/s3/upload/\d+/2$") == 1
    assert log.count("PUT", r"/add/[12]$") == 2
    pulled = grid.download_csv(destination=str(tmp_path), file_name="after.csv")
    assert len(pd.read_csv(pulled)) == 3005
