"""Renderers of a Report: terminal (rich), JSON envelope, Markdown for a GitHub issue.

All three take the same Report, pass every value through ``redact`` (secrets) and then
``printable`` (control characters as escapes, long values clipped): a replayed report, a
target's stderr or a folder's name can neither reach the terminal raw nor break a table.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import replace
from typing import Mapping

from llmdoctor.model import Finding, Status
from llmdoctor.report.printable import clip, json_text as safe_json, printable
from llmdoctor.report.redact import redact
from llmdoctor.report.envelope import Report, counts, to_json
from llmdoctor.report.shells import choose, described, fix_text

SYMBOLS = {
    Status.OK: ("✓", "+", "green"),
    Status.INFO: ("•", "i", "blue"),
    Status.SKIP: ("–", "-", "dim"),
    Status.WARN: ("!", "!", "yellow"),
    Status.ERROR: ("?", "?", "magenta"),
    Status.FAIL: ("✗", "x", "bold red"),
}
#: the most of one value a human report shows (the JSON keeps all of it)
LIMITS = {"title": 1_000, "detail": 10_000, "fix": 2_000, "docs": 500, "id": 200, "category": 100, "check": 200}


def _shown(text, environ: Mapping[str, str], limit: int, multiline: bool = False) -> str:
    """A value as a human report shows it: secrets masked, clipped, control characters escaped."""
    return printable(clip(redact(str(text), environ), limit), multiline=multiline)


def _clean(report: Report, environ: Mapping[str, str], shell: str | None = None) -> list[Finding]:
    """The findings as a human report shows them, each fix written for ``shell`` (then held
    as its words: what is printed)."""
    shell = choose(shell, report.facts)
    return [replace(f, title=_shown(f.title, environ, LIMITS["title"]),
                    detail=_shown(f.detail, environ, LIMITS["detail"], multiline=True),
                    fix=_shown(fix_text(f, shell), environ, LIMITS["fix"]) if f.has_fix else None, command=None,
                    docs=_shown(f.docs, environ, LIMITS["docs"]) if f.docs else None,
                    id=_shown(f.id, environ, LIMITS["id"]), category=_shown(f.category, environ, LIMITS["category"]),
                    check=_shown(f.check, environ, LIMITS["check"]) if f.check else None)
            for f in report.findings]


def by_category(findings: list[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.category, []).append(f)
    return groups


def category_status(items: list[Finding]) -> Status:
    """A category's symbol: its worst problem; else ok when something passed; else info or skip."""
    worst = max(f.status for f in items)
    if worst >= Status.WARN:
        return worst
    present = {f.status for f in items}
    return next(s for s in (Status.OK, Status.INFO, Status.SKIP) if s in present)


def _fold_skips(items: list[Finding]) -> list[Finding]:
    """Without -v, skips with the same reason are one line naming the checks."""
    out: list[Finding] = []
    groups: dict[str, list[Finding]] = {}
    for f in items:
        if f.status is Status.SKIP:
            if f.title not in groups:
                groups[f.title] = []
                out.append(f)
            groups[f.title].append(f)
        else:
            out.append(f)
    return [replace(f, title=f"{f.title} ({len(groups[f.title])} checks: "
                             f"{', '.join(g.check or g.id for g in groups[f.title])})")
            if f.status is Status.SKIP and len(groups[f.title]) > 1 else f for f in out]


def footer(findings: list[Finding]) -> str:
    problems = [f for f in findings if f.status.is_problem]
    if not problems:
        return "No problems found."
    cats = {f.category for f in problems}
    fails = sum(f.status >= Status.ERROR for f in problems)
    warns = len(problems) - fails
    parts = []
    if fails:
        parts.append(f"{fails} failure{'s' * (fails != 1)}")
    if warns:
        parts.append(f"{warns} warning{'s' * (warns != 1)}")
    n = len(problems)
    return (f"{n} problem{'s' * (n != 1)} in {len(cats)} categor{'ies' if len(cats) != 1 else 'y'} "
            f"({', '.join(parts)}).")


