"""What `curation-sync status` shows for each workbook, from the state store.

A workbook is `unmapped`, `missing`, `needs confirm`, `blocked`, `retrying`,
`push pending`, `pull waiting`, `conflicts` or `in sync`, with a sentence saying why.
Nothing here sends a request: status reads only what the last push, pull and poll
recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from curation_sync.filesystem import is_open_in_editor
from curation_sync.state import StateStore


@dataclass(frozen=True)
class WorkbookStatus:
    """One line of `curation-sync status`."""

    path: Path
    task_id: int | None
    task_name: str | None
    state: str
    detail: str
    base_version: int | None = None
    last_pushed_at: dt.datetime | None = None
    task_state: str | None = None
    rows: int | None = None
    invalid_rows: int | None = None
    conflicts: int = 0
    open_in_editor: bool = False


def workbook_status(state: StateStore, path: Path) -> WorkbookStatus:
    """The status line of one workbook, from the state store alone (no request)."""
    mapped = state.mapping(path)
    if mapped is None:
        return WorkbookStatus(path, None, None, "unmapped", "maps to no task")

    stored = state.task(mapped[0])
    base = state.base(path)
    history = state.history(path, limit=1)
    last = history[0] if history else None
    push = state.outbox_entry("push", path)
    pull = state.outbox_entry("pull", path)
    if not path.exists():
        word, detail = "missing", "the file is gone"
    elif push is not None:
        word, detail = _push_state(
            push.stage, push.attempts, push.detail, push.last_error
        )
    elif pull is not None:
        word = "pull waiting"
        detail = pull.detail or pull.last_error or "a newer version is waiting"
    elif last is not None and last.conflicts:
        word = "conflicts"
        detail = f"{last.conflicts} rows in conflict at the last push; see the sidecar"
    else:
        word, detail = "in sync", "nothing pending"
    return WorkbookStatus(
        path=path,
        task_id=mapped[0],
        task_name=stored.info.name if stored else None,
        state=word,
        detail=detail,
        base_version=base.version if base else None,
        last_pushed_at=last.pushed_at if last else None,
        task_state=stored.state.value if stored and stored.state else None,
        rows=len(base.rows) if base else None,
        invalid_rows=last.invalid if last else None,
        conflicts=last.conflicts if last else 0,
        open_in_editor=path.exists() and is_open_in_editor(path),
    )


def _push_state(
    stage: str, attempts: int, detail: str | None, error: str | None
) -> tuple[str, str]:
    if stage == "awaiting-confirm":
        return "needs confirm", detail or "the push waits for an explicit confirm"
    if stage == "blocked":
        return "blocked", detail or "the task takes no pushes"
    if attempts:
        return "retrying", error or "the last attempt failed"
    return "push pending", f"the push reached stage {stage!r}"
