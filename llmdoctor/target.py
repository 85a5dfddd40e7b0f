"""Which Python environment is the patient: the one the user works in, not llmdoctor's own.

Order: ``--python PATH`` (an interpreter or an environment folder), then an active
VIRTUAL_ENV, then CONDA_PREFIX, else the interpreter running llmdoctor.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping


class TargetError(ValueError):
    """The --python argument names no usable interpreter."""


@dataclass(frozen=True)
class Target:
    python: str  #: interpreter path that probes run
    kind: str  #: "explicit" | "venv" | "conda" | "interpreter"
    prefix: str | None = None  #: environment folder, when known
    note: str | None = None  #: why the choice differs from what the environment said


def _interpreter_in(prefix: str) -> str | None:
    candidates = (
        [os.path.join(prefix, "Scripts", "python.exe"), os.path.join(prefix, "python.exe")]
        if os.name == "nt"
        else [os.path.join(prefix, "bin", "python"), os.path.join(prefix, "bin", "python3")]
    )
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_target(python: str | None = None, environ: Mapping[str, str] | None = None) -> Target:
    environ = os.environ if environ is None else environ
    if python:
        path = os.path.abspath(os.path.expanduser(python))
        if os.path.isdir(path):
            found = _interpreter_in(path)
            if not found:
                raise TargetError(f"{python}: a folder with no bin/python in it")
            return Target(python=found, kind="explicit", prefix=path)
        if not os.path.exists(path):
            raise TargetError(f"{python}: no such file")
        if not os.access(path, os.X_OK):
            raise TargetError(f"{python}: not executable")
        return Target(python=path, kind="explicit")

    notes = []
    for var, kind in (("VIRTUAL_ENV", "venv"), ("CONDA_PREFIX", "conda")):
        prefix = environ.get(var)
        if not prefix:
            continue
        found = _interpreter_in(prefix)
        if found:
            return Target(python=found, kind=kind, prefix=prefix, note="; ".join(notes) or None)
        notes.append(f"{var}={prefix} holds no Python interpreter")
    return Target(python=sys.executable, kind="interpreter", prefix=sys.prefix, note="; ".join(notes) or None)
