"""Model repos in the Hugging Face caches that ship their own modeling code (``auto_map``
in config.json): the transformers version they were saved with, and their code read and
checked against the target's transformers the same way ``check --model`` checks one
model (probes/model.py), so that both checks judge a repo alike."""

from __future__ import annotations

import os
from dataclasses import dataclass

from llmdoctor.probes import modelcode
from llmdoctor.probes.base import ProbeContext
from llmdoctor.probes.model import (CodeFacts, ModelInfo, ask_target, code_facts, code_sources, read_json, snapshot,
                                    target_request)

MAX_REPOS = 5000
MAX_CONFIG_BYTES = 1 << 20
TARGET_BUDGET_S = 45.0


@dataclass(frozen=True)
class RemoteCodeRepo:
    repo_id: str
    revision: str  #: the snapshot folder (a commit hash)
    transformers_version: str | None  #: config.json's "transformers_version", the version it was saved with
    classes: tuple[str, ...] = ()  #: auto_map's values, e.g. "modeling_chatglm.ChatGLMForConditionalGeneration"
    root: str | None = None  #: the cache root it is in
    code: CodeFacts | None = None  #: its .py files checked against the target's transformers


@dataclass(frozen=True)
class RemoteCodeFacts:
    cache: str  #: the roots scanned, joined with os.pathsep
    repos: tuple[RemoteCodeRepo, ...] = ()
    scanned: int = 0  #: model repos looked at
    truncated: bool = False
    target_error: str | None = None  #: the target could not be asked about the code's needs


def _classes(auto_map) -> tuple[str, ...]:
    out = []
    for value in (auto_map or {}).values() if isinstance(auto_map, dict) else ():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                out.append(item)
    return tuple(sorted(set(out)))


def probe_remote_code(ctx: ProbeContext) -> RemoteCodeFacts:
    from llmdoctor.cache import scan as hfcache

    extra = list(getattr(ctx.model, "dirs", None) or ())
    roots = [loc.path for loc in hfcache.hub_roots(ctx.environ, extra)]
    found: list[tuple[RemoteCodeRepo, ModelInfo]] = []
    scanned, truncated = 0, False
    for root in roots:
        try:
            entries = sorted(e.name for e in os.scandir(root) if e.name.startswith("models--"))
        except OSError:
            continue
        for name in entries:
            if scanned >= MAX_REPOS:
                truncated = True
                break
            scanned += 1
            snap, commit = snapshot(os.path.join(root, name))
            if snap is None:
                continue
            path = os.path.join(snap, "config.json")
            try:
                if os.path.getsize(path) > MAX_CONFIG_BYTES:
                    continue
            except OSError:
                continue  # no config, or a broken link: the cache checks report those
            config, _ = read_json(path)
            if not config or not config.get("auto_map"):
                continue
            repo_id = name[len("models--"):].replace("--", "/")
            version = config.get("transformers_version")
            repo = RemoteCodeRepo(repo_id=repo_id, revision=commit or os.path.basename(snap),
                                  transformers_version=version if isinstance(version, str) else None,
                                  classes=_classes(config.get("auto_map")), root=root)
            found.append((repo, ModelInfo(repo_id, "cache", repo_id, "cache", snap, root, revision=commit)))
    scans = []
    for repo, info in found:
        sources, folder = code_sources(info, ctx.environ)
        scans.append((repo, info, modelcode.scan(sources) if sources else None, folder))
    answer, error = (None, None)
    if any(s is not None for _, _, s, _ in scans):
        answer, error = ask_target(ctx, target_request([(i, s) for _, i, s, _ in scans if s is not None],
                                                       model_types=False, configs=False), TARGET_BUDGET_S)
    repos = []
    for repo, _, scan, folder in scans:
        code = code_facts(scan, folder, answer) if scan is not None else None
        repos.append(RemoteCodeRepo(repo.repo_id, repo.revision, repo.transformers_version, repo.classes, repo.root,
                                    code))
    return RemoteCodeFacts(cache=os.pathsep.join(roots), repos=tuple(repos), scanned=scanned, truncated=truncated,
                           target_error=error)
