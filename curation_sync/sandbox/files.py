"""File handles, presigned downloads and multipart upload (the file service).

Presigned URLs are served by the sandbox itself under `/s3/...`. They need no token,
as S3 URLs need none, but they carry an HMAC signature over the path and expiry, so
they cannot be guessed. Download URLs carry `X-Amz-Date` and `X-Amz-Expires`, which
the client's parallel downloader needs for files over 8 MiB, and support `Range`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from curation_sync.sandbox.access import has_access, parse_syn
from curation_sync.sandbox.apierror import ApiError, bad_request, forbidden, not_found
from curation_sync.sandbox.server import App, Reply, Request, User
from curation_sync.sandbox.store import now_iso

S3_FILE_HANDLE = "org.sagebionetworks.repo.model.file.S3FileHandle"
URL_LIFETIME_SECONDS = 900
MIN_PART_BYTES = 5 * 1024 * 1024


def file_handle_json(row: Any) -> dict[str, Any]:
    """The S3FileHandle JSON of a file handle row."""
    return {
        "id": str(row["id"]),
        "concreteType": S3_FILE_HANDLE,
        "etag": row["etag"],
        "createdBy": str(row["created_by"]),
        "createdOn": row["created_on"],
        "modifiedOn": row["created_on"],
        "fileName": row["file_name"],
        "contentType": row["content_type"],
        "contentMd5": row["md5"],
        "contentSize": int(row["size"]),
        "storageLocationId": 1,
        "bucketName": "sandbox-bucket",
        "key": f"{row['created_by']}/{row['id']}/{row['file_name']}",
        "status": "AVAILABLE",
        "isPreview": False,
    }


def load_file_handle(app: App, handle_id: object) -> Any:
    """The file handle row, or a 404 answer."""
    text = str(handle_id)
    row = (
        app.store.one("SELECT * FROM file_handles WHERE id = ?", (text,))
        if text.isdigit()
        else None
    )
    if row is None:
        raise not_found(f"FileHandle: '{handle_id}' does not exist")
    return row


def sign(app: App, path: str, expires_at: int) -> str:
    """The signature that makes a presigned URL valid."""
    message = f"{path}:{expires_at}".encode()
    return hmac.new(app.secret, message, hashlib.sha256).hexdigest()


def presigned_url(app: App, path: str) -> str:
    """An absolute, signed, expiring URL for a sandbox `/s3/...` path."""
    moment = int(time.time())
    stamp = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    expires_at = moment + URL_LIFETIME_SECONDS
    query = {
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(URL_LIFETIME_SECONDS),
        "X-Amz-Signature": sign(app, path, expires_at),
        "sandbox-expires": str(expires_at),
    }
    return f"{app.base_url}{path}?{urlencode(query)}"


def check_signature(app: App, request: Request) -> None:
    """Answer 403 (as S3 does) unless the URL's signature is valid and unexpired."""
    expires = request.query.get("sandbox-expires", "")
    given = request.query.get("X-Amz-Signature", "")
    if not expires.isdigit() or int(expires) < time.time():
        raise forbidden("Request has expired")
    if not hmac.compare_digest(given, sign(app, request.path, int(expires))):
        raise forbidden("The request signature we calculated does not match.")


def can_read_handle(app: App, user: User, row: Any) -> bool:
    """Creators and administrators may read a file handle directly."""
    return user.is_admin or int(row["created_by"]) == user.id


def get_file_handle(app: App, request: Request) -> Reply:
    """GET /fileHandle/{id}."""
    row = load_file_handle(app, request.params["handle"])
    if not can_read_handle(app, request.caller, row):
        raise forbidden(
            "Only the creator of a FileHandle can access it directly by its ID."
        )
    return Reply(200, file_handle_json(row))


def get_file_handle_url(app: App, request: Request) -> Reply:
    """GET /fileHandle/{id}/url: the URL as text (redirect=false) or a 307."""
    row = load_file_handle(app, request.params["handle"])
    if not can_read_handle(app, request.caller, row):
        raise forbidden(
            "Only the creator of a FileHandle can access it directly by its ID."
        )
    url = presigned_url(app, f"/s3/download/{row['id']}")
    if request.query.get("redirect", "true").lower() == "false":
        return Reply(200, raw=url.encode(), content_type="text/plain; charset=UTF-8")
    return Reply(307, raw=b"", content_type="text/plain", headers={"Location": url})


def batch_file_handles(app: App, request: Request) -> Reply:
    """POST /fileHandle/batch: file handles and presigned URLs for associations."""
    body = request.json()
    answers = []
    for wanted in body.get("requestedFiles") or []:
        answers.append(_one_association(app, request.caller, wanted, body))
    return Reply(201, {"requestedFiles": answers})


