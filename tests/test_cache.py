"""`cache ls` and `cache prune` on caches the real huggingface_hub built by downloading from
the fake hub, plus handmade adversarial trees (a link escaping the root, a held lock, an
orphan blob, a broken link)."""

from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from fakehub import FakeHub, Repo
from llmdoctor.cli import cli
from llmdoctor.report.shells import fix_text

OLD = time.time() - 90 * 86400


def hub_repos() -> dict[str, Repo]:
    """Two repos: `org/model` with three commits (main, tag v1.0, and one only reachable by
    hash) sharing most blobs; `org/data` (a dataset) with one."""
    model = Repo()
    shared = b"\0" * 4096
    first = model.add_commit({"config.json": b'{"v": 1}', "model.safetensors": shared, "tok.json": b"t1"}, ref=None)
    second = model.add_commit({"config.json": b'{"v": 2}', "model.safetensors": shared, "tok.json": b"t1"},
                              ref="v1.0")
    third = model.add_commit({"config.json": b'{"v": 3}', "model.safetensors": b"\1" * 8192, "tok.json": b"t1"},
                             ref="main")
    data = Repo()
    data.add_commit({"train.parquet": b"\2" * 16384, "README.md": b"# data"})
    model.first, model.second, model.third = first, second, third
    return {"org/model": model, "datasets/org/data": data}


