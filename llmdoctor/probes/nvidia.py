"""NVIDIA driver and GPU facts. With probes/topology.py (links between GPUs), the only
modules of llmdoctor that import ``pynvml`` (from nvidia-ml-py), lazily. Every NVML error
or missing function becomes an unknown field with its reason; when NVML cannot load at
all, ``nvidia-smi`` and /proc/driver/nvidia/version are read instead; with no driver,
source is "none".
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, replace
from typing import Callable

from llmdoctor import subproc
from llmdoctor.probes.base import read_text

#: nvmlClocksThrottleReasons / nvmlClocksEventReasons bits, from nvml.h
THROTTLE_BITS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
SMI_FIELDS = ("index", "uuid", "name", "driver_version", "memory.total", "memory.used", "memory.free", "compute_cap")
MiB = 1024 * 1024
WSL_LIB = "/usr/lib/wsl/lib"  #: WSL 2's copy of the Windows driver's nvidia-smi and libraries


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str | None = None
    used_memory_bytes: int | None = None


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str | None = None
    name: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    cc_major: int | None = None
    cc_minor: int | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    temperature_c: int | None = None
    throttle_reasons: tuple[str, ...] | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    persistence_mode: bool | None = None
    mig_mode: bool | None = None
    processes: tuple[GpuProcess, ...] | None = None
    visible: bool = True  #: selected by CUDA_VISIBLE_DEVICES (or no such variable)
    unknown: dict[str, str] = field(default_factory=dict)  #: field -> why it is None

    @property
    def compute_capability(self) -> str | None:
        return None if self.cc_major is None else f"{self.cc_major}.{self.cc_minor or 0}"


@dataclass(frozen=True)
class GpuFacts:
    source: str  #: "nvml" | "nvidia-smi" | "none"
    reason: str | None = None  #: reports from before the check worded nvml_error, smi_error: their sentence (read only)
    driver_version: str | None = None
    cuda_driver_version: str | None = None  #: newest CUDA the driver supports, "12.4"
    proc_driver_version: str | None = None  #: from /proc/driver/nvidia/version
    nvml_error: str | None = None
    smi_error: str | None = None
    cuda_visible_devices: str | None = None  #: the raw variable, None when unset
    visible_problem: str | None = None  #: "empty" (hides every GPU) | "no-match" (an entry names no GPU)
    visible_unmatched: str | None = None  #: the CUDA_VISIBLE_DEVICES entry that names no GPU, for "no-match"
    visible_error: str | None = None  #: reports of llmdoctor before visible_problem: their sentence (read only)
    gpus: tuple[Gpu, ...] = ()

    @property
    def visible_gpus(self) -> tuple[Gpu, ...]:
        return tuple(g for g in self.gpus if g.visible)


# --- pure parsers: never raise ----------------------------------------------

def parse_cuda_driver_version(value) -> str | None:
    """NVML's int 12040 -> "12.4"."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    if n <= 0:
        return None
    return f"{n // 1000}.{(n % 1000) // 10}"


def parse_proc_version(text: str | None) -> str | None:
    """'NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May ...' -> '535.183.01'."""
    if not text:
        return None
    m = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+){1,2})", text)
    return m.group(1) if m else None


def decode_throttle(mask) -> tuple[str, ...] | None:
    try:
        mask = int(mask)
    except (TypeError, ValueError):
        return None
    return tuple(name for bit, name in THROTTLE_BITS if mask & bit)


def _int(text: str) -> int | None:
    try:
        return int(float(text.strip()))
    except (ValueError, AttributeError):
        return None


def parse_smi_csv(text: str | None) -> tuple[list[Gpu], str | None]:
    """Rows of `nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits`;
    returns (gpus, driver version)."""
    gpus, driver = [], None
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(SMI_FIELDS):
            continue
        row = dict(zip(SMI_FIELDS, parts))
        index = _int(row["index"])
        if index is None:
            continue
        cc = re.fullmatch(r"(\d+)\.(\d+)", row["compute_cap"])
        mib = {k: _int(row[k]) for k in ("memory.total", "memory.used", "memory.free")}
        driver = driver or (row["driver_version"] if re.fullmatch(r"[\d.]+", row["driver_version"]) else None)
        gpus.append(Gpu(
            index=index, uuid=row["uuid"] or None, name=row["name"] or None,
            memory_total_bytes=None if mib["memory.total"] is None else mib["memory.total"] * MiB,
            memory_used_bytes=None if mib["memory.used"] is None else mib["memory.used"] * MiB,
            memory_free_bytes=None if mib["memory.free"] is None else mib["memory.free"] * MiB,
            cc_major=int(cc.group(1)) if cc else None, cc_minor=int(cc.group(2)) if cc else None,
            unknown={"health": "read with nvidia-smi: NVML unavailable"},
        ))
    return gpus, driver


