"""A fast `pip check`: every Requires-Dist of every installed distribution, evaluated
against what is installed in the target, with the conflict explained and the pip
command that resolves it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from .python import pip_cmd

PIP_CHECK_DOCS = "https://pip.pypa.io/en/stable/cli/pip_check/"
PIP_RESOLVER_DOCS = "https://pip.pypa.io/en/stable/topics/dependency-resolution/"


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


def _spec(needs) -> str:
    merged = SpecifierSet()
    for n in needs:
        merged &= n.req.specifier
    return str(merged)


def _who(needs) -> str:
    parts = []
    for n in needs:
        spec = str(n.req.specifier) or "any version"
        parts.append(f"{n.requirer} needs {spec}")
    return "; ".join(sorted(set(parts)))


def install_fix(facts, name: str, spec: str) -> str:
    """``pip install 'name<spec>'``; for torch the build the compatibility model picks (a bare
    `pip install torch>=2.4` takes PyPI's default CUDA build, whatever the driver runs)."""
    if canonicalize_name(name) == "torch":
        from .pytorch import torch_fix_for

        return torch_fix_for(facts)
    return pip_cmd(facts, "install", f"{name}{spec}")


@check("python.dependencies", needs=["target"])
def dependencies_check(facts, c):
    """Every installed distribution's requirements are met (a fast `pip check`)."""
    target = facts.value("target")
    if target.distributions_error:
        yield c.finding(Status.ERROR, f"Cannot list installed distributions: {target.distributions_error}")
        return
    missing, conflicts, malformed, bad_versions, duplicates = analyse(target)
    for key, needs in sorted(missing.items()):
        name = needs[0].req.name
        spec = _spec(needs)
        yield c.finding(Status.FAIL, f"{name} is missing: {_who(needs)}", id="python.dependency-missing",
                        fix=install_fix(facts, name, spec), docs=PIP_CHECK_DOCS)
    for key, (dist, needs) in sorted(conflicts.items()):
        spec = _spec(needs)
        fix = install_fix(facts, dist.name, spec)
        yield c.finding(Status.FAIL, f"{dist.name} {dist.version} is installed, but {_who(needs)}",
                        id="python.dependency-conflict",
                        detail=f"All requirements on {dist.name} together: {_spec(needs) or 'any'}. "
                               "Installing that range may in turn move other packages; pip's resolver "
                               "says which.", fix=fix, docs=PIP_RESOLVER_DOCS)
    for key, dist in sorted(bad_versions.items()):
        yield c.finding(Status.WARN, f"{dist.name} has an invalid version string {dist.version!r}: "
                        "requirements on it cannot be checked", id="python.dependency-bad-version",
                        fix=pip_cmd(facts, "install", "--force-reinstall", "--no-deps", dist.name),
                        docs="https://packaging.python.org/en/latest/specifications/version-specifiers/")
    for key, dists in sorted(duplicates.items()):
        where = ", ".join(f"{d.version} in {d.location}" for d in dists)
        yield c.finding(Status.WARN, f"{dists[0].name} is installed {len(dists)} times ({where}); "
                        f"Python imports the first on sys.path", id="python.dependency-duplicate",
                        fix=pip_cmd(facts, "install", "--force-reinstall", "--no-deps",
                                    f"{dists[0].name}=={dists[0].version}"),
                        docs=PIP_CHECK_DOCS)
    for line in malformed:
        yield c.finding(Status.WARN, f"Unparseable requirement in {line}", id="python.dependency-malformed")
    broken = [d for d in target.distributions if d.error or not d.name]
    for d in broken:
        yield c.finding(Status.WARN, f"A distribution's metadata cannot be read ({d.location or 'unknown place'})",
                        id="python.dependency-broken-metadata", detail=d.error or "no Name field",
                        docs=PIP_CHECK_DOCS)
    if not (missing or conflicts or bad_versions or duplicates or malformed or broken):
        n = len(target.distributions)
        yield c.finding(Status.OK, f"{n} distributions installed, every requirement met")
