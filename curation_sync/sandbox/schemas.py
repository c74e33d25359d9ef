"""JSON schemas: organizations, registered schemas and their binding to entities.

Enough of Synapse's schema registry for the client to create organizations and
register schemas, and for `synapseclient.extensions.curator` to look a schema up by
its URI (`<organization>-<name>[-<version>]`) and bind it to a new record set.
Validation against the bound schema happens in `records` and the jobs.
"""

from __future__ import annotations

import json
from typing import Any

from curation_sync.sandbox.access import parse_syn, require, syn
from curation_sync.sandbox.apierror import bad_request, forbidden, not_found
from curation_sync.sandbox.jobs import job_type
from curation_sync.sandbox.records import load_entity
from curation_sync.sandbox.scenario import bind_schema, register_schema
from curation_sync.sandbox.server import App, Reply, Request, User
from curation_sync.sandbox.tasks import parse_page_token

SCHEMA = "org.sagebionetworks.repo.model.schema."


def organization_json(row: Any) -> dict[str, Any]:
    """The Organization JSON of an organization row."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "createdOn": row["created_on"],
        "createdBy": str(row["created_by"]),
    }


def schema_info_json(app: App, row: Any) -> dict[str, Any]:
    """The JsonSchemaInfo JSON of a schema row."""
    organization = app.store.one(
        "SELECT id FROM organizations WHERE name = ?", (row["organization"],)
    )
    return {
        "organizationId": str(organization["id"]) if organization else None,
        "organizationName": row["organization"],
        "schemaId": str(row["version_id"]),
        "schemaName": row["name"],
        "createdOn": row["created_on"],
        "createdBy": str(row["created_by"]),
    }


def version_info_json(app: App, row: Any) -> dict[str, Any]:
    """The JsonSchemaVersionInfo JSON of a schema row."""
    info = schema_info_json(app, row)
    info.update(
        versionId=str(row["version_id"]),
        **{"$id": row["schema_id"]},
        semanticVersion=row["semantic_version"],
        jsonSHA256Hex="",
    )
    return info


def find_schema(app: App, uri: str) -> Any:
    """The schema row for `<org>-<name>` (latest version) or `<org>-<name>-<ver>`."""
    row = app.store.one("SELECT * FROM schemas WHERE schema_id = ?", (uri,))
    if row is None:
        row = app.store.one(
            "SELECT * FROM schemas WHERE organization || '-' || name = ?"
            " ORDER BY version_id DESC LIMIT 1",
            (uri,),
        )
    if row is None:
        raise not_found(f"JSON schema not found for: {uri}")
    return row


def get_organization(app: App, request: Request) -> Reply:
    """GET /schema/organization?name=..."""
    name = request.query.get("name", "")
    row = app.store.one("SELECT * FROM organizations WHERE name = ?", (name,))
    if row is None:
        raise not_found(f"Organization with name: '{name}' not found")
    return Reply(200, organization_json(row))


def create_organization(app: App, request: Request) -> Reply:
    """POST /schema/organization."""
    name = str(request.json().get("organizationName") or "")
    if not name:
        raise bad_request("organizationName is required.")
    with app.store.tx():
        if app.store.one("SELECT 1 FROM organizations WHERE name = ?", (name,)):
            raise bad_request(f"An Organization with the name: '{name}' already exists")
        app.store.run(
            "INSERT INTO organizations (name, id, created_by, created_on)"
            " VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            (name, app.store.next_id("organization"), request.caller.id),
        )
    row = app.store.one("SELECT * FROM organizations WHERE name = ?", (name,))
    return Reply(201, organization_json(row))


def list_schemas(app: App, request: Request) -> Reply:
    """POST /schema/list: the schemas of one organization (latest version each)."""
    body = request.json()
    limit, offset = parse_page_token(body.get("nextPageToken"))
    rows = app.store.all(
        "SELECT * FROM schemas WHERE organization = ? AND version_id IN"
        " (SELECT MAX(version_id) FROM schemas GROUP BY organization, name)"
        " ORDER BY name LIMIT ? OFFSET ?",
        (body.get("organizationName"), limit + 1, offset),
    )
    answer: dict[str, Any] = {"page": [schema_info_json(app, r) for r in rows[:limit]]}
    if len(rows) > limit:
        answer["nextPageToken"] = f"{limit}a{offset + limit}"
    return Reply(200, answer)


def list_versions(app: App, request: Request) -> Reply:
    """POST /schema/version/list."""
    body = request.json()
    rows = app.store.all(
        "SELECT * FROM schemas WHERE organization = ? AND name = ? ORDER BY version_id",
        (body.get("organizationName"), body.get("schemaName")),
    )
    return Reply(200, {"page": [version_info_json(app, row) for row in rows]})


def get_registered(app: App, request: Request) -> Reply:
    """GET /schema/type/registered/{uri}: the schema body."""
    return Reply(200, json.loads(find_schema(app, request.params["uri"])["body"]))


@job_type("/schema/type/create", SCHEMA + "CreateSchemaRequest")
def create_schema(app: App, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Register a schema under an existing organization (a dry run stores nothing)."""
    schema = body.get("schema")
    if not isinstance(schema, dict) or not schema.get("$id"):
        raise bad_request("schema.$id is required.")
    # The client sends the full registry URL as $id; the short form names it.
    short_id = str(schema["$id"]).rsplit("/schema/type/registered/", 1)[-1]
    parts = short_id.split("-")
    if len(parts) not in (2, 3):
        raise bad_request(f"Invalid $id: {schema['$id']}")
    organization = app.store.one(
        "SELECT * FROM organizations WHERE name = ?", (parts[0],)
    )
    if organization is None:
        raise not_found(f"Organization with name: '{parts[0]}' not found")
    if int(organization["created_by"]) != user.id and not user.is_admin:
        raise forbidden(f"You lack CREATE access to the organization: {parts[0]}")
    version = parts[2] if len(parts) == 3 else None
    if app.store.one("SELECT 1 FROM schemas WHERE schema_id = ?", (short_id,)):
        raise bad_request(
            f"Semantic version: '{version}' already exists for this schema"
        )
    if body.get("dryRun"):
        info = {
            "$id": short_id,
            "organizationName": parts[0],
            "schemaName": parts[1],
            "semanticVersion": version,
        }
    else:
        register_schema(app, user.id, parts[0], parts[1], version, schema)
        info = version_info_json(app, find_schema(app, short_id))
    return {
        "concreteType": SCHEMA + "CreateSchemaResponse",
        "newVersionInfo": info,
        "validationSchema": schema,
    }


