"""The torch probe against real interpreters: build facts read without importing torch,
the live test only where a driver exists, and a torch that segfaults on import."""

import functools
import os
import signal
import sys

from hypothesis import given, strategies as st

from checks_under_test import failures
from conftest import install_fake_dist, site_packages
from factories import torch_facts
from llmdoctor.facts import dump, load
from llmdoctor.probes import ProbeContext
from llmdoctor.probes.pytorch import TorchFacts, driver_present, probe_torch
from llmdoctor.target import resolve_target

VERSION_PY = """__version__ = '2.4.0+cu121'
debug = False
cuda: Optional[str] = '12.1'
git_version = 'e4ee3be4063b7c430974252fdf7db42273388d86'
hip: Optional[str] = None
xpu: Optional[str] = None
"""
SEGFAULT = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"


def fake_torch(py, init: str):
    site = site_packages(py)
    install_fake_dist(site, "torch", "2.4.0+cu121", module="torch", code=init)
    (site / "torch" / "version.py").write_text(VERSION_PY)
    (site / "torch" / "lib").mkdir()
    (site / "torch" / "lib" / "libtorch_cuda.so").write_bytes(b"\x7fELF")
    install_fake_dist(site, "nvidia-cublas-cu12", "12.1.3.1")


def ctx(py, **env):
    return ProbeContext(target=resolve_target(str(py)), environ={**os.environ, **env})


def test_build_facts_come_from_version_py_without_importing_torch(venv):
    py = venv()
    fake_torch(py, init="raise SystemExit('torch must not be imported')\n")
    facts = probe_torch(ctx(py))
    assert (facts.version, facts.build, facts.cuda, facts.hip) == ("2.4.0+cu121", "cuda", "12.1", None)
    assert facts.has_libtorch_cuda and facts.nvidia_wheels == (("nvidia-cublas-cu12", "12.1.3.1"),)
    if not driver_present(os.environ):
        assert facts.live is None and facts.live_skip_kind == "no-driver" and facts.live_skipped is None


def test_a_torch_that_segfaults_on_import_keeps_its_build_facts(venv):
    py = venv()
    fake_torch(py, init=SEGFAULT)
    facts = probe_torch(ctx(py, LLMDOCTOR_FORCE_TORCH_LIVE="1"))
    assert facts.build == "cuda" and facts.live is None and facts.live_error is None
    f = facts.live_failure  # how it died, as data; the checks word it
    assert (f.kind, f.step, f.exit_code) == ("signal", "torch-live", -signal.SIGSEGV)
    assert failures.live_error(load(TorchFacts, dump(facts))) == "the target interpreter was killed by SIGSEGV during the " \
        "torch live test" + (f"\n{f.tail}" if f.tail else "")


def test_no_torch(venv):
    assert probe_torch(ctx(venv())) == TorchFacts(installed=False)


def test_live_test_with_the_real_cpu_torch():
    facts = probe_torch(ProbeContext(target=resolve_target(sys.executable),
                                     environ={**os.environ, "LLMDOCTOR_FORCE_TORCH_LIVE": "1"}))
    assert facts.installed and facts.live is not None and facts.live_error is None
    if not driver_present(os.environ):
        assert facts.live.cuda_available is False and facts.live.device_count == 0


def test_torch_facts_round_trip():
    t = torch_facts(nvidia_wheels=(("nvidia-cublas-cu12", "12.1.3.1"),))
    assert load(TorchFacts, dump(t)) == t


@functools.lru_cache(maxsize=None)
def _script():
    import importlib.util

    from llmdoctor.probes.python_env import SCRIPT

    spec = importlib.util.spec_from_file_location("llmdoctor_target_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_py_reader_on_real_files():
    read = _script()._version_py_field
    assert read(VERSION_PY, "__version__") == "2.4.0+cu121"
    assert read(VERSION_PY, "cuda") == "12.1"
    assert read(VERSION_PY, "hip") is None
    assert read("__version__ = \"2.13.0+cpu\"\ncuda: Optional[str] = None\n", "cuda") is None


@given(st.text(), st.sampled_from(["__version__", "cuda", "hip", "git_version"]))
def test_version_py_reader_never_raises(text, name):
    _script()._version_py_field(text, name)