DOWNLOAD = textwrap.dedent("""
    import json, sys
    from huggingface_hub import hf_hub_download, snapshot_download
    for repo, revision, repo_type in json.loads(sys.argv[1]):
        snapshot_download(repo, revision=revision, repo_type=repo_type)
""")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A cache written by the real huggingface_hub (snapshot_download of every revision)."""
    repos = hub_repos()
    cache = tmp_path / "hf" / "hub"
    with FakeHub(repos) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_XET": "1",
               "NO_PROXY": "127.0.0.1,localhost"}
        m = repos["org/model"]
        todo = [["org/model", m.first, "model"], ["org/model", "v1.0", "model"], ["org/model", "main", "model"],
                ["org/data", "main", "dataset"]]
        done = subprocess.run([sys.executable, "-c", DOWNLOAD, json.dumps(todo)], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache, repos


def ls_json(*args) -> dict:
    result = CliRunner().invoke(cli, ["cache", "ls", "--json", "--hub-only", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def prune(*args):
    return CliRunner().invoke(cli, ["cache", "prune", *args], catch_exceptions=False)


def hf_scan(cache):
    from huggingface_hub import scan_cache_dir

    return scan_cache_dir(cache)


def test_sizes_match_scan_cache_dir(hub_cache):
    cache, repos = hub_cache
    info = hf_scan(cache)
    assert not info.warnings
    (root,) = ls_json()["roots"]
    ours = {r["cache_id"]: r for r in root["repos"]}
    theirs = {f"{r.repo_type}/{r.repo_id}": r for r in info.repos}
    assert set(ours) == set(theirs) == {"model/org/model", "dataset/org/data"}
    for cid, r in theirs.items():
        mine = ours[cid]
        assert mine["size"] == r.size_on_disk and mine["nb_files"] == r.nb_files
        assert mine["last_accessed"] == r.last_accessed and mine["last_modified"] == r.last_modified
        revs = {v["commit"]: v for v in mine["revisions"]}
        assert set(revs) == {v.commit_hash for v in r.revisions}
        for v in r.revisions:
            assert revs[v.commit_hash]["size"] == v.size_on_disk
            assert set(revs[v.commit_hash]["refs"]) == set(v.refs)
            assert revs[v.commit_hash]["nb_files"] == v.nb_files
        assert mine["size_on_disk"] >= 1  # real blocks, at least one per file
    model = ours["model/org/model"]
    assert model["refs"] == {"main": repos["org/model"].third, "v1.0": repos["org/model"].second}


def test_ls_sorts_filters_and_fits_the_terminal(hub_cache, monkeypatch):
    by_name = [r["cache_id"] for r in ls_json("--sort", "name")["roots"][0]["repos"]]
    assert by_name == ["dataset/org/data", "model/org/model"]
    assert [r["cache_id"] for r in ls_json("--filter", "type=dataset")["roots"][0]["repos"]] == ["dataset/org/data"]
    assert [r["cache_id"] for r in ls_json("--filter", "org/mod*")["roots"][0]["repos"]] == ["model/org/model"]
    assert ls_json("--filter", "size>1TB")["roots"][0]["repos"] == []
    monkeypatch.setenv("COLUMNS", "72")
    text = CliRunner().invoke(cli, ["cache", "ls", "--hub-only"]).output
    assert "model/org/model" in text and max(len(line) for line in text.splitlines()) <= 72
    bad = CliRunner().invoke(cli, ["cache", "ls", "--filter", "size>lots"])
    assert bad.exit_code == 2 and "not a size" in bad.output


def test_prune_detached_is_a_dry_run_then_deletes_only_the_unreferenced_revision(hub_cache):
    cache, repos = hub_cache
    first = repos["org/model"].first
    before = sorted(p for p in (cache / "models--org--model" / "blobs").iterdir())
    dry = prune("--detached")
    assert dry.exit_code == 0 and first[:12] in dry.output and "Dry run: nothing was deleted" in dry.output
    assert sorted((cache / "models--org--model" / "blobs").iterdir()) == before
    done = prune("--detached", "--yes")
    assert done.exit_code == 0, done.output
    info = hf_scan(cache)
    assert not info.warnings
    (model,) = [r for r in info.repos if r.repo_id == "org/model"]
    assert {v.commit_hash for v in model.revisions} == {repos["org/model"].second, repos["org/model"].third}
    # the blob v1.0 shares with the deleted revision (model.safetensors) is still there and intact
    for rev in model.revisions:
        for f in rev.files:
            assert f.blob_path.exists()


def test_keep_and_older_than_and_repo_glob(hub_cache):
    cache, repos = hub_cache
    plan = json.loads(prune("--keep", "1", "--repo", "org/model", "--json").stdout)
    assert {i["commit"] for i in plan["items"]} == {repos["org/model"].first, repos["org/model"].second}
    for path in cache.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (OLD, OLD))
    plan = json.loads(prune("--older-than", "30d", "--json").stdout)
    assert {i["kind"] for i in plan["items"]} == {"repo"}  # every revision of both repos: whole repos go
    assert prune("--older-than", "30d", "--yes").exit_code == 0
    assert not [p for p in cache.iterdir() if p.name.startswith(("models--", "datasets--"))]
    assert not hf_scan(cache).warnings


def test_max_size_deletes_least_recently_used_first(hub_cache):
    cache, repos = hub_cache
    data = cache / "datasets--org--data" / "blobs"
    for blob in data.iterdir():
        os.utime(blob, (OLD, OLD))  # the dataset was last read long ago
    plan = json.loads(prune("--max-size", "10KB", "--json").stdout)
    assert plan["items"][0]["repo"] == "dataset/org/data"


def test_nothing_outside_the_root_is_ever_deleted(hub_cache, tmp_path):
    cache, repos = hub_cache
    precious = tmp_path / "precious.txt"
    precious.write_text("not a cache file")
    snap = cache / "models--org--model" / "snapshots" / repos["org/model"].first
    os.symlink(precious, snap / "escape.txt")
    (root,) = ls_json()["roots"]
    model = next(r for r in root["repos"] if r["cache_id"] == "model/org/model")
    assert model["outside"] == [str(snap / "escape.txt")]
    assert prune("--keep", "0", "--yes").exit_code == 0
    assert precious.read_text() == "not a cache file"
    assert not (cache / "models--org--model").exists()


def _partial(cache, name="deadbeef.1a2b3c4d.incomplete", old=True):
    blobs = cache / "models--org--model" / "blobs"
    path = blobs / name
    path.write_bytes(b"\0" * 1000)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def test_a_partial_whose_download_lock_is_held_is_kept(hub_cache):
    from filelock import FileLock

    cache, _ = hub_cache
    held = _partial(cache)
    stale = _partial(cache, "cafebabe.incomplete")
    lock_dir = cache / ".locks" / "models--org--model"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "deadbeef.lock")):
        (root,) = ls_json()["roots"]
        model = next(r for r in root["repos"] if r["cache_id"] == "model/org/model")
        assert {p["name"]: p["locked"] for p in model["incomplete"]} == {held.name: True, stale.name: False}
        done = prune("--incomplete", "--yes")
        assert done.exit_code == 0, done.output
        assert "download lock is held" in done.output
    assert held.exists() and not stale.exists()


def test_orphans_and_a_broken_link_are_reported_and_the_rest_stays_visible(hub_cache):
    cache, repos = hub_cache
    blobs = cache / "models--org--model" / "blobs"
    orphan = blobs / ("a" * 64)
    orphan.write_bytes(b"nobody links to me")
    os.utime(orphan, (OLD, OLD))
    data_snap = cache / "datasets--org--data" / "snapshots"
    (commit,) = [p for p in data_snap.iterdir()]
    os.symlink("../../blobs/" + "b" * 64, commit / "missing.bin")
    (root,) = ls_json()["roots"]
    by_id = {r["cache_id"]: r for r in root["repos"]}
    assert by_id["model/org/model"]["orphans"] == {"count": 1, "size": len(b"nobody links to me")}
    assert by_id["dataset/org/data"]["broken"] == [str(commit / "missing.bin")]
    assert by_id["dataset/org/data"]["size"] > 0  # still listed, with its readable files
    assert any("broken symlink" in w for w in root["warnings"])
    plan = json.loads(prune("--orphans", "--older-than", "0s", "--json").stdout)
    assert any(s["what"] == "dataset/org/data" for s in plan["skipped"])  # huggingface_hub cannot plan it
    assert prune("--orphans", "--yes").exit_code == 0
    assert not orphan.exists() and (cache / "models--org--model" / "snapshots").exists()


def test_files_stored_in_place_and_nested_folders_count_as_huggingface_hub_counts_them(hub_cache):
    """Where the filesystem has no symlinks, huggingface_hub writes snapshot files in place;
    nested folders hold links two levels deeper. Sizes and counts stay equal to scan_cache_dir's."""
    cache, repos = hub_cache
    snap = cache / "models--org--model" / "snapshots" / repos["org/model"].third
    (snap / "in_place.bin").write_bytes(b"\3" * 3000)
    nested = snap / "sub" / "deeper"
    nested.mkdir(parents=True)
    blob = next((cache / "models--org--model" / "blobs").iterdir()).name
    os.symlink("../../../../blobs/" + blob, nested / "linked.json")
    info = hf_scan(cache)
    assert not info.warnings
    theirs = next(r for r in info.repos if r.repo_id == "org/model")
    (root,) = ls_json()["roots"]
    mine = next(r for r in root["repos"] if r["cache_id"] == "model/org/model")
    assert mine["broken"] == [] and mine["outside"] == []
    assert mine["size"] == theirs.size_on_disk and mine["nb_files"] == theirs.nb_files
    revs = {v["commit"]: v for v in mine["revisions"]}
    for v in theirs.revisions:
        assert (revs[v.commit_hash]["size"], revs[v.commit_hash]["nb_files"]) == (v.size_on_disk, v.nb_files)


