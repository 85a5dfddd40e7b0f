"""PyTorch in the target environment. Build facts are read from torch/version.py
without importing torch; the live test (import torch, a matmul on every visible GPU)
runs only where an NVIDIA driver exists, so a machine without one never imports torch."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from llmdoctor.probes.base import ProbeContext, ProbeFailed, TargetFailure
from llmdoctor.probes.python_env import describe_failure, probe_lines, run_script

LIVE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TorchDevice:
    index: int
    name: str | None = None
    capability: str | None = None
    total_memory_bytes: int | None = None
    matmul_ok: bool | None = None
    matmul_max_abs_diff: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class LiveTorch:
    cuda_available: bool = False
    device_count: int = 0
    devices: tuple[TorchDevice, ...] = ()
    arch_list: tuple[str, ...] = ()
    cxx11_abi: bool | None = None
    cudnn: str | None = None
    nccl: str | None = None
    error: str | None = None  #: the exact exception text when torch.cuda failed
    mps_built: bool | None = None  #: torch.backends.mps.is_built() (asked on macOS)
    mps_available: bool | None = None  #: torch.backends.mps.is_available()


@dataclass(frozen=True)
class TorchFacts:
    installed: bool
    version: str | None = None
    build: str | None = None  #: "cpu" | "cuda" | "rocm"
    cuda: str | None = None  #: torch.version.cuda, e.g. "12.1"
    hip: str | None = None
    git_version: str | None = None
    location: str | None = None
    has_libtorch_cuda: bool = False
    nvidia_wheels: tuple[tuple[str, str], ...] = ()
    error: str | None = None  #: version.py unreadable
    live: LiveTorch | None = None
    live_skip_kind: str | None = None  #: why the live test did not run: "no-driver" (torch was not imported)
    live_skipped: str | None = None  #: reports of llmdoctor before live_skip_kind: their sentence (read only)
    live_failure: TargetFailure | None = None  #: the live test crashed or hung (import torch segfaults happen)
    live_error: str | None = None  #: reports of llmdoctor before live_failure: their sentence (read only)
    lib_dlls: tuple[str, ...] = ()  #: Windows: the DLLs in torch\lib (lower case), for a WinError 126 diagnosis


def driver_present(environ) -> bool:
    """An NVIDIA driver's files: the Linux kernel module, nvidia-smi on PATH, or the Windows driver
    WSL 2 maps in (it has no /proc/driver/nvidia, and sudo, cron and systemd leave its folder off PATH)."""
    return os.path.exists("/proc/driver/nvidia/version") or bool(shutil.which("nvidia-smi", path=environ.get("PATH"))) \
        or os.path.exists(WSL_LIBCUDA)


WSL_LIBCUDA = "/usr/lib/wsl/lib/libcuda.so.1"


def _first(ctx: ProbeContext, mode: str, timeout: float):
    done = run_script(ctx, [mode], timeout)
    data = next(iter(probe_lines(done.stdout)), None)
    if done.returncode != 0 or not isinstance(data, dict):
        raise ProbeFailed.of(describe_failure(done, mode if mode == "torch-live" else "torch-scan", timeout))
    return data


def _live(data: dict) -> LiveTorch:
    return LiveTorch(
        cuda_available=bool(data.get("cuda_available")), device_count=int(data.get("device_count") or 0),
        devices=tuple(TorchDevice(**{k: v for k, v in d.items() if k in TorchDevice.__dataclass_fields__})
                      for d in data.get("devices") or ()),
        arch_list=tuple(data.get("arch_list") or ()), cxx11_abi=data.get("cxx11_abi"), cudnn=data.get("cudnn"),
        nccl=data.get("nccl"), error=data.get("error"),
        mps_built=data.get("mps_built") if isinstance(data.get("mps_built"), bool) else None,
        mps_available=data.get("mps_available") if isinstance(data.get("mps_available"), bool) else None)


def probe_torch(ctx: ProbeContext) -> TorchFacts:
    static = _first(ctx, "torch", 15)
    if not static.get("installed"):
        return TorchFacts(installed=False)
    cuda, hip = static.get("cuda"), static.get("hip")
    facts = dict(
        installed=True, version=static.get("version"), build="rocm" if hip else ("cuda" if cuda else "cpu"),
        cuda=cuda, hip=hip, git_version=static.get("git_version"), location=static.get("location"),
        has_libtorch_cuda=bool(static.get("has_libtorch_cuda")),
        nvidia_wheels=tuple(tuple(w) for w in static.get("nvidia_wheels") or ()), error=static.get("error"),
        lib_dlls=tuple(str(n) for n in static.get("lib_dlls") or ()))
    on_mac = sys.platform == "darwin"  # no driver there, but MPS is asked of torch itself
    if not (driver_present(ctx.environ) or on_mac or ctx.environ.get("LLMDOCTOR_FORCE_TORCH_LIVE") == "1"):
        return TorchFacts(**facts, live_skip_kind="no-driver")
    try:
        return TorchFacts(**facts, live=_live(_first(ctx, "torch-live", LIVE_TIMEOUT_S)))
    except ProbeFailed as exc:
        return TorchFacts(**facts, live_failure=exc.failure)
