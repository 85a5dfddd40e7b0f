"""Facts that only exist on one platform: WSL 2's GPU plumbing and memory cap, Windows'
symlink privilege and runtime DLLs, macOS' CPU (Apple silicon, Rosetta), and which shell
started llmdoctor, with the variables and parent processes that tell (fix commands are
written for that shell).

Each section is read only on its platform and is None elsewhere; nothing is judged here
(``checks/platforms.py`` does that). Values come from files, the registry and ``sysctl``;
a value that cannot be read is None, or an ``*_error`` field says why.
"""

from __future__ import annotations

import configparser
import glob
import os
import platform as platform_mod
import shutil
import sys
from dataclasses import dataclass, field

from llmdoctor import subproc
from llmdoctor.paths import read_file
from llmdoctor.probes.base import ProbeContext, read_text

#: /var/lib/dpkg/status is a few MB on a desktop, tens on a large server
DPKG_STATUS_LIMIT = 64 << 20
WSL_LIB = "/usr/lib/wsl/lib"  #: where WSL 2 mounts the Windows driver's libcuda and nvidia-smi
#: the files of the Windows driver that WSL maps in, and what a Linux driver would put elsewhere
DRIVER_FILES = ("libcuda.so", "libcuda.so.1", "libcuda.so.1.1", "libnvidia-ml.so.1", "nvidia-smi")
LINUX_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64")
#: Debian / Ubuntu packages of a Linux NVIDIA driver (the CUDA toolkit's "cuda" meta package pulls one in)
LINUX_DRIVER_PACKAGES = ("nvidia-driver-", "nvidia-utils-", "libnvidia-compute-", "nvidia-dkms-", "cuda-drivers",
                         "nvidia-kernel-common-")
#: variables that tell which shell (or terminal) started llmdoctor; values kept when short
SHELL_VARIABLES = ("SHELL", "ComSpec", "PSModulePath", "PSExecutionPolicyPreference", "MSYSTEM", "TERM_PROGRAM",
                   "WT_SESSION", "PROMPT", "WSL_DISTRO_NAME", "TERM")
#: runtime DLLs torch's own DLLs load from System32 (the Visual C++ Redistributable, and the
#: LLVM OpenMP runtime torch 2.4.0's fbgemm.dll links)
WINDOWS_DLLS = ("vcruntime140.dll", "vcruntime140_1.dll", "msvcp140.dll", "libomp140.x86_64.dll")


@dataclass(frozen=True)
class LibFile:
    path: str
    symlink: bool = False
    target: str | None = None  #: where the link points


@dataclass(frozen=True)
class WslFacts:
    lib_dir: str = WSL_LIB
    lib_dir_exists: bool = False
    lib_files: tuple[LibFile, ...] = ()  #: the driver's files WSL maps into lib_dir
    on_path: bool = False  #: lib_dir is on PATH (not under sudo's secure_path, cron or systemd)
    ld_conf: str | None = None  #: the /etc/ld.so.conf.d file that names lib_dir
    ld_cache_libcuda: tuple[str, ...] = ()  #: libcuda.so* in the dynamic linker's cache (what triton reads)
    ld_cache_error: str | None = None
    linux_driver_files: tuple[str, ...] = ()  #: libcuda / libnvidia-ml / nvidia-smi outside lib_dir: a Linux driver
    linux_driver_packages: tuple[str, ...] = ()  #: dpkg packages of a Linux NVIDIA driver
    proc_driver: bool = False  #: /proc/driver/nvidia exists (never on WSL: only a Linux kernel module makes it)
    wslconfig: str | None = None  #: the Windows user's .wslconfig, as seen from Linux
    wslconfig_memory: str | None = None  #: its [wsl2] memory= as written ("8GB")
    wslconfig_swap: str | None = None
    wslconfig_error: str | None = None
    sudo: bool = False  #: llmdoctor runs under sudo (SUDO_USER)
    service: bool = False  #: llmdoctor runs as a systemd unit (INVOCATION_ID)


@dataclass(frozen=True)
class WindowsFacts:
    developer_mode: bool | None = None  #: AppModelUnlock\AllowDevelopmentWithoutDevLicense: symlinks without admin
    admin: bool | None = None  #: this process is elevated (symlinks allowed too)
    system_dlls: dict[str, bool] = field(default_factory=dict)  #: WINDOWS_DLLS -> present in System32 or on PATH
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MacFacts:
    version: str | None = None  #: macOS version, platform.mac_ver()
    apple_silicon: bool | None = None  #: sysctl hw.optional.arm64 (1 on an M-series Mac, also under Rosetta)
    translated: bool | None = None  #: sysctl.proc_translated: llmdoctor itself runs under Rosetta 2


