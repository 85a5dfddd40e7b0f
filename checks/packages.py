"""A fast `pip check`: every Requires-Dist of every installed distribution, evaluated
against what is installed in the target, with the conflict explained and the pip
command that resolves it."""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from llmdoctor.model import Status, check

from llmdoctor.checks.python import pip_cmd
from llmdoctor.checks.requirements import analyse

PIP_CHECK_DOCS = "https://pip.pypa.io/en/stable/cli/pip_check/"
PIP_RESOLVER_DOCS = "https://pip.pypa.io/en/stable/topics/dependency-resolution/"


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


def install_fix(facts, name: str, spec: str):
    """``pip install 'name<spec>'``; for torch the build the compatibility model picks (a bare
    `pip install torch>=2.4` takes PyPI's default CUDA build, whatever the driver runs)."""
    if canonicalize_name(name) == "torch":
        from llmdoctor.checks.pytorch import torch_fix_for

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
