"""Known bad versions and workaround pins, from checks/data/known_bad.json."""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from llmdoctor.command import template
from llmdoctor.data import rows, table
from llmdoctor.model import Status, check

from llmdoctor.checks.python import pip_cmd
from llmdoctor.checks.requirements import implied_requirements, installed_versions


PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _condition(name: str | None, target) -> bool:
    """known_bad.json's `also_run_if`: when the extra step applies to this environment."""
    if name is None:
        return True
    if name == "https_proxy_url":
        env = target.net_env if target else {}
        return any((env.get(k) or "").lower().startswith("https://") for k in PROXY_VARS)
    return False


@check("python.known-bad", needs=["target"])
def known_bad_check(facts, c):
    """Versions known to break LLM workflows, and harmful workaround pins (data: known_bad.json)."""
    installed = installed_versions(facts.value("target"))
    hits = 0
    for row in rows("llmdoctor.checks", "known_bad"):
        found = installed.get(canonicalize_name(row["package"]))
        if not found or not SpecifierSet(row["specifier"]).contains(found[1], prereleases=True):
            continue
        hits += 1
        name, version = found
        fix = pip_cmd(facts, "install", f"{name}{row['fix_spec']}")
        why = row["why"]
        if row.get("also_run") and _condition(row.get("also_run_if"), facts.value("target")):
            fix = (fix, "   (then: ", template(row["also_run"], {}), ")")
        elif row.get("also_run_if"):
            why += " " + row.get("why_without_proxy", "")
        yield c.finding(Status.parse(row["status"]), row["title"].format(version=version), id=row["id"],
                        detail=why.strip(), fix=fix, docs=row["source"])
    for row in table("llmdoctor.checks", "known_bad").get("missing_companions", ()):
        if all(canonicalize_name(n) in installed for n in row["when_all"]) and \
                canonicalize_name(row["missing"]) not in installed:
            hits += 1
            yield c.finding(Status.parse(row["status"]), row["title"], id=row["id"], detail=row["why"],
                            fix=pip_cmd(facts, "install", row["missing"]), docs=row["source"])
    numpy = installed.get("numpy")
    abi = table("llmdoctor.checks", "known_bad")["numpy2_abi"]
    if numpy and numpy[1] >= Version("2"):
        for row in abi["rows"]:
            found = installed.get(canonicalize_name(row["package"]))
            if found and found[1] < Version(row["min"]):
                hits += 1
                yield c.finding(Status.WARN, f"{found[0]} {found[1]} was built against NumPy 1 and NumPy {numpy[1]} is "
                                "installed: importing it fails ('A module that was compiled using NumPy 1.x cannot "
                                "be run in NumPy 2')", id="python.numpy2-abi",
                                detail=abi["about"] + f" {found[0]} supports NumPy 2 from {row['min']}.",
                                fix=(pip_cmd(facts, "install", "numpy<2"), "   (or: ",
                                     pip_cmd(facts, "install", f"{found[0]}>={row['min']}"), ")"), docs=abi["source"])
    if not hits:
        yield c.finding(Status.OK, "No known-bad versions or workaround pins installed")


@check("python.stack", needs=["target"])
def implied_extras_check(facts, c):
    """What transformers declares for torch and accelerate (its [torch] extra), read from its
    own metadata, against the installed versions (data: known_bad.json implied_extras)."""
    from llmdoctor.checks.packages import analyse, install_fix

    target = facts.value("target")
    installed = installed_versions(target)
    already = analyse(target)[1]  # conflicts pip check reports itself
    judged = 0
    for owner, item, req in implied_requirements(target):
        key = canonicalize_name(req.name)
        judged += 1
        name, version = installed[key]
        if req.specifier.contains(version, prereleases=True) or key in already:
            continue
        yield c.finding(Status.FAIL, f"{owner.name} {owner.version} needs {name}{req.specifier} (its "
                        f"[{item['extra']}] extra); {name} {version} is installed", id="python.stack-floor",
                        detail=item["why"], fix=install_fix(facts, name, str(req.specifier)),
                        docs=item["source"])
    if judged:
        yield c.finding(Status.OK, "transformers' own requirements on torch and accelerate are met")
    else:
        yield c.finding(Status.SKIP, "transformers with torch is not installed here")
