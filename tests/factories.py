"""Facts factories: build the facts a check reads, overriding only what a test is about."""

from __future__ import annotations

from dataclasses import replace

from llmdoctor.facts import Facts, ProbeResult
from llmdoctor.probes.python_env import Distribution, ImportFacts, ImportResult, TargetFacts
from llmdoctor.probes.system import Disk, SystemFacts

GiB = 1024**3

MARKERS_311 = {
    "implementation_name": "cpython", "implementation_version": "3.11.7", "os_name": "posix",
    "platform_machine": "x86_64", "platform_release": "6.8.0", "platform_system": "Linux",
    "platform_version": "#1 SMP", "python_full_version": "3.11.7", "platform_python_implementation": "CPython",
    "python_version": "3.11", "sys_platform": "linux",
}


def target(**kw) -> TargetFacts:
    base = TargetFacts(
        python="/home/u/.venvs/llm/bin/python", kind="venv", python_version="3.11.7", version_info=(3, 11, 7),
        implementation="CPython", executable="/home/u/.venvs/llm/bin/python", prefix="/home/u/.venvs/llm",
        base_prefix="/usr", in_venv=True, conda=False, platform="linux", machine="x86_64",
        include_dir="/usr/include/python3.11", has_python_h=True, markers=dict(MARKERS_311),
    )
    return replace(base, **kw)


def dist(name, version, *requires, location="/home/u/.venvs/llm/lib/python3.11/site-packages") -> Distribution:
    return Distribution(name=name, version=version, requires=tuple(requires), location=location)


def system(**kw) -> SystemFacts:
    base = SystemFacts(
        os="Linux", os_release="Ubuntu 22.04.4 LTS", kernel="6.8.0-40-generic", machine="x86_64",
        cpu_logical=16, cpu_physical=8, cpu_usable=16, ram_total_bytes=64 * GiB, ram_available_bytes=50 * GiB,
        swap_total_bytes=8 * GiB, swap_free_bytes=8 * GiB, shm_total_bytes=32 * GiB, shm_free_bytes=32 * GiB,
        disks=(Disk("home", "/home/u", "/home/u", 500 * GiB, 200 * GiB, "ext4", "/"),
               Disk("hf-cache", "/home/u/.cache/huggingface/hub", "/home/u/.cache", 500 * GiB, 200 * GiB,
                    "ext4", "/"),
               Disk("tmp", "/tmp", "/tmp", 500 * GiB, 200 * GiB, "ext4", "/")),
    )
    return replace(base, **kw)


def imports(*results: ImportResult) -> ImportFacts:
    return ImportFacts(results=tuple(results))


def facts(**values) -> Facts:
    """facts(system=system(), target=target()) -> Facts; names with '_' map to '.' (target_imports)."""
    return Facts({name.replace("_", "."): ProbeResult(name.replace("_", "."), value)
                  for name, value in values.items()})


def findings_of(check, f: Facts):
    return list(check.run(f))


def gpu(**kw):
    """A healthy, idle RTX 4090 unless told otherwise."""
    from llmdoctor.probes.nvidia import Gpu

    base = Gpu(index=0, uuid="GPU-0a1b2c3d", name="NVIDIA GeForce RTX 4090", memory_total_bytes=24564 * 1024**2,
               memory_used_bytes=400 * 1024**2, memory_free_bytes=24164 * 1024**2, cc_major=8, cc_minor=9,
               ecc_uncorrected_volatile=None, ecc_uncorrected_aggregate=None, temperature_c=38,
               throttle_reasons=("gpu_idle",), power_draw_w=21.0, power_limit_w=450.0, pcie_gen=1, pcie_gen_max=4,
               pcie_width=16, pcie_width_max=16, persistence_mode=True, mig_mode=False, processes=())
    return replace(base, **kw)


def gpus(*items, **kw):
    from llmdoctor.probes.nvidia import GpuFacts

    base = GpuFacts(source="nvml", driver_version="550.54.15", cuda_driver_version="12.4", gpus=tuple(items))
    return replace(base, **kw)



def torch_facts(**kw):
    from llmdoctor.probes.pytorch import TorchFacts

    base = TorchFacts(installed=True, version="2.5.1+cu121", build="cuda", cuda="12.1",
                      location="/home/u/.venvs/llm/lib/python3.11/site-packages/torch", has_libtorch_cuda=True)
    return replace(base, **kw)


def live_torch(**kw):
    from llmdoctor.probes.pytorch import LiveTorch, TorchDevice

    base = LiveTorch(cuda_available=True, device_count=1, arch_list=("sm_50", "sm_60", "sm_70", "sm_75", "sm_80",
                                                                      "sm_86", "sm_90"),
                     devices=(TorchDevice(0, "NVIDIA GeForce RTX 4090", "8.9", 24 * 1024**3, True, 3e-5),),
                     cxx11_abi=False, cudnn="90100", nccl="2.21.5")
    return replace(base, **kw)


def toolkit(*nvccs, on_path=None, cuda_home=None, cuda_home_nvcc=None, gcc="12.2.0", ninja="1.11.1",
            libaio=None):
    """ToolkitFacts from ("12.1.105", "/usr/local/cuda-12.1/bin/nvcc", "PATH") tuples."""
    from llmdoctor.probes.toolkit import Nvcc, Tool, ToolkitFacts

    items = tuple(Nvcc(path=p, real_path=p, found_via=via, version=v) for v, p, via in nvccs)
    return ToolkitFacts(nvccs=items, on_path=on_path or (items[0].real_path if items else None),
                        cuda_home=cuda_home, cuda_home_nvcc=cuda_home_nvcc,
                        gcc=Tool("gcc", "/usr/bin/gcc", gcc) if gcc else Tool("gcc", None, None, "not found"),
                        ninja=Tool("ninja", "/usr/bin/ninja", ninja) if ninja else Tool("ninja", None, None,
                                                                                         "not found"),
                        libaio=libaio, libaio_header="/usr/include/libaio.h" if libaio else None)


def clock(today="2026-11-26"):
    """The date a report is judged as of (checks never read the real clock)."""
    from llmdoctor.probes.clock import ClockFacts

    return ClockFacts(now_utc=f"{today}T12:00:00+00:00", today=today)
