"""bitsandbytes judged without importing it (and torch's compiler stack with it) where loading
its native library decides the same thing: real venvs holding bitsandbytes' real CPU library
(or a broken one built here), and a torch whose import would fail loudly if attempted."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import install_fake_dist, site_packages
from llmdoctor.cli import cli

REAL_BNB = Path(list(importlib.util.find_spec("bitsandbytes").submodule_search_locations)[0])
TRAP = "raise SystemExit('this package was imported')\n"


def driver_here() -> bool:
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            pass
    return Path("/proc/driver/nvidia/version").exists()


def bnb_venv(venv, bnb_version="0.50.2", torch_version="2.13.0+cpu", cuda=None, library="real"):
    """A venv with a torch (only its version.py is real) and a bitsandbytes whose Python code
    must never run, holding a native CPU library: bitsandbytes' own, a broken one, or none."""
    py = venv()
    site = site_packages(py)
    install_fake_dist(site, "torch", torch_version.split("+")[0], module="torch", code=TRAP)
    (site / "torch" / "version.py").write_text(f"__version__ = '{torch_version}'\ncuda = {cuda!r}\nhip = None\n")
    install_fake_dist(site, "bitsandbytes", bnb_version, module="bitsandbytes", code=TRAP)
    lib = site / "bitsandbytes" / "libbitsandbytes_cpu.so"
    if library == "real":
        shutil.copy(REAL_BNB / "libbitsandbytes_cpu.so", lib)
    elif library == "broken":
        lib.write_bytes(b"\x7fELF not really a library")
    return py


def extension_findings(py) -> tuple[dict, dict]:
    result = CliRunner().invoke(cli, ["check", "--json", "--offline", "--python", str(py), "--only",
                                      "build.extension-imports"], catch_exceptions=False)
    report = json.loads(result.stdout)
    bnb = next(r for r in report["facts"]["target.extensions"]["value"]["results"] if r["module"] == "bitsandbytes")
    return {f["id"]: f for f in report["findings"]}, bnb


def test_a_cpu_torch_judges_bitsandbytes_by_its_native_library_without_importing_it(venv):
    findings, bnb = extension_findings(bnb_venv(venv))
    assert bnb["method"] == "native" and bnb["status"] == "ok", bnb  # the trap in __init__.py never ran
    assert "torch 2.13.0+cpu is a CPU build" in bnb["why"]
    (ok,) = [f for f in findings.values() if f["status"] == "ok"]
    assert ok["title"] == "bitsandbytes 0.50.2: its native library libbitsandbytes_cpu.so loads"


@pytest.mark.skipif(driver_here(), reason="an NVIDIA driver is installed: torch could see a GPU, so it is imported")
def test_a_cuda_torch_without_a_driver_loads_the_cpu_library_too(venv):
    _, bnb = extension_findings(bnb_venv(venv, torch_version="2.9.0+cu128", cuda="12.8"))
    assert bnb["method"] == "native" and "no NVIDIA driver is installed" in bnb["why"]


def test_a_broken_native_library_is_a_failure_naming_it(venv):
    findings, bnb = extension_findings(bnb_venv(venv, library="broken"))
    assert bnb["method"] == "native" and bnb["status"] == "error"
    (fail,) = [f for f in findings.values() if f["status"] == "fail"]
    assert fail["title"].startswith("bitsandbytes's native library libbitsandbytes_cpu.so does not load")


def test_a_missing_native_library_is_a_failure(venv):
    findings, bnb = extension_findings(bnb_venv(venv, library=None))
    assert bnb["status"] == "error" and "No such file" in bnb["message"]
    assert any(f["status"] == "fail" for f in findings.values())


def test_an_older_bitsandbytes_is_imported(venv):
    """Before 0.46 there is no CPU backend to predict: the import decides (here the trap fires)."""
    _, bnb = extension_findings(bnb_venv(venv, bnb_version="0.45.5"))
    assert bnb["method"] == "import" and bnb["status"] == "error" and "was imported" in bnb["message"]


def test_the_target_probe_mode_stays_python_38_compatible(tmp_path):
    from conftest import pyenv_python

    py38 = pyenv_python("3.8")
    if py38 is None:
        pytest.skip("no Python 3.8 here")
    script = Path(__file__).resolve().parent.parent / "llmdoctor" / "probes" / "target" / "llmdoctor_target_probe.py"
    done = subprocess.run([py38, str(script), "extensions", "bitsandbytes"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
