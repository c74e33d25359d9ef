"""Reading the files Synapse hands out: record set data CSVs and validation results.

The data CSV is read as cell text, exactly as Synapse wrote it (the sandbox and the
real service quote every non-null field and double inner quotes). The validation
results arrive as the client's pandas DataFrame with `row_index`, `is_valid` (true,
false or empty for "not validated"), `validation_error_message` and
`all_validation_messages` (a JSON array in one cell).

Limitations: a backslash that the real service escapes as `\\\\` inside a quoted
field is read as two characters; the sandbox does not escape backslashes.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from curation_sync.tasks import (
    RecordRows,
    RecordSetInfo,
    RowValidation,
    ValidationReport,
)


def read_csv_file(path: Path) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and the lines of a CSV file Synapse produced."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        lines = [line for line in csv.reader(handle) if line]
    if not lines:
        return (), []
    return tuple(lines[0]), lines[1:]


def record_rows_from(info: RecordSetInfo, path: str | None) -> RecordRows:
    """A record set version's rows from its downloaded data CSV (short lines padded)."""
    if not path:
        return RecordRows(info.record_set_id, info.version, (), ())
    header, lines = read_csv_file(Path(path))
    width = len(header)
    rows = tuple(tuple((line + [""] * width)[:width]) for line in lines)
    return RecordRows(info.record_set_id, info.version, header, rows)


def validation_report_from(info: RecordSetInfo, frame: Any) -> ValidationReport:
    """Synapse's detailed validation results, from the client's DataFrame of them."""

    def column(name: str) -> list[Any]:
        return list(frame[name].tolist()) if name in frame else [None] * len(frame)

    rows = []
    for index, flag, summary, messages in zip(
        column("row_index"),
        column("is_valid"),
        column("validation_error_message"),
        column("all_validation_messages"),
        strict=True,
    ):
        valid = _flag(flag)
        if valid is False:
            rows.append(
                RowValidation(int(index), False, _text(summary), _messages(messages))
            )
        else:
            # Valid and unknown rows carry no messages.
            rows.append(RowValidation(int(index), valid, None))
    return ValidationReport(info.record_set_id, info.version, tuple(rows))


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value)
    if text is None:
        return None
    return text.lower() == "true"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text or None


def _messages(value: Any) -> tuple[str, ...]:
    text = _text(value)
    if text is None:
        return ()
    try:
        parsed = json.loads(text)
    except ValueError:
        return (text,)
    return tuple(str(item) for item in parsed) if isinstance(parsed, list) else (text,)
