"""The thirteen situations observed when llmdoctor was tried as a new user would (issue 15),
one test each, named for it, each reproducing the situation and asserting the right verdict
and a runnable fix. GPU situations are facts-level (recorded shapes; no GPU here); the
Python and network ones run real venvs, the real huggingface_hub (0.36 with requests
2.27.1 and urllib3 1.25.11, wheels in tests/fixtures/wheels) and a fake hub on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

import scenarios as sc
from conftest import ROOT, make_venv, outer_site_packages, pyenv_python, site_packages
from factories import GiB, dist, facts, findings_of, imports, system, target
from fakehub import FakeHub
from llmdoctor.cli import cli
from llmdoctor.model import Status
from llmdoctor.probes.network import HubCall
from llmdoctor.probes.python_env import ImportResult
from llmdoctor.report.shells import fix_text

PY = "/home/u/.venvs/llm/bin/python"
RTX3070, RTX3090 = sc.GPUS[4], sc.GPUS[5]


def by_id(findings):
    out = {}
    for f in findings:
        out.setdefault(f.id, f)
    return out


def judged(**kw):
    s = sc.Scenario(**kw)
    got = sc.report(sc.facts_of(s))
    assert sc.violations(s) == []
    return by_id(got)


# --- 1, 2, 3: one compatibility model for drivers, torch builds and GPUs --------------

def test_1_cpu_torch_on_an_rtx_3070_with_driver_535_gets_published_builds_by_one_rule():
    """torch 2.13.0+cpu was told cu121 (which ends with torch 2.5); 2.9.0+cpu was told to upgrade
    the driver while torch.driver accepted CUDA 12.8 on the same driver."""
    got = judged(driver=("535.129.03", "12.2"), gpu=RTX3070, torch="2.13.0+cpu")
    assert fix_text(got["torch.cpu-only"]) == f"{PY} -m pip install --force-reinstall torch==2.13.0 --index-url " \
                                        "https://download.pytorch.org/whl/cu126"
    got = judged(driver=("535.129.03", "12.2"), gpu=RTX3070, torch="2.9.0+cpu")
    assert fix_text(got["torch.cpu-only"]).endswith("torch==2.9.0 --index-url https://download.pytorch.org/whl/cu128")
    assert ("torch-build-runs:2.9.0+cu128", "yes") in got["torch.cpu-only"].claims
    got = judged(driver=("535.129.03", "12.2"), gpu=RTX3070, torch="2.9.0+cu128")
    assert got["torch.driver"].status is Status.OK and "minor-version compatibility" in got["torch.driver"].detail


def test_2_flash_attn_on_driver_460_names_the_driver_as_the_blocker_first():
    """RTX 3090, driver 460.91.03 (CUDA 11.2), torch 2.0.1+cu117, nvcc 11.2: the fixes were
    `fix --torch` and "install CUDA 12.0", both impossible before a driver >= 525.60.13."""
    got = judged(driver=("460.91.03", "11.2"), gpu=RTX3090, torch="2.0.1+cu117", nvcc="11.2.152")
    for fid in ("build.flash-attn-old-stack",):
        fix = fix_text(got[fid])
        assert fix.startswith("upgrade the NVIDIA driver to 525.60.13 or newer, then: "), fix
        assert "torch==2.2.2 --index-url https://download.pytorch.org/whl/cu121, then: " in fix
        assert fix.endswith("-m pip install flash-attn==2.7.4.post1 --no-build-isolation")
    install = [f for f in sc.report(sc.facts_of(sc.Scenario(driver=("460.91.03", "11.2"), gpu=RTX3090,
                                                             torch="2.0.1+cu117", nvcc="11.2.152")))
               if f.check == "build.flash-attn-install"]
    (f,) = install
    assert f.id == "build.flash-attn-old-stack" and "first upgrade the NVIDIA driver to 525.60.13" in f.title
    assert fix_text(f).startswith("upgrade the NVIDIA driver to 525.60.13 or newer")
    assert "install CUDA 12.0" not in fix_text(f)


def test_3_bitsandbytes_requiring_a_newer_torch_on_driver_470_gets_a_torch_that_driver_runs():
    """bitsandbytes 0.50.2 with torch 2.0.1+cu117 on driver 470: the fix was
    `pip install 'torch<3,>=2.4'`, PyPI's CUDA 12 build, which driver 470 cannot run."""
    got = judged(driver=("470.256.02", "11.4"), gpu=RTX3090, torch="2.0.1+cu117",
                 packages=(("bitsandbytes", "0.50.2"),), requires={"bitsandbytes": ("torch<3,>=2.4",)})
    f = got["python.dependency-conflict"]
    assert "bitsandbytes 0.50.2 needs <3,>=2.4" in f.title
    assert fix_text(f) == f"{PY} -m pip install --force-reinstall torch==2.4.1 --index-url https://download.pytorch.org/whl/cu118"