def terminal(report: Report, *, verbose: bool = False, environ: Mapping[str, str] | None = None,
             width: int | None = None, color: bool | None = None, unicode: bool | None = None,
             wrap: bool = True, shell: str | None = None) -> str:
    """The human report as a string (ANSI colour only when ``color``); fix commands written
    for ``shell`` (default: the one the report's facts name, else POSIX sh)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    environ = dict(os.environ if environ is None else environ)
    buf = io.StringIO()
    if color is None:
        color = False
    console = Console(file=buf, width=(width or 100) if wrap else 1000, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False)
    if unicode is None:
        unicode = True
    findings = _clean(report, environ, shell)
    target = report.target or {}
    where = _shown(target.get("executable") or target.get("python") or "?", environ, 500)
    head = f"llmdoctor {report.tool_version} · {where}"
    if report.replayed_from:
        head += f" · replay of a report from {_shown(report.replayed_from.get('created') or 'unknown date', environ, 100)}"
    if report.offline:
        head += " · offline"
    console.print(Text(head, style="bold"))
    for category, items in by_category(findings).items():
        glyph, ascii_glyph, style = SYMBOLS[category_status(items)]
        console.print()
        console.print(Text.assemble((f"[{glyph if unicode else ascii_glyph}] ", style),
                                    (report.categories.get(category) or category.capitalize(), "bold")))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=5, justify="right", no_wrap=True)
        grid.add_column(overflow="fold")
        for f in _fold_skips(items) if not verbose else items:
            glyph, ascii_glyph, style = SYMBOLS[f.status]
            line = Text(f.title)
            if verbose and f.duration_s is not None:
                line.append(f"  ({f.duration_s * 1000:.0f} ms)", style="dim")
            grid.add_row(Text(glyph if unicode else ascii_glyph, style=style), line)
            if verbose and f.detail:
                grid.add_row("", Text(f.detail.strip(), style="dim"))
            if f.fix and f.status >= Status.WARN:
                grid.add_row("", Text.assemble(("fix: ", "bold"), (f.fix, "cyan")))
            if f.docs and (verbose or f.status >= Status.WARN):
                grid.add_row("", Text.assemble(("docs: ", "dim"), (f.docs, "dim underline")))
            if verbose:
                grid.add_row("", Text(f"id: {f.id}", style="dim"))
        console.print(grid)
    console.print()
    timing = report.timing or {}
    if verbose and timing.get("per_probe_s"):
        probes = ", ".join(f"{_shown(k, environ, 100)} {v * 1000:.0f} ms" for k, v in timing["per_probe_s"].items()
                           if isinstance(v, (int, float)))
        console.print(Text(f"Probes: {probes}", style="dim"))
    if verbose and any(f.command is not None for f in report.findings):
        console.print(Text(f"Fix commands are written for {described(choose(shell, report.facts))} (--shell picks another).",
                           style="dim"))
    tail = footer(findings)
    total = timing.get("total_s")
    if isinstance(total, (int, float)):
        tail += f"  ({total:.2f} s)"
    worst = max((f.status for f in findings), default=Status.OK)
    console.print(Text(tail, style="bold " + SYMBOLS[worst][2] if worst >= Status.WARN else "bold green"))
    text = "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
    return redact(text, environ)


def json_text(report: Report, environ: Mapping[str, str] | None = None, shell: str | None = None) -> str:
    environ = dict(os.environ if environ is None else environ)
    return safe_json(redact(json.dumps(to_json(report, shell), indent=2, ensure_ascii=False, default=str), environ))


MARKDOWN_FACTS_LIMIT = 40_000  # GitHub issue bodies stop at 65,536 characters


def cell(text: str | None) -> str:
    """A Markdown table cell: one line (newlines were escaped already), pipes escaped."""
    return (text or "").replace("|", "\\|").replace("\n", " ")


def code(text: str | None) -> str:
    """``text`` as a Markdown code span, fenced with more backticks than it holds."""
    text = text or ""
    run = max((len(r) for r in re.findall("`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _facts_for_humans(report: Report) -> dict:
    """The facts as the JSON holds them, each in the shorter form its fact type gives a human
    reader where it has one (``for_humans()``: the target's distributions as name==version)."""
    out = to_json(report)["facts"]
    for name, result in report.facts.items():
        shorter = getattr(result.value, "for_humans", None)
        if callable(shorter):
            out[name] = {**out[name], "value": shorter()}
    return out


def markdown(report: Report, environ: Mapping[str, str] | None = None, shell: str | None = None) -> str:
    """A report to paste into a GitHub issue: findings table, then facts folded away."""
    environ = dict(os.environ if environ is None else environ)
    findings = _clean(report, environ, shell)
    target = report.target or {}
    def value(v, limit: int = 500) -> str:
        return _shown(v, environ, limit)

    out = ["## llmdoctor report", "",
           f"- llmdoctor {report.tool_version}, {report.created}; fix commands written for "
           f"{value(described(choose(shell, report.facts)), 120)}",
           f"- target: {code(value(target.get('executable') or target.get('python')))} "
           f"(Python {value(target.get('python_version') or '?', 50)}, {value(target.get('kind'), 50)})",
           f"- summary: {footer(findings)} " + ", ".join(f"{k}: {v}" for k, v in counts(findings).items() if v),
           "", "| status | check | finding | fix |", "|---|---|---|---|"]
    for f in sorted(findings, key=lambda f: -f.status):
        fix = code(cell(f.fix)) if f.fix else ""
        out.append(f"| {f.status.label} | {code(cell(f.id))} | {cell(f.title)} | {fix} |")
    facts = safe_json(json.dumps(_facts_for_humans(report), indent=1, ensure_ascii=False, default=str))
    if len(facts) > MARKDOWN_FACTS_LIMIT:
        facts = facts[:MARKDOWN_FACTS_LIMIT] + "\n... (cut: attach `llmdoctor check --json` output for all facts)"
    out += ["", "<details><summary>Facts (JSON)</summary>", "", "```json", facts, "```", "", "</details>", ""]
    return redact("\n".join(out), environ)


def _check_rows(selection) -> list[dict]:
    return [{"id": c.id, "category": c.category, "source": c.source, "network": c.network,
             "description": c.description} for c in selection.checks]


def check_list_json(selection) -> str:
    """`check --list --json`: every selected check, and the plugins that failed to load."""
    return safe_json(json.dumps({"checks": _check_rows(selection),
                                 "plugin_errors": [f.to_dict() for f in selection.problems]}, indent=2))


def check_list_text(selection) -> tuple[str, str]:
    """(`check --list`: one line per check, id category source description; the plugin errors)."""
    rows = _check_rows(selection)
    width = max((len(r["id"]) for r in rows), default=10)
    src = max((len(r["source"]) for r in rows), default=7)
    lines = [printable(f"{r['id']:<{width}}  {r['category']:<8}  {r['source']:<{src}}  {r['description']}")
             for r in rows]
    errors = [printable(f"error: {f.title}") for f in selection.problems]
    return "".join(line + "\n" for line in lines), "".join(line + "\n" for line in errors)
