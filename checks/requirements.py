"""What the target environment has installed and what its distributions require of one
another, read from the target facts (its distributions' Requires-Dist, markers evaluated for
the target's Python). Shared by the dependency, stack, torch and build checks; it defines no
check of its own, so every check module can import it without a cycle."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from llmdoctor.data import table
from llmdoctor.versions import parse_version


@dataclass(frozen=True)
class Need:
    requirer: str  #: "transformers 4.40.0"
    req: Requirement


def applies(req: Requirement, markers: dict, extra: str) -> bool:
    if req.marker is None:
        return True
    try:
        return req.marker.evaluate({**markers, "extra": extra})
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


def parse_requirement(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def _needs(target):
    """(installed by canonical name, requirements by canonical name, malformed lines)."""
    installed: dict[str, list] = defaultdict(list)
    for d in target.distributions:
        if d.name:
            installed[canonicalize_name(d.name)].append(d)
    markers = dict(target.markers)
    needs: dict[str, list[Need]] = defaultdict(list)
    malformed: list[str] = []

    def add(dist, extra: str) -> list[Requirement]:
        wanted = []
        for line in dist.requires:
            req = parse_requirement(line)
            if req is None:
                if extra == "":
                    malformed.append(f"{dist.name} {dist.version}: {line!r}")
                continue
            if applies(req, markers, extra) and (extra == "" or not applies(req, markers, "")):
                needs[canonicalize_name(req.name)].append(Need(f"{dist.name} {dist.version}", req))
                wanted.append(req)
        return wanted

    queue = []
    for group in installed.values():
        queue.extend(add(group[0], ""))
    # extras asked for by installed packages (transformers[torch]) bring their own requirements
    done_extras = set()
    while queue:
        req = queue.pop()
        key = canonicalize_name(req.name)
        if key not in installed:
            continue
        for extra in req.extras:
            if (key, extra) not in done_extras:
                done_extras.add((key, extra))
                queue.extend(add(installed[key][0], canonicalize_name(extra)))
    return installed, needs, malformed


def needs_on(target, name: str) -> list[Need]:
    """Every requirement the installed distributions put on ``name``."""
    if target is None:
        return []
    return list(_needs(target)[1].get(canonicalize_name(name), ()))


def analyse(target):
    """Return (missing, conflicts, malformed, bad_versions, duplicates) for a TargetFacts."""
    installed, needs, malformed = _needs(target)
    missing, conflicts, bad_versions = {}, {}, {}
    for key, items in needs.items():
        if key not in installed:
            missing[key] = items
            continue
        dist = installed[key][0]
        version = parse_version(dist.version)
        if version is None:
            bad_versions[key] = dist
            continue
        unmet = [n for n in items if not n.req.specifier.contains(version, prereleases=True)]
        if unmet:
            conflicts[key] = (dist, unmet)
    duplicates = {k: v for k, v in installed.items() if len({d.location for d in v}) > 1}
    return missing, conflicts, malformed, bad_versions, duplicates


def installed_versions(target) -> dict[str, tuple[str, Version]]:
    out = {}
    for d in target.distributions:
        version = parse_version(d.version)
        if d.name and version is not None:  # python.dependencies reports unparseable versions
            out.setdefault(canonicalize_name(d.name), (d.name, version))
    return out


def installed_version(target, name: str) -> str | None:
    for d in target.distributions if target else ():
        if d.name and canonicalize_name(d.name) == canonicalize_name(name):
            return d.version
    return None



def implied_requirements(target):
    """(owner, extra, requirement, why, source) for every requirement an installed package's
    implied extra puts on another installed package (transformers' [torch] extra on torch)."""
    if target is None:
        return []
    installed = installed_versions(target)
    spec = table("llmdoctor.checks", "known_bad")["implied_extras"]
    dists = {canonicalize_name(d.name): d for d in target.distributions if d.name}
    out = []
    for item in spec["rows"]:
        owner = dists.get(canonicalize_name(item["dist"]))
        if owner is None:
            continue
        for line in owner.requires:
            req = parse_requirement(line)
            key = canonicalize_name(req.name) if req else None
            if (req is None or key not in {canonicalize_name(p) for p in item["packages"]} or key not in installed
                    or not applies(req, target.markers, item["extra"]) or applies(req, target.markers, "")):
                continue
            out.append((owner, item, req))
    return out
