"""A fuzzing pass that stays in the suite: hypothesis over replayed reports, a target
interpreter's output, cache trees and journal files. For every case, within a time bound:

* llmdoctor never fails with exit 3 (an internal error) nor raises;
* nothing it prints holds a raw control character (escape sequences, C1, bidi overrides);
* nothing outside the cache root, or besides the file a fix recorded, is changed.

Runs are derandomized (the same cases on every machine, CI included) and kept small enough
to take about a minute together."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from llmdoctor.cli import cli
from test_hostile_input import REAL, assert_clean
from test_prune_safety import snapshot_tree

FUZZ = settings(derandomize=True, database=None, deadline=20_000, max_examples=25,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

#: text that a hostile or broken source may hold
NASTY = ["\x1b]52;c;cm0gLXJmIH4K\x07", "\x1b[2J", "\r", "\x9b31m", "\u202e", "\n", "\x00", "|", "`", "```",
         "\\", "../", "/", "%s", "{}", "\udcff", "🙂", "hf_" + "a" * 34, "https://u:p@host/"]
text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.lists(st.sampled_from(NASTY), max_size=6).map("".join),
    st.builds(lambda c, n: c * n, st.sampled_from(["A", "\x1b", "://", "sk-", "\n"]), st.integers(1000, 300_000)),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


CASE_LIMIT_S = 30  #: one command of one case; a quadratic pass or a walk of the filesystem takes minutes


@contextlib.contextmanager
def time_bound(seconds: int = CASE_LIMIT_S):
    """Fail the case (not hang the suite) when a command takes longer than ``seconds``."""
    def expired(signum, frame):
        raise TimeoutError(f"one command took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def invoke(*args):
    with time_bound():
        result = CliRunner().invoke(cli, list(args))
    if isinstance(result.exception, TimeoutError):
        raise result.exception
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # what `llmdoctor` would turn into exit 3
    assert result.exit_code in (0, 1, 2), result.output
    return result


BASE = json.loads(REAL.read_text(encoding="utf-8"))


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON value."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


PLACES = [p for p, _ in _paths(BASE) if p and p[0] in ("facts", "target", "created", "schema_version", "offline",
                                                      "tool")][:4000]


def _set(doc, path, value):
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PLACES), json_values), min_size=1, max_size=6))
def test_replayed_reports(tmp_path_factory, changes):
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced what held this path
    path = tmp_path_factory.mktemp("replay") / "r.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    for args in (["check", "-v"], ["check", "--json"], ["report"]):
        out = invoke(*args, "--replay", str(path)).stdout
        assert_clean(out)


CLUSTER_BASE = {
    "schema_version": 1, "kind": "cluster", "created": "2026-11-01T00:00:00+00:00", "tool": {"version": "0.1.0"},
    "facts": {"cluster": {"value": {
        "world_size": 2, "launcher": "torchrun", "master": "n1:29500", "timeout_s": 120, "rank0_host": "n1",
        "ranks": [{"rank": 0, "state": "reported", "host": "n1"}, {"rank": 1, "state": "hung", "host": "n2"}],
        "nodes": [{"rank": 0, "label": "n1", "host": "n1", "packages": {"torch": "2.4.0"}, "env": {"NCCL_DEBUG": "WARN"}},
                  {"rank": 1, "label": "n2", "host": "n2", "packages": {"torch": "2.5.1"}, "env": {}}]}}},
    "nodes": [{"rank": 0, "host": "n1", "state": "reported", "report": {"schema_version": 1, "facts": {}}},
              {"rank": 1, "host": "n2", "state": "hung", "report": None}],
}
CLUSTER_PLACES = [p for p, _ in _paths(CLUSTER_BASE) if p]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(CLUSTER_PLACES), json_values), min_size=1, max_size=6))
def test_replayed_cluster_reports(tmp_path_factory, changes):
    """A merged cluster report: one bad node entry (a host that is an object, a rank that is
    text, a node report of any shape) must not stop the replay of the others."""
    doc = copy.deepcopy(CLUSTER_BASE)
    for path, value in changes:
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    path = tmp_path_factory.mktemp("replay") / "cluster.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    for args in (["check", "-v"], ["check", "--json"], ["report"]):
        out = invoke(*args, "--replay", str(path)).stdout
        assert_clean(out)


@FUZZ
@given(stdout=st.lists(st.one_of(text, json_values.map(lambda v: "@@llmdoctor@@ " + json.dumps(v))), max_size=4),
       stderr=text, code=st.sampled_from([0, 1, 2, 139]))
def test_a_target_interpreters_output(tmp_path_factory, stdout, stderr, code):
    """An "interpreter" that prints whatever it likes (and probe-shaped JSON of any shape), then exits."""
    folder = tmp_path_factory.mktemp("target")
    (folder / "out").write_text("\n".join(stdout), encoding="utf-8", errors="surrogateescape")
    (folder / "err").write_text(stderr, encoding="utf-8", errors="surrogateescape")
    python = folder / "python"
    python.write_text(f"#!/bin/sh\ncat '{folder}/out'\ncat '{folder}/err' >&2\nexit {code}\n")
    python.chmod(0o755)
    out = invoke("check", "--python", str(python), "--offline", "--only", "python.*", "-v").stdout
    assert_clean(out)


# --- cache trees ------------------------------------------------------------------------------

names = st.one_of(st.sampled_from(["a", "b1", "x" * 64, "..", ".", "refs", "blobs", "snapshots", ".locks", "main",
                                   "f\nnewline", "esc\x1b[2J", "sp ace", "\u202e"]),
                  st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1,
                          max_size=12))
entry = st.one_of(
    st.tuples(st.just("file"), names),
    st.tuples(st.just("blob-link"), names),      # ../../blobs/<name>
    st.tuples(st.just("victim-link"), names),    # a link to a file of the victim's
    st.tuples(st.just("victim-dir"), names),     # a link to the victim's folder
    st.tuples(st.just("dir"), names),
    st.tuples(st.just("unreadable"), names),
)
repo = st.fixed_dictionaries({
    "name": st.one_of(st.sampled_from(["models--org--m", "datasets--o--d", "models--a--b\nc", "junk"]),
                      names.map(lambda n: "models--org--" + n)),
    "blobs": st.one_of(st.lists(names, max_size=4), st.just("victim-dir")),
    "snapshots": st.one_of(st.dictionaries(names, st.lists(entry, max_size=4), max_size=3), st.just("victim-dir")),
    "refs": st.one_of(st.dictionaries(names, names, max_size=2), st.just("victim-dir")),
})


def _make(path: Path, kind: str, name: str, victim: Path, depth: int) -> None:
    if name in (".", "..") or "/" in name or "\x00" in name:
        return
    target = path / name
    if os.path.lexists(target):
        return
    if kind == "file":
        target.write_bytes(b"in place")
    elif kind == "blob-link":
        os.symlink("../" * (depth + 2) + "blobs/" + name, target)
    elif kind == "victim-link":
        os.symlink(victim / "precious.db", target)
    elif kind == "victim-dir":
        os.symlink(victim, target)
    elif kind == "dir":
        target.mkdir()
        (target / "inner").write_bytes(b"x")
    elif kind == "unreadable":
        target.mkdir()
        (target / "inner").write_bytes(b"x")
        os.chmod(target, 0)


def build_cache(root: Path, victim: Path, repos: list) -> None:
    for r in repos:
        if "/" in r["name"] or r["name"] in (".", ".."):
            continue
        base = root / r["name"]
        if base.exists():
            continue
        base.mkdir(parents=True)
        for part in ("blobs", "snapshots", "refs"):
            spec = r[part]
            if spec == "victim-dir":
                os.symlink(victim, base / part)
                continue
            (base / part).mkdir()
            if part == "blobs":
                for n in spec:
                    _make(base / part, "file", n, victim, 0)
            elif part == "refs":
                for ref, commit in spec.items():
                    if "/" not in ref and ref not in (".", ".."):
                        (base / part / ref).write_text(commit)
            else:
                for commit, entries in spec.items():
                    if "/" in commit or commit in (".", ".."):
                        continue
                    (base / part / commit).mkdir(exist_ok=True)
                    for kind, name in entries:
                        _make(base / part / commit, kind, name, victim, 0)


def _chmod_back(root: Path) -> None:
    for folder, dirs, _ in os.walk(root):
        for d in dirs:
            p = os.path.join(folder, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)


@FUZZ
@given(repos=st.lists(repo, max_size=4))
def test_cache_trees(tmp_path_factory, monkeypatch, repos):
    base = tmp_path_factory.mktemp("cache")
    victim = base / "victim"
    victim.mkdir()
    (victim / "precious.db").write_bytes(b"SQLite format 3\0")
    (victim / "project").mkdir()
    (victim / "project" / "train.py").write_text("print(1)\n")
    root = base / "hub"
    root.mkdir()
    build_cache(root, victim, repos)
    before = snapshot_tree(victim)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    try:
        for args in (["cache", "ls", "--hub-only", "--revisions"], ["cache", "ls", "--hub-only", "--json"],
                     ["cache", "prune", "--detached"], ["check", "--only", "cache.*", "-v"],
                     ["cache", "prune", "--keep", "0", "--orphans", "--incomplete", "--yes"],
                     ["cache", "prune", "--max-size", "1B", "--yes"]):
            assert_clean(invoke(*args).stdout)
            assert snapshot_tree(victim) == before, args
    finally:
        _chmod_back(root)


# --- journal files ----------------------------------------------------------------------------

MUTATIONS = st.lists(st.tuples(st.sampled_from(["fix", "created", "files", "undone", "undo_commands", "path",
                                                "existed", "sha256_before", "sha256_after", "mode", "backup",
                                                "temp", "backup-bytes", "manifest-bytes"]), json_values),
                     min_size=1, max_size=4)


@FUZZ
@given(mutations=MUTATIONS)
def test_journal_files(tmp_path_factory, monkeypatch, mutations):
    from llmdoctor.fix.model import FileChange, Plan, apply
    from llmdoctor.fix.journal import Journal

    base = tmp_path_factory.mktemp("journal")
    config = base / "config"
    monkeypatch.setenv("LLMDOCTOR_CONFIG_DIR", str(config))
    target, bystander = base / "settings.conf", base / "bystander.txt"
    target.write_bytes(b"before\n")
    bystander.write_bytes(b"not part of any fix\n")
    apply(Plan("demo", "demo", changes=(FileChange(str(target), b"after\n", "test"),)), Journal(config))
    (entry,) = Journal(config).entries()
    manifest = entry.folder / "manifest.json"
    data = json.loads(manifest.read_text())
    for key, value in mutations:
        if key == "backup-bytes":
            (entry.folder / "0.bak").write_bytes(json.dumps(value).encode()[:200])
        elif key == "manifest-bytes":
            manifest.write_bytes(json.dumps(value).encode()[:2000])
            data = None
        elif data is not None and key in data:
            data[key] = value
        elif data is not None and isinstance(data.get("files"), list) and data["files"] and \
                isinstance(data["files"][0], dict):
            data["files"][0][key] = value
    if data is not None:
        manifest.write_text(json.dumps(data))
    for args in (["--journal"], ["--undo"], ["--undo", entry.id], ["--undo", "--force"]):
        out = invoke("fix", *args)
        assert_clean(out.stdout)
    assert target.read_bytes() in (b"before\n", b"after\n")  # the saved bytes or untouched, nothing else
    assert bystander.read_bytes() == b"not part of any fix\n"
