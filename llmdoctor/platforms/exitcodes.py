"""A child's exit status named the way people search for it: ``SIGSEGV`` on POSIX, and on
Windows the NTSTATUS code a crash leaves as the exit code (3221225477 is 0xC0000005,
``STATUS_ACCESS_VIOLATION``: Windows' segfault). Pure: the OS is an argument."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from llmdoctor.platforms.paths import is_windows


@dataclass(frozen=True)
class ExitName:
    name: str  #: "SIGSEGV", "STATUS_ACCESS_VIOLATION", "signal 77", "NTSTATUS 0xC0001234"
    code: str  #: "-11", "0xC0000005"
    means: str = ""  #: what it usually is (NTSTATUS codes on record)
    source: str | None = None


def _ntstatus() -> dict[int, dict]:
    from llmdoctor.data import rows

    return {int(r["code"], 16): r for r in rows("llmdoctor.platforms", "ntstatus")}


def exit_text(returncode: int | None, os_name: str | None = None) -> str:
    """'exited with code 1', 'was killed by SIGSEGV', 'crashed with STATUS_ACCESS_VIOLATION
    (0xC0000005)': how a child ended, in words (the running OS when ``os_name`` is None)."""
    import os

    crash = crash_name(returncode, os.name if os_name is None else os_name)
    if crash is None:
        return f"exited with code {returncode}"
    if crash.name.startswith(("SIG", "signal")):
        return f"was killed by {crash.name}"
    return f"crashed with {crash.name} ({crash.code})"


def crash_name(returncode: int | None, os_name: str) -> ExitName | None:
    """How the process ended if it did not exit on its own: killed by a signal (POSIX), or an
    NTSTATUS error code (Windows: the top two bits set, ``0xC...`` or ``0x8...``); None for a
    plain exit code."""
    if returncode is None or isinstance(returncode, bool):
        return None
    if is_windows(os_name):
        code = returncode & 0xFFFFFFFF  # a negative 32-bit value is the same status
        if code < 0x80000000:
            return None
        row = _ntstatus().get(code)
        text = f"0x{code:08X}"
        if row is None:
            return ExitName(f"NTSTATUS {text}", text) if code >= 0xC0000000 else None
        return ExitName(row["name"], text, row["means"], row["source"])
    if returncode >= 0:
        return None
    try:
        return ExitName(signal.Signals(-returncode).name, str(returncode))
    except ValueError:
        return ExitName(f"signal {-returncode}", str(returncode))
