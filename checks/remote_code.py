"""Cached model repos whose own code (trust_remote_code) was written for a transformers far
from the installed one."""

from __future__ import annotations

from packaging.version import Version

from llmdoctor.data import row
from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from .python import pip_cmd
from .stack import installed_versions


@check("cache.remote-code", category="cache", needs=["hub.remote-code", "target"])
def remote_code_check(facts, c):
    """Remote-code model repos (auto_map) saved with a transformers far from the installed one."""
    rc, target = facts.value("hub.remote-code"), facts.value("target")
    if not rc.repos:
        yield c.finding(Status.SKIP, f"No cached model repo ships its own code ({rc.scanned} repos in {rc.cache})")
        return
    have = installed_versions(target).get("transformers")
    if not have:
        yield c.finding(Status.SKIP, f"{len(rc.repos)} cached repo(s) ship their own code; transformers is not "
                        "installed here")
        return
    gap = row("llmdoctor.checks", "remote_code", "name", "minor_gap")
    installed = have[1]
    far = {}
    for repo in rc.repos:
        written = parse_version(repo.transformers_version)
        if written is None:
            continue
        if written.major != installed.major or abs(installed.minor - written.minor) >= gap["value"]:
            far.setdefault(repo.repo_id, (repo, written))
    for repo, written in far.values():
        newer = Version(installed.base_version) > Version(written.base_version)
        yield c.finding(Status.WARN, f"{repo.repo_id} runs its own code (trust_remote_code), saved with transformers "
                        f"{written}; transformers {installed} is installed" + (": expect AttributeErrors from "
                        "transformers internals it relies on" if newer else ""), id="cache.remote-code-version",
                        detail=f"{gap['why']}\nClasses: {', '.join(repo.classes)}\nSnapshot: {rc.cache}/models--"
                               f"{repo.repo_id.replace('/', '--')}/snapshots/{repo.revision}",
                        fix=pip_cmd(facts, "install", f"transformers=={written}") + "   (in an env for this model; or "
                        f"fetch the repo's updated code: hf download {repo.repo_id} --include '*.py' 'config.json')",
                        docs=gap["source"])
    if not far:
        yield c.finding(Status.OK, f"{len(rc.repos)} cached repo(s) with their own code, all saved with a transformers "
                        f"close to {installed}")
