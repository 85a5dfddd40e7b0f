"""Hostile and broken input from outside: a replayed report, a target interpreter's output,
a cache folder's name, an environment variable. Each gives a clear finding or error, never a
raw escape sequence on the terminal, a traceback, or a hang."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_venv
from llmdoctor.cli import cli

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "fixtures" / "real" / "h100" / "check.json"
#: what a hostile value carries: an OSC 52 clipboard write (the payload is `rm -rf ~`), a CSI
#: sequence that clears the screen, a carriage return that hides what came before, an 8-bit
#: CSI, a bell, and a right-to-left override
PAYLOAD = "\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\rhidden\x9b31m\u202eevil\x07"
#: anything a terminal would act on: C0 controls but newline and tab, DEL, C1, bidi overrides
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def invoke(*args, **kw):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kw)


def assert_clean(text: str) -> None:
    found = RAW.search(text)
    assert found is None, f"raw control character {found.group()!r} at {found.start()}: " \
                          f"{text[max(0, found.start() - 60):found.start() + 20]!r}"


def poison(value, payload=PAYLOAD):
    """Every string inside ``value`` (keys too) with ``payload`` appended."""
    if isinstance(value, str):
        return value + payload
    if isinstance(value, list):
        return [poison(v, payload) for v in value]
    if isinstance(value, dict):
        return {(k + payload if k not in ("value", "reason", "kind", "duration_s") else k): poison(v, payload)
                for k, v in value.items()}
    return value


@pytest.fixture
def poisoned_report(tmp_path):
    data = json.loads(REAL.read_text(encoding="utf-8"))
    data["facts"] = {name: {**entry, "value": poison(entry["value"]),
                            "reason": PAYLOAD if entry.get("reason") else None}
                     for name, entry in data["facts"].items()}
    data["target"] = poison(data["target"])
    data["created"] = "2026-11-01" + PAYLOAD
    path = tmp_path / "poisoned.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_replayed_report_full_of_escape_sequences_prints_none_of_them(poisoned_report, tmp_path):
    text = invoke("check", "--replay", str(poisoned_report), "-v")
    assert text.exit_code in (0, 1)
    assert_clean(text.stdout)
    assert "\\x1b]52" in text.stdout  # shown, as an escape, so the reader sees what was there
    report = invoke("report", "--replay", str(poisoned_report))
    assert_clean(report.stdout)
    out = tmp_path / "report.md"
    assert invoke("report", "--replay", str(poisoned_report), "-o", str(out)).exit_code == 0
    assert_clean(out.read_text(encoding="utf-8"))
    as_json = invoke("check", "--replay", str(poisoned_report), "--json")
    assert_clean(as_json.stdout)
    json.loads(as_json.stdout)  # still one valid document


def test_markdown_table_rows_stay_rows_and_code_spans_stay_closed(poisoned_report):
    data = json.loads(poisoned_report.read_text(encoding="utf-8"))
    data["facts"]["target"]["value"]["executable"] = "/opt/``odd``|path\nwith newline"
    poisoned_report.write_text(json.dumps(data), encoding="utf-8")
    md = invoke("report", "--replay", str(poisoned_report)).stdout
    table = [line for line in md.splitlines() if line.startswith("| ")]
    header = table[0].count("|") - table[0].count("\\|")
    for row in table:
        assert row.count("|") - row.count("\\|") == header, row
    fence = md.split("```json", 1)[1]
    assert "```" not in fence.split("\n```\n", 1)[0]  # no value closes the facts fence early


def fake_python(tmp_path, script: str) -> Path:
    """An "interpreter" that is a shell script (a wrapper gone wrong)."""
    path = tmp_path / "bin" / "python"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_a_target_writing_escape_sequences_to_stderr_shows_them_escaped(tmp_path):
    python = fake_python(tmp_path, f"printf '%s\\n' '{PAYLOAD}' >&2\nexit 1\n")
    result = invoke("check", "--python", str(python), "--only", "python.*", "-v")
    assert result.exit_code == 1
    assert_clean(result.stdout)
    assert "\\u202eevil\\x07" in result.stdout  # its last line, shown with escapes


@pytest.mark.parametrize("argv", [["check", "--replay"], ["check", "--python"], ["report", "--replay"],
                                  ["bench", "--estimate-only", "--model"]])
def test_a_usage_error_naming_what_was_typed_shows_its_escapes(tmp_path, argv):
    """A path or name pasted from elsewhere reaches Click's own error line ("Invalid value for
    --replay: cannot read ..."): an OSC 52 clipboard write in it is shown escaped, exit 2."""
    name = str(tmp_path / f"x{PAYLOAD}")
    done = subprocess.run([sys.executable, "-m", "llmdoctor", *argv, name], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert_clean(done.stdout + done.stderr)
    assert "\\x1b]52;" in done.stderr


def test_a_target_printing_one_huge_line_is_judged_quickly(tmp_path):
    python = fake_python(tmp_path, "head -c 300000 /dev/zero | tr '\\0' A >&2\necho >&2\nexit 1\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--python", str(python), "--offline"],
                            capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60  # it used to run past 600 s in redaction
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) < 2000  # clipped, not 300,000 wide


