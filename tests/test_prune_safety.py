"""`cache prune` on hostile and damaged caches: a cache anyone can write (a team cache, a
world-writable /data/hf) must never make another user's prune delete or write anything
outside the cache root, and one bad repo must not stop the prune of the others.

Each shape of attack plants a symlink somewhere inside a repo built by the real
huggingface_hub and points it at a "victim" tree outside the cache; every prune policy then
runs with --yes, and the victim tree must be exactly as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import drop_privileges_argv, other_user
from test_cache import OLD, hf_scan, hub_cache, ls_json, prune  # noqa: F401 - the fixture

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def snapshot_tree(path) -> dict:
    """Every entry under ``path`` (links not followed): kind, bytes or link target, mode; for
    folders also their mtime, which moves when anything is created or removed in them."""
    out = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, path)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                with open(p, "rb") as fh:
                    out[rel] = ("file", fh.read(), st.st_mode)
    return out


@pytest.fixture
def victim(tmp_path):
    """A user's files outside the cache: a project tree and a database."""
    home = tmp_path / "victim"
    project = home / "projects" / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text("print('six hours of work')\n")
    (project / "data.db").write_bytes(b"SQLite format 3\0" + b"\1" * 100)
    (home / "projects" / "other").mkdir()
    (home / "tags").mkdir()
    (home / "tags" / "important").write_text(COMMIT_A)  # files whose text happens to name folders
    (home / "tags" / "notes.txt").write_text(COMMIT_B)
    return home


def _repo(cache, name="models--evil--repo"):
    repo = cache / name
    for sub in ("blobs", "refs", "snapshots"):
        (repo / sub).mkdir(parents=True, exist_ok=True)
    return repo


def _age(path):
    os.utime(path, (OLD, OLD), follow_symlinks=False)


def plant(shape: str, cache, victim):
    """Make ``shape`` inside the cache, aimed at ``victim``."""
    if shape == "snapshots":  # snapshots/ is a link: its "revisions" are the victim's folders
        repo = _repo(cache)
        shutil.rmtree(repo / "snapshots")
        os.symlink(victim / "projects", repo / "snapshots")
        (repo / "refs" / "main").write_text("other")  # one revision has a ref, the project is "detached"
    elif shape == "blobs":  # blobs/ is a link: a snapshot "file" resolves to the victim's database
        repo = _repo(cache)
        shutil.rmtree(repo / "blobs")
        os.symlink(victim / "projects" / "project", repo / "blobs")
        snap = repo / "snapshots" / COMMIT_A
        snap.mkdir()
        os.symlink("../../blobs/data.db", snap / "data.db")
        (repo / "snapshots" / COMMIT_B).mkdir()
        (repo / "refs" / "main").write_text(COMMIT_B)
    elif shape == "refs":  # refs/ is a link: the victim's files read as refs naming real snapshots
        repo = _repo(cache)
        shutil.rmtree(repo / "refs")
        os.symlink(victim / "tags", repo / "refs")
        for commit in (COMMIT_A, COMMIT_B):
            (repo / "snapshots" / commit).mkdir()
            (repo / "snapshots" / commit / "f.txt").write_text("x")
        _age(repo / "snapshots" / COMMIT_A)
    elif shape == "repo":  # the repo folder itself is a link to another cache's repo
        other = victim / "other-cache" / "models--org--model"
        shutil.copytree(cache / "models--org--model", other, symlinks=True)
        os.symlink(other, cache / "models--org--mirror")
    elif shape == "snapshot-subfolder":  # a folder inside a snapshot is a link to the project
        repo = cache / "models--org--model"
        snap = next((repo / "snapshots").iterdir())
        os.symlink(victim / "projects" / "project", snap / "sub")
    elif shape == "locks":  # .locks (where prune parks what it deletes) is a link
        shutil.rmtree(cache / ".locks", ignore_errors=True)
        os.symlink(victim, cache / ".locks")
    elif shape == "blob-link":  # a file inside blobs/ is a link to the victim's database
        repo = cache / "models--org--model"
        os.symlink(victim / "projects" / "project" / "data.db", repo / "blobs" / ("d" * 64))
        os.utime(repo / "blobs" / ("d" * 64), (OLD, OLD), follow_symlinks=False)
    else:  # pragma: no cover
        raise ValueError(shape)


