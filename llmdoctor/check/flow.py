"""Wires registry, probes, runner and report together: ``diagnose`` and ``replay``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from llmdoctor.facts import Facts
from llmdoctor.model import Check, category_titles
from llmdoctor.probes import Probe, ProbeContext, builtin_probes
from llmdoctor.plugins import PLUGIN_CATEGORY, Loaded, load_checks, select
from llmdoctor.report.envelope import Report, facts_from_json, now_iso, saved_dict
from llmdoctor.check.runner import PROBE_CATEGORY, gather, judge, probe_findings
from llmdoctor.target import Target


@dataclass(frozen=True)
class Selection:
    checks: tuple[Check, ...]
    problems: tuple  #: plugin load findings

    @property
    def titles(self) -> dict[str, str]:
        """How the report heads each category these checks (and llmdoctor itself) speak in."""
        return category_titles(self.checks, PROBE_CATEGORY, PLUGIN_CATEGORY)


def selected_checks(only: Sequence[str] = (), skip: Sequence[str] = (), loaded: Loaded | None = None,
                    environ: Mapping[str, str] | None = None) -> Selection:
    loaded = loaded or load_checks(environ=environ)
    return Selection(tuple(select(loaded.checks, only, skip)), loaded.problems)


def probes_for(checks: Sequence[Check], probes: Sequence[Probe], offline: bool) -> list[Probe]:
    """Only the probes the selected checks read; none that touch the network when offline."""
    wanted = {name for c in checks for name in c.needs if not (offline and c.network)}
    return [p for p in probes if p.name in wanted and not (offline and p.network)]


def _target_dict(target: Target, facts: Facts) -> dict:
    t = facts.value("target")
    return {
        "python": target.python,
        "kind": target.kind,
        "prefix": target.prefix,
        "python_version": t.python_version if t else None,
        "executable": t.executable if t else None,
    }


def diagnose(target: Target, *, offline: bool = False, only: Sequence[str] = (), skip: Sequence[str] = (),
             environ: Mapping[str, str] | None = None, probes: Sequence[Probe] | None = None,
             loaded: Loaded | None = None, model=None) -> Report:
    """``model``: a probes.model.ModelRequest (``check --model``), or None."""
    environ = dict(os.environ if environ is None else environ)
    started = time.perf_counter()
    sel = selected_checks(only, skip, loaded, environ)
    chosen = probes_for(sel.checks, builtin_probes() if probes is None else probes, offline)
    ctx = ProbeContext(target=target, environ=environ, offline=offline, model=model)
    facts = gather(chosen, ctx)
    probed = time.perf_counter()
    findings = [*sel.problems, *probe_findings(facts, chosen), *judge(sel.checks, facts, offline=offline)]
    done = time.perf_counter()
    return Report(
        target=_target_dict(target, facts), facts=facts, findings=tuple(findings), offline=offline,
        created=now_iso(),
        timing={"total_s": round(done - started, 4), "probes_s": round(probed - started, 4),
                "checks_s": round(done - probed, 4),
                "per_probe_s": {n: round(r.duration_s, 4) for n, r in facts.items()}},
        categories=sel.titles,
    )


def replay(data: dict, *, only: Sequence[str] = (), skip: Sequence[str] = (),
           probes: Sequence[Probe] | None = None, loaded: Loaded | None = None,
           environ: Mapping[str, str] | None = None) -> Report:
    """Judge a saved report's facts again with the checks installed today."""
    started = time.perf_counter()
    facts = facts_from_json(data, builtin_probes() if probes is None else probes)
    if facts.value("clock") is None:  # a report made before the clock fact: judge dates as of its creation
        from llmdoctor.facts import Facts, ProbeResult
        from llmdoctor.probes.clock import from_created

        clock = from_created(data.get("created"))
        if clock is not None:
            facts = Facts({**facts, "clock": ProbeResult("clock", clock)})
    offline = data.get("offline") is True
    sel = selected_checks(only, skip, loaded, environ)
    findings = [*sel.problems, *probe_findings(facts, builtin_probes() if probes is None else probes),
                *judge(sel.checks, facts, offline=offline)]
    return Report(
        target=saved_dict(data, "target"), facts=facts, findings=tuple(findings), offline=offline,
        created=now_iso(), timing={"total_s": round(time.perf_counter() - started, 4)},
        replayed_from={"created": data.get("created") if isinstance(data.get("created"), str) else None,
                       "tool": saved_dict(data, "tool")},
        categories=sel.titles,
    )