def test_a_target_printing_200_mb_at_start_up_costs_no_memory(tmp_path):
    python = make_venv(tmp_path / "env")
    site = next((tmp_path / "env" / "lib").glob("python3.*/site-packages"))
    (site / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        block = "x" * (1 << 20)
        for _ in range(200):
            sys.stdout.write(block)
        sys.stdout.write("\\n")
    """))
    probe = textwrap.dedent(f"""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--python", {str(python)!r},
                               "--offline", "--only", "python.version"], capture_output=True, text=True)
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180)
    code, peak_kib = map(int, out.stdout.split())
    assert code in (0, 1)
    assert peak_kib < 400 * 1024, f"llmdoctor grew to {peak_kib // 1024} MiB"  # it grew to 3.1 GB


def test_a_replayed_megabyte_string_is_rendered_quickly_and_clipped(tmp_path):
    data = json.loads(REAL.read_text(encoding="utf-8"))
    data["facts"]["target"]["value"]["executable"] = "A" * 1_000_000
    data["facts"]["gpu"]["value"]["driver_version"] = "9" * 1_000_000
    path = tmp_path / "big.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--replay", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60  # it never finished
    assert result.returncode in (0, 1), result.stderr
    assert len(result.stdout) < 100_000


@pytest.mark.parametrize("text", ["A" * 80_000, "a://" * 250_000, "sk-" * 300_000, "?token=" * 150_000,
                                  "http://" + "x:" * 500_000, "hf_" * 300_000, ("a" * 40 + "://") * 25_000])
def test_redaction_is_linear(text):
    from llmdoctor.report.redact import redact

    started = time.monotonic()
    redact(text, {"HF_TOKEN": "hf_" + "s" * 34})
    assert time.monotonic() - started < 5  # 'A' * 80000 took 3.3 s, a megabyte never ended


def test_redaction_still_masks_what_it_masked():
    from llmdoctor.report.redact import redact

    secret = "hf_" + "a" * 34
    text = redact(f"proxy https://jane:s3cr3t@proxy.corp:3128/ and ?token=abc&x=1 and {secret} and "
                  "http://user@host/ plain", {"HTTPS_PROXY": "http://jane:s3cr3t@proxy.corp:3128"})
    assert "s3cr3t" not in text and "abc" not in text and secret not in text
    assert "https://***@proxy.corp:3128/" in text and "http://***@host/" in text


def test_a_report_nested_a_hundred_thousand_deep_is_a_usage_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"schema_version": 1, "facts": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = invoke("check", "--replay", str(path))
    assert result.exit_code == 2 and "nested too deeply" in result.output


