"""`llmdoctor check --model`: a model in each kind of location (a hub cache and a cache_dir=
folder that the real huggingface_hub filled from the fake hub, a local folder, only on the
hub), its files, its own code against another transformers, its tokenizer's packages,
gated access with real tokens against the fake hub, its memory against recorded GPU facts,
and --project's scripts and notebooks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import faketf
from conftest import install_fake_dist, make_venv, site_packages
from factories import GiB, dist, facts, findings_of, gpu, gpus, system, target
from fakehub import FakeHub, Repo
from llmdoctor.benchmark.presets import arch_from_config
from llmdoctor.cli import cli
from llmdoctor.model import Status
from llmdoctor.report.shells import fix_text

ROOT = Path(__file__).resolve().parent.parent
REMOTE = ROOT / "tests" / "fixtures" / "remote_code"
H100 = ROOT / "tests" / "fixtures" / "real" / "h100" / "check.json"

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "torch_dtype": "bfloat16",
        "transformers_version": "4.40.0"}


def safetensors(n: int, cut: int = 0) -> bytes:
    """A real safetensors file of n data bytes (cut: that many bytes missing at the end)."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    data = struct.pack("<Q", len(header)) + header + b"\1" * n
    return data[:len(data) - cut] if cut else data


def sharded_files(config=TINY) -> dict[str, bytes]:
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index = {"metadata": {"total_size": 3000}, "weight_map": {"a": shards[0], "b": shards[1]}}
    return {"config.json": json.dumps(config).encode(), "tokenizer.json": b'{"model": {}}',
            "tokenizer_config.json": b'{"tokenizer_class": "PreTrainedTokenizerFast"}',
            "model.safetensors.index.json": json.dumps(index).encode(), shards[0]: safetensors(1000),
            shards[1]: safetensors(2000), "README.md": b"# tiny"}


def check(*args, env: dict | None = None) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(cli, ["check", "--json", *args], env=env, catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)["findings"]


def by_id(findings, prefix="model.") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in findings:
        if f["id"].startswith(prefix):
            out.setdefault(f["id"], []).append(f)
    return out


DOWNLOAD = """
import json, sys
from huggingface_hub import snapshot_download
repo, cache_dir = sys.argv[1], sys.argv[2] or None
print(snapshot_download(repo, cache_dir=cache_dir))
"""


def hub_env(hub, **extra) -> dict:
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost",
            **extra}


