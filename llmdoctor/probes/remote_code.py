"""Model repos in the Hugging Face cache that ship their own modeling code (``auto_map``
in config.json) and the transformers version that code was written for."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..paths import hf_hub_cache
from . import ProbeContext

MAX_REPOS = 5000
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteCodeRepo:
    repo_id: str
    revision: str  #: the snapshot folder (a commit hash)
    transformers_version: str | None  #: config.json's "transformers_version", the version it was saved with
    classes: tuple[str, ...] = ()  #: auto_map's values, e.g. "modeling_chatglm.ChatGLMForConditionalGeneration"


@dataclass(frozen=True)
class RemoteCodeFacts:
    cache: str
    repos: tuple[RemoteCodeRepo, ...] = ()
    scanned: int = 0  #: model repos looked at
    truncated: bool = False


def _classes(auto_map) -> tuple[str, ...]:
    out = []
    for value in (auto_map or {}).values() if isinstance(auto_map, dict) else ():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                out.append(item)
    return tuple(sorted(set(out)))


def probe_remote_code(ctx: ProbeContext) -> RemoteCodeFacts:
    cache = hf_hub_cache(ctx.environ)
    repos, scanned = [], 0
    try:
        entries = sorted(e.name for e in os.scandir(cache) if e.name.startswith("models--"))
    except OSError:
        return RemoteCodeFacts(cache=cache)
    for name in entries[:MAX_REPOS]:
        scanned += 1
        snapshots = os.path.join(cache, name, "snapshots")
        try:
            revisions = sorted(os.listdir(snapshots))
        except OSError:
            continue
        for rev in revisions:
            path = os.path.join(snapshots, rev, "config.json")
            try:
                if os.path.getsize(path) > MAX_CONFIG_BYTES:
                    continue
                with open(path, encoding="utf-8") as fh:
                    config = json.load(fh)
            except (OSError, ValueError):
                continue  # no config, a broken link, or not JSON: the cache checks report those
            if not isinstance(config, dict) or not config.get("auto_map"):
                continue
            version = config.get("transformers_version")
            repos.append(RemoteCodeRepo(repo_id=name[len("models--"):].replace("--", "/"), revision=rev,
                                        transformers_version=version if isinstance(version, str) else None,
                                        classes=_classes(config.get("auto_map"))))
    return RemoteCodeFacts(cache=cache, repos=tuple(repos), scanned=scanned, truncated=len(entries) > MAX_REPOS)