# --- 7: compile RAM per build kind ---------------------------------------------------

def test_7_a_deepspeed_build_is_judged_by_its_own_ram_per_job_and_offload_ram_is_named():
    """DeepSpeed on 16 CPUs: flash-attn's 5 GB per job was applied to it, and `fix --max-jobs`
    was offered for a -9 kill that host RAM for ZeRO offload caused."""
    from checks_under_test import build

    f_ = facts(cuda=sc.toolkit(("12.8.93", "/usr/local/cuda-12.8/bin/nvcc", "PATH")),
               system=system(ram_total_bytes=64 * GiB, ram_available_bytes=58 * GiB, cpu_usable=16),
               target=target(distributions=(dist("deepspeed", "0.19.8"),)),
               torch=sc.torch_facts(version="2.13.0+cpu", build="cpu", cuda=None))
    (ram,) = findings_of(build.compile_ram_check, f_)
    assert ram.status is Status.OK and ram.title.startswith("DeepSpeed ops: 18 compile jobs at once (ninja's default")
    ds = by_id(findings_of(build.deepspeed_check, f_))
    offload = ds["build.deepspeed-offload-ram"]
    assert offload.status is Status.WARN and "ZeRO-2 CPU offload of a 6B model" in offload.title
    assert "fewer compile jobs do not help there" in offload.detail and "max-jobs" not in (fix_text(offload) or "")


# --- 8, 13: wording that must match what happens ----------------------------------------

def test_8_the_urllib3_pin_without_a_proxy_gets_no_proxy_step():
    from checks_under_test import stack

    t = target(distributions=(dist("requests", "2.27.1"), dist("urllib3", "1.25.11")))
    f = by_id(findings_of(stack.known_bad_check, facts(target=t)))["python.urllib3-proxy-pin"]
    assert "HTTPS_PROXY" not in fix_text(f) and "'verification off' recipe" in f.title


def test_13_ipywidgets_missing_is_a_text_bar_and_a_warning_not_a_failure():
    from checks_under_test import stack

    t = target(distributions=(dist("ipykernel", "6.29.5"), dist("tqdm", "4.67.1")))
    f = by_id(findings_of(stack.known_bad_check, facts(target=t)))["python.ipywidgets-missing"]
    assert f.status is Status.INFO and "fall back to plain text with a TqdmWarning" in f.title and " fail with" not in f.title


def test_13_regex_shows_its_distribution_version_not_its_module_version(venv):
    """A real venv with this environment's regex: its __version__ is 2.5.x, pip shows 2026.x."""
    from importlib.metadata import version

    py = venv()
    outer_site_packages(py)
    result = CliRunner().invoke(cli, ["check", "--json", "--python", str(py), "--only", "python.imports"],
                                catch_exceptions=False)
    (ok,) = [f for f in json.loads(result.stdout)["findings"] if f["id"] == "python.imports"]
    assert f"regex {version('regex')}" in ok["title"]


# --- 9: extension modules built for another Python ----------------------------------

def test_9_a_site_packages_copied_from_python_3_10_into_3_11_names_the_cause(venv, tmp_path):
    """A compiled extension built by Python 3.10 in a 3.11 venv: the title was numpy's last line,
    "your python interpreter from there."; the cause is extension modules for another Python."""
    py310 = pyenv_python("3.10")
    if py310 is None or not shutil.which("gcc"):
        pytest.skip("needs pyenv's Python 3.10 and gcc to build a 3.10 extension")
    include = subprocess.run([py310, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    src = tmp_path / "ext.c"
    src.write_text('#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "_rust"};\n'
                   'PyMODINIT_FUNC PyInit__rust(void) { return PyModule_Create(&m); }\n')
    py = venv()
    site = site_packages(py)
    pkg = site / "safetensors"
    pkg.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", f"-I{include}", str(src), "-o",
                    str(pkg / "_rust.cpython-310-x86_64-linux-gnu.so")], check=True, capture_output=True)
    (pkg / "__init__.py").write_text("from ._rust import *\n")
    info = site / "safetensors-0.4.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: safetensors\nVersion: 0.4.5\n")
    result = CliRunner().invoke(cli, ["check", "--json", "--python", str(py), "--only", "python.imports"],
                                catch_exceptions=False)
    (f,) = [f for f in json.loads(result.stdout)["findings"] if f["id"].startswith("python.import-")]
    assert f["id"] == "python.import-other-python" and f["status"] == "fail"
    assert "built for Python 3.10, not for Python 3.11" in f["title"]
    assert "safetensors/_rust.cpython-310-x86_64-linux-gnu.so" in f["detail"]
    assert f["fix"].startswith(f"{py} -m pip install --force-reinstall --no-deps safetensors==0.4.5")


