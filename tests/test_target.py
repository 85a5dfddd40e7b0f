"""The target environment: chosen right, probed in its own interpreter (3.8+), and a
target that crashes or hangs gives a finding, never a crash or hang of llmdoctor."""

import json
import os
import signal
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import install_fake_dist, pyenv_python, site_packages
from llmdoctor.cli import cli
from llmdoctor.probes import ProbeContext, ProbeFailed
from llmdoctor.probes.python_env import probe_imports, probe_target
from llmdoctor.target import TargetError, resolve_target


def run_check(*args, env=None):
    result = CliRunner().invoke(cli, ["check", *args], env=env, catch_exceptions=False)
    return result


def test_active_virtual_env_is_the_default_target(venv):
    py = venv()
    t = resolve_target(environ={"VIRTUAL_ENV": str(py.parent.parent)})
    assert (t.kind, t.python) == ("venv", str(py))


def test_conda_prefix_is_used_when_no_venv_is_active(venv):
    py = venv()
    t = resolve_target(environ={"CONDA_PREFIX": str(py.parent.parent)})
    assert t.kind == "conda"


def test_a_stale_virtual_env_falls_back_with_a_note(tmp_path):
    t = resolve_target(environ={"VIRTUAL_ENV": str(tmp_path / "gone")})
    assert t.kind == "interpreter" and t.python == sys.executable and "gone" in t.note


