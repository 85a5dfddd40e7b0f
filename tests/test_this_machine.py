"""End to end on the machine the tests run on, whatever it has: where there is no NVIDIA
driver, the no-GPU path; the CUDA toolkit it has, if any; the CPU torch of the test
environment (pyproject's [test] extra pins it)."""

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
    assert torch["live"] is None and torch["live_skip_kind"] == "no-driver" and torch["live_skipped"] is None
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc")
                                     else None)
    if nvcc:
        import subprocess

        from llmdoctor.probes.toolkit import parse_nvcc

        here = parse_nvcc(subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout)
        assert here in {n["version"] for n in report["facts"]["cuda"]["value"]["nvccs"]}
        assert f"nvcc {here.rsplit('.', 1)[0]}" in by_id["cuda.nvcc"]["title"]


def _check_json(*args):
    result = CliRunner().invoke(cli, ["check", "--json", "--offline", *args], catch_exceptions=False)
    out = {}
    for f in json.loads(result.stdout)["findings"]:
        out.setdefault(f["id"], f)
    return out


@pytest.mark.skipif(not NO_DRIVER, reason="this machine has an NVIDIA driver")
def test_flash_attn_and_deepspeed_verdicts_here(venv):
    """A real venv seeing this machine's CPU torch, with deepspeed installed: flash-attn
    cannot be installed (CPU torch), DeepSpeed runs on its CPU accelerator only, its
    async_io op needs libaio exactly when this machine lacks it, and the ZeRO offload
    sizing is computed from this machine's RAM."""
    from conftest import install_fake_dist, outer_site_packages, site_packages
    from llmdoctor.probes.toolkit import find_libaio

    py = venv()
    outer_site_packages(py)
    install_fake_dist(site_packages(py), "deepspeed", "0.17.2", module="deepspeed")
    by_id = _check_json("--python", str(py), "--only", "build.flash-attn-install,build.deepspeed")
    fa = by_id["build.flash-attn-needs-cuda-torch"]
    assert fa["status"] == "info" and "torch 2.13.0+cpu is a CPU-only build" in fa["title"]
    assert by_id["build.deepspeed-cpu-torch"]["status"] == "info"
    lib, header = find_libaio()
    assert ("build.deepspeed-libaio" in by_id) == (lib is None or header is None)
    assert "ZeRO-2 CPU offload of a 6B model needs about 134 GiB" in by_id["build.deepspeed-offload-ram"]["title"]


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs a C compiler to build the broken extension")
def test_an_extension_with_an_undefined_torch_symbol(venv, tmp_path):
    """A real shared object that references a c10 symbol no library provides, as a
    flash-attn wheel built for another torch does: the import fails in the target and
    the finding names the cause."""
    import subprocess
    import sysconfig

    from conftest import install_fake_dist, site_packages

    py = venv()
    site = site_packages(py)
    install_fake_dist(site, "flash-attn", "2.8.3", module="flash_attn", code="import flash_attn_2_cuda\n")
    src = tmp_path / "ext.c"
    src.write_text("extern void _ZN3c104cuda9SetDeviceEi(int);\n"
                   "void *PyInit_flash_attn_2_cuda(void) { _ZN3c104cuda9SetDeviceEi(0); return 0; }\n")
    so = site / ("flash_attn_2_cuda" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True, timeout=60)
    by_id = _check_json("--python", str(py), "--only", "build.extension-imports,build.flash-attn-install")
    f = by_id["build.extension-import-undefined-symbol"]
    assert f["status"] == "fail" and "_ZN3c104cuda9SetDeviceEi" in f["detail"]
    assert "--no-build-isolation flash-attn" in f["fix"]
    assert by_id["build.flash-attn-install"]["status"] == "skip"
