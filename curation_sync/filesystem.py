"""What files on disk say about themselves: names, locks, content, file system.

Facts from how office programs save (see SAVE-PATTERNS): Excel's owner file is
`~$` plus the workbook's name and ends in `.xlsx` itself; LibreOffice's lock is
`.~lock.<name>#`; both mean "open in an editor", not "still being written".
An XLSX is a zip whose central directory is written last, so "opens as a zip
with every CRC correct" is a good completion test; a CSV has no such test.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

# Names that are never workbooks even with a workbook suffix: Office owner files
# (they end in .xlsx), dot files (our temps, rsync, macOS `._*`) and backups.
_NOT_A_WORKBOOK = re.compile(r"^(?:~\$.*|\..*|.*~)$")
_EXCEL_OWNER_FILE = re.compile(r"^~\$(?P<name>.+)$")
_LIBREOFFICE_LOCK = re.compile(r"^\.~lock\.(?P<name>.+)#$")
_ZIP_SUFFIXES = frozenset({".xlsx", ".xlsm"})


def is_default_sidecar(path: Path) -> bool:
    """Whether `path` is named like a sidecar with the default name template."""
    name = path.name.lower()
    return name.endswith((".validation.xlsx", ".validation.csv"))


def is_temporary_name(name: str) -> bool:
    """Whether a file name is an owner, dot or backup file, whatever its suffix."""
    return bool(_NOT_A_WORKBOOK.match(name))


def is_lock_file(path: Path) -> bool:
    """Whether `path` is an Excel owner file or a LibreOffice lock file."""
    name = path.name
    return bool(_EXCEL_OWNER_FILE.match(name) or _LIBREOFFICE_LOCK.match(name))


def workbooks_for_lock_file(path: Path) -> list[Path]:
    """The workbook paths a lock file may stand for (Office may shorten names)."""
    if match := _LIBREOFFICE_LOCK.match(path.name):
        return [path.parent / match["name"]]

    match = _EXCEL_OWNER_FILE.match(path.name)
    if not match:
        return []

    # Word-style owner files replace the first two characters of a long name.
    name = match["name"]
    candidates = [path.parent / name]
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        entries = []
    candidates.extend(
        path.parent / entry.name
        for entry in entries
        if entry.name[2:] == name and not is_temporary_name(entry.name)
    )
    return candidates


def is_open_in_editor(path: Path) -> bool:
    """Whether Excel or LibreOffice has a lock file beside the workbook `path`."""
    names = [f".~lock.{path.name}#", f"~${path.name}"]
    if len(path.name) > 2:
        names.append(f"~${path.name[2:]}")
    return any((path.parent / name).exists() for name in names)


class IncompleteWorkbookError(Exception):
    """The file is not (yet) a complete workbook."""


def fingerprint_workbook(path: Path) -> str:
    """The content fingerprint used to tell real changes from touches and echoes.

    Raises:
        IncompleteWorkbookError: the file is empty, or an XLSX is not a whole zip.
        OSError: the file cannot be read.
    """
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise IncompleteWorkbookError("it is not a regular file")
    if st.st_size == 0:
        raise IncompleteWorkbookError("the file is empty")

    if path.suffix.lower() not in _ZIP_SUFFIXES:
        return hash_file(path)

    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(archive.infolist(), key=lambda info: info.filename)
            if "[Content_Types].xml" not in {info.filename for info in members}:
                raise IncompleteWorkbookError("it has no [Content_Types].xml")

            for info in members:
                # Reading a member to its end checks its CRC.
                counted = not info.filename.startswith("docProps/")
                if counted:
                    digest.update(f"{info.filename}\0{info.file_size}\0".encode())
                with archive.open(info) as member:
                    while chunk := member.read(1 << 20):
                        if counted:
                            digest.update(chunk)

    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise IncompleteWorkbookError(f"it is not a complete zip ({error})") from error
    except RuntimeError as error:
        raise IncompleteWorkbookError(
            f"it cannot be read as a zip ({error})"
        ) from error
    return "zip:" + digest.hexdigest()


def hash_file(path: Path) -> str:
    """The SHA-256 fingerprint of a regular file's bytes (never opens a FIFO)."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return "raw:" + digest.hexdigest()


Signature = tuple[int, int, int, int]


def stat_signature(path: Path) -> Signature | None:
    """(size, mtime, ctime, inode) of `path`, or None if it does not exist."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def walk_files(folders: Sequence[Path]) -> Iterator[Path]:
    """Every file below the folders, skipping dot-folders (state, .git, caches)."""
    for folder in folders:
        for root, dirnames, filenames in os.walk(folder):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            for name in filenames:
                yield Path(root) / name


# `write_atomically` names its temporary file `.<target name>.<8 random>.tmp`.
_INTERRUPTED_WRITE = re.compile(
    r"^\.(?P<name>.+\.(?:xlsx|xlsm|csv))\.[a-z0-9_]{8}\.tmp$", re.IGNORECASE
)


def sweep_interrupted_writes(
    paths: Iterable[Path], older_than: float, now: float
) -> list[Path]:
    """Delete, among `paths`, the temporary files of writes a crash cut short.

    Only names `write_atomically` makes are touched, and only files last changed
    more than `older_than` seconds before `now`, so a write in progress (by a
    one-shot command, say) is left alone. Returns the deleted files.
    """
    removed = []
    for path in paths:
        if not _INTERRUPTED_WRITE.match(path.name):
            continue
        try:
            if now - path.lstat().st_mtime <= older_than or path.is_symlink():
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
