"""Scenarios: what a fresh sandbox holds (users, projects, record sets, tasks, ...).

A scenario is a TOML or JSON document, or the same structure as a Python dict. Every
object has a `key` that later objects use to refer to it, and that `Sandbox.info()`
maps to the id it got. Lists, in seeding order:

* `users`: key, user_name, display_name, email, token, admin (bool).
* `projects`: key, name, owner (user key), members (user key to view/edit/admin).
* `folders`: key, parent (project or folder key), name.
* `schemas`: key, organization, name, version, body (a JSON-schema object, or its
  JSON text); the `$id` is `<organization>-<name>-<version>`.
* `record_sets`: key, parent, name, upsert_key (list), schema (schema key, bound to
  the record set), columns (list of names), rows (list of lists of cell text).
* `files`: key, parent, name, content (text), annotations (name to value or list).
* `views`: key, parent, name, scope (list of folder keys), columns (ColumnModels
  without ids), schema (optional schema key, bound to the view).
* `tasks`: key, project, data_type, instructions, assignee (user key), state,
  authorization_mode, and either record_set or view + upload_folder.
* `extra_tasks`: optional count of further unassigned record-based tasks on the first
  task's record set, named `<data_type>_<n>` (for paging).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from curation_sync.sandbox import tasks as task_store
from curation_sync.sandbox.access import syn
from curation_sync.sandbox.records import add_version
from curation_sync.sandbox.server import App
from curation_sync.sandbox.store import new_etag, now_iso
from curation_sync.sandbox.tables import write_csv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

BUNDLED = ("demo",)


def load_scenario(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A scenario as a dict, from a bundled name, a .toml/.json path or a mapping.

    Raises:
        ValueError: the name is not bundled, or the file is not TOML or JSON.
    """
    if isinstance(source, Mapping):
        return dict(source)
    text_source = str(source)
    if text_source in BUNDLED:
        package = resources.files("curation_sync.sandbox") / "scenarios"
        return dict(tomllib.loads((package / f"{text_source}.toml").read_text("utf-8")))
    path = Path(source)
    if not path.is_file():
        raise ValueError(
            f"Scenario {text_source!r} is neither a bundled scenario {BUNDLED}"
            " nor a file."
        )
    if path.suffix.lower() == ".json":
        return dict(json.loads(path.read_text("utf-8")))
    if path.suffix.lower() == ".toml":
        return dict(tomllib.loads(path.read_text("utf-8")))
    raise ValueError(f"Scenario file {path} must end in .toml or .json.")


