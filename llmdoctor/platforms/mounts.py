"""The mount table, read so that the filesystem a path lives on is the one it really lives on.

``psutil.disk_partitions(all=False)`` keeps only filesystems backed by a block device: on
Linux it drops every type ``/proc/filesystems`` marks ``nodev``, which are NFS, CIFS, FUSE
(sshfs, s3fs, gcsfuse) and the 9p mounts by which WSL 2 shows the Windows drives
(``/mnt/c``); on macOS it drops every mount whose device is not a path (NFS, SMB). A cache
on such a mount was then attributed to ``/``: called local, and compared against the wrong
disk. Here every mount is kept except the kernel's pseudo filesystems, and the mount a path
is on is the longest mount point that holds it (:func:`~llmdoctor.platforms.paths.longest_prefix`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Iterable

from llmdoctor.platforms.paths import is_under, longest_prefix

#: kernel and virtual filesystems that hold no user files (Linux, macOS)
PSEUDO_FS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "mqueue", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs",
    "efivarfs", "selinuxfs", "nfsd", "ramfs", "rootfs", "devfs", "squashfs", "tmpfs", "overlay",
})
#: of those, the ones that may still be the root filesystem (a container's overlay, a live system)
ROOT_OK = frozenset({"overlay", "tmpfs", "rootfs"})
#: WSL's own 9p mounts of Windows folders that are not a drive of the user's (GPU drivers, its tools)
WSL_SYSTEM_MOUNTS = ("/usr/lib/wsl", "/init", "/mnt/wsl", "/mnt/wslg")

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    device: str
    mountpoint: str
    fstype: str
    options: str = ""


def unescape(field: str) -> str:
    """A /proc/mounts field: the kernel writes space, tab, newline and backslash as octal (``\\040``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_proc_mounts(text: str | None) -> list[MountEntry]:
    """Entries of ``/proc/self/mounts`` (``device mountpoint type options dump pass``); a
    malformed line is skipped."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        out.append(MountEntry(unescape(parts[0]), unescape(parts[1]), parts[2], parts[3] if len(parts) > 3 else ""))
    return out


def user_mount(fstype: str | None, mountpoint: str | None) -> bool:
    """Whether a mount can hold a user's files: no pseudo filesystem (except as the root), and
    none of WSL's own mounts of Windows system folders."""
    if not mountpoint:
        return False
    kind = (fstype or "").lower()
    if kind in PSEUDO_FS and not (mountpoint == "/" and kind in ROOT_OK):
        return False
    return not any(is_under(mountpoint, p, posixpath) for p in WSL_SYSTEM_MOUNTS)


def user_mounts(entries: Iterable) -> list:
    """The entries (anything with ``.mountpoint`` and ``.fstype``, e.g. psutil's partitions)
    that can hold user files, one per mount point: a later mount over the same point hides an
    earlier one, and the kernel lists the later one last, so the last is kept."""
    by_point: dict[str, object] = {}
    for e in entries:
        if user_mount(getattr(e, "fstype", None), getattr(e, "mountpoint", None)):
            by_point.pop(e.mountpoint, None)
            by_point[e.mountpoint] = e
    return list(by_point.values())


def mount_of(path: str, entries: Iterable, pathmod=None):
    """The entry whose mount point holds ``path`` most closely (by name: resolve links first)."""
    return longest_prefix(path, entries, lambda e: e.mountpoint, pathmod)


def fstype_of(path: str, entries: Iterable, pathmod=None) -> str | None:
    hit = mount_of(path, entries, pathmod)
    return hit.fstype if hit is not None else None
