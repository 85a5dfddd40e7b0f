"""Discover and load plugins from entry points; a broken plugin is a finding, not a crash.

Group ``llmdoctor.checks``: an entry point's object is a :class:`~llmdoctor.model.Check`,
an iterable of them, or a callable returning either. Group ``llmdoctor.fixes``: the same
with :class:`~llmdoctor.fix.model.Fix`. The built-ins register exactly this way (pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Iterable, Mapping, Sequence

from llmdoctor.model import Check, Finding, Status

CHECK_GROUP = "llmdoctor.checks"
FIX_GROUP = "llmdoctor.fixes"
BUILTIN_DIST = "llmdoctor"
BUILTIN_VALUE = {CHECK_GROUP: "llmdoctor.checks:builtin_checks", FIX_GROUP: "llmdoctor.fixes:builtin_fixes"}
AUTOLOAD_ENV = "LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD"
PLUGIN_CATEGORY = ("plugin", "Plugins")  #: the category of the findings about plugins that broke


@dataclass(frozen=True)
class Loaded:
    checks: tuple  #: Check objects (or Fix objects, for the fixes group)
    problems: tuple[Finding, ...]  #: one `error` finding per plugin that failed

    @property
    def fixes(self) -> tuple:
        return self.checks


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None and dist.name else "?"


def _source(ep) -> str:
    dist = _dist_name(ep)
    if dist == BUILTIN_DIST or (dist == "?" and ep.value in BUILTIN_VALUE.values()):
        return "builtin"
    return ep.name if dist == "?" else dist


def autoload_disabled(environ: Mapping[str, str]) -> bool:
    return (environ.get(AUTOLOAD_ENV) or "").strip().lower() not in ("", "0", "false", "no")


def discover(group: str = CHECK_GROUP, environ: Mapping[str, str] | None = None):
    """Entry points of ``group``, built-ins first then sorted by name; built-ins only when
    LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD is set."""
    environ = os.environ if environ is None else environ
    eps = list(metadata.entry_points(group=group))
    if autoload_disabled(environ):
        eps = [ep for ep in eps if _source(ep) == "builtin"]
    if not any(_source(ep) == "builtin" for ep in eps):
        # a broken or partial install must still run the built-ins
        eps.append(metadata.EntryPoint("builtin", BUILTIN_VALUE[group], group))
    unique = {(ep.name, ep.value): ep for ep in eps}  # one distribution seen twice on sys.path
    return sorted(unique.values(), key=lambda ep: (_source(ep) != "builtin", ep.name))


def _items(obj, kind: type, source: str) -> list:
    if callable(obj) and not isinstance(obj, kind):
        obj = obj()
    items = [obj] if isinstance(obj, kind) else list(obj)
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"expected {kind.__module__}.{kind.__name__} objects, got {type(item).__name__}")
    return [dataclasses.replace(item, source=source) for item in items]


def _load(group: str, kind: type, entry_points, environ) -> Loaded:
    eps = discover(group, environ) if entry_points is None else list(entry_points)
    items: list = []
    problems: list[Finding] = []
    seen: dict[str, str] = {}
    for ep in eps:
        source = _source(ep)
        try:
            loaded = _items(ep.load(), kind, source)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin calling sys.exit() too
            problems.append(Finding(
                id=f"plugin.{ep.name}.load-failed", category=PLUGIN_CATEGORY[0], status=Status.ERROR,
                title=f"Plugin {ep.name!r} ({source}) failed to load: {type(exc).__name__}: {exc}",
                detail=f"entry point {ep.name} = {ep.value} in group {group}; the rest of the run goes on.",
                fix=f"pip uninstall {source}" if source != "builtin" else None, check="plugin"))
            continue
        for item in loaded:
            if item.id in seen:
                problems.append(Finding(
                    id=f"plugin.{ep.name}.duplicate-id", category=PLUGIN_CATEGORY[0], status=Status.ERROR,
                    title=f"{item.id!r} from {source} is already registered by {seen[item.id]}; ignored",
                    check="plugin"))
                continue
            seen[item.id] = source
            items.append(item)
    return Loaded(tuple(items), tuple(problems))


def load_checks(entry_points: Iterable | None = None, environ: Mapping[str, str] | None = None) -> Loaded:
    return _load(CHECK_GROUP, Check, entry_points, environ)


def load_fixes(entry_points: Iterable | None = None, environ: Mapping[str, str] | None = None) -> Loaded:
    from llmdoctor.fix.model import Fix

    return _load(FIX_GROUP, Fix, entry_points, environ)


#: ids checks had before every id started with its category; --only, --skip and --replay accept them
ALIASES = {"net": "network", "hub.remote-code": "cache.remote-code"}


class SelectionError(ValueError):
    """--only / --skip name something no check matches."""


def canonical(pattern: str) -> str:
    """An old id or glob in today's words: net.hub -> network.hub, net.* -> network.*."""
    for old, new in ALIASES.items():
        if pattern == old or pattern.startswith(old + ".") or pattern.startswith(old + "-") \
                or pattern.startswith(old + "*"):
            return new + pattern[len(old):]
    return pattern


def _hit(check: Check, pattern: str) -> bool:
    p = canonical(pattern.strip())
    return (fnmatch.fnmatchcase(check.id, p) or check.id.startswith(p + ".") or check.id == p
            or check.category == p or fnmatch.fnmatchcase(check.category, p))


def matches(check_id: str, patterns: Sequence[str], category: str | None = None) -> bool:
    """``network.*`` style globs, a bare category (``network``), an id, or an old id (``net.hub``)."""
    probe = Check(id=check_id, category=category or check_id.split(".")[0], description="", run=lambda f: ())
    return any(_hit(probe, p) for p in patterns)


def unmatched(checks: Sequence[Check], patterns: Sequence[str]) -> list[str]:
    return [p for p in patterns if not any(_hit(c, p) for c in checks)]


def validate(checks: Sequence[Check], only: Sequence[str] = (), skip: Sequence[str] = ()) -> None:
    """Raise SelectionError, naming the categories there are, when a pattern of ``only`` or
    ``skip`` matches no check at all (a typo must not silently select nothing)."""
    bad = unmatched(checks, [*only, *skip])
    if bad:
        cats = sorted({c.category for c in checks})
        raise SelectionError(f"{', '.join(repr(b) for b in bad)} matches no check. Categories: {', '.join(cats)}; "
                             "give a category, a check id (see `llmdoctor check --list`) or a glob such as "
                             "'network.*'")


def select(checks: Sequence[Check], only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Check]:
    """The checks ``only`` selects (all when empty) minus those ``skip`` names."""
    out = [c for c in checks if not only or any(_hit(c, p) for p in only)]
    return [c for c in out if not any(_hit(c, p) for p in skip)]
