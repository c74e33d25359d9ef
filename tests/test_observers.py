"""Observer choice: which file systems are network shares, from real mount text."""

from __future__ import annotations

from pathlib import Path

from curation_sync.observers import (
    filesystem_type,
    network_filesystem,
    parse_mount_command,
    parse_mounts,
)

PROC_MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /mnt/lab nfs4 rw,relatime,vers=4.2 0 0
//nas/curation /mnt/shared\\040drive cifs rw,vers=3.1.1 0 0
alice@host:/data /home/alice/remote fuse.sshfs rw,nosuid 0 0
tmpfs /mnt/lab/scratch tmpfs rw 0 0
"""

MAC_MOUNT = """\
/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)
//alice@nas/curation on /Volumes/curation (smbfs, nodev, nosuid, mounted by alice)
"""


def test_proc_mounts_are_parsed_with_escaped_spaces() -> None:
    mounts = parse_mounts(PROC_MOUNTS)

    assert ("/mnt/shared drive", "cifs") in mounts
    assert ("/mnt/lab", "nfs4") in mounts


def test_the_longest_mount_point_holding_a_path_decides_its_file_system() -> None:
    mounts = parse_mounts(PROC_MOUNTS)

    assert filesystem_type(Path("/mnt/lab/task-1"), mounts) == "nfs4"
    assert filesystem_type(Path("/mnt/lab/scratch/x"), mounts) == "tmpfs"
    assert filesystem_type(Path("/mnt/shared drive/a"), mounts) == "cifs"
    assert filesystem_type(Path("/home/alice/remote"), mounts) == "fuse.sshfs"
    assert filesystem_type(Path("/mnt/laboratory"), mounts) == "ext4"


def test_macos_mount_output_is_parsed() -> None:
    assert parse_mount_command(MAC_MOUNT) == [
        ("/", "apfs"),
        ("/Volumes/curation", "smbfs"),
    ]


def test_a_local_temporary_folder_is_not_a_network_share(tmp_path: Path) -> None:
    assert network_filesystem(tmp_path) is None
