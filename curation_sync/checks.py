"""The local checks a workbook passes before anything is sent to Synapse.

They find what would make Synapse refuse or silently drop data (an upsert key column
missing, blank or repeated keys, columns the schema does not know) and validate every
row against the bound JSON schema with Synapse's own message texts, so the sidecar can
show the same messages a push would bring back.

Validating a 10,000-row sheet takes about a second, and most saves change a handful
of rows, so results are remembered per schema and row content: a save re-validates
only the rows it changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from curation_sync.merge import HeldBackRow, KeyedRows, format_key, key_rows
from curation_sync.validation import (
    record_from_cells,
    schema_properties,
    validate_record,
)
from curation_sync.workbook import Table

MEMO_SIZE = 200_000
# Problem kinds whose rows are held back: the cell text read is not what is shown.
HOLDING_KINDS = frozenset(
    {
        "formula-error",
        "formula-without-value",
        "merged-cells",
        "control-character",
        "cell-too-long",
    }
)


@dataclass(frozen=True)
class RowIssue:
    """One validation message at one sheet row."""

    sheet_row: int
    key: str
    column: str | None
    value: str | None
    message: str
    all_messages: tuple[str, ...]


@dataclass(frozen=True)
class LocalCheck:
    """What the local checks found in one workbook."""

    push_columns: tuple[str, ...]
    keyed: KeyedRows
    issues: tuple[RowIssue, ...]
    notes: tuple[str, ...]
    blocking: str | None
    valid_rows: int
    invalid_rows: int

    @property
    def held_back(self) -> tuple[HeldBackRow, ...]:
        """Rows that cannot be imported (blank or repeated upsert key)."""
        return self.keyed.held_back


class _Memo:
    """Validation results by (schema, columns, row cells), least recently used out."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[tuple[Any, ...], tuple[str, ...]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[str, ...] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: tuple[str, ...]) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)


_MEMO = _Memo(MEMO_SIZE)


def check_table(
    table: Table,
    schema: Mapping[str, Any] | None,
    upsert_key: Sequence[str],
    *,
    schema_id: str | None = None,
) -> LocalCheck:
    """Run every local check on a workbook read with `read_workbook`."""
    properties = schema_properties(schema) if schema else {}
    push_columns = tuple(c for c in table.columns if not properties or c in properties)
    notes = tuple(
        problem.message
        for problem in table.problems
        if problem.sheet_row is None and problem.kind != "missing-column"
    )

    missing = [name for name in upsert_key if name not in table.columns]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        blocking = (
            f"{table.sheet_name or 'the sheet'} has no {names} column; it is the "
            "record set's upsert key, so no row can be matched. Add the column back "
            "with each row's key."
        )
        return LocalCheck(
            push_columns, KeyedRows(push_columns, {}), (), notes, blocking, 0, 0
        )

    positions = [table.columns.index(name) for name in push_columns]
    rows = [tuple(row[i] for i in positions) for row in table.rows]
    keyed = _hold_unsafe_rows(
        table, key_rows(push_columns, rows, upsert_key, sheet_rows=table.sheet_rows)
    )
    issues, valid, invalid = _validate(
        table, push_columns, rows, upsert_key, schema, schema_id
    )
    return LocalCheck(push_columns, keyed, tuple(issues), notes, None, valid, invalid)


def _hold_unsafe_rows(table: Table, keyed: KeyedRows) -> KeyedRows:
    """Hold back rows whose cells were not read as the person sees them.

    A merged cell, a formula without a stored result, a control character or a
    cell longer than a spreadsheet can hold would push something other than what
    is on screen (often an empty cell over a real value), so such a row is kept
    out of the push and reported instead.
    """
    reasons: dict[int, str] = {}
    for problem in table.problems:
        if problem.kind in HOLDING_KINDS and problem.sheet_row is not None:
            reasons.setdefault(problem.sheet_row, problem.message)
    if not reasons:
        return keyed
    held = list(keyed.held_back)
    rows = dict(keyed.rows)
    where = dict(keyed.sheet_rows)
    for key, number in keyed.sheet_rows.items():
        if number in reasons:
            held.append(HeldBackRow(number, key, reasons[number]))
            rows.pop(key, None)
            where.pop(key, None)
    return KeyedRows(keyed.columns, rows, where, tuple(held))


def _validate(
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    upsert_key: Sequence[str],
    schema: Mapping[str, Any] | None,
    schema_id: str | None,
) -> tuple[list[RowIssue], int, int]:
    issues: list[RowIssue] = []
    valid = invalid = 0
    key_positions = [columns.index(name) for name in upsert_key]
    cell_problems = {
        (problem.sheet_row, problem.column): problem.message
        for problem in table.problems
        if problem.sheet_row is not None
    }
    memo_scope = (schema_id or id(schema), columns)
    for row, sheet_row in zip(rows, table.sheet_rows, strict=True):
        messages = _messages_for(row, columns, schema, memo_scope) if schema else ()
        key = format_key(tuple(row[i] for i in key_positions))
        if messages:
            invalid += 1
        else:
            valid += 1
        for message in messages:
            column = column_of(message)
            value = row[columns.index(column)] if column in columns else None
            issues.append(RowIssue(sheet_row, key, column, value, message, messages))
        for column in columns:
            problem = cell_problems.get((sheet_row, column))
            if problem is not None:
                value = row[columns.index(column)]
                issues.append(
                    RowIssue(sheet_row, key, column, value, problem, messages)
                )
    return issues, valid, invalid


def _messages_for(
    row: tuple[str, ...],
    columns: tuple[str, ...],
    schema: Mapping[str, Any],
    scope: tuple[Any, ...],
) -> tuple[str, ...]:
    memo_key = (*scope, row)
    known = _MEMO.get(memo_key)
    if known is not None:
        return known
    found = tuple(validate_record(schema, record_from_cells(schema, columns, row)))
    _MEMO.put(memo_key, found)
    return found


def column_of(message: str) -> str | None:
    """The top-level property a `#/name: ...` message is about."""
    if not message.startswith("#/"):
        if "required key [" in message:
            return message.split("required key [", 1)[1].split("]", 1)[0]
        return None
    pointer = message[2:].split(": ", 1)[0]
    return pointer.split("/", 1)[0].replace("~1", "/").replace("~0", "~")
