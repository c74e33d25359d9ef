"""Diffs and three-way merges of rows keyed by the record set's upsert key.

A row is a mapping from column name to cell text. Two cells are the same when their
text is equal, or when both read as the same number, the same boolean or the same
JSON array: a workbook that went through Excel shows `20` where the record set's CSV
says `20.0`, and that is not an edit.

The merge works on whole rows, as the contributor sees them: a row that changed on
both sides to different values is a conflict and is not pushed, even when the two
sides touched different columns. A cell-level merge was rejected because the grid
import overwrites every column of an imported row, so a merged row would be pushed
with values the contributor never saw in the sheet.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Key = tuple[str, ...]
Row = Mapping[str, str]

_LEADING_ZERO = re.compile(r"^[+-]?0\d")


@dataclass(frozen=True)
class HeldBackRow:
    """A workbook row that cannot be imported, and why."""

    sheet_row: int
    key: Key
    reason: str


@dataclass(frozen=True)
class KeyedRows:
    """Rows indexed by upsert key in sheet order, and the rows without a usable key."""

    columns: tuple[str, ...]
    rows: dict[Key, dict[str, str]]
    sheet_rows: dict[Key, int] = field(default_factory=dict)
    held_back: tuple[HeldBackRow, ...] = ()


@dataclass(frozen=True)
class RowDiff:
    """Keys changed, added and removed going from one set of rows to another."""

    changed: tuple[Key, ...] = ()
    added: tuple[Key, ...] = ()
    removed: tuple[Key, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when nothing changed."""
        return not (self.changed or self.added or self.removed)


@dataclass(frozen=True)
class Conflict:
    """A row changed on both sides to different values.

    `remote` is None when the row was removed on Synapse; `base` is None when both
    sides added the key.
    """

    key: Key
    local: dict[str, str]
    remote: dict[str, str] | None
    base: dict[str, str] | None
    columns: tuple[str, ...]


@dataclass(frozen=True)
class MergeResult:
    """What a push should import, what conflicts, and what waits for a pull."""

    to_push: tuple[Key, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    remote_only: tuple[Key, ...] = ()
    converged: tuple[Key, ...] = ()
    removed_locally: tuple[Key, ...] = ()


def format_key(key: Key) -> str:
    """The key as a person reads it: `A-12`, or `A-12 / 3` for a compound key."""
    return " / ".join(key)


def key_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    upsert_key: Sequence[str],
    *,
    sheet_rows: Sequence[int] | None = None,
) -> KeyedRows:
    """Index rows by upsert key; rows with a blank or repeated key are held back.

    Every row sharing a repeated key is held back, because nothing says which of them
    the contributor meant.

    Raises:
        KeyError: an upsert key column is not among `columns` (callers check this
            first and report it as a workbook problem).
    """
    positions = [list(columns).index(name) for name in upsert_key]
    listed = [tuple(row) for row in rows]
    numbers = (
        list(sheet_rows) if sheet_rows is not None else list(range(2, 2 + len(listed)))
    )
    keys = [tuple(_cell(row, i).strip() for i in positions) for row in listed]
    counts = Counter(keys)

    indexed: dict[Key, dict[str, str]] = {}
    where: dict[Key, int] = {}
    held: list[HeldBackRow] = []
    for row, key, number in zip(listed, keys, numbers, strict=True):
        if any(part == "" for part in key):
            held.append(HeldBackRow(number, key, _blank_key_reason(upsert_key)))
        elif counts[key] > 1:
            reason = f"the upsert key {format_key(key)} appears on more than one row"
            held.append(HeldBackRow(number, key, reason))
        else:
            indexed[key] = {name: _cell(row, i) for i, name in enumerate(columns)}
            where[key] = number

    return KeyedRows(tuple(columns), indexed, where, tuple(held))


def cells_equal(left: str, right: str) -> bool:
    """Whether two cell texts mean the same value."""
    if left == right:
        return True

    a, b = left.strip(), right.strip()
    if a == b:
        return True
    if a.lower() in ("true", "false") and b.lower() in ("true", "false"):
        return a.lower() == b.lower()

    number_a, number_b = _as_number(a), _as_number(b)
    if number_a is not None and number_b is not None:
        return number_a == number_b

    if a.startswith("[") and b.startswith("["):
        try:
            return bool(json.loads(a) == json.loads(b))
        except ValueError:
            return False
    return False


def rows_equal(left: Row | None, right: Row | None, columns: Iterable[str]) -> bool:
    """Whether two rows hold the same values in `columns` (a missing cell is empty)."""
    if left is None or right is None:
        return left is right
    names = tuple(columns)
    mine = [left.get(c, "") for c in names]
    theirs = [right.get(c, "") for c in names]
    # Most rows are unchanged: one list comparison in C settles them.
    if mine == theirs:
        return True
    return all(cells_equal(a, b) for a, b in zip(mine, theirs, strict=True))


def differing_columns(
    left: Row, right: Row | None, columns: Iterable[str]
) -> tuple[str, ...]:
    """The columns in which two rows differ."""
    if right is None:
        return tuple(columns)
    return tuple(
        c for c in columns if not cells_equal(left.get(c, ""), right.get(c, ""))
    )