class _Seeder:
    def __init__(self, app: App) -> None:
        self.app = app
        self.ids: dict[str, dict[str, Any]] = {
            name: {}
            for name in (
                "users",
                "projects",
                "folders",
                "schemas",
                "record_sets",
                "files",
                "views",
                "tasks",
            )
        }
        self.entity_ids: dict[str, int] = {}
        self.admin_id = 0

    def user(self, spec: Mapping[str, Any]) -> None:
        user_id = self.app.store.next_id("user")
        self.app.store.run(
            "INSERT INTO users (id, user_name, display_name, email, token, is_admin)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                user_id,
                spec.get("user_name", spec["key"]),
                spec.get("display_name", spec["key"]),
                spec.get("email", f"{spec['key']}@example.org"),
                spec["token"],
                int(bool(spec.get("admin"))),
            ),
        )
        if spec.get("admin") and not self.admin_id:
            self.admin_id = user_id
        self.ids["users"][spec["key"]] = {
            "id": str(user_id),
            "userName": spec.get("user_name", spec["key"]),
            "token": spec["token"],
            "admin": bool(spec.get("admin")),
        }

    def user_id(self, key: str | None) -> int:
        if key is None:
            return self.admin_id
        return int(self.ids["users"][key]["id"])

    def entity(
        self, kind: str, spec: Mapping[str, Any], props: dict[str, Any], creator: int
    ) -> int:
        entity_id = self.app.store.next_id("entity")
        parent = self.entity_ids.get(spec["parent"]) if spec.get("parent") else None
        project = entity_id if kind == "project" else self._project_of(parent)
        stamp = now_iso()
        self.app.store.run(
            "INSERT INTO entities (id, kind, name, parent_id, project_id, created_by,"
            " created_on, modified_on, modified_by, etag, version, props)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (
                entity_id,
                kind,
                spec["name"],
                parent,
                project,
                creator,
                stamp,
                stamp,
                creator,
                new_etag(),
                json.dumps(props),
            ),
        )
        self.entity_ids[spec["key"]] = entity_id
        return entity_id

    def _project_of(self, parent: int | None) -> int | None:
        if parent is None:
            return None
        row = self.app.store.one(
            "SELECT project_id FROM entities WHERE id = ?", (parent,)
        )
        return None if row is None else int(row["project_id"])

    def project(self, spec: Mapping[str, Any]) -> None:
        owner = self.user_id(spec.get("owner"))
        project_id = self.entity("project", spec, {}, owner)
        members = {spec.get("owner"): "admin"} if spec.get("owner") else {}
        members.update(spec.get("members") or {})
        for user_key, access in members.items():
            self.app.store.run(
                "INSERT OR REPLACE INTO members (project_id, principal_id, access)"
                " VALUES (?, ?, ?)",
                (project_id, self.user_id(user_key), access),
            )
        self.ids["projects"][spec["key"]] = syn(project_id)

    def folder(self, spec: Mapping[str, Any]) -> None:
        self.ids["folders"][spec["key"]] = syn(
            self.entity("folder", spec, {}, self.admin_id)
        )

    def schema(self, spec: Mapping[str, Any]) -> None:
        body = spec["body"]
        body = json.loads(body) if isinstance(body, str) else dict(body)
        schema_id = f"{spec['organization']}-{spec['name']}-{spec['version']}"
        body["$id"] = schema_id
        register_schema(
            self.app,
            self.admin_id,
            spec["organization"],
            spec["name"],
            str(spec["version"]),
            body,
        )
        self.ids["schemas"][spec["key"]] = schema_id

    def record_set(self, spec: Mapping[str, Any]) -> None:
        props = {
            "upsertKey": list(spec["upsert_key"]),
            "description": spec.get("description", ""),
        }
        entity_id = self.entity("recordset", spec, props, self.admin_id)
        data = write_csv(
            spec["columns"],
            [[cell or None for cell in row] for row in spec.get("rows", [])],
        )
        handle = self.app.store.add_file(
            data, f"{spec['name']}.csv", "text/csv", self.admin_id
        )
        self.app.store.run(
            "DELETE FROM entity_versions WHERE entity_id = ?", (entity_id,)
        )
        add_version(self.app, self.admin_id, entity_id, handle)
        if spec.get("schema"):
            bind_schema(
                self.app, self.admin_id, entity_id, self.ids["schemas"][spec["schema"]]
            )
        self.ids["record_sets"][spec["key"]] = syn(entity_id)

    def file(self, spec: Mapping[str, Any]) -> None:
        content = str(spec.get("content", "")).encode()
        handle = self.app.store.add_file(
            content, spec["name"], "text/plain", self.admin_id
        )
        annotations = {
            name: {
                "type": "STRING",
                "value": [
                    str(v) for v in (value if isinstance(value, list) else [value])
                ],
            }
            for name, value in (spec.get("annotations") or {}).items()
        }
        props = {"dataFileHandleId": handle, "annotations": annotations}
        entity_id = self.entity("file", spec, props, self.admin_id)
        self.app.store.run(
            "INSERT INTO entity_versions (entity_id, version, data_fh, created_on,"
            " created_by) VALUES (?, 1, ?, ?, ?)",
            (entity_id, handle, now_iso(), self.admin_id),
        )
        self.ids["files"][spec["key"]] = syn(entity_id)

    def view(self, spec: Mapping[str, Any]) -> None:
        columns = [
            {**column, "id": str(index)}
            for index, column in enumerate(spec["columns"], start=101)
        ]
        props = {
            "columns": columns,
            "viewTypeMask": 1,
            "scopeIds": [syn(self.entity_ids[key]) for key in spec["scope"]],
        }
        entity_id = self.entity("entityview", spec, props, self.admin_id)
        self.app.store.run(
            "INSERT INTO entity_versions (entity_id, version, created_on, created_by)"
            " VALUES (?, 1, ?, ?)",
            (entity_id, now_iso(), self.admin_id),
        )
        if spec.get("schema"):
            bind_schema(
                self.app, self.admin_id, entity_id, self.ids["schemas"][spec["schema"]]
            )
        self.ids["views"][spec["key"]] = syn(entity_id)

    def task(self, spec: Mapping[str, Any], data_type: str | None = None) -> int:
        if spec.get("record_set"):
            properties: dict[str, Any] = {
                "concreteType": task_store.RECORD_BASED,
                "recordSetId": syn(self.entity_ids[spec["record_set"]]),
            }
        else:
            properties = {
                "concreteType": task_store.FILE_BASED,
                "fileViewId": syn(self.entity_ids[spec["view"]]),
                "uploadFolderId": syn(self.entity_ids[spec["upload_folder"]]),
            }
        if spec.get("authorization_mode"):
            properties["suggestedAuthorizationMode"] = spec["authorization_mode"]
        task = {
            "projectId": syn(self.entity_ids[spec["project"]]),
            "dataType": data_type or spec["data_type"],
            "instructions": spec.get("instructions", ""),
            "taskProperties": properties,
        }
        if spec.get("assignee"):
            task["assigneePrincipalId"] = str(self.user_id(spec["assignee"]))
        admin = self.app.user_by_id(self.admin_id)
        assert admin is not None, "a scenario with tasks needs an admin user"
        return task_store.create_task(
            self.app, admin, task, spec.get("state", "NOT_STARTED")
        )


