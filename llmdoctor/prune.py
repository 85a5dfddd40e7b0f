"""`llmdoctor cache prune`: choose what to delete by policy, plan it with huggingface_hub's
own deletion strategy, show it, and only with --yes execute it.

What goes is decided here; how a revision goes is huggingface_hub's
``HFCacheInfo.delete_revisions`` (its snapshot, the refs naming it, the blobs no kept
revision uses, or the whole repo when no revision stays). Two rules are added on top:

* nothing outside the cache root is deleted: a blob path the strategy took from a
  snapshot link that leaves the repo's ``blobs/`` is dropped from the plan;
* the order is safe to interrupt: refs first (the revision becomes detached), then the
  snapshot folder or the whole repo is *renamed* into ``.locks/.llmdoctor-trash`` (one
  atomic step, and ``.locks`` is a folder huggingface_hub's scan skips), then blobs no
  snapshot links to any more. A prune killed at any point leaves a cache that
  ``scan_cache_dir`` reads without warnings; the next prune empties the trash.

Partials (``*.incomplete``) and orphan blobs are skipped while their download lock is
held, or when they changed in the last ten minutes (a download may be running on a
filesystem where locks do not work).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from .hfcache import RECENT_S, TRASH, Repo, Root, lock_held


class PruneError(RuntimeError):
    """A prune that must not run (bad root, nothing chosen), with the reason."""


@dataclass(frozen=True)
class Policy:
    detached: bool = False
    incomplete: bool = False
    orphans: bool = False
    older_than_s: float | None = None
    keep: int | None = None
    max_size: int | None = None
    repo_globs: tuple[str, ...] = ()

    @property
    def chosen(self) -> bool:
        return bool(self.detached or self.incomplete or self.orphans or self.older_than_s is not None
                    or self.keep is not None or self.max_size is not None)


@dataclass(frozen=True)
class Item:
    kind: str  #: "revision" | "repo" | "orphan" | "incomplete"
    root: str
    repo: str  #: cache id, e.g. model/gpt2
    size: int  #: bytes freed (apparent size, as huggingface_hub counts)
    why: str
    commit: str | None = None
    refs: tuple[str, ...] = ()
    path: str | None = None  #: for orphans and partials


@dataclass(frozen=True)
class Skipped:
    what: str
    why: str


@dataclass(frozen=True)
class PrunePlan:
    items: tuple[Item, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    #: per (root, repo path): the commits to delete, handed to delete_revisions
    revisions: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @property
    def freed(self) -> int:
        return sum(i.size for i in self.items)


def check_root(root: str, environ: Mapping[str, str]) -> None:
    real = os.path.realpath(root)
    home = os.path.realpath(environ.get("HOME") or os.path.expanduser("~"))
    if real == os.path.sep or os.path.dirname(real) == real:
        raise PruneError(f"refusing to prune {root}: it resolves to the filesystem root")
    if real == home:
        raise PruneError(f"refusing to prune {root}: it resolves to the home directory itself")


def _matches(repo: Repo, globs: Iterable[str]) -> bool:
    globs = tuple(globs)
    return not globs or any(fnmatch.fnmatch(repo.repo_id, g) or fnmatch.fnmatch(repo.cache_id, g) for g in globs)


def make_plan(roots: Iterable[Root], policy: Policy, environ: Mapping[str, str], now: float | None = None) -> PrunePlan:
    if not policy.chosen:
        raise PruneError("no policy chosen")
    now = time.time() if now is None else now
    roots = list(roots)
    # (item, its repo for revision items): a revision's size is known once every policy has chosen
    pending: list[tuple[Item, Repo | None]] = []
    skipped: list[Skipped] = []
    revisions: dict[tuple[str, str], tuple[str, ...]] = {}
    candidates: list[tuple[float, Root, Repo, str]] = []  # for --max-size: (last access, root, repo, commit)
    total = 0
    chosen_by_repo: dict[str, set[str]] = {}
    for root in roots:
        if not root.exists or root.error:
            continue
        check_root(root.path, environ)
        for repo in root.repos:
            total += repo.size
            if not _matches(repo, policy.repo_globs):
                continue
            chosen: dict[str, str] = {}
            newest = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
            for i, rev in enumerate(newest):
                if policy.detached and not rev.refs:
                    chosen.setdefault(rev.commit, "detached (no ref points to it)")
                if policy.older_than_s is not None and now - rev.last_accessed > policy.older_than_s:
                    chosen.setdefault(rev.commit, f"last accessed {int((now - rev.last_accessed) // 86400)} days ago")
                if policy.keep is not None and i >= policy.keep:
                    chosen.setdefault(rev.commit, f"older than the newest {policy.keep} revision(s)")
            if chosen and (repo.error or repo.broken):
                skipped.append(Skipped(repo.cache_id, "the repo has missing blobs or dangling refs; huggingface_hub "
                                                      "cannot plan its deletion (remove the repo folder by hand)"))
                chosen = {}
            if chosen:
                chosen_by_repo[repo.path] = set(chosen)
            for rev in repo.revisions:
                if rev.commit not in chosen and not repo.error and not repo.broken:
                    candidates.append((rev.last_accessed, root, repo, rev.commit))
            for commit, why in chosen.items():
                rev = next(r for r in repo.revisions if r.commit == commit)
                pending.append((Item("revision", root.path, repo.cache_id, 0, why, commit, rev.refs), repo))
            for kind, blobs, on in (("orphan", repo.orphans, policy.orphans),
                                    ("incomplete", repo.incomplete, policy.incomplete)):
                if not on:
                    continue
                for blob in blobs:
                    path = os.path.join(repo.path, "blobs", blob.name)
                    if blob.locked:
                        skipped.append(Skipped(path, "its download lock is held: a download is running"))
                    elif now - blob.modified < RECENT_S:
                        skipped.append(Skipped(path, "changed in the last 10 minutes: a download may be running"))
                    else:
                        why = ("no snapshot links to it" if kind == "orphan" else
                               f"partial download, last written {int((now - blob.modified) // 3600)} h ago")
                        pending.append((Item(kind, root.path, repo.cache_id, blob.size, why, path=path), None))
    if policy.max_size is not None:
        freed_now = sum({repo.path: repo.freed_by(chosen_by_repo[repo.path]) for _, repo in pending if repo}.values())
        left = total - freed_now
        for accessed, root, repo, commit in sorted(candidates, key=lambda c: c[0]):
            if left <= policy.max_size:
                break
            before = repo.freed_by(chosen_by_repo.get(repo.path, set()))
            chosen_by_repo.setdefault(repo.path, set()).add(commit)
            left -= repo.freed_by(chosen_by_repo[repo.path]) - before
            rev = next(r for r in repo.revisions if r.commit == commit)
            pending.append((Item("revision", root.path, repo.cache_id, 0,
                                 f"least recently used (cache over {policy.max_size / 1e9:.0f} GB)", commit, rev.refs),
                            repo))
    for root in roots:
        for repo in root.repos:
            commits = chosen_by_repo.get(repo.path)
            if commits:
                revisions[(root.path, repo.path)] = tuple(sorted(commits))
    # a repo's freed bytes go on its first revision item; "repo" when every revision goes
    out, seen = [], set()
    for item, repo in pending:
        if repo is None:
            out.append(item)
            continue
        commits = set(chosen_by_repo[repo.path])
        size = 0 if repo.path in seen else repo.freed_by(commits)
        seen.add(repo.path)
        whole = commits == {r.commit for r in repo.revisions}
        out.append(Item("repo" if whole else "revision", item.root, item.repo, size, item.why, item.commit,
                        item.refs))
    return PrunePlan(tuple(out), tuple(skipped), revisions)


def _inside(path: str, folder: str) -> bool:
    """``path`` (not followed if it is a link) lies inside ``folder``."""
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    folder = os.path.realpath(folder)
    return parent == folder or parent.startswith(folder.rstrip(os.sep) + os.sep)


def _trash(root: str) -> str:
    path = os.path.join(root, TRASH)
    os.makedirs(path, exist_ok=True)
    return path


def empty_trash(root: str) -> None:
    path = os.path.join(root, TRASH)
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def _park(path: str, root: str) -> None:
    """Move a snapshot or repo folder out of the cache's namespace in one rename, then delete it."""
    parked = os.path.join(_trash(root), f"{uuid.uuid4().hex}-{os.path.basename(path)}")
    os.rename(path, parked)
    shutil.rmtree(parked, ignore_errors=True)


