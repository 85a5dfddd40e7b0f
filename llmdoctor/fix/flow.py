"""The `llmdoctor fix` flow: gather the fix's facts (the probes it needs, under the runner's
deadlines), plan, show, confirm, apply through the journal, verify; and the journal's own
verbs (list, undo). It decides what happens and returns the exit code; the command line
gives it its input and output (:class:`Io`), so nothing here prints or asks by itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from llmdoctor.fix.model import Fix, FixContext, FixError, apply, show
from llmdoctor.fix.journal import Entry, Journal, JournalError
from llmdoctor.paths import config_dir
from llmdoctor.target import Target


@dataclass(frozen=True)
class Io:
    say: Callable[[str], None]  #: the plan and what happened (stdout)
    warn: Callable[[str], None]  #: problems (stderr)
    confirm: Callable[[str], bool] | None = None  #: asks the user; None where no one can be asked


def journal(environ: Mapping[str, str] | None = None) -> Journal:
    return Journal(config_dir(os.environ if environ is None else environ))


def registered(warn: Callable[[str], None] | None = None) -> dict[str, Fix]:
    """Every fix the registry loads (built-in and plugins), by id; a plugin that fails to load is
    said through ``warn``."""
    from llmdoctor.plugins import load_fixes

    loaded = load_fixes()
    for problem in loaded.problems:
        if warn:
            warn(f"warning: {problem.title}\n")
    return {f.id: f for f in loaded.fixes}


def entries() -> list[Entry]:
    return journal().entries()


def undo(entry_id: str | None, force: bool, io: Io) -> int:
    j = journal()
    try:
        entry = j.find(entry_id)
        restored = j.undo(entry, force=force)
    except JournalError as exc:
        io.warn(f"llmdoctor fix --undo: {exc}\n")
        return 1
    io.say(f"Undid {entry.id} ({entry.fix}): restored " + ", ".join(restored) + "\n")
    return 0


def context(fx: Fix, options: Mapping[str, Any], target: Target, environ: Mapping[str, str]) -> FixContext:
    """The facts ``fx`` plans from: the built-in probes it needs and the probes it brings."""
    from llmdoctor.facts import Facts
    from llmdoctor.probes import ProbeContext, builtin_probes
    from llmdoctor.check.runner import gather

    probes = [p for p in builtin_probes() if p.name in fx.needs] + list(fx.probes)
    facts = gather(probes, ProbeContext(target=target, environ=environ, options=dict(options))) if probes \
        else Facts()
    return FixContext(target=target, environ=environ, options=dict(options), facts=facts)


def run(fx: Fix, options: Mapping[str, Any], target: Target, io: Io, *, yes: bool = False, dry_run: bool = False,
        environ: Mapping[str, str] | None = None, shell: str | None = None) -> int:
    """``shell``: the shell the plan's commands are shown for (they run without one)."""
    environ = dict(os.environ if environ is None else environ)
    ctx = context(fx, options, target, environ)
    try:
        plan = fx.plan(ctx)
    except FixError as exc:
        io.warn(f"llmdoctor fix {fx.id}: {exc}\n")
        return 1
    io.say(show(plan, shell))
    if plan.empty or dry_run:
        if dry_run and not plan.empty:
            io.say("\nDry run: nothing was changed.\n")
        return 0
    if not yes:
        if io.confirm is None:
            io.warn("\nNot a terminal, so not asking: run again with --yes to apply.\n")
            return 1
        if not io.confirm("\nApply?"):
            io.say("Nothing was changed.\n")
            return 1
    try:
        entry = apply(plan, journal(environ), shell=shell)
    except FixError as exc:
        io.warn(f"llmdoctor fix {fx.id}: {exc}\n")
        return 1
    io.say(f"\nApplied (journal entry {entry}; undo with `llmdoctor fix --undo`).\n")
    if fx.verify is None:
        return 0
    verdict = fx.verify(ctx, plan)
    io.say(("Verified: " if verdict.ok else "Verification FAILED: ") + verdict.message + "\n")
    if not verdict.ok:
        io.warn("The change is still in place; `llmdoctor fix --undo` takes it back.\n")
    return 0 if verdict.ok else 1
