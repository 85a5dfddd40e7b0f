"""The `llmdoctor fix` command's steps: pick the fix, gather its facts, plan, show,
confirm, apply through the journal, verify. Output goes through click.echo only."""

from __future__ import annotations

import os
import sys

import click

from .fixing import Fix, FixContext, FixError, apply, show
from .journal import Journal, JournalError
from .paths import config_dir
from .printable import printable
from .redact import redact


def journal() -> Journal:
    return Journal(config_dir(os.environ))


def _say(text: str, err: bool = False) -> None:
    click.echo(printable(redact(text, os.environ), multiline=True), err=err, nl=False)


def _fixes() -> dict[str, Fix]:
    from .registry import load_fixes

    loaded = load_fixes()
    for problem in loaded.problems:
        _say(f"warning: {problem.title}\n", err=True)
    return {f.id: f for f in loaded.fixes}


def list_fixes() -> None:
    fixes = _fixes()
    width = max((len(i) for i in fixes), default=8) + 2
    for fix_id, f in sorted(fixes.items()):
        click.echo(printable(f"--{fix_id:<{width}} {f.source:<10} {f.description}"))


def show_journal() -> None:
    entries = journal().entries()
    if not entries:
        click.echo("No fix has been applied.")
    for e in entries:
        click.echo(printable(e.describe()))


def undo(entry_id: str | None, force: bool) -> int:
    j = journal()
    try:
        entry = j.find(entry_id)
        restored = j.undo(entry, force=force)
    except JournalError as exc:
        _say(f"llmdoctor fix --undo: {exc}\n", err=True)
        return 1
    _say(f"Undid {entry.id} ({entry.fix}): restored " + ", ".join(restored) + "\n")
    return 0


def _pick(args: list[str], fixes: dict[str, Fix]) -> tuple[Fix, list[str]]:
    chosen = [a for a in args if a.startswith("--") and a[2:] in fixes]
    if len(chosen) != 1:
        names = ", ".join(f"--{i}" for i in sorted(fixes))
        what = "more than one fix" if chosen else "no fix"
        raise click.UsageError(f"{what} named in {' '.join(args) or 'the command'}; choose one of: {names}")
    rest = list(args)
    rest.remove(chosen[0])
    return fixes[chosen[0][2:]], rest


def _options(fx: Fix, args: list[str]) -> dict:
    if not fx.params:
        if args:
            raise click.UsageError(f"--{fx.id} takes no option {' '.join(args)}")
        return {}
    command = click.Command(f"fix --{fx.id}", params=list(fx.params), callback=lambda **kw: kw)
    return command.main(args=args, standalone_mode=False, prog_name=f"llmdoctor fix --{fx.id}")


def run(args: list[str], python: str | None, yes: bool, dry_run: bool) -> int:
    from .cli import _target
    from .facts import Facts
    from .probes import ProbeContext, builtin_probes
    from .runner import gather

    fx, rest = _pick(args, _fixes())
    options = _options(fx, rest)
    target = _target(python)
    environ = dict(os.environ)
    probes = [p for p in builtin_probes() if p.name in fx.needs]
    facts = gather(probes, ProbeContext(target=target, environ=environ)) if probes else Facts()
    ctx = FixContext(target=target, environ=environ, options=options, facts=facts)
    try:
        plan = fx.plan(ctx)
    except FixError as exc:
        _say(f"llmdoctor fix --{fx.id}: {exc}\n", err=True)
        return 1
    _say(show(plan))
    if plan.empty or dry_run:
        if dry_run and not plan.empty:
            _say("\nDry run: nothing was changed.\n")
        return 0
    if not yes:
        if not sys.stdin or not sys.stdin.isatty():
            _say("\nNot a terminal, so not asking: run again with --yes to apply.\n", err=True)
            return 1
        if not click.confirm("\nApply?", default=False):
            _say("Nothing was changed.\n")
            return 1
    try:
        entry = apply(plan, journal())
    except FixError as exc:
        _say(f"llmdoctor fix --{fx.id}: {exc}\n", err=True)
        return 1
    _say(f"\nApplied (journal entry {entry}; undo with `llmdoctor fix --undo`).\n")
    if fx.verify is None:
        return 0
    verdict = fx.verify(ctx, plan)
    _say(("Verified: " if verdict.ok else "Verification FAILED: ") + verdict.message + "\n")
    if not verdict.ok:
        _say("The change is still in place; `llmdoctor fix --undo` takes it back.\n", err=True)
    return 0 if verdict.ok else 1
