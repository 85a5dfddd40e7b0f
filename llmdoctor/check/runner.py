"""Run probes concurrently under deadlines, then judge the facts with checks.

Every probe and check runs in a daemon thread: one that hangs is abandoned at its
deadline (and cannot keep the process alive at exit), one that raises becomes a
finding. llmdoctor itself never hangs or crashes because of a probe or a plugin.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Sequence

from llmdoctor.checks.failures import failure_text
from llmdoctor.facts import Facts, ProbeResult
from llmdoctor.model import Check, Finding, Status
from llmdoctor.probes import Probe, ProbeContext, ProbeFailed

CHECK_TIMEOUT_S = 5.0
PROBE_CATEGORY = ("probe", "Probes")  #: the category of the findings about probes that broke


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    tb: str = ""
    timed_out: bool = False
    duration_s: float = 0.0


class _Call:
    """fn() running in a daemon thread; ``wait(deadline)`` returns an _Outcome."""

    def __init__(self, fn: Callable[[], Any]):
        self._fn = fn
        self._done = threading.Event()
        self._outcome = _Outcome()
        self._start = time.perf_counter()
        threading.Thread(target=self._run, daemon=True, name="llmdoctor-call").start()

    def _run(self) -> None:
        try:
            value = self._fn()
            if hasattr(value, "__next__"):  # generator checks: consume inside the deadline
                value = list(value)
            self._outcome = _Outcome(value=value, duration_s=time.perf_counter() - self._start)
        except BaseException as exc:  # noqa: BLE001 - everything becomes a finding
            self._outcome = _Outcome(error=exc, tb=traceback.format_exc(),
                                     duration_s=time.perf_counter() - self._start)
        finally:
            self._done.set()

    def wait(self, deadline: float) -> _Outcome:
        if not self._done.wait(max(0.0, deadline - time.perf_counter())):
            return _Outcome(timed_out=True, duration_s=time.perf_counter() - self._start)
        return self._outcome


def gather(probes: Sequence[Probe], ctx: ProbeContext) -> Facts:
    """Start every probe at once; collect each by its own deadline."""
    started = time.perf_counter()
    calls = [(p, _Call(lambda p=p: p.fn(ctx))) for p in probes]
    results: dict[str, ProbeResult] = {}
    for probe, call in calls:
        out = call.wait(started + probe.timeout_s)
        if out.timed_out:
            results[probe.name] = ProbeResult(probe.name, None, f"did not finish within {probe.timeout_s:g} s",
                                              "timeout", out.duration_s)
        elif isinstance(out.error, ProbeFailed):
            failure = out.error.failure
            reason = failure_text(failure) if failure is not None else out.error.reason
            results[probe.name] = ProbeResult(probe.name, None, reason, out.error.kind, out.duration_s)
        elif out.error is not None:
            reason = f"{type(out.error).__name__}: {out.error}"
            results[probe.name] = ProbeResult(probe.name, None, reason, "exception", out.duration_s)
        else:
            results[probe.name] = ProbeResult(probe.name, out.value, None, None, out.duration_s)
    return Facts(results)


def probe_findings(facts: Facts, probes: Sequence[Probe]) -> list[Finding]:
    """A finding for each probe that broke: an error (llmdoctor could not judge), or a failure
    where the probe declares that its crash is the user's own problem (``crash_is_failure``:
    a crashing target interpreter crashes the user's jobs too)."""
    failing = {p.name for p in probes if p.crash_is_failure}
    out = []
    for result in facts.values():
        if result.ok or result.kind is None:
            continue
        status = Status.FAIL if result.kind == "crash" and result.name in failing else Status.ERROR
        out.append(Finding(
            id=f"probe.{result.name}.{result.kind}", category=PROBE_CATEGORY[0], status=status,
            title=f"Probe '{result.name}': {result.reason}",
            detail="Checks that need these facts were skipped.",
            fix=("run the environment's python by hand (`python -c pass`, then the import the probe names) to see "
                 "what kills it: a .pth or sitecustomize at start-up, or a broken native package") if status is
            Status.FAIL else None,
            check="probe", duration_s=result.duration_s))
    return out


def judge(checks: Iterable[Check], facts: Facts, *, offline: bool = False,
          timeout_s: float = CHECK_TIMEOUT_S) -> list[Finding]:
    """Run every check against ``facts``; findings come back in check order."""
    started = []
    findings: list[Finding] = []
    for check in checks:
        missing = [n for n in check.needs if facts.value(n) is None]
        if check.network and offline:
            started.append((check, None, [check.finding(Status.SKIP, "Skipped: --offline")]))
        elif missing:
            why = "; ".join(f"{n}: {facts.reason(n) or 'unknown'}" for n in missing)
            started.append((check, None, [check.finding(Status.SKIP, f"Skipped: no facts from {', '.join(missing)}",
                                                         detail=why)]))
        else:
            started.append((check, _Call(lambda c=check: c.run(facts)), None))
    for check, call, ready in started:
        if ready is not None:
            findings.extend(ready)
            continue
        out = call.wait(time.perf_counter() + timeout_s)
        findings.extend(_check_findings(check, out, timeout_s))
    return findings


def _check_findings(check: Check, out: _Outcome, timeout_s: float) -> list[Finding]:
    if out.timed_out:
        return [check.finding(Status.ERROR, f"Check {check.id} did not finish within {timeout_s:g} s",
                              id=f"{check.id}.timeout", detail=f"from {check.source}")]
    if out.error is not None:
        return [check.finding(Status.ERROR, f"Check {check.id} crashed: {type(out.error).__name__}: {out.error}",
                              id=f"{check.id}.crashed", detail=f"from {check.source}\n{out.tb}")]
    try:
        items = list(out.value or ())
    except TypeError:
        items = [out.value]
    bad = [x for x in items if not isinstance(x, Finding)]
    if bad:
        return [check.finding(Status.ERROR, f"Check {check.id} returned {type(bad[0]).__name__}, not Finding",
                              id=f"{check.id}.crashed", detail=f"from {check.source}")]
    per = out.duration_s / max(1, len(items))
    return [replace(f, check=f.check or check.id, duration_s=per) for f in items]
