"""A fast, read-only scan of Hugging Face hub caches, in huggingface_hub's own data model
(repo, revision, refs, blob sizes as ``scan_cache_dir`` counts them), extended with what
that scan leaves out: real blocks on disk, blobs no snapshot references (orphans),
``.incomplete`` partials and whether their download lock is held, broken symlinks
(reported per file, the rest of the repo stays visible), links that leave the cache, and
several roots at once.

One ``os.scandir`` per directory and one ``lstat`` per blob: snapshot symlinks are read
with ``readlink`` (relative to an open folder) and matched to the blob by name, never
followed. Large caches are split over worker processes. A listing may pass a
:class:`~llmdoctor.cache.index.LinkIndex`: a snapshot folder unchanged since the last listing
is then not read again (``linkindex`` says why that is safe). Nothing here writes to a cache.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Iterable, Mapping

from llmdoctor.cache.index import LinkIndex
from llmdoctor.paths import expand, hf_home, hf_hub_cache, read_file, xdg_cache

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
IGNORED = {".DS_Store", "Thumbs.db", "desktop.ini", "CACHEDIR.TAG", ".locks"}
SHARED_BLOBS_MARKER = ".huggingface-shared-blobs"
TRASH = os.path.join(".locks", ".llmdoctor-trash")  #: where a prune parks what it is deleting
RECENT_S = 600  #: a partial or orphan touched this recently may belong to a running download
PARALLEL_FROM = 200  #: repos from which a scan is split over processes


@dataclass(frozen=True)
class Blob:
    name: str
    size: int  #: apparent size (st_size), what huggingface_hub counts
    on_disk: int  #: allocated blocks x 512
    accessed: float
    modified: float
    locked: bool = False  #: its download lock is held by a live process (incomplete / orphan only)


@dataclass(frozen=True)
class Revision:
    commit: str
    refs: tuple[str, ...]
    blobs: tuple[str, ...]  #: names in blobs/ this snapshot links to (or paths, for files stored in place)
    nb_files: int
    size: int  #: as scan_cache_dir's CachedRevisionInfo.size_on_disk
    on_disk: int
    last_modified: float
    last_accessed: float


@dataclass(frozen=True)
class Repo:
    repo_type: str
    repo_id: str
    path: str
    revisions: tuple[Revision, ...] = ()
    size: int = 0  #: as scan_cache_dir's CachedRepoInfo.size_on_disk (referenced blobs, once each)
    on_disk: int = 0
    nb_files: int = 0
    last_accessed: float = 0.0
    last_modified: float = 0.0
    orphans: tuple[Blob, ...] = ()  #: blobs no snapshot links to
    incomplete: tuple[Blob, ...] = ()  #: *.incomplete partial downloads
    broken: tuple[str, ...] = ()  #: snapshot files whose blob is missing
    outside: tuple[str, ...] = ()  #: snapshot links that point outside this repo's blobs/ (never deleted)
    error: str | None = None  #: why the repo cannot be read whole (prune keeps all of it)
    error_kind: str | None = None  #: "unreadable" | "linked" (a link inside the repo) | "damaged"
    blob_sizes: dict[str, int] = field(default_factory=dict, repr=False, compare=False)  #: referenced blob -> size

    @property
    def cache_id(self) -> str:
        return f"{self.repo_type}/{self.repo_id}"

    @property
    def refs(self) -> dict[str, str]:
        return {ref: rev.commit for rev in self.revisions for ref in rev.refs}

    def freed_by(self, commits: set[str]) -> int:
        """Bytes freed by deleting ``commits``: the blobs no other revision links to."""
        if not commits:
            return 0
        kept = {b for r in self.revisions if r.commit not in commits for b in r.blobs}
        gone = {b for r in self.revisions if r.commit in commits for b in r.blobs} - kept
        return sum(self.blob_sizes.get(b, 0) for b in gone)


@dataclass(frozen=True)
class Root:
    path: str
    source: str  #: "HF_HUB_CACHE", "HF_HOME", "TRANSFORMERS_CACHE", "--dir", ...
    exists: bool = True
    repos: tuple[Repo, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    error_kind: str | None = None  #: "not-a-folder" (it or a parent is a file) | "unreadable"

    @property
    def size(self) -> int:
        return sum(r.size for r in self.repos)

    @property
    def on_disk(self) -> int:
        return sum(r.on_disk for r in self.repos)


@dataclass(frozen=True)
class OtherCache:
    """A cache huggingface_hub does not manage, shown as one line (datasets, xet, torch hub, pip)."""

    name: str
    path: str
    exists: bool
    on_disk: int = 0
    files: int = 0
    error: str | None = None


_BLOCKS = hasattr(os.stat_result, "st_blocks")
_SIZE, _ATIME, _MTIME = attrgetter("st_size"), attrgetter("st_atime"), attrgetter("st_mtime")
_DISK = attrgetter("st_blocks") if _BLOCKS else _SIZE


def _on_disk(st: os.stat_result) -> int:
    return st.st_blocks * 512 if _BLOCKS else st.st_size


def lock_held(path: str) -> bool:
    """Whether the download lock at ``path`` (huggingface_hub's filelock) may be held: True
    when another process holds it, and also whenever it cannot be tested (a lock file we may
    not open, a link, a filesystem without locks): a download we cannot see is assumed to run."""
    if not os.path.lexists(path):
        return False
    try:
        fd = os.open(path, os.O_RDWR | _NOFOLLOW | _NONBLOCK)
    except OSError:
        try:  # flock needs no write access (Linux, macOS); byte-range locks on Windows do
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK) if os.name != "nt" else -1
        except OSError:
            return True
        if fd < 0:
            return True
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):  # a named pipe or a device: no lock filelock made
            return True
        return not _try_lock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    """Take and release the lock on ``fd`` the way filelock takes it; False if that failed.

    filelock locks the whole file with ``flock`` on POSIX, and on Windows one byte at offset 0
    (``LockFileEx`` from filelock 3.30; ``msvcrt.locking``, the same byte range, before): a
    byte-range lock, which does not stop anyone from opening the file, so opening it proves
    nothing. filelock 3.30+ exports that very primitive (``lock_descriptor``), used when present."""
    try:
        from filelock import lock_descriptor, unlock_descriptor
    except ImportError:  # an older filelock: take the same lock ourselves
        return _lock_as_filelock_did(fd)
    try:
        if not lock_descriptor(fd, blocking=False):
            return False
    except OSError:  # a filesystem without locks: cannot tell, so held
        return False
    try:
        unlock_descriptor(fd)
    except OSError:
        pass
    return True


def _lock_as_filelock_did(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: filelock < 3.30 locked one byte with msvcrt.locking
        import msvcrt

        return byte_range_lock(fd, msvcrt.locking, msvcrt.LK_NBLCK, msvcrt.LK_UNLCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def byte_range_lock(fd: int, locking, lock_nb: int, unlock: int) -> bool:
    """Take and release a lock on byte 0 (length 1) of ``fd`` with ``locking(fd, mode, nbytes)``,
    which locks from the current position (``msvcrt.locking``'s contract); False if it is held."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        locking(fd, lock_nb, 1)
    except OSError:
        return False
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        locking(fd, unlock, 1)
    except OSError:
        pass
    return True


def _refs(repo_path: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """({commit: [ref names]}, problems): a ref that cannot be read or is a link is a problem,
    never a missing ref (that would make its revision look detached)."""
    by_commit: dict[str, list[str]] = {}
    problems: list[tuple[str, str]] = []  # (kind, why)
    base = os.path.join(repo_path, "refs")
    stack = [(base, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(("unreadable", f"cannot read {folder}: {exc.strerror or exc}"))
            continue
        for entry in entries:
            if entry.name in IGNORED:
                continue
            try:
                if entry.is_symlink():
                    problems.append(("linked", f"{entry.path} is a symbolic link: not followed"))
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, prefix + entry.name + "/"))
                    continue
                # a named pipe here (a cache others can write) would make a plain open wait forever
                commit = read_file(entry.path, 4096, cut=True, follow=False).decode("utf-8", "replace").strip()
            except OSError as exc:
                problems.append(("unreadable", f"cannot read {entry.path}: {exc.strerror or exc}"))
                continue
            by_commit.setdefault(commit, []).append(prefix + entry.name)
    return by_commit, problems


_BLOBS_HEADS: dict[int, str] = {}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW
#: read a folder's links relative to an open descriptor (the kernel resolves one name, not the
#: whole path, and no path string is built per file); elsewhere (Windows) by full path
_BY_FD = os.scandir in os.supports_fd and os.readlink in os.supports_dir_fd


def _blobs_head(depth: int) -> str:
    head = _BLOBS_HEADS.get(depth)
    if head is None:
        head = _BLOBS_HEADS[depth] = os.sep.join([".."] * (depth + 2) + ["blobs"]) + os.sep
    return head


def _read_links(folder: str) -> tuple[list[str], list[str], list[str], list[str]] | None:
    """(symlink names, their targets, sub-folder names, other file names) of one folder; None
    when it cannot be read (or is a link). Every entry is classified while the folder is open."""
    if _BY_FD:
        try:
            fd = os.open(folder, _DIR_FLAGS)
        except OSError:
            return None
        try:
            entries = list(os.scandir(fd))
            links = [e.name for e in entries if e.is_symlink()]
            try:
                targets = [os.readlink(n, dir_fd=fd) for n in links]
            except OSError:
                targets = [_readlink_or_empty(n, fd) for n in links]
            dirs, files = _others(entries, len(links))
            return links, targets, dirs, files
        except OSError:
            return None
        finally:
            os.close(fd)
    try:
        if os.path.islink(folder):
            return None
        entries = list(os.scandir(folder))
    except OSError:
        return None
    links = [e.name for e in entries if e.is_symlink()]
    dirs, files = _others(entries, len(links))
    return links, [_readlink_or_empty(os.path.join(folder, n)) for n in links], dirs, files


def _others(entries: list[os.DirEntry], nb_links: int) -> tuple[list[str], list[str]]:
    """(sub-folder names, regular file names) among ``entries`` that are not symlinks."""
    dirs: list[str] = []
    files: list[str] = []
    if nb_links == len(entries):
        return dirs, files
    for e in entries:
        try:
            if e.is_symlink():
                continue
            if e.is_dir(follow_symlinks=False):
                dirs.append(e.name)
            elif e.name not in IGNORED:
                files.append(e.name)
        except OSError:
            continue
    return dirs, files


def _readlink_or_empty(path: str, fd: int | None = None) -> str:
    try:
        return os.readlink(path, dir_fd=fd) if fd is not None else os.readlink(path)
    except OSError:
        return ""


def _plain_name(name) -> bool:
    """One entry of a folder: not empty, not ``.`` or ``..``, no separator."""
    return (type(name) is str and name not in ("", os.curdir, os.pardir) and os.sep not in name
            and (os.altsep is None or os.altsep not in name) and "\0" not in name)


def _well_formed(known) -> bool:
    """An index entry as ``_snapshot_files`` records it: (links, "/"-joined blob names, sub-folders,
    files), each name a plain entry name (a forged "/" or ".." must not send the walk elsewhere)."""
    return (type(known) is tuple and len(known) == 4 and type(known[0]) is int and known[0] >= 0
            and type(known[1]) is str and type(known[2]) is tuple and type(known[3]) is tuple
            and all(map(_plain_name, known[2])) and all(map(_plain_name, known[3])))


def _snapshot_files(folder: str, blob_names: set[str] | frozenset[str], index: LinkIndex | None = None
                    ) -> tuple[set[str], list[str], list[tuple[str, str]], list[str], int, list[str]]:
    """Walk one snapshot folder. Returns (names of the blobs it links to the way
    huggingface_hub links them, link paths whose blob is missing, other links as (path,
    target), paths of regular files, number of files, folders that could not be read).

    With an ``index``, a sub-folder whose every link is a plain link to an existing blob
    is remembered as (number of links, blob names joined by "/", sub-folders, files), and
    not read again while it stays unchanged and its blobs are all still there."""
    names: set[str] = set()
    broken: list[str] = []
    odd: list[tuple[str, str]] = []
    files: list[str] = []
    unreadable: list[str] = []
    count = 0
    stack = [(folder, 0)]
    while stack:
        current, depth = stack.pop()
        st = None
        if index is not None:
            try:
                st = os.lstat(current)
            except OSError:
                pass
            known = index.lookup(current, st) if st is not None else None
            if _well_formed(known):
                nb_links, joined, dirs, plain = known
                found = set(joined.split("/")) if joined else set()
                if not (found - blob_names):
                    index.use(current)
                    names |= found
                    count += nb_links
                    stack += [(os.path.join(current, d), depth + 1) for d in dirs]
                    files += [os.path.join(current, f) for f in plain]
                    continue
        read = _read_links(current)
        if read is None:
            unreadable.append(current)
            continue
        links, targets, dirs, plain = read
        stack += [(os.path.join(current, d), depth + 1) for d in dirs]
        files += [os.path.join(current, f) for f in plain]
        count += len(links)
        head = _BLOBS_HEADS.get(depth) or _blobs_head(depth)
        cut = len(head)
        # the common case in one pass: every target is head + a blob name
        found = {t[cut:] for t in targets if t[:cut] == head}
        if len(found) == len(targets) or all(t[:cut] == head for t in targets):
            if not (found - blob_names):
                names |= found
                if st is not None:  # blob names never hold "/"
                    index.remember(current, st, (len(links), "/".join(found), tuple(dirs), tuple(plain)))
                continue
        for name, t in zip(links, targets):  # something is off in this folder: sort it out link by link
            key = t[cut:]
            if t[:cut] == head and os.sep not in key and (os.altsep is None or os.altsep not in key):
                if key in blob_names:
                    names.add(key)
                else:
                    broken.append(os.path.join(current, name))
            else:
                odd.append((os.path.join(current, name), t))
    return names, broken, odd, files, count + len(files), unreadable


def _totals(names, stats: dict[str, os.stat_result]) -> tuple[int, int, float, float]:
    """(size, on disk, last accessed, last modified) over the blobs ``names``."""
    if not names:
        return 0, 0, 0.0, 0.0
    sts = list(map(stats.__getitem__, names))
    disk = sum(map(_DISK, sts))
    return (sum(map(_SIZE, sts)), disk * 512 if _BLOCKS else disk,
            max(map(_ATIME, sts)), max(map(_MTIME, sts)))


def _link_target(path: str) -> str | None:
    """Where ``path`` points if it is a symbolic link (or a Windows junction), else None."""
    try:
        if os.path.islink(path) or getattr(os.path, "isjunction", lambda p: False)(path):
            return os.readlink(path)
    except OSError:
        return "?"
    return None


def _blob(name: str, st: os.stat_result, lock: str) -> Blob:
    return Blob(name, st.st_size, _on_disk(st), st.st_atime, st.st_mtime, locked=lock_held(lock))


def _stat_blobs(blobs_dir: str, lock_dir: str) -> tuple[dict[str, os.stat_result], list[Blob]]:
    """({blob name: lstat}, partial downloads) of one blobs/ folder."""
    fd = os.open(blobs_dir, _DIR_FLAGS) if _BY_FD else None
    try:
        entries = list(os.scandir(blobs_dir if fd is None else fd))
        try:
            stats = {e.name: e.stat(follow_symlinks=False) for e in entries}
        except OSError:  # one vanished while we looked: take the others
            stats = {}
            for e in entries:
                try:
                    stats[e.name] = e.stat(follow_symlinks=False)
                except OSError:
                    pass
    finally:
        if fd is not None:
            os.close(fd)
    partials = [_blob(n, stats.pop(n), os.path.join(lock_dir, n.split(".")[0] + ".lock"))
                for n in [n for n in stats if n.endswith(".incomplete")]]
    return stats, partials


def scan_repo(repo_path: str, cache_root: str, now: float | None = None, detail: bool = True,
              index: LinkIndex | None = None) -> Repo:
    """One repo folder. ``detail=False`` leaves out which blobs each revision links to and
    their sizes (what prune needs, not what a listing shows); ``index`` (listings only)
    spares reading the links of snapshot folders unchanged since the last listing."""
    name = os.path.basename(repo_path)
    prefix, _, rest = name.partition("--")
    repo_type = REPO_TYPES.get(prefix, prefix)
    repo_id = rest.replace("--", "/")
    blobs_dir = os.path.join(repo_path, "blobs")
    lock_dir = os.path.join(cache_root, ".locks", name)
    snapshots_dir = os.path.join(repo_path, "snapshots")

    def failed(kind: str, why: str, **more) -> Repo:
        return Repo(repo_type, repo_id, repo_path, error=why, error_kind=kind, **more)

    for sub in (blobs_dir, snapshots_dir, os.path.join(repo_path, "refs")):
        target = _link_target(sub)
        if target is not None:
            return failed("linked", f"{sub} is a symbolic link to {target}: not followed")
    try:
        stats, partials = _stat_blobs(blobs_dir, lock_dir)
    except FileNotFoundError:
        stats, partials = {}, []
    except OSError as exc:
        return failed("unreadable", f"cannot read {blobs_dir}: {exc.strerror or exc}")
    try:
        entries = list(os.scandir(snapshots_dir))
    except FileNotFoundError:
        return failed("damaged", f"no snapshots folder in {repo_path}", incomplete=tuple(partials))
    except OSError as exc:
        return failed("unreadable", f"cannot read {snapshots_dir}: {exc.strerror or exc}")
    problems: list[tuple[str, str]] = []  # (kind, why): the repo is listed, and prune keeps all of it
    commits = []
    for e in entries:
        if e.is_symlink():
            problems.append(("linked", f"{e.path} is a symbolic link to {_link_target(e.path)}: not followed"))
        elif e.is_dir(follow_symlinks=False):
            commits.append(e.name)
    commits.sort()
    blob_names = frozenset(stats)  # before in-place files and outside links join the tables
    refs, ref_problems = _refs(repo_path)
    problems += ref_problems
    revisions, referenced, broken, outside = [], set(), [], []
    blobs_real = None
    for commit in commits:
        folder = os.path.join(snapshots_dir, commit)
        names, lost, odd, files, nb, unreadable = _snapshot_files(folder, blob_names, index)
        problems += [("unreadable", f"cannot read {u}") for u in unreadable]
        broken += lost
        for path, target in odd:
            if not target:
                broken.append(path)
                continue
            hop = os.path.normpath(os.path.join(os.path.dirname(path), target))
            parent = os.path.dirname(hop)
            if blobs_real is None:
                blobs_real = os.path.join(os.path.realpath(repo_path), "blobs")
            if parent in (blobs_dir, blobs_real) or os.path.realpath(parent) == blobs_real:
                key = os.path.basename(hop)
                if key in blob_names:
                    names.add(key)
                else:
                    broken.append(path)
                continue
            outside.append(path)  # counted as huggingface_hub counts it; never deleted
            try:
                st = os.stat(hop)
            except OSError:
                broken.append(path)
                continue
            stats.setdefault(hop, st)
            names.add(hop)
        for path in files:  # stored in place (no symlink support on this filesystem)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            stats.setdefault(path, st)
            names.add(path)
        referenced |= names
        size, disk, accessed, modified = _totals(names, stats)
        if not names:
            try:
                accessed = modified = os.stat(folder).st_mtime
            except OSError:
                pass
        revisions.append(Revision(commit, tuple(sorted(refs.pop(commit, ()))), tuple(sorted(names)) if detail else (),
                                  nb, size, disk, modified, accessed))
    size, disk, last_accessed, last_modified = _totals(referenced, stats)
    sizes = {n: stats[n].st_size for n in referenced} if detail else {}
    if not referenced:
        try:
            st = os.stat(repo_path)
            last_accessed, last_modified = st.st_atime, st.st_mtime
        except OSError:
            pass
    orphans = tuple(_blob(n, stats[n], os.path.join(lock_dir, n + ".lock")) for n in sorted(blob_names - referenced))
    if refs:  # refs naming a commit with no snapshot
        problems.append(("damaged", f"refs {sorted(r for rs in refs.values() for r in rs)} name commits with "
                                    "no snapshot"))
    kinds = [k for k, _ in problems]
    kind = next((k for k in ("linked", "unreadable", "damaged") if k in kinds), None)
    return Repo(repo_type, repo_id, repo_path, tuple(revisions), size=size, on_disk=disk, nb_files=len(referenced),
                last_accessed=last_accessed, last_modified=last_modified, orphans=orphans,
                incomplete=tuple(sorted(partials, key=lambda b: b.name)), broken=tuple(sorted(broken)),
                outside=tuple(sorted(outside)), blob_sizes=sizes,
                error="; ".join(why for _, why in problems) or None, error_kind=kind)


def _scan_chunk(paths: list[str], root: str, blobs: bool, index: LinkIndex | None) -> tuple[list[Repo], dict, set]:
    """(repos, folders this scan recorded, recorded folders it reused)."""
    repos = [scan_repo(p, root, detail=blobs, index=index) for p in paths]
    return repos, (index.new if index else {}), (index.used if index else set())


def _scan_many(paths: list[str], root: str, workers: int | None, blobs: bool = True,
               index: LinkIndex | None = None, pool: "WorkerPool | None" = None) -> list[Repo]:
    """Large caches are split over worker processes (the scan is system calls plus Python
    work the GIL would serialise); this process scans one share itself. Each worker is a
    fresh interpreter (:class:`WorkerPool`), never a fork: forking a process that runs
    threads (the probes do) is unsafe on macOS, warned about from Python 3.12, and Windows
    has no fork. A worker gets its share and the index entries under it, and sends back its
    repos with what it added to the index. Small caches are scanned here alone, and a share
    whose worker failed is scanned here too. ``pool``: workers started earlier (by :func:`scan`,
    so that their start-up overlaps the reading of the index)."""
    if pool is None:
        workers = min(workers or os.cpu_count() or 1, 8)
        if workers < 2 or len(paths) < PARALLEL_FROM:
            return _scan_chunk(paths, root, blobs, index)[0]
        pool = WorkerPool(workers - 1)
    if not pool.procs or len(paths) < PARALLEL_FROM:
        pool.close()
        return _scan_chunk(paths, root, blobs, index)[0]
    workers = len(pool.procs) + 1
    children = [(k, pool.send(k - 1, paths[k::workers], root, blobs, index)) for k in range(1, workers)]
    repos = _scan_chunk(paths[0::workers], root, blobs, index)[0]
    for k, child in children:
        theirs = _worker_result(child)
        if theirs is None:  # a worker that could not start or failed: scan its share here
            repos += _scan_chunk(paths[k::workers], root, blobs, index)[0]
            continue
        repos += theirs[0]
        if index is not None:
            index.merge(theirs[1], theirs[2])
    order = {p: i for i, p in enumerate(paths)}
    return sorted(repos, key=lambda r: order[r.path])


#: the worker's interpreter runs isolated (-I: no user site, no PYTHON* variables) and without
#: site-packages (-S): it imports llmdoctor from the folder this copy was loaded from, nothing else
_WORKER = "import sys; sys.path.insert(0, sys.argv[1]); from llmdoctor.cache.scan import _worker; _worker()"


class WorkerPool:
    """``n`` scanner processes, started now and given their share later (:meth:`send`): a fresh
    interpreter takes some 50 ms to import the scanner, which then overlaps the caller's own work."""

    def __init__(self, n: int):
        import subprocess
        import sys

        self.procs: list = []
        import llmdoctor

        base = os.path.dirname(os.path.dirname(os.path.abspath(llmdoctor.__file__)))  # the folder holding llmdoctor
        for _ in range(n if sys.executable else 0):
            try:
                self.procs.append(subprocess.Popen([sys.executable, "-I", "-S", "-c", _WORKER, base],
                                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.DEVNULL))
            except (OSError, ValueError):
                break
        self.used: set[int] = set()

    @classmethod
    def for_root(cls, path: str, workers: int | None = None) -> "WorkerPool | None":
        """Workers for a root holding enough repos to be worth them, else None."""
        workers = min(workers or os.cpu_count() or 1, 8)
        if workers < 2:
            return None
        try:
            with os.scandir(path) as it:
                if sum(1 for _ in it) < PARALLEL_FROM:
                    return None
        except OSError:
            return None
        return cls(workers - 1)

    def send(self, i: int, paths: list[str], root: str, blobs: bool, index: LinkIndex | None):
        """Give worker ``i`` its share, written by a thread (a pipe holds 64 KiB: writing it here
        would wait on the worker); the process, or None."""
        import pickle
        import threading

        if i >= len(self.procs):
            return None
        self.used.add(i)
        proc = self.procs[i]
        share = None
        if index is not None:  # only the entries of its repos' snapshot folders
            mine, cut = set(paths), os.sep + "snapshots" + os.sep
            share = ({f: e for f, e in index.old.items() if f[:max(0, f.find(cut))] in mine}, index.trust_before_ns)
        data = pickle.dumps((paths, root, blobs, share), protocol=pickle.HIGHEST_PROTOCOL)

        def feed() -> None:
            try:
                proc.stdin.write(data)
                proc.stdin.close()
            except OSError:  # the worker died: its result says so
                pass

        threading.Thread(target=feed, daemon=True, name="llmdoctor-scan-feed").start()
        return proc

    def close(self) -> None:
        """Stop the workers no share was sent to (a closed stdin ends them)."""
        for i, proc in enumerate(self.procs):
            if i not in self.used:
                try:
                    proc.stdin.close()
                    proc.stdout.close()
                    proc.wait(timeout=5)
                except Exception:  # noqa: BLE001
                    proc.kill()


def _worker_result(proc) -> tuple | None:
    """(repos, index entries it recorded, recorded entries it used) from a worker, or None."""
    import pickle

    if proc is None:
        return None
    try:
        data = proc.stdout.read()
        proc.stdout.close()
        code = proc.wait()
        return pickle.loads(data) if code == 0 and data else None
    except Exception:  # noqa: BLE001 - a damaged answer is a failed worker: its share is scanned here
        return None


def _worker() -> None:
    """The worker's side: read (paths, root, blobs, index share) from stdin, scan, pickle the
    result to stdout."""
    import pickle
    import sys

    data = sys.stdin.buffer.read()
    if not data:  # started ahead and not needed
        return
    paths, root, blobs, share = pickle.loads(data)
    index = None
    if share is not None:
        index = LinkIndex(None, root, share[0])
        index.trust_before_ns = share[1]
    sys.stdout.buffer.write(pickle.dumps(_scan_chunk(paths, root, blobs, index),
                                         protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


def scan_root(path: str, source: str, workers: int | None = None, blobs: bool = True,
              index: LinkIndex | None = None, pool: WorkerPool | None = None) -> Root:
    path = os.path.abspath(os.path.expanduser(path))
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except FileNotFoundError:
        return Root(path, source, exists=False)
    except NotADirectoryError:
        blocker = path
        while not os.path.lexists(blocker) and os.path.dirname(blocker) != blocker:
            blocker = os.path.dirname(blocker)
        return Root(path, source, error=f"{blocker} is a file, not a folder", error_kind="not-a-folder")
    except OSError as exc:
        return Root(path, source, error=f"cannot read {path}: {exc.strerror or exc}", error_kind="unreadable")
    candidates, warnings = [], []
    for entry in entries:
        if entry.name in IGNORED:
            continue
        if entry.name == "blobs" and os.path.exists(os.path.join(entry.path, SHARED_BLOBS_MARKER)):
            continue
        prefix, sep, _ = entry.name.partition("--")
        if entry.is_symlink():
            warnings.append(f"{entry.path} is a symbolic link to {_link_target(entry.path)}: not followed")
            continue
        if not entry.is_dir(follow_symlinks=False) or not sep or prefix not in REPO_TYPES:
            warnings.append(f"not a cached repo: {entry.path}")
            continue
        candidates.append(entry.path)
    repos = _scan_many(candidates, path, workers, blobs, index, pool)
    for r in repos:
        if r.broken:
            warnings.append(f"{r.cache_id}: {len(r.broken)} file(s) whose blob is missing (broken symlink), e.g. "
                            f"{r.broken[0]}")
        if r.error:
            warnings.append(f"{r.cache_id}: {r.error}")
    return Root(path, source, repos=tuple(repos), warnings=tuple(warnings))


def du(path: str, name: str | None = None) -> OtherCache:
    """Blocks and file count under ``path``, as `du` counts them (hard links once)."""
    total = files = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    if not os.path.exists(path):
        return OtherCache(name or os.path.basename(path), path, exists=False)
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat_mod.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                        continue
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    total += _on_disk(st)
                    files += 1
        except OSError:
            continue
    return OtherCache(name or os.path.basename(path), path, True, total, files)


@dataclass(frozen=True)
class Location:
    path: str
    source: str


def hub_roots(environ: Mapping[str, str], extra: Iterable[str] = ()) -> list[Location]:
    """Every hub-layout cache root in play: the effective one, a legacy or default location
    still holding data, TRANSFORMERS_CACHE (transformers 4.x), and ``--dir`` folders."""
    effective = hf_hub_cache(environ)
    source = ("HF_HUB_CACHE" if environ.get("HF_HUB_CACHE") else
              "HUGGINGFACE_HUB_CACHE" if environ.get("HUGGINGFACE_HUB_CACHE") else
              "HF_HOME" if environ.get("HF_HOME") else "default")
    out = [Location(effective, source)]
    candidates = [
        (environ.get("HUGGINGFACE_HUB_CACHE"), "HUGGINGFACE_HUB_CACHE (legacy)"),
        (environ.get("TRANSFORMERS_CACHE"), "TRANSFORMERS_CACHE (deprecated)"),
        (environ.get("PYTORCH_TRANSFORMERS_CACHE"), "PYTORCH_TRANSFORMERS_CACHE (deprecated)"),
        (os.path.join(hf_home({k: v for k, v in environ.items() if k != "HF_HOME"}), "hub"), "default location"),
    ]
    for path in extra:
        candidates.append((path, "--dir"))
    for path, label in candidates:
        if not path:
            continue
        path = os.path.abspath(expand(path, environ))
        if any(os.path.realpath(path) == os.path.realpath(loc.path) for loc in out):
            continue
        if label == "default location" and not os.path.isdir(path):
            continue
        out.append(Location(path, label))
    return out


def other_caches(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    xdg = xdg_cache(environ)
    hf = hf_home(environ)
    torch_home = environ.get("TORCH_HOME") or os.path.join(xdg, "torch")
    return [
        ("xet", environ.get("HF_XET_CACHE") or os.path.join(hf, "xet")),
        ("datasets", environ.get("HF_DATASETS_CACHE") or os.path.join(hf, "datasets")),
        ("torch hub", os.path.join(torch_home, "hub")),
        ("pip", environ.get("PIP_CACHE_DIR") or os.path.join(xdg, "pip")),
    ]


@dataclass(frozen=True)
class CacheReport:
    roots: tuple[Root, ...]
    others: tuple[OtherCache, ...] = ()
    seconds: float = 0.0
    scanned_at: float = field(default_factory=time.time)


def scan(environ: Mapping[str, str], extra: Iterable[str] = (), others: bool = True,
         blobs: bool = True, remember: bool = False) -> CacheReport:
    """Every root; ``blobs=False`` (for listing) may leave out which blobs each revision
    uses; ``remember`` (for listing) keeps each root's snapshot listings in a
    :class:`~llmdoctor.cache.index.LinkIndex` between runs."""
    started = time.perf_counter()
    roots = []
    for loc in hub_roots(environ, extra):
        pool = WorkerPool.for_root(loc.path)  # started before the index is read: their start-up overlaps it
        index = LinkIndex.open(loc.path, environ) if remember else None
        roots.append(scan_root(loc.path, loc.source, blobs=blobs, index=index, pool=pool))
        if pool is not None:
            pool.close()
        if index is not None and roots[-1].exists:
            index.save()
    roots = tuple(roots)
    more = tuple(du(path, name) for name, path in other_caches(environ)) if others else ()
    return CacheReport(roots, more, round(time.perf_counter() - started, 4))
