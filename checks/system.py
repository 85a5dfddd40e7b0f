"""Host checks: platform, memory, swap, /dev/shm, disks, CPUs."""

from __future__ import annotations

from llmdoctor.command import run, setvar, template
from llmdoctor.data import row
from llmdoctor.model import Status, check
from llmdoctor.units import gib, size

WSL_GPU_DOCS = "https://learn.microsoft.com/en-us/windows/wsl/tutorials/gpu-compute"


def limit(name: str) -> dict:
    return row("llmdoctor.checks", "system_limits", "name", name)


@check("system.platform", needs=["system"])
def platform_check(facts, c):
    """Operating system, WSL and container detection."""
    s = facts.value("system")
    where = f"{s.os_release or s.os} {s.machine or ''}".strip()
    if s.wsl == 1:
        yield c.finding(Status.FAIL, f"{where} under WSL 1: WSL 1 cannot use the GPU",
                        detail="CUDA on Windows Subsystem for Linux needs WSL 2.",
                        fix=("in Windows PowerShell: ", run("wsl", "--set-version", _distro(facts), "2", shell="powershell")),
                        docs=WSL_GPU_DOCS)
        return
    extras = []
    if s.wsl == 2:
        extras.append("WSL 2")
    if s.container:
        extras.append(f"in a {s.container} container")
    tail = f" ({', '.join(extras)})" if extras else ""
    yield c.finding(Status.INFO, f"{where}{tail}, kernel {s.kernel or 'unknown'}",
                    docs=WSL_GPU_DOCS if s.wsl else None)


def _distro(facts) -> str:
    """This WSL distribution's name (WSL_DISTRO_NAME, as the platform probe recorded it)."""
    p = facts.value("platform")
    shell = getattr(p, "shell", None)
    return (getattr(shell, "variables", None) or {}).get("WSL_DISTRO_NAME") or "<distro>"


@check("system.memory", needs=["system"])
def memory_check(facts, c):
    """Host RAM: enough to load a 7B model, and enough free right now."""
    s = facts.value("system")
    if s.ram_total_bytes is None:
        yield c.finding(Status.SKIP, "RAM size unknown", detail=s.unknown.get("ram", ""))
        return
    total = s.ram_total_bytes
    capped = s.cgroup_memory_limit_bytes is not None and s.cgroup_memory_limit_bytes < total
    if capped:
        total = s.cgroup_memory_limit_bytes
    avail = s.ram_usable_bytes
    cap = f" (a cgroup limit caps this process at {gib(total)} of {gib(s.ram_total_bytes)})" if capped else ""
    low, busy = limit("ram_warn_bytes"), limit("ram_available_warn_bytes")
    if total < low["value"]:
        yield c.finding(Status.WARN, f"Only {gib(total)} of host RAM{cap}: too little to load a 7B model in fp16",
                        detail=low["why"], docs=low["source"],
                        fix="load 4-bit (BitsAndBytesConfig(load_in_4bit=True)) or a model of 3B or fewer parameters")
    elif avail is not None and avail < busy["value"]:
        yield c.finding(Status.WARN, f"Only {gib(avail)} of {gib(total)} RAM available now{cap}",
                        detail=busy["why"], docs=busy["source"],
                        fix="close other programs, or set MAX_JOBS=1 for extension builds")
    else:
        yield c.finding(Status.OK, f"RAM {gib(total)}, {gib(avail)} available{cap}")


@check("system.swap", needs=["system"])
def swap_check(facts, c):
    """Swap space: none means a RAM spike kills the process outright."""
    s = facts.value("system")
    if s.swap_total_bytes is None:
        yield c.finding(Status.SKIP, "Swap size unknown", detail=s.unknown.get("swap", ""))
    elif s.swap_total_bytes == 0:
        yield c.finding(Status.INFO, "No swap: a RAM spike (model load, extension build) kills the process "
                        "instead of slowing it", docs=limit("ram_available_warn_bytes")["source"])
    else:
        yield c.finding(Status.OK, f"Swap {gib(s.swap_total_bytes)}, {gib(s.swap_free_bytes)} free")


