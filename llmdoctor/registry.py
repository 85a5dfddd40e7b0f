"""Discover and load check plugins from entry points; a broken plugin is a finding.

A plugin is an entry point in the group ``llmdoctor.checks`` whose object is either
a :class:`~llmdoctor.model.Check`, an iterable of them, or a callable returning
either. The built-in checks register exactly the same way (see pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Iterable, Mapping, Sequence

from .model import Check, Finding, Status

CHECK_GROUP = "llmdoctor.checks"
FIX_GROUP = "llmdoctor.fixes"
BUILTIN_DIST = "llmdoctor"
AUTOLOAD_ENV = "LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class Loaded:
    checks: tuple[Check, ...]
    problems: tuple[Finding, ...]  #: one `error` finding per plugin that failed


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None and dist.name else "?"


def _source(ep) -> str:
    dist = _dist_name(ep)
    if dist == BUILTIN_DIST or (dist == "?" and ep.value.startswith("llmdoctor.checks")):
        return "builtin"
    return ep.name if dist == "?" else dist


def autoload_disabled(environ: Mapping[str, str]) -> bool:
    return (environ.get(AUTOLOAD_ENV) or "").strip().lower() not in ("", "0", "false", "no")


def discover(group: str = CHECK_GROUP, environ: Mapping[str, str] | None = None):
    """Entry points of ``group``, sorted for determinism; built-ins only when autoload is off."""
    environ = os.environ if environ is None else environ
    eps = list(metadata.entry_points(group=group))
    if autoload_disabled(environ):
        eps = [ep for ep in eps if _dist_name(ep) == BUILTIN_DIST]
    if not any(_dist_name(ep) == BUILTIN_DIST for ep in eps) and group == CHECK_GROUP:
        # Running from a source tree without an install: still have the built-ins.
        eps.append(metadata.EntryPoint("builtin", "llmdoctor.checks:builtin_checks", group))
    # dedupe (the same distribution seen twice on sys.path) and sort by name
    unique = {(ep.name, ep.value): ep for ep in eps}
    return sorted(unique.values(), key=lambda ep: (_dist_name(ep) != BUILTIN_DIST, ep.name))


def _as_checks(obj, source: str) -> list[Check]:
    if callable(obj) and not isinstance(obj, Check):
        obj = obj()
    items = [obj] if isinstance(obj, Check) else list(obj)
    out = []
    for item in items:
        if not isinstance(item, Check):
            raise TypeError(f"expected llmdoctor.model.Check objects, got {type(item).__name__}")
        out.append(dataclasses.replace(item, source=source))
    return out


def load_checks(entry_points: Iterable | None = None, environ: Mapping[str, str] | None = None) -> Loaded:
    eps = discover(environ=environ) if entry_points is None else list(entry_points)
    checks: list[Check] = []
    problems: list[Finding] = []
    seen: dict[str, str] = {}
    for ep in eps:
        source = _source(ep)
        try:
            loaded = _as_checks(ep.load(), source)
        except BaseException as exc:  # SystemExit / KeyboardInterrupt from import-time code too
            if isinstance(exc, KeyboardInterrupt):
                raise
            problems.append(Finding(
                id=f"plugin.{ep.name}.load-failed", category="plugin", status=Status.ERROR,
                title=f"Plugin {ep.name!r} ({source}) failed to load: {type(exc).__name__}: {exc}",
                detail=f"entry point {ep.name} = {ep.value} in group {CHECK_GROUP}; "
                       "its checks did not run, the rest did.",
                fix=f"pip uninstall {source}" if source != "builtin" else None,
                check="plugin"))
            continue
        for item in loaded:
            if item.id in seen:
                problems.append(Finding(
                    id=f"plugin.{ep.name}.duplicate-id", category="plugin", status=Status.ERROR,
                    title=f"Check id {item.id!r} from {source} is already registered by {seen[item.id]}; ignored",
                    check="plugin"))
                continue
            seen[item.id] = source
            checks.append(item)
    return Loaded(tuple(checks), tuple(problems))


def matches(check_id: str, patterns: Sequence[str]) -> bool:
    """``network.*`` style globs; a bare category ``network`` matches its checks too."""
    return any(fnmatch.fnmatchcase(check_id, p) or check_id.startswith(p + ".") or check_id == p
               for p in patterns)


def select(checks: Sequence[Check], only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Check]:
    out = [c for c in checks if not only or matches(c.id, only)]
    return [c for c in out if not matches(c.id, skip)]
