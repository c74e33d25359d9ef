"""Which task a workbook belongs to, and what a new task's workbook is called.

Three ways map a workbook to a task, tried in this order:

1. an explicit rule from the configuration (a path or glob relative to the watched
   folder, naming a task by id or by name);
2. the task identity stored inside the workbook when curation-sync wrote it, so a
   pulled workbook keeps its task after being renamed or moved within the folder;
3. the automatic name: a workbook at the top of the watched folder named after a task
   assigned to the user.

Explicit rules come first because they are the only way a person can override the
other two. A workbook that maps to nothing is left alone.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from curation_sync.errors import MappingError
from curation_sync.tasks import TaskInfo

WORKBOOK_SUFFIXES = (".csv", ".xlsx")
MAX_NAME_LENGTH = 120

# Device names Windows refuses as file names, with or without an extension.
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CLOCK$",
    *(f"COM{n}" for n in range(10)),
    *(f"LPT{n}" for n in range(10)),
    *(f"COM{n}" for n in "¹²³"),
    *(f"LPT{n}" for n in "¹²³"),
}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')

MappingSource = Literal["rule", "identity", "name"]


@dataclass(frozen=True)
class MappingRule:
    """An explicit mapping: workbooks matching `pattern` belong to one task.

    `pattern` is a path or an `fnmatch` glob relative to the watched folder (a `*`
    also matches across sub-folders). The task is named by `task_id`, or by
    `task_name` within `project_id` (the folder's project when None).
    """

    pattern: str
    task_id: int | None = None
    task_name: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class WorkbookMapping:
    """The task a workbook belongs to, and which of the three ways found it."""

    path: Path
    task_id: int
    source: MappingSource


def is_workbook_path(path: Path) -> bool:
    """Whether a path names a CSV or XLSX workbook (not an Office lock or temp file)."""
    name = path.name
    if name.startswith(("~$", ".~lock", ".")):
        return False
    return path.suffix.lower() in WORKBOOK_SUFFIXES


def safe_name(name: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A file name stem made from a task name that every common file system accepts.

    Separators, control and reserved characters become `_`, runs of dots collapse to
    one, leading and trailing dots and spaces go, Windows device names such as `CON`
    or `COM1` get a trailing `_`, and the result is at most `max_length` characters.
    """
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    text = text[:max_length].rstrip(" .")
    if not text or set(text) <= {"_"}:
        text = "task"
    # A name like an Office lock file (`~$Book.xlsx`) would never be watched.
    if text.startswith("~$"):
        text = "_" + text[1:]

    # Windows reserves a device name whatever follows its first dot (`NUL.txt`).
    head, dot, rest = text.partition(".")
    if head.upper() in _RESERVED:
        text = (head + "_" + dot + rest)[:max_length].rstrip(" .")
    return text


def workbook_names(
    tasks: Iterable[TaskInfo], *, suffix: str = ".xlsx"
) -> dict[int, str]:
    """The file name each task's workbook gets; clashes get the task id appended."""
    ordered = sorted(tasks, key=lambda task: task.task_id)
    stems = {task.task_id: safe_name(task.name) for task in ordered}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1

    names: dict[int, str] = {}
    for task_id, stem in stems.items():
        if counts[stem.casefold()] > 1:
            tail = f" (task {task_id})"
            stem = safe_name(stem[: MAX_NAME_LENGTH - len(tail)] + tail)
        names[task_id] = stem + suffix
    return names


def match_rule(
    relative: PurePosixPath, rules: Sequence[MappingRule]
) -> MappingRule | None:
    """The first rule whose pattern matches a path relative to the watched folder."""
    text = relative.as_posix()
    for rule in rules:
        pattern = PurePosixPath(rule.pattern.replace("\\", "/")).as_posix()
        if text == pattern or fnmatch.fnmatchcase(text, pattern):
            return rule
    return None


def resolve_rule(rule: MappingRule, tasks: Sequence[TaskInfo], project_id: str) -> int:
    """The task id a rule names.

    Raises:
        MappingError: the rule names no task, or a name shared by several tasks.
    """
    if rule.task_id is not None:
        return rule.task_id

    project = rule.project_id or project_id
    found = [t for t in tasks if t.name == rule.task_name and t.project_id == project]
    if len(found) == 1:
        return found[0].task_id
    if not found:
        raise MappingError(
            f"The mapping rule for {rule.pattern!r} names task {rule.task_name!r}, "
            f"but project {project} has no task assigned to you with that name; "
            "check the name in the configuration."
        )
    ids = ", ".join(str(t.task_id) for t in found)
    raise MappingError(
        f"The mapping rule for {rule.pattern!r} names task {rule.task_name!r}, which "
        f"matches several tasks ({ids}); name the task by id instead."
    )


def resolve_mapping(
    path: Path,
    *,
    folder: Path,
    rules: Sequence[MappingRule],
    tasks: Sequence[TaskInfo],
    project_id: str,
    identity_task_id: int | None,
    suffix_names: dict[int, str] | None = None,
) -> WorkbookMapping | None:
    """The task a workbook belongs to, or None when it maps to nothing.

    `identity_task_id` is the task id stored inside the workbook, if any.
    `suffix_names` are the automatic names (see `workbook_names`) to match; by default
    they are computed from `tasks` for both workbook suffixes.

    Raises:
        MappingError: an explicit rule matches but names no task or an ambiguous one.
    """
    try:
        relative = PurePosixPath(
            path.resolve().relative_to(folder.resolve()).as_posix()
        )
    except ValueError:
        return None

    rule = match_rule(relative, rules)
    if rule is not None:
        return WorkbookMapping(path, resolve_rule(rule, tasks, project_id), "rule")

    if identity_task_id is not None:
        return WorkbookMapping(path, identity_task_id, "identity")

    if len(relative.parts) != 1:
        return None
    wanted = relative.name.casefold()
    for task_id, name in _automatic_names(tasks, suffix_names):
        if name.casefold() == wanted:
            return WorkbookMapping(path, task_id, "name")
    return None


def _automatic_names(
    tasks: Sequence[TaskInfo], given: dict[int, str] | None
) -> list[tuple[int, str]]:
    if given is not None:
        return list(given.items())
    return [
        (task_id, name)
        for suffix in WORKBOOK_SUFFIXES
        for task_id, name in workbook_names(tasks, suffix=suffix).items()
    ]
