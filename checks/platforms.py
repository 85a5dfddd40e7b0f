"""Windows, WSL 2 and macOS: what breaks only there, judged from the platform facts
(``llmdoctor/probes/platform.py``), the target environment and torch. Sources for every
rule: ``checks/data/platforms.json``."""

from __future__ import annotations

import re

from packaging.version import Version

from llmdoctor.command import Ref, run, setvar
from llmdoctor.data import row
from llmdoctor.model import Status, check
from llmdoctor.units import gib

from llmdoctor.checks.failures import import_text, live_error
from llmdoctor.checks.python import pip_cmd
from llmdoctor.checks.requirements import installed_versions

WSL_LIB = "/usr/lib/wsl/lib"


OTHER = "For another platform"  #: one skip title for all of them, so they fold into one line


def spec(name: str) -> dict:
    return row("llmdoctor.checks", "platforms", "name", name)


def _limit(name: str) -> dict:
    return row("llmdoctor.checks", "system_limits", "name", name)


def _version(installed: dict, name: str) -> Version | None:
    hit = installed.get(name)
    return hit[1] if hit else None


# --- WSL 2 -----------------------------------------------------------------

@check("system.wsl", category="system", needs=["system", "platform"])
def wsl_check(facts, c):
    """WSL 2's GPU plumbing: a Linux driver inside WSL, /usr/lib/wsl/lib off PATH or out of the linker's cache, triton's -lcuda."""
    s, p = facts.value("system"), facts.value("platform")
    w = p.wsl
    if s.wsl != 2 or w is None:
        yield c.finding(Status.SKIP, OTHER)
        return
    problems = 0
    if w.linux_driver_packages or w.linux_driver_files:
        problems += 1
        d = spec("wsl_linux_driver")
        what = ", ".join(w.linux_driver_packages) or ", ".join(w.linux_driver_files)
        fix = (run("sudo", "apt-get", "remove", "--purge", *w.linux_driver_packages) if w.linux_driver_packages else
               "remove the Linux NVIDIA driver that put " + ", ".join(w.linux_driver_files) + " there")
        yield c.finding(Status.FAIL, f"A Linux NVIDIA driver is installed inside WSL ({what}): it hides the Windows "
                        "driver's libcuda that WSL provides, and CUDA fails", id="system.wsl-linux-driver",
                        detail=d["why"] + (f" Files of a Linux driver: {', '.join(w.linux_driver_files)}."
                                           if w.linux_driver_files else ""), fix=fix, docs=d["source"])
    if not w.lib_dir_exists:
        problems += 1
        d = spec("wsl_no_lib")
        yield c.finding(Status.WARN, f"{WSL_LIB} does not exist: this WSL 2 has no GPU support", id="system.wsl-no-gpu",
                        detail=d["why"], fix=("in Windows PowerShell: ", run("wsl", "--update", shell="powershell"),
                                              "; then update the Windows NVIDIA driver and run ",
                                              run("wsl", "--shutdown", shell="powershell")), docs=d["source"])
        return
    names = {f.path.rsplit("/", 1)[-1]: f for f in w.lib_files}
    if "nvidia-smi" in names and not w.on_path:
        problems += 1
        d = spec("wsl_path")
        where = "under sudo (its secure_path)" if w.sudo else "as a systemd service" if w.service else "here"
        yield c.finding(Status.WARN, f"{WSL_LIB} is not on PATH {where}: nvidia-smi is 'command not found' and "
                        "tools that look for it see no GPU", id="system.wsl-path", detail=d["why"],
                        fix=(run("sudo", "env", ("PATH=", Ref("PATH"), ":" + WSL_LIB), "<command>") if w.sudo else
                             f"Environment=PATH=/usr/local/bin:/usr/bin:/bin:{WSL_LIB}   (in the unit's [Service])"
                             if w.service else (setvar("PATH", Ref("PATH"), ":" + WSL_LIB), "   (in the job's "
                                                "environment: a crontab line PATH=..., or the service's Environment=)")),
                        docs=d["source"])
    cached = [x for x in w.ld_cache_libcuda if x.startswith(WSL_LIB + "/")]
    if not cached and not w.ld_cache_error and "libcuda.so.1" in names:
        problems += 1
        d = spec("wsl_ld_cache")
        yield c.finding(Status.WARN, f"The dynamic linker's cache does not list {WSL_LIB}/libcuda.so.1"
                        + ("" if w.ld_conf else " (no /etc/ld.so.conf.d file names that folder)")
                        + ": programs that load libcuda by name do not find the driver", id="system.wsl-ld-cache",
                        detail=d["why"], fix=(run("sudo", "sh", "-c", f"echo {WSL_LIB} > /etc/ld.so.conf.d/ld.wsl.conf")
                                              if not w.ld_conf else None, run("sudo", "ldconfig")), docs=d["source"])
    t = facts.value("target")
    installed = installed_versions(t) if t is not None else {}
    triton = _version(installed, "triton") or _version(installed, "pytorch-triton")
    if triton is not None:
        d = spec("wsl_triton")
        lib_dirs = {x.rsplit("/", 1)[0] for x in w.ld_cache_libcuda if x.rsplit("/", 1)[-1] == "libcuda.so.1"}
        unlinked = sorted(x for x in lib_dirs if x != WSL_LIB)
        fix = setvar("TRITON_LIBCUDA_PATH", WSL_LIB) + setvar("LIBRARY_PATH", WSL_LIB + ":", Ref("LIBRARY_PATH"))
        if triton < Version(d["first_good"]):
            problems += 1
            yield c.finding(Status.WARN, f"triton {triton} looks for libcuda.so with `whereis`, which never finds "
                            f"{WSL_LIB}: torch.compile stops with '/usr/bin/ld: cannot find -lcuda'",
                            id="system.wsl-triton", detail=d["why"], fix=fix, docs=d["issue"])
        elif WSL_LIB not in lib_dirs or unlinked:
            problems += 1
            where = (f"also lists libcuda.so.1 in {', '.join(unlinked)} (a Linux driver's copy)" if WSL_LIB in lib_dirs
                     else f"lists libcuda.so.1 only in {', '.join(unlinked)}" if unlinked else
                     "does not list libcuda.so.1 at all")
            yield c.finding(Status.WARN, f"triton {triton} links -lcuda in the folders where the linker's cache lists "
                            f"libcuda.so.1, and the cache {where}: torch.compile stops with 'cannot find -lcuda' or "
                            "'libcuda.so cannot found!'", id="system.wsl-triton", detail=d["why"], fix=fix,
                            docs=d["source"])
    if not problems:
        yield c.finding(Status.OK, f"WSL 2 GPU plumbing in place: {WSL_LIB} holds the Windows driver's "
                        f"{', '.join(sorted(names)) or 'files'}, on PATH and in the linker's cache; no Linux driver "
                        "inside WSL", docs=spec("wsl_linux_driver")["source"])


