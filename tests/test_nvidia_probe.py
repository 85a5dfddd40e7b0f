"""NVML adapter and parsers. No GPU here: the adapter is fed a fake pynvml module with
values recorded from a real T4, and the parsers take arbitrary text without raising."""

import os
import sys
import types
from types import SimpleNamespace

from hypothesis import given, strategies as st

from llmdoctor.facts import dump, load
from llmdoctor.probes import ProbeContext
from llmdoctor.probes.nvidia import (GpuFacts, decode_throttle, parse_cuda_driver_version, parse_proc_version,
                                     parse_smi_csv, probe_gpu, select_visible)
from llmdoctor.target import resolve_target

T4_SMI = "0, GPU-4f5e6d7c-1111-2222-3333-444455556666, Tesla T4, 535.183.01, 15360, 3, 15101, 7.5\n"
PROC = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
        "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")


@given(st.text())
def test_parsers_never_raise(text):
    parse_proc_version(text)
    parse_smi_csv(text)
    parse_cuda_driver_version(text)
    decode_throttle(text)
    select_visible(text, [])


def test_parsers_on_real_output():
    assert parse_proc_version(PROC) == "535.183.01"
    assert parse_proc_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build") \
        == "580.159.04"
    assert parse_cuda_driver_version(12020) == "12.2" and parse_cuda_driver_version(13000) == "13.0"
    assert parse_cuda_driver_version("junk") is None
    (gpu,), driver = parse_smi_csv(T4_SMI)
    assert driver == "535.183.01" and gpu.name == "Tesla T4" and gpu.compute_capability == "7.5"
    assert gpu.memory_total_bytes == 15360 * 1024 * 1024
    assert decode_throttle(0x1) == ("gpu_idle",)
    assert decode_throttle(0x4 | 0x40) == ("sw_power_cap", "hw_thermal_slowdown")


def test_cuda_visible_devices():
    gpus, _ = parse_smi_csv(T4_SMI + T4_SMI.replace("0, GPU-4f5e", "1, GPU-9a9a"))
    assert select_visible(None, gpus) == ({0, 1}, None, None)
    assert select_visible("1", gpus) == ({1}, None, None)
    assert select_visible("GPU-9a9a", gpus) == ({1}, None, None)
    assert select_visible("", gpus) == (set(), "empty", None)  # facts, not sentences: the check words them
    assert select_visible("0,7,1", gpus) == ({0}, "no-match", "7")
    assert select_visible("MIG-abc", gpus)[1] is None


class FakeNVMLError(Exception):
    def __str__(self):
        return "Not Supported"


def fake_pynvml(**overrides):
    """A pynvml stand-in answering like a T4 on driver 535.183.01 (CUDA 12.2)."""
    m = types.ModuleType("pynvml")
    m.NVMLError = FakeNVMLError

    def unsupported(*a):
        raise FakeNVMLError()

    funcs = dict(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "535.183.01", nvmlSystemGetCudaDriverVersion_v2=lambda: 12020,
        nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetUUID=lambda h: "GPU-4f5e6d7c-1111-2222-3333-444455556666", nvmlDeviceGetName=lambda h: b"Tesla T4",
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=16106127360, used=3145728, free=16102981632),
        nvmlDeviceGetCudaComputeCapability=lambda h: (7, 5),
        nvmlDeviceGetTotalEccErrors=lambda h, t, c: 0, nvmlDeviceGetTemperature=lambda h, s: 41,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x1,
        nvmlDeviceGetPowerUsage=lambda h: 9500, nvmlDeviceGetEnforcedPowerLimit=lambda h: 70000,
        nvmlDeviceGetCurrPcieLinkGeneration=lambda h: 1, nvmlDeviceGetMaxPcieLinkGeneration=lambda h: 3,
        nvmlDeviceGetCurrPcieLinkWidth=lambda h: 16, nvmlDeviceGetMaxPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetPersistenceMode=lambda h: 0, nvmlDeviceGetMigMode=unsupported,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [SimpleNamespace(pid=os.getpid(), usedGpuMemory=2 << 30)],
    )
    funcs.update(overrides)
    for name, fn in funcs.items():
        setattr(m, name, fn)
    return m


def ctx(**env):
    return ProbeContext(target=resolve_target(), environ={"PATH": "/nonexistent", **env})


def test_nvml_adapter_reads_a_t4_and_records_what_it_cannot(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    facts = probe_gpu(ctx())
    assert (facts.source, facts.driver_version, facts.cuda_driver_version) == ("nvml", "535.183.01", "12.2")
    (gpu,) = facts.gpus
    assert gpu.name == "Tesla T4" and gpu.compute_capability == "7.5" and gpu.temperature_c == 41
    assert gpu.throttle_reasons == ("gpu_idle",) and gpu.power_limit_w == 70.0 and gpu.persistence_mode is False
    assert gpu.mig_mode is None and gpu.unknown["mig_mode"] == "nvmlDeviceGetMigMode: Not Supported"
    assert gpu.processes[0].pid == os.getpid() and gpu.processes[0].name  # named through psutil
    assert load(GpuFacts, dump(facts)) == facts


def test_missing_functions_in_an_old_binding_are_unknown_not_errors(monkeypatch):
    m = fake_pynvml()
    del m.nvmlSystemGetCudaDriverVersion_v2
    del m.nvmlDeviceGetCurrentClocksThrottleReasons
    monkeypatch.setitem(sys.modules, "pynvml", m)
    facts = probe_gpu(ctx())
    assert facts.cuda_driver_version is None
    assert "missing from this nvidia-ml-py" in facts.gpus[0].unknown["throttle"]


def test_nvml_that_cannot_init_falls_back_to_nvidia_smi(monkeypatch, tmp_path):
    def no_library():
        raise FakeNVMLError()

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(nvmlInit=no_library))
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nprintf '{T4_SMI}'\n")
    smi.chmod(0o755)
    facts = probe_gpu(ctx(PATH=str(tmp_path), CUDA_VISIBLE_DEVICES="0"))
    assert facts.source == "nvidia-smi" and facts.driver_version == "535.183.01"
    assert facts.nvml_error and facts.gpus[0].name == "Tesla T4" and facts.gpus[0].visible


def test_a_hanging_nvidia_smi_is_bounded(monkeypatch, tmp_path):
    import time

    def no_library():
        raise FakeNVMLError()

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(nvmlInit=no_library))
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nsleep 60\n")
    smi.chmod(0o755)
    started = time.perf_counter()
    facts = probe_gpu(ctx(PATH=str(tmp_path)))
    assert time.perf_counter() - started < 10
    assert facts.source == "none" and "timed out" in facts.smi_error
    assert facts.reason is None  # what NVML and nvidia-smi said is recorded; the check words it


def test_this_machine_has_no_driver_and_says_so():
    facts = probe_gpu(ProbeContext(target=resolve_target(), environ=dict(os.environ)))
    if os.path.exists("/proc/driver/nvidia/version"):  # pragma: no cover - a GPU machine
        assert facts.source in ("nvml", "nvidia-smi") and facts.gpus
        return
    assert facts.source == "none" and facts.gpus == () and facts.nvml_error and facts.smi_error
    assert facts.reason is None  # the check words it (checks/nvidia.py no_gpu_detail)
