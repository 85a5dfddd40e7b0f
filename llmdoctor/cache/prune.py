"""`llmdoctor cache prune`: choose what to delete by policy, plan it with huggingface_hub's
own deletion strategy, show it, and only with --yes execute it.

What goes is decided here; how a revision goes is huggingface_hub's
``HFCacheInfo.delete_revisions`` (its snapshot, the refs naming it, the blobs no kept
revision uses, or the whole repo when no revision stays). Two rules are added on top:

* nothing outside the cache root is deleted or written: every deletion descends from the
  root one name at a time and follows no symbolic link below it (``nofollow``), a repo with a
  link in place of ``blobs/``, ``snapshots/``, ``refs/`` or a snapshot folder is kept whole
  and named, and a path the strategy names outside the repo's own folders is never touched;
* what cannot be read (a repo, a ref, a snapshot, the root) is kept, with the reason, and the
  rest of the prune goes on; a blob is deleted only when both this scan and
  huggingface_hub's say no kept revision links to it;
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
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from llmdoctor.cache.scan import RECENT_S, TRASH, Repo, Root, lock_held, scan_repo
from llmdoctor.cache.nofollow import Folder, NotFollowed, split
from llmdoctor.paths import home as home_dir


#: how long huggingface_hub's own scan of a root may take before the prune goes on without it
HF_SCAN_S = 60.0


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

    def or_default(self) -> "Policy":
        """This policy, or, when none is chosen, what `hf cache prune` does: detached revisions
        and stale partial downloads (of the repos asked for)."""
        return self if self.chosen else Policy(detached=True, incomplete=True, repo_globs=self.repo_globs)


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
    kind: str = "held"  #: "held" (a download may run) | "damaged" | "unreadable" | "linked"

    @property
    def problem(self) -> bool:
        """Kept because it could not be read safely: the prune did not do all it was asked."""
        return self.kind in ("unreadable", "linked")


@dataclass(frozen=True)
class PrunePlan:
    items: tuple[Item, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    #: per (root, repo path): the commits to delete, handed to delete_revisions
    revisions: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    #: roots holding a repo this scan could not read safely (a link, a named pipe, no access):
    #: huggingface_hub's scan, which follows links and opens refs as they are, is not run there
    unsafe_roots: frozenset[str] = frozenset()

    @property
    def freed(self) -> int:
        return sum(i.size for i in self.items)

    @property
    def problems(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if s.problem)

    @property
    def steps(self) -> int:
        """How many progress steps ``execute`` reports: one per repo, one per file item."""
        return len(self.revisions) + sum(1 for i in self.items if i.kind in ("orphan", "incomplete"))


def check_root(root: str, environ: Mapping[str, str]) -> None:
    real = os.path.realpath(root)
    home = os.path.realpath(home_dir(environ))
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
    unsafe: set[str] = set()
    for root in roots:
        if not root.exists:
            continue
        if root.error:
            skipped.append(Skipped(root.path, root.error, "unreadable"))
            continue
        check_root(root.path, environ)
        for repo in root.repos:
            total += repo.size
            if not _matches(repo, policy.repo_globs):
                continue
            if repo.error_kind in ("unreadable", "linked"):  # what it holds is not known: all of it stays
                unsafe.add(root.path)
                skipped.append(Skipped(repo.cache_id, f"{repo.error}; the whole repo is kept", repo.error_kind))
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
                                                      "cannot plan its deletion (remove the repo folder by hand)",
                                       "damaged"))
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
    return PrunePlan(tuple(out), tuple(skipped), revisions, frozenset(unsafe))


@dataclass(frozen=True)
class Outcome:
    deleted: int  #: revisions, partials and orphans actually removed
    freed: int  #: bytes actually released
    errors: tuple[str, ...] = ()


def exit_code(plan: PrunePlan, outcome: Outcome | None = None) -> int:
    """1 when something asked for could not be done (unreadable or linked parts kept, or a
    deletion failed), else 0: a dry run included."""
    return 1 if plan.problems or (outcome is not None and outcome.errors) else 0


class _Root:
    """One cache root during a prune: its folder, where deleted things are parked, and
    huggingface_hub's view of it (None when its scan cannot read the root)."""

    def __init__(self, path: str, hf_scan: bool = True):
        self.path = os.path.abspath(path)  # as scanned: the user's own link to the root is followed, none below it
        self.real = os.path.realpath(path)  # as huggingface_hub's scan names it
        self.folder = Folder(self.path)
        self.trash = TRASH.split(os.sep)
        self._hf = False if hf_scan else None

    def hf_info(self):
        """huggingface_hub's scan of the root, or None when it fails (an unreadable repo makes it
        raise) or does not finish in HF_SCAN_S (a named pipe planted since this scan makes its
        open of a ref wait forever): then the prune goes on without its strategy."""
        if self._hf is False:
            box: dict = {}

            def scan() -> None:
                try:
                    from huggingface_hub import scan_cache_dir

                    box["info"] = scan_cache_dir(self.path)
                except Exception:  # noqa: BLE001 - plan without it
                    pass

            worker = threading.Thread(target=scan, name="hf-scan", daemon=True)
            worker.start()
            worker.join(HF_SCAN_S)
            self._hf = box.get("info")
        return self._hf

    def park(self, parts: list[str]) -> bool:
        """Move a folder out of the cache's namespace in one rename, then delete it there."""
        name = f"{uuid.uuid4().hex}-{parts[-1]}"
        if not self.folder.move(parts, self.trash, name):
            return False
        self.folder.remove_tree([*self.trash, name])
        return True

    def empty_trash(self) -> None:
        try:
            self.folder.remove_tree(self.trash)
        except FileNotFoundError:
            pass


