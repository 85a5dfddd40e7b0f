"""Checks on the target interpreter: which one, its version, headers, native imports."""

from __future__ import annotations

import datetime

from llmdoctor.command import Command, run, template
from llmdoctor.data import rows
from llmdoctor.model import Status, check

from llmdoctor.checks.host import macos, system_install, windows

#: import name -> distribution name, where they differ
IMPORT_DIST = {"yaml": "PyYAML"}
VENV_DOCS = "https://docs.python.org/3/library/venv.html"


def _eol(version: str) -> tuple[datetime.date | None, str | None]:
    for item in rows("llmdoctor.checks", "python_versions"):
        if item["version"] == version:
            parts = [int(p) for p in item["end_of_life"].split("-")]
            # "2026-10" means some day in October: count it from the end of the month
            if len(parts) == 2:
                y, m = parts
                day = (datetime.date(y + m // 12, m % 12 + 1, 1) - datetime.timedelta(days=1))
            else:
                day = datetime.date(*parts)
            return day, item["source"]
    return None, None


def pip_argv(facts) -> tuple[str, ...]:
    """The target interpreter's pip: (its python, -m, pip)."""
    t = facts.value("target")
    return (t.executable if t and t.executable else "python", "-m", "pip")


def pip_cmd(facts, *args: str) -> Command:
    """The target interpreter's pip with ``args``, as a command (quoted for the user's shell
    only when printed)."""
    return run(*pip_argv(facts), *args)


@check("python.target", needs=["target"])
def target_check(facts, c):
    """Which Python environment llmdoctor inspects (--python picks another)."""
    t = facts.value("target")
    kind = {"venv": "virtual environment", "conda": "conda environment", "explicit": "--python",
            "interpreter": "the running interpreter"}.get(t.kind, t.kind)
    env = "venv" if t.in_venv else ("conda env" if t.conda else "system/base environment")
    title = f"Inspecting {t.executable} ({t.implementation} {t.python_version}, {env}; chosen from {kind})"
    if t.note:
        yield c.finding(Status.WARN, f"{t.note}; inspected {t.executable} instead",
                        detail=title, fix=run("llmdoctor", "check", "--python", r"C:\path\to\env\Scripts\python.exe"
                                              if windows(facts) else "/path/to/env/bin/python"), docs=VENV_DOCS)
    else:
        yield c.finding(Status.INFO, title)


@check("python.version", needs=["target", "clock"])
def version_check(facts, c):
    """Target Python version against its end of life (as of the report's date, from the clock fact)."""
    t = facts.value("target")
    major_minor = ".".join(str(x) for x in t.version_info[:2])
    eol, source = _eol(major_minor)
    clock = facts.value("clock")
    today, as_of = (clock.date, clock.today) if clock is not None else (None, None)
    if clock is None:  # no date in this report: only what was past before these tables were read is certain
        from llmdoctor.data import table

        known = table("llmdoctor.checks", "python_versions")["as_of"]
        if eol is not None and eol < datetime.date.fromisoformat(known):
            today, as_of = datetime.date.fromisoformat(known), known
    if eol is None:
        yield c.finding(Status.INFO, f"Python {t.python_version}: no end-of-life date on record for {major_minor}")
    elif today is None:
        yield c.finding(Status.INFO, f"Python {t.python_version} (supported until {eol:%Y-%m}; no date to judge "
                        "against in this report)", docs=source)
    elif eol < today:
        yield c.finding(Status.WARN, f"Python {t.python_version} reached end of life on {eol.isoformat()}",
                        detail="No security fixes, and new releases of torch, tokenizers and bitsandbytes stop "
                               f"shipping wheels for it. (Judged as of {as_of}.)",
                        fix="create a new environment with a supported Python, e.g. `uv venv -p 3.12` "
                            "or `conda create -n llm python=3.12`", docs=source)
    else:
        yield c.finding(Status.OK, f"Python {t.python_version} (supported until {eol:%Y-%m})", docs=source)


@check("python.headers", needs=["target"])
def headers_check(facts, c):
    """Python.h present (needed to build CUDA extensions such as flash-attn or DeepSpeed ops)."""
    t = facts.value("target")
    if t.has_python_h:
        yield c.finding(Status.OK, f"Python headers present ({t.include_dir})")
        return
    v = ".".join(str(x) for x in t.version_info[:2])
    if t.conda:
        fix = run("conda", "install", "-p", t.prefix, f"python={v}")
    elif windows(facts) or macos(facts):  # python.org's installers and Homebrew's Python ship Python.h
        fix = (f"reinstall Python {v} from python.org" + (" or Homebrew" if macos(facts) else "")
               + ", whose installer includes the headers, and recreate the environment with it")
    else:
        fix = system_install(facts, apt=(f"python{v}-dev",), dnf=(f"python{v}-devel",)) or \
            f"install your distribution's python{v} development package (python{v}-dev, python{v}-devel)"
    yield c.finding(Status.INFO, "Python headers (Python.h) missing: building flash-attn, DeepSpeed ops or "
                    "bitsandbytes from source will fail", detail=f"looked in {t.include_dir or 'unknown'}",
                    fix=fix, docs="https://github.com/deepspeedai/DeepSpeed/issues/3223")


def dist_version(facts, dist: str) -> str | None:
    """The installed distribution's version (what pip shows), if the target facts list it."""
    from packaging.utils import canonicalize_name

    t = facts.value("target")
    for d in (t.distributions if t else ()):
        if d.name and canonicalize_name(d.name) == canonicalize_name(dist):
            return d.version
    return None


def shown(facts, r, dists: dict[str, str]) -> str:
    """'regex 2024.11.6': a module named with its distribution's version, not the module's own
    __version__ (regex says 2.5.148 there)."""
    version = dist_version(facts, dists.get(r.module, r.module)) or r.version
    return f"{r.module} {version}" if version else r.module


def _abi_tag(path: str) -> str:
    import re

    m = re.search(r"cpython-(\d)(\d+)|cp(\d)(\d+)-", path)
    if not m:
        return "another Python"
    major, minor = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return f"Python {major}.{minor}"


def import_findings(facts, c, results, id_prefix: str, dists: dict[str, str]):
    """A finding per import that errs, crashes or hangs; the cause named where the message tells it."""
    from llmdoctor.checks.failures import import_text
    from llmdoctor.checks.importerrors import classify

    t = facts.value("target")
    for r in results:
        if r.status in ("ok", "absent"):
            continue
        dist = dists.get(r.module, r.module)
        message = import_text(r)
        lines = message.strip().splitlines()
        if getattr(r.failure, "kind", None) == "not-tried":  # nothing is known about it: no reinstall
            yield c.finding(Status.WARN, f"`import {r.module}` was not tried: the imports before it took the "
                            "probe's whole time", id=f"{id_prefix}-not-tried", detail=message)
            continue
        if r.foreign_abi:
            built = sorted({_abi_tag(p) for p in r.foreign_abi})
            here = t.python_version if t else "this one"
            version = dist_version(facts, dist)
            yield c.finding(Status.FAIL, f"`import {r.module}` fails: its compiled extension modules were built for "
                            f"{' and '.join(built)}, not for Python {here} (a site-packages copied from another "
                            "Python, or installed with another interpreter's pip)", id=f"{id_prefix}-other-python",
                            detail="Built for another Python:\n" + "\n".join(r.foreign_abi) + "\n\n" + message,
                            fix=(pip_cmd(facts, "install", "--force-reinstall", "--no-deps",
                                         f"{dist}=={version}" if version else dist),
                                 "   (reinstalls the wheel built for this Python)"),
                            docs="https://docs.python.org/3/extending/building.html")
            continue
        known = classify(message)
        fix = (template(known["fix"], {"pip": pip_argv(facts), "dist": dist}) if known
               else pip_cmd(facts, "install", "--force-reinstall", "--no-deps", dist))
        if r.status == "error":
            subject = (f"{r.module}'s native library {r.library.rsplit('/', 1)[-1]} does not load"
                       if r.method == "native" and r.library else f"`import {r.module}` fails")
            first = next((line for line in lines if line.strip() and not line.startswith("Caused by")), "")
            what = f"{subject}: " + (known["cause"] if known else (first or r.error_type or "?"))
            fid = f"{id_prefix}-{known['id']}" if known else f"{id_prefix}-failed"
        else:
            what = (f"`import {r.module}` {'hangs' if r.status == 'timeout' else 'kills the interpreter'}: "
                    f"{lines[0] if lines else r.status}")
            fid = f"{id_prefix}-{r.status}"
        yield c.finding(Status.FAIL, what, id=fid, detail=message, fix=fix,
                        docs=known["source"] if known else None)


@check("python.imports", needs=["target.imports", "target"])
def imports_check(facts, c):
    """Native-extension packages import without error or crash."""
    results = facts.value("target.imports").results
    good = [r for r in results if r.status == "ok"]
    yield from import_findings(facts, c, results, "python.import", IMPORT_DIST)
    if good and len(good) == len([r for r in results if r.status != "absent"]):
        names = ", ".join(shown(facts, r, IMPORT_DIST) for r in good)
        yield c.finding(Status.OK, f"Native packages import cleanly: {names}")
    elif not good and all(r.status == "absent" for r in results):
        yield c.finding(Status.SKIP, "None of the probed native packages is installed")