def test_wrong_types_nested_inside_facts_are_findings_not_crashes(tmp_path):
    data = json.loads(REAL.read_text(encoding="utf-8"))
    deep: list = []
    for _ in range(900):
        deep = [deep]
    data["facts"]["target"]["value"]["python_version"] = deep
    data["facts"]["gpu"]["value"]["gpus"] = "not a list"
    data["facts"]["system"]["duration_s"] = "slow"
    data["facts"]["system"]["reason"] = {"a": [1, 2]}
    data["target"] = ["not", "an", "object"]
    path = tmp_path / "types.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    for args in (["check"], ["check", "--json"], ["report"]):
        result = invoke(*args, "--replay", str(path))
        assert result.exit_code in (0, 1), result.output
    text = invoke("check", "--replay", str(path), "-v").stdout
    assert "cannot read saved facts" in text


@pytest.mark.parametrize("version, message", [("1", "whole number"), (True, "whole number"), (0, "whole number"),
                                              (2.0, "whole number"), (99, "newer than this llmdoctor")])
def test_a_schema_version_of_the_wrong_kind_is_named_as_such(tmp_path, version, message):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": version, "facts": {}}))
    result = invoke("check", "--replay", str(path))
    assert result.exit_code == 2 and message in result.output


def test_a_malformed_hf_endpoint_is_a_finding_not_a_traceback():
    env = {**os.environ, "HF_ENDPOINT": "https://[::1", "LLMDOCTOR_NET_TARGETS": "", "LLMDOCTOR_OFFLINE": ""}
    result = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--only", "net.hub"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1 and "not a valid URL" in result.stdout


def test_cache_folder_names_with_escapes_and_newlines(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    for name in ("models--org--evil\x1b]52;c;cm0gLXJmIH4K\x07", "models--org--two\nlines", "datasets--a--\u202eb"):
        snap = cache / name / "snapshots" / ("c" * 40)
        snap.mkdir(parents=True)
        (cache / name / "blobs").mkdir()
        (cache / name / "blobs" / "b1").write_bytes(b"x" * 10)
        os.symlink("../../blobs/b1", snap / "f.bin")
    (cache / ("junk\x1b[2J")).mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    ls = invoke("cache", "ls", "--hub-only", "--revisions")
    assert ls.exit_code == 0
    assert_clean(ls.stdout)
    rows = [line for line in ls.stdout.splitlines() if line.startswith(("model/", "dataset/"))]
    assert len(rows) == 3  # the newline did not split a row in two
    assert_clean(invoke("cache", "ls", "--hub-only", "--json").stdout)
    prune = invoke("cache", "prune", "--detached")
    assert_clean(prune.stdout)
    checked = invoke("check", "--only", "cache.*", "-v")
    assert_clean(checked.stdout)


@pytest.mark.parametrize("entry", ["ints", "root folder", "dot-dot", "wrong arity"])
def test_a_tampered_listing_index_is_ignored(tmp_path, monkeypatch, entry):
    from llmdoctor.cache import index as linkindex
    from llmdoctor.cache.index import LinkIndex

    monkeypatch.setattr(linkindex, "fstype", lambda path: "ext4")
    cache = tmp_path / "hub"
    snap = cache / "models--org--m" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (cache / "models--org--m" / "blobs").mkdir()
    (cache / "models--org--m" / "blobs" / "b1").write_bytes(b"x" * 10)
    os.symlink("../../blobs/b1", snap / "f.bin")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    fresh = invoke("cache", "ls", "--hub-only", "--json", "--fresh").stdout
    index = LinkIndex.for_root(str(cache), os.environ, now=time.time() + 10)
    st = os.stat(snap)
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    index.new = {"ints": {str(snap): 7, "x": (1, 2)},
                 "root folder": {str(snap): (key, (1, "b1", ("/",), ()))},
                 "dot-dot": {str(snap): (key, (1, "b1", ("..", "../.."), ("../../../etc/passwd",)))},
                 "wrong arity": {str(snap): (key, (1, "b1"))}}[entry]
    assert index.save()
    from llmdoctor.cache import scan as hfcache

    visited = []
    real_read = hfcache._read_links
    monkeypatch.setattr(hfcache, "_read_links", lambda folder: visited.append(folder) or real_read(folder))
    listed = invoke("cache", "ls", "--hub-only", "--json")
    assert listed.exit_code == 0
    inside = str(cache) + os.sep
    assert all(os.path.normpath(v).startswith(inside) for v in visited), visited  # "/" walked the filesystem
    mine = json.loads(listed.stdout)["roots"][0]["repos"]
    assert [(r["size"], r["nb_files"]) for r in mine] == [(r["size"], r["nb_files"])
                                                          for r in json.loads(fresh)["roots"][0]["repos"]]


# --- files that are named pipes or devices, files too large, values out of range -------------

def _special(path: Path, kind: str) -> None:
    """``path`` made a named pipe (its open waits for a writer forever) or a link to /dev/zero
    (its read never ends)."""
    if kind == "pipe":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)


