"""The report: findings plus the facts they were judged from, and its JSON envelope.

The envelope is versioned (``schema_version``) and is the input of ``--replay``:
facts are stored with their probe name, so today's checks can judge them again.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from llmdoctor import __version__
from llmdoctor.facts import Facts, ProbeResult, dump, load
from llmdoctor.model import ExitCode, Finding, Status

SCHEMA_VERSION = 1


class ReplayError(ValueError):
    """The file given to --replay is not an llmdoctor report."""


@dataclass(frozen=True)
class Report:
    target: dict
    facts: Facts
    findings: tuple[Finding, ...]
    timing: dict = field(default_factory=dict)
    offline: bool = False
    created: str = ""
    tool_version: str = __version__
    replayed_from: dict | None = None  #: the original report's tool version and date
    categories: dict = field(default_factory=dict)  #: category -> its title, from the checks that judged

    @property
    def worst(self) -> Status:
        return max((f.status for f in self.findings), default=Status.OK)

def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def exit_code(findings: Iterable[Finding], strict: bool = False) -> ExitCode:
    floor = Status.WARN if strict else Status.ERROR
    return ExitCode.FAILURES if any(f.status >= floor for f in findings) else ExitCode.OK


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    c = Counter(f.status.label for f in findings)
    return {s.label: c.get(s.label, 0) for s in Status}


def to_json(report: Report, shell: str | None = None) -> dict:
    """The envelope; every fix command written for ``shell`` (default: the shell the report's
    own facts name, else POSIX sh), its structure beside it under ``command``."""
    from llmdoctor.report.shells import choose, render_line, written_for

    shell = choose(shell, report.facts)
    findings = []
    for f in report.findings:
        item = f.to_dict()
        if f.command is not None:
            item["fix"] = render_line(f.command, shell)
        findings.append(item)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "llmdoctor", "version": report.tool_version},
        "created": report.created,
        "offline": report.offline,
        "target": report.target,
        "summary": {"worst": report.worst.label, "counts": counts(report.findings)},
        "shell": written_for(shell),
        "findings": findings,
        "facts": {
            name: {"value": dump(r.value), "reason": r.reason, "kind": r.kind,
                   "duration_s": round(r.duration_s, 4)}
            for name, r in report.facts.items()
        },
        "timing": report.timing,
        **({"replayed_from": report.replayed_from} if report.replayed_from else {}),
    }


def facts_from_json(data: dict, probes: Sequence) -> Facts:
    """Rebuild Facts from an envelope, typed by the probes we know; unknown probes are dropped."""
    if not isinstance(data, dict) or "facts" not in data or "schema_version" not in data:
        raise ReplayError("not an llmdoctor report (no schema_version / facts)")
    version = data["schema_version"]
    if type(version) is not int or version < 1:
        raise ReplayError(f"schema_version must be a whole number from 1, not {_show(version)}: "
                          "this is not a report llmdoctor wrote")
    if version > SCHEMA_VERSION:
        raise ReplayError(f"report schema_version {version} is newer than this llmdoctor understands "
                          f"({SCHEMA_VERSION}); upgrade llmdoctor")
    if not isinstance(data["facts"], dict):
        raise ReplayError(f"facts must be an object, not {type(data['facts']).__name__}")
    types = {p.name: p.type for p in probes}
    results = {}
    for name, entry in data["facts"].items():
        if name not in types or not isinstance(entry, dict):
            continue
        try:
            value = load(types[name], entry.get("value"))
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            results[name] = ProbeResult(name, None, f"cannot read saved facts: {type(exc).__name__}: {exc}",
                                        "exception")
            continue
        reason, kind = entry.get("reason"), entry.get("kind")
        results[name] = ProbeResult(name, value, None if reason is None else str(reason),
                                    kind if kind in PROBE_FAILURES else None, _seconds(entry.get("duration_s")))
    return Facts(results)


PROBE_FAILURES = ("timeout", "crash", "exception")


def _seconds(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0.0


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def saved_dict(data: dict, key: str) -> dict:
    """The plain values (text, numbers) of ``data[key]`` when it is an object, else {}: what a
    damaged or hostile report's envelope holds beyond that is dropped."""
    value = data.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if v is None or isinstance(v, (str, int, float, bool))}
