"""Facts about the Hugging Face caches for `llmdoctor check`: each hub root with what it
holds and what could go (detached revisions, partials, orphans), the filesystem under
it, the other mounted filesystems, and signs of a split cache."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from llmdoctor.cache import scan as hfcache
from llmdoctor.platforms.mounts import mount_of as longest_mount, user_mounts
from llmdoctor.probes.base import ProbeContext



@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    total: int
    free: int
    remote: bool = False  #: a network drive (Windows reports its type as the server's, NTFS)


@dataclass(frozen=True)
class CacheRootFacts:
    path: str
    source: str
    exists: bool
    repos: int = 0
    size: int = 0  #: referenced blobs, as huggingface_hub counts
    on_disk: int = 0
    detached: int = 0  #: bytes that `cache prune --detached` would free (estimate: revisions without refs)
    incomplete: int = 0
    orphans: int = 0
    broken_repos: int = 0
    mount: Mount | None = None
    error: str | None = None
    error_kind: str | None = None  #: "not-a-folder" | "unreadable" (hfcache.Root.error_kind)
    in_place_files: int = 0  #: snapshot files stored as copies, not links (no symlinks where it was written)
    in_place_bytes: int = 0
    duplicate_bytes: int = 0  #: of those, bytes stored more than once (the same file in several revisions)


@dataclass(frozen=True)
class CacheFacts:
    roots: tuple[CacheRootFacts, ...]
    mounts: tuple[Mount, ...] = ()
    transformers_cache: str | None = None  #: TRANSFORMERS_CACHE (or PYTORCH_TRANSFORMERS_CACHE) as set
    shared_blobs: int = 0  #: blobs present in two or more roots
    shared_bytes: int = 0


def _mounts() -> list[Mount]:
    """Every mounted filesystem that can hold a cache, network and FUSE ones and WSL's
    ``/mnt/c`` included (``all=False`` would drop those: :mod:`llmdoctor.platforms.mounts`)."""
    try:
        import psutil

        parts = psutil.disk_partitions(all=True)
    except Exception:
        return []
    out = []
    for p in user_mounts(parts):
        try:
            usage = shutil.disk_usage(p.mountpoint)
        except OSError:
            continue
        remote = "remote" in (getattr(p, "opts", "") or "").split(",")  # psutil's flag for a Windows network drive
        out.append(Mount(p.mountpoint, p.fstype, usage.total, usage.free, remote))
    return out


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    real = os.path.realpath(path)
    while not os.path.exists(real) and os.path.dirname(real) != real:
        real = os.path.dirname(real)
    best = longest_mount(real, mounts, os.path)
    if best is None:
        try:
            usage = shutil.disk_usage(real)
            return Mount(real, "?", usage.total, usage.free)
        except OSError:
            return None
    return best


def in_place(repos) -> dict[str, int]:
    """Snapshot files stored as regular files instead of links to blobs/ (huggingface_hub does
    that where it cannot create symlinks: Windows without Developer Mode), and the bytes of
    those stored more than once: a file of the same path and size in several revisions of a
    repo is the same download, copied (file_download._create_symlink)."""
    files = size = dup = 0
    for repo in repos:
        seen: dict[tuple[str, int], int] = {}
        for rev in repo.revisions:
            head = os.path.join(repo.path, "snapshots", rev.commit) + os.sep
            for name in rev.blobs:
                if os.sep not in name:  # a blob name: a link, as it should be
                    continue
                n = repo.blob_sizes.get(name, 0)
                files += 1
                size += n
                key = (name[len(head):] if name.startswith(head) else name, n)
                seen[key] = seen.get(key, 0) + 1
        dup += sum(n * (count - 1) for (_, n), count in seen.items())
    return {"in_place_files": files, "in_place_bytes": size, "duplicate_bytes": dup}


def probe_cache(ctx: ProbeContext) -> CacheFacts:
    mounts = _mounts()
    roots, blob_roots = [], {}
    for loc in hfcache.hub_roots(ctx.environ):
        root = hfcache.scan_root(loc.path, loc.source)
        mount = mount_of(loc.path, mounts)
        roots.append(CacheRootFacts(
            path=root.path, source=root.source, exists=root.exists, repos=len(root.repos), size=root.size,
            on_disk=root.on_disk, detached=sum(r.freed_by({v.commit for v in r.revisions if not v.refs}) for r in root.repos),
            incomplete=sum(b.size for r in root.repos for b in r.incomplete),
            orphans=sum(b.size for r in root.repos for b in r.orphans),
            broken_repos=sum(1 for r in root.repos if r.broken or r.error), mount=mount, error=root.error,
            error_kind=root.error_kind, **in_place(root.repos)))
        for repo in root.repos:
            for name, size in repo.blob_sizes.items():
                if os.sep not in name:
                    blob_roots.setdefault(name, (size, set()))[1].add(root.path)
    shared = [(size, where) for size, where in blob_roots.values() if len(where) > 1]
    tc = ctx.environ.get("TRANSFORMERS_CACHE") or ctx.environ.get("PYTORCH_TRANSFORMERS_CACHE")
    return CacheFacts(roots=tuple(roots), mounts=tuple(mounts), transformers_cache=tc or None,
                      shared_blobs=len(shared), shared_bytes=sum(s * (len(w) - 1) for s, w in shared))