def test_a_named_pipe_in_place_of_the_listing_index_is_never_waited_on(tmp_path, monkeypatch):
    """cache ls reads its own index of a root from llmdoctor's cache folder: a named pipe there
    (a cache folder shared on purpose, or planted) is ignored, not waited on for a writer."""
    from llmdoctor.cache import index as linkindex
    from llmdoctor.cache.index import LinkIndex

    monkeypatch.setattr(linkindex, "fstype", lambda path: "ext4")
    cache = tmp_path / "hub"
    (cache / "models--org--m" / "snapshots" / ("c" * 40)).mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("LLMDOCTOR_CACHE_DIR", str(tmp_path / "ours"))
    file = LinkIndex.for_root(str(cache), os.environ).file
    os.makedirs(os.path.dirname(file))
    os.mkfifo(file)
    started = time.monotonic()
    assert LinkIndex.for_root(str(cache), os.environ).old == {}
    assert time.monotonic() - started < 5



@pytest.mark.parametrize("kind", ["pipe", "device"])
def test_a_model_folder_whose_files_are_pipes_or_devices_is_judged_quickly(tmp_path, kind):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "modeling_custom.py"):
        _special(folder / name, kind)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--offline", "--only", "model", "--model",
                             str(folder), "--json"], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 40  # the model probe waited out its 70 s; /dev/zero grew it to 22 GB
    facts = json.loads(result.stdout)["facts"]
    assert facts["model"]["kind"] is None, facts["model"]
    (info,) = facts["model"]["value"]["models"]
    assert "not a regular file" in info["config_error"]


