"""`pip install .` and `pip install -e .` both work from a fresh venv, ship the
built-in checks as llmdoctor.checks (no top-level `checks` in site-packages), and
never pull torch."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, make_venv, outer_site_packages, site_packages

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    tomllib = None


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
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for heavy in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        assert heavy not in core
        assert any(d.startswith(heavy) for d in project["optional-dependencies"]["bench"])
    assert "nvidia-ml-py" in core and "pynvml" not in core.replace("nvidia-ml-py", "")
    # broad lower bounds only: never an upper bound or a pin that could move what transformers pins
    assert all("<" not in d and "==" not in d for d in project["dependencies"])
