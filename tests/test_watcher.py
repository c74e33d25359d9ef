"""The watcher against real save patterns, on real native and polling observers.

Every test does real file operations in tmp_path (the sequences are the ones in
SAVE-PATTERNS: Excel's rename dance, LibreOffice's lock and temp, slow copies,
openpyxl in place) and asserts the exact notices, then that no further notice
arrives within a quiet window longer than the debounce plus a few polls.
"""

from __future__ import annotations

import io
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from curation_sync.watcher import Watcher

DEBOUNCE = 0.3
STABLE = 0.1
POLL = 0.2
# Longer than a debounce, a stable look and a few polls: what "no more" means.
QUIET = DEBOUNCE + STABLE + 3 * POLL + 0.5
WAIT = 20.0
SOFFICE = shutil.which("soffice")
SYSTEM_PYTHON = "/usr/bin/python3"


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def animals(n: int, start: int = 0) -> list[list[Any]]:
    header: list[Any] = ["animal_id", "genotype", "sex", "weight_g"]
    return [header] + [[f"A{i}", "wt", "female", i / 3] for i in range(start, n)]


class Recorder:
    """Collects every notice as (kind, paths relative to the watched folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.notices: queue.Queue[tuple[str, ...]] = queue.Queue()

    def _put(self, kind: str, *paths: Path) -> None:
        names = [path.relative_to(self.folder).as_posix() for path in paths]
        self.notices.put((kind, *names))

    def settled(self, path: Path) -> None:
        self._put("settled", path)

    def deleted(self, path: Path) -> None:
        self._put("deleted", path)

    def moved(self, old: Path, new: Path) -> None:
        self._put("moved", old, new)

    def opened(self, path: Path) -> None:
        self._put("opened", path)

    def closed(self, path: Path) -> None:
        self._put("closed", path)

    def expect(self, *expected: tuple[str, ...], timeout: float = WAIT) -> None:
        """Exactly these notices (in any order), then none within QUIET."""
        got: list[tuple[str, ...]] = []
        deadline = time.monotonic() + timeout
        while len(got) < len(expected):
            remaining = deadline - time.monotonic()
            try:
                got.append(self.notices.get(timeout=max(remaining, 0.01)))
            except queue.Empty:
                break
        quiet_until = time.monotonic() + QUIET
        while (remaining := quiet_until - time.monotonic()) > 0:
            try:
                got.append(self.notices.get(timeout=remaining))
            except queue.Empty:
                break
        assert sorted(got) == sorted(expected)


Start = Callable[..., tuple[Watcher, Recorder]]


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert leaked == []


@pytest.fixture(params=["native", "polling"])
def observer_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "watched"
    folder.mkdir()
    return folder


@pytest.fixture
def start(watched: Path, observer_kind: str) -> Iterator[Start]:
    watchers: list[Watcher] = []

    def start_watcher(**options: Any) -> tuple[Watcher, Recorder]:
        recorder = Recorder(watched)
        settings: dict[str, Any] = {
            "on_deleted": recorder.deleted,
            "on_moved": recorder.moved,
            "on_editor_opened": recorder.opened,
            "on_editor_closed": recorder.closed,
            "debounce_seconds": DEBOUNCE,
            "stable_seconds": STABLE,
            "observer": observer_kind,
            "polling_interval_seconds": POLL,
        }
        settings.update(options)
        on_settled = settings.pop("on_settled", recorder.settled)
        watcher = Watcher([watched], on_settled, **settings)
        watchers.append(watcher)
        watcher.start()
        wait_until(watcher.is_idle)
        assert set(watcher.observer_kinds.values()) == {observer_kind}
        return watcher, recorder

    yield start_watcher
    for watcher in watchers:
        watcher.stop()


def excel_save(path: Path, data: bytes) -> None:
    """Excel's modern save: temp in the folder, original renamed away, temp in."""
    temp = path.parent / secrets.token_hex(4).upper()
    with temp.open("wb") as stream:
        for offset in range(0, len(data), 4096):
            stream.write(data[offset : offset + 4096])
            stream.flush()
    backup = path.parent / f"{secrets.token_hex(4).upper()}.tmp"
    os.rename(path, backup)
    os.rename(temp, path)
    backup.unlink()