@dataclass(frozen=True)
class ShellFacts:
    variables: dict[str, str] = field(default_factory=dict)  #: SHELL_VARIABLES that are set ("set" for long values)
    parents: tuple[str, ...] = ()  #: names of the processes above llmdoctor, nearest first
    #: the shell llmdoctor was started from ("bash", "zsh", "powershell", "pwsh", "cmd"...): the
    #: nearest shell above it (shellingham), else what the variables say (platforms/shell.py)
    detected: str | None = None


@dataclass(frozen=True)
class PlatformFacts:
    os: str  #: platform.system()
    wsl: WslFacts | None = None
    windows: WindowsFacts | None = None
    macos: MacFacts | None = None
    shell: ShellFacts | None = None


def _lib_file(path: str) -> LibFile | None:
    if not os.path.lexists(path):
        return None
    link = os.path.islink(path)
    try:
        target = os.readlink(path) if link else None
    except OSError:
        target = None
    return LibFile(path, link, target)


def dpkg_driver_packages(status_text: str | None) -> tuple[str, ...]:
    """Installed packages of /var/lib/dpkg/status that are a Linux NVIDIA driver."""
    found, name = [], None
    for line in (status_text or "").splitlines():
        if line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Status: ") and name and line.rstrip().endswith(" installed") \
                and name.startswith(LINUX_DRIVER_PACKAGES):
            found.append(name)
    return tuple(sorted(set(found)))


