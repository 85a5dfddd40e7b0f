"""Facts about the Hugging Face caches for `llmdoctor check`: each hub root with what it
holds and what could go (detached revisions, partials, orphans), the filesystem under
it, the other mounted filesystems, and signs of a split cache."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .. import hfcache
from .base import ProbeContext

@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    total: int
    free: int


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


@dataclass(frozen=True)
class CacheFacts:
    roots: tuple[CacheRootFacts, ...]
    mounts: tuple[Mount, ...] = ()
    transformers_cache: str | None = None  #: TRANSFORMERS_CACHE (or PYTORCH_TRANSFORMERS_CACHE) as set
    shared_blobs: int = 0  #: blobs present in two or more roots
    shared_bytes: int = 0


def _mounts() -> list[Mount]:
    try:
        import psutil

        parts = psutil.disk_partitions(all=False)
    except Exception:
        return []
    out, seen = [], set()
    for p in parts:
        if p.mountpoint in seen or p.fstype in ("squashfs", "tmpfs", "devtmpfs", "overlay") and p.mountpoint != "/":
            continue
        seen.add(p.mountpoint)
        try:
            usage = shutil.disk_usage(p.mountpoint)
        except OSError:
            continue
        out.append(Mount(p.mountpoint, p.fstype, usage.total, usage.free))
    return out


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    real = os.path.realpath(path)
    while not os.path.exists(real) and os.path.dirname(real) != real:
        real = os.path.dirname(real)
    best = None
    for m in mounts:
        mp = m.mountpoint.rstrip(os.sep) or os.sep
        if (real == mp or real.startswith(mp.rstrip(os.sep) + os.sep)) and (best is None or len(mp) > len(best.mountpoint)):
            best = m
    if best is None:
        try:
            usage = shutil.disk_usage(real)
            return Mount(real, "?", usage.total, usage.free)
        except OSError:
            return None
    return best


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
            error_kind=root.error_kind))
        for repo in root.repos:
            for name, size in repo.blob_sizes.items():
                if os.sep not in name:
                    blob_roots.setdefault(name, (size, set()))[1].add(root.path)
    shared = [(size, where) for size, where in blob_roots.values() if len(where) > 1]
    tc = ctx.environ.get("TRANSFORMERS_CACHE") or ctx.environ.get("PYTORCH_TRANSFORMERS_CACHE")
    return CacheFacts(roots=tuple(roots), mounts=tuple(mounts), transformers_cache=tc or None,
                      shared_blobs=len(shared), shared_bytes=sum(s * (len(w) - 1) for s, w in shared))
