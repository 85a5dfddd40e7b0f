"""Environment variables for every Python process of one environment.

A fix that must change the environment (MAX_JOBS for extension builds, a CA bundle
for TLS) writes them into ``llmdoctor-env.pth`` in the target's site-packages. Python
runs a .pth line that starts with ``import`` at every start-up, so the variables
reach shells, IDEs, Jupyter kernels started from a desktop launcher and pip's build
subprocesses alike, where a line in ~/.bashrc reaches only login shells.

What the hook does at start-up, and what it never does:

* a variable the user sets explicitly still wins: the hook fills in unset or empty ones,
  and replaces a set one only while it still holds a value recorded at fix time (a CA
  bundle variable the machine presets, whose certificates the new bundle includes);
* a variable that names a file is set only while that file exists, so a bundle deleted
  later (a removed ~/.config, a cleaned environment) leaves TLS as it was without the
  fix instead of breaking it;
* it never raises: its one line is pure ASCII (any path, an emoji in it included, is
  written with Python escapes) and its body runs inside ``try``;
* it is readable by everyone who can run the environment's Python (mode 0644).
"""

from __future__ import annotations

import json
import os

HOOK_NAME = "llmdoctor-env.pth"
MARK = "# llmdoctor-env "
META = "# llmdoctor-env-meta "
MODE = 0o644  #: every user of a shared environment must be able to read it

_BODY = """\
try:
    _set, _replace, _files = {set}, {replace}, {files}
    for _k, _v in _set.items():
        _now = os.environ.get(_k)
        if _now and _now != _v and _now not in _replace.get(_k, ()):
            continue
        if _k in _files and not os.path.isfile(_v):
            continue
        os.environ[_k] = _v
except Exception:
    pass
"""


def hook_path(purelib: str) -> str:
    return os.path.join(purelib, HOOK_NAME)


def _line(text: str | bytes | None, mark: str) -> dict:
    if not text:
        return {}
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.startswith(mark):
            try:
                data = json.loads(line[len(mark):])
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def parse(text: str | bytes | None) -> dict[str, str]:
    """The variables a hook file sets ({} for no file or a file we did not write)."""
    return {str(k): str(v) for k, v in _line(text, MARK).items()}


def parse_meta(text: str | bytes | None) -> tuple[dict[str, list[str]], list[str]]:
    """(values each variable may replace, variables that name files) of a hook file."""
    meta = _line(text, META)
    replace = meta.get("replace") if isinstance(meta.get("replace"), dict) else {}
    files = meta.get("files") if isinstance(meta.get("files"), list) else []
    return ({str(k): [str(x) for x in v] for k, v in replace.items() if isinstance(v, list)},
            [str(x) for x in files])


def render(variables: dict[str, str], *, replace: dict[str, list[str]] | None = None,
           files: list[str] | tuple[str, ...] = ()) -> bytes | None:
    """Hook file bytes for ``variables``; None when there is nothing left to set."""
    if not variables:
        return None
    variables = dict(sorted(variables.items()))
    replace = {k: sorted(set(v)) for k, v in sorted((replace or {}).items()) if k in variables and v}
    files = sorted({f for f in files if f in variables})
    payload = json.dumps(variables, sort_keys=True)
    meta = json.dumps({"replace": replace, "files": files}, sort_keys=True)
    body = _BODY.format(set=ascii(variables), replace=ascii({k: tuple(v) for k, v in replace.items()}),
                        files=ascii(frozenset(files)))
    return (
        f"{MARK}{payload}\n"
        + (f"{META}{meta}\n" if replace or files else "")
        + "# Written by `llmdoctor fix`: sets these variables for every Python process of this\n"
        "# environment unless they are already set. Remove with `llmdoctor fix --undo`.\n"
        f"import os; exec({ascii(body)})\n"
    ).encode("ascii")


def merge(old: bytes | None, variables: dict[str, str], *, replace: dict[str, list[str]] | None = None,
          files: list[str] | tuple[str, ...] = ()) -> bytes | None:
    """The hook ``old`` with ``variables`` added (what other fixes set there is kept)."""
    old_replace, old_files = parse_meta(old)
    merged_replace = {k: list(v) for k, v in old_replace.items()}
    for k, v in (replace or {}).items():
        merged_replace[k] = sorted(set(merged_replace.get(k, [])) | set(v))
    return render({**parse(old), **variables}, replace=merged_replace, files=[*old_files, *files])