@pytest.mark.parametrize("kind", ["pipe", "device"])
def test_config_files_named_by_variables_that_are_pipes_or_devices(tmp_path, kind):
    """PIP_CONFIG_FILE, NCCL_CONF_FILE and CONDARC name files llmdoctor reads: a pipe made its
    probe wait out its time limit (the node's facts were lost), /dev/zero grew it by gigabytes."""
    env = dict(os.environ)
    for var in ("PIP_CONFIG_FILE", "NCCL_CONF_FILE", "CONDARC"):
        _special(tmp_path / var, kind)
        env[var] = str(tmp_path / var)
    probe = textwrap.dedent("""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--offline", "--json"],
                              capture_output=True, text=True)
        sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) + "\\n" + done.stdout)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, env=env)
    peak_kib, doc = out.stdout.split("\n", 1)
    assert int(peak_kib) < 400 * 1024, f"llmdoctor grew to {int(peak_kib) // 1024} MiB"
    facts = json.loads(doc)["facts"]
    assert {name: e["kind"] for name, e in facts.items() if e["kind"]} == {}
    pip = facts["netconfig"]["value"]["pip"]
    assert any(p["path"] == env["PIP_CONFIG_FILE"] and "not a regular file" in (p["cert"] or "") for p in pip)


@pytest.mark.parametrize("config", [
    '{"hidden_size": 1e999, "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32000}',
    '{"hidden_size": 4096, "num_hidden_layers": -Infinity, "num_attention_heads": NaN, "vocab_size": 1e999}',
    '{"text_config": ' + "[" * 100_000 + "]" * 100_000 + "}",
], ids=["infinite", "nan", "nested"])
def test_a_config_json_with_values_out_of_range_is_named_not_a_crash(tmp_path, config):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    bench = invoke("bench", "--estimate-only", "--model", str(folder))
    assert bench.exit_code == 2 and "config.json" in bench.output, bench.output  # a usage error, not exit 3
    checked = invoke("check", "--offline", "--only", "model", "--model", str(folder), "-v")
    assert checked.exit_code in (0, 1) and "crashed" not in checked.stdout, checked.stdout


class _HostileHub:
    """A hub on 127.0.0.1 whose answers are valid JSON of the wrong range or depth: a file
    size of 1e999 (infinity to Python), a listing nested 100,000 deep."""

    ANSWERS = {
        "infinite": b'{"sha": "' + b"a" * 40 + b'", "siblings": [{"rfilename": "model.safetensors", "size": 1e999}]}',
        "nested": b"[" * 100_000 + b"]" * 100_000,
    }

    def __init__(self, shape: str):
        import http.server
        import threading

        body = self.ANSWERS[shape]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = body if "/api/models/" in self.path else b'{"model_type": "gpt2", "n_layer": 1e999}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("shape", ["infinite", "nested"])
def test_a_hub_answer_out_of_range_or_nested_deep_loses_no_model(tmp_path, shape):
    hub = _HostileHub(shape)
    try:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "NO_PROXY": "127.0.0.1", "HF_HOME": str(tmp_path / "hf"),
               "LLMDOCTOR_OFFLINE": "", "LLMDOCTOR_NET_TARGETS": ""}
        result = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--only", "model", "--model", "org/one",
                                 "--model", "org/two", "--json"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        hub.close()
    facts = json.loads(result.stdout)["facts"]
    assert facts["model"]["kind"] is None, facts["model"]  # the probe raised: every model's facts were lost
    models = facts["model"]["value"]["models"]
    assert [m["spec"] for m in models] == ["org/one", "org/two"] and all(m["hub"]["status"] == 200 for m in models)


CLUSTER = {"world_size": 2, "launcher": "srun", "master": "n1:29500", "timeout_s": 120, "rank0_host": "n1",
           "ranks": [{"rank": 0, "state": "reported", "host": "n1"}, {"rank": 1, "state": "never-joined"}]}


@pytest.mark.parametrize("damage", [
    {"facts": ["not", "an", "object"]},
    {"facts": {"cluster": "not an object"}},
    {"facts": {"cluster": {"value": {**CLUSTER, "ranks": []}}},
     "nodes": [{"rank": 0, "host": {"a": 1}, "state": ["x"], "report": None}, {"rank": 1, "host": ["n2"]}]},
    {"facts": {"cluster": {"value": {**CLUSTER, "ranks": []}}},
     "nodes": [{"rank": True, "host": "n1"}, {"rank": 1, "host": "n2" + PAYLOAD, "state": 7}]},
], ids=["facts-list", "cluster-text", "host-object", "rank-bool"])
def test_a_cluster_report_with_wrong_types_replays_or_is_a_usage_error(tmp_path, damage):
    """One bad node entry (a host that is an object, a state that is a list) must not stop the
    replay of the others; a cluster document without usable cluster facts is exit 2."""
    doc = {"schema_version": 1, "kind": "cluster", "facts": {"cluster": {"value": CLUSTER}},
           "nodes": [{"rank": 0, "host": "n1", "state": "reported", "report": None}], **damage}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(doc))
    for args in (["check"], ["check", "--json"], ["report"]):
        result = invoke(*args, "--replay", str(path))
        assert result.exit_code in (0, 1, 2), result.output  # it was 3: AttributeError, TypeError
        assert_clean(result.output)
