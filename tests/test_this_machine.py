"""End to end on the machine the tests run on: no NVIDIA driver, the CUDA 13.0 toolkit,
a CPU torch in the test environment."""

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from llmdoctor.cli import cli

NO_DRIVER = not os.path.exists("/proc/driver/nvidia/version") and not shutil.which("nvidia-smi")


@pytest.mark.skipif(not NO_DRIVER, reason="this machine has an NVIDIA driver")
def test_no_gpu_path_and_the_toolkit_facts():
    result = CliRunner().invoke(cli, ["check", "--json", "--offline"], catch_exceptions=False)
    report = json.loads(result.stdout)
    by_id = {f["id"]: f for f in report["findings"]}
    (presence,) = [f for f in report["findings"] if f["check"] == "gpu.presence"]
    assert presence["status"] == "info" and presence["title"].startswith("No NVIDIA GPU")
    assert all(by_id[i]["status"] == "skip" for i in ("gpu.memory", "torch.cpu-only", "torch.live"))
    torch = report["facts"]["torch"]["value"]
    assert torch["installed"] and torch["build"] == "cpu"
    assert torch["live"] is None and "torch was not imported" in torch["live_skipped"]
    if shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc"):
        releases = {n["version"].rsplit(".", 1)[0] for n in report["facts"]["cuda"]["value"]["nvccs"]}
        assert "13.0" in releases
        assert by_id["cuda.nvcc"]["status"] == "ok" and "nvcc 13.0" in by_id["cuda.nvcc"]["title"]
