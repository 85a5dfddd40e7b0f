"""NVIDIA driver -> the CUDA code it runs, and GPU compute capability -> the kernels that run on it.

Two rules decide whether a driver runs code built with CUDA X.Y:

* natively, when the newest CUDA the driver supports (NVML's ``cudaDriverGetVersion``, or
  the release-notes table when NVML does not say) is at least X.Y;
* under minor-version compatibility, when the driver is at least the minimum of X's family
  (any 12.x on >= 525.60.13), which holds for cubins only: PTX that has to be JIT-compiled
  needs the native rule.

Pure functions over ``data/cuda_drivers.json`` and ``data/gpu_arch_cuda.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from packaging.version import Version

from llmdoctor.data import rows, table
from llmdoctor.versions import parse_version

PKG = "llmdoctor.compat"
MINOR_COMPAT_DOCS = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html"


def mm(v: Version | None) -> tuple[int, int] | None:
    """(major, minor) of a version, for comparisons that ignore patch levels."""
    return None if v is None else (v.major, v.minor)


@lru_cache(maxsize=4096)
def family(cuda_major: int) -> dict | None:
    return next((r for r in table(PKG, "cuda_drivers")["families"] if r["cuda_major"] == cuda_major), None)


#: driver platforms that run NVIDIA's Windows driver: Windows itself, and WSL 2, which maps that driver in
WINDOWS_DRIVER = ("win32", "wsl")


def _column(platform: str) -> str:
    """The column of NVIDIA's tables that holds the drivers of ``platform``."""
    return "windows" if platform in WINDOWS_DRIVER else "linux"


@lru_cache(maxsize=4096)
def family_min_driver(cuda_major: int, platform: str = "linux") -> Version | None:
    """The oldest driver that runs CUDA ``cuda_major``.x cubins (minor-version compatibility)."""
    row = family(cuda_major)
    value = row and row.get(_column(platform))
    return parse_version(value) if value else None


@lru_cache(maxsize=4096)
def native_cuda(driver: Version | None, platform: str = "linux") -> Version | None:
    """The newest CUDA a driver of ``platform`` runs natively, from the release-notes table.
    None where that cannot be told: a Windows driver of a branch at least as new as a CUDA
    release's (R580 for 13.0) for which NVIDIA names no Windows minimum."""
    if driver is None:
        return None
    for r in table(PKG, "cuda_drivers")["toolkits"]:  # newest first
        value = r.get(_column(platform))
        if value is None:  # no minimum on record for this platform
            if driver.major >= Version(r["linux"]).major:
                return None
            continue
        if driver >= Version(value):
            return Version(r["cuda"])
    return None


@dataclass(frozen=True)
class Driver:
    """What is known about this machine's NVIDIA driver."""

    version: Version | None  #: "535.129.03" parsed
    cuda: Version | None  #: the newest CUDA it runs natively ("12.2")
    platform: str = "linux"  #: "linux", "win32", or "wsl" (WSL 2: the Windows driver, seen from Linux)
    text: str | None = None  #: the version as the driver spells it (Version drops leading zeros)

    def __str__(self) -> str:
        return self.text or (str(self.version) if self.version else "?")

    @property
    def known(self) -> bool:
        return self.version is not None or self.cuda is not None


def driver_of(gpu_facts, platform: str = "linux") -> Driver:
    if gpu_facts is None:
        return Driver(None, None, platform)
    text = getattr(gpu_facts, "driver_version", None)
    version = parse_version(text)
    cuda = parse_version(getattr(gpu_facts, "cuda_driver_version", None)) or native_cuda(version, platform)
    return Driver(version, cuda, platform, text if version else None)


def runs_cuda(cuda: Version, driver: Driver, ptx_jit: bool = False) -> bool | None:
    """Whether ``driver`` runs code built with ``cuda`` (None: cannot tell)."""
    if driver.cuda is not None and mm(driver.cuda) >= mm(cuda):
        return True
    if ptx_jit:
        return False if driver.cuda is not None else None
    floor = family_min_driver(cuda.major, driver.platform)
    if floor is None or driver.version is None:
        return False if driver.cuda is not None else None
    return driver.version >= floor


@lru_cache(maxsize=4096)
def min_driver(cuda: Version, ptx_jit: bool = False, platform: str = "linux") -> tuple[str | None, str]:
    """(the oldest driver that runs ``cuda`` code, as NVIDIA writes it; its source)."""
    if ptx_jit:
        for r in table(PKG, "cuda_drivers")["toolkits"]:
            if mm(Version(r["cuda"])) == mm(cuda):
                return r.get(_column(platform)) or None, r["source"]
        return None, MINOR_COMPAT_DOCS
    row = family(cuda.major)
    value = row and row.get(_column(platform))
    return value or None, (row["source"] if row else MINOR_COMPAT_DOCS)


# --- GPU architectures ---------------------------------------------------------

ARCH = re.compile(r"(sm|compute)_(\d+)(\d)a?")


@lru_cache(maxsize=4096)
def kernel_for(cc: tuple[int, int], archs: tuple[str, ...]) -> str | None:
    """How code with arch list ``archs`` runs on compute capability ``cc``: "sass" (a cubin of
    the same major at a minor <= cc's), "ptx" (JIT from compute_XY <= cc), or None."""
    major, minor = cc
    ptx = False
    for arch in archs:
        m = ARCH.fullmatch(arch)
        if not m:
            continue
        a = (int(m.group(2)), int(m.group(3)))
        if m.group(1) == "sm" and a[0] == major and a[1] <= minor:
            return "sass"
        if m.group(1) == "compute" and a <= (major, minor):
            ptx = True
    return "ptx" if ptx else None


def toolkit_window(ccs: Iterable[tuple[int, int]]) -> tuple[Version | None, Version | None]:
    """(oldest, newest) CUDA toolkit that can compile for every one of ``ccs``."""
    low = high = None
    table_ = sorted(rows(PKG, "gpu_arch_cuda"), key=lambda r: Version(r["cc_from"]), reverse=True)
    for cc in ccs:
        row = next((r for r in table_ if Version(f"{cc[0]}.{cc[1]}") >= Version(r["cc_from"])), None)
        if row is None:
            continue
        low = max(filter(None, (low, Version(row["min_cuda"]))))
        if row["max_cuda"]:
            high = min(filter(None, (high, Version(row["max_cuda"]))))
    return low, high
