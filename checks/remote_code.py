"""Cached model repos whose own code (trust_remote_code) does not fit the installed
transformers: judged by what the code actually uses (checks/model.py's code_verdict, the
same judgement `check --model` gives one model), not by how far apart the versions are."""

from __future__ import annotations

from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from llmdoctor.checks.model import code_fix, code_verdict, fetch_code, rule
from llmdoctor.checks.requirements import installed_versions


@check("cache.remote-code", category="cache", needs=["hub.remote-code", "target"])
def remote_code_check(facts, c):
    """Cached repos with their own code (auto_map) against the installed transformers.

    The transformers names and inherited methods the code uses that the installed transformers
    lacks, and known breaking changes: the same verdict as model.code."""
    rc, target = facts.value("hub.remote-code"), facts.value("target")
    asked = {i.repo_id for i in (facts.value("model").models if facts.value("model") else ()) if i.repo_id}
    repos = [r for r in rc.repos if r.repo_id not in asked]  # check --model judges those (model.code)
    if not repos:
        yield c.finding(Status.SKIP, f"No cached model repo ships its own code ({rc.scanned} repos in "
                        f"{rc.cache.replace(':', ', ')})" if not rc.repos else
                        f"{len(rc.repos)} cached repo(s) with their own code, all judged by --model (model.code)")
        return
    have = installed_versions(target).get("transformers")
    if not have:
        yield c.finding(Status.SKIP, f"{len(repos)} cached repo(s) ship their own code; transformers is not "
                        "installed here")
        return
    installed = have[1]
    fine, unread = [], []
    for repo in repos:
        saved = parse_version(repo.transformers_version)
        snapshot = f"{repo.root}/models--{repo.repo_id.replace('/', '--')}/snapshots/{repo.revision}"
        if repo.code is None:
            unread.append(repo.repo_id)
            continue
        verdict = [v for v in code_verdict(repo.code, saved, installed) if v[0] >= Status.WARN]
        if not verdict:
            fine.append(f"{repo.repo_id} (saved with {saved or '?'})")
            continue
        fix, note = code_fix(facts, repo.repo_id, saved, fetch_code(facts, repo.repo_id))
        yield c.finding(max(v[0] for v in verdict), f"{repo.repo_id} runs its own code (trust_remote_code) that does "
                        f"not fit transformers {installed}" + (f" (saved with {saved})" if saved else "") + ": "
                        + verdict[0][1], id="cache.remote-code-version",
                        detail="\n".join([f"- {v[1]}" for v in verdict] +
                                         [verdict[0][2], f"Snapshot: {snapshot}", note]).strip(),
                        fix=fix or note or None, docs=verdict[0][3])
    if rc.target_error and fine:
        yield c.finding(Status.WARN, f"{len(fine)} cached repo(s) with their own code could not be checked against "
                        f"transformers {installed}: {rc.target_error}", detail="\n".join(fine))
    elif fine:
        yield c.finding(Status.OK, f"{len(fine)} cached repo(s) with their own code: every transformers name they "
                        f"import and every inherited method they call exists in transformers {installed}",
                        detail="\n".join(fine), docs=rule("missing-member")["source"])
    if unread:
        yield c.finding(Status.INFO, f"{len(unread)} cached repo(s) with their own code have no .py files cached yet",
                        detail="\n".join(unread))