def libreoffice_save(path: Path, data: bytes) -> None:
    """LibreOffice's save of an existing file: lock, lu*.tmp, rename over it."""
    lock = path.parent / f".~lock.{path.name}#"
    lock.write_text(",root,vm,03.12.2026 12:33,file:///tmp/lo_profile;")
    temp = path.parent / f"lu{secrets.token_hex(5)}.tmp"
    temp.write_bytes(data[: len(data) // 2])
    with temp.open("ab") as stream:
        stream.write(data[len(data) // 2 :])
    os.replace(temp, path)
    lock.unlink()


def daemon_write(path: Path, data: bytes) -> None:
    """The daemon's atomic write: a dot temp in the same folder, then replace."""
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    with temp.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temp, path)


def test_a_new_csv_gets_exactly_one_notice(start: Start, watched: Path) -> None:
    _, recorder = start()

    (watched / "animals.csv").write_text("animal_id,genotype\nA1,wt\n")

    recorder.expect(("settled", "animals.csv"))


def test_an_excel_save_gets_one_notice_and_no_deletion(
    start: Start, watched: Path
) -> None:
    book = watched / "Book1.xlsx"
    book.write_bytes(xlsx_bytes(animals(3)))
    _, recorder = start()

    owner = watched / "~$Book1.xlsx"
    owner.write_bytes(b"\x05curat" + b" " * 159)
    recorder.expect(("opened", "Book1.xlsx"))
    excel_save(book, xlsx_bytes(animals(4)))
    recorder.expect(("settled", "Book1.xlsx"))
    excel_save(book, xlsx_bytes(animals(5)))
    owner.unlink()

    recorder.expect(("settled", "Book1.xlsx"), ("closed", "Book1.xlsx"))


def test_an_excel_save_that_deletes_the_original_first_gets_one_notice(
    start: Start, watched: Path
) -> None:
    book = watched / "Book1.xlsx"
    book.write_bytes(xlsx_bytes(animals(3)))
    _, recorder = start()

    temp = watched / "Cedd4100"
    temp.write_bytes(xlsx_bytes(animals(6)))
    book.unlink()
    os.rename(temp, book)

    recorder.expect(("settled", "Book1.xlsx"))


def test_office_owner_lock_and_temp_files_alone_give_no_workbook_notice(
    start: Start, watched: Path
) -> None:
    _, recorder = start()

    for name in ("~$Book1.xlsx", "A1B2C3D4", "5E6F7A8B.tmp", "data.xlsx.part"):
        (watched / name).write_bytes(xlsx_bytes(animals(2)))
    (watched / ".~lock.data.xlsx#").write_text(",root,vm,03.12.2026 12:33,x;")
    (watched / "lu12996d363.tmp").write_bytes(b"partial")
    (watched / "notes.txt").write_text("not a workbook")
    (watched / "animals.csv~").write_text("a,b\n")
    for name in ("A1B2C3D4", "5E6F7A8B.tmp", "lu12996d363.tmp"):
        (watched / name).unlink()

    # The lock files say "open in an editor"; the workbooks do not exist, so
    # neither is reported open, and nothing is reported settled.
    recorder.expect()


def test_a_libreoffice_style_save_gets_one_notice(start: Start, watched: Path) -> None:
    book = watched / "data.xlsx"
    book.write_bytes(xlsx_bytes(animals(3)))
    _, recorder = start()

    libreoffice_save(book, xlsx_bytes(animals(7)))

    recorder.expect(("settled", "data.xlsx"))


def test_a_libreoffice_style_first_save_copies_the_temp_to_a_new_name(
    start: Start, watched: Path
) -> None:
    _, recorder = start()

    lock = watched / ".~lock.data.xlsx#"
    lock.write_text(",root,vm,03.12.2026 12:33,x;")
    temp = watched / "lu13077d58m.tmp"
    temp.write_bytes(xlsx_bytes(animals(3)))
    shutil.copyfile(temp, watched / "data.xlsx")
    temp.unlink()
    lock.unlink()

    recorder.expect(("settled", "data.xlsx"))


def test_an_atomic_rename_from_another_program_gets_one_notice(
    start: Start, watched: Path
) -> None:
    book = watched / "race.xlsx"
    book.write_bytes(xlsx_bytes(animals(3)))
    _, recorder = start()

    temp = watched / ".race.xlsx.tmp"
    temp.write_bytes(xlsx_bytes(animals(8)))
    os.replace(temp, book)

    recorder.expect(("settled", "race.xlsx"))


def test_an_openpyxl_save_in_place_gets_one_notice(start: Start, watched: Path) -> None:
    book_path = watched / "big.xlsx"
    book_path.write_bytes(xlsx_bytes(animals(10)))
    _, recorder = start()

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in animals(6000):
        sheet.append(row)
    book.save(book_path)

    recorder.expect(("settled", "big.xlsx"))


def test_a_slow_copy_gets_one_notice_after_it_finishes(
    start: Start, watched: Path, tmp_path: Path
) -> None:
    data = xlsx_bytes(animals(3000))
    _, recorder = start()

    target = watched / "copied.xlsx"
    chunks = 15
    step = len(data) // chunks + 1
    with target.open("wb") as stream:
        for offset in range(0, len(data), step):
            stream.write(data[offset : offset + step])
            stream.flush()
            time.sleep(0.1)  # the copy is slow; this is the scenario, not a wait

    recorder.expect(("settled", "copied.xlsx"))


def test_an_xlsx_copy_that_pauses_longer_than_the_quiet_period_waits_for_the_zip(
    start: Start, watched: Path
) -> None:
    data = xlsx_bytes(animals(3000))
    _, recorder = start()

    target = watched / "paused.xlsx"
    with target.open("wb") as stream:
        for offset in range(0, len(data), len(data) // 3 + 1):
            stream.write(data[offset : offset + len(data) // 3 + 1])
            stream.flush()
            # Longer than debounce + stable: the half-file is examined.
            deadline = time.monotonic() + DEBOUNCE + STABLE + 2 * POLL + 0.3
            while time.monotonic() < deadline and stream.tell() < len(data):
                assert recorder.notices.empty()
                time.sleep(0.05)

    recorder.expect(("settled", "paused.xlsx"))


def test_an_xlsx_that_never_becomes_a_zip_is_passed_on_after_the_time_out(
    start: Start, watched: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, recorder = start(incomplete_timeout_seconds=1.5)

    (watched / "broken.xlsx").write_bytes(b"this is not a zip file" * 100)

    recorder.expect(("settled", "broken.xlsx"))
    assert "has not become a complete workbook" in caplog.text


def test_a_workbook_moved_in_from_outside_gets_one_notice(
    start: Start, watched: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("animal_id\nA1\n")
    _, recorder = start()

    os.rename(outside, watched / "arrived.csv")

    recorder.expect(("settled", "arrived.csv"))


def test_a_folder_of_workbooks_moved_in_gets_one_notice_each(
    start: Start, watched: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "one.csv").write_text("animal_id\nA1\n")
    (batch / "two.xlsx").write_bytes(xlsx_bytes(animals(2)))
    _, recorder = start()

    os.rename(batch, watched / "batch")

    recorder.expect(("settled", "batch/one.csv"), ("settled", "batch/two.xlsx"))


def test_a_workbook_moved_out_is_reported_deleted(
    start: Start, watched: Path, tmp_path: Path
) -> None:
    (watched / "leaving.csv").write_text("animal_id\nA1\n")
    _, recorder = start()

    os.rename(watched / "leaving.csv", tmp_path / "leaving.csv")

    recorder.expect(("deleted", "leaving.csv"))


def test_a_deleted_workbook_is_reported_once(start: Start, watched: Path) -> None:
    (watched / "gone.xlsx").write_bytes(xlsx_bytes(animals(2)))
    _, recorder = start()

    (watched / "gone.xlsx").unlink()

    recorder.expect(("deleted", "gone.xlsx"))


def test_a_renamed_workbook_is_reported_moved_without_a_settled_notice(
    start: Start, watched: Path
) -> None:
    (watched / "old.xlsx").write_bytes(xlsx_bytes(animals(2)))
    (watched / "task-7").mkdir()
    _, recorder = start()

    os.rename(watched / "old.xlsx", watched / "new.xlsx")
    recorder.expect(("moved", "old.xlsx", "new.xlsx"))
    os.rename(watched / "new.xlsx", watched / "task-7" / "new.xlsx")

    recorder.expect(("moved", "new.xlsx", "task-7/new.xlsx"))


def test_a_renamed_and_edited_workbook_is_reported_moved_and_settled(
    start: Start, watched: Path
) -> None:
    (watched / "old.csv").write_text("animal_id\nA1\n")
    _, recorder = start()

    os.rename(watched / "old.csv", watched / "new.csv")
    with (watched / "new.csv").open("a") as stream:
        stream.write("A2\n")

    recorder.expect(("moved", "old.csv", "new.csv"), ("settled", "new.csv"))


def test_a_rename_without_on_moved_is_reported_as_deleted_and_new(
    start: Start, watched: Path
) -> None:
    (watched / "old.csv").write_text("animal_id\nA1\n")
    _, recorder = start(on_moved=None)

    os.rename(watched / "old.csv", watched / "new.csv")

    recorder.expect(("deleted", "old.csv"), ("settled", "new.csv"))


def test_workbooks_in_sub_folders_are_watched(start: Start, watched: Path) -> None:
    (watched / "project-a").mkdir()
    (watched / "project-a" / "old.csv").write_text("animal_id\nA1\n")
    _, recorder = start()

    (watched / "project-a" / "task-1").mkdir()
    (watched / "project-a" / "task-1" / "new.csv").write_text("animal_id\nA1\n")
    (watched / "project-a" / "old.csv").write_text("animal_id\nA2\n")

    recorder.expect(
        ("settled", "project-a/task-1/new.csv"), ("settled", "project-a/old.csv")
    )


def test_files_under_dot_folders_and_sidecars_give_no_notice(
    start: Start, watched: Path
) -> None:
    _, recorder = start(ignore=lambda path: path.name.endswith("-report.xlsx"))

    (watched / ".curation-sync").mkdir()
    (watched / ".curation-sync" / "state.csv").write_text("a\n1\n")
    (watched / "animals-report.xlsx").write_bytes(xlsx_bytes(animals(2)))
    (watched / "animals.csv").write_text("animal_id\nA1\n")

    recorder.expect(("settled", "animals.csv"))


def test_default_sidecar_names_give_no_notice(start: Start, watched: Path) -> None:
    _, recorder = start()

    (watched / "animals.validation.xlsx").write_bytes(xlsx_bytes(animals(2)))
    (watched / "animals.validation.csv").write_text("row,message\n")

    recorder.expect()


def test_the_daemons_own_writes_give_no_notice_by_content_not_timing(
    start: Start, watched: Path
) -> None:
    book = watched / "pulled.xlsx"
    book.write_bytes(xlsx_bytes(animals(2)))
    watcher, recorder = start()

    # A pull: written atomically, then recorded.
    daemon_write(book, xlsx_bytes(animals(5)))
    watcher.record_own_write(book)
    recorder.expect()

    # A new workbook the daemon creates is its own write too.
    daemon_write(watched / "fresh.csv", b"animal_id\nA9\n")
    watcher.record_own_write(watched / "fresh.csv")
    recorder.expect()

    # The same write path without recording it is a change like any other.
    daemon_write(book, xlsx_bytes(animals(6)))
    recorder.expect(("settled", "pulled.xlsx"))


def test_an_is_own_write_callback_suppresses_the_notice(
    start: Start, watched: Path
) -> None:
    own: set[str] = set()
    _, recorder = start(is_own_write=lambda path: path.name in own)

    own.add("mine.csv")
    (watched / "mine.csv").write_text("animal_id\nA1\n")
    (watched / "theirs.csv").write_text("animal_id\nA1\n")

    recorder.expect(("settled", "theirs.csv"))


def test_a_touch_or_identical_resave_gives_no_notice(
    start: Start, watched: Path
) -> None:
    (watched / "same.csv").write_text("animal_id\nA1\n")
    (watched / "same.xlsx").write_bytes(xlsx_bytes(animals(4)))
    _, recorder = start()

    os.utime(watched / "same.csv")
    (watched / "same.csv").write_text("animal_id\nA1\n")
    # openpyxl stamps a new time into docProps; the workbook itself is equal.
    excel_save(watched / "same.xlsx", xlsx_bytes(animals(4)))

    recorder.expect()


def test_workbooks_present_at_start_get_no_notice(start: Start, watched: Path) -> None:
    for i in range(5):
        (watched / f"book{i}.xlsx").write_bytes(xlsx_bytes(animals(i + 2)))

    _, recorder = start()

    recorder.expect()


def test_a_save_during_the_callback_gives_exactly_one_more_notice(
    start: Start, watched: Path
) -> None:
    entered = threading.Event()
    release = threading.Event()
    seen: list[str] = []
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def slow_settled(path: Path) -> None:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        seen.append(path.read_text())
        entered.set()
        release.wait(WAIT)
        with lock:
            in_flight -= 1
        recorder.settled(path)

    watcher, recorder = start(on_settled=slow_settled)
    book = watched / "busy.csv"

    book.write_text("animal_id\nA1\n")
    assert entered.wait(WAIT)
    book.write_text("animal_id\nA1\nA2\n")
    # Let the second save settle while the first callback still runs.
    wait_until(lambda: watcher.pending() == 0)
    book.write_text("animal_id\nA1\nA2\nA3\n")
    wait_until(lambda: watcher.pending() == 0)
    release.set()

    recorder.expect(("settled", "busy.csv"), ("settled", "busy.csv"))
    assert seen == ["animal_id\nA1\n", "animal_id\nA1\nA2\nA3\n"]
    assert most_in_flight == 1


def test_lock_files_show_a_workbook_open_until_the_editor_closes_it(
    start: Start, watched: Path
) -> None:
    book = watched / "data.xlsx"
    book.write_bytes(xlsx_bytes(animals(2)))
    (watched / "held.xlsx").write_bytes(xlsx_bytes(animals(2)))
    (watched / "~$held.xlsx").write_bytes(b"\x05curat" + b" " * 159)
    watcher, recorder = start()
    assert watcher.workbooks_open_in_editor() == [watched / "held.xlsx"]

    lock = watched / ".~lock.data.xlsx#"
    lock.write_text(",root,vm,03.12.2026 12:33,x;")
    recorder.expect(("opened", "data.xlsx"))
    assert watcher.is_open_in_editor(book)

    # LibreOffice drops and re-takes its lock while saving: still open.
    lock.unlink()
    lock.write_text(",root,vm,03.12.2026 12:34,x;")
    recorder.expect()
    lock.unlink()
    (watched / "~$held.xlsx").unlink()

    recorder.expect(("closed", "data.xlsx"), ("closed", "held.xlsx"))
    assert not watcher.is_open_in_editor(book)
    assert watcher.workbooks_open_in_editor() == []


def test_stop_joins_the_threads_it_started(watched: Path, observer_kind: str) -> None:
    before = set(threading.enumerate())
    watcher = Watcher([watched], lambda path: None, observer=observer_kind)

    watcher.start()
    assert len(set(threading.enumerate()) - before) >= 2
    watcher.stop()

    assert [t for t in threading.enumerate() if t not in before] == []


def test_a_missing_folder_or_unknown_observer_is_a_clear_config_error(
    tmp_path: Path,
) -> None:
    from curation_sync.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        Watcher([tmp_path / "nope"], lambda path: None)
    with pytest.raises(ConfigError, match="Unknown observer 'fast'"):
        Watcher([tmp_path], lambda path: None, observer="fast")


def soffice_convert(source: Path, outdir: Path) -> None:
    """One real `soffice --convert-to xlsx`, with a profile of its own."""
    assert SOFFICE is not None
    profile = f"file:///tmp/lo-{uuid.uuid4().hex}"
    try:
        subprocess.run(
            [SOFFICE, f"-env:UserInstallation={profile}", "--headless", "--convert-to",
             "xlsx", "--outdir", str(outdir), str(source)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    finally:
        shutil.rmtree(profile.removeprefix("file://"), ignore_errors=True)


@pytest.mark.libreoffice
@pytest.mark.skipif(SOFFICE is None, reason="soffice is not installed")
def test_real_libreoffice_conversions_give_one_notice_per_real_change(
    start: Start, watched: Path, tmp_path: Path
) -> None:
    source = tmp_path / "data.csv"
    source.write_text("animal_id,genotype\nA1,wt\n")
    _, recorder = start()

    soffice_convert(source, watched)
    recorder.expect(("settled", "data.xlsx"))

    # Same content again: LibreOffice renames its temp over the file and only
    # the zip entry dates differ.
    soffice_convert(source, watched)
    recorder.expect()

    source.write_text("animal_id,genotype\nA1,wt\nA2,ko\n")
    soffice_convert(source, watched)
    recorder.expect(("settled", "data.xlsx"))


UNO_EDIT = """
import subprocess, sys, time
import uno
from com.sun.star.beans import PropertyValue

soffice, profile, pipe, path, text = sys.argv[1:6]
office = subprocess.Popen([soffice, "-env:UserInstallation=" + profile, "--headless",
    "--invisible", "--norestore", "--nologo", "--accept=pipe,name=%s;urp;" % pipe])
local = uno.getComponentContext()
resolver = local.ServiceManager.createInstanceWithContext(
    "com.sun.star.bridge.UnoUrlResolver", local)
deadline = time.time() + 90
while True:
    try:
        context = resolver.resolve(
            "uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
desktop = context.ServiceManager.createInstanceWithContext(
    "com.sun.star.frame.Desktop", context)
hidden = PropertyValue()
hidden.Name, hidden.Value = "Hidden", True
url = uno.systemPathToFileUrl(path)
doc = desktop.loadComponentFromURL(url, "_blank", 0, (hidden,))
print("loaded", flush=True)
sys.stdin.readline()
doc.Sheets.getByIndex(0).getCellByPosition(1, 1).setString(text)
doc.store()
print("stored", flush=True)
sys.stdin.readline()
doc.close(True)
print("closed", flush=True)
try:
    desktop.terminate()
except Exception:
    pass
office.wait(60)
"""


def has_python_uno() -> bool:
    if SOFFICE is None or not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import uno"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.libreoffice
@pytest.mark.skipif(not has_python_uno(), reason="soffice or python3-uno missing")
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_real_libreoffice_edit_and_save_gives_one_notice_and_editor_events(
    start: Start, watched: Path, tmp_path: Path, suffix: str
) -> None:
    book = watched / f"data{suffix}"
    if suffix == ".csv":
        book.write_text("animal_id,genotype\nA1,wt\n")
    else:
        book.write_bytes(xlsx_bytes([["animal_id", "genotype"], ["A1", "wt"]]))
    script = tmp_path / "uno_edit.py"
    script.write_text(UNO_EDIT)
    profile = tmp_path / f"lo-{uuid.uuid4().hex}"
    watcher, recorder = start()

    assert SOFFICE is not None
    command = [SYSTEM_PYTHON, str(script), SOFFICE, profile.as_uri(),
               f"cs{uuid.uuid4().hex}", str(book), "ko"]  # fmt: skip
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as editor:
        assert editor.stdin is not None
        assert editor.stdout is not None
        assert editor.stdout.readline().strip() == "loaded"
        recorder.expect(("opened", book.name))
        assert watcher.is_open_in_editor(book)

        # Ctrl+S: LibreOffice drops and re-takes its lock around the save.
        editor.stdin.write("\n")
        editor.stdin.flush()
        assert editor.stdout.readline().strip() == "stored"
        recorder.expect(("settled", book.name))

        # Closing writes nothing: only the editor notice.
        editor.stdin.write("\n")
        editor.stdin.flush()
        assert editor.stdout.readline().strip() == "closed"
        recorder.expect(("closed", book.name))
        editor.stdin.close()
        assert editor.wait(90) == 0

    if suffix == ".csv":
        assert book.read_text().splitlines()[1] == "A1,ko"
    else:
        sheet = openpyxl.load_workbook(book).active
        assert sheet is not None
        assert sheet["B2"].value == "ko"


LIMITED_WATCHER = """
import logging, queue, sys, time
from pathlib import Path
from curation_sync.watcher import Watcher

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
folder = Path(sys.argv[1])
notices = queue.Queue()
watcher = Watcher([folder], notices.put, debounce_seconds=0.2, stable_seconds=0.05,
                  polling_interval_seconds=0.2)
watcher.start()
print("observer", watcher.observer_kinds[folder.resolve()], flush=True)
target = folder / "d9" / "deep.csv"
if sys.argv[2:] == ["grow"]:
    for i in range(10, 15):
        (folder / f"d{i}").mkdir()
    deadline = time.monotonic() + 20
    while watcher.observer_kinds[folder.resolve()] == "native":
        assert time.monotonic() < deadline, "still native"
        time.sleep(0.05)
    print("observer now", watcher.observer_kinds[folder.resolve()], flush=True)
    target = folder / "d14" / "deep.csv"
target.write_text("animal_id\\nA1\\n")
print("settled", notices.get(timeout=20).relative_to(folder.resolve()), flush=True)
watcher.stop()
"""


def run_with_inotify_limit(
    tmp_path: Path, setting: str, value: int, *extra: str, map_root: bool = True
) -> str:
    folder = tmp_path / "limited"
    for i in range(10):
        (folder / f"d{i}").mkdir(parents=True)
    script = tmp_path / "limited.py"
    script.write_text(LIMITED_WATCHER)
    run = f"exec {sys.executable} {script} {folder} {' '.join(extra)}"
    shell = f"echo {value} > /proc/sys/user/{setting} && {run}" if setting else run
    mapping = ["--map-root-user"] if map_root else []
    result = subprocess.run(
        ["unshare", "--user", *mapping, "sh", "-c", shell],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def can_limit_inotify() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c",
         "echo 5 > /proc/sys/user/max_inotify_watches"],
        capture_output=True, check=False,
    )  # fmt: skip
    return probe.returncode == 0


needs_user_namespace = pytest.mark.skipif(
    not can_limit_inotify(), reason="cannot set inotify limits in a user namespace"
)


@needs_user_namespace
@pytest.mark.parametrize(
    ("setting", "value", "detail"),
    [
        ("max_inotify_watches", 0, "inotify watch limit reached"),
        ("max_inotify_watches", 4, "7 of its sub-folders could not be watched"),
        ("max_inotify_instances", 0, "inotify instance limit reached"),
    ],
)
def test_hitting_an_inotify_limit_falls_back_to_polling_with_the_fix(
    tmp_path: Path, setting: str, value: int, detail: str
) -> None:
    output = run_with_inotify_limit(tmp_path, setting, value)

    assert "observer polling" in output
    assert detail in output
    assert "sysctl fs.inotify.max_user_watches=" in output
    assert "settled d9/deep.csv" in output


@needs_user_namespace
def test_within_the_inotify_limits_the_native_observer_is_used(tmp_path: Path) -> None:
    output = run_with_inotify_limit(tmp_path, "max_inotify_watches", 1000)

    assert "observer native" in output
    assert "WARNING" not in output
    assert "settled d9/deep.csv" in output


def test_a_replaced_watched_folder_is_still_seen_by_the_periodic_rescan(
    start: Start, watched: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (watched / "before.csv").write_text("animal_id\nA1\n")
    _, recorder = start(rescan_interval_seconds=1.0)

    shutil.rmtree(watched)
    recorder.expect(("deleted", "before.csv"))
    watched.mkdir()
    (watched / "after.csv").write_text("animal_id\nA2\n")

    recorder.expect(("settled", "after.csv"))
    assert "was removed or unmounted" in caplog.text


@needs_user_namespace
def test_sub_folders_created_beyond_the_inotify_limit_move_the_folder_to_polling(
    tmp_path: Path,
) -> None:
    # 11 folders are watched natively; 5 more need 5 watches, 1 is left.
    output = run_with_inotify_limit(tmp_path, "max_inotify_watches", 12, "grow")

    assert "observer native" in output
    assert "4 of its sub-folders could not be watched" in output
    assert "observer now polling" in output
    assert "settled d14/deep.csv" in output


@needs_user_namespace
def test_an_unreadable_sub_folder_is_not_taken_for_the_inotify_limit(
    tmp_path: Path,
) -> None:
    # Without the mapping to root, a folder with mode 000 cannot be read.
    (tmp_path / "limited" / "locked").mkdir(parents=True)
    (tmp_path / "limited" / "locked").chmod(0)

    output = run_with_inotify_limit(tmp_path, "", 0, map_root=False)

    assert "observer native" in output
    assert "WARNING" not in output
    assert "settled d9/deep.csv" in output


def test_a_fifo_or_a_symlink_loop_named_like_a_workbook_never_blocks_the_watcher(
    start: Start, watched: Path, caplog: pytest.LogCaptureFixture, observer_kind: str
) -> None:
    _, recorder = start(incomplete_timeout_seconds=1.0)

    os.mkfifo(watched / "pipe.csv")
    (watched / "loop.csv").symlink_to(watched / "loop.csv")
    (watched / "real.csv").write_text("animal_id\nA1\n")

    # The FIFO is passed on once, unread, so the daemon can say what it is.
    recorder.expect(("settled", "real.csv"), ("settled", "pipe.csv"))
    assert "it is not a regular file" in caplog.text
    # A polling snapshot passes over the loop; inotify reports it.
    assert ("Could not look at" in caplog.text) == (observer_kind == "native")