SHAPES = ["snapshots", "blobs", "refs", "repo", "snapshot-subfolder", "locks", "blob-link"]
POLICIES = [["--detached"], ["--keep", "1"], ["--keep", "0"], ["--older-than", "1d"], ["--orphans"],
            ["--incomplete", "--detached", "--orphans", "--max-size", "1B"]]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_symlink_planted_anywhere_in_the_cache_never_reaches_outside_it(shape, hub_cache, victim):
    cache, _ = hub_cache
    plant(shape, cache, victim)
    before = snapshot_tree(victim)
    top = os.stat(victim).st_mtime_ns
    for policy in POLICIES:
        result = prune(*policy, "--yes")
        assert result.exit_code in (0, 1), (policy, result.output)
        assert snapshot_tree(victim) == before, (shape, policy)
        assert os.stat(victim).st_mtime_ns == top, (shape, policy)
    # and what the victim holds is still there, not moved away and emptied
    assert (victim / "projects" / "project" / "data.db").read_bytes().startswith(b"SQLite")


@pytest.mark.parametrize("shape", ["snapshots", "blobs", "refs"])
def test_a_linked_folder_inside_a_repo_is_named_and_the_repo_kept(shape, hub_cache, victim):
    cache, _ = hub_cache
    plant(shape, cache, victim)
    plan = json.loads(prune("--keep", "0", "--json").stdout)
    kept = {s["what"]: s["why"] for s in plan["skipped"]}
    assert "model/evil/repo" in kept and "symbolic link" in kept["model/evil/repo"]
    assert not [i for i in plan["items"] if i["repo"] == "model/evil/repo"]
    # the rest of the cache is still pruned
    assert {i["repo"] for i in plan["items"]} >= {"model/org/model", "dataset/org/data"}


# --- unreadable parts: run as an unprivileged user, for whom permissions hold ---------------

def run_unprivileged(*args, env=None, timeout=120):
    argv = drop_privileges_argv() + [sys.executable, "-m", "llmdoctor", *args]
    return subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def test_one_unreadable_repo_does_not_stop_the_prune_of_the_others(hub_cache):
    cache, repos = hub_cache
    locked = cache / "models--someone--private"
    shutil.copytree(cache / "models--org--model", locked, symlinks=True)
    os.chmod(locked, 0)
    try:
        done = run_unprivileged("cache", "prune", "--detached", "--yes")
    finally:
        os.chmod(locked, 0o755)
    assert done.returncode == 1, done.stdout + done.stderr  # something could not be done: said, not crashed
    assert "Traceback" not in done.stderr
    assert "model/someone/private" in done.stdout + done.stderr and "cannot read" in done.stdout + done.stderr
    info = hf_scan(cache)
    model = next(r for r in info.repos if r.repo_id == "org/model")
    assert repos["org/model"].first not in {v.commit_hash for v in model.revisions}  # the detached one went
    private = next(r for r in info.repos if r.repo_id == "someone/private")
    assert len(private.revisions) == 3  # the unreadable repo kept everything


def test_an_unreadable_ref_keeps_its_revision(hub_cache):
    cache, repos = hub_cache
    main = cache / "models--org--model" / "refs" / "main"
    os.chmod(main, 0)
    try:
        dry = run_unprivileged("cache", "prune", "--detached", "--json")
        plan = json.loads(dry.stdout)
        assert repos["org/model"].third not in {i["commit"] for i in plan["items"]}
        assert any(s["what"] == "model/org/model" and "refs" in s["why"] for s in plan["skipped"])
        done = run_unprivileged("cache", "prune", "--detached", "--yes")
        assert "Traceback" not in done.stderr, done.stderr
    finally:
        os.chmod(main, 0o644)
    info = hf_scan(cache)
    model = next(r for r in info.repos if r.repo_id == "org/model")
    assert repos["org/model"].third in {v.commit_hash for v in model.revisions}


def test_an_unreadable_root_is_said_not_called_empty(hub_cache):
    cache, _ = hub_cache
    os.chmod(cache, 0)
    try:
        done = run_unprivileged("cache", "prune", "--detached")
    finally:
        os.chmod(cache, 0o755)
    assert "Nothing to prune" not in done.stdout
    assert "cannot read" in done.stdout + done.stderr and done.returncode == 1


