"""Reports recorded on a real machine with an NVIDIA H100 (tests/fixtures/real/record.sh),
judged again by today's checks."""

import json
from pathlib import Path

from click.testing import CliRunner

from llmdoctor.cli import cli

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


def test_h100_replay_gives_the_findings_that_were_recorded():
    recorded = json.loads((H100 / "check.json").read_text())
    _, got = replay("check.json")
    assert {(f["id"], f["status"], f["title"]) for f in recorded["findings"]} == {
        (f["id"], f["status"], f["title"]) for f in got.values()}


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
