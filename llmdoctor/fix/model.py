"""What every fix shares: a frozen Plan, shown before anything happens, confirmed,
applied through the journal, then verified in a fresh process.

A fix is a plugin (entry point group ``llmdoctor.fixes``) providing :class:`Fix`
objects. ``plan`` is pure with respect to the disk: it reads, it never writes.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from llmdoctor.facts import Facts
from llmdoctor.fix.journal import Journal, read_bytes
from llmdoctor.target import Target


@dataclass(frozen=True)
class FileChange:
    path: str
    content: bytes | None  #: the new bytes; None removes the file
    why: str
    mode: int | None = None  #: permission bits to give the file (None: keep its own, 0600 for a new one)


@dataclass(frozen=True)
class Plan:
    fix: str
    title: str
    changes: tuple[FileChange, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()  #: run after the file changes, in order
    undo_commands: tuple[tuple[str, ...], ...] = ()  #: what `fix --undo` runs to take the commands back
    notes: tuple[str, ...] = ()
    nothing_to_do: str | None = None  #: set when the environment needs no change

    @property
    def empty(self) -> bool:
        return not self.changes and not self.commands


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


@dataclass(frozen=True)
class FixContext:
    target: Target
    environ: Mapping[str, str]
    options: Mapping[str, Any] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)


@dataclass(frozen=True)
class Param:
    """One parameter a fix takes, declared as data: the command line is made from it
    (``llmdoctor fix NAME --<name> VALUE``, or a positional ``argument``), plugins' alike."""

    name: str  #: "ca-file" (the option --ca-file), or the argument's name
    help: str = ""
    kind: str = "text"  #: "text" | "int" | "path" (a file) | "flag"
    metavar: str | None = None
    argument: bool = False  #: positional and optional (``fix mirror [URL]``)
    minimum: int | None = None  #: for "int"
    maximum: int | None = None

    @property
    def key(self) -> str:
        """The name in ``FixContext.options``."""
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class Fix:
    id: str  #: the name: ``llmdoctor fix <id>`` (or ``fix --<id>``)
    description: str
    plan: Callable[[FixContext], Plan] = field(repr=False, compare=False)
    verify: Callable[[FixContext, Plan], Verdict] | None = field(default=None, repr=False, compare=False)
    needs: tuple[str, ...] = ()  #: probes whose facts ``plan`` reads
    params: tuple[Param, ...] = field(default=(), repr=False, compare=False)
    #: probes of its own that ``plan`` reads (run with the others, under their deadlines, with the
    #: options in ``ProbeContext.options``): a plan reads facts, it does no I/O of its own beyond files
    probes: tuple = field(default=(), repr=False, compare=False)
    source: str = "builtin"


class FixError(RuntimeError):
    """A fix cannot make a plan here (the message says why and what to do instead)."""


def diff(change: FileChange) -> str:
    before = read_bytes(change.path)
    if change.content is None:
        return f"remove {change.path}"
    old = (before or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    new = change.content.decode("utf-8", errors="replace").splitlines(keepends=True)
    text = "".join(difflib.unified_diff(old, new, fromfile=change.path if before is not None else "/dev/null",
                                        tofile=change.path))
    return text or f"(no change to {change.path})"


def show(plan: Plan, shell: str | None = None) -> str:
    """The plan as the user reads it before confirming; the commands written for ``shell``
    (POSIX sh by default), so that they can be run by hand as printed."""
    lines = [plan.title]
    if plan.nothing_to_do:
        lines.append(plan.nothing_to_do)
    for change in plan.changes:
        lines += ["", f"{change.why}:", diff(change).rstrip("\n")]
    if plan.commands:
        lines += ["", "Will run:"] + [f"  {quote(argv, shell)}" for argv in plan.commands]
    if plan.undo_commands:
        lines += ["", "`llmdoctor fix --undo` would run:"] + [f"  {quote(argv, shell)}" for argv in plan.undo_commands]
    for note in plan.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def apply(plan: Plan, journal: Journal, run=None, shell: str | None = None) -> str:
    """Write every change through the journal, then run the commands (their output goes
    straight to the terminal: pip shows its own progress); returns the journal entry id.
    A failing command raises FixError; what was done so far stays journaled."""
    from llmdoctor.subproc import run_attached

    recording = journal.begin(plan.fix)
    recording.undo_commands(plan.undo_commands)
    for change in plan.changes:
        recording.write(change.path, change.content)
        if change.content is not None and change.mode is not None:
            os.chmod(change.path, change.mode)
    for argv in plan.commands:
        code = (run or run_attached)(argv)
        if code != 0:
            from llmdoctor.platforms.exitcodes import exit_text

            raise FixError(f"`{quote(argv, shell)}` {exit_text(code)}; journal entry {recording.id} "
                           "holds what was done (`llmdoctor fix --undo` takes it back)")
    return recording.id


def quote(argv, shell: str | None = None) -> str:
    """One program's argv as a line that runs as printed in ``shell`` (POSIX sh by default)."""
    from llmdoctor.report.shells import argv_line

    return argv_line(argv, shell)


def env_without(environ: Mapping[str, str], *names: str) -> dict:
    return {k: v for k, v in environ.items() if k not in names}


def writable_target(ctx: FixContext):
    """The target's facts, when its site-packages (where start-up hooks go) can be written;
    else FixError saying why. Every fix that writes into the environment starts here."""
    target = ctx.facts.value("target")
    if target is None:
        raise FixError(f"cannot inspect the target environment: {ctx.facts.reason('target')}")
    if not target.purelib or not is_writable_dir(target.purelib):
        raise FixError(f"the target's site-packages ({target.purelib}) is not writable; run with --python pointing "
                       "to an environment you own")
    return target


def is_writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)
