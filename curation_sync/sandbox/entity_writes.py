"""Creating and updating entities: `POST /entity`, `PUT /entity/{id}` and helpers.

Enough for the client's `RecordSet.store()` and `Folder.store()`: look a child up by
name, tell the client where to upload (Synapse storage, so multipart upload to the
sandbox), create the entity, and update it with or without a new version. As in
Synapse, a user's create or update of a record set never keeps a validation file or
summary; only a push from a grid sets them.
"""

from __future__ import annotations

import json
from typing import Any

from curation_sync.sandbox.access import parse_syn, require, syn
from curation_sync.sandbox.apierror import ApiError, bad_request, conflict, not_found
from curation_sync.sandbox.entities import KIND_OF_TYPE, entity_json
from curation_sync.sandbox.files import load_file_handle
from curation_sync.sandbox.records import add_version, load_entity
from curation_sync.sandbox.server import App, Reply, Request, User
from curation_sync.sandbox.store import new_etag, now_iso

WRITABLE_KINDS = ("folder", "recordset", "file")
S3_UPLOAD_DESTINATION = "org.sagebionetworks.repo.model.file.S3UploadDestination"


def find_child(app: App, request: Request) -> Reply:
    """POST /entity/child: the id of a parent's child with a given name."""
    body = request.json()
    parent_id = parse_syn(body.get("parentId"))
    parent = load_entity(app, parent_id)
    require(app, request.caller, parent["project_id"], "READ")
    row = app.store.one(
        "SELECT id FROM entities WHERE parent_id = ? AND name = ?",
        (parent_id, body.get("entityName")),
    )
    if row is None:
        raise not_found("Entity not found")
    return Reply(200, {"id": syn(row["id"])})


def upload_destination(app: App, request: Request) -> Reply:
    """GET /entity/{id}/uploadDestination: Synapse storage."""
    entity = load_entity(app, parse_syn(request.params["entity"]))
    require(app, request.caller, entity["project_id"], "READ")
    return Reply(
        200,
        {
            "concreteType": S3_UPLOAD_DESTINATION,
            "storageLocationId": 1,
            "uploadType": "S3",
            "stsEnabled": False,
        },
    )


def _props_from(
    kind: str, body: dict[str, Any], user: User, app: App
) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if body.get("description"):
        props["description"] = body["description"]
    if kind == "recordset":
        keys = body.get("upsertKey") or []
        if not keys:
            raise bad_request("The upsertKey is required and must not be empty.")
        descriptor = body.get("csvDescriptor")
        if descriptor and descriptor.get("isFirstLineHeader") is False:
            raise bad_request("The csvDescriptor.isFirstLineHeader must be true.")
        props.update(upsertKey=list(keys), csvDescriptor=descriptor)
        if body.get("fileNameOverride"):
            props["fileNameOverride"] = body["fileNameOverride"]
    if kind in ("recordset", "file") and body.get("dataFileHandleId"):
        handle = load_file_handle(app, body["dataFileHandleId"])
        if int(handle["created_by"]) != user.id and not user.is_admin:
            raise ApiError(403, "Only the creator of a FileHandle can use it.")
        props["dataFileHandleId"] = int(handle["id"])
    return props


def create_entity(app: App, request: Request) -> Reply:
    """POST /entity."""
    # Validate the request before anything is written.
    body = request.json()
    kind = KIND_OF_TYPE.get(str(body.get("concreteType")))
    if kind not in WRITABLE_KINDS:
        raise bad_request(
            f"Cannot create an entity of type {body.get('concreteType')}."
        )
    if not body.get("name") or not body.get("parentId"):
        raise bad_request("An entity needs a name and a parentId.")
    parent = load_entity(app, parse_syn(body["parentId"]))
    require(app, request.caller, parent["project_id"], "CREATE")
    props = _props_from(kind, body, request.caller, app)

    # Names are unique among a parent's children; versioned kinds get version 1.
    with app.store.tx():
        if app.store.one(
            "SELECT 1 FROM entities WHERE parent_id = ? AND name = ?",
            (parent["id"], body["name"]),
        ):
            raise ApiError(
                409,
                f"An entity with the name: {body['name']} already exists with a"
                f" parentId: {syn(parent['id'])}",
            )
        entity_id = app.store.next_id("entity")
        stamp = now_iso()
        app.store.run(
            "INSERT INTO entities (id, kind, name, parent_id, project_id, created_by,"
            " created_on, modified_on, modified_by, etag, version, props)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (
                entity_id,
                kind,
                body["name"],
                parent["id"],
                parent["project_id"],
                request.caller.id,
                stamp,
                stamp,
                request.caller.id,
                new_etag(),
                json.dumps(props),
            ),
        )
        if kind != "folder":
            add_version(
                app,
                request.caller.id,
                entity_id,
                props.get("dataFileHandleId"),
                comment=body.get("versionComment"),
            )
    return Reply(201, entity_json(app, load_entity(app, entity_id)))


def update_entity(app: App, request: Request) -> Reply:
    """PUT /entity/{id}, with `newVersion=true` for a new version."""
    # Optimistic locking on the entity etag, as Synapse does.
    body = request.json()
    entity = load_entity(app, parse_syn(request.params["entity"]))
    require(app, request.caller, entity["project_id"], "UPDATE")
    if body.get("etag") != entity["etag"]:
        raise conflict(
            f"Object: {syn(entity['id'])} was updated since you last fetched it,"
            " retrieve it again and reapply the update"
        )
    props = json.loads(entity["props"])
    props.update(_props_from(entity["kind"], body, request.caller, app))
    new_version = request.query.get("newVersion", "false").lower() == "true"

    with app.store.tx():
        app.store.run(
            "UPDATE entities SET name = ?, props = ?, etag = ?, modified_on = ?,"
            " modified_by = ? WHERE id = ?",
            (
                body.get("name") or entity["name"],
                json.dumps(props),
                new_etag(),
                now_iso(),
                request.caller.id,
                entity["id"],
            ),
        )
        if entity["kind"] == "recordset" and new_version:
            add_version(
                app,
                request.caller.id,
                int(entity["id"]),
                props.get("dataFileHandleId"),
                comment=body.get("versionComment"),
            )
        elif entity["kind"] == "recordset":
            # An in-place update points the current version at the new data and,
            # as in Synapse, drops the validation results of that version.
            app.store.run(
                "UPDATE entity_versions SET data_fh = ?, validation_fh = NULL,"
                " summary = NULL WHERE entity_id = ? AND version = ?",
                (props.get("dataFileHandleId"), entity["id"], entity["version"]),
            )
    return Reply(200, entity_json(app, load_entity(app, int(entity["id"]))))


def register(app: App) -> None:
    """Add the routes of this module."""
    entity = r"/entity/(?P<entity>syn\d+|\d+)"
    app.route("POST", r"/entity/child", find_child)
    app.route("POST", r"/entity", create_entity)
    app.route("PUT", entity, update_entity)
    app.route("GET", entity + r"/uploadDestination", upload_destination)
