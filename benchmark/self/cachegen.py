"""Write a Hugging Face hub cache in the real layout (blobs, snapshot symlinks, refs),
fast, for the cache benchmark and tests: ``make_cache(root, repos=2000, files_per_repo=50)``."""

from __future__ import annotations

import hashlib
import os


def make_cache(root: str, repos: int = 2000, files_per_repo: int = 50, revisions: int = 2,
               blob_bytes: int = 64) -> dict:
    """Each repo gets ``revisions`` commits; the newest is `main`, each commit changes a few
    files and shares the rest. Returns counts."""
    os.makedirs(root, exist_ok=True)
    files = blobs = 0
    for i in range(repos):
        kind = "datasets" if i % 10 == 0 else "models"
        repo = os.path.join(root, f"{kind}--org{i % 97}--repo{i}")
        for sub in ("blobs", "snapshots", "refs"):
            os.makedirs(os.path.join(repo, sub), exist_ok=True)
        commit = None
        for r in range(revisions):
            commit = hashlib.sha1(f"{i}/{r}".encode()).hexdigest()
            snap = os.path.join(repo, "snapshots", commit)
            os.makedirs(snap, exist_ok=True)
            per_rev = files_per_repo // revisions
            for f in range(per_rev):
                changed = f < 3  # three files differ between revisions, the rest are shared blobs
                content = f"{i}/{f}/{r if changed else 0}".encode().ljust(blob_bytes, b".")
                etag = hashlib.sha256(content).hexdigest()
                blob = os.path.join(repo, "blobs", etag)
                if not os.path.exists(blob):
                    with open(blob, "wb") as fh:
                        fh.write(content)
                    blobs += 1
                name = f"model-{f:05d}.safetensors" if f % 5 else f"sub/file-{f}.json"
                link = os.path.join(snap, name)
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
                files += 1
        with open(os.path.join(repo, "refs", "main"), "w") as fh:
            fh.write(commit)
    return {"repos": repos, "files": files, "blobs": blobs}