@dataclass(frozen=True)
class Outcome:
    deleted: int  #: items done
    freed: int
    errors: tuple[str, ...] = ()


def execute(plan: PrunePlan, progress: Callable[[str, int], None] | None = None) -> Outcome:
    """Delete what ``plan`` holds; ``progress(label, bytes)`` after each step."""
    from huggingface_hub import scan_cache_dir

    step = progress or (lambda label, size: None)
    done = freed = 0
    errors: list[str] = []
    roots = sorted({r for r, _ in plan.revisions} | {i.root for i in plan.items})
    for root in roots:
        empty_trash(root)
    by_root: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for (root, repo_path), commits in plan.revisions.items():
        by_root.setdefault(root, []).append((repo_path, commits))
    for root, repos in sorted(by_root.items()):
        info = scan_cache_dir(root)
        for repo_path, commits in sorted(repos):
            strategy = info.delete_revisions(*commits)
            try:
                freed += _execute_strategy(strategy, root, repo_path)
                done += 1
            except OSError as exc:
                errors.append(f"{repo_path}: {exc}")
            step(os.path.basename(repo_path), 0)
    for item in plan.items:
        if item.kind not in ("orphan", "incomplete") or not item.path:
            continue
        lock = os.path.join(item.root, ".locks", os.path.basename(os.path.dirname(os.path.dirname(item.path))),
                            os.path.basename(item.path).split(".")[0] + ".lock")
        if lock_held(lock) or not _inside(item.path, os.path.join(item.root)):
            errors.append(f"{item.path}: skipped, its download lock is held now")
            continue
        try:
            os.unlink(item.path)
            freed += item.size
            done += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append(f"{item.path}: {exc}")
        step(os.path.basename(item.path), item.size)
    for root in roots:
        empty_trash(root)
    return Outcome(done, freed, tuple(errors))


