"""Renderers of a Report: terminal (rich), JSON envelope, Markdown for a GitHub issue.

All three take the same Report and pass their text through ``redact`` last.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from typing import Mapping

from .model import Finding, Status
from .redact import redact
from .report import Report, counts, to_json

SYMBOLS = {
    Status.OK: ("✓", "+", "green"),
    Status.INFO: ("•", "i", "blue"),
    Status.SKIP: ("–", "-", "dim"),
    Status.WARN: ("!", "!", "yellow"),
    Status.ERROR: ("?", "?", "magenta"),
    Status.FAIL: ("✗", "x", "bold red"),
}
CATEGORY_TITLES = {
    "python": "Python environment",
    "system": "System",
    "probe": "Probes",
    "plugin": "Plugins",
    "gpu": "GPU and driver",
    "cuda": "CUDA toolkit",
    "torch": "PyTorch",
    "network": "Network",
    "cache": "Hugging Face cache",
    "build": "Building CUDA extensions",
    "model": "Model",
}


def _clean(report: Report, environ: Mapping[str, str]) -> list[Finding]:
    return [replace(f, title=redact(f.title, environ), detail=redact(f.detail, environ),
                    fix=redact(f.fix, environ) if f.fix else None) for f in report.findings]


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
             wrap: bool = True) -> str:
    """The human report as a string (ANSI colour only when ``color``)."""
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
    findings = _clean(report, environ)
    target = report.target or {}
    head = f"llmdoctor {report.tool_version} · {target.get('executable') or target.get('python') or '?'}"
    if report.replayed_from:
        head += f" · replay of a report from {report.replayed_from.get('created') or 'unknown date'}"
    if report.offline:
        head += " · offline"
    console.print(Text(head, style="bold"))
    for category, items in by_category(findings).items():
        glyph, ascii_glyph, style = SYMBOLS[category_status(items)]
        console.print()
        console.print(Text.assemble((f"[{glyph if unicode else ascii_glyph}] ", style),
                                    (CATEGORY_TITLES.get(category, category.capitalize()), "bold")))
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
        probes = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timing["per_probe_s"].items())
        console.print(Text(f"Probes: {probes}", style="dim"))
    tail = footer(findings)
    total = timing.get("total_s")
    if total is not None:
        tail += f"  ({total:.2f} s)"
    worst = max((f.status for f in findings), default=Status.OK)
    console.print(Text(tail, style="bold " + SYMBOLS[worst][2] if worst >= Status.WARN else "bold green"))
    text = "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
    return redact(text, environ)


def json_text(report: Report, environ: Mapping[str, str] | None = None) -> str:
    environ = dict(os.environ if environ is None else environ)
    return redact(json.dumps(to_json(report), indent=2, ensure_ascii=False, default=str), environ)


MARKDOWN_FACTS_LIMIT = 40_000  # GitHub issue bodies stop at 65,536 characters


def _compact_facts(facts: dict) -> dict:
    """Facts for a human reader: installed distributions as name==version lines."""
    out = {}
    for name, entry in facts.items():
        value = entry.get("value")
        if isinstance(value, dict) and isinstance(value.get("distributions"), list):
            value = dict(value)
            value["distributions"] = sorted(f"{d.get('name')}=={d.get('version')}" for d in value["distributions"])
            value.pop("sys_path", None)
            entry = {**entry, "value": value}
        out[name] = entry
    return out


def markdown(report: Report, environ: Mapping[str, str] | None = None) -> str:
    """A report to paste into a GitHub issue: findings table, then facts folded away."""
    environ = dict(os.environ if environ is None else environ)
    findings = _clean(report, environ)
    target = report.target or {}
    out = ["## llmdoctor report", "",
           f"- llmdoctor {report.tool_version}, {report.created}",
           f"- target: `{target.get('executable') or target.get('python')}` "
           f"(Python {target.get('python_version') or '?'}, {target.get('kind')})",
           f"- summary: {footer(findings)} " + ", ".join(f"{k}: {v}" for k, v in counts(findings).items() if v),
           "", "| status | check | finding | fix |", "|---|---|---|---|"]

    def cell(text: str | None) -> str:
        return (text or "").replace("|", "\\|").replace("\n", " ")

    for f in sorted(findings, key=lambda f: -f.status):
        fix = f"`{cell(f.fix)}`" if f.fix else ""
        out.append(f"| {f.status.label} | `{f.id}` | {cell(f.title)} | {fix} |")
    facts = json.dumps(_compact_facts(to_json(report)["facts"]), indent=1, ensure_ascii=False, default=str)
    if len(facts) > MARKDOWN_FACTS_LIMIT:
        facts = facts[:MARKDOWN_FACTS_LIMIT] + "\n... (cut: attach `llmdoctor check --json` output for all facts)"
    out += ["", "<details><summary>Facts (JSON)</summary>", "", "```json", facts, "```", "", "</details>", ""]
    return redact("\n".join(out), environ)