@check("system.shm", needs=["system"])
def shm_check(facts, c):
    """/dev/shm size: DataLoader workers and NCCL need more than Docker's 64 MB default."""
    s = facts.value("system")
    if s.os != "Linux":
        yield c.finding(Status.SKIP, f"/dev/shm does not apply on {s.os}")
        return
    if s.shm_total_bytes is None:
        yield c.finding(Status.WARN if s.container else Status.SKIP, "/dev/shm is missing or unreadable",
                        detail=s.unknown.get("shm", ""))
        return
    need = limit("shm_min_bytes")
    if s.shm_total_bytes < need["value"]:
        fix = template(need["fix"], {}) if s.container else run("sudo", "mount", "-o", "remount,size=8G", "/dev/shm")
        where = f" inside this {s.container} container" if s.container else ""
        yield c.finding(Status.WARN, f"/dev/shm is only {size(s.shm_total_bytes)}{where}: DataLoader workers "
                        "die with 'Bus error' and NCCL cannot allocate", detail=need["why"], fix=fix,
                        docs=need["source"])
    else:
        yield c.finding(Status.OK, f"/dev/shm {size(s.shm_total_bytes)}")


@check("system.disk", needs=["system"])
def disk_check(facts, c):
    """Free disk space for the home directory, the Hugging Face cache and the temporary directory."""
    s = facts.value("system")
    groups: dict = {}
    for disk in s.disks:
        key = disk.mountpoint or disk.existing or disk.path
        groups.setdefault(key, []).append(disk)
    for disks in groups.values():
        disk = disks[0]
        roles = " and ".join("the temporary directory" if d.role == "tmp" else d.role for d in disks)
        fid = "system.disk-" + "-".join(d.role for d in disks)
        # a disk holding models is judged by the model thresholds, the temporary directory alone by pip's
        tmp_only = all(d.role == "tmp" for d in disks)
        warn, fail = (limit("tmp_free_warn_bytes"), limit("tmp_free_fail_bytes")) if tmp_only else \
            (limit("disk_free_warn_bytes"), limit("disk_free_fail_bytes"))
        if disk.free_bytes is None:
            yield c.finding(Status.WARN, f"Cannot measure free space for {roles} ({disk.path})", id=fid,
                            detail=disk.error or "")
            continue
        where = f"{gib(disk.free_bytes)} free of {gib(disk.total_bytes)} for {roles} ({disk.existing})"
        fix = _tmp_fix(s, warn["fix"]) if tmp_only else template(warn["fix"], {})
        if tmp_only and not any(d.role != "tmp" and (d.free_bytes or 0) >= warn["value"] for d in s.disks):
            fix = setvar("TMPDIR", f"<a folder on a disk with {gib(warn['value'])} free or more>")
        if disk.free_bytes < fail["value"]:
            yield c.finding(Status.FAIL, f"Disk almost full: {where}", id=fid, detail=fail["why"],
                            fix=fix if tmp_only else template(fail["fix"], {}), docs=fail["source"])
        elif disk.free_bytes < warn["value"]:
            yield c.finding(Status.WARN, f"Low disk: {where}", id=fid, detail=warn["why"],
                            fix=fix, docs=warn["source"])
        else:
            yield c.finding(Status.OK, where[0].upper() + where[1:], id=fid)


def _tmp_fix(s, fix):
    """A tmp folder in the home directory, made and named in TMPDIR (pip and nvcc read it on
    every OS: Python's tempfile tries TMPDIR first)."""
    home = next((d.path for d in s.disks if d.role == "home" and d.path), None)
    if s.os == "Windows" or home is None:
        return "make a folder on a disk with room, then: ", setvar("TMPDIR", "<that folder>")
    return template(fix, {"tmp": home.rstrip("/") + "/tmp"})


@check("system.cpu", needs=["system"])
def cpu_check(facts, c):
    """CPU count, and whether a cgroup or affinity mask limits it."""
    s = facts.value("system")
    usable, logical = s.cpu_usable, s.cpu_logical
    phys = f", {s.cpu_physical} physical" if s.cpu_physical else ""
    if usable and logical and usable < logical:
        yield c.finding(Status.INFO, f"{usable} of {logical} CPUs usable by this process{phys} "
                        "(affinity or cgroup quota): size MAX_JOBS and num_workers to it")
    else:
        yield c.finding(Status.INFO, f"{logical or 'unknown'} CPUs{phys}")