def select_visible(value: str | None, gpus: list[Gpu]) -> tuple[set[int], str | None, str | None]:
    """(indices CUDA_VISIBLE_DEVICES selects, "empty" | "no-match" | None, the entry that matches
    nothing). As CUDA does, an entry that matches nothing ends the list."""
    all_ = {g.index for g in gpus}
    if value is None:
        return all_, None, None
    if not value.strip():
        return set(), "empty", None
    chosen: list[int] = []
    for token in (t.strip() for t in value.split(",")):
        if token.startswith("MIG-"):
            return set(chosen) | all_, None, None  # MIG instances: leave visibility to CUDA
        match = None
        if re.fullmatch(r"-?\d+", token):
            match = int(token) if int(token) in all_ else None
        elif token:
            uuid = token if token.startswith("GPU-") else f"GPU-{token}"
            hits = [g.index for g in gpus if g.uuid and g.uuid.startswith(uuid)]
            match = hits[0] if len(hits) == 1 else None
        if match is None:
            return set(chosen), "no-match", token
        chosen.append(match)
    return set(chosen), None, None


# --- NVML -------------------------------------------------------------------

class _Reader:
    """Calls NVML functions, recording why a value is unknown instead of raising."""

    def __init__(self, nvml):
        self.nvml = nvml
        self.unknown: dict[str, str] = {}

    def get(self, key: str, names, *args, convert: Callable = lambda v: v):
        for name in (names if isinstance(names, tuple) else (names,)):
            fn = getattr(self.nvml, name, None)
            if fn is None:
                continue
            try:
                return convert(fn(*args))
            except self.nvml.NVMLError as exc:
                self.unknown[key] = f"{name}: {exc}"
                return None
            except Exception as exc:  # noqa: BLE001 - a binding bug is an unknown fact too
                self.unknown[key] = f"{name}: {type(exc).__name__}: {exc}"
                return None
        self.unknown[key] = f"{names} missing from this nvidia-ml-py"
        return None


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _process_name(pid: int) -> str | None:
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # noqa: BLE001 - gone, or another user's / container's process
        return None


