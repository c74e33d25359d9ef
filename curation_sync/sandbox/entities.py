"""Entities: projects, folders, files, record sets and entity views.

Serves the entity bundle (`/entity/{id}/bundle2`, also per version), the plain entity
GET, versions, columns of views and annotations. Record set versions live in
`entity_versions`; other kinds have the single version 1.
"""

from __future__ import annotations

import json
from typing import Any

from curation_sync.sandbox.access import parse_syn, require, syn
from curation_sync.sandbox.apierror import bad_request
from curation_sync.sandbox.files import file_handle_json
from curation_sync.sandbox.records import load_entity, load_version
from curation_sync.sandbox.server import App, Reply, Request
from curation_sync.sandbox.store import new_etag, now_iso

CONCRETE_TYPES = {
    "project": "org.sagebionetworks.repo.model.Project",
    "folder": "org.sagebionetworks.repo.model.Folder",
    "file": "org.sagebionetworks.repo.model.FileEntity",
    "recordset": "org.sagebionetworks.repo.model.RecordSet",
    "entityview": "org.sagebionetworks.repo.model.table.EntityView",
}
KIND_OF_TYPE = {value: key for key, value in CONCRETE_TYPES.items()}


def entity_json(app: App, row: Any, version: int | None = None) -> dict[str, Any]:
    """The Entity JSON of an entity row, at a version for record sets."""
    props = json.loads(row["props"])
    entity: dict[str, Any] = {
        "id": syn(row["id"]),
        "concreteType": CONCRETE_TYPES[row["kind"]],
        "name": row["name"],
        "etag": row["etag"],
        "createdOn": row["created_on"],
        "modifiedOn": row["modified_on"],
        "createdBy": str(row["created_by"]),
        "modifiedBy": str(row["modified_by"]),
    }
    if props.get("description"):
        entity["description"] = props["description"]
    if row["parent_id"] is not None:
        entity["parentId"] = syn(row["parent_id"])
    if row["kind"] in ("project", "folder"):
        return entity
    number = int(row["version"]) if version is None else version
    entity.update(
        versionNumber=number,
        versionLabel=str(number),
        isLatestVersion=number == int(row["version"]),
    )
    if row["kind"] == "recordset":
        _add_record_set_fields(app, row, props, number, entity)
    elif row["kind"] == "file":
        entity["dataFileHandleId"] = str(props["dataFileHandleId"])
    elif row["kind"] == "entityview":
        entity.update(
            columnIds=[str(column["id"]) for column in props.get("columns", [])],
            scopeIds=[str(parse_syn(scope)) for scope in props.get("scopeIds", [])],
            viewTypeMask=int(props.get("viewTypeMask", 1)),
            type="file",
            isSearchEnabled=False,
        )
    return entity


def _add_record_set_fields(
    app: App, row: Any, props: dict[str, Any], number: int, entity: dict[str, Any]
) -> None:
    version_row = load_version(app, row["id"], number)
    if version_row["comment"]:
        entity["versionComment"] = version_row["comment"]
    if version_row["data_fh"] is not None:
        entity["dataFileHandleId"] = str(version_row["data_fh"])
    entity["upsertKey"] = list(props.get("upsertKey") or [])
    entity["csvDescriptor"] = props.get("csvDescriptor") or {
        "separator": ",",
        "quoteCharacter": '"',
        "escapeCharacter": "\\",
        "lineEnd": "\n",
        "isFirstLineHeader": True,
    }
    if props.get("fileNameOverride"):
        entity["fileNameOverride"] = props["fileNameOverride"]
    if version_row["validation_fh"] is not None:
        entity["validationFileHandleId"] = str(version_row["validation_fh"])
    if version_row["summary"]:
        entity["validationSummary"] = json.loads(version_row["summary"])


def entity_file_handle_ids(entity: dict[str, Any]) -> list[str]:
    """The file handles a bundle lists for an entity (data and validation files)."""
    ids = [entity.get("dataFileHandleId"), entity.get("validationFileHandleId")]
    return [str(handle) for handle in ids if handle]


def readable_entity(app: App, request: Request, name: str = "entity") -> Any:
    """The entity of the path, checking READ on its project."""
    row = load_entity(app, parse_syn(request.params[name]))
    require(app, request.caller, row["project_id"], "READ")
    return row