# --- 10: selection by the names users see ----------------------------------------------

def test_10_only_network_star_from_the_help_selects_the_network_checks():
    run = CliRunner().invoke(cli, ["check", "--json", "--offline", "--only", "network.*"], catch_exceptions=False)
    ids = {f["check"] for f in json.loads(run.stdout)["findings"]}
    assert {"network.insecure", "network.proxy", "network.hub", "network.hub-client"} <= ids
    assert all(i.startswith("network.") for i in ids)
    for pattern in ("network", "net.*", "net.hub", "network.hub"):
        run = CliRunner().invoke(cli, ["check", "--list", "--only", pattern], catch_exceptions=False)
        assert run.exit_code == 0 and "network.hub" in run.output, pattern
    run = CliRunner().invoke(cli, ["check", "--only", "netwerk.*"])
    assert run.exit_code == 2 and "matches no check" in run.output and "network" in run.output
    run = CliRunner().invoke(cli, ["check", "--skip", "gpu.memroy"])
    assert run.exit_code == 2
    from checks_under_test import build  # noqa: F401 - every built-in check id starts with its category
    from llmdoctor.checks import builtin_checks

    assert all(c.id.startswith(c.category + ".") for c in builtin_checks())


def test_10_old_ids_are_accepted_by_replay_selection():
    h100 = ROOT / "tests" / "fixtures" / "real" / "h100" / "check.json"
    run = CliRunner().invoke(cli, ["check", "--json", "--replay", str(h100), "--only", "net.insecure,hub.remote-code"],
                             catch_exceptions=False)
    checks = {f["check"] for f in json.loads(run.stdout)["findings"]}
    assert checks <= {"network.insecure", "cache.remote-code"} and checks


# --- pure checks: the same verdicts on any day -----------------------------------------

def test_replay_judges_dates_as_of_the_report_not_today(monkeypatch):
    """python.version read date.today(); a replay now uses the clock fact, or the report's own
    creation date for reports made before it existed."""
    import datetime

    h100 = json.loads((ROOT / "tests" / "fixtures" / "real" / "h100" / "check.json").read_text())
    assert "clock" not in h100["facts"]
    from llmdoctor.check.flow import replay

    class Later(datetime.date):
        @classmethod
        def today(cls):
            return cls(2031, 1, 1)

    first = [f for f in replay(h100, only=["python.version"]).findings]
    monkeypatch.setattr(datetime, "date", Later)
    again = [f for f in replay(h100, only=["python.version"]).findings]
    assert [(f.status, f.title) for f in first] == [(f.status, f.title) for f in again]
    assert first[0].status is Status.OK  # Python 3.12 was supported on the day the H100 report was made


# --- 4, 5, 12: TLS verdicts against a fake hub, with the real huggingface_hub 0.36 -----

@pytest.fixture(scope="module")
def hub036(tmp_path_factory):
    """A venv with huggingface_hub 0.36.0, requests 2.27.1 and urllib3 1.25.11 installed from the
    wheels in tests/fixtures (no network), the rest from this test environment."""
    py = make_venv(tmp_path_factory.mktemp("hub036") / "venv")
    wheels = [*sorted((ROOT / "tests" / "fixtures" / "wheels").glob("*.whl")),
              *sorted((ROOT / "tests" / "fixtures" / "wheels" / "hub036").glob("*.whl"))]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--target", str(site_packages(py)), *map(str, wheels)], check=True, capture_output=True,
                   timeout=300)
    outer_site_packages(py)  # filelock, fsspec, tqdm, ...: after the venv's own, which win
    return py


def check(*args) -> dict:
    result = CliRunner().invoke(cli, ["check", "--json", *args], catch_exceptions=False)
    return {f["id"]: f for f in json.loads(result.stdout)["findings"]}