def test_python_option_takes_an_interpreter_or_an_env_folder(venv, tmp_path):
    py = venv()
    assert resolve_target(str(py.parent.parent)).python == str(py)
    with pytest.raises(TargetError):
        resolve_target(str(tmp_path / "nope"))
    result = run_check("--python", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no such file" in result.output


@pytest.mark.parametrize("version", ["3.8", "3.12"])
def test_probe_script_runs_on_old_and_new_pythons(version, tmp_path):
    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine")
    from conftest import make_venv

    py = make_venv(tmp_path / f"v{version}", python)
    install_fake_dist(site_packages(py), "transformers", "4.40.0", ["tokenizers<0.20,>=0.19"])
    install_fake_dist(site_packages(py), "tokenizers", "0.21.0")
    facts = probe_target(ProbeContext(target=resolve_target(str(py)), environ=dict(os.environ)))
    assert facts.python_version.startswith(version + ".")
    assert facts.in_venv and facts.markers["python_version"] == version
    assert {d.name for d in facts.distributions} >= {"transformers", "tokenizers"}
    result = run_check("--python", str(py), "--only", "python.dependencies", "--json")
    (finding,) = json.loads(result.output)["findings"]
    assert finding["id"] == "python.dependency-conflict"
    assert finding["fix"] == f"{py} -m pip install 'tokenizers<0.20,>=0.19'"
    assert result.exit_code == 1


KILL_SELF = """
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_package_that_kills_the_interpreter_on_import_is_named(venv):
    py = venv()
    site = site_packages(py)
    install_fake_dist(site, "numpy", "1.26.4", module="numpy", code=KILL_SELF)
    install_fake_dist(site, "PyYAML", "6.0.1", module="yaml", code="__version__ = '6.0.1'\n")
    facts = probe_imports(ProbeContext(target=resolve_target(str(py)), environ=dict(os.environ)))
    got = {r.module: r for r in facts.results}
    crash = got["numpy"].failure  # the probe records how it died; the check words it
    assert got["numpy"].status == "crash" and got["numpy"].message is None
    assert (crash.kind, crash.step, crash.module, crash.exit_code) == ("signal", "import", "numpy", -signal.SIGKILL)
    assert got["yaml"].status == "ok" and got["yaml"].version == "6.0.1"  # retried after the crash
    result = run_check("--python", str(py), "--only", "python.imports", "--json")
    (finding,) = json.loads(result.output)["findings"]
    assert finding["id"] == "python.import-crash" and result.exit_code == 1
    assert finding["title"] == ("`import numpy` kills the interpreter: the target interpreter was killed by SIGKILL "
                                "during `import numpy`")


def test_an_interpreter_that_dies_at_start_up_is_a_failure_finding(venv):
    py = venv()
    (site_packages(py) / "evil.pth").write_text("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)\n")
    with pytest.raises(ProbeFailed) as info:
        probe_target(ProbeContext(target=resolve_target(str(py)), environ=dict(os.environ)))
    failure = info.value.failure
    assert info.value.kind == "crash" and not info.value.reason  # data: the runner words it
    assert (failure.kind, failure.step, failure.exit_code) == ("signal", "env-scan", -signal.SIGSEGV)
    result = run_check("--python", str(py), "--json", "--offline")
    report = json.loads(result.output)
    by_id = {f["id"]: f for f in report["findings"]}
    assert by_id["probe.target.crash"]["status"] == "fail"
    assert "SIGSEGV" in by_id["probe.target.crash"]["title"]
    assert by_id["python.dependencies"]["status"] == "skip"
    assert by_id["system.memory"]["status"] in ("ok", "warn")  # the rest still ran
    assert result.exit_code == 1


def test_an_interpreter_that_hangs_at_start_up_times_out(venv):
    py = venv()
    (site_packages(py) / "hang.pth").write_text("import time; time.sleep(3600)\n")
    started = time.perf_counter()
    result = run_check("--python", str(py), "--json", "--only", "python.version")
    elapsed = time.perf_counter() - started
    report = json.loads(result.output)
    by_id = {f["id"]: f for f in report["findings"]}
    assert "probe.target.timeout" in by_id and elapsed < 25
    assert by_id["probe.target.timeout"]["title"] == ("Probe 'target': the target interpreter did not finish start-up "
                                                      "and the environment scan within 18 s")


def test_start_up_code_that_prints_does_not_confuse_the_probe(venv):
    py = venv()
    (site_packages(py) / "noisy.pth").write_text("import sys; sys.stdout.write('{hello from a .pth\\n')\n")
    result = run_check("--python", str(py), "--json", "--only", "python.version")
    (finding,) = json.loads(result.output)["findings"]
    assert finding["id"] == "python.version" and finding["status"] in ("ok", "warn")


def test_a_target_that_exits_silently_is_a_finding_not_a_traceback(venv):
    py = venv()
    (site_packages(py) / "quit.pth").write_text("import os; os._exit(0)\n")
    result = run_check("--python", str(py), "--json", "--only", "python.version")
    by_id = {f["id"]: f for f in json.loads(result.output)["findings"]}
    assert by_id["probe.target.crash"]["title"].endswith("without printing the probe's result")


def test_a_real_venv_with_the_folk_ssl_pins(venv, tmp_path):
    """requests 2.27.1 and urllib3 1.25.11 really installed by pip (wheels shipped in
    tests/fixtures/wheels, so no network): the findings name both pins, and pip check
    finds what --no-deps left out."""
    from conftest import ROOT, outer_site_packages

    py = venv()
    outer_site_packages(py)
    wheels = sorted((ROOT / "tests" / "fixtures" / "wheels").glob("*.whl"))
    import subprocess

    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--target", str(site_packages(py)), *map(str, wheels)],
                   check=True, capture_output=True, timeout=300)
    (site_packages(py) / "zz_outer.pth").unlink()  # the target is the bare venv plus the pins
    result = run_check("--python", str(py), "--only", "python.known-bad,python.dependencies", "--json")
    by_id = {}
    for f in json.loads(result.output)["findings"]:
        by_id.setdefault(f["id"], []).append(f)
    assert "2.27.1" in by_id["python.requests-insecure-pin"][0]["title"]
    assert "1.25.11" in by_id["python.urllib3-proxy-pin"][0]["title"]
    missing = {f["title"].split()[0] for f in by_id["python.dependency-missing"]}
    assert {"certifi", "idna"} <= missing