@pytest.mark.parametrize("where", ["/", "home"])
def test_refuses_the_filesystem_root_and_the_home_directory(where, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models--x--y" / "snapshots").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", "/" if where == "/" else str(home))
    result = prune("--detached", "--yes")
    assert result.exit_code == 2 and "refusing to prune" in result.output


KILLER = textwrap.dedent("""
    import os, shutil, sys
    limit = int(os.environ["KILL_AFTER"])
    calls = [0]
    def counted(fn):
        def wrapper(*a, **kw):
            calls[0] += 1
            if calls[0] > limit:
                os._exit(9)
            return fn(*a, **kw)
        return wrapper
    os.unlink = counted(os.unlink)
    os.rename = counted(os.rename)
    shutil.rmtree = counted(shutil.rmtree)
""")


def test_a_prune_killed_at_any_step_leaves_a_cache_huggingface_hub_reads(hub_cache, tmp_path):
    """The prune process is killed after its 1st, 2nd, ... deleting call, on a fresh copy of
    the cache each time: every time scan_cache_dir reads what is left without a warning."""
    import shutil

    cache, repos = hub_cache
    pristine = tmp_path / "pristine"
    shutil.copytree(cache, pristine, symlinks=True)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILLER)
    seen_kill = False
    for limit in range(0, 12):
        shutil.rmtree(cache)
        shutil.copytree(pristine, cache, symlinks=True)
        env = {**os.environ, "KILL_AFTER": str(limit), "PYTHONPATH": str(hook), "HF_HUB_CACHE": str(cache)}
        done = subprocess.run([sys.executable, "-m", "llmdoctor", "cache", "prune", "--keep", "1", "--yes"],
                              env=env, capture_output=True, text=True, timeout=120)
        info = hf_scan(cache)
        assert not info.warnings, (limit, info.warnings)
        for repo in info.repos:
            for rev in repo.revisions:
                assert all(f.blob_path.exists() for f in rev.files)
        if done.returncode == 9:
            seen_kill = True
        else:
            assert done.returncode == 0, done.stderr
            break
    assert seen_kill