def test_4_hub_client_through_an_empty_curl_ca_bundle_is_not_verified(online, ca, hub036, monkeypatch):
    """huggingface_hub 0.36 on requests 2.27.1, CURL_CA_BUNDLE='' exported, TLS intercepted by an
    untrusted CA: the call works only because verification is off, and was reported OK
    "with verification on" next to the interception finding."""
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("CURL_CA_BUNDLE", "")
        got = check("--python", str(hub036), "--only", "network")
    assert got["network.hub-untrusted"]["status"] == "fail"
    client = got["network.hub-client-unverified"]
    assert client["status"] == "fail" and "only because certificate verification is off" in client["title"]
    assert client["claims"] == {"tls-verification:requests": "off"}
    assert got["network.empty-ca-bundle"]["status"] == "fail"
    assert got["network.empty-ca-bundle"]["claims"] == {"tls-verification:requests": "off"}
    assert not any(f["status"] == "ok" and "verification" in f["title"] for f in got.values())


def test_5_a_real_requests_ca_bundle_wins_over_an_empty_curl_ca_bundle(online, ca, hub036, monkeypatch, tmp_path):
    """REQUESTS_CA_BUNDLE names the CA, CURL_CA_BUNDLE='': requests reads REQUESTS_CA_BUNDLE first,
    verification is on, and the empty variable was called a failure."""
    bundle = tmp_path / "corp.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("CURL_CA_BUNDLE", "")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        got = check("--python", str(hub036), "--only", "network")
    client = got["network.hub-client"]
    assert client["status"] == "ok" and f"verification on ({bundle})" in client["title"]
    empty = got["network.empty-ca-bundle"]
    assert empty["status"] == "info" and "requests reads REQUESTS_CA_BUNDLE first" in empty["title"]
    assert empty["claims"] == client["claims"] == {"tls-verification:requests": "on"}


def test_5_a_ca_trusted_through_requests_ca_bundle_alone_is_not_a_failure_of_the_hub(online, ca, hub036, monkeypatch,
                                                                                     tmp_path):
    """The company CA is in REQUESTS_CA_BUNDLE only: huggingface_hub 0.36 (requests) downloads with
    verification on, and network.hub failed in the same report with "intercepted" and a fix, as
    if downloads were broken. What is true: TLS is intercepted, hub downloads trust that CA, this
    machine's own store (Python's ssl, curl, git) does not."""
    bundle = tmp_path / "corp.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        got = check("--python", str(hub036), "--only", "network")
    assert got["network.hub-client"]["status"] == "ok"
    hub_f = got["network.hub-untrusted"]
    assert hub_f["status"] == "warn" and "huggingface_hub in the target trusts it" in hub_f["title"], hub_f
    assert "REQUESTS_CA_BUNDLE" in hub_f["title"] and hub_f["fix"].startswith("llmdoctor fix --ssl")
    assert not [f for f in got.values() if f["status"] == "fail"], got


def test_5_requests_ca_bundle_naming_a_missing_file_is_named_as_the_hub_clients_failure(online, ca, hub036, monkeypatch,
                                                                                       tmp_path):
    """REQUESTS_CA_BUNDLE names a file that is gone, SSL_CERT_FILE holds the CA: network.hub is OK, and
    huggingface_hub 0.36 fails with "Could not find a suitable TLS CA certificate bundle, invalid
    path"; its fix said to read network.hub, which names the failing phase, and network.hub was OK."""
    bundle = tmp_path / "corp.pem"
    ca.cert_pem.write_to_path(str(bundle))
    gone = tmp_path / "moved-away.pem"
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(gone))
        got = check("--python", str(hub036), "--only", "network")
    assert got["network.hub"]["status"] == "ok"
    f = got["network.hub-client-ca-file"]
    assert f["status"] == "fail" and f"REQUESTS_CA_BUNDLE={gone}" in f["title"] and "does not exist" in f["title"]
    assert f["fix"].startswith("unset REQUESTS_CA_BUNDLE") and "network.hub" not in f["fix"]


def test_12_the_target_hub_call_keeps_the_phase_deadline_and_names_tls_or_dns(online, ca, hub036, monkeypatch):
    """huggingface_hub 0.36 retries a failed HEAD for 23 s and more: the call "did not finish in
    time" under TLS interception and under a DNS failure alike."""
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        started = time.monotonic()
        got = check("--python", str(hub036), "--only", "network.hub-client")
        assert time.monotonic() - started < 20
    tls = got["network.hub-client-tls"]
    assert tls["status"] == "fail" and tls["fix"].startswith("llmdoctor fix --ssl")
    monkeypatch.setenv("HF_ENDPOINT", "https://nonexistent-host.invalid")
    started = time.monotonic()
    got = check("--python", str(hub036), "--only", "network.hub-client")
    assert time.monotonic() - started < 20
    f = next(f for f in got.values() if f["check"] == "network.hub-client")
    assert f["id"] in ("network.hub-client-dns", "network.hub-client") or "resolve" in f["title"], f
    assert "did not finish" not in f["title"]


