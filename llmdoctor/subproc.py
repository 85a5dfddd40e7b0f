"""Run a child process with a hard deadline; never hang, never raise for the child's sake."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int | None  #: None when it timed out or could not start
    stdout: str
    stderr: str
    timed_out: bool = False
    start_error: str | None = None  #: why it could not be started

    @property
    def signal_name(self) -> str | None:
        """``SIGSEGV`` when the child was killed by a signal."""
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


_live: set[subprocess.Popen] = set()
_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    """A probe abandoned at its deadline must not leave its child running after we exit."""
    with _lock:
        for proc in list(_live):
            _kill(proc)


def run(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None,
        cwd: str | None = None) -> Completed:
    """Run ``argv``; on timeout kill its whole process group, so grandchildren holding
    the pipes cannot keep us waiting."""
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env) if env is not None else None,
                                cwd=cwd, start_new_session=(os.name != "nt"))
    except (OSError, ValueError) as exc:
        return Completed(argv, None, "", "", start_error=f"{type(exc).__name__}: {exc}")
    with _lock:
        _live.add(proc)
    try:
        out, err = proc.communicate(timeout=max(0.01, timeout))
    except subprocess.TimeoutExpired:
        _kill(proc)
        try:
            out, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
        return Completed(argv, None, _text(out), _text(err), timed_out=True)
    finally:
        with _lock:
            _live.discard(proc)
    return Completed(argv, proc.returncode, _text(out), _text(err))


def _kill(proc: subprocess.Popen) -> None:
    try:
        if os.name != "nt":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _text(data) -> str:
    if not data:
        return ""
    return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
