"""What `llmdoctor cache ls` and `cache prune` print: filters and sorting of a scan, the
terminal tables, and the JSON documents."""

from __future__ import annotations

import fnmatch
import operator
import re
import time
from io import StringIO
from typing import Iterable

from llmdoctor.cache.scan import CacheReport, Repo
from llmdoctor.report.printable import fit, printable
from llmdoctor.cache.prune import PrunePlan
from llmdoctor.units import ago, parse_duration, parse_size, size

SORTS = {
    "size": (lambda r: r.on_disk, True),
    "accessed": (lambda r: r.last_accessed, True),
    "modified": (lambda r: r.last_modified, True),
    "name": (lambda r: r.cache_id.lower(), False),
}
OPS = {"==": operator.eq, "=": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
       ">": operator.gt, "<": operator.lt}
def _ago(now: float, when: float | None) -> str:
    """'3 days ago'; a time never read (0, as for a repo folder without snapshots) is unknown."""
    return ago(now - when) if when else "unknown"


FILTER = re.compile(r"^\s*(accessed|modified|size|type|refs)\s*(==|!=|>=|<=|>|<|=)\s*(.+?)\s*$")


class FilterError(ValueError):
    pass


def make_filter(expr: str, now: float):
    """`size>1GB`, `accessed>30d` (older than 30 days), `type=dataset`, `refs=main`, or a glob on the id."""
    m = FILTER.match(expr)
    if not m:
        if not expr.strip():
            raise FilterError("empty --filter")
        return lambda r: fnmatch.fnmatch(r.repo_id, expr) or fnmatch.fnmatch(r.cache_id, expr)
    key, op, value = m.groups()
    cmp = OPS[op]
    try:
        if key == "size":
            limit = parse_size(value)
            return lambda r: cmp(r.on_disk, limit)
        if key in ("accessed", "modified"):
            age = parse_duration(value)
            field_ = "last_accessed" if key == "accessed" else "last_modified"
            return lambda r: cmp(now - getattr(r, field_), age)
    except ValueError as exc:
        raise FilterError(f"--filter {expr!r}: {exc}") from None
    if op not in ("=", "==", "!="):
        raise FilterError(f"--filter {expr!r}: {key} takes = or != only")
    if key == "type":
        return lambda r: cmp(r.repo_type, value.rstrip("s"))
    return lambda r: cmp(value in r.refs, True)


def select(repos: Iterable[Repo], filters: Iterable[str], sort: str, now: float | None = None) -> list[Repo]:
    now = time.time() if now is None else now
    preds = [make_filter(f, now) for f in filters]
    key, reverse = SORTS[sort]
    return sorted((r for r in repos if all(p(r) for p in preds)), key=key, reverse=reverse)


def ls_json(report: CacheReport, filters=(), sort="size") -> dict:
    now = time.time()
    roots = []
    for root in report.roots:
        repos = select(root.repos, filters, sort, now)
        roots.append({
            "path": root.path, "source": root.source, "exists": root.exists, "error": root.error,
            "size": sum(r.size for r in repos), "size_on_disk": sum(r.on_disk for r in repos),
            "warnings": list(root.warnings),
            "repos": [{
                "cache_id": r.cache_id, "repo_type": r.repo_type, "repo_id": r.repo_id, "path": r.path,
                "size": r.size, "size_on_disk": r.on_disk, "nb_files": r.nb_files,
                "last_accessed": r.last_accessed or None, "last_modified": r.last_modified or None, "refs": r.refs,
                "revisions": [{"commit": v.commit, "refs": list(v.refs), "nb_files": v.nb_files, "size": v.size,
                               "size_on_disk": v.on_disk, "last_modified": v.last_modified} for v in r.revisions],
                "orphans": {"count": len(r.orphans), "size": sum(b.size for b in r.orphans)},
                "incomplete": [{"name": b.name, "size": b.size, "modified": b.modified, "locked": b.locked}
                               for b in r.incomplete],
                "broken": list(r.broken), "outside": list(r.outside), "error": r.error,
            } for r in repos],
        })
    return {"schema_version": 1, "seconds": report.seconds, "roots": roots,
            "others": [{"name": o.name, "path": o.path, "exists": o.exists, "size_on_disk": o.on_disk,
                        "files": o.files} for o in report.others]}


def _console(width: int, color: bool):
    from rich.console import Console

    return Console(file=StringIO(), width=width, color_system="standard" if color else None, force_terminal=color,
                   highlight=False, soft_wrap=False, emoji=False)


def _fit_path(path: str, width: int) -> str:
    """A long path keeps its end, the part that tells folders apart."""
    return path if len(path) <= width else "…" + path[-max(1, width - 1):]