def _one_association(
    app: App, user: User, wanted: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    handle_id = str(wanted.get("fileHandleId"))
    answer: dict[str, Any] = {"fileHandleId": handle_id}
    row = app.store.one("SELECT * FROM file_handles WHERE id = ?", (handle_id,))
    if row is None or not _is_associated(
        app, handle_id, wanted.get("associateObjectId")
    ):
        answer["failureCode"] = "NOT_FOUND"
        return answer
    entity = app.store.one(
        "SELECT project_id FROM entities WHERE id = ?",
        (parse_syn(wanted.get("associateObjectId")),),
    )
    if entity is None or not has_access(app, user, entity["project_id"], "DOWNLOAD"):
        answer["failureCode"] = "UNAUTHORIZED"
        return answer
    if body.get("includeFileHandles"):
        answer["fileHandle"] = file_handle_json(row)
    if body.get("includePreSignedURLs"):
        answer["preSignedURL"] = presigned_url(app, f"/s3/download/{row['id']}")
    return answer


def _is_associated(app: App, handle_id: str, entity_id: object) -> bool:
    try:
        number = parse_syn(entity_id)
    except ApiError:
        return False
    found = app.store.one(
        "SELECT 1 FROM entity_versions WHERE entity_id = ? AND (data_fh = ?"
        " OR validation_fh = ?)",
        (number, handle_id, handle_id),
    )
    return found is not None


def download(app: App, request: Request) -> Reply:
    """GET /s3/download/{id}: the bytes, whole or a `Range`."""
    check_signature(app, request)
    row = load_file_handle(app, request.params["handle"])
    data = app.store.read_file(int(row["id"]))
    wanted = request.headers.get("Range")
    found = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted or "")
    if not found:
        return Reply(200, raw=data, content_type=row["content_type"])
    size = len(data)
    start = int(found.group(1) or 0)
    end = int(found.group(2)) if found.group(2) else size - 1
    if start >= size:
        return Reply(
            416,
            raw=b"",
            content_type="text/plain",
            headers={"Content-Range": f"bytes */{size}"},
        )
    end = min(end, size - 1)
    return Reply(
        206,
        raw=data[start : end + 1],
        content_type=row["content_type"],
        headers={"Content-Range": f"bytes {start}-{end}/{size}"},
    )


