"""The house rules, kept as a test over the source (every import, a function's lazy ones
included, read with ast; nothing is imported to check them):

* checks judge facts: they import no probe, no network or subprocess module, nothing that
  talks to the world;
* probes gather facts: they import no check and no renderer;
* the renderer prints: it imports no probe and no check;
* the bench measures: it imports no check (checks may read its pure memory model);
* nothing imports the command line (only ``python -m llmdoctor`` starts it);
* there is no import cycle anywhere in llmdoctor;
* no module imports another module's private (``_name``) names;
* probes record kinds, not sentences: a fact they build never fills a sentence field kept for
  older reports, and its kind fields hold short tokens that the checks word.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORLD = ("subprocess", "socket", "ssl", "http", "urllib.request", "requests", "httpx", "llmdoctor.net",
         "llmdoctor.subproc", "llmdoctor.probes")


def package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {pkg: ROOT / folder for pkg, folder in config.items()}


def modules() -> dict[str, Path]:
    """Every llmdoctor module by dotted name (the target probe script runs elsewhere, alone)."""
    out: dict[str, Path] = {}
    for pkg, folder in sorted(package_dirs().items(), key=lambda kv: -len(kv[0])):
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            if "target" in rel.parts[:-1] and rel.parts[-1] == "llmdoctor_target_probe":
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            out.setdefault(name, path)
    return out


MODULES = modules()


def imports_of(name: str) -> set[str]:
    """What module ``name`` imports, anywhere in it; ``from pkg import sub`` counts as ``pkg.sub``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            subs = {f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in MODULES}
            out |= subs if len(subs) == len(node.names) else subs | {prefix}
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def offenders(rooms: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{m} imports {d}" for m in GRAPH if under(m, *rooms) for d in GRAPH[m] if under(d, *forbidden))


def test_checks_import_nothing_that_talks_to_the_world():
    assert offenders(("llmdoctor.checks",), WORLD) == []


def test_probes_import_no_check_and_no_renderer():
    assert offenders(("llmdoctor.probes",), ("llmdoctor.checks", "llmdoctor.report.render")) == []


def test_the_renderer_imports_no_probe_and_no_check():
    assert offenders(("llmdoctor.report.render", "llmdoctor.report.printable", "llmdoctor.report.redact"),
                     ("llmdoctor.probes", "llmdoctor.checks")) == []


def test_the_bench_imports_no_check():
    assert offenders(("llmdoctor.benchmark",), ("llmdoctor.checks",)) == []


def test_nothing_imports_the_command_line():
    assert [m for m in GRAPH if m != "llmdoctor.__main__" and "llmdoctor.cli" in GRAPH[m]] == []


def test_no_module_imports_another_modules_private_names():
    """A name that starts with one underscore is its module's own: another module that needs it
    makes it public (or the two are one module)."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmdoctor"):
                found += [f"{name} imports {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


#: fact fields that held a probe's sentence, kept only so that older reports still read
SENTENCE_FIELDS = {"reason", "skipped", "live_skipped", "visible_error", "live_error"}
#: the kinds that replaced them ("no-driver", "timeout", "nvml-error" ...), worded by the checks
KIND_FIELDS = {"skip_kind", "live_skip_kind", "problem", "visible_problem", "kind", "step", "cause", "rank_problems"}
#: what builds a fact besides a ``...Facts`` class (``replace`` is dataclasses.replace)
FACT_CALLS = {"HubCall", "TargetFailure", "RankState", "ImportResult", "replace"}
TOKEN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def _words(value: ast.AST) -> bool:
    """An f-string or a literal that is not a token, anywhere in ``value``."""
    return any(isinstance(v, ast.JoinedStr) or (isinstance(v, ast.Constant) and isinstance(v.value, str)
                                                and not TOKEN.fullmatch(v.value)) for v in ast.walk(value))


def test_probes_record_kinds_not_sentences():
    """Where a probe (or the distributed runner) builds a fact (a ``...Facts`` class, ``HubCall``,
    ``TargetFailure``, ``RankState``, ``ImportResult``) with keywords, it never fills a sentence
    field, and a kind field gets a token (a literal such as "no-nccl", or a variable), never words
    or an f-string; it raises ProbeFailed with a TargetFailure, never with a reason of its own.
    Checks say why."""
    found, kinds = [], 0
    for name, path in MODULES.items():
        if not under(name, "llmdoctor.probes", "llmdoctor.distributed"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if callee == "ProbeFailed" and (node.args or any(kw.arg == "reason" for kw in node.keywords)):
                found.append(f"{name}:{node.lineno} ProbeFailed(reason)")
            if not (callee.endswith("Facts") or callee in FACT_CALLS):
                continue
            if callee == "TargetFailure" and node.args:  # its kind, given first
                kinds += 1
                if _words(node.args[0]):
                    found.append(f"{name}:{node.lineno} TargetFailure(kind)")
            for kw in node.keywords:
                where = f"{name}:{node.lineno} {callee}({kw.arg}=...)"
                if kw.arg in SENTENCE_FIELDS:
                    found.append(where)
                elif kw.arg in KIND_FIELDS:
                    kinds += 1
                    if _words(kw.value):
                        found.append(where)
    assert found == []
    assert kinds >= 20  # the rule sees the probes that record kinds


def test_there_is_no_import_cycle():
    graph = {m: {d for d in deps if d in MODULES} for m, deps in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_rules_see_the_whole_package():
    """A rule over no modules passes vacuously: the walk must find every room."""
    for room in ("llmdoctor.checks", "llmdoctor.probes", "llmdoctor.fixes", "llmdoctor.benchmark", "llmdoctor.cli"):
        assert any(under(m, room) for m in MODULES), room
    assert "llmdoctor.probes.base" in GRAPH["llmdoctor.probes.nvidia"] or \
        "llmdoctor.probes.base" in GRAPH["llmdoctor.probes.system"]


def test_the_readme_layout_names_every_module():
    """The README's Layout section names each module (by its file's stem), so a reader finds
    every room and what is in it."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("\n```\n", layout.index("```") + 3)]
    words = set(re.findall(r"[A-Za-z_][\w]*", layout))
    missing = sorted(str(p.relative_to(ROOT)) for p in [*MODULES.values(), ROOT / "llmdoctor/probes/target/"
                                                          "llmdoctor_target_probe.py"]
                     if p.stem != "__init__" and p.stem not in words)
    assert missing == []