def ls_text(report: CacheReport, filters=(), sort="size", width: int = 100, color: bool = False,
            revisions: bool = False) -> str:
    """Plain fixed-width columns (a rich table costs a second on 2,000 repos), the ID column
    shortened with an ellipsis so every line fits ``width``."""
    bold, dim, yellow, red, reset = (("\x1b[1m", "\x1b[2m", "\x1b[33m", "\x1b[31m", "\x1b[0m") if color
                                     else ("", "", "", "", ""))
    now = time.time()
    out: list[str] = []
    for root in report.roots:
        label = f"  ({printable(root.source)})"
        head = _fit_path(printable(root.path), width - len(label)) + label
        if not root.exists:
            out.append(f"{dim}{head}: not created yet{reset}")
            continue
        if root.error:
            out.append(f"{red}{head}: {printable(root.error)}{reset}")
            continue
        repos = select(root.repos, filters, sort, now)
        out.append(f"{bold}{head}{reset}")
        if repos:
            rows = []
            for r in repos:
                notes = [f"{n} {what}" for n, what in ((len(r.incomplete), "partial"), (len(r.orphans), "orphan"),
                                                        (len(r.broken), "broken")) if n]
                refs = printable(" ".join(sorted(r.refs))) or "-"
                rows.append((printable(r.cache_id), size(r.on_disk), str(len(r.revisions)), _ago(now, r.last_accessed),
                             _ago(now, r.last_modified), refs + (f" [{', '.join(notes)}]" if notes else "")))
            heads = ("ID", "SIZE", "REVS", "ACCESSED", "MODIFIED", "REFS")
            widths = [max(len(h), *(len(row[k]) for row in rows)) for k, h in enumerate(heads)]
            fixed = sum(widths[1:5]) + 2 * 5
            widths[5] = min(widths[5], max(8, (width - fixed) // 3))
            widths[0] = max(12, min(widths[0], width - fixed - widths[5]))
            fmt = "{:<%d}  {:>%d}  {:>%d}  {:<%d}  {:<%d}  {}" % tuple(widths[:5])
            out.append(bold + fmt.format(*heads).rstrip() + reset)
            for r, row in zip(repos, rows):
                out.append(fmt.format(fit(row[0], widths[0]), *row[1:5], fit(row[5], widths[5])).rstrip())
                if revisions:
                    for v in sorted(r.revisions, key=lambda v: v.last_modified, reverse=True):
                        refs = printable(" ".join(v.refs)) or "(detached)"
                        out.append(f"{dim}  {printable(v.commit[:12])}  {size(v.on_disk):>10}  {v.nb_files:>5} files  "
                                   f"{_ago(now, v.last_modified):<14}  {fit(refs, max(8, width - 60))}{reset}")
        shown = f"{len(repos)} of {len(root.repos)} repos" if len(repos) != len(root.repos) else f"{len(repos)} repos"
        partial = sum(b.size for r in repos for b in r.incomplete)
        orphan = sum(b.size for r in repos for b in r.orphans)
        extra = "".join([f", {size(partial)} in partial downloads" if partial else "",
                         f", {size(orphan)} in orphan blobs" if orphan else ""])
        out.append(f"{dim}  {shown}, {size(sum(r.on_disk for r in repos))} on disk{extra}{reset}")
        for w in root.warnings:
            out.append(f"{yellow}  ! {fit(printable(w), width - 4)}{reset}")
        out.append("")
    if report.others:
        out.append(f"{bold}Other caches{reset}")
        for o in report.others:
            what = f"{size(o.on_disk)} in {o.files} files" if o.exists else "not present"
            out.append(f"  {o.name:<10} {what:<24} {_fit_path(printable(o.path), width - 37)}")
        out.append("")
    out.append(f"{dim}Scanned in {report.seconds:.2f} s.{reset}")
    return "\n".join(out) + "\n"


def plan_json(plan: PrunePlan, executed: dict | None = None) -> dict:
    return {"schema_version": 1, "freed": plan.freed, "executed": executed,
            "items": [{"kind": i.kind, "root": i.root, "repo": i.repo, "commit": i.commit, "refs": list(i.refs),
                       "size": i.size, "why": i.why, "path": i.path} for i in plan.items],
            "skipped": [{"what": s.what, "why": s.why, "kind": s.kind} for s in plan.skipped]}


def plan_text(plan: PrunePlan, width: int = 100, color: bool = False, *, defaulted: bool = False,
              dry_run: bool = True) -> str:
    """The plan as a table, what is kept and why, and, for a dry run, that nothing was deleted.
    ``defaulted``: no policy was given (so `hf cache prune`'s was taken)."""
    from rich.table import Table
    from rich.text import Text

    con = _console(width, color)
    if defaulted:
        con.print("No policy given: pruning detached revisions and stale partial downloads.")
    if not plan.items:
        con.print("Nothing that could be read is to be pruned." if plan.problems else "Nothing to prune.")
    else:
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for name, justify in (("WHAT", "left"), ("REPO", "left"), ("REVISION / FILE", "left"), ("FREES", "right"),
                              ("WHY", "left")):
            table.add_column(name, justify=justify, overflow="fold")
        for i in plan.items:
            where = (i.commit[:12] + (f" ({', '.join(i.refs)})" if i.refs else "")) if i.commit else (i.path or "")
            if i.path:
                where = i.path.rsplit("/", 1)[-1]
            table.add_row(i.kind, printable(i.repo), printable(where), size(i.size) if i.size else "", printable(i.why))
        con.print(table)
        con.print(Text(f"\nFrees about {size(plan.freed)}.", style="bold"))
    for s in plan.skipped:
        con.print(Text(f"kept: {printable(s.what)}: {printable(s.why)}", style="yellow"))
    if dry_run and plan.items:
        con.print("\nDry run: nothing was deleted. Run again with --yes to delete.")
    return con.file.getvalue()


def outcome_text(outcome) -> str:
    """What a prune did (what was removed, never what was planned)."""
    return f"\nDeleted {outcome.deleted} item(s), freed {size(outcome.freed)}.\n"