def start_upload(app: App, request: Request) -> Reply:
    """POST /file/multipart: start, or resume an identical unfinished, upload."""
    body = request.json()
    for name in ("fileName", "contentMD5Hex", "fileSizeBytes"):
        if body.get(name) in (None, ""):
            raise bad_request(f"{name} is required.")
    size = int(body["fileSizeBytes"])
    part_size = int(body.get("partSizeBytes") or MIN_PART_BYTES)
    if part_size < MIN_PART_BYTES and size > part_size:
        raise bad_request(f"The partSizeBytes must be at least {MIN_PART_BYTES} bytes.")
    parts = max(1, -(-size // part_size))
    key = json.dumps(
        [request.caller.id, body["fileName"], body["contentMD5Hex"], size, part_size]
    )
    force = request.query.get("forceRestart", "false").lower() == "true"
    existing = app.store.one(
        "SELECT * FROM uploads WHERE request_key = ? ORDER BY id DESC LIMIT 1", (key,)
    )
    if existing is None or force:
        upload_id = app.store.next_id("upload")
        app.store.run(
            "INSERT INTO uploads (id, user_id, request_key, request, parts_state,"
            " part_md5, state) VALUES (?, ?, ?, ?, ?, ?, 'UPLOADING')",
            (
                upload_id,
                request.caller.id,
                key,
                json.dumps(body),
                "0" * parts,
                json.dumps({}),
            ),
        )
        existing = _load_upload(app, request.caller, upload_id)
    return Reply(201, _upload_status(existing))


def _upload_status(row: Any) -> dict[str, Any]:
    status = {
        "uploadId": str(row["id"]),
        "startedBy": str(row["user_id"]),
        "state": row["state"],
        "partsState": row["parts_state"],
        "updatedOn": now_iso(),
    }
    if row["result_fh"] is not None:
        status["resultFileHandleId"] = str(row["result_fh"])
    return status


def _load_upload(app: App, user: User, upload_id: object) -> Any:
    text = str(upload_id)
    row = (
        app.store.one("SELECT * FROM uploads WHERE id = ?", (text,))
        if text.isdigit()
        else None
    )
    if row is None:
        raise not_found(f"Multipart upload {upload_id} does not exist.")
    if int(row["user_id"]) != user.id:
        raise forbidden(
            "Only the user that started a multipart upload may continue it."
        )
    return row


def presign_parts(app: App, request: Request) -> Reply:
    """POST /file/multipart/{id}/presigned/url/batch."""
    row = _load_upload(app, request.caller, request.params["upload"])
    content_type = (
        json.loads(row["request"]).get("contentType") or "application/octet-stream"
    )
    urls = []
    for number in request.json().get("partNumbers") or []:
        if not 1 <= int(number) <= len(row["parts_state"]):
            raise bad_request(f"Part number {number} is out of range.")
        urls.append(
            {
                "partNumber": int(number),
                "uploadPresignedUrl": presigned_url(
                    app, f"/s3/upload/{row['id']}/{number}"
                ),
                "signedHeaders": {"Content-Type": content_type},
            }
        )
    return Reply(201, {"partPresignedUrls": urls})


def put_part(app: App, request: Request) -> Reply:
    """PUT /s3/upload/{id}/{part}: the raw bytes of one part."""
    check_signature(app, request)
    folder = app.store.parts_dir / request.params["upload"]
    folder.mkdir(exist_ok=True)
    (folder / request.params["part"]).write_bytes(request.body)
    etag = hashlib.md5(request.body).hexdigest()
    return Reply(200, raw=b"", content_type="text/plain", headers={"ETag": f'"{etag}"'})


def add_part(app: App, request: Request) -> Reply:
    """PUT /file/multipart/{id}/add/{part}?partMD5Hex=...: check the part's MD5."""
    row = _load_upload(app, request.caller, request.params["upload"])
    number = int(request.params["part"])
    answer = {"uploadId": str(row["id"]), "partNumber": number}
    path = app.store.parts_dir / str(row["id"]) / str(number)
    expected = request.query.get("partMD5Hex", "")
    if not path.exists():
        return Reply(
            200,
            {
                **answer,
                "addPartState": "ADD_FAILED",
                "errorMessage": f"Part {number} has not been uploaded.",
            },
        )
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    if actual != expected.lower():
        return Reply(
            200,
            {
                **answer,
                "addPartState": "ADD_FAILED",
                "errorMessage": (
                    f"The provided MD5 {expected} does not match the MD5 of the"
                    f" uploaded part {actual}."
                ),
            },
        )
    state = row["parts_state"]
    state = state[: number - 1] + "1" + state[number:]
    md5s = json.loads(row["part_md5"])
    md5s[str(number)] = actual
    app.store.run(
        "UPDATE uploads SET parts_state = ?, part_md5 = ? WHERE id = ?",
        (state, json.dumps(md5s), row["id"]),
    )
    return Reply(200, {**answer, "addPartState": "ADD_SUCCESS"})


def complete_upload(app: App, request: Request) -> Reply:
    """PUT /file/multipart/{id}/complete: join the parts into a new file handle."""
    row = _load_upload(app, request.caller, request.params["upload"])
    if row["state"] == "COMPLETED":
        return Reply(200, _upload_status(row))
    if "0" in row["parts_state"]:
        raise bad_request("Missing parts: cannot complete the multipart upload.")
    body = json.loads(row["request"])
    folder = app.store.parts_dir / str(row["id"])
    data = b"".join(
        (folder / str(n)).read_bytes() for n in range(1, len(row["parts_state"]) + 1)
    )
    if hashlib.md5(data).hexdigest() != str(body["contentMD5Hex"]).lower():
        raise bad_request("The MD5 of the uploaded file does not match contentMD5Hex.")
    handle_id = app.store.add_file(
        data,
        body["fileName"],
        body.get("contentType") or "application/octet-stream",
        request.caller.id,
    )
    app.store.run(
        "UPDATE uploads SET state = 'COMPLETED', result_fh = ? WHERE id = ?",
        (handle_id, row["id"]),
    )
    shutil.rmtree(folder, ignore_errors=True)
    return Reply(200, _upload_status(_load_upload(app, request.caller, row["id"])))


def register(app: App) -> None:
    """Add the routes of this module."""
    app.route("GET", r"/fileHandle/(?P<handle>[^/]+)", get_file_handle)
    app.route("GET", r"/fileHandle/(?P<handle>[^/]+)/url", get_file_handle_url)
    app.route("POST", r"/fileHandle/batch", batch_file_handles)
    app.route("GET", r"/s3/download/(?P<handle>\d+)", download, needs_token=False)
    app.route("POST", r"/file/multipart", start_upload)
    app.route(
        "POST", r"/file/multipart/(?P<upload>\d+)/presigned/url/batch", presign_parts
    )
    app.route(
        "PUT", r"/s3/upload/(?P<upload>\d+)/(?P<part>\d+)", put_part, needs_token=False
    )
    app.route("PUT", r"/file/multipart/(?P<upload>\d+)/add/(?P<part>\d+)", add_part)
    app.route("PUT", r"/file/multipart/(?P<upload>\d+)/complete", complete_upload)
