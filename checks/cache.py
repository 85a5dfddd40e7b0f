"""The Hugging Face cache: what it holds and what prune could free, a cache on a small disk
while a bigger one is mounted, split caches, and caches on network filesystems."""

from __future__ import annotations

import posixpath

from llmdoctor.command import Ref, run, setvar, unset
from llmdoctor.data import row
from llmdoctor.model import Status, check
from llmdoctor.platforms.paths import flavor_of
from llmdoctor.units import size

from llmdoctor.checks.host import home_of, windows

DOCS = "https://huggingface.co/docs/huggingface_hub/guides/manage-cache"


def _limit(name: str) -> dict:
    return row("llmdoctor.checks", "cache_limits", "name", name)


def network_fs() -> tuple[str, ...]:
    """Filesystem types where locks are unreliable and every stat is a round trip."""
    return tuple(_limit("network_fs")["fstypes"])


def _remote(mount) -> bool:
    """A network filesystem (NFS, SMB, 9p: WSL's /mnt/c), or a Windows network drive."""
    return (mount.fstype or "").lower() in network_fs() or bool(getattr(mount, "remote", False))


def _live(facts):
    return [r for r in facts.value("cache").roots if r.exists and not r.error]


@check("cache.contents", category="cache", needs=["cache"])
def contents_check(facts, c):
    """What each hub cache root holds, and what `cache prune` would free."""
    for r in facts.value("cache").roots:
        if r.exists and r.error:
            yield c.finding(Status.FAIL, f"The Hugging Face cache {r.path} ({r.source}) cannot be used: {r.error}",
                            id="cache.unreadable", detail="Every download and every from_pretrained() that reads "
                            "this cache fails until it is a folder this user can read and write.",
                            fix=_unusable_fix(facts, r), docs=DOCS)
    roots = _live(facts)
    if not roots:
        if not any(r.exists and r.error for r in facts.value("cache").roots):
            yield c.finding(Status.SKIP, "No Hugging Face cache yet")
        return
    floor = _limit("reclaim_info_bytes")["value"]
    for r in roots:
        parts = [(r.detached, "--detached", "in detached revisions"), (r.incomplete, "--incomplete",
                 "in partial downloads"), (r.orphans, "--orphans", "in orphan blobs")]
        loose = [(n, flag, what) for n, flag, what in parts if n]
        summary = f"{r.path} ({r.source}): {r.repos} repos, {size(r.on_disk)} on disk"
        if r.broken_repos:
            yield c.finding(Status.WARN, f"{r.broken_repos} repo(s) in {r.path} have missing blobs or dangling refs: "
                            "huggingface_hub's scan drops them", id="cache.broken",
                            fix=(run("llmdoctor", "cache", "ls", "--dir", r.path), "   (the broken files are listed)"),
                            docs=DOCS)
        if sum(n for n, _, _ in loose) >= floor:
            flags = " ".join(flag for _, flag, _ in loose)
            yield c.finding(Status.INFO, summary + "; " + ", ".join(f"{size(n)} {what}" for n, _, what in loose),
                            id="cache.reclaimable",
                            fix=(run("llmdoctor", "cache", "prune", *flags.split()), "   (a dry run; add --yes)"),
                            docs=DOCS)
        else:
            yield c.finding(Status.OK, summary)


def _unusable_fix(facts, r):
    """For a root that is a file: point the variable elsewhere; else make the folder the user's."""
    var = "HF_HOME" if r.source in ("HF_HOME", "default") else r.source.split()[0]
    if r.error_kind == "not-a-folder":
        return (unset(var), "   (or: ", setvar(var, "<a folder>"), ")") if r.source != "default" else \
            (setvar("HF_HOME", "<a folder of yours>"), "   (a file stands where the cache folder belongs)")
    if windows(facts):
        return (f"give your user Full control of {r.path} (its Properties > Security), or: ",
                setvar(var, "<a folder of yours>"))
    return (run("sudo", "chown", "-R", Ref("USER"), r.path), "   (or: ", setvar(var, "<a folder of yours>"), ")")


@check("cache.location", category="cache", needs=["cache"])
def location_check(facts, c):
    """The cache on a small disk while a much larger one is mounted."""
    cache = facts.value("cache")
    roots = [r for r in cache.roots if r.mount is not None and r.source not in ("--dir",)]
    if not roots:
        yield c.finding(Status.SKIP, "Cache location unknown")
        return
    r = roots[0]
    spec = _limit("better_disk")
    better = [m for m in cache.mounts if m.mountpoint != r.mount.mountpoint and m.free >= spec["free_ratio"] * r.mount.free
              and m.free - r.mount.free >= spec["min_extra_bytes"] and not _remote(m)]
    if better:
        best = max(better, key=lambda m: m.free)
        pathmod = flavor_of(best.mountpoint)  # a drive (D:\\) joins as Windows paths do
        target = pathmod.join(best.mountpoint, "huggingface")
        system = facts.value("system")
        home = next((d for d in (system.disks if system else ()) if d.role == "home"), None)
        if home is not None and home.mountpoint == best.mountpoint:  # the home folder's own disk: the default place
            target = pathmod.join(home.path, ".cache", "huggingface")
        yield c.finding(Status.WARN, f"The Hugging Face cache is on {r.mount.mountpoint} ({size(r.mount.free)} free) "
                        f"while {best.mountpoint} has {size(best.free)} free", id="cache.small-disk",
                        detail=spec["why"],
                        fix=_move_fix(facts, r.path, target, pathmod.join(target, "hub")), docs=spec["source"])
    else:
        yield c.finding(Status.OK, f"The cache's filesystem ({r.mount.mountpoint}) has the most free space "
                        "of the mounted ones, or close to it")