def download(hub, repo: str, cache_dir: str = "", **env) -> Path:
    done = subprocess.run([sys.executable, "-c", DOWNLOAD, repo, cache_dir], env=hub_env(hub, **env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def run_fix(command: str, hub) -> None:
    """Run a prescribed command as printed (it is a shell line), against the fake hub."""
    done = subprocess.run(command, shell=True, env=hub_env(hub), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])


def drop(snapshot: Path, name: str) -> None:
    """Delete a downloaded file the way an interrupted or pruned download leaves it: link and blob."""
    link = snapshot / name
    blob = (link.parent / os.readlink(link)).resolve()
    link.unlink()
    blob.unlink()


@pytest.fixture
def sharded_hub():
    repo = Repo()
    repo.add_commit(sharded_files())
    with FakeHub({"org/tiny-sharded": repo}) as hub:
        yield hub, repo


# --- where the model is and whether its files are whole ---------------------------------------

def test_a_shard_missing_from_the_hub_cache_is_found_and_the_printed_command_resumes_it(sharded_hub, tmp_path,
                                                                                       monkeypatch):
    hub, repo = sharded_hub
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snap = download(hub, "org/tiny-sharded", HF_HUB_CACHE=str(cache))
    drop(snap, "model-00002-of-00002.safetensors")

    code, found = check("--python", sys.executable, "--offline", "--only", "model.*", "--model", "org/tiny-sharded")
    got = by_id(found)
    (where,) = got["model.location"]
    assert where["title"].startswith(f"org/tiny-sharded: found in the hub cache {cache}")
    (missing,) = got["model.files-missing"]
    assert code == 1 and missing["status"] == "fail"
    assert missing["title"] == ("org/tiny-sharded: 1 of 2 weight shards missing: model-00002-of-00002.safetensors")
    commit = repo.refs["main"]
    hf = os.path.join(os.path.dirname(sys.executable), "hf")
    assert missing["fix"] == f"{hf} download org/tiny-sharded model-00002-of-00002.safetensors --revision {commit}"

    run_fix(missing["fix"], hub)
    code, found = check("--python", sys.executable, "--offline", "--only", "model.files", "--model", "org/tiny-sharded")
    (ok,) = by_id(found)["model.files"]
    assert code == 0 and ok["status"] == "ok" and "all 6 files from_pretrained reads are here" in ok["title"]


def test_a_cache_dir_folder_named_by_a_script_or_by_dir_is_searched_and_a_partial_download_reported(
        sharded_hub, tmp_path):
    hub, repo = sharded_hub
    custom = tmp_path / "models-cache"
    snap = download(hub, "org/tiny-sharded", str(custom))
    drop(snap, "model-00002-of-00002.safetensors")
    shard = sharded_files()["model-00002-of-00002.safetensors"]  # its download, interrupted at 700 bytes
    partial = custom / "models--org--tiny-sharded" / "blobs" / (hashlib.sha256(shard).hexdigest() + ".incomplete")
    partial.write_bytes(shard[:700])
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text(
        "from transformers import AutoModelForCausalLM\n"
        f"model = AutoModelForCausalLM.from_pretrained('org/tiny-sharded', cache_dir={str(custom)!r})\n")

    for how in (["--project", str(project)], ["--dir", str(custom)]):
        _, found = check("--python", sys.executable, "--offline", "--only", "model.*", "--model", "org/tiny-sharded",
                         *how)
        got = by_id(found)
        label = "cache_dir= in the project" if how[0] == "--project" else "--dir"
        assert got["model.location"][0]["title"].startswith(
            f"org/tiny-sharded: found in the cache folder {custom} ({label})")
        (left,) = got["model.partial"]
        assert left["status"] == "warn" and "1 interrupted download(s) left (700 B" in left["title"]
        assert left["fix"].endswith(f"--revision {repo.refs['main']} --cache-dir {custom}")
    run_fix(left["fix"], hub)
    _, found = check("--python", sys.executable, "--offline", "--only", "model.files", "--model", "org/tiny-sharded",
                     "--dir", str(custom))
    assert [f["status"] for f in by_id(found)["model.files"]] == ["ok"]


@pytest.mark.parametrize("garbage", [b"\xff\xfe not json", b"[1, 2, 3]"])
def test_a_config_json_that_is_garbage_in_the_cache_is_named_and_the_fix_downloads_it_again(
        sharded_hub, tmp_path, monkeypatch, garbage):
    hub, repo = sharded_hub
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snap = download(hub, "org/tiny-sharded", HF_HUB_CACHE=str(cache))
    (snap / "config.json").resolve().write_bytes(garbage)  # the blob the link points to

    code, found = check("--python", sys.executable, "--offline", "--only", "model.files", "--model", "org/tiny-sharded")
    (bad,) = by_id(found)["model.config"]
    assert code == 1 and bad["status"] == "fail" and bad["title"].endswith("from_pretrained fails on it")
    assert "all 6 files" not in json.dumps(found)
    hf = os.path.join(os.path.dirname(sys.executable), "hf")
    assert bad["fix"] == f"{hf} download org/tiny-sharded config.json --revision {repo.refs['main']} --force-download"
    run_fix(bad["fix"], hub)
    code, found = check("--python", sys.executable, "--offline", "--only", "model.files", "--model", "org/tiny-sharded")
    assert code == 0 and [f["status"] for f in by_id(found)["model.files"]] == ["ok"]


def test_a_config_json_too_large_to_read_or_with_impossible_numbers_is_said_not_judged(tmp_path):
    big, odd = tmp_path / "big", tmp_path / "odd"
    for folder in (big, odd):
        folder.mkdir()
        (folder / "tokenizer.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(safetensors(100))
    (big / "config.json").write_text(json.dumps({**TINY, "id2label": {str(i): "x" * 64 for i in range(80_000)}}))
    (odd / "config.json").write_text('{"model_type": "llama", "hidden_size": Infinity, "num_hidden_layers": '
                                     '1000000000000000000000000000000, "num_attention_heads": 4, "vocab_size": 100}')
    _, found = check("--python", sys.executable, "--offline", "--only", "model.files,model.fit", "--model", str(big),
                     "--model", str(odd))
    got = by_id(found)
    (said,) = got["model.config"]
    assert said["status"] == "info" and said["title"] == (f"{big}: config.json is larger than 4 MiB: not read, so its "
                                                          "code, model type and fit are not judged")
    (skip,) = [f for f in found if f["check"] == "model.fit"]
    assert skip["status"] == "skip" and skip["title"].startswith(f"{odd}: its config.json does not give the model's")


def test_a_local_folder_with_a_cut_shard_and_a_missing_one(sharded_hub, tmp_path):
    """A folder copied from a colleague: one shard cut short (its safetensors header says how
    long it must be), the other never copied. Its config names the hub repo, so the fix is a
    --local-dir download that replaces the damaged file."""
    hub, _ = sharded_hub
    folder = tmp_path / "tiny-copy"
    folder.mkdir()
    files = sharded_files({**TINY, "_name_or_path": "org/tiny-sharded"})
    for name, data in files.items():
        if name != "model-00002-of-00002.safetensors":
            (folder / name).write_bytes(data)
    (folder / "model-00001-of-00002.safetensors").write_bytes(safetensors(1000, cut=400))

    _, found = check("--python", sys.executable, "--offline", "--only", "model.*", "--model", str(folder))
    got = by_id(found)
    assert got["model.location"][0]["title"] == f"{folder}: the local folder {folder}"
    assert got["model.files-missing"][0]["title"].endswith("1 of 2 weight shards missing: "
                                                           "model-00002-of-00002.safetensors")
    (cut,) = got["model.files-damaged"]
    assert "model-00001-of-00002.safetensors (" in cut["title"] and "cut short" in cut["title"]
    assert cut["fix"].endswith(f"download org/tiny-sharded model-00001-of-00002.safetensors "
                               f"model-00002-of-00002.safetensors --local-dir {folder} --force-download")
    run_fix(cut["fix"], hub)
    _, found = check("--python", sys.executable, "--offline", "--only", "model.files", "--model", str(folder))
    assert [f["status"] for f in by_id(found)["model.files"]] == ["ok"]


def test_a_model_only_on_the_hub_is_read_from_its_metadata_never_its_weights(sharded_hub, tmp_path, monkeypatch):
    hub, repo = sharded_hub
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    env = {"HF_ENDPOINT": hub.url, "NO_PROXY": "127.0.0.1,localhost"}
    _, found = check("--python", sys.executable, "--only", "model.*", "--model", "org/tiny-sharded", env=env)
    got = by_id(found)
    need = {n: len(d) for n, d in repo.commits[repo.refs["main"]].items() if n != "README.md"}
    (where,) = got["model.location"]
    assert where["title"] == (f"org/tiny-sharded: not downloaded yet; from_pretrained will fetch {len(need)} file(s), "
                              f"{sum(need.values()) / 1024:.1f} KiB from {hub.url}")
    assert not any("/blobs/" in path or path.endswith(".safetensors") for _, path in hub.requests)
    assert got["model.disk"][0]["status"] == "ok"
    assert (tmp_path / "hf" / "hub").exists() is False  # nothing was downloaded


def test_files_from_pretrained_never_asks_for_are_not_missing(tmp_path, monkeypatch):
    """A repo with a README, Mistral's params.json and consolidated weights, and .bin shards
    beside the safetensors ones: from_pretrained downloads none of them, so their absence
    from the cache is no finding."""
    files = {**sharded_files(), "params.json": b"{}", "consolidated.safetensors": safetensors(50),
             "pytorch_model.bin": b"PK\x03\x04old", "notes.txt": b"hello"}
    repo = Repo()
    repo.add_commit(files)
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    code = ("from huggingface_hub import snapshot_download as s; "
            "s('org/extra', allow_patterns=['*.json', 'model-*.safetensors'], ignore_patterns=['params.json'])")
    with FakeHub({"org/extra": repo}) as hub:
        done = subprocess.run([sys.executable, "-c", code], env=hub_env(hub, HF_HUB_CACHE=str(cache)),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    _, found = check("--python", sys.executable, "--offline", "--only", "model.files", "--model", "org/extra")
    (ok,) = by_id(found)["model.files"]
    assert ok["title"].startswith("org/extra: all 6 files from_pretrained reads are here") and \
        "the hub's file listing cached with the download" in ok["title"]


def test_a_hub_that_accepts_and_never_answers_costs_the_budget_not_a_hang(monkeypatch):
    import time

    from llmdoctor.probes import model as model_probe

    monkeypatch.setattr(model_probe, "NET_BUDGET_S", 2.0)
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    with FakeHub(mode="hang") as hub:
        started = time.monotonic()
        _, found = check("--python", sys.executable, "--only", "model.location", "--model", "org/tiny",
                         env={"HF_ENDPOINT": hub.url, "NO_PROXY": "127.0.0.1,localhost"})
        assert time.monotonic() - started < 15
    (f,) = by_id(found)["model.not-found"]
    assert f["status"] == "warn" and f["title"].startswith("org/tiny: not in any cache, and the hub did not answer")


def test_no_such_model_anywhere(tmp_path):
    _, found = check("--python", sys.executable, "--offline", "--only", "model.*", "--model", "org/nowhere",
                     "--model", str(tmp_path / "gone"))
    titles = [f["title"] for f in by_id(found)["model.not-found"]]
    assert titles == ["org/nowhere: not in any cache, and --offline: the hub was not asked",
                      f"{tmp_path / 'gone'}: no such folder"]


# --- gated and private repos, tokens -------------------------------------------------------------

@pytest.fixture
def gated_hub():
    gated = Repo(gated="manual", granted={"alice"})
    gated.add_commit(sharded_files())
    private = Repo(private=True, members={"alice"})
    private.add_commit(sharded_files())
    with FakeHub({"org/gated": gated, "org/private": private}, tokens={"hf_alice": "alice", "hf_bob": "bob"}) as hub:
        yield hub


@pytest.mark.parametrize("token,stored,expect", [
    (None, None, ("model.gated-no-token", "fail", "org/gated: gated (manual): the hub wants a token and there is none")),
    ("hf_alice", None, ("model.access", "ok", "org/gated: gated (manual); the hub serves its files (token from HF_TOKEN, "
                                              "user alice)")),
    ("hf_bob", None, ("model.gated-denied", "fail", "org/gated: gated (manual): the hub refuses its files to the token "
                                                    "from HF_TOKEN, user bob (403 GatedRepo)")),
    ("hf_revoked", None, ("model.token-invalid", "fail", "The Hugging Face token (HF_TOKEN) is not valid: the hub "
                                                         "answers 401 to whoami")),
    (None, "hf_alice", ("model.access", "ok", "org/gated: gated (manual); the hub serves its files (token from token "
                                              "file, user alice)")),
])
def test_a_gated_repo_with_each_kind_of_token(gated_hub, monkeypatch, tmp_path, token, stored, expect):
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    env = {"HF_ENDPOINT": gated_hub.url, "NO_PROXY": "127.0.0.1,localhost", "HF_TOKEN": token}
    if stored:
        (tmp_path / "hf").mkdir(exist_ok=True)
        (tmp_path / "hf" / "token").write_text(stored)
    _, found = check("--python", sys.executable, "--only", "model.access", "--model", "org/gated", env=env)
    got = by_id(found)
    fid, status, title = expect
    assert [(f["status"], f["title"]) for f in got[fid]] == [(status, title)]
    if fid == "model.gated-no-token":
        hf = os.path.join(os.path.dirname(sys.executable), "hf")  # the target's own hf, as printed for sh
        assert got[fid][0]["fix"] == f"accept the conditions at {gated_hub.url}/org/gated, then: {hf} auth login"
    if token:  # the token itself appears nowhere in the report
        result = CliRunner().invoke(cli, ["check", "--json", "--python", sys.executable, "--only", "model.*", "--model",
                                          "org/gated", "-v"], env=env)
        assert token not in result.stdout


def test_hf_token_and_a_different_stored_token_conflict(gated_hub, monkeypatch, tmp_path):
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    (tmp_path / "hf").mkdir(exist_ok=True)
    (tmp_path / "hf" / "token").write_text("hf_alice\n")
    env = {"HF_ENDPOINT": gated_hub.url, "NO_PROXY": "127.0.0.1,localhost", "HF_TOKEN": "hf_bob"}
    _, found = check("--python", sys.executable, "--only", "model.access", "--model", "org/gated", env=env)
    got = by_id(found)
    (conflict,) = got["model.token-conflict"]
    assert conflict["title"] == (f"HF_TOKEN is set and differs from the token stored by `hf auth login` in "
                                 f"{tmp_path / 'hf' / 'token'}: HF_TOKEN wins, the stored one is not used")
    assert got["model.gated-denied"][0]["status"] == "fail"  # bob's token is the one sent


@pytest.mark.parametrize("hf_token,active,named,allowed,fix", [
    # HF_TOKEN (bob) wins over the token `hf auth login` stored (alice)
    ("hf_bob", "hf_alice", {}, "the token stored by `hf auth login` in {file} (user alice)", "unset HF_TOKEN"),
    # the active stored token (bob) is refused; another one `hf auth login` kept by name (alice) is allowed
    (None, "hf_bob", {"bob": "hf_bob", "alice": "hf_alice"}, "the token stored as 'alice' (user alice)",
     "{hf} auth switch --token-name alice"),
    ("hf_bob", "hf_bob", {"bob": "hf_bob", "alice": "hf_alice"}, "the token stored as 'alice' (user alice)",
     "unset HF_TOKEN && {hf} auth switch --token-name alice"),
])
def test_a_token_refused_for_a_gated_repo_while_a_stored_one_is_allowed_names_the_one_that_works(
        gated_hub, monkeypatch, tmp_path, hf_token, active, named, allowed, fix):
    """Each stored token other than the one sent is asked for the repo's config.json; the
    finding names the one the hub serves (never the token itself), and the printed fix makes
    the real huggingface_hub download work."""
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    home = tmp_path / "hf"
    home.mkdir(exist_ok=True)
    (home / "token").write_text(active)
    if named:
        (home / "stored_tokens").write_text("".join(f"[{k}]\nhf_token = {v}\n\n" for k, v in named.items()))
    env = {"HF_ENDPOINT": gated_hub.url, "NO_PROXY": "127.0.0.1,localhost", "HF_TOKEN": hf_token,
           "HF_HUB_CACHE": str(tmp_path / "cache")}
    result = CliRunner().invoke(cli, ["check", "--json", "-v", "--python", sys.executable, "--only", "model.access",
                                      "--model", "org/gated"], env=env)
    assert "hf_alice" not in result.stdout and "hf_bob" not in result.stdout
    (f,) = by_id(json.loads(result.stdout)["findings"])["model.gated-denied"]
    source = "HF_TOKEN" if hf_token else "token file"
    assert (f["status"], f["title"]) == ("fail", f"org/gated: gated (manual): the hub refuses its files to the token "
                                         f"from {source}, user bob (403 GatedRepo); "
                                         f"{allowed.format(file=home / 'token')} is allowed")
    hf = os.path.join(os.path.dirname(sys.executable), "hf")
    assert f["fix"] == fix.format(hf=hf)
    real = {k: v for k, v in {**os.environ, **env, "HF_HUB_DISABLE_XET": "1"}.items() if v is not None}
    fetch = [sys.executable, "-c", "from huggingface_hub import hf_hub_download as d; d('org/gated', 'config.json')"]
    before = subprocess.run(fetch, env=real, capture_output=True, text=True, timeout=120)
    assert before.returncode != 0 and "403" in before.stderr
    done = subprocess.run(f["fix"], shell=True, env=real, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    real.pop("HF_TOKEN", None)  # what the printed `unset HF_TOKEN` does to the shell that runs the next command
    after = subprocess.run(fetch, env=real, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stderr[-2000:]


@pytest.mark.parametrize("stored", [False, True])
def test_hf_hub_disable_implicit_token_keeps_any_token_from_being_sent(gated_hub, monkeypatch, tmp_path, stored):
    """huggingface_hub sends no token that the call did not pass while HF_HUB_DISABLE_IMPLICIT_TOKEN
    is set, HF_TOKEN's included: an allowed token is not enough, and the printed fix makes the
    real download work."""
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    cache = tmp_path / "hf" / "hub"
    env = {"HF_ENDPOINT": gated_hub.url, "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
           "HF_TOKEN": None if stored else "hf_alice", "HF_HUB_CACHE": str(cache)}
    if stored:
        (tmp_path / "hf").mkdir(exist_ok=True)
        (tmp_path / "hf" / "token").write_text("hf_alice")
    _, found = check("--python", sys.executable, "--only", "model.access", "--model", "org/gated", env=env)
    (f,) = by_id(found)["model.gated-no-token"]
    held = "the token file" if stored else "HF_TOKEN"
    assert (f["status"], f["title"]) == ("fail", "org/gated: gated (manual): the hub wants a token, and "
                                         f"HF_HUB_DISABLE_IMPLICIT_TOKEN keeps from_pretrained from sending the one "
                                         f"from {held}")
    assert f["fix"] == "unset HF_HUB_DISABLE_IMPLICIT_TOKEN   (or pass token=... to from_pretrained)"
    real = {k: v for k, v in {**os.environ, **env, "HF_HUB_DISABLE_XET": "1"}.items() if v is not None}
    fetch = [sys.executable, "-c", "from huggingface_hub import hf_hub_download as d; d('org/gated', 'config.json')"]
    before = subprocess.run(fetch, env=real, capture_output=True, text=True, timeout=120)
    assert before.returncode != 0 and "401" in before.stderr
    real.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    after = subprocess.run(fetch, env=real, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stderr[-2000:]


def test_a_private_repo_without_access_is_not_found(gated_hub, monkeypatch):
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    env = {"HF_ENDPOINT": gated_hub.url, "NO_PROXY": "127.0.0.1,localhost", "HF_TOKEN": None}
    _, found = check("--python", sys.executable, "--only", "model.*", "--model", "org/private", env=env)
    (f,) = by_id(found)["model.not-found"]
    assert f["title"] == ("org/private: not in any cache, and the hub has no such repo (private, or misspelt: "
                          "401 RepoNotFound)")


def test_a_private_repo_hidden_from_hf_token_but_shown_to_the_stored_token(gated_hub, monkeypatch, tmp_path):
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    (tmp_path / "hf").mkdir(exist_ok=True)
    (tmp_path / "hf" / "token").write_text("hf_alice")
    env = {"HF_ENDPOINT": gated_hub.url, "NO_PROXY": "127.0.0.1,localhost", "HF_TOKEN": "hf_bob"}
    _, found = check("--python", sys.executable, "--only", "model.*", "--model", "org/private", env=env)
    (f,) = by_id(found)["model.not-found"]
    assert f["title"] == ("org/private: not in any cache, and the hub hides it from the token from HF_TOKEN (404 "
                          f"RepoNotFound); the token stored by `hf auth login` in {tmp_path / 'hf' / 'token'} (user "
                          "alice) can see it")
    assert f["fix"] == "unset HF_TOKEN"


def test_hf_transfer_variable_without_the_package_on_a_hub_client_that_still_reads_it():
    from checks_under_test import model
    from llmdoctor.probes.model import ModelFacts, ModelInfo, ModelRequest

    info = ModelInfo("org/x", repo_id="org/x", source="hub")
    m = ModelFacts(request=ModelRequest(models=("org/x",)), models=(info,), hf_transfer_env=True)
    old = target(distributions=(dist("huggingface_hub", "0.26.2"), dist("transformers", "4.46.3")))
    (f,) = [f for f in findings_of(model.access_check, facts(model=m, target=old)) if f.id == "model.hf-transfer"]
    assert f.status is Status.FAIL and "huggingface_hub 0.26.2 refuses to download" in f.title
    assert fix_text(f).startswith("/home/u/.venvs/llm/bin/python -m pip install hf_transfer")
    new = target(distributions=(dist("huggingface_hub", "1.1.0"),))
    (f,) = [f for f in findings_of(model.access_check, facts(model=m, target=new)) if f.id == "model.hf-transfer"]
    assert f.status is Status.INFO and "ignores it" in f.title


# --- the model's own code against another transformers ------------------------------------------

@pytest.fixture(scope="module")
def tf_venv(tmp_path_factory):
    """A real venv (no torch, no tiktoken, no sentencepiece) whose transformers the tests swap."""
    root = tmp_path_factory.mktemp("tfvenv")
    py = make_venv(root / "venv")
    return py, site_packages(py)


def with_transformers(tf_venv, version, **kw):
    py, site = tf_venv
    faketf.remove(site)
    faketf.install(site, version, **kw)
    return str(py)


def copy_model(name: str, dest: Path) -> Path:
    out = dest / name
    shutil.copytree(REMOTE / name, out)
    return out


def test_chatglm_tokenizer_saved_with_427_fails_on_445_and_qwen_saved_with_432_is_judged_not_skipped(
        tf_venv, tmp_path):
    """ChatGLM-6B sets sp_tokenizer after super().__init__(), which calls get_vocab() from
    transformers 4.34: a failure, with the pin of the version it was saved with. Qwen-7B-Chat
    (saved with 4.32.0) on 4.36.2: the old rule said nothing; now every name its code imports
    and every inherited method it calls is looked up, and the answer says so."""
    glm, qwen = copy_model("chatglm-6b", tmp_path), copy_model("qwen-7b-chat", tmp_path)
    py = with_transformers(tf_venv, "4.45.2")
    _, found = check("--python", py, "--offline", "--only", "model.code", "--model", str(glm))
    (f,) = by_id(found)["model.remote-code"]
    assert f["status"] == "fail"
    assert f["title"] == (f"{glm}: its own code does not fit transformers 4.45.2 (saved with 4.27.1): "
                          "tokenization_chatglm.py:55 ChatGLMTokenizer sets sp_tokenizer after super().__init__(), "
                          "which calls get_vocab() from transformers 4.34.0: 'ChatGLMTokenizer' object has no "
                          "attribute 'sp_tokenizer'")
    assert f["fix"] == f"{py} -m pip install transformers==4.27.1"
    assert f["docs"] == "https://github.com/huggingface/transformers/issues/27015"

    py = with_transformers(tf_venv, "4.36.2")
    _, found = check("--python", py, "--offline", "--only", "model.code", "--model", str(qwen))
    got = by_id(found)
    (f,) = got["model.remote-code"]
    assert f["status"] == "ok"
    assert f["title"] == (f"{qwen}: runs its own code (saved with transformers 4.32.0); against transformers 4.36.2: "
                          "its 12 transformers import(s) and 4 inherited call(s) resolve")
    (needs,) = got["model.imports"]
    assert needs["title"] == f"{qwen}: needs tiktoken, torch, not installed here"
    assert needs["fix"] == f"{py} -m pip install tiktoken torch"


def test_chatglm3_calls_a_generation_method_transformers_449_removed(tf_venv, tmp_path):
    """zai-org/GLM-4#715: works up to 4.48.3, AttributeError on 4.49.0. The pin is the version
    the repo was saved with, and the finding says which installed package the pin breaks."""
    glm3 = copy_model("chatglm3-6b", tmp_path)
    py, site = tf_venv
    with_transformers(tf_venv, "4.48.3")
    _, found = check("--python", str(py), "--offline", "--only", "model.code", "--model", str(glm3))
    assert by_id(found)["model.remote-code"][0]["status"] == "ok"

    with_transformers(tf_venv, "4.49.0", extract_past=False)
    install_fake_dist(site, "peft", "0.14.0", requires=("transformers>=4.38",))
    try:
        _, found = check("--python", str(py), "--offline", "--only", "model.code", "--model", str(glm3))
    finally:
        shutil.rmtree(site / "peft-0.14.0.dist-info")
    (f,) = by_id(found)["model.remote-code"]
    assert f["status"] == "fail" and f["title"].endswith(
        "modeling_chatglm.py:72 ChatGLMForConditionalGeneration calls self._extract_past_from_model_output(), "
        "which transformers 4.49.0 no longer has (AttributeError when it runs)")
    assert f["fix"] == f"{py} -m pip install transformers==4.30.2"
    assert "Pinning breaks: peft 0.14.0 requires transformers>=4.38" in f["detail"]
    assert f["docs"] == "https://github.com/zai-org/GLM-4/issues/715"


def test_a_name_the_code_imports_that_the_installed_transformers_lacks(tf_venv, tmp_path):
    qwen = copy_model("qwen-7b-chat", tmp_path)
    py = with_transformers(tf_venv, "4.99.0", generate_output=False)
    _, found = check("--python", py, "--offline", "--only", "model.code", "--model", str(qwen))
    (f,) = by_id(found)["model.remote-code"]
    assert f["status"] == "fail" and f["title"].endswith(
        "modeling_qwen.py:17 imports transformers.generation.utils.GenerateOutput, a name transformers 4.99.0 does not "
        "have (ImportError on load)")
    assert f["fix"] == f"{py} -m pip install transformers==4.32.0"


def test_remote_code_of_a_repo_only_on_the_hub_is_fetched_and_judged_before_any_download(tf_venv, monkeypatch):
    files = {p.name: p.read_bytes() for p in (REMOTE / "chatglm-6b").iterdir()}
    files["ice_text.model"] = b"spm"
    files["pytorch_model.bin"] = b"PK\x03\x04weights"
    repo = Repo()
    repo.add_commit(files)
    monkeypatch.delenv("LLMDOCTOR_OFFLINE")
    py = with_transformers(tf_venv, "4.45.2")
    with FakeHub({"THUDM/chatglm-6b": repo}) as hub:
        _, found = check("--python", py, "--only", "model.code", "--model", "THUDM/chatglm-6b",
                         env={"HF_ENDPOINT": hub.url, "NO_PROXY": "127.0.0.1,localhost"})
        fetched = {path.rsplit("/", 1)[-1] for _, path in hub.requests if "/resolve/" in path}
    (f,) = by_id(found)["model.remote-code"]
    assert f["status"] == "fail" and "'ChatGLMTokenizer' object has no attribute 'sp_tokenizer'" in f["title"]
    assert "pytorch_model.bin" not in fetched and {"modeling_chatglm.py", "tokenization_chatglm.py"} <= fetched


def test_the_real_transformers_is_asked_about_chatglm3s_calls(tmp_path):
    """The same code checked against the transformers installed in the test environment
    (the real package, imported in the target with torch): it has no
    _extract_past_from_model_output either."""
    glm3 = copy_model("chatglm3-6b", tmp_path)
    _, found = check("--python", sys.executable, "--offline", "--only", "model.code", "--model", str(glm3))
    (f,) = by_id(found)["model.remote-code"]
    assert f["status"] == "fail" and "self._extract_past_from_model_output()" in f["title"]


def test_the_cache_wide_remote_code_check_and_model_code_agree(tf_venv, tmp_path, monkeypatch):
    """cache.remote-code (every cached repo, without --model) and model.code judge a repo with
    the same facts and the same verdict; a repo named with --model is left to model.code."""
    cache = tmp_path / "hf" / "hub"
    for repo_id, name in (("THUDM/chatglm-6b", "chatglm-6b"), ("Qwen/Qwen-7B-Chat", "qwen-7b-chat")):
        base = cache / f"models--{repo_id.replace('/', '--')}"
        shutil.copytree(REMOTE / name, base / "snapshots" / ("c" * 40))
        (base / "refs").mkdir()
        (base / "refs" / "main").write_text("c" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    py = with_transformers(tf_venv, "4.45.2")
    _, found = check("--python", py, "--offline", "--only", "hub.remote-code")
    cached = {f["id"]: f for f in found if f["check"] == "cache.remote-code"}
    assert cached["cache.remote-code-version"]["title"].startswith(
        "THUDM/chatglm-6b runs its own code (trust_remote_code) that does not fit transformers 4.45.2 (saved with "
        "4.27.1): tokenization_chatglm.py:55 ChatGLMTokenizer sets sp_tokenizer")
    assert cached["cache.remote-code"]["status"] == "ok" and "Qwen/Qwen-7B-Chat (saved with 4.32.0)" in \
        cached["cache.remote-code"]["detail"]
    _, found = check("--python", py, "--offline", "--only", "hub.remote-code,model.code", "--model", "THUDM/chatglm-6b")
    statuses = {f["check"]: f["status"] for f in found if f["id"] in ("model.remote-code", "cache.remote-code")}
    assert statuses == {"model.code": "fail", "cache.remote-code": "ok"}  # chatglm judged once, by model.code


def test_a_sentencepiece_tokenizer_needs_sentencepiece_and_protobuf(tf_venv, tmp_path):
    py = with_transformers(tf_venv, "4.45.2")
    folder = tmp_path / "llama-spm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    (folder / "model.safetensors").write_bytes(safetensors(100))
    (folder / "tokenizer.model").write_bytes(b"\x0a\x0b")
    _, found = check("--python", py, "--offline", "--only", "model.code", "--model", str(folder))
    (f,) = by_id(found)["model.imports"]
    assert f["title"] == f"{folder}: needs protobuf, sentencepiece, not installed here"
    assert f["fix"] == f"{py} -m pip install protobuf sentencepiece"
    assert f["docs"].endswith("convert_slow_tokenizer.py")
    (folder / "tokenizer.json").write_text("{}")  # a fast tokenizer file: no conversion, nothing needed
    _, found = check("--python", py, "--offline", "--only", "model.code", "--model", str(folder))
    assert "model.imports" not in by_id(found)


def test_a_config_saved_by_a_newer_transformers_than_installed():
    from checks_under_test import model
    from llmdoctor.probes.model import ModelFacts, ModelInfo, ModelRequest

    info = ModelInfo("org/m", repo_id="org/m", source="cache", config={**TINY, "transformers_version": "4.45.0"},
                     model_type_known=True)
    m = ModelFacts(request=ModelRequest(models=("org/m",)), models=(info,))
    fs = findings_of(model.code_check, facts(model=m, target=target(distributions=(dist("transformers", "4.40.2"),))))
    (f,) = [f for f in fs if f.id == "model.transformers-version"]
    assert f.status is Status.WARN and f.title == "org/m: saved with transformers 4.45.0, newer than the installed 4.40.2"
    assert fix_text(f) == "/home/u/.venvs/llm/bin/python -m pip install -U 'transformers>=4.45.0'"


def test_a_model_type_the_installed_transformers_does_not_know(tf_venv, tmp_path):
    py = with_transformers(tf_venv, "4.36.2")
    folder = tmp_path / "qwen2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY, "model_type": "qwen2", "transformers_version": "4.37.0"}))
    _, found = check("--python", py, "--offline", "--only", "model.code", "--model", str(folder))
    (f,) = by_id(found)["model.model-type"]
    assert f["title"] == f"{folder}: transformers 4.36.2 does not know model type 'qwen2' (saved with 4.37.0)"
    assert f["fix"] == f"{py} -m pip install -U 'transformers>=4.37.0'"


# --- fit, from recorded GPU facts ---------------------------------------------------------------------

def recorded_h100():
    from llmdoctor.facts import load
    from llmdoctor.probes.nvidia import GpuFacts

    return load(GpuFacts, json.loads(H100.read_text())["facts"]["gpu"]["value"])


YI_6B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
         "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 64000, "tie_word_embeddings": False,
         "torch_dtype": "bfloat16", "transformers_version": "4.34.0"}
QWEN_7B = json.loads((REMOTE / "qwen-7b-chat" / "config.json").read_text())


def fit_findings(config, gpu_facts, task="infer", dtype=None, quant=None, tf="4.46.3", ram=64 * GiB, extra=(),
                 seq=1024, **info_kw):
    from checks_under_test import model
    from llmdoctor.probes.model import ModelFacts, ModelInfo, ModelRequest

    info = ModelInfo("org/m", repo_id="org/m", config=config, **{"source": "cache", **info_kw})
    m = ModelFacts(request=ModelRequest(models=("org/m",), task=task, dtype=dtype, quant=quant, seq=seq),
                   models=(info,))
    t = target(distributions=(dist("transformers", tf), *extra))
    return {f.id: f for f in findings_of(model.fit_check, facts(model=m, target=t, gpu=gpu_facts,
                                                                   system=system(ram_available_bytes=ram)))}


def test_yi_6b_inference_fits_the_recorded_h100():
    f = fit_findings(YI_6B, recorded_h100(), dtype="bf16")["model.gpu-fit"]
    assert f.status is Status.OK
    assert f.title.startswith("org/m: inference in bf16 at 1024 tokens needs about 12.")
    assert f.title.endswith("fits GPU 0 (NVIDIA H100 80GB HBM3, 79.2 GiB free)")
    assert "6.06B parameters" in f.detail


def test_lora_of_qwen_7b_on_the_h100_capped_to_a_t4_names_qlora():
    """The recorded H100 with its free memory set to what a T4 leaves (15 GiB): 16-bit LoRA of
    a 7.7B model does not fit; QLoRA does, and bitsandbytes is missing, so the fix installs it."""
    h100 = recorded_h100()
    t4ish = replace(h100, gpus=tuple(replace(g, memory_free_bytes=15 * GiB) for g in h100.gpus))
    f = fit_findings(QWEN_7B, t4ish, task="lora")["model.gpu-fit"]
    assert f.status is Status.FAIL
    assert "LoRA on a bf16 base (rank 16) at 1024 tokens needs about" in f.title
    assert f.title.endswith("has too little. QLoRA (nf4 base, rank 16) needs 12.2 GiB: fits")  # the bench's model
    assert "load_in_4bit=True" in fix_text(f) and fix_text(f).endswith("-m pip install bitsandbytes accelerate")


def test_7b_in_fp16_on_a_24gb_card_fits_lora_at_1k_but_not_at_8k_where_qlora_at_4k_does():
    bnb = (dist("bitsandbytes", "0.45.0"), dist("accelerate", "1.2.0"))
    ok = fit_findings(QWEN_7B, gpus(gpu()), task="lora", dtype="fp16", extra=bnb)["model.gpu-fit"]
    assert ok.status is Status.OK and ok.title.startswith("org/m: LoRA on a fp16 base (rank 16) at 1024 tokens needs "
                                                          "about 18.1 GiB: fits GPU 0 (NVIDIA GeForce RTX 4090")
    f = fit_findings(QWEN_7B, gpus(gpu()), task="lora", dtype="fp16", seq=8192, extra=bnb)["model.gpu-fit"]
    assert f.status is Status.FAIL
    assert f.title == ("org/m: LoRA on a fp16 base (rank 16) at 8192 tokens needs about 33.5 GiB; GPU 0 (NVIDIA GeForce "
                       "RTX 4090, 23.6 GiB free) has too little. QLoRA (nf4 base, rank 16) at 4096 tokens needs "
                       "19.8 GiB: fits")
    assert fix_text(f).endswith("LoRA at max_length=4096")  # bitsandbytes is installed: no install step


def test_no_torch_dtype_on_transformers_4_loads_fp32_and_needs_twice_the_ram():
    f = fit_findings(YI_6B, gpus(), ram=16 * GiB)
    ram = f["model.host-ram"]
    assert ram.status is Status.FAIL
    assert ram.title == ("org/m: loads in fp32 (transformers 4.46.3 loads in fp32 without torch_dtype): 22.6 GiB of "
                         "RAM, 16.0 GiB available; in bf16 it takes 11.3 GiB")
    assert fix_text(ram) == "from_pretrained(..., torch_dtype=torch.bfloat16)"
    assert "model.host-ram" not in fit_findings(YI_6B, gpus(), ram=16 * GiB, tf="5.1.0")  # dtype='auto' there


MULTIMODAL = ROOT / "tests" / "fixtures" / "multimodal"


@pytest.mark.parametrize("name,published", [
    # the model page: "Model size 7.06B params"
    ("llava-1.5-7b-hf", "7.06B"),
    # Gemma 3 Technical Report (arXiv:2503.19786) Table 1, 4B: 417M vision encoder + 675M embedding
    # + 3,209M non-embedding = 4.30B
    ("gemma-3-4b-it", "4.30B"),
])
def test_a_multimodal_config_that_leaves_its_language_models_shape_to_transformers_defaults_is_sized(
        tmp_path, name, published):
    """llava-1.5-7b-hf's text_config says only model_type llama (and the vocabulary);
    gemma-3-4b-it's gives no heads, head_dim nor vocabulary: transformers writes a nested config
    as its difference from the class's defaults. The target's transformers (the real one here)
    fills them in; the language model is sized from them, and the checkpoint's size (an index
    holding the published parameter count in 16 bits) adds the vision tower and projector.
    The language model's count is checked against the model transformers builds from the same
    config on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    cfg = json.loads((MULTIMODAL / name / "config.json").read_text())
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    total = int(float(published[:-1]) * 1e9) * 2
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    _, found = check("--python", sys.executable, "--offline", "--only", "model.fit", "--model", str(folder))
    (f,) = by_id(found)["model.gpu-fit"]
    kw = {k: v for k, v in cfg.items() if k != "model_type"}
    with torch.device("meta"):
        built = AutoModelForImageTextToText.from_config(AutoConfig.for_model(cfg["model_type"], **kw))
    language = sum(p.numel() for n, p in built.named_parameters() if "vision_tower" not in n and "projector" not in n)
    assert f["detail"].startswith(f"{published} parameters ("), f["detail"]
    assert f"; {language / 1e9:.2f}B of them in the language model its config describes, the rest (a vision " \
           "tower, a projector) counted from the checkpoint's size" in f["detail"]


def test_a_text_config_with_impossible_numbers_is_not_handed_to_transformers():
    """Gemma3TextConfig builds a list of num_hidden_layers entries: 10**30 would never return."""
    from llmdoctor.probes.model import ModelInfo, config_requests

    gemma = json.loads((MULTIMODAL / "gemma-3-4b-it" / "config.json").read_text())
    assert [r[:2] for r in config_requests(ModelInfo("x", config=gemma))] == [("text_config", "gemma3_text")]
    for bad in (10 ** 30, float("inf")):
        odd = {**gemma, "text_config": {**gemma["text_config"], "num_hidden_layers": bad}}
        assert config_requests(ModelInfo("x", config=odd)) == []


def test_a_multimodal_config_in_a_target_without_transformers_says_why_its_fit_is_not_estimated(tmp_path):
    py = make_venv(tmp_path / "bare")
    folder = tmp_path / "llava"
    shutil.copytree(MULTIMODAL / "llava-1.5-7b-hf", folder)
    _, found = check("--python", str(py), "--offline", "--only", "model.fit", "--model", str(folder))
    (f,) = [f for f in found if f["check"] == "model.fit"]
    assert (f["status"], f["title"]) == ("skip", f"{folder}: its text_config leaves the language model's shape to "
                                         "transformers' defaults for model type 'llama', and transformers is not "
                                         "installed in the target; fit not estimated")


def test_the_download_does_not_fit_the_disk():
    from llmdoctor.probes.model import HubInfo

    listing = {"config.json": 700, "model.safetensors": 12 * GiB}
    f = fit_findings(YI_6B, gpus(), dest="/data", dest_free_bytes=5 * GiB, source="hub",
                     hub=HubInfo("https://huggingface.co", status=200, listing=listing))
    assert f["model.disk"].status is Status.FAIL
    assert f["model.disk"].title == "org/m: the download needs 12.0 GiB; /data has 5.0 GiB free"


# --- --project ------------------------------------------------------------------------------

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "source": ["# fine-tune"]},
        {"cell_type": "code", "source": ["!pip install -q transformers\n", "%env CURL_CA_BUNDLE=''\n"]},
        {"cell_type": "code", "source": [
            "import torch\n",
            "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n",
            "model = AutoModelForCausalLM.from_pretrained('THUDM/chatglm-6b', trust_remote_code=True,\n",
            "                                             load_in_8bit=True, device_map='auto')\n",
            "if torch.cuda.is_available():\n",
            "    model.to('cuda')\n",
            "x = torch.ones(2).to('cuda')\n"]},
    ],
    "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
}
SCRIPT = """\
import os, requests
os.environ['REQUESTS_CA_BUNDLE'] = ''
r = requests.get('https://example.com/data.json', verify=False)
"""


def test_project_scripts_and_notebooks_are_read_for_each_trap(tf_venv, tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    base = cache / "models--THUDM--chatglm-6b"
    shutil.copytree(REMOTE / "chatglm-6b", base / "snapshots" / ("d" * 40))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "notebooks" / "finetune.ipynb").write_text(json.dumps(NOTEBOOK))
    (project / "fetch.py").write_text(SCRIPT)
    (project / "broken.py").write_text("def broken(:\n")
    (project / ".venv").mkdir()
    (project / ".venv" / "ignored.py").write_text("os.environ['CURL_CA_BUNDLE'] = ''\n")
    py = with_transformers(tf_venv, "4.45.2")

    _, found = check("--python", py, "--offline", "--only", "model.project", "--project", str(project))
    got = {(f["id"], f["title"].split(":")[0] + ":" + f["title"].split(":")[1]): f for f in found
           if f["id"] != "model.project"}
    nb = os.path.join("notebooks", "finetune.ipynb")
    expected = {
        ("model.project.ca-bundle-empty", f"{nb} cell 2:2"),
        ("model.project.ca-bundle-empty", "fetch.py:2"),
        ("model.project.verify-false", "fetch.py:3"),
        ("model.project.trust-remote-code", f"{nb} cell 3:3"),
        ("model.project.bnb-quantization", f"{nb} cell 3:3"),
        ("model.project.device-map", f"{nb} cell 3:3"),
        ("model.project.hard-coded-cuda", f"{nb} cell 3:7"),
    }
    assert set(got) == expected, sorted(got)
    bnb = got[("model.project.bnb-quantization", f"{nb} cell 3:3")]
    assert bnb["title"].endswith("quantizes with bitsandbytes (load_in_8bit), but bitsandbytes and accelerate are "
                                 "not installed here")
    assert bnb["fix"] == f"{py} -m pip install bitsandbytes accelerate"
    remote = got[("model.project.trust-remote-code", f"{nb} cell 3:3")]
    assert remote["title"].endswith("loads THUDM/chatglm-6b with trust_remote_code=True, and its code does not fit "
                                    "transformers 4.45.2")
    assert "sp_tokenizer after super().__init__()" in remote["detail"] and remote["fix"].endswith("transformers==4.27.1")
    cuda = got[("model.project.hard-coded-cuda", f"{nb} cell 3:7")]
    assert cuda["title"].endswith("puts tensors on CUDA (to('cuda')), but this machine has no visible GPU")
    for f in got.values():
        assert f["docs"].startswith("https://")
    (parse,) = [f for f in found if f["id"] == "model.project"]
    assert parse["status"] == "info" and "broken.py: SyntaxError" in parse["detail"]


OTHER_SPELLINGS = """\
import os, requests, torch
os.environ.setdefault("CURL_CA_BUNDLE", "")
os.environ.update({"REQUESTS_CA_BUNDLE": ""})
os.environ.update(CURL_CA_BUNDLE="")
os.environ |= {"REQUESTS_CA_BUNDLE": " "}
os.putenv("CURL_CA_BUNDLE", "")
os.environ.setdefault("CURL_CA_BUNDLE", "/etc/ssl/corp.pem")
session = requests.Session()
session.verify = False
model = torch.nn.Linear(2, 2).cuda()
model.to('cuda:0')
device = torch.device('cuda')
"""


def test_project_traps_written_in_other_spellings_are_found(tmp_path):
    """The same traps as users write them besides the plain forms: setdefault, update with a
    dict or keywords, |=, putenv, a Session's verify attribute, .cuda(), .to('cuda:0'),
    torch.device('cuda'); a notebook that is not JSON and a file too large are named, not read."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text(OTHER_SPELLINGS)
    (project / "broken.ipynb").write_text("this is not JSON")
    (project / "huge.py").write_text("x = 1\n" * 500_000)
    _, found = check("--python", sys.executable, "--offline", "--only", "model.project", "--project", str(project))
    got = sorted((f["id"].rsplit(".", 1)[-1], f["title"].split(":")[1]) for f in found if f["id"] != "model.project")
    assert got == sorted([("ca-bundle-empty", "2"), ("ca-bundle-empty", "3"), ("ca-bundle-empty", "4"),
                          ("ca-bundle-empty", "5"), ("ca-bundle-empty", "6"), ("verify-false", "9"),
                          ("hard-coded-cuda", "10"), ("hard-coded-cuda", "11"), ("hard-coded-cuda", "12")]), got
    verify = next(f for f in found if f["id"] == "model.project.verify-false")
    assert "(session.verify = False)" in verify["title"]
    (unread,) = [f for f in found if f["id"] == "model.project"]
    assert "broken.ipynb: JSONDecodeError" in unread["detail"] and "huge.py: larger than 2 MiB" in unread["detail"]


# --- the report: JSON, Markdown, replay; hostile folders --------------------------------------------------

def test_model_facts_replay_and_render_in_markdown(sharded_hub, tmp_path, monkeypatch):
    hub, _ = sharded_hub
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snap = download(hub, "org/tiny-sharded", HF_HUB_CACHE=str(cache))
    drop(snap, "model-00001-of-00002.safetensors")
    result = CliRunner().invoke(cli, ["check", "--json", "--python", sys.executable, "--offline", "--only", "model.*",
                                      "--model", "org/tiny-sharded"], catch_exceptions=False)
    saved = tmp_path / "report.json"
    saved.write_text(result.stdout)
    original = [(f["id"], f["status"], f["title"]) for f in json.loads(result.stdout)["findings"]]
    shutil.rmtree(cache)  # the replay reads the facts, not the machine
    again = CliRunner().invoke(cli, ["check", "--json", "--replay", str(saved), "--only", "model.*"])
    assert [(f["id"], f["status"], f["title"]) for f in json.loads(again.stdout)["findings"]] == original
    md = CliRunner().invoke(cli, ["report", "--replay", str(saved), "--only", "model.*"])
    assert "| fail | `model.files-missing` | org/tiny-sharded: 1 of 2 weight shards missing" in md.stdout
    text = CliRunner().invoke(cli, ["check", "--replay", str(saved), "--only", "model.*"])
    assert "[✗] Model" in text.stdout or "[x] Model" in text.stdout


def test_hostile_model_folders_give_findings_not_tracebacks(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "config.json").write_bytes(b"\xff\xfe not json")
    (folder / "modeling_x.py").write_bytes(b"def (:\n\x00\x01")
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 60) + b"{")
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)
    code, found = check("--python", sys.executable, "--offline", "--only", "model.*", "--model", str(folder))
    got = by_id(found)
    assert code == 1 and "model.location" in got
    assert got["model.files-damaged"][0]["title"].startswith(f"{folder}: 1 file(s) cut short")
    assert all(f["status"] != "error" for f in found)


def test_the_shape_read_from_a_config_counts_the_parameters_transformers_builds():
    """arch_from_config against the model transformers itself builds from the same config (on
    the meta device: no memory, no weights), for the layouts the estimator must read."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    llama = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=8,
                 num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=False)
    cases = {"llama": llama, "qwen2": llama, "mixtral": {**llama, "num_local_experts": 4, "num_experts_per_tok": 2},
             "gpt2": dict(n_embd=768, n_layer=2, n_head=12, vocab_size=50257, tie_word_embeddings=True),
             "gpt_neox": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=8,
                              vocab_size=1000, tie_word_embeddings=False),
             "falcon": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, vocab_size=1000,
                            new_decoder_architecture=False, multi_query=True, tie_word_embeddings=True)}
    for model_type, cfg in cases.items():
        with torch.device("meta"):
            built = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
        real = sum(p.numel() for p in built.parameters())
        arch = arch_from_config(model_type, {"model_type": model_type, **cfg})
        assert abs(arch.params() / real - 1) < 0.02, (model_type, real, arch.params())


def test_the_code_reader_claims_nothing_the_code_guards_or_provides_itself():
    """A tokenizer that checks hasattr before reading a late attribute, a method called inside
    try/except, one called after hasattr, one the code sets on the instance itself, and a class
    with __getattr__: none is claimed missing. The unguarded ones are."""
    from llmdoctor.probes import modelcode

    code = '''
from transformers import PreTrainedTokenizer, PreTrainedModel
class Guarded(PreTrainedTokenizer):
    def __init__(self, v, **kw):
        super().__init__(**kw)
        self.sp = v
    def get_vocab(self):
        return self.sp if hasattr(self, "sp") else {}
class Late(PreTrainedTokenizer):
    def __init__(self, v, **kw):
        super().__init__(**kw)
        self.sq = v
    def get_vocab(self):
        return dict(self.sq)
class M(PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.hook = lambda x: x
    def f(self):
        try:
            self._gone_maybe()
        except AttributeError:
            pass
        if hasattr(self, "_optional"):
            self._optional()
        self.hook(1)
        return self._really_called()
class Dyn(PreTrainedModel):
    def __getattr__(self, name):
        return 1
    def f(self):
        return self._anything()
'''
    scan = modelcode.scan({"modeling_x.py": code})
    assert [(i.cls, i.attrs) for i in scan.init_order] == [("Late", ("sq",))]
    assert [(u.cls, u.attr) for u in scan.member_uses] == [("M", "_really_called")]


def test_one_model_the_reader_cannot_handle_loses_no_other_model(tmp_path, monkeypatch):
    """--model given twice, and reading the first fails in a way no reader expected (fault
    injected): that model is named with the error, and the second is still judged."""
    from llmdoctor.probes import model as probe

    good = tmp_path / "good"
    good.mkdir()
    (good / "config.json").write_text(json.dumps(TINY))
    (good / "tokenizer.json").write_text("{}")
    (good / "model.safetensors").write_bytes(safetensors(100))
    real = probe.locate

    def locate(spec, *a, **kw):
        if spec.endswith("bad"):
            raise PermissionError(13, "Permission denied", spec)
        return real(spec, *a, **kw)

    monkeypatch.setattr(probe, "locate", locate)
    _, found = check("--python", sys.executable, "--offline", "--only", "model.*", "--model", str(tmp_path / "bad"),
                     "--model", str(good))
    got = by_id(found)
    (bad,) = got["model.not-found"]
    assert bad["status"] == "fail" and "could not be read (PermissionError" in bad["title"], bad
    judged = {f["check"] for f in found if f["title"].startswith(f"{good}:")}
    assert {"model.files", "model.fit"} <= judged, judged
