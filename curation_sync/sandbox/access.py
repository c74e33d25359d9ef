"""Who may do what: project membership levels and the user profile route.

A project member has one access level. `view` grants READ and DOWNLOAD, `edit` adds
UPDATE and CREATE, `admin` adds DELETE. Sandbox administrators (`is_admin`) may do
everything everywhere, as Synapse administrators can. Every other user is a
non-member and gets 403 on the project's tasks, entities and grids.
"""

from __future__ import annotations

from curation_sync.sandbox.apierror import forbidden, not_found
from curation_sync.sandbox.server import App, Reply, Request, User

LEVELS = {
    "view": {"READ", "DOWNLOAD"},
    "edit": {"READ", "DOWNLOAD", "UPDATE", "CREATE"},
    "admin": {"READ", "DOWNLOAD", "UPDATE", "CREATE", "DELETE"},
}


def syn(entity_id: int) -> str:
    """The `synNNN` form of an entity id."""
    return f"syn{entity_id}"


def parse_syn(text: object) -> int:
    """The number of a `synNNN` id (a 404 answer for anything else)."""
    value = str(text).strip()
    digits = value[3:] if value.lower().startswith("syn") else value
    if not digits.isdigit():
        raise not_found(f"Entity {value} does not exist.")
    return int(digits)


def has_access(app: App, user: User, project_id: int, permission: str) -> bool:
    """Whether the user holds a permission on a project."""
    if user.is_admin:
        return True
    row = app.store.one(
        "SELECT access FROM members WHERE project_id = ? AND principal_id = ?",
        (project_id, user.id),
    )
    return row is not None and permission in LEVELS.get(row["access"], set())


def require(app: App, user: User, project_id: int, permission: str) -> None:
    """Answer 403 unless the user holds a permission on a project."""
    if not has_access(app, user, project_id, permission):
        raise forbidden(
            f"You lack {permission} access to the requested entity ({syn(project_id)})."
        )


def user_profile(app: App, request: Request) -> Reply:
    """GET /userProfile: the caller's profile."""
    user = request.caller
    return Reply(
        200,
        {
            "ownerId": str(user.id),
            "userName": user.user_name,
            "displayName": user.display_name,
            "firstName": user.display_name.split(" ")[0],
            "lastName": " ".join(user.display_name.split(" ")[1:]),
            "emails": [user.email],
            "etag": f"profile-{user.id}",
            "createdOn": "2026-01-01T00:00:00.000Z",
        },
    )


def register(app: App) -> None:
    """Add the routes of this module."""
    app.route("GET", r"/userProfile", user_profile)
