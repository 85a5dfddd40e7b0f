"""Which machine a fix command is for, read from facts: its OS, its Linux distribution's
package manager, its home folder. A command is only prescribed where it runs: no
``sudo apt`` for a Windows, macOS or Fedora user (words say what to do there instead)."""

from __future__ import annotations

from llmdoctor.command import Command, run
from llmdoctor.platforms.paths import is_windows

#: distribution ids (os-release ID / ID_LIKE) by the package manager they use
DEBIAN_LIKE = ("debian", "ubuntu", "linuxmint", "pop", "raspbian", "kali", "elementary", "neon", "zorin")
FEDORA_LIKE = ("fedora", "rhel", "centos", "rocky", "almalinux", "amzn", "ol")
#: PRETTY_NAME words, for a report written before os_like was recorded
_DEBIAN_WORDS = ("ubuntu", "debian", "mint", "pop!_os", "raspbian", "kali")
_FEDORA_WORDS = ("fedora", "red hat", "centos", "rocky", "almalinux", "amazon linux", "oracle linux")


def os_name(facts) -> str:
    """"Windows", "Darwin" or "Linux" (what platform.system() says), from the system facts or
    the target's sys.platform; "" when neither is known."""
    system = facts.value("system")
    if system is not None and system.os:
        return system.os
    target = facts.value("target")
    plat = (getattr(target, "platform", None) or "").lower()
    return "Windows" if is_windows(plat) else "Darwin" if plat == "darwin" else "Linux" if plat.startswith(
        "linux") else ""


def windows(facts) -> bool:
    return os_name(facts) == "Windows"


def macos(facts) -> bool:
    return os_name(facts) == "Darwin"


def wsl2(facts) -> bool:
    """Linux under WSL 2: the GPU driver is the Windows one, mapped in (never a Linux driver)."""
    system, platform = facts.value("system"), facts.value("platform")
    return getattr(system, "wsl", None) == 2 or getattr(platform, "wsl", None) is not None


def package_manager(facts) -> str | None:
    """"apt" or "dnf" for a Linux whose distribution uses it; None elsewhere or when unknown."""
    if os_name(facts) != "Linux":
        return None
    system = facts.value("system")
    like = tuple(getattr(system, "os_like", ()) or ())
    if any(i in DEBIAN_LIKE for i in like):
        return "apt"
    if any(i in FEDORA_LIKE for i in like):
        return "dnf"
    pretty = (getattr(system, "os_release", None) or "").lower()
    if any(w in pretty for w in _DEBIAN_WORDS):
        return "apt"
    if any(w in pretty for w in _FEDORA_WORDS):
        return "dnf"
    return None


def system_install(facts, apt: tuple[str, ...] = (), dnf: tuple[str, ...] = ()) -> Command | None:
    """``sudo apt install PKGS`` or ``sudo dnf install PKGS`` where this Linux uses that
    manager and the packages are named for it; None elsewhere (the caller says it in words)."""
    manager = package_manager(facts)
    names = apt if manager == "apt" else dnf if manager == "dnf" else ()
    if not names:
        return None
    return run("sudo", manager, "install", *names)


def home_of(facts) -> str | None:
    """The home folder of the machine the facts come from (the system probe's "home" disk),
    None when not recorded."""
    system = facts.value("system")
    home = next((d for d in (getattr(system, "disks", ()) or ()) if d.role == "home"), None)
    return home.path if home is not None and home.path else None


def cuda_home(facts, version: str) -> str:
    """Where the CUDA ``version`` toolkit's installer puts it on this OS (what CUDA_HOME names)."""
    if windows(facts):
        return rf"C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v{version}"
    return f"/usr/local/cuda-{version}"