# --- the cache checks in `llmdoctor check` ---

def check_cache(*args) -> dict:
    result = CliRunner().invoke(cli, ["check", "--json", "--only", "cache.*", *args], catch_exceptions=False)
    by_id: dict = {}
    for f in json.loads(result.stdout)["findings"]:
        by_id.setdefault(f["id"], f)
    return by_id


def test_check_names_what_prune_would_free(hub_cache):
    cache, repos = hub_cache
    big = cache / "models--org--model" / "blobs" / ("c" * 64 + ".0badc0de.incomplete")
    with open(big, "wb") as fh:
        fh.truncate(1536 * 1024**2)  # a sparse 1.5 GB partial download
    f = check_cache()["cache.reclaimable"]
    assert "in detached revisions" in f["title"] and "1.5 GiB in partial downloads" in f["title"]
    assert f["fix"].startswith("llmdoctor cache prune --detached --incomplete")


def test_transformers_cache_and_a_model_downloaded_twice(hub_cache, tmp_path, monkeypatch):
    import shutil

    cache, _ = hub_cache
    other = tmp_path / "tcache"
    shutil.copytree(cache / "models--org--model", other / "models--org--model", symlinks=True)
    monkeypatch.setenv("TRANSFORMERS_CACHE", str(other))
    by_id = check_cache()
    assert by_id["cache.transformers-cache"]["fix"].startswith("unset TRANSFORMERS_CACHE")
    assert "more than one cache root" in by_id["cache.duplicates"]["title"]


def test_a_cache_on_a_small_disk_next_to_a_big_one():
    from checks_under_test import cache as cache_checks
    from factories import facts, findings_of
    from llmdoctor.probes.cache import CacheFacts, CacheRootFacts, Mount

    GB = 1024**3
    root_mount, data = Mount("/", "ext4", 100 * GB, 12 * GB), Mount("/data", "xfs", 4000 * GB, 1800 * GB)
    f = facts(cache=CacheFacts(roots=(CacheRootFacts("/home/u/.cache/huggingface/hub", "default", True, mount=root_mount),),
                               mounts=(root_mount, data)))
    (finding,) = findings_of(cache_checks.location_check, f)
    assert finding.id == "cache.small-disk" and fix_text(finding).startswith("export HF_HOME=/data/huggingface")
    nfs = Mount("/shared", "nfs4", 10000 * GB, 5000 * GB)
    f = facts(cache=CacheFacts(roots=(CacheRootFacts("/shared/hf/hub", "HF_HOME", True, mount=nfs),), mounts=(nfs,)))
    (finding,) = findings_of(cache_checks.network_fs_check, f)
    assert finding.id == "cache.network-fs" and "nfs4" in finding.title


def test_ls_revisions_shows_each_commit_with_its_refs(hub_cache):
    cache, repos = hub_cache
    text = CliRunner().invoke(cli, ["cache", "ls", "--hub-only", "--revisions"]).output
    m = repos["org/model"]
    assert f"{m.third[:12]}" in text and "(detached)" in text
    line = next(l for l in text.splitlines() if m.second[:12] in l)
    assert "v1.0" in line


# --- the listing index: what `cache ls` remembers of unchanged snapshot folders -------------

def later() -> float:
    """A scan clock far enough ahead that folders written by the test count as settled."""
    from llmdoctor.cache.index import RACY_S

    return time.time() + RACY_S + 1


def index_of(cache, now=None):
    """The index of ``cache`` whatever filesystem the test's folder is on (``open`` would
    refuse one it does not know keeps ctime: that is tested on its own)."""
    from llmdoctor.cache.index import LinkIndex

    return LinkIndex.for_root(str(cache), os.environ, now=now)


