"""What a push tells the person about one workbook, and how it becomes a sidecar.

The sync engine fills a `WorkbookReport`: validation messages at sheet rows (from the
local check, then from Synapse), conflicts with both values, keys removed locally,
rows held back, and notes such as "the task is COMPLETED". `sidecar_writer` turns it
into the workbook module's `SidecarReport` and writes the sidecar beside the
workbook. Notes that belong to no row are shown as violations without a sheet row,
since the sidecar has no other place for a sentence about the whole workbook.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from curation_sync.checks import LocalCheck, RowIssue, column_of
from curation_sync.merge import Conflict, HeldBackRow, Key, MergeResult, format_key
from curation_sync.sidecar import Conflict as SidecarConflict
from curation_sync.sidecar import (
    Counts,
    HeldBack,
    NotPushed,
    ReportData,
    SidecarReport,
    Violation,
    write_sidecar,
)
from curation_sync.tasks import RecordRows, TaskInfo, ValidationReport
from curation_sync.workbook import Table

LOCAL_CHECK = "local check"
SYNAPSE = "Synapse"


@dataclass(frozen=True)
class WorkbookReport:
    """Everything the sidecar of one workbook shows."""

    workbook: Path
    task: TaskInfo
    version: int | None
    source: str
    validated_at: dt.datetime
    valid: int = 0
    invalid: int = 0
    unknown: int = 0
    issues: tuple[RowIssue, ...] = ()
    conflicts: tuple[tuple[Conflict, int | None], ...] = ()
    removed: tuple[str, ...] = ()
    held_back: tuple[HeldBackRow, ...] = ()
    notes: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    sheet_rows: tuple[int, ...] = ()

    @property
    def is_clean(self) -> bool:
        """No violation, nothing held back or in conflict, every row validated."""
        return not (
            self.invalid
            or self.unknown
            or self.issues
            or self.conflicts
            or self.removed
            or self.held_back
        )

    def with_note(self, note: str) -> WorkbookReport:
        """The same report with one more note."""
        return replace(self, notes=(*self.notes, note))


ReportWriter = Callable[[WorkbookReport], Path | None]


def note_report(
    workbook: Path, task: TaskInfo, note: str, *, at: dt.datetime
) -> WorkbookReport:
    """A report that only says one thing about the workbook."""
    return WorkbookReport(workbook, task, None, LOCAL_CHECK, at, notes=(note,))


def local_report(
    workbook: Path, task: TaskInfo, table: Table, check: LocalCheck, *, at: dt.datetime
) -> WorkbookReport:
    """The report of the local checks, written before anything is sent."""
    notes = check.notes + ((check.blocking,) if check.blocking else ())
    return WorkbookReport(
        workbook=workbook,
        task=task,
        version=None,
        source=LOCAL_CHECK,
        validated_at=at,
        valid=check.valid_rows,
        invalid=check.invalid_rows,
        issues=check.issues,
        held_back=check.held_back,
        notes=notes,
        columns=table.columns,
        rows=table.rows,
        sheet_rows=table.sheet_rows,
    )


def synapse_report(
    local: WorkbookReport,
    check: LocalCheck,
    merged: MergeResult,
    conflicts: Sequence[Conflict],
    after: RecordRows,
    validation: ValidationReport | None,
    upsert_key: Sequence[str],
    *,
    errors: Sequence[str] = (),
    at: dt.datetime,
) -> WorkbookReport:
    """Synapse's validation results at the person's sheet rows, plus what was held.

    Each result's `row_index` is a row of the new version's data; its upsert key
    finds the sheet row. Rows of the record set that are not in the workbook are
    left out of the counts.
    """
    sheet_rows = check.keyed.sheet_rows
    positions = [after.columns.index(n) for n in upsert_key if n in after.columns]
    issues: list[RowIssue] = []
    valid = invalid = unknown = 0
    for result in validation.rows if validation is not None else ():
        if result.row_index >= len(after.rows) or len(positions) != len(upsert_key):
            continue
        key: Key = tuple(after.rows[result.row_index][i] for i in positions)
        if key not in sheet_rows:
            continue
        if result.is_valid is None:
            unknown += 1
        elif result.is_valid:
            valid += 1
        else:
            invalid += 1
            issues.extend(
                _issues(result.all_messages, result.error_message, key, check)
            )

    notes = [*local.notes, *(f"Synapse: {message}" for message in errors)]
    if validation is None:
        notes.append(
            "Synapse produced no validation results for this version; check that a "
            "JSON schema is bound to the record set."
        )
    if conflicts:
        notes.append(
            f"{len(conflicts)} rows were changed both here and on Synapse and were not "
            "pushed (see Not pushed). To take Synapse's values, copy them into the "
            "sheet and save; to keep yours, run `curation-sync push "
            f"--overwrite-conflicts {local.workbook.name}`."
        )
    if merged.remote_only:
        notes.append(
            f"{len(merged.remote_only)} rows changed on Synapse since your last pull; "
            "they are written into the workbook once it is closed and has no "
            "unpushed edits."
        )
    return replace(
        local,
        version=after.version,
        source=SYNAPSE,
        validated_at=at,
        valid=valid,
        invalid=invalid,
        unknown=unknown,
        issues=tuple(issues),
        conflicts=tuple((c, sheet_rows.get(c.key)) for c in conflicts),
        removed=tuple(format_key(key) for key in merged.removed_locally),
        notes=tuple(notes),
    )


def _issues(
    messages: Sequence[str], summary: str | None, key: Key, check: LocalCheck
) -> list[RowIssue]:
    listed = tuple(messages) or ((summary or "the row is invalid"),)
    row = check.keyed.rows.get(key, {})
    sheet_row = check.keyed.sheet_rows[key]
    found = []
    for message in listed:
        column = column_of(message)
        value = row.get(column) if column else None
        found.append(
            RowIssue(sheet_row, format_key(key), column, value, message, listed)
        )
    return found


def to_sidecar(report: WorkbookReport) -> SidecarReport:
    """The workbook module's sidecar model of a report."""
    violations = [
        Violation(
            sheet_row=issue.sheet_row,
            key=issue.key,
            column=issue.column,
            value=issue.value or "",
            message=issue.message,
            all_messages=issue.all_messages,
        )
        for issue in report.issues
    ]
    violations += [Violation(None, "", None, "", note) for note in report.notes]
    return SidecarReport(
        task_id=report.task.task_id,
        task_name=report.task.name,
        record_set_id=report.task.record_set_id or report.task.file_view_id or "",
        version=report.version,
        validated_at=report.validated_at,
        counts=Counts(report.valid, report.invalid, report.unknown),
        violations=tuple(violations),
        not_pushed=NotPushed(
            conflicts=tuple(_conflict_cells(report.conflicts)),
            removed_keys=report.removed,
            held_back=tuple(
                HeldBack(row.sheet_row, format_key(row.key), row.reason)
                for row in report.held_back
            ),
        ),
        data=ReportData(report.columns, report.rows, report.sheet_rows)
        if report.columns
        else None,
        source=report.source,
    )


def _conflict_cells(
    conflicts: Sequence[tuple[Conflict, int | None]],
) -> list[SidecarConflict]:
    cells = []
    for conflict, sheet_row in conflicts:
        for column in conflict.columns or ("(row)",):
            remote = (
                "(removed on Synapse)"
                if conflict.remote is None
                else conflict.remote.get(column, "")
            )
            cells.append(
                SidecarConflict(
                    key=format_key(conflict.key),
                    column=column,
                    local_value=conflict.local.get(column, ""),
                    remote_value=remote,
                    sheet_row=sheet_row,
                )
            )
    return cells


def sidecar_writer(
    *, fmt: str = "xlsx", name_template: str, remove_when_valid: bool = False
) -> ReportWriter:
    """A report writer that writes each report as the workbook's sidecar."""

    def write(report: WorkbookReport) -> Path | None:
        return write_sidecar(
            report.workbook,
            to_sidecar(report),
            fmt=fmt,
            name_template=name_template,
            remove_when_valid=remove_when_valid,
        )

    return write
