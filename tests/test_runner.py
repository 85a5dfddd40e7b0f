import time
from dataclasses import dataclass

from factories import facts
from llmdoctor.model import Check, Finding, Status, check
from llmdoctor.probes import Probe, ProbeContext, ProbeFailed
from llmdoctor.check.runner import gather, judge, probe_findings
from llmdoctor.target import resolve_target


@dataclass(frozen=True)
class Small:
    n: int


def ctx():
    return ProbeContext(target=resolve_target(), environ={})


def test_a_hanging_probe_becomes_a_timeout_finding_within_its_deadline():
    probes = [Probe("slow", lambda c: time.sleep(60), Small, timeout_s=0.5),
              Probe("fast", lambda c: Small(1), Small, timeout_s=5)]
    started = time.perf_counter()
    f = gather(probes, ctx())
    assert time.perf_counter() - started < 3
    assert f["slow"].kind == "timeout" and f["slow"].value is None
    assert f.value("fast") == Small(1)
    (finding,) = probe_findings(f, probes)
    assert finding.id == "probe.slow.timeout" and finding.status is Status.ERROR
    assert "0.5 s" in finding.title


def test_a_raising_probe_is_an_error_and_a_crash_the_probe_declares_the_users_a_failure():
    def boom(c):
        raise RuntimeError("disk on fire")

    def crashed(c):
        raise ProbeFailed("the target interpreter was killed by SIGSEGV during start-up", "crash")

    probes = [Probe("boom", boom, Small), Probe("interpreter", crashed, Small, crash_is_failure=True),
              Probe("target-like-name", crashed, Small)]
    got = {x.id: x for x in probe_findings(gather(probes, ctx()), probes)}
    assert got["probe.boom.exception"].status is Status.ERROR
    assert "RuntimeError: disk on fire" in got["probe.boom.exception"].title
    assert got["probe.interpreter.crash"].status is Status.FAIL  # declared, not guessed from its name
    assert got["probe.target-like-name.crash"].status is Status.ERROR


def test_a_check_that_raises_is_an_error_and_the_others_still_run():
    @check("demo.broken")
    def broken(facts, c):
        """Always raises."""
        raise ZeroDivisionError("oops")
        yield  # pragma: no cover

    @check("demo.fine")
    def fine(facts, c):
        """Always fine."""
        yield c.finding(Status.OK, "fine")

    out = judge([broken, fine], facts())
    assert [(f.id, f.status) for f in out] == [("demo.broken.crashed", Status.ERROR), ("demo.fine", Status.OK)]
    assert "ZeroDivisionError: oops" in out[0].title


def test_a_hanging_check_times_out():
    slow = Check("demo.slow", "demo", "sleeps", run=lambda f: time.sleep(30) or [])
    started = time.perf_counter()
    (f,) = judge([slow], facts(), timeout_s=0.3)
    assert time.perf_counter() - started < 2 and f.id == "demo.slow.timeout"


def test_a_check_returning_garbage_is_an_error():
    bad = Check("demo.bad", "demo", "returns strings", run=lambda f: ["not a finding"])
    (f,) = judge([bad], facts())
    assert f.status is Status.ERROR and "str" in f.title


def test_checks_whose_facts_are_missing_are_skipped_with_the_reason():
    needs = Check("demo.needs", "demo", "needs system", run=lambda f: [], needs=("system",))
    (f,) = judge([needs], facts())
    assert f.status is Status.SKIP and "system" in f.title


def test_network_checks_skip_offline():
    net = Check("network.demo", "network", "net", run=lambda f: [Finding("x", "network", Status.OK, "reached")],
                network=True)
    (f,) = judge([net], facts(), offline=True)
    assert f.status is Status.SKIP and "offline" in f.title


def test_status_order_makes_the_worst_win():
    assert max(Status.OK, Status.WARN, Status.SKIP) is Status.WARN
    assert max(Status.ERROR, Status.FAIL) is Status.FAIL
    assert sorted(Status)[0] is Status.OK