def scan(cache, index=None, workers=None):
    from llmdoctor.cache import scan as hfcache

    return hfcache.scan_root(str(cache), "test", workers=workers, index=index)


def test_the_listing_index_gives_what_a_fresh_read_gives_and_follows_every_change(hub_cache):
    cache, repos = hub_cache
    first = index_of(cache, now=later())
    assert scan(cache, first) == scan(cache)
    assert first.new and first.save()
    second = index_of(cache, now=later())
    assert scan(cache, second) == scan(cache)
    assert second.used == set(first.new) and not second.new  # every folder came from the index

    time.sleep(1.1)  # past the filesystem's timestamp granularity (whole seconds on some)
    model = cache / "models--org--model"
    third = model / "snapshots" / repos["org/model"].third
    first_config = os.readlink(model / "snapshots" / repos["org/model"].first / "config.json")
    os.symlink(first_config, third / "swap")
    os.replace(third / "swap", third / "config.json")  # a link replaced by one to another blob
    (data_snap,) = (cache / "datasets--org--data" / "snapshots").iterdir()
    os.unlink(data_snap / "README.md")  # a link removed
    (third / "extra").mkdir()  # a folder added, with a link in it
    os.symlink("../" + first_config, third / "extra" / "config.json")

    third_index = index_of(cache, now=later())
    indexed, fresh = scan(cache, third_index), scan(cache)
    assert indexed == fresh
    rev = next(v for r in indexed.repos for v in r.revisions if v.commit == repos["org/model"].third)
    assert os.path.basename(first_config) in rev.blobs and rev.nb_files == 4
    assert str(third) not in third_index.used and str(data_snap) not in third_index.used
    assert str(third) in third_index.new and str(third / "extra") in third_index.new


def test_a_folder_changed_within_two_seconds_of_the_listing_is_read_but_not_remembered(hub_cache):
    cache, repos = hub_cache
    third = cache / "models--org--model" / "snapshots" / repos["org/model"].third
    os.symlink(os.readlink(third / "config.json"), third / "alias.json")  # changed now: within the tick
    now = index_of(cache)
    assert scan(cache, now) == scan(cache)
    assert str(third) not in now.new
    settled = index_of(cache, now=later())
    scan(cache, settled)
    assert str(third) in settled.new


@pytest.mark.parametrize("damage", ["truncated", "flipped bytes", "another root's", "writable by others",
                                    "another version", "misshapen entries"])