def parse_wslconfig(text: str) -> tuple[str | None, str | None]:
    """([wsl2] memory, swap) as written in a .wslconfig."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, inline_comment_prefixes=("#", ";"))
    parser.read_string(text)
    if not parser.has_section("wsl2"):
        return None, None
    get = lambda key: (parser.get("wsl2", key).strip().strip('"') or None) if parser.has_option("wsl2", key) \
        else None  # noqa: E731
    return get("memory"), get("swap")


def ld_cache_libcuda(text: str) -> tuple[str, ...]:
    """libcuda.so* paths in ``ldconfig -p`` output (``libcuda.so.1 (libc6,x86-64) => /path``)."""
    out = []
    for line in text.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith("libcuda.so") and path:
            out.append(path.strip())
    return tuple(out)


def probe_wsl(environ) -> WslFacts:
    files = tuple(f for f in (_lib_file(os.path.join(WSL_LIB, n)) for n in DRIVER_FILES) if f)
    path_dirs = [os.path.normpath(d) for d in (environ.get("PATH") or "").split(os.pathsep) if d]
    ld_conf = None
    for conf in sorted(glob.glob("/etc/ld.so.conf.d/*.conf")):
        if any(line.strip().rstrip("/") == WSL_LIB for line in (read_text(conf) or "").splitlines()):
            ld_conf = conf
            break
    cache, cache_error = (), None
    ldconfig = next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None)
    if ldconfig:
        done = subproc.run([ldconfig, "-p"], timeout=5)
        if done.returncode == 0:
            cache = ld_cache_libcuda(done.stdout)
        else:
            cache_error = "timed out" if done.timed_out else (done.start_error or done.stderr.strip()[-200:])
    else:
        cache_error = "no ldconfig"
    linux = [p for d in LINUX_LIB_DIRS for n in ("libcuda.so.1", "libnvidia-ml.so.1")
             for p in [os.path.join(d, n)] if os.path.lexists(p)
             and not os.path.realpath(p).startswith(WSL_LIB + "/")]
    linux += [p for p in ("/usr/bin/nvidia-smi", "/bin/nvidia-smi") if os.path.isfile(p)]
    wslconfig = memory = swap = error = None
    candidates = sorted(glob.glob("/mnt/c/Users/*/.wslconfig"))
    user = environ.get("USERPROFILE")  # shared through WSLENV, when it is
    if user and len(user) > 2 and user[1] == ":":
        mine = "/mnt/" + user[0].lower() + user[2:].replace("\\", "/") + "/.wslconfig"
        candidates = [mine] if os.path.exists(mine) else candidates
    if len(candidates) == 1:
        wslconfig = candidates[0]
        try:
            memory, swap = parse_wslconfig(read_file(wslconfig, 65536, cut=True).decode("utf-8-sig", "replace"))
        except (OSError, configparser.Error) as exc:
            error = f"{type(exc).__name__}: {exc}"
    elif len(candidates) > 1:
        error = f"{len(candidates)} Windows users have a .wslconfig: " + ", ".join(candidates)
    return WslFacts(
        lib_dir_exists=os.path.isdir(WSL_LIB), lib_files=files, on_path=WSL_LIB in path_dirs, ld_conf=ld_conf,
        ld_cache_libcuda=cache, ld_cache_error=cache_error, linux_driver_files=tuple(sorted(set(linux))),
        linux_driver_packages=dpkg_driver_packages(read_text("/var/lib/dpkg/status", DPKG_STATUS_LIMIT)),
        proc_driver=os.path.exists("/proc/driver/nvidia"), wslconfig=wslconfig, wslconfig_memory=memory,
        wslconfig_swap=swap, wslconfig_error=error, sudo=bool(environ.get("SUDO_USER")),
        service=bool(environ.get("INVOCATION_ID")))


def probe_windows(environ) -> WindowsFacts:  # pragma: no cover - runs on Windows only
    errors: dict[str, str] = {}
    developer = admin = None
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE,
                            r"SOFTWARE\Microsoft\Windows\CurrentVersion\AppModelUnlock") as key:
            developer = bool(winreg.QueryValueEx(key, "AllowDevelopmentWithoutDevLicense")[0])
    except FileNotFoundError:
        developer = False
    except Exception as exc:  # noqa: BLE001
        errors["developer_mode"] = f"{type(exc).__name__}: {exc}"
    try:
        import ctypes

        admin = bool(ctypes.windll.shell32.IsUserAnAdmin())
    except Exception as exc:  # noqa: BLE001
        errors["admin"] = f"{type(exc).__name__}: {exc}"
    system32 = os.path.join(environ.get("SystemRoot") or environ.get("SYSTEMROOT") or r"C:\Windows", "System32")
    path = system32 + os.pathsep + (environ.get("PATH") or "")
    dlls = {name: bool(shutil.which(name, path=path)) or os.path.isfile(os.path.join(system32, name))
            for name in WINDOWS_DLLS}
    return WindowsFacts(developer_mode=developer, admin=admin, system_dlls=dlls, errors=errors)


def _sysctl(name: str) -> str | None:
    done = subproc.run(["sysctl", "-n", name], timeout=3)
    return done.stdout.strip() if done.returncode == 0 else None


def probe_macos() -> MacFacts:  # pragma: no cover - runs on macOS only
    arm = _sysctl("hw.optional.arm64")
    translated = _sysctl("sysctl.proc_translated")  # absent (an error) on Intel Macs: not translated
    return MacFacts(version=platform_mod.mac_ver()[0] or None, apple_silicon=None if arm is None else arm == "1",
                    translated=translated == "1")


def probe_shell(environ) -> ShellFacts:
    variables = {}
    upper = {k.upper(): k for k in environ}
    for name in SHELL_VARIABLES:
        key = name if name in environ else upper.get(name.upper())
        if key is not None:
            value = environ[key]
            variables[name] = value if len(value) <= 200 else "set"
    parents = []
    try:
        import psutil

        proc = psutil.Process(os.getpid()).parent()
        while proc is not None and len(parents) < 4:
            parents.append(proc.name())
            proc = proc.parent()
    except Exception:  # noqa: BLE001 - a sandbox that hides processes
        pass
    return ShellFacts(variables=variables, parents=tuple(parents),
                      detected=detect_shell(environ, parents, platform_mod.system()))


def detect_shell(environ, parents=None, os_name: str | None = None) -> str | None:
    """The shell this process was started from: shellingham's walk up the process tree
    (the nearest known shell), else the parents' names, else the shell variables."""
    from llmdoctor.platforms import shell as shells

    try:
        import shellingham

        name = shells.normalize(shellingham.detect_shell()[0])
        if name:
            return name
    except Exception:  # noqa: BLE001 - ShellDetectionFailure, a hidden /proc, no ps
        pass
    upper = {k.upper(): v for k, v in environ.items()}
    variables = {n: upper[n.upper()] for n in SHELL_VARIABLES if n.upper() in upper}
    return shells.from_parents(parents) or shells.from_variables(variables, os_name or platform_mod.system())


def probe_platform(ctx: ProbeContext) -> PlatformFacts:
    system = platform_mod.system()
    wsl = windows = macos = None
    if system == "Linux" and (os.path.isdir(WSL_LIB) or "microsoft" in (read_text("/proc/sys/kernel/osrelease") or "")
                              .lower()):
        wsl = probe_wsl(ctx.environ)
    elif sys.platform == "win32":
        windows = probe_windows(ctx.environ)
    elif sys.platform == "darwin":
        macos = probe_macos()
    return PlatformFacts(os=system, wsl=wsl, windows=windows, macos=macos, shell=probe_shell(ctx.environ))