def diff_rows(
    base: Mapping[Key, Row], current: Mapping[Key, Row], columns: Iterable[str]
) -> RowDiff:
    """Keys changed (in `columns`), added and removed from `base` to `current`."""
    compared = tuple(columns)
    changed = tuple(
        key
        for key, row in current.items()
        if key in base and not rows_equal(base[key], row, compared)
    )
    added = tuple(key for key in current if key not in base)
    removed = tuple(key for key in base if key not in current)
    return RowDiff(changed, added, removed)


def merge_rows(
    base: Mapping[Key, Row],
    local: Mapping[Key, Row],
    remote: Mapping[Key, Row],
    columns: Sequence[str],
) -> MergeResult:
    """Merge local and remote changes made since `base`, by upsert key.

    `columns` are the workbook's columns that go to Synapse; local rows are compared
    on them only, since the import leaves other grid columns alone.
    """
    compared = tuple(columns)
    mine = diff_rows(base, local, compared)
    # When Synapse did not move on, the caller passes the base itself.
    theirs = (
        RowDiff()
        if remote is base
        else diff_rows(base, remote, _union_columns(base, remote))
    )
    theirs_touched = set(theirs.changed) | set(theirs.added) | set(theirs.removed)

    to_push: list[Key] = []
    conflicts: list[Conflict] = []
    converged: list[Key] = []
    for key in (*mine.changed, *mine.added):
        if key not in theirs_touched:
            to_push.append(key)
            continue

        remote_row = remote.get(key)
        if rows_equal(local[key], remote_row, compared):
            converged.append(key)
            continue

        base_row = dict(base[key]) if key in base else None
        conflicts.append(
            Conflict(
                key=key,
                local=dict(local[key]),
                remote=dict(remote_row) if remote_row is not None else None,
                base=base_row,
                columns=differing_columns(local[key], remote_row, compared),
            )
        )

    mine_touched = set(mine.changed) | set(mine.added) | set(mine.removed)
    remote_only = tuple(key for key in _ordered(theirs) if key not in mine_touched)
    return MergeResult(
        to_push=tuple(to_push),
        conflicts=tuple(conflicts),
        remote_only=remote_only,
        converged=tuple(converged),
        removed_locally=mine.removed,
    )


def next_base(
    remote_after: Mapping[Key, Row],
    local: Mapping[Key, Row],
    old_base: Mapping[Key, Row],
    columns: Sequence[str],
    *,
    pushed: Collection[Key] = (),
) -> tuple[dict[Key, dict[str, str]], bool]:
    """The base to keep after a push, and whether the workbook is fully in step.

    A key takes Synapse's row when the workbook holds the same values. Otherwise it
    keeps its old base row (or stays out of the base): an open conflict stays an
    unpushed edit, so the next save cannot overwrite the other side by accident, and
    a row changed only on Synapse still waits for a pull instead of looking like a
    local edit that reverts it. A row removed from the workbook takes Synapse's row,
    so it keeps being reported as removed.

    A row this push imported (`pushed`) that Synapse now holds differently (it
    stored a value in its own spelling, or someone changed it since) takes the
    values that were sent: the workbook has no unpushed edit there, and Synapse's
    version arrives with the next pull instead of showing up as a false conflict.

    The second value is False when some key is not in step; the caller then keeps
    the old base version, so the next push fetches Synapse's rows and merges again.
    """
    compared = tuple(columns)
    rows: dict[Key, dict[str, str]] = {}
    settled = True
    for key, remote_row in remote_after.items():
        local_row = local.get(key)
        in_step = (
            key in old_base
            if local_row is None
            else rows_equal(local_row, remote_row, compared)
        )
        if in_step:
            rows[key] = dict(remote_row)
            continue

        settled = False
        if local_row is not None and key in pushed:
            rows[key] = {**remote_row, **{c: local_row.get(c, "") for c in compared}}
        elif key in old_base:
            rows[key] = dict(old_base[key])

    for key, base_row in old_base.items():
        if key not in remote_after and key in local:
            settled = False
            rows[key] = dict(base_row)
    return rows, settled


def change_share(diff: RowDiff, base_count: int) -> float:
    """The share of the base's rows that a push would change or remove."""
    if base_count <= 0:
        return 0.0
    return (len(diff.changed) + len(diff.removed)) / base_count


def _cell(row: Sequence[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def _blank_key_reason(upsert_key: Sequence[str]) -> str:
    names = ", ".join(upsert_key)
    return f"the upsert key ({names}) is blank, so Synapse cannot import this row"


def _as_number(text: str) -> float | None:
    # "007" and "7" are different identifiers, not one number written two ways.
    if _LEADING_ZERO.match(text):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _union_columns(*sides: Mapping[Key, Row]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for side in sides:
        for row in side.values():
            seen.update(dict.fromkeys(row))
    return tuple(seen)


def _ordered(diff: RowDiff) -> tuple[Key, ...]:
    return (*diff.changed, *diff.added, *diff.removed)
