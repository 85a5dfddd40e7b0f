"""Reports recorded on a real machine with an NVIDIA H100 (tests/fixtures/real/record.sh),
judged again by today's checks."""

import json
from pathlib import Path

from click.testing import CliRunner

from llmdoctor.cli import cli
from llmdoctor.report.shells import fix_text

H100 = Path(__file__).parent / "fixtures" / "real" / "h100"


def replay(name, *args):
    result = CliRunner().invoke(cli, ["check", "--json", "--replay", str(H100 / name), *args], catch_exceptions=False)
    return result, {f["id"]: f for f in json.loads(result.stdout)["findings"]}


def test_h100_report_replays_to_a_healthy_gpu():
    result, got = replay("check.json")
    assert result.exit_code == 0
    presence = got["gpu.presence"]
    assert presence["status"] == "ok"
    assert "NVIDIA H100 80GB HBM3" in presence["title"] and "compute capability 9.0" in presence["title"]
    assert "driver 580.159.04 (CUDA 13.0)" in presence["title"]
    assert got["gpu.bf16"]["status"] == "ok"
    assert "80 GB class" in got["gpu.memory-class"]["title"]
    assert got["gpu.health"]["status"] == "ok"
    assert got["python.dependencies"]["title"] == "198 distributions installed, every requirement met"
    assert got["torch.build"]["title"] == "torch 2.11.0+cu130, CUDA 13.0 build"
    assert got["torch.driver"]["status"] == "ok" and "580.159.04" in got["torch.driver"]["title"]
    assert got["torch.live"]["title"] == "torch.cuda sees 1 GPU; a matmul on each matches the CPU"
    assert got["torch.arch"]["status"] == "ok"
    assert got["cuda.nvcc"]["title"].startswith("nvcc 13.0 (/usr/local/cuda/bin/nvcc, via PATH), same major")
    assert got["cuda.host-compiler"]["status"] == "ok" and "13.3.0" in got["cuda.host-compiler"]["title"]


def test_recorded_live_torch_facts():
    from llmdoctor.facts import load
    from llmdoctor.probes.pytorch import TorchFacts

    t = load(TorchFacts, json.loads((H100 / "check.json").read_text())["facts"]["torch"]["value"])
    assert t.live.arch_list == ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
    (dev,) = t.live.devices
    assert dev.capability == "9.0" and dev.matmul_ok and dev.matmul_max_abs_diff < 1e-3
    assert ("nvidia-cudnn-cu13", "9.19.0.56") in t.nvidia_wheels


def test_the_h100_with_a_cpu_only_torch_would_be_told_the_cu130_build():
    """The recorded H100 facts, with the torch swapped for a CPU 2.9.1: the fix names the newest
    wheel its driver (CUDA 13.0) runs, of the torch the installed torchvision 0.26.0 pins
    (torch==2.11.0): installing 2.9.1 again would leave torchvision broken."""
    data = json.loads((H100 / "check.json").read_text())
    data["facts"]["torch"]["value"].update(version="2.9.1+cpu", build="cpu", cuda=None, live=None)
    from llmdoctor.check.flow import replay as replay_report

    report = replay_report(data, only=["torch.cpu-only"])
    (f,) = report.findings
    assert f.status.label == "fail"
    assert fix_text(f) == ("/opt/torch/.venv/bin/python3 -m pip install --force-reinstall torch==2.11.0 "
                     "--index-url https://download.pytorch.org/whl/cu130")


def test_h100_replay_gives_the_findings_that_were_recorded():
    """Every finding recorded on the H100 comes back the same (checks added since then
    add findings of their own)."""
    recorded = json.loads((H100 / "check.json").read_text())
    _, got = replay("check.json")
    reworded = {"gpu.memory-class"}  # now from the bench's memory model, not prose (issue 15 item 6)
    assert {(f["id"], f["status"], f["title"]) for f in recorded["findings"] if f["id"] not in reworded} <= {
        (f["id"], f["status"], f["title"]) for f in got.values()}
    assert got["gpu.memory-class"]["title"].endswith("every 6-8B preset fits every bench workload "
                                                     "(LoRA, QLoRA, 16/8/4-bit inference)")
    assert got["build.flash-attn-3"]["status"] == "info"  # a check newer than the recording judges it too


def test_h100_with_an_empty_cuda_visible_devices_fails():
    result, got = replay("check_cvd_empty.json", "--only", "gpu.*")
    assert result.exit_code == 1
    assert got["gpu.visible-devices"]["status"] == "fail"
    assert got["gpu.visible-devices"]["title"] == "CUDA_VISIBLE_DEVICES is set but empty: it hides every GPU"


def test_recorded_nvml_facts_load_into_typed_facts():
    from llmdoctor.facts import load
    from llmdoctor.probes.nvidia import GpuFacts

    data = json.loads((H100 / "check.json").read_text())["facts"]["gpu"]["value"]
    facts = load(GpuFacts, data)
    (gpu,) = facts.gpus
    assert facts.source == "nvml" and gpu.compute_capability == "9.0" and gpu.persistence_mode is True
    assert gpu.memory_total_bytes == 85520809984 and gpu.unknown == {}  # every NVML field was read