# --- 11: fix --ssl proves trust in the user's environment -------------------------------

def fix(*args):
    return CliRunner().invoke(cli, ["fix", *args], catch_exceptions=False)


def test_11_fix_ssl_verifies_with_any_answer_over_verified_tls_a_404_included(online, ca, venv, monkeypatch,
                                                                                tmp_path):
    """A hub or mirror without openai-community/gpt2: the 404 came over verified TLS, which is
    what the fix had to achieve, and was reported as "Verification FAILED"."""
    py = venv()
    outer_site_packages(py)
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    with FakeHub(repos={}, cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        applied = fix("--ssl", "--python", str(py), "--ca-file", str(ca_pem), "--yes")
    assert applied.exit_code == 0, applied.output
    assert "Verified: " in applied.output and "HTTP 404 for openai-community/gpt2/config.json" in applied.output
    assert "certificate verification on" in applied.output and "is trusted" in applied.output


def test_11_a_preset_ssl_cert_file_no_longer_defeats_the_fix(online, ca, venv, monkeypatch, tmp_path):
    """The machine presets SSL_CERT_FILE to the OS bundle: the hook lost to it, the fix's own
    check ran without it and printed "Verified", and the user's next download failed."""
    py = venv()
    outer_site_packages(py)
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    os_bundle = tmp_path / "os-bundle.pem"
    other = trustme.CA(organization_name="Some Other Root")
    other.cert_pem.write_to_path(str(os_bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(os_bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(os_bundle))
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        applied = fix("--ssl", "--python", str(py), "--ca-file", str(ca_pem), "--yes")
        assert applied.exit_code == 0, applied.output
        assert "the hook replaces exactly that value" in applied.output and "Verified: " in applied.output
        # the user's next download, in the same environment, SSL_CERT_FILE still exported
        code = ("from huggingface_hub import hf_hub_download as d; import os; "
                "print(d('openai-community/gpt2', 'config.json')); print(os.environ['SSL_CERT_FILE'])")
        env = {**os.environ, "HF_HOME": str(tmp_path / "hf-next")}
        done = subprocess.run([str(py), "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    bundle = site_packages(py) / "llmdoctor-ca-bundle.pem"
    assert done.stdout.split()[-1] == str(bundle)
    text = bundle.read_text()
    assert other.cert_pem.bytes().decode().strip() in text  # what the preset named stays trusted
    # a value the user sets later still wins
    env["SSL_CERT_FILE"] = str(ca_pem)
    out = subprocess.run([str(py), "-c", "import os; print(os.environ['SSL_CERT_FILE'])"], env=env,
                         capture_output=True, text=True, timeout=60).stdout.strip()
    assert out == str(ca_pem)


# --- 13: smaller wording -----------------------------------------------------------------

def test_13_fix_mirror_over_plain_http_does_not_claim_certificate_verification(online, venv, monkeypatch):
    py = venv()
    outer_site_packages(py)
    with FakeHub() as mirror:
        applied = fix("--mirror", mirror.url, "--python", str(py), "--yes")
    assert applied.exit_code == 0, applied.output
    assert "over plain HTTP (no TLS)" in applied.output and "certificate verification on" not in applied.output


def test_13_fix_ssl_dry_run_does_not_say_removed(online, ca, venv, monkeypatch, tmp_path):
    py = venv()
    outer_site_packages(py)
    (online / ".bashrc").write_text("export CURL_CA_BUNDLE=''\n")
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        dry = fix("--ssl", "--python", str(py), "--ca-file", str(ca_pem), "--dry-run")
    assert dry.exit_code == 0 and "Dry run: nothing was changed" in dry.output
    assert "removed" not in dry.output and "applying this plan comments it out" in dry.output
    assert (online / ".bashrc").read_text() == "export CURL_CA_BUNDLE=''\n"


def test_13_a_local_dir_download_leaves_no_56_years_ago(online, venv, monkeypatch, tmp_path):
    """snapshot_download(local_dir=...) leaves a models--*/refs folder without snapshots in the
    hub cache: `cache ls` showed it "accessed 56 years ago" (time 0)."""
    py = venv()
    outer_site_packages(py)
    with FakeHub() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url}
        code = f"from huggingface_hub import snapshot_download as s; s('openai-community/gpt2', local_dir={str(tmp_path / 'local')!r})"
        done = subprocess.run([str(py), "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = CliRunner().invoke(cli, ["cache", "ls", "--hub-only"], catch_exceptions=False).output
    assert "openai-community/gpt2" in out and "years ago" not in out and "unknown" in out
