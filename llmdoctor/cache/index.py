"""What each snapshot folder of a hub cache holds (which blobs its symlinks point to, its
sub-folders, its plain files), remembered between two `llmdoctor cache ls` so that a folder
that has not changed is not read link by link again.

Why it is safe: a symlink cannot be changed in place; replacing, adding, removing or
renaming an entry changes its folder's ctime, which no program can set back (``utime``
sets mtime and atime, and moves ctime to now). A listing is reused only when the folder's
device, inode, mtime and ctime are all as recorded, and it is recorded only when that ctime
is more than ``RACY_S`` older than the scan (git's "racy" rule: a change made within the
same clock tick as the reading could leave the ctime as it was). Used only on local
filesystems known to keep ctime (``LOCAL_FS``): not on network filesystems (the client
caches attributes, its clock is not the server's), FUSE filesystems (some report fixed
times), nor where the type cannot be told (Windows, macOS: every link is read there).

Only listings use it; nothing that deletes reads it (``cache prune`` reads every link).
The file is the user's own (``~/.cache/llmdoctor/cache-ls/``), written atomically; a file
that is damaged, foreign or of another version is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import posixpath
import stat
import struct
import time
import zlib
from typing import Mapping

from llmdoctor.paths import cache_dir
from llmdoctor.platforms.mounts import fstype_of, parse_proc_mounts

VERSION = 1
MAGIC = b"llmdoctor-links\0"
_HEADER = struct.Struct("<16sII")  # magic, version, crc32 of the payload
RACY_S = 2.0  #: a folder changed this recently is read, never remembered
#: local filesystems that update a folder's ctime on every change to its entries
LOCAL_FS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "overlay", "bcachefs", "jfs", "reiserfs")

Listing = tuple  #: what the scanner keeps of one folder (``hfcache._snapshot_files`` decides), marshal-able


def fstype(path: str, mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the filesystem holding ``path`` (Linux), or None where it cannot be told."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as fh:
            table = parse_proc_mounts(fh.read())
    except OSError:
        return None
    return fstype_of(os.path.realpath(path), table, posixpath)


class LinkIndex:
    """Listings of one cache root's snapshot folders: ``lookup`` (and ``use``) before
    reading a folder, ``remember`` after reading one, ``save`` at the end. Forked scanners
    send back what they read (``new``) and which remembered folders they used (``used``);
    ``merge`` takes both."""

    def __init__(self, file: str | None, root: str, entries: dict | None = None, now: float | None = None):
        self.file = file
        self.root = root
        self.old: dict[str, tuple] = entries or {}
        self.new: dict[str, tuple] = {}
        self.used: set[str] = set()
        self.trust_before_ns = int(((time.time() if now is None else now) - RACY_S) * 1e9)

    @classmethod
    def open(cls, root: str, environ: Mapping[str, str], now: float | None = None) -> LinkIndex | None:
        """The index of ``root``, empty when there is none yet; None where one must not be used."""
        if os.name != "posix" or fstype(root) not in LOCAL_FS:
            return None
        return cls.for_root(root, environ, now)

    @classmethod
    def for_root(cls, root: str, environ: Mapping[str, str], now: float | None = None) -> LinkIndex:
        """The index file of ``root``, loaded, whatever filesystem holds it (``open`` decides that)."""
        real = os.path.realpath(root)
        name = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:24] + ".idx"
        file = os.path.join(cache_dir(environ), "cache-ls", name)
        return cls(file, real, _load(file, real), now)

    def lookup(self, folder: str, st: os.stat_result) -> Listing | None:
        """What was recorded of ``folder`` if it is unchanged since; ``use`` it if it serves."""
        entry = self.old.get(folder)
        if type(entry) is tuple and len(entry) == 2 and entry[0] == _key(st):  # a forged entry is a miss
            return entry[1]
        return None

    def use(self, folder: str) -> None:
        """Keep ``folder``'s entry: this scan relied on it."""
        self.used.add(folder)

    def remember(self, folder: str, st: os.stat_result, listing: Listing) -> None:
        if st.st_ctime_ns < self.trust_before_ns and st.st_mtime_ns < self.trust_before_ns:
            self.new[folder] = (_key(st), listing)

    def merge(self, new: dict, used) -> None:
        self.new.update(new)
        self.used.update(used)

    def save(self) -> bool:
        """Write what this scan used and read, if it differs from what was loaded. Never
        raises: a cache folder that cannot be written only costs the next scan its speed."""
        if self.file is None or (not self.new and len(self.used) == len(self.old)):
            return False
        entries = {f: self.old[f] for f in self.used}
        entries.update(self.new)
        try:
            payload = marshal.dumps((self.root, entries))
        except ValueError:  # not a marshal-able entry: write nothing rather than fail the listing
            return False
        header = _HEADER.pack(MAGIC, VERSION, zlib.crc32(payload))
        from llmdoctor.fix.journal import atomic_write  # only a scan that has something new to keep pays this import

        try:
            os.makedirs(os.path.dirname(self.file), mode=0o700, exist_ok=True)
            atomic_write(self.file, header + payload, mode=0o600)
            return True
        except OSError:
            return False


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What must be unchanged for a folder's entry to be reused."""
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _load(file: str, root: str) -> dict:
    """The entries recorded for ``root``, or {} for a missing, damaged, foreign or old file."""
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a named pipe in its place is never waited on
            return {}
        if st.st_uid != os.getuid() or st.st_mode & 0o022:  # someone else's, or writable by others
            return {}
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read()
    except OSError:
        return {}
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) < _HEADER.size:
        return {}
    magic, version, crc = _HEADER.unpack_from(data)
    payload = memoryview(data)[_HEADER.size:]
    if magic != MAGIC or version != VERSION or zlib.crc32(payload) != crc:
        return {}
    try:
        recorded_root, entries = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return {}
    return entries if recorded_root == root and isinstance(entries, dict) else {}