@check("system.wsl-memory", category="system", needs=["system", "platform"])
def wsl_memory_check(facts, c):
    """WSL 2's memory cap (.wslconfig): the cause when a model load ends with 'Killed'."""
    s, p = facts.value("system"), facts.value("platform")
    if s.wsl != 2 or p.wsl is None or s.ram_total_bytes is None:
        yield c.finding(Status.SKIP, OTHER if s.wsl != 2 or p.wsl is None else "RAM size unknown")
        return
    w, d = p.wsl, spec("wsl_memory")
    cap = (f"memory={w.wslconfig_memory} in {w.wslconfig}" if w.wslconfig_memory else
           "WSL's default: half of Windows' RAM")
    low = _limit("ram_warn_bytes")
    title = f"WSL 2 gives Linux {gib(s.ram_total_bytes)} of RAM ({cap})"
    if s.ram_total_bytes < low["value"]:
        need = -(-low["value"] // 2**30)  # whole GiB, rounded up
        if not w.wslconfig_memory and 2 * s.ram_total_bytes * 0.75 < low["value"]:
            fix = (f"Windows has about {gib(2 * s.ram_total_bytes)}: load 4-bit, or a model of 3B or fewer "
                   "parameters")  # raising the cap would leave Windows itself too little
        else:
            fix = (f"set memory={need}GB under [wsl2] in %UserProfile%\\.wslconfig (Windows keeps the rest), then "
                   "in Windows PowerShell: ", run("wsl", "--shutdown", shell="powershell"))
        yield c.finding(Status.WARN, title + ": loading a 7B model ends with 'Killed' (the OOM killer) whatever "
                        "Windows has free", id="system.wsl-memory-cap", detail=d["why"], fix=fix, docs=d["source"])
    else:
        yield c.finding(Status.INFO, title + ": a load beyond it ends with 'Killed'", detail=d["why"],
                        docs=d["source"])


# --- Windows ---------------------------------------------------------------

_WINERROR_126 = re.compile(r"WinError 126\][^\n]*?([\w.-]+\.dll)", re.I)


def _import_errors(facts) -> list[tuple[str, str]]:
    """(where, text) of every import failure the probes saw in the target (torch's live test,
    the extension and native-package imports)."""
    out = []
    t = facts.value("torch")
    if t is not None:
        if live_error(t):
            out.append(("import torch", live_error(t)))
        if t.live is not None and t.live.error:
            out.append(("torch", t.live.error))
    for name in ("target.extensions", "target.imports"):
        imp = facts.value(name)
        for r in (imp.results if imp is not None else ()):
            if r.status in ("error", "crash") and import_text(r):
                out.append((f"import {r.module}", import_text(r)))
    return out


@check("system.windows", category="system", needs=["target"])
def windows_check(facts, c):
    """Windows: torch's DLLs failing to load (WinError 126), triton for torch.compile and unsloth, bitsandbytes' Windows wheels."""
    t = facts.value("target")
    if not (t.platform or "").startswith("win"):
        yield c.finding(Status.SKIP, OTHER)
        return
    installed = installed_versions(t)
    torch_facts, p = facts.value("torch"), facts.value("platform")
    torch_version = _version(installed, "torch")
    problems = 0
    dll = spec("windows_dll")
    failing = [(where, m) for where, text in _import_errors(facts) for m in [_WINERROR_126.search(text)] if m]
    system_dlls = p.windows.system_dlls if p is not None and p.windows is not None else {}
    torch_dlls = set(torch_facts.lib_dlls) if torch_facts is not None else set()
    runtime_missing = [n for n in ("vcruntime140.dll", "vcruntime140_1.dll", "msvcp140.dll")
                       if system_dlls.get(n) is False and n not in torch_dlls]
    libomp = "libomp140.x86_64.dll"
    libomp_missing = (torch_version is not None and str(torch_version) == dll["libomp_torch"]
                      and system_dlls.get(libomp) is False and libomp not in torch_dlls)
    if failing or runtime_missing or libomp_missing:
        problems += 1
        missing = runtime_missing + ([libomp] if libomp_missing else [])
        seen = f"{failing[0][0]} fails: [WinError 126] loading {failing[0][1].group(1)}" if failing else \
            "import torch will fail with [WinError 126]"
        cause = (f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing" if missing else
                 "a DLL it depends on is missing (the Visual C++ runtime, or libomp140.x86_64.dll for torch 2.4.0)")
        fix = f"install the Microsoft Visual C++ Redistributable (x64): {dll['redist']}"
        if libomp_missing or (failing and torch_version is not None and str(torch_version) == dll["libomp_torch"]):
            fix += "; or move off torch 2.4.0 (2.4.1 and later do not need libomp140)"
        yield c.finding(Status.FAIL, f"{seen}: {cause}, not a broken torch (reinstalling it changes nothing)",
                        id="system.windows-dll", detail=dll["why"], fix=fix, docs=dll["source"])
    triton = spec("windows_triton")
    has_triton = any(n in installed for n in ("triton-windows", "triton"))
    cuda_torch = torch_facts is not None and torch_facts.installed and torch_facts.build == "cuda"
    if not has_triton and ("unsloth" in installed or cuda_torch):
        minor = f"{torch_version.major}.{torch_version.minor}" if torch_version else None
        below = triton["below"].get(minor) if minor else None
        fix = (pip_cmd(facts, "install", "-U", f"triton-windows<{below}" if below else "triton-windows"),
               "" if below else f"   (the release that pairs with torch {minor}: {triton['source']})")
        if "unsloth" in installed:
            problems += 1
            yield c.finding(Status.FAIL, "unsloth is installed but triton is not: on Windows unsloth does not import "
                            "without the triton-windows package", id="system.windows-triton", detail=triton["why"],
                            fix=fix, docs=triton["unsloth"])
        else:
            yield c.finding(Status.INFO, f"No triton for torch {torch_version}: torch.compile on the GPU fails on "
                            "Windows ('Cannot find a working triton installation'); eager mode is unaffected",
                            id="system.windows-triton", detail=triton["why"], fix=fix, docs=triton["below_source"])
    bnb = spec("windows_bitsandbytes")
    bnb_version = _version(installed, "bitsandbytes")
    if bnb_version is not None and bnb_version < Version(bnb["first_good"]):
        problems += 1
        yield c.finding(Status.FAIL, f"bitsandbytes {bnb_version} has no Windows build: its CUDA setup fails at "
                        f"import (Windows wheels from {bnb['first_good']})", id="system.windows-bitsandbytes",
                        detail=bnb["why"], fix=pip_cmd(facts, "install", "-U", f"bitsandbytes>={bnb['first_good']}"),
                        docs=bnb["source"])
    if not problems:
        yield c.finding(Status.OK, "Windows: torch's runtime DLLs are present"
                        + (", triton-windows is installed" if has_triton else "")
                        + (f", bitsandbytes {bnb_version} has Windows wheels" if bnb_version else ""))


# --- macOS -----------------------------------------------------------------

@check("system.macos", category="system", needs=["system"])
def macos_check(facts, c):
    """macOS: an arm64 Python or an x86_64 one under Rosetta, MPS with this torch, and what runs instead of CUDA."""
    s = facts.value("system")
    if s.os != "Darwin":
        yield c.finding(Status.SKIP, OTHER)
        return
    p, t, torch_facts = facts.value("platform"), facts.value("target"), facts.value("torch")
    mac = p.macos if p is not None else None
    machine = (t.machine if t is not None else None) or s.machine
    silicon = mac.apple_silicon if mac is not None else None
    rosetta = machine == "x86_64" and bool(silicon)
    x86 = spec("macos_x86")
    # an x86_64 Python built with an old SDK reads macOS as 10.16 under Rosetta: not worth repeating
    shown = mac is not None and mac.version and not (mac.translated and mac.version.startswith("10.16"))
    version = f"macOS {mac.version}" if shown else "macOS"
    if rosetta:
        yield c.finding(Status.WARN, f"This Python is x86_64, running under Rosetta 2 on Apple silicon: the newest "
                        f"torch it can install is {x86['last']}, and it cannot use the Apple GPU (MPS)",
                        id="system.macos-rosetta", detail=x86["why"],
                        fix="install an arm64 Python (python.org's universal2 installer, or Homebrew in /opt/homebrew) "
                            "and recreate the environment with it", docs=x86["source"])
    elif machine == "x86_64":
        yield c.finding(Status.INFO, f"Intel Mac ({version}): torch {x86['last']} is the last release with wheels "
                        "for it", id="system.macos-intel", detail=x86["why"], docs=x86["source"])
    else:
        yield c.finding(Status.OK, f"{version} on Apple silicon with an arm64 Python")
    mps = spec("macos_mps")
    if torch_facts is None or not torch_facts.installed:
        return
    live = torch_facts.live
    if live is None or live.mps_built is None:
        why = live_error(torch_facts) or ("torch was not imported" if torch_facts.live_skip_kind else
                                         torch_facts.live_skipped or "torch was not asked")
        yield c.finding(Status.SKIP, f"MPS not checked: {why.splitlines()[0]}", id="system.macos-mps")
    elif live.mps_available:
        yield c.finding(Status.OK, f"torch {torch_facts.version} can use the Apple GPU: device='mps'",
                        id="system.macos-mps", docs=mps["source"])
    elif rosetta:
        yield c.finding(Status.INFO, f"torch {torch_facts.version} cannot use the Apple GPU (MPS) from an x86_64 "
                        "Python under Rosetta: everything runs on the CPU (an arm64 Python fixes both)",
                        id="system.macos-mps", detail=mps["why"], docs=mps["source"])
    elif live.mps_built:
        yield c.finding(Status.WARN, f"torch {torch_facts.version} has MPS, but it is not available here ({version}"
                        f"{', Intel' if machine == 'x86_64' else ''}): everything runs on the CPU",
                        id="system.macos-mps", detail=mps["why"],
                        fix="update macOS (MPS needs 12.3 or newer; current torch releases need 14)", docs=mps["source"])
    else:
        yield c.finding(Status.WARN, f"torch {torch_facts.version} was built without MPS: everything runs on the CPU",
                        id="system.macos-mps", detail=mps["why"],
                        fix=(pip_cmd(facts, "install", "-U", "torch"), "   (the arm64 macOS wheels have MPS)"),
                        docs=mps["source"])


def macos_no_cuda_title() -> str:
    """gpu.presence's line on a Mac: no CUDA, said once, with what works instead."""
    return ("No CUDA on macOS: torch uses the Apple GPU through MPS (device='mps'); CUDA-only packages "
            "(flash-attn, DeepSpeed's CUDA ops, vLLM, bitsandbytes' CUDA kernels) do not run here")
