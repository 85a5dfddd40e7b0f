"""What every probe is built from: the context it runs in, how it says it has no value, its
declaration for the runner, and the one helper that reads a small system file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from llmdoctor.paths import read_text_file
from llmdoctor.target import Target


@dataclass(frozen=True)
class ProbeContext:
    target: Target
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    offline: bool = False
    model: Any = None  #: a probes.model.ModelRequest (check --model / --project), or None
    options: Mapping[str, Any] = field(default_factory=dict)  #: a fix's options, for the probes the fix brings


@dataclass(frozen=True)
class TargetFailure:
    """How the target interpreter failed a step, as data (the runner and the checks word it)."""

    #: "start-error" (it could not be started: error), "timeout" (still running after seconds),
    #: "signal" (killed by a signal: exit_code is minus its number), "ntstatus" (Windows: it crashed
    #: with the NTSTATUS exit_code), "exit" (it exited with exit_code), "no-result" (it exited without
    #: printing the probe's result; cut_bytes: output left unread), "not-tried" (no time was left)
    kind: str
    #: what it was doing: "start-up", "env-scan", "torch-scan", "torch-live", "import" (of module)
    step: str = ""
    module: str | None = None
    seconds: float | None = None
    exit_code: int | None = None
    error: str | None = None  #: for "start-error": the operating system's error
    cut_bytes: int = 0
    tail: str = ""  #: its last lines of stderr (for "no-result": of stdout), as printed

    @property
    def probe_kind(self) -> str:
        """The runner's kind of probe failure: "timeout" or "crash"."""
        return "timeout" if self.kind in ("timeout", "not-tried") else "crash"


@dataclass(frozen=True)
class ProbeFailed(Exception):
    """Raised by a probe that knows why it has no value (e.g. the target crashed): a built-in
    probe gives ``failure`` (data the runner words); a plugin may give its own ``reason``."""

    reason: str = ""
    kind: str = "exception"  #: "crash" | "timeout" | "exception"
    detail: str = ""
    failure: TargetFailure | None = None

    @classmethod
    def of(cls, failure: TargetFailure) -> "ProbeFailed":
        return cls(kind=failure.probe_kind, detail=failure.tail, failure=failure)

    def __str__(self) -> str:
        return self.reason or (f"{self.failure.kind} ({self.failure.step})" if self.failure else "")


@dataclass(frozen=True)
class Probe:
    name: str
    fn: Callable[[ProbeContext], Any] = field(repr=False)
    type: type = field(repr=False)  #: the fact dataclass it returns (for --replay)
    timeout_s: float = 10.0
    network: bool = False
    description: str = ""
    #: its crash is the user's own problem, not llmdoctor's: the target interpreter crashing means
    #: the user's jobs crash too (a failure, with what to try); any other probe's crash is an error
    crash_is_failure: bool = False


#: the most of a system file read_text reads (the largest, /var/lib/dpkg/status, passes for its own limit)
TEXT_LIMIT = 1 << 20


def read_text(path: str, limit: int = TEXT_LIMIT) -> str | None:
    """A small system file's text (/proc, /sys, /etc, a config a variable names), or None when
    it cannot be read: a named pipe or a device (/dev/zero) is not read, and at most ``limit``
    bytes of a file are (``paths.read_file``)."""
    try:
        return read_text_file(path, limit, cut=True)
    except OSError:
        return None
