"""Facts about the host: OS, WSL, container, CPUs, RAM, swap, /dev/shm and disks.

Everything here is read from /proc, /sys, psutil and os; nothing is judged.
A value that cannot be read is None, with the reason in ``unknown``.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from llmdoctor.paths import hf_hub_cache, home as home_dir
from llmdoctor.platforms.mounts import mount_of
from llmdoctor.probes.base import read_text


@dataclass(frozen=True)
class Disk:
    role: str  #: "home", "hf-cache", ...
    path: str  #: the directory asked about
    existing: str | None  #: the nearest existing ancestor actually measured
    total_bytes: int | None = None
    free_bytes: int | None = None
    fstype: str | None = None
    mountpoint: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SystemFacts:
    os: str  #: platform.system(): Linux, Windows, Darwin
    os_release: str | None = None  #: PRETTY_NAME from /etc/os-release, or platform.platform()
    #: ID then ID_LIKE from /etc/os-release ("ubuntu", "debian"): which package manager fix commands name
    os_like: tuple[str, ...] = ()
    kernel: str | None = None
    machine: str | None = None
    wsl: int | None = None  #: 1 or 2 when running under WSL, else None
    container: str | None = None  #: docker, podman, containerd, kubernetes, lxc... or None
    cpu_logical: int | None = None
    cpu_physical: int | None = None
    cpu_usable: int | None = None  #: CPUs this process may run on (affinity, cgroup quota)
    ram_total_bytes: int | None = None
    ram_available_bytes: int | None = None
    swap_total_bytes: int | None = None
    swap_free_bytes: int | None = None
    cgroup_memory_limit_bytes: int | None = None  #: container / systemd memory cap, if any
    shm_total_bytes: int | None = None
    shm_free_bytes: int | None = None
    disks: tuple[Disk, ...] = ()
    unknown: dict[str, str] = field(default_factory=dict)  #: fact name -> why it is unknown

    @property
    def ram_usable_bytes(self) -> int | None:
        """RAM available to this process now: available memory, capped by a cgroup limit."""
        if self.ram_available_bytes is None:
            return None
        if self.cgroup_memory_limit_bytes:
            return min(self.ram_available_bytes, self.cgroup_memory_limit_bytes)
        return self.ram_available_bytes

    @property
    def cpus_for_jobs(self) -> int:
        """CPUs a parallel build may use: affinity / quota first, at least one."""
        return self.cpu_usable or self.cpu_logical or 1


def detect_wsl(osrelease: str | None, environ) -> int | None:
    text = (osrelease or "").lower()
    if "microsoft" not in text and "wsl" not in text:
        return 2 if environ.get("WSL_INTEROP") else None
    # WSL2 kernels say "microsoft-standard-WSL2"; WSL1 reports "Microsoft" (capital M, no WSL2).
    return 2 if ("wsl2" in text or "microsoft-standard" in text or environ.get("WSL_INTEROP")) else 1


def detect_container(cgroup: str | None, environ, exists=os.path.exists) -> str | None:
    if exists("/.dockerenv"):
        return "docker"
    if exists("/run/.containerenv"):
        return "podman"
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    value = (environ.get("container") or "").strip()
    if value:
        return value
    for word in ("docker", "kubepods", "containerd", "lxc", "libpod"):
        if cgroup and word in cgroup:
            return {"kubepods": "kubernetes", "libpod": "podman"}.get(word, word)
    return None


def cgroup_memory_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = read_text(path)
        if text is None:
            continue
        text = text.strip()
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return None if value >= 1 << 60 else value  # cgroup v1 "unlimited" is a huge number
    return None


def usable_cpus(logical: int | None) -> int | None:
    count = None
    if hasattr(os, "sched_getaffinity"):
        try:
            count = len(os.sched_getaffinity(0))
        except OSError:
            count = None
    quota = read_text("/sys/fs/cgroup/cpu.max")
    if quota:
        parts = quota.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]) > 0:
            limit = max(1, int(int(parts[0]) / int(parts[1])))
            count = min(count, limit) if count else limit
    return count or logical


def _mount_for(path: str, partitions) -> tuple[str | None, str | None]:
    best = mount_of(path, partitions, os.path)
    return (best.fstype, best.mountpoint) if best else (None, None)


def measure_disk(role: str, path: str, partitions=()) -> Disk:
    """Free space where ``path`` would live: the nearest existing ancestor is measured."""
    existing = Path(path).expanduser()
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        usage = shutil.disk_usage(existing)
    except OSError as exc:
        return Disk(role=role, path=path, existing=None, error=f"{type(exc).__name__}: {exc}")
    fstype, mountpoint = _mount_for(str(existing.resolve()), partitions)
    return Disk(role=role, path=path, existing=str(existing), total_bytes=usage.total,
                free_bytes=usage.free, fstype=fstype, mountpoint=mountpoint)


def probe_system(ctx) -> SystemFacts:
    import psutil  # psutil is a core dependency, but keep it off the --help path

    environ = ctx.environ
    unknown: dict[str, str] = {}
    uname = platform.uname()
    osrelease = read_text("/proc/sys/kernel/osrelease") or uname.release
    os_release = None
    ids: dict[str, list[str]] = {"ID": [], "ID_LIKE": []}
    text = read_text("/etc/os-release")
    if text:
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                os_release = value.strip().strip('"')
            elif key in ids:
                ids[key] = value.strip().strip('"').lower().split()[:8]
    os_like = ids["ID"] + ids["ID_LIKE"]
    os_release = os_release or platform.platform()

    try:
        vm = psutil.virtual_memory()
        ram_total, ram_avail = vm.total, vm.available
    except Exception as exc:  # psutil raises on exotic kernels / sandboxes
        ram_total = ram_avail = None
        unknown["ram"] = f"{type(exc).__name__}: {exc}"
    try:
        sm = psutil.swap_memory()
        swap_total, swap_free = sm.total, sm.free
    except Exception as exc:
        swap_total = swap_free = None
        unknown["swap"] = f"{type(exc).__name__}: {exc}"

    shm_total = shm_free = None
    if os.path.isdir("/dev/shm"):
        try:
            st = os.statvfs("/dev/shm")
            shm_total, shm_free = st.f_frsize * st.f_blocks, st.f_frsize * st.f_bavail
        except OSError as exc:
            unknown["shm"] = f"{type(exc).__name__}: {exc}"
    elif uname.system == "Linux":
        unknown["shm"] = "/dev/shm does not exist"

    logical = os.cpu_count()
    try:
        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None

    try:
        partitions = psutil.disk_partitions(all=True)
    except Exception:
        partitions = ()
    home = home_dir(environ)
    disks = (measure_disk("home", home, partitions),
             measure_disk("hf-cache", hf_hub_cache(environ), partitions),
             # where pip unpacks and compiles a source build (judged by the build checks)
             measure_disk("tmp", environ.get("TMPDIR") or tempfile.gettempdir(), partitions))

    return SystemFacts(
        os=uname.system,
        os_release=os_release,
        os_like=tuple(os_like),
        kernel=osrelease.strip() if osrelease else None,
        machine=uname.machine or None,
        wsl=detect_wsl(osrelease, environ) if uname.system == "Linux" else None,
        container=detect_container(read_text("/proc/1/cgroup"), environ) if uname.system == "Linux" else None,
        cpu_logical=logical,
        cpu_physical=physical,
        cpu_usable=usable_cpus(logical),
        ram_total_bytes=ram_total,
        ram_available_bytes=ram_avail,
        swap_total_bytes=swap_total,
        swap_free_bytes=swap_free,
        cgroup_memory_limit_bytes=cgroup_memory_limit() if uname.system == "Linux" else None,
        shm_total_bytes=shm_total,
        shm_free_bytes=shm_free,
        disks=disks,
        unknown=unknown,
    )