def register_schema(
    app: App,
    user_id: int,
    organization: str,
    name: str,
    version: str | None,
    body: Mapping[str, Any],
) -> str:
    """Store a JSON schema (and its organization); returns its `$id`."""
    schema_id = f"{organization}-{name}" + (f"-{version}" if version else "")
    with app.store.tx():
        if (
            app.store.one("SELECT 1 FROM organizations WHERE name = ?", (organization,))
            is None
        ):
            app.store.run(
                "INSERT INTO organizations (name, id, created_by, created_on)"
                " VALUES (?, ?, ?, ?)",
                (organization, app.store.next_id("organization"), user_id, now_iso()),
            )
        app.store.run(
            "INSERT OR REPLACE INTO schemas (schema_id, organization, name,"
            " semantic_version, body, version_id, created_by, created_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                schema_id,
                organization,
                name,
                version,
                json.dumps(body),
                app.store.next_id("schema_version"),
                user_id,
                now_iso(),
            ),
        )
    return schema_id


def bind_schema(app: App, user_id: int, entity_id: int, schema_id: str) -> None:
    """Bind a stored JSON schema to an entity."""
    app.store.run(
        "INSERT OR REPLACE INTO bindings (entity_id, schema_id, bound_by, bound_on)"
        " VALUES (?, ?, ?, ?)",
        (entity_id, schema_id, user_id, now_iso()),
    )


def seed(app: App, scenario: Mapping[str, Any]) -> dict[str, Any]:
    """Create everything a scenario describes; returns the ids by kind and key."""
    seeder = _Seeder(app)
    with app.store.tx():
        for spec in scenario.get("users", []):
            seeder.user(spec)
        steps = (
            ("projects", seeder.project),
            ("folders", seeder.folder),
            ("schemas", seeder.schema),
            ("record_sets", seeder.record_set),
            ("files", seeder.file),
            ("views", seeder.view),
        )
        for name, step in steps:
            for spec in scenario.get(name, []):
                step(spec)
        for spec in scenario.get("tasks", []):
            seeder.ids["tasks"][spec["key"]] = seeder.task(spec)
        first = next(
            (spec for spec in scenario.get("tasks", []) if spec.get("record_set")), None
        )
        for number in range(1, int(scenario.get("extra_tasks", 0)) + 1):
            assert first is not None, "extra_tasks needs a record-based task"
            seeder.task({**first, "assignee": None}, f"{first['data_type']}_{number}")
    return {"scenario": scenario.get("name", "custom"), **seeder.ids}