def empty_trash(root: str) -> None:
    _Root(root).empty_trash()


def execute(plan: PrunePlan, progress: Callable[[str, int], None] | None = None) -> Outcome:
    """Delete what ``plan`` holds; ``progress(label, bytes)`` after each step."""
    step = progress or (lambda label, size: None)
    done = freed = 0
    errors: list[str] = []
    roots = {r: _Root(r, hf_scan=r not in plan.unsafe_roots)
             for r in sorted({r for r, _ in plan.revisions} | {i.root for i in plan.items})}
    usable = {}
    for path, root in roots.items():
        try:
            root.empty_trash()  # also proves .locks is a real folder (NotFollowed otherwise)
            usable[path] = root
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}; nothing in this root was deleted")
    for (root_path, repo_path), commits in sorted(plan.revisions.items()):
        if root_path not in usable:
            continue
        try:
            n, size = _delete_revisions(usable[root_path], repo_path, commits, errors)
            done += n
            freed += size
        except OSError as exc:
            errors.append(f"{repo_path}: {exc.strerror or exc}" if not isinstance(exc, NotFollowed) else str(exc))
        step(os.path.basename(repo_path), 0)
    for item in plan.items:
        if item.kind not in ("orphan", "incomplete") or not item.path or item.root not in usable:
            continue
        root = usable[item.root]
        parts = split(root.path, item.path)
        if parts is None or len(parts) != 3 or parts[1] != "blobs":
            errors.append(f"{item.path}: not a file of a repo's blobs folder; kept")
            continue
        lock = os.path.join(root.path, ".locks", parts[0], parts[2].split(".")[0] + ".lock")
        if lock_held(lock):
            errors.append(f"{item.path}: skipped, its download lock is held now")
            continue
        try:
            if root.folder.unlink(parts):
                freed += item.size
                done += 1
        except OSError as exc:
            errors.append(str(exc) if isinstance(exc, NotFollowed) else f"{item.path}: {exc.strerror or exc}")
        step(os.path.basename(item.path), item.size)
    for root in usable.values():
        try:
            root.empty_trash()
        except OSError as exc:
            errors.append(f"{root.path}: could not empty {TRASH}: {exc.strerror or exc}")
    return Outcome(done, freed, tuple(errors))


def _delete_revisions(root: _Root, repo_path: str, commits: tuple[str, ...], errors: list[str]) -> tuple[int, int]:
    """Delete ``commits`` of one repo, as read again now; returns (revisions deleted, bytes freed).
    Order, safe to interrupt: refs, then snapshot folders (or the whole repo), then blobs."""
    parts = split(root.path, repo_path)
    if parts is None or len(parts) != 1:
        errors.append(f"{repo_path}: not a repo folder of {root.path}; kept")
        return 0, 0
    name = parts[0]
    root.folder.check([name])  # a link in place of the repo folder: NotFollowed
    repo = scan_repo(os.path.join(root.path, name), root.path, detail=True)
    if repo.error:
        errors.append(f"{repo.cache_id}: {repo.error}; the whole repo was kept")
        return 0, 0
    present = {r.commit: r for r in repo.revisions}
    missing = [c for c in commits if c not in present]
    if missing:
        errors.append(f"{repo.cache_id}: revision(s) not found, nothing to delete for them: "
                      + ", ".join(c[:12] for c in missing))
    gone = [present[c] for c in commits if c in present]
    if not gone:
        return 0, 0
    kept = [r for r in repo.revisions if r.commit not in commits]
    hf = _hf_strategy(root, repo, [r.commit for r in gone])
    if not kept:
        if hf is not None and os.path.join(root.real, name) not in {os.path.abspath(str(p)) for p in hf.repos}:
            errors.append(f"{repo.cache_id}: huggingface_hub would not delete the whole repo; kept")
            return 0, 0
        if os.path.lexists(os.path.join(repo.path, "refs")):
            root.park([name, "refs"])  # every revision detached first
        root.park([name])
        return len(gone), (repo.size + sum(b.size for b in repo.orphans) + sum(b.size for b in repo.incomplete))
    for rev in gone:
        for ref in rev.refs:
            root.folder.unlink([name, "refs", *ref.split("/")])
    freed = 0
    for rev in gone:
        if root.park([name, "snapshots", rev.commit]):
            freed += sum(repo.blob_sizes.get(b, 0) for b in rev.blobs if os.sep in b)  # files stored in place
    still_used = {b for r in kept for b in r.blobs}
    blobs = {b for r in gone for b in r.blobs if os.sep not in b} - still_used
    if hf is not None:
        agreed = {p[2] for p in (split(root.real, os.path.abspath(str(b))) for b in hf.blobs)
                  if p is not None and len(p) == 3 and p[0] == name and p[1] == "blobs"}
        for b in sorted(blobs - agreed):
            errors.append(f"{repo.cache_id}: blob {b} kept: huggingface_hub's strategy does not delete it")
        blobs &= agreed
    for b in sorted(blobs):
        if root.folder.unlink([name, "blobs", b]):
            freed += repo.blob_sizes.get(b, 0)
    return len(gone), freed


def _hf_strategy(root: _Root, repo: Repo, commits: list[str]):
    """huggingface_hub's DeleteCacheStrategy for ``commits``, or None where its scan of the root
    failed or does not see this repo as this scan does."""
    info = root.hf_info()
    if info is None:
        return None
    mine = os.path.join(root.real, os.path.basename(repo.path))
    theirs = next((r for r in info.repos if os.path.abspath(str(r.repo_path)) == mine), None)
    if theirs is None or {r.commit_hash for r in theirs.revisions} != {r.commit for r in repo.revisions}:
        return None
    return info.delete_revisions(*commits)
