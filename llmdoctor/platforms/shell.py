"""Which shell the user types fix commands into, as a pure function of what the platform
probe records: the processes above llmdoctor (nearest first) and the shell variables.

The nearest parent process that is a shell wins (shellingham's rule too: ``python.exe``
started by ``llmdoctor.exe`` started by ``powershell.exe`` is PowerShell). Without one:
``MSYSTEM`` is Git Bash / MSYS2 (POSIX), ``SHELL`` names a POSIX login shell outside
Windows, and on Windows ``PROMPT`` (which cmd.exe sets and PowerShell does not) means cmd,
else PowerShell, the default shell of Windows Terminal and of Windows 10 and 11.
"""

from __future__ import annotations

import posixpath
import re

#: process or program names (lower case, without .exe) of shells, as their dialect is named
POSIX_SHELLS = ("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "busybox")
OTHER_SHELLS = ("fish", "tcsh", "csh", "nu", "xonsh", "elvish")  #: shells llmdoctor does not write for
WINDOWS_SHELLS = ("powershell", "pwsh", "cmd")
SHELL_NAMES = POSIX_SHELLS + OTHER_SHELLS + WINDOWS_SHELLS


def normalize(name: str | None) -> str | None:
    """A process or program name as a shell name: ``C:\\...\\pwsh.exe`` -> ``pwsh``,
    ``-bash`` (a login shell) -> ``bash``; None when it is not a shell."""
    if not name:
        return None
    base = re.split(r"[\\/]", str(name).strip())[-1].lower().lstrip("-")
    base = base[:-4] if base.endswith(".exe") else base
    return base if base in SHELL_NAMES else None


def from_parents(parents) -> str | None:
    for name in parents or ():
        shell = normalize(name)
        if shell:
            return shell
    return None


def from_variables(variables: dict, os_name: str | None) -> str | None:
    variables = variables or {}
    windows = (os_name or "").lower() == "windows"
    if variables.get("MSYSTEM"):
        return "bash"
    if not windows:
        return normalize(posixpath.basename(variables.get("SHELL") or "")) or None
    if variables.get("PROMPT"):
        return "cmd"
    return "powershell"


def from_facts(shell_facts, os_name: str | None) -> str | None:
    """The shell a report's facts name: the detected one, else the parents, else the
    variables; PowerShell for a Windows report with nothing recorded; None otherwise."""
    if shell_facts is not None:
        detected = normalize(getattr(shell_facts, "detected", None))
        if detected:
            return detected
        found = from_parents(getattr(shell_facts, "parents", ()))
        if found:
            return found
        found = from_variables(getattr(shell_facts, "variables", {}), os_name)
        if found:
            return found
    return "powershell" if (os_name or "").lower() == "windows" else None
