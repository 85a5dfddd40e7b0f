"""`llmdoctor fix --torch`: plan from recorded facts, and the whole flow in a real venv
whose pip is a stand-in (no network here) and whose GPU facts are the recorded H100's."""

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import site_packages
from llmdoctor.cli import cli
from llmdoctor.facts import Facts, ProbeResult, load
from llmdoctor.fixes import torch_wheel
from llmdoctor.fix.model import FixContext, FixError
from llmdoctor.probes.nvidia import GpuFacts
from llmdoctor.probes.pytorch import TorchFacts
from llmdoctor.target import Target

H100 = Path(__file__).parent / "fixtures" / "real" / "h100" / "check.json"


def h100_facts(**torch_overrides):
    data = json.loads(H100.read_text())["facts"]
    gpu = load(GpuFacts, data["gpu"]["value"])
    torch_value = {**data["torch"]["value"], **torch_overrides}
    return gpu, load(TorchFacts, torch_value)


def ctx(gpu, torch, python="/opt/torch/.venv/bin/python3"):
    facts = Facts({"gpu": ProbeResult("gpu", gpu), "torch": ProbeResult("torch", torch)})
    return FixContext(target=Target(python=python, kind="explicit"), environ={}, facts=facts)


def test_healthy_h100_needs_nothing():
    plan = torch_wheel.plan(ctx(*h100_facts()))
    assert plan.empty and "already fits" in plan.nothing_to_do


def test_cpu_torch_on_the_h100_gets_the_cu130_wheel_and_an_undo():
    plan = torch_wheel.plan(ctx(*h100_facts(version="2.9.1+cpu", build="cpu", cuda=None, live=None)))
    py = "/opt/torch/.venv/bin/python3"
    assert plan.commands == ((py, "-m", "pip", "uninstall", "-y", "torch"),
                             (py, "-m", "pip", "install", "torch==2.9.1", "--index-url",
                              "https://download.pytorch.org/whl/cu130"))
    assert plan.undo_commands[-1] == (py, "-m", "pip", "install", "torch==2.9.1", "--index-url",
                                      "https://download.pytorch.org/whl/cpu")
    assert any("CPU-only build" in n for n in plan.notes)


def test_no_gpu_is_a_clear_refusal():
    gpu, torch = h100_facts()
    with pytest.raises(FixError, match="no NVIDIA GPU"):
        torch_wheel.plan(ctx(GpuFacts(source="none", reason="no driver"), torch))


FAKE_PIP = '''
import os, re, sys
log = os.environ["FAKE_PIP_LOG"]
with open(log, "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args and args[0] == "install":
    spec = next(a for a in args if a.startswith("torch"))
    flavour = args[args.index("--index-url") + 1].rsplit("/", 1)[1]
    cuda = "None" if flavour == "cpu" else repr(flavour[2:-1] + "." + flavour[-1])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "torch", "version.py"), "w") as fh:
        fh.write("__version__ = '%s+%s'\\ncuda = %s\\nhip = None\\n" % (spec.split("==")[1], flavour, cuda))
'''


def test_fix_torch_end_to_end_with_undo(venv, tmp_path, monkeypatch):
    py = venv()
    site = site_packages(py)
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("")
    (site / "torch" / "version.py").write_text("__version__ = '2.9.1+cpu'\ncuda = None\nhip = None\n")
    (site / "pip").mkdir()
    (site / "pip" / "__init__.py").write_text("")
    (site / "pip" / "__main__.py").write_text(textwrap.dedent(FAKE_PIP))
    log = tmp_path / "pip.log"
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))
    gpu, _ = h100_facts()
    import llmdoctor.probes.nvidia as nvidia

    monkeypatch.setattr(nvidia, "probe_gpu", lambda ctx: gpu)  # the GPU is the recorded H100
    runner = CliRunner()
    result = runner.invoke(cli, ["fix", "--torch", "--python", str(py), "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Will run:" in result.output and "Verified: torch 2.9.1+cu130 now passes" in result.output
    assert log.read_text().splitlines() == [
        "uninstall -y torch", "install torch==2.9.1 --index-url https://download.pytorch.org/whl/cu130"]
    undo = runner.invoke(cli, ["fix", "--undo"], catch_exceptions=False)
    assert undo.exit_code == 0, undo.output
    assert log.read_text().splitlines()[-1] == "install torch==2.9.1 --index-url https://download.pytorch.org/whl/cpu"
    assert "cuda = None" in (site / "torch" / "version.py").read_text()
