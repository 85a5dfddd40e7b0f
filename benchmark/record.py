"""What a bench result records about where it ran, so a number can be traced: every library
version, llmdoctor's version and commit, the host CPU, and the GPU's clocks, power limit and
state (read through NVML before and after the workloads). Every reader returns None with the
reason rather than raising."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "huggingface-hub", "safetensors",
             "tokenizers", "numpy", "triton", "nvidia-ml-py", "llmdoctor")


def versions() -> dict[str, str | None]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def commit() -> dict:
    """llmdoctor's git commit where it runs from a checkout (None with the reason otherwise),
    and whether the checkout has changes the commit does not hold."""
    here = os.path.dirname(os.path.abspath(__file__))
    given = os.environ.get("LLMDOCTOR_COMMIT")  # where the tree was copied without .git (a lent GPU machine)
    if given:
        return {"commit": given[:64], "from": "LLMDOCTOR_COMMIT"}
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return {"commit": None, "why": (head.stderr.strip() or "not a git checkout")[:200]}
        # installed into a venv inside the user's own repository, git finds theirs: llmdoctor's
        # checkout is one that tracks this very file
        ours = subprocess.run(["git", "-C", here, "ls-files", "--error-unmatch", os.path.abspath(__file__)],
                              capture_output=True, text=True, timeout=5)
        if ours.returncode != 0:
            return {"commit": None, "why": "installed, not a checkout of llmdoctor (the git repository around it "
                                           "does not track it); set LLMDOCTOR_COMMIT to record one"}
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "why": f"{type(exc).__name__}: {exc}"[:200]}


def cpu() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {"model": model or platform.processor() or None, "logical_cpus": os.cpu_count(),
            "usable_cpus": affinity, "machine": platform.machine()}


def gpu_state(index: int = 0) -> dict:
    """Clocks (current and maximum, SM and memory), power draw, enforced and default power
    limits, temperature, persistence and ECC mode, throttle reasons, as NVML reports them."""
    try:
        import pynvml as nvml

        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - no driver, no library
        return {"why": f"NVML unusable: {type(exc).__name__}: {exc}"[:200]}
    out: dict = {}
    unknown: dict = {}

    def get(key, fn, *args, convert=lambda v: v):
        try:
            out[key] = convert(getattr(nvml, fn)(*args))
        except Exception as exc:  # noqa: BLE001 - a field this GPU or binding does not have
            unknown[key] = f"{fn}: {type(exc).__name__}"

    try:
        h = nvml.nvmlDeviceGetHandleByIndex(index)
        get("name", "nvmlDeviceGetName", h, convert=lambda v: v.decode() if isinstance(v, bytes) else v)
        get("driver", "nvmlSystemGetDriverVersion", convert=lambda v: v.decode() if isinstance(v, bytes) else v)
        get("memory_total_bytes", "nvmlDeviceGetMemoryInfo", h, convert=lambda m: int(m.total))
        sm, mem = getattr(nvml, "NVML_CLOCK_SM", 1), getattr(nvml, "NVML_CLOCK_MEM", 2)
        get("sm_clock_mhz", "nvmlDeviceGetClockInfo", h, sm)
        get("mem_clock_mhz", "nvmlDeviceGetClockInfo", h, mem)
        get("sm_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", h, sm)
        get("mem_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", h, mem)
        get("sm_application_clock_mhz", "nvmlDeviceGetApplicationsClock", h, sm)
        get("power_draw_w", "nvmlDeviceGetPowerUsage", h, convert=lambda mw: mw / 1000)
        get("power_limit_w", "nvmlDeviceGetEnforcedPowerLimit", h, convert=lambda mw: mw / 1000)
        get("power_limit_default_w", "nvmlDeviceGetPowerManagementDefaultLimit", h, convert=lambda mw: mw / 1000)
        get("temperature_c", "nvmlDeviceGetTemperature", h, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
        get("persistence_mode", "nvmlDeviceGetPersistenceMode", h, convert=bool)
        get("ecc_mode", "nvmlDeviceGetEccMode", h, convert=lambda v: bool(v[0]))
        get("throttle_reasons_mask", "nvmlDeviceGetCurrentClocksEventReasons", h)
        get("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", h)
        get("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", h)
    except Exception as exc:  # noqa: BLE001
        out["why"] = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    if unknown:
        out["unknown"] = unknown
    return out


def environment(device: str) -> dict:
    import torch

    env = {"versions": versions(), "llmdoctor": commit(), "python": sys.version.split()[0],
           "platform": platform.platform(), "cpu": cpu(),
           "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
    if device.startswith("cuda"):
        env["gpu_before"] = gpu_state(torch.cuda.current_device())
    return env
