"""Run a child process with a hard deadline and bounded output; never hang, never raise for
the child's sake, never hold more of what it prints than ``KEEP_BYTES`` per stream (its start
and its end, where a probe's result is): a target that prints 200 MB costs no memory."""

from __future__ import annotations

import atexit
import collections
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
    cut: int = 0  #: bytes of output left out from the middle (it printed more than KEEP_BYTES)

    @property
    def crash(self):
        """How the child ended if it did not exit on its own (a signal on POSIX, an NTSTATUS
        code such as 0xC0000005 on Windows), as a :class:`~llmdoctor.platforms.exitcodes.ExitName`."""
        from llmdoctor.platforms.exitcodes import crash_name

        return crash_name(self.returncode, os.name)

    @property
    def signal_name(self) -> str | None:
        """``SIGSEGV`` when the child was killed by a signal, ``STATUS_ACCESS_VIOLATION
        (0xC0000005)`` when it crashed on Windows."""
        crash = self.crash
        if crash is None:
            return None
        return crash.name if crash.name.startswith(("SIG", "signal")) else f"{crash.name} ({crash.code})"


KEEP_BYTES = 16 * 2**20  #: per stream: the first and the last half of this are kept
CHUNK = 1 << 16
_live: set[subprocess.Popen] = set()
_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    """A probe abandoned at its deadline must not leave its child running after we exit."""
    with _lock:
        for proc in list(_live):
            _kill(proc)


def run(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None,
        cwd: str | None = None, keep: int = KEEP_BYTES) -> Completed:
    """Run ``argv``; on timeout kill its whole process group, so grandchildren holding
    the pipes cannot keep us waiting. Of each stream at most ``keep`` bytes are kept."""
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env) if env is not None else None,
                                cwd=cwd, start_new_session=(os.name != "nt"))
    except (OSError, ValueError) as exc:
        return Completed(argv, None, "", "", start_error=f"{type(exc).__name__}: {exc}")
    with _lock:
        _live.add(proc)
    readers = [_Reader(proc.stdout, keep), _Reader(proc.stderr, keep)]
    timed_out = False
    try:
        try:
            proc.wait(timeout=max(0.01, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        for reader in readers:  # the pipes close when the group is gone; a grandchild may keep them
            reader.join(2 if timed_out else max(2.0, timeout))
    finally:
        with _lock:
            _live.discard(proc)
    (out, cut_out), (err, cut_err) = (r.result() for r in readers)
    return Completed(argv, None if timed_out else proc.returncode, _text(out), _text(err), timed_out=timed_out,
                     cut=cut_out + cut_err)


class _Reader:
    """Drains one pipe in a thread, keeping its first and last ``keep / 2`` bytes."""

    def __init__(self, stream, keep: int):
        self.stream = stream
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_len = 0
        self.cut = 0
        self.half = max(1, keep // 2)
        self.thread = threading.Thread(target=self._drain, daemon=True, name="llmdoctor-pipe")
        self.thread.start()

    def _drain(self) -> None:
        read = getattr(self.stream, "read1", self.stream.read)
        try:
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    break
                room = self.half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                    if not chunk:
                        continue
                self.tail.append(chunk)
                self.tail_len += len(chunk)
                while self.tail_len - len(self.tail[0]) >= self.half:
                    self.cut += len(self.tail[0])
                    self.tail_len -= len(self.tail.popleft())
        except (OSError, ValueError):
            pass
        finally:
            try:
                self.stream.close()
            except OSError:
                pass

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def result(self) -> tuple[bytes, int]:
        return bytes(self.head) + b"".join(list(self.tail)), self.cut


def run_attached(argv: Sequence[str]) -> int:
    """Run ``argv`` with the user's terminal as its output (pip shows its own progress), for the
    commands a fix runs or undoes; its exit code, 127 when it could not start."""
    try:
        return subprocess.run([str(a) for a in argv]).returncode
    except OSError:
        return 127


def kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started (its session), never raising."""
    _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started: its process group on POSIX (it leads one:
    ``start_new_session``), its process tree on Windows, which has no process groups to kill."""
    try:
        if os.name != "nt":
            os.killpg(proc.pid, signal.SIGKILL)
            return
    except (ProcessLookupError, PermissionError, OSError):
        return
    kill_tree(proc.pid)  # pragma: no cover - Windows


def kill_tree(pid: int) -> int:
    """Kill ``pid`` and its descendants: the tree is listed first (psutil follows the parent
    links, as ``taskkill /T`` does), then the root is killed, so it starts nothing more, then
    the rest. Returns how many were killed. Works on every OS; POSIX uses the process group
    instead, which also reaches grandchildren whose parent has already exited."""
    try:
        import psutil

        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except Exception:  # noqa: BLE001 - gone already, or psutil cannot see it
        return 0
    killed = 0
    for p in family:
        try:
            p.kill()
            killed += 1
        except Exception:  # noqa: BLE001 - exited meanwhile, or not ours
            pass
    return killed


def _text(data) -> str:
    if not data:
        return ""
    return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
