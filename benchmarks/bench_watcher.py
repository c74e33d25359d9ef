"""What watching costs: 1,000 idle workbooks, and how long a save takes to settle.

Each measurement runs in a fresh process so that its CPU time and peak memory
are its own:

- baseline: the same interpreter, imports and 1,000 workbooks, no watcher;
- native and polling: a Watcher on the folder, idle for --seconds after its
  start-up baseline, then --saves atomic saves, each timed from the save's
  os.replace to its "settled" notice.

CPU and memory are printed beside the baseline's and as a ratio to it; the
latencies as seconds and as a ratio to the configured debounce (the floor).

    .venv/bin/python benchmarks/bench_watcher.py [--seconds 60] [--saves 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openpyxl

from curation_sync.watcher import Watcher


def xlsx_bytes(rows: int, seed: int) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["animal_id", "genotype", "sex", "weight_g"])
    for i in range(rows):
        sheet.append([f"A{seed}-{i}", "wt", "female", i / 3])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def make_workbooks(folder: Path, count: int) -> list[Path]:
    """`count` workbooks, half CSV and half XLSX, in 20 project/task folders."""
    template = xlsx_bytes(50, 0)
    paths = []
    for i in range(count):
        sub = folder / f"project-{i % 4}" / f"task-{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2:
            path = sub / f"book-{i}.xlsx"
            path.write_bytes(template)
        else:
            path = sub / f"book-{i}.csv"
            path.write_text(f"animal_id,genotype\nA{i},wt\n")
        paths.append(path)
    return paths


def wait_until_idle(watcher: Watcher, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not watcher.is_idle():
        if time.monotonic() > deadline:
            raise RuntimeError("the watcher did not become idle")
        time.sleep(0.05)


def child(mode: str, options: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-watcher-{mode}-"))
    paths = make_workbooks(folder, options.workbooks)
    notices: queue.Queue[tuple[Path, float]] = queue.Queue()
    result: dict[str, Any] = {"mode": mode}

    watcher = None
    if mode != "baseline":
        watcher = Watcher(
            [folder],
            lambda path: notices.put((path, time.monotonic())),
            debounce_seconds=options.debounce,
            observer=mode,
            polling_interval_seconds=options.polling_interval,
        )
        started = time.monotonic()
        watcher.start()
        wait_until_idle(watcher)
        result["startup_seconds"] = time.monotonic() - started

    # Idle: nothing changes for the whole period.
    cpu_before = time.process_time()
    time.sleep(options.seconds)
    result["idle_cpu_seconds"] = time.process_time() - cpu_before
    result["idle_notices"] = notices.qsize()

    if watcher is not None:
        result["latencies"] = measure_latencies(watcher, paths, notices, options)
        watcher.stop()

    shutil.rmtree(folder)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is KiB on Linux and bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    result["peak_rss_mib"] = usage.ru_maxrss * scale / 2**20
    return result


def measure_latencies(
    watcher: Watcher,
    paths: list[Path],
    notices: queue.Queue[tuple[Path, float]],
    options: argparse.Namespace,
) -> list[float]:
    chooser = random.Random(7)
    latencies = []
    for n in range(options.saves):
        path = chooser.choice(paths)
        data = (
            xlsx_bytes(20, n + 1)
            if path.suffix == ".xlsx"
            else f"animal_id,genotype\nA{n},ko\n".encode()
        )
        # A random phase, so that saves do not lock onto the polling cycle.
        time.sleep(chooser.uniform(0, options.polling_interval))
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(data)
        os.replace(temp, path)
        saved = time.monotonic()
        timeout = options.debounce + options.polling_interval + 30
        settled_path, settled_at = notices.get(timeout=timeout)
        if settled_path != path:
            raise RuntimeError(f"expected a notice for {path}, got {settled_path}")
        latencies.append(settled_at - saved)
        wait_until_idle(watcher)
    return latencies


def run_child(mode: str, options: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, *sys.argv[1:]]
    output = subprocess.run(command, check=False, capture_output=True, text=True)
    if output.returncode != 0:
        raise RuntimeError(f"the {mode} run failed:\n{output.stderr}")
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def report(results: list[dict[str, Any]], options: argparse.Namespace) -> None:
    base = results[0]
    print(
        f"{options.workbooks} workbooks, idle {options.seconds:.0f} s, debounce "
        f"{options.debounce} s, polling interval {options.polling_interval} s, "
        f"{options.saves} saves"
    )
    print(
        f"{'mode':9} {'start s':>8} {'idle CPU s':>11} {'x base':>7} "
        f"{'CPU %':>6} {'peak MiB':>9} {'x base':>7} {'notices':>8}"
    )
    for result in results:
        cpu = result["idle_cpu_seconds"]
        # A baseline under a millisecond makes a ratio meaningless.
        base_cpu = base["idle_cpu_seconds"]
        cpu_ratio = f"{cpu / base_cpu:7.1f}" if base_cpu >= 0.001 else f"{'n/a':>7}"
        print(
            f"{result['mode']:9} {result.get('startup_seconds', 0.0):8.2f} "
            f"{cpu:11.3f} {cpu_ratio} "
            f"{100 * cpu / options.seconds:6.2f} {result['peak_rss_mib']:9.1f} "
            f"{result['peak_rss_mib'] / base['peak_rss_mib']:7.2f} "
            f"{result['idle_notices']:8d}"
        )

    print(f"{'mode':9} {'median s':>9} {'worst s':>8} {'median/debounce':>16} "
          f"{'worst/debounce':>15}")  # fmt: skip
    for result in results[1:]:
        latencies = result["latencies"]
        median, worst = statistics.median(latencies), max(latencies)
        print(
            f"{result['mode']:9} {median:9.3f} {worst:8.3f} "
            f"{median / options.debounce:16.2f} {worst / options.debounce:15.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workbooks", type=int, default=1000)
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--debounce", type=float, default=2.0)
    parser.add_argument("--polling-interval", type=float, default=5.0)
    parser.add_argument("--child", choices=["baseline", "native", "polling"])
    options = parser.parse_args()

    if options.child:
        print(json.dumps(child(options.child, options)))
        return

    results = [run_child(mode, options) for mode in ("baseline", "native", "polling")]
    report(results, options)


if __name__ == "__main__":
    main()