def binding_json(app: App, entity_id: int) -> dict[str, Any]:
    """The JsonSchemaObjectBinding of an entity, or 404."""
    row = app.store.one("SELECT * FROM bindings WHERE entity_id = ?", (entity_id,))
    if row is None:
        raise not_found(f"No JSON schema found for '{syn(entity_id)}'")
    schema = find_schema(app, row["schema_id"])
    return {
        "jsonSchemaVersionInfo": version_info_json(app, schema),
        "objectId": entity_id,
        "objectType": "entity",
        "createdOn": row["bound_on"],
        "createdBy": str(row["bound_by"]),
        "enableDerivedAnnotations": False,
    }


def put_binding(app: App, request: Request) -> Reply:
    """PUT /entity/{id}/schema/binding."""
    entity = load_entity(app, parse_syn(request.params["entity"]))
    require(app, request.caller, entity["project_id"], "UPDATE")
    body = request.json()
    schema = find_schema(app, str(body.get("schema$id") or ""))
    bind_schema(app, request.caller.id, int(entity["id"]), schema["schema_id"])
    return Reply(200, binding_json(app, int(entity["id"])))


def get_binding(app: App, request: Request) -> Reply:
    """GET /entity/{id}/schema/binding."""
    entity = load_entity(app, parse_syn(request.params["entity"]))
    require(app, request.caller, entity["project_id"], "READ")
    return Reply(200, binding_json(app, int(entity["id"])))


def delete_binding(app: App, request: Request) -> Reply:
    """DELETE /entity/{id}/schema/binding."""
    entity = load_entity(app, parse_syn(request.params["entity"]))
    require(app, request.caller, entity["project_id"], "UPDATE")
    app.store.run("DELETE FROM bindings WHERE entity_id = ?", (entity["id"],))
    return Reply(200, None)


def register(app: App) -> None:
    """Add the routes of this module."""
    entity = r"/entity/(?P<entity>syn\d+|\d+)"
    app.route("GET", r"/schema/organization", get_organization)
    app.route("POST", r"/schema/organization", create_organization)
    app.route("POST", r"/schema/list", list_schemas)
    app.route("POST", r"/schema/version/list", list_versions)
    app.route("GET", r"/schema/type/registered/(?P<uri>[^/]+)", get_registered)
    app.route("PUT", entity + r"/schema/binding", put_binding)
    app.route("GET", entity + r"/schema/binding", get_binding)
    app.route("DELETE", entity + r"/schema/binding", delete_binding)