def _gpu(nvml, index: int) -> Gpu:
    r = _Reader(nvml)
    handle = r.get("handle", "nvmlDeviceGetHandleByIndex", index)
    if handle is None:
        return Gpu(index=index, unknown=r.unknown)
    mem = r.get("memory", "nvmlDeviceGetMemoryInfo", handle)
    cc = r.get("compute_capability", "nvmlDeviceGetCudaComputeCapability", handle)
    unc = getattr(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
    procs = r.get("processes", ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses"),
                  handle)
    mig = r.get("mig_mode", "nvmlDeviceGetMigMode", handle)
    return Gpu(
        index=index,
        uuid=r.get("uuid", "nvmlDeviceGetUUID", handle, convert=_text),
        name=r.get("name", "nvmlDeviceGetName", handle, convert=_text),
        memory_total_bytes=getattr(mem, "total", None), memory_used_bytes=getattr(mem, "used", None),
        memory_free_bytes=getattr(mem, "free", None),
        cc_major=cc[0] if cc else None, cc_minor=cc[1] if cc else None,
        ecc_uncorrected_volatile=r.get("ecc_volatile", "nvmlDeviceGetTotalEccErrors", handle, unc,
                                       getattr(nvml, "NVML_VOLATILE_ECC", 0)),
        ecc_uncorrected_aggregate=r.get("ecc_aggregate", "nvmlDeviceGetTotalEccErrors", handle, unc,
                                        getattr(nvml, "NVML_AGGREGATE_ECC", 1)),
        temperature_c=r.get("temperature", "nvmlDeviceGetTemperature", handle,
                            getattr(nvml, "NVML_TEMPERATURE_GPU", 0)),
        throttle_reasons=r.get("throttle", ("nvmlDeviceGetCurrentClocksEventReasons",
                                            "nvmlDeviceGetCurrentClocksThrottleReasons"), handle,
                               convert=decode_throttle),
        power_draw_w=r.get("power_draw", "nvmlDeviceGetPowerUsage", handle, convert=lambda mw: mw / 1000),
        power_limit_w=r.get("power_limit", "nvmlDeviceGetEnforcedPowerLimit", handle, convert=lambda mw: mw / 1000),
        pcie_gen=r.get("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", handle),
        pcie_gen_max=r.get("pcie_gen_max", "nvmlDeviceGetMaxPcieLinkGeneration", handle),
        pcie_width=r.get("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", handle),
        pcie_width_max=r.get("pcie_width_max", "nvmlDeviceGetMaxPcieLinkWidth", handle),
        persistence_mode=r.get("persistence_mode", "nvmlDeviceGetPersistenceMode", handle, convert=bool),
        mig_mode=bool(mig[0]) if isinstance(mig, (list, tuple)) and mig else None,
        processes=None if procs is None else tuple(
            GpuProcess(pid=int(p.pid), name=_process_name(int(p.pid)),
                       used_memory_bytes=p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None)
            for p in procs),
        unknown=r.unknown,
    )


def read_nvml() -> tuple[str | None, str | None, list[Gpu]]:
    """(driver, cuda, gpus) through NVML; raises RuntimeError with the reason if NVML is unusable."""
    try:
        import pynvml as nvml
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"nvidia-ml-py not importable: {type(exc).__name__}: {exc}") from None
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
    try:
        r = _Reader(nvml)
        driver = r.get("driver", "nvmlSystemGetDriverVersion", convert=_text)
        cuda = r.get("cuda", ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"),
                     convert=parse_cuda_driver_version)
        count = r.get("count", "nvmlDeviceGetCount") or 0
        return driver, cuda, [_gpu(nvml, i) for i in range(count)]
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def read_smi(environ) -> tuple[list[Gpu], str | None, str | None]:
    """(gpus, driver, error) from nvidia-smi."""
    exe = shutil.which("nvidia-smi", path=environ.get("PATH")) or shutil.which("nvidia-smi", path=WSL_LIB)
    if not exe:  # WSL 2 keeps it in /usr/lib/wsl/lib, off PATH under sudo, cron and systemd
        return [], None, "nvidia-smi not found on PATH"
    done = subproc.run([exe, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"], timeout=5)
    if done.returncode != 0:
        why = "timed out" if done.timed_out else (done.start_error or (done.stdout + done.stderr).strip()[-300:])
        return [], None, f"nvidia-smi failed: {why}"
    gpus, driver = parse_smi_csv(done.stdout)
    return gpus, driver, None if gpus else "nvidia-smi printed no GPU"


def probe_gpu(ctx) -> GpuFacts:
    environ = ctx.environ
    proc_version = parse_proc_version(read_text("/proc/driver/nvidia/version"))
    cvd = environ.get("CUDA_VISIBLE_DEVICES")
    nvml_error = smi_error = None
    try:
        driver, cuda, gpus = read_nvml()
        source = "nvml"
    except RuntimeError as exc:
        nvml_error = str(exc)
        gpus, driver, smi_error = read_smi(environ)
        cuda, source = None, "nvidia-smi" if gpus else "none"
    if source == "none" and proc_version:
        driver, source = proc_version, "proc"
    visible, problem, unmatched = select_visible(cvd, gpus)
    gpus = tuple(replace(g, visible=g.index in visible) for g in gpus)
    return GpuFacts(source=source, driver_version=driver or proc_version, cuda_driver_version=cuda,
                    proc_driver_version=proc_version, nvml_error=nvml_error, smi_error=smi_error,
                    cuda_visible_devices=cvd, visible_problem=problem if gpus else None,
                    visible_unmatched=unmatched if gpus else None, gpus=gpus)


class ProcessMemory:
    """GPU memory NVML counts for one process, summed over GPUs: what nvidia-smi shows per
    process (CUDA context, allocator pools and library workspaces, which torch's own
    counters leave out). ``read()`` is None wherever NVML cannot say (no driver, no
    nvidia-ml-py, a container hiding other PIDs); use as a context manager."""

    def __init__(self, pid: int):
        self.pid = pid
        self._nvml = None
        self._handles: list = []
        self.why: str | None = None

    def __enter__(self) -> "ProcessMemory":
        try:
            import pynvml as nvml

            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - not importable, library not found, driver not loaded
            self.why = f"NVML unusable: {type(exc).__name__}: {exc}"
            return self
        self._nvml = nvml
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        except Exception as exc:  # noqa: BLE001
            self.why = f"NVML lists no device: {type(exc).__name__}: {exc}"
        return self

    def read(self) -> int | None:
        if self._nvml is None or not self._handles:
            return None
        total, seen = 0, False
        for handle in self._handles:
            try:
                procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:  # noqa: BLE001
                return None
            for p in procs:
                if int(p.pid) == self.pid and isinstance(p.usedGpuMemory, int):
                    total += p.usedGpuMemory
                    seen = True
        return total if seen else None

    def __exit__(self, *exc) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
            self._nvml = None