def test_a_download_lock_we_cannot_test_counts_as_held(hub_cache, tmp_path):
    """A world-writable team cache: another user's download holds the lock of a partial; the
    lock file is theirs and not writable by us, so it cannot be tested: keep the partial."""
    import fcntl

    cache, _ = hub_cache
    uid, gid = other_user()
    os.chmod(cache, 0o1777)
    blobs = cache / "models--org--model" / "blobs"
    os.chmod(blobs, 0o1777)
    partial = blobs / "cafe.incomplete"
    partial.write_bytes(b"\0" * 1000)
    _age(partial)
    lock_dir = cache / ".locks" / "models--org--model"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_dir / "cafe.lock"
    lock.write_text("")
    os.chown(lock, uid, gid)
    os.chmod(lock, 0o644)
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # their download, running
    try:
        dry = run_unprivileged("cache", "prune", "--incomplete", "--json")
        plan = json.loads(dry.stdout)
        assert not [i for i in plan["items"] if i["kind"] == "incomplete"]
        assert any("lock" in s["why"] for s in plan["skipped"])
        run_unprivileged("cache", "prune", "--incomplete", "--yes")
        assert partial.exists()
    finally:
        os.close(fd)


# --- what prune says about what it did --------------------------------------------------------

def test_prune_counts_only_what_it_deleted(hub_cache, monkeypatch):
    """huggingface_hub's strategy can find nothing to do (the revision vanished between the
    plan and the deletion): the summary must not claim it was deleted."""
    from llmdoctor.cache import prune as prune_mod

    cache, repos = hub_cache
    plan = prune_mod.make_plan(__import__("llmdoctor.cache.scan", fromlist=["scan"]).scan(os.environ, others=False).roots,
                               prune_mod.Policy(detached=True), os.environ)
    shutil.rmtree(cache / "models--org--model" / "snapshots" / repos["org/model"].first)
    outcome = prune_mod.execute(plan)
    assert outcome.deleted == 0 and outcome.freed == 0
    assert any("not found" in e for e in outcome.errors)


def test_a_cache_without_symlinks_reports_what_it_freed(hub_cache):
    """Where the filesystem has no symlinks (Windows without Developer Mode) huggingface_hub
    stores files in the snapshot folder itself: deleting a revision frees those bytes."""
    cache, repos = hub_cache
    repo = cache / "models--org--model"
    for snap in (repo / "snapshots").iterdir():
        for link in list(snap.rglob("*")):
            if link.is_symlink():
                data = link.read_bytes()
                link.unlink()
                link.write_bytes(data)
    shutil.rmtree(repo / "blobs")
    (repo / "blobs").mkdir()
    done = prune("--detached", "--yes")
    assert done.exit_code == 0, done.output
    line = next(l for l in done.output.splitlines() if l.startswith("Deleted"))
    assert "freed 0 B" not in line and "Deleted 1 item" in line


# --- a named pipe where a file should be ------------------------------------------------------

@pytest.mark.parametrize("where", ["refs/main", "refs/pr/1"])
def test_a_named_pipe_planted_as_a_ref_hangs_no_command(where, hub_cache):
    """On a cache others can write, a named pipe in place of a ref makes every open of it wait
    for a writer that never comes: `cache ls`, `cache prune` and `check` must not wait with
    it. That repo is named and kept whole; the rest of the cache is pruned."""
    cache, repos = hub_cache
    planted = cache / "models--someone--planted"
    shutil.copytree(cache / "models--org--model", planted, symlinks=True)
    ref = planted / Path(where)
    if ref.exists():
        ref.unlink()
    ref.parent.mkdir(exist_ok=True)
    os.mkfifo(ref)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "llmdoctor", *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "HF_HUB_CACHE": str(cache)})

    listed = run("cache", "ls", "--hub-only", "--json")
    assert listed.returncode == 0, listed.stderr
    (repo,) = [r for r in json.loads(listed.stdout)["roots"][0]["repos"] if r["cache_id"] == "model/someone/planted"]
    assert "not a regular file (a named pipe)" in repo["error"]
    done = run("cache", "prune", "--detached", "--yes")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "model/someone/planted" in done.stdout and "not a regular file" in done.stdout
    assert len(list((planted / "snapshots").iterdir())) == 3  # kept whole
    left = {p.name for p in (cache / "models--org--model" / "snapshots").iterdir()}
    assert repos["org/model"].first not in left and len(left) == 2  # the other repo's detached revision went
    checked = run("check", "--offline", "--only", "cache", "--json")
    facts = json.loads(checked.stdout)["facts"]
    assert all(entry.get("kind") != "timeout" for entry in facts.values()), facts
