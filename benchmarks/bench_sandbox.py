"""How long a full push cycle takes against the sandbox, with the real client.

One cycle: create a grid session on a record set, import an edited CSV (every tenth
row changed, one row in a hundred invalid), synchronize PULL_PUSH, fetch the record
set (downloading the new data CSV) and its detailed validation results. Run for a
1,000-row record set (the baseline) and for larger ones; figures are seconds per
phase and the ratio of each size's total to the baseline's.

Usage:
    .venv/bin/python benchmarks/bench_sandbox.py [ROWS ...]   # default: 1000 100000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tqdm

tqdm.tqdm.monitor_interval = 0

from synapseclient import Synapse  # noqa: E402
from synapseclient.models import Grid, RecordSet, SyncType  # noqa: E402

from curation_sync.sandbox import Sandbox  # noqa: E402
from curation_sync.sandbox.scenario import load_scenario  # noqa: E402

SEXES = ("male", "female", "unknown")


def _row(number: int, *, edited: bool = False) -> list[str]:
    genotype = "KO" if edited else "WT"
    sex = "other" if edited and number % 100 == 0 else SEXES[number % 3]
    tags = '["cohort1"]' if number % 2 else "[]"
    return [
        f"A{number:06d}",
        sex,
        genotype,
        f"{20 + number % 10}.5",
        str(number % 52),
        "2026-01-05",
        tags,
    ]


def _scenario(rows: int) -> dict[str, Any]:
    scenario = load_scenario("demo")
    record_set = dict(scenario["record_sets"][0])
    record_set["rows"] = [_row(number) for number in range(rows)]
    return {**scenario, "record_sets": [record_set]}


def _edited_csv(path: Path, rows: int) -> None:
    header = "animal_id,sex,genotype,weight_g,age_weeks,birth_date,tags\n"
    lines = []
    for number in range(0, rows, 10):
        cells = _row(number, edited=True)
        cells[-1] = '"' + cells[-1].replace('"', '""') + '"'
        lines.append(",".join(cells))
    path.write_text(header + "\n".join(lines) + "\n")


def _cycle(rows: int, folder: Path) -> dict[str, float]:
    timings: dict[str, float] = {}
    with Sandbox(folder / "data", scenario=_scenario(rows)) as sandbox:
        endpoint = sandbox.endpoint
        client = Synapse(
            repoEndpoint=endpoint,
            authEndpoint=endpoint,
            fileHandleEndpoint=endpoint,
            portalEndpoint=endpoint + "/",
            skip_checks=True,
            configPath=str(folder / "config"),
            cache_root_dir=str(folder / "cache"),
            silent=True,
        )
        client.login(authToken=sandbox.token("demo"))
        record_set_id = sandbox.info()["record_sets"]["animals"]
        edited = folder / "edited.csv"
        _edited_csv(edited, rows)

        started = time.perf_counter()
        grid = Grid(record_set_id=record_set_id).create(synapse_client=client)
        timings["create grid"] = time.perf_counter() - started

        mark = time.perf_counter()
        grid.import_csv(path=str(edited), synapse_client=client)
        timings["import csv"] = time.perf_counter() - mark

        mark = time.perf_counter()
        grid.synchronize(sync_type=SyncType.PULL_PUSH, synapse_client=client)
        timings["synchronize"] = time.perf_counter() - mark

        mark = time.perf_counter()
        record_set = RecordSet(id=record_set_id).get(synapse_client=client)
        timings["record set get"] = time.perf_counter() - mark

        mark = time.perf_counter()
        report = record_set.get_detailed_validation_results(synapse_client=client)
        timings["validation results"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started

        invalid = int((~report["is_valid"]).sum())
        if len(report) != rows or invalid != len(range(0, rows, 100)):
            raise SystemExit(
                f"Unexpected report: {len(report)} rows, {invalid} invalid"
            )
        client._requests_session.close()
        client._requests_session_storage.close()
    return timings


def main(argv: list[str]) -> int:
    sizes = [int(arg) for arg in argv] or [1000, 100_000]
    results = {}
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
            results[rows] = _cycle(rows, Path(folder))
    baseline = results[sizes[0]]["total"]
    phases = list(results[sizes[0]])
    print(f"{'rows':>8}  " + "  ".join(f"{phase:>18}" for phase in phases) + "  ratio")
    for rows, timings in results.items():
        figures = "  ".join(f"{timings[phase]:>17.2f}s" for phase in phases)
        print(f"{rows:>8}  {figures}  {timings['total'] / baseline:5.1f}x")
    for rows, timings in results.items():
        per_row = timings["total"] / rows * 1e6
        print(f"{rows:>8} rows: {per_row:.1f} microseconds per row for the whole cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
