"""How the target interpreter failed, in words: the probes record a TargetFailure (its kind,
the step, the exit code or the deadline, its last lines of stderr); the runner's probe
findings and the checks that read a failed import or torch's live test word it here."""

from __future__ import annotations

from llmdoctor.platforms.exitcodes import crash_name

#: TargetFailure.step -> what the target interpreter was doing
STEPS = {"start-up": "start-up", "env-scan": "start-up and the environment scan", "torch-scan": "the torch scan",
         "torch-live": "the torch live test"}


def _doing(f) -> str:
    if f.step == "import":
        return f"`import {f.module or '?'}`"
    return STEPS.get(f.step or "", f.step or "its probe")


def failure_text(f) -> str:
    """One line: 'the target interpreter was killed by SIGSEGV during the torch live test'."""
    who, doing = "the target interpreter", _doing(f)
    if f.kind == "start-error":
        return f"could not start {who}: {f.error or 'no reason given'}"
    if f.kind == "timeout":
        within = f"within {f.seconds:g} s" if isinstance(f.seconds, (int, float)) else "in time"
        return f"{who} did not finish {doing} {within}"
    if f.kind == "not-tried":
        return "not tried: the import probe ran out of time"
    if f.kind == "no-result":
        cut = (f" (it printed {f.cut_bytes // 2**20} MB more than is read, from start-up code)"
               if isinstance(f.cut_bytes, int) and f.cut_bytes > 0 else "")
        return f"{who} exited without printing the probe's result{cut}"
    if f.kind in ("signal", "ntstatus") and isinstance(f.exit_code, int):
        crash = crash_name(f.exit_code, "nt" if f.kind == "ntstatus" else "posix")
        if crash is not None and f.kind == "signal":
            return f"{who} was killed by {crash.name} during {doing}"
        if crash is not None:
            means = f": {crash.means}" if crash.means else ""
            return f"{who} crashed with {crash.name} ({crash.code}{means}) during {doing}"
    if f.kind in ("exit", "signal", "ntstatus"):
        lines = (f.tail or "").strip().splitlines()
        return f"{who} exited with code {f.exit_code} during {doing}: {lines[-1] if lines else 'no output'}"
    return f"{who} failed during {doing} ({f.kind})"


def failure_detail(f) -> str:
    """The line, then the interpreter's last lines of output."""
    return failure_text(f) + (f"\n{f.tail}" if f.tail else "")


def import_text(r) -> str:
    """An import result's text: its exception's message, or how the interpreter crashed or hung
    (a report from before ImportResult.failure: its sentence)."""
    return failure_detail(r.failure) if getattr(r, "failure", None) is not None else (r.message or "")


def live_error(t) -> str | None:
    """How torch's live test crashed or hung, in words (a report from before TorchFacts.live_failure:
    its sentence); None when it did not."""
    return failure_detail(t.live_failure) if getattr(t, "live_failure", None) is not None else t.live_error
