"""Requests, bytes sent and daemon time for a 1-row edit in a 10,000-row workbook.

Run: `.venv/bin/python benchmarks/bench_push.py [--rows 10000] [--pushes 3]`.

The sandbox runs in a child process behind a byte-counting TCP proxy (presigned
upload and download URLs point at the proxy too), so "bytes sent" is everything the
client wrote to the network, headers included, and the daemon's CPU time leaves the
sandbox's work out. In the same run, the contributor guide's sequence by hand (new
grid session, CSV download, full import, export, record set and validation fetch)
makes the same 1-row edit as the baseline, and ratios are printed against it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The child: a sandbox with a big record set, behind a counting proxy. ------------


class CountingProxy:
    """Forwards 127.0.0.1 connections to a target port, counting bytes each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(
                target=self._pipe, args=(client, server, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe, args=(server, client, False), daemon=True
            ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        # A closed or reset connection just ends this direction's copy.
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
                with self._lock:
                    if upward:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def big_scenario(rows: int) -> dict[str, Any]:
    from curation_sync.sandbox.scenario import load_scenario

    scenario = load_scenario("demo")
    sexes = ("male", "female", "unknown")
    genotypes = ("WT", "KO", "HET")
    scenario["record_sets"][0]["rows"] = [
        [
            f"A{n:05d}",
            sexes[n % 3],
            genotypes[n % 3],
            f"{18 + (n % 90) / 10:.1f}",
            str(6 + n % 8),
            f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}",
            json.dumps([f"cohort{1 + n % 4}"], separators=(",", ":")),
        ]
        for n in range(rows)
    ]
    return scenario


def serve(data_dir: str, rows: int) -> None:
    """Child process: start the sandbox and proxy, then answer `stats` lines."""
    from curation_sync.sandbox import Sandbox

    sandbox = Sandbox(Path(data_dir), scenario=big_scenario(rows)).start()
    proxy = CountingProxy(int(sandbox.endpoint.rsplit(":", 1)[1]))
    sandbox.app.base_url = f"http://127.0.0.1:{proxy.port}"
    info = sandbox.info()
    print(json.dumps({"endpoint": sandbox.app.base_url, "info": info}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            stats = {
                "requests": len(sandbox.request_log),
                "up": proxy.up,
                "down": proxy.down,
            }
            print(json.dumps(stats), flush=True)
        elif line.strip() == "quit":
            break
    sandbox.stop()


# The parent: the daemon's push and the guide's sequence. ----------------------------


@dataclass
class Figures:
    requests: int
    sent: int
    received: int
    wall_seconds: float
    cpu_seconds: float


class Child:
    def __init__(self, data_dir: Path, rows: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(data_dir), str(rows)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        hello = json.loads(self.process.stdout.readline())
        self.endpoint: str = hello["endpoint"]
        self.info: dict[str, Any] = hello["info"]

    def stats(self) -> dict[str, int]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def measure(self, action: Callable[[], object]) -> Figures:
        before = self.stats()
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = self.stats()
        return Figures(
            after["requests"] - before["requests"],
            after["up"] - before["up"],
            after["down"] - before["down"],
            wall,
            cpu,
        )

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        self.process.wait(timeout=30)


def edit_one_cell(path: Path, row: int, value: str) -> None:
    import openpyxl

    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    columns = [cell.value for cell in sheet[1]]
    sheet.cell(row=row, column=columns.index("genotype") + 1).value = value
    book.save(path)


def guide_sequence(client: Any, task_id: int, work: Path, value: str) -> None:
    """The contributor guide's steps 3-7, by hand, for a 1-row edit."""
    from synapseclient.models import CurationTask, RecordSet

    task = CurationTask(task_id=task_id).get(synapse_client=client)
    grid = task.create_grid_session(synapse_client=client)
    downloaded = grid.download_csv(
        destination=str(work), file_name="grid.csv", synapse_client=client
    )
    with open(downloaded, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1][rows[0].index("genotype")] = value
    edited = work / "edited.csv"
    with open(edited, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    grid.import_csv(path=str(edited), synapse_client=client)
    grid.export_to_record_set(synapse_client=client)
    record_set = RecordSet(id=task.task_properties.record_set_id).get(
        synapse_client=client
    )
    record_set.get_detailed_validation_results(synapse_client=client)


def main(rows: int, pushes: int) -> None:
    import warnings

    import tqdm

    tqdm.tqdm.monitor_interval = 0
    from synapseclient import Synapse

    from curation_sync.state import StateStore
    from curation_sync.synapse import SynapseAdapter
    from curation_sync.sync import SyncEngine, SyncSettings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    child = Child(work / "sandbox", rows)
    try:
        token = child.info["users"]["demo"]["token"]
        project = child.info["projects"]["project"]
        task_id = int(child.info["tasks"]["animal_task"])
        (work / "synapseConfig").write_text("")
        adapter = SynapseAdapter(
            child.endpoint,
            token,
            cache_dir=work / "cache",
            config_path=work / "synapseConfig",
        )
        folder = work / "folder"
        folder.mkdir()
        engine = SyncEngine(
            adapter, StateStore(folder), SyncSettings(folder=folder, project_id=project)
        )
        # Time the sidecar writes separately: they are the workbook module's cost.
        sidecar_seconds: list[float] = []
        write_report = engine.ctx.write_report

        def timed_write(report: Any) -> Any:
            began = time.process_time()
            try:
                return write_report(report)
            finally:
                sidecar_seconds.append(time.process_time() - began)

        engine.ctx.write_report = timed_write
        started = time.perf_counter()
        engine.poll()
        pulled = time.perf_counter() - started
        print(f"pulled {rows} rows into the workbook in {pulled:.1f} s")
        workbook = folder / "AnimalMetadata_Curation.xlsx"

        # A no-op save: the content hash stops it before any request.
        edit_one_cell(workbook, 2, "WT")
        noop = child.measure(lambda: engine.on_settled(workbook))

        daemon: list[Figures] = []
        sidecar_seconds.clear()
        for n in range(pushes):
            edit_one_cell(workbook, 2 + n, f"HOM{n}")
            daemon.append(child.measure(lambda: engine.on_settled(workbook)))
        sidecar_per_push = sum(sidecar_seconds) / pushes
        adapter.close()

        client = Synapse(
            repoEndpoint=child.endpoint,
            authEndpoint=child.endpoint,
            fileHandleEndpoint=child.endpoint,
            portalEndpoint=child.endpoint + "/",
            skip_checks=True,
            configPath=str(work / "synapseConfig"),
            cache_root_dir=str(work / "guide-cache"),
            silent=True,
            cache_client=False,
        )
        client.login(authToken=token)
        guide = child.measure(lambda: guide_sequence(client, task_id, work, "HOMguide"))
    finally:
        child.close()

    first, steady = daemon[0], daemon[1:] or daemon

    def mean(attr: str, items: list[Figures]) -> float:
        return sum(getattr(f, attr) for f in items) / len(items)

    print(f"\n1-row edit in a {rows}-row workbook")
    print(
        f"{'':34}{'requests':>9}{'bytes sent':>12}{'bytes recv':>12}"
        f"{'wall s':>8}{'daemon cpu s':>13}"
    )
    lines = [
        ("no-op save (hash unchanged)", [noop]),
        ("daemon, first push", [first]),
        (f"daemon, next pushes (mean of {len(steady)})", steady),
        ("guide sequence (baseline)", [guide]),
    ]
    for label, items in lines:
        print(
            f"{label:34}{mean('requests', items):9.0f}{mean('sent', items):12.0f}"
            f"{mean('received', items):12.0f}{mean('wall_seconds', items):8.2f}"
            f"{mean('cpu_seconds', items):13.2f}"
        )
    print(
        f"of the daemon's cpu, writing the sidecar: {sidecar_per_push:.2f} s per push"
    )
    for label, items in lines[1:3]:
        print(
            f"ratio {label} / guide: "
            f"requests {mean('requests', items) / guide.requests:.2f}, "
            f"bytes sent {mean('sent', items) / guide.sent:.3f}, "
            f"wall {mean('wall_seconds', items) / guide.wall_seconds:.2f}, "
            f"cpu {mean('cpu_seconds', items) / guide.cpu_seconds:.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        import argparse

        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rows", type=int, default=10_000)
        parser.add_argument("--pushes", type=int, default=3)
        arguments = parser.parse_args()
        main(arguments.rows, arguments.pushes)