def _execute_strategy(strategy, root: str, repo_path: str) -> int:
    """huggingface_hub's strategy for one repo, in an order that is safe to interrupt, and
    never outside the repo's own folder."""
    blobs_dir = os.path.join(repo_path, "blobs")
    blobs = [str(b) for b in strategy.blobs if _inside(str(b), blobs_dir)]
    freed = 0
    sizes = {}
    for b in blobs:
        try:
            sizes[b] = os.lstat(b).st_size
        except OSError:
            sizes[b] = 0
    for ref in strategy.refs:
        if _inside(str(ref), os.path.join(repo_path, "refs")):
            try:
                os.unlink(ref)
            except FileNotFoundError:
                pass
    for repo in strategy.repos:
        if os.path.realpath(str(repo)) == os.path.realpath(repo_path):
            refs = os.path.join(repo_path, "refs")
            if os.path.isdir(refs):
                _park(refs, root)  # every revision detached first
            _park(repo_path, root)
            return sum(sizes.values()) or 0
    for snapshot in strategy.snapshots:
        if _inside(str(snapshot), os.path.join(repo_path, "snapshots")) and os.path.lexists(str(snapshot)):
            _park(str(snapshot), root)
    for b in blobs:
        try:
            os.unlink(b)
            freed += sizes[b]
        except FileNotFoundError:
            pass
    return freed
