"""`pip install .` and `pip install -e .` both work from a fresh venv, ship the
built-in checks as llmdoctor.checks (no top-level `checks` in site-packages), and
never pull torch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_venv, outer_site_packages, site_packages

def copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv*", "*.egg-info", "build", "__pycache__", ".pytest_cache",
                                    ".hypothesis", "benchmark/results")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_install_from_a_fresh_venv(tmp_path, editable):
    src = copy_project(tmp_path / "src")
    py = make_venv(tmp_path / "v")
    outer_site_packages(py)  # pip, the build backend and the dependencies, without any network
    args = [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    args += ["-e", str(src)] if editable else [str(src)]
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=300)
    site = site_packages(py)
    if not editable:
        assert (site / "llmdoctor" / "checks" / "system.py").is_file()
        assert (site / "llmdoctor" / "checks" / "data" / "system_limits.json").is_file()
        assert (site / "llmdoctor" / "probes" / "target" / "llmdoctor_target_probe.py").is_file()
    for generic in ("checks", "fixes", "benchmark"):
        assert not (site / generic).exists()
    where = subprocess.run([str(py), "-c", "import llmdoctor.checks as c; print(c.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert where.startswith(str(src if editable else site))
    out = subprocess.run([str(py), "-m", "llmdoctor", "check", "--json", "--offline", "--python", str(py)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    data = json.loads(out.stdout)
    assert not [f for f in data["findings"] if f["status"] == "error"], out.stdout
    assert data["target"]["executable"] == str(py)


def test_torch_and_the_ml_stack_are_not_core_dependencies():
    """Read from the installed distribution's own metadata: what pip would install."""
    from importlib import metadata

    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in metadata.requires("llmdoctor")]
    core = [r for r in reqs if r.marker is None]
    bench = [r.name for r in reqs if r.marker is not None and r.marker.evaluate({"extra": "bench"})]
    core_names = {r.name.lower() for r in core}
    for heavy in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        assert heavy not in core_names and heavy in bench
    assert "nvidia-ml-py" in core_names and "pynvml" not in core_names
    # broad lower bounds only: never an upper bound or a pin that could move what transformers pins
    for r in core:
        assert all(spec.operator == ">=" for spec in r.specifier), r


def test_python_m_llmdoctor_from_a_source_checkout_runs_the_builtin_checks(tmp_path):
    """`python3 -m llmdoctor` in a clone's root imports the source folder, not the install:
    the built-in checks (mapped from checks/ at install time) must still be found."""
    src = copy_project(tmp_path / "src")
    out = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--list", "--json"], cwd=src,
                         capture_output=True, text=True, timeout=60)
    data = json.loads(out.stdout)
    assert data["plugin_errors"] == []
    assert {"python.dependencies", "system.shm", "gpu.presence"} <= {c["id"] for c in data["checks"]}
    where = subprocess.run([sys.executable, "-c", "import llmdoctor.checks as c; print(c.__file__)"], cwd=src,
                           capture_output=True, text=True, timeout=60).stdout.strip()
    assert where == str(src / "checks" / "__init__.py")