def _move_fix(facts, old: str, home: str, hub: str):
    """HF_HOME set to ``home`` (and kept), with what is cached at ``old`` moved to ``hub``."""
    if windows(facts):  # setx keeps it for every new window (in cmd and PowerShell alike)
        return (setvar("HF_HOME", home) + run("setx", "HF_HOME", home),
                f"   (setx keeps it for new windows; first move what is cached from {old} to {hub})")
    return (setvar("HF_HOME", home), "   (in your shell profile; move what is cached: ", run("mv", old, hub), ")")


@check("cache.split", category="cache", needs=["cache"])
def split_check(facts, c):
    """TRANSFORMERS_CACHE set, or the same blobs downloaded into two cache roots."""
    cache = facts.value("cache")
    hits = 0
    if cache.transformers_cache:
        hits += 1
        spec = _limit("transformers_cache")
        yield c.finding(Status.WARN, f"TRANSFORMERS_CACHE={cache.transformers_cache} splits the cache: only "
                        "transformers downloads there", id="cache.transformers-cache", detail=spec["why"],
                        fix=(unset("TRANSFORMERS_CACHE") + setvar("HF_HOME", cache.transformers_cache),
                             "   (if that folder is where models should live)"), docs=spec["source"])
    if cache.shared_blobs:
        hits += 1
        where = ", ".join(r.path for r in cache.roots if r.exists)
        yield c.finding(Status.WARN, f"{cache.shared_blobs} file(s), {size(cache.shared_bytes)}, are downloaded into "
                        f"more than one cache root ({where})", id="cache.duplicates",
                        fix=("keep one HF_HOME, then remove the other root's copies: ",
                             run("llmdoctor", "cache", "prune", "--dir", "<other root>", "--repo", "<repo>", "--keep",
                                 "0")), docs=DOCS)
    if not hits:
        yield c.finding(Status.OK, "One cache: no TRANSFORMERS_CACHE, no file downloaded twice")


@check("cache.network-fs", category="cache", needs=["cache"])
def network_fs_check(facts, c):
    """A cache root on NFS, Lustre, GPFS or another network filesystem."""
    remote = [r for r in facts.value("cache").roots if r.mount and _remote(r.mount)]
    if not remote:
        yield c.finding(Status.OK, "The cache is on a local filesystem")
        return
    spec = _limit("network_fs")
    for r in remote:
        if _wsl_drive(r.mount):
            wsl = _limit("wsl_windows_drive")
            yield c.finding(Status.WARN, f"{r.path} is on the Windows drive {r.mount.mountpoint}, which WSL 2 serves "
                            f"over {r.mount.fstype}: every file operation crosses into Windows, and locks are "
                            "unreliable", id="cache.network-fs", detail=wsl["why"],
                            fix=(setvar("HF_HOME", *((home_of(facts) + "/.cache/huggingface",) if home_of(facts)
                                                     else (Ref("HOME"), "/.cache/huggingface"))),
                                 "   (on WSL's own ext4 disk; move what is cached there first)"), docs=wsl["source"])
            continue
        kind = "a network drive" if r.mount.remote and r.mount.fstype.lower() not in network_fs() else r.mount.fstype
        yield c.finding(Status.WARN, f"{r.path} is on {kind} ({r.mount.mountpoint}): locks are unreliable "
                        "and every file operation is a network round trip", id="cache.network-fs",
                        detail=spec["why"], fix=(setvar("HF_HOME", "<a folder on a local disk>"), "   (keep datasets "
                                                 "on the network share if they must be shared)"), docs=spec["source"])


def _wsl_drive(mount) -> bool:
    """A Windows drive as WSL mounts it: /mnt/<letter> over 9p (WSL 2) or drvfs (WSL 1)."""
    point = mount.mountpoint or ""
    return (mount.fstype or "").lower() in ("9p", "drvfs") and len(point) == 6 and point.startswith("/mnt/")


@check("cache.symlinks", category="cache", needs=["cache"])
def symlinks_check(facts, c):
    """A cache written without symlinks (Windows without Developer Mode): every revision holds its own copy."""
    roots = [r for r in facts.value("cache").roots if r.exists and not r.error and r.in_place_files]
    if not roots:
        yield c.finding(Status.OK, "Snapshot files are links to the blobs: nothing is stored twice")
        return
    spec = _limit("no_symlinks")
    platform = facts.value("platform")
    windows = platform is not None and platform.windows is not None
    for r in roots:
        win = windows or flavor_of(r.path) is not posixpath
        where = ("turn on Developer Mode (Settings > System > For developers) or run Python as administrator"
                 if win else "move the cache to a filesystem with symbolic links (HF_HOME)")
        dev = ""
        if windows and platform.windows.developer_mode is False:
            dev = " Developer Mode is off here."
        status = Status.WARN if r.duplicate_bytes else Status.INFO
        yield c.finding(status, f"{r.path}: {r.in_place_files} snapshot file(s), {size(r.in_place_bytes)}, are stored "
                        "as copies, not links" + (f"; {size(r.duplicate_bytes)} of them are the same file stored again "
                                                  "in another revision" if r.duplicate_bytes else ""),
                        id="cache.no-symlinks", detail=spec["why"] + dev,
                        fix=(f"{where}; then delete and download the repos again to store each file once: ",
                             run("llmdoctor", "cache", "prune", "--dir", r.path, "--repo", "<repo>", "--keep", "0",
                                 "--yes")),
                        docs=spec["source"])
