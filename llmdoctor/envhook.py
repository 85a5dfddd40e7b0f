"""Environment variables for every Python process of one environment.

A fix that must change the environment (MAX_JOBS for extension builds, a CA bundle
for TLS) writes them into ``llmdoctor-env.pth`` in the target's site-packages. Python
runs a .pth line that starts with ``import`` at every start-up, so the variables
reach shells, IDEs, Jupyter kernels started from a desktop launcher and pip's build
subprocesses alike, where a line in ~/.bashrc reaches only login shells. A variable
the user sets explicitly still wins: the hook only fills in unset or empty ones.
"""

from __future__ import annotations

import json
import os

HOOK_NAME = "llmdoctor-env.pth"
MARK = "# llmdoctor-env "


def hook_path(purelib: str) -> str:
    return os.path.join(purelib, HOOK_NAME)


def parse(text: str | bytes | None) -> dict[str, str]:
    """The variables a hook file sets ({} for no file or a file we did not write)."""
    if not text:
        return {}
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.startswith(MARK):
            try:
                data = json.loads(line[len(MARK):])
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {}


def render(variables: dict[str, str]) -> bytes | None:
    """Hook file bytes for ``variables``; None when there is nothing left to set."""
    if not variables:
        return None
    payload = json.dumps(dict(sorted(variables.items())), sort_keys=True)
    return (
        f"{MARK}{payload}\n"
        "# Written by `llmdoctor fix`: sets these variables for every Python process of this\n"
        "# environment unless they are already set. Remove with `llmdoctor fix --undo`.\n"
        f"import os; os.environ.update({{k: v for k, v in {payload}.items() if not os.environ.get(k)}})\n"
    ).encode("utf-8")