def bundle(app: App, request: Request) -> Reply:
    """POST /entity/{id}/bundle2 and /entity/{id}/version/{n}/bundle2."""
    row = readable_entity(app, request)
    wanted = request.json()
    version = int(request.params["version"]) if request.params.get("version") else None
    entity = entity_json(app, row, version)
    answer: dict[str, Any] = {"entityType": row["kind"]}
    if wanted.get("includeEntity"):
        answer["entity"] = entity
    if wanted.get("includeAnnotations"):
        answer["annotations"] = annotations_json(row)
    if wanted.get("includeFileHandles"):
        answer["fileHandles"] = [
            file_handle_json(handle)
            for handle_id in entity_file_handle_ids(entity)
            if (
                handle := app.store.one(
                    "SELECT * FROM file_handles WHERE id = ?", (handle_id,)
                )
            )
            is not None
        ]
    if wanted.get("includeRestrictionInformation"):
        answer["restrictionInformation"] = {
            "objectId": int(row["id"]),
            "restrictionLevel": "OPEN",
            "hasUnmetAccessRequirement": False,
            "userEntityPermissionsState": {"hasDownload": True},
        }
    return Reply(200, answer)


def annotations_json(row: Any) -> dict[str, Any]:
    """The nested Annotations JSON of an entity."""
    props = json.loads(row["props"])
    return {
        "id": syn(row["id"]),
        "etag": row["etag"],
        "annotations": props.get("annotations") or {},
    }


def get_entity(app: App, request: Request) -> Reply:
    """GET /entity/{id} and /entity/{id}/version/{n}."""
    row = readable_entity(app, request)
    version = int(request.params["version"]) if request.params.get("version") else None
    return Reply(200, entity_json(app, row, version))


def get_entity_type(app: App, request: Request) -> Reply:
    """GET /entity/{id}/type: the EntityHeader."""
    row = readable_entity(app, request)
    header = {
        "id": syn(row["id"]),
        "name": row["name"],
        "type": CONCRETE_TYPES[row["kind"]],
        "versionNumber": int(row["version"]),
        "versionLabel": str(row["version"]),
        "benefactorId": int(row["project_id"]),
        "createdOn": row["created_on"],
        "modifiedOn": row["modified_on"],
        "createdBy": str(row["created_by"]),
        "modifiedBy": str(row["modified_by"]),
        "isLatestVersion": True,
    }
    return Reply(200, header)


def get_annotations(app: App, request: Request) -> Reply:
    """GET /entity/{id}/annotations2."""
    return Reply(200, annotations_json(readable_entity(app, request)))


def put_annotations(app: App, request: Request) -> Reply:
    """PUT /entity/{id}/annotations2: replace the annotations (etag checked)."""
    row = readable_entity(app, request)
    require(app, request.caller, row["project_id"], "UPDATE")
    body = request.json()
    if body.get("etag") != row["etag"]:
        raise bad_request("The etag does not match; fetch the annotations again.")
    set_annotations(app, int(row["id"]), body.get("annotations") or {})
    return Reply(200, annotations_json(load_entity(app, int(row["id"]))))


def set_annotations(app: App, entity_id: int, annotations: dict[str, Any]) -> None:
    """Replace an entity's annotations and give it a new etag."""
    with app.store.tx():
        row = load_entity(app, entity_id)
        props = json.loads(row["props"])
        props["annotations"] = annotations
        app.store.run(
            "UPDATE entities SET props = ?, etag = ?, modified_on = ? WHERE id = ?",
            (json.dumps(props), new_etag(), now_iso(), entity_id),
        )


def list_versions(app: App, request: Request) -> Reply:
    """GET /entity/{id}/version: newest first."""
    row = readable_entity(app, request)
    versions = app.store.all(
        "SELECT * FROM entity_versions WHERE entity_id = ? ORDER BY version DESC",
        (row["id"],),
    )
    results = [
        {
            "id": syn(row["id"]),
            "versionNumber": int(version["version"]),
            "versionLabel": str(version["version"]),
            "versionComment": version["comment"],
            "modifiedOn": version["created_on"],
            "modifiedBy": str(version["created_by"]),
            "isLatestVersion": int(version["version"]) == int(row["version"]),
        }
        for version in versions
    ]
    return Reply(200, {"totalNumberOfResults": len(results), "results": results})


def get_columns(app: App, request: Request) -> Reply:
    """GET /entity/{id}/column: the ColumnModels of a view."""
    row = readable_entity(app, request)
    columns = json.loads(row["props"]).get("columns", [])
    return Reply(200, {"totalNumberOfResults": len(columns), "results": columns})


def register(app: App) -> None:
    """Add the routes of this module."""
    entity = r"/entity/(?P<entity>syn\d+|\d+)"
    version = entity + r"/version/(?P<version>\d+)"
    app.route("POST", entity + r"/bundle2", bundle)
    app.route("POST", version + r"/bundle2", bundle)
    app.route("GET", entity, get_entity)
    app.route("GET", version, get_entity)
    app.route("GET", entity + r"/version", list_versions)
    app.route("GET", entity + r"/column", get_columns)
    app.route("GET", entity + r"/type", get_entity_type)
    app.route("GET", entity + r"/annotations2", get_annotations)
    app.route("PUT", entity + r"/annotations2", put_annotations)
