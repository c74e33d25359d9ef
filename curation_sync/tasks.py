"""What the sync engine knows about tasks, record sets and validation results.

These are plain values with no synapseclient types in them: the adapter in
`synapse.py` builds them, and mapping, state and sync code use them without
importing the client.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class TaskState(str, enum.Enum):
    """The state of a curation task, as Synapse names it."""

    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    EXECUTING = "EXECUTING"
    IN_REVIEW = "IN_REVIEW"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"

    @property
    def accepts_pushes(self) -> bool:
        """Whether a contributor may still push to a task in this state."""
        return self in (TaskState.NOT_STARTED, TaskState.IN_PROGRESS)


class TaskKind(str, enum.Enum):
    """Which kind of data a task curates."""

    RECORD = "record"
    FILE = "file"
    OTHER = "other"


@dataclass(frozen=True)
class TaskInfo:
    """One curation task, as listed or fetched."""

    task_id: int
    project_id: str
    name: str
    kind: TaskKind
    record_set_id: str | None = None
    file_view_id: str | None = None
    assignee_principal_id: str | None = None
    etag: str | None = None
    modified_on: str | None = None
    instructions: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for the state store."""
        return {
            "task_id": self.task_id,
            "project_id": self.project_id,
            "name": self.name,
            "kind": self.kind.value,
            "record_set_id": self.record_set_id,
            "file_view_id": self.file_view_id,
            "assignee_principal_id": self.assignee_principal_id,
            "etag": self.etag,
            "modified_on": self.modified_on,
            "instructions": self.instructions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskInfo:
        """The inverse of `to_json`."""
        return cls(
            task_id=int(data["task_id"]),
            project_id=str(data["project_id"]),
            name=str(data["name"]),
            kind=TaskKind(data["kind"]),
            record_set_id=data.get("record_set_id"),
            file_view_id=data.get("file_view_id"),
            assignee_principal_id=data.get("assignee_principal_id"),
            etag=data.get("etag"),
            modified_on=data.get("modified_on"),
            instructions=data.get("instructions"),
        )


@dataclass(frozen=True)
class TaskStatus:
    """A task's state and the grid session linked to it."""

    task_id: int
    state: TaskState
    active_session_id: str | None = None


@dataclass(frozen=True)
class RecordSetInfo:
    """A record set's current version, upsert key and validation file."""

    record_set_id: str
    version: int
    upsert_key: tuple[str, ...]
    etag: str | None = None
    validation_file_handle_id: str | None = None


@dataclass(frozen=True)
class RecordRows:
    """The rows of one record set version, cell text as the data CSV holds it."""

    record_set_id: str
    version: int
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class GridSessionInfo:
    """A grid session, enough to decide whether it can be reused."""

    session_id: str
    started_by: str | None
    source_entity_id: str | None


@dataclass(frozen=True)
class RowValidation:
    """One line of Synapse's detailed validation results."""

    row_index: int
    is_valid: bool | None
    error_message: str | None
    all_messages: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ValidationReport:
    """The validation results of one record set version."""

    record_set_id: str
    version: int
    rows: tuple[RowValidation, ...]

    @property
    def is_clean(self) -> bool:
        """True when every row was validated and passed."""
        return all(row.is_valid is True for row in self.rows)