def test_a_damaged_or_foreign_index_is_ignored_and_rewritten(hub_cache, tmp_path, damage):
    import struct

    from llmdoctor.cache.index import VERSION, LinkIndex

    cache, _ = hub_cache
    index = index_of(cache, now=later())
    scan(cache, index)
    assert index.save()
    file = index.file
    data = open(file, "rb").read()
    if damage == "truncated":
        open(file, "wb").write(data[: len(data) // 2])
    elif damage == "flipped bytes":
        open(file, "wb").write(data[:-20] + bytes(20))
    elif damage == "another root's":
        other = tmp_path / "other" / "hub"
        shutil.copytree(cache, other, symlinks=True)
        theirs = index_of(other, now=later())
        scan(other, theirs)
        assert theirs.save()
        shutil.copyfile(theirs.file, file)
    elif damage == "writable by others":
        os.chmod(file, 0o666)
    elif damage == "misshapen entries":  # intact file, entries of a shape the scanner never writes
        bad = LinkIndex(file, index.root, now=later())
        bad.new = {folder: (key, ("x", 1)) for folder, (key, _) in index.new.items()}
        assert bad.save()
        again = index_of(cache, now=later())
        assert again.old and scan(cache, again) == scan(cache)
        assert not again.used and again.save()  # every entry was a miss, and is recorded anew
        return
    else:
        magic, _, crc = struct.unpack_from("<16sII", data)
        open(file, "wb").write(struct.pack("<16sII", magic, VERSION + 1, crc) + data[24:])
    again = index_of(cache, now=later())
    assert again.old == {}
    assert scan(cache, again) == scan(cache)
    assert again.save() and index_of(cache).old  # rewritten, and read back
    assert os.stat(file).st_mode & 0o777 == 0o600


def test_ls_works_where_its_index_cannot_be_written_and_with_fresh(hub_cache, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    expected = ls_json("--fresh")
    monkeypatch.setenv("LLMDOCTOR_CACHE_DIR", str(blocker))
    assert ls_json()["roots"] == expected["roots"]


def test_a_forked_scan_sends_its_folders_back_to_the_index(tmp_path):
    from llmdoctor.benchmark.self.cachegen import make_cache
    from llmdoctor.cache.scan import PARALLEL_FROM

    cache = tmp_path / "big" / "hub"
    make_cache(str(cache), repos=PARALLEL_FROM + 10, files_per_repo=10)
    first = index_of(cache, now=later())
    assert scan(cache, first, workers=2) == scan(cache, workers=1)
    assert first.save()
    folders = {str(p) for p in cache.glob("*/snapshots/*")} | {str(p) for p in cache.glob("*/snapshots/*/sub")}
    assert set(first.new) == folders
    second = index_of(cache, now=later())
    assert scan(cache, second, workers=2) == scan(cache, workers=1)
    assert second.used == folders and not second.new and not second.save()


def test_no_index_on_a_network_or_unknown_filesystem(tmp_path, monkeypatch):
    from llmdoctor.cache import index as linkindex

    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda1 / ext4 rw,relatime 0 0\n"
                      "server:/export /mnt/team\\040share nfs4 rw,relatime 0 0\n"
                      "tmpfs /mnt/team\\040share/tmp tmpfs rw 0 0\n")
    assert linkindex.fstype("/home/u/.cache/huggingface/hub", str(mounts)) == "ext4"
    assert linkindex.fstype("/mnt/team share/hf/hub", str(mounts)) == "nfs4"
    assert linkindex.fstype("/mnt/team share/tmp/hub", str(mounts)) == "tmpfs"
    assert linkindex.fstype("/", str(tmp_path / "no-such-file")) is None
    for kind in ("nfs4", "fuse.sshfs", None):
        monkeypatch.setattr(linkindex, "fstype", lambda path, kind=kind: kind)
        assert linkindex.LinkIndex.open(str(tmp_path), os.environ) is None
    monkeypatch.setattr(linkindex, "fstype", lambda path: "xfs")
    assert linkindex.LinkIndex.open(str(tmp_path), os.environ) is not None


def test_a_forged_index_can_mislead_ls_but_never_prune(hub_cache, monkeypatch):
    """Deletion reads every link itself: an index claiming a snapshot links to nothing
    changes the listing only, and prune --orphans keeps every blob that snapshot uses."""
    from llmdoctor.cache import index as linkindex
    from llmdoctor.cache.index import LinkIndex

    monkeypatch.setattr(linkindex, "fstype", lambda path: "ext4")  # ls uses its index wherever this test runs
    cache, repos = hub_cache
    third = cache / "models--org--model" / "snapshots" / repos["org/model"].third
    used = {os.path.basename(os.readlink(p)) for p in third.iterdir()}
    real = index_of(cache)
    forged = LinkIndex(real.file, real.root, now=later())
    st = os.stat(third)
    forged.new = {str(third): ((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns), (0, "", (), ()))}
    assert forged.save()
    listed = {r["cache_id"]: r for r in ls_json()["roots"][0]["repos"]}
    assert listed["model/org/model"]["orphans"]["count"] >= 1  # the listing did read the forged entry
    for blob in used:
        os.utime(cache / "models--org--model" / "blobs" / blob, (OLD, OLD))
    assert prune("--orphans", "--yes").exit_code == 0
    assert all((cache / "models--org--model" / "blobs" / b).exists() for b in used)
    assert not hf_scan(cache).warnings


def test_the_cache_ls_benchmark_runs_every_command_on_a_small_cache(capsys):
    """The script behind README's figures still runs end to end (its timings are not judged here)."""
    from llmdoctor.benchmark.self import cache_ls

    assert cache_ls.main(["--repos", "30", "--files", "4", "--runs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["cache"]["repos"], out["cache"]["files"], out["cache"]["blobs"]) == (30, 120, 120)
    rows = out["results"]
    assert {"llmdoctor cache ls", "llmdoctor cache ls --json", "llmdoctor cache ls, first run",
            "llmdoctor cache ls --fresh", "du -sh"} <= set(rows)
    assert all(row["exit_codes"] == [0] for row in rows.values())
