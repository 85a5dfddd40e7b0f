"""The vocabulary every part of llmdoctor speaks: Status, Finding, Check.

Findings and checks are frozen values. A check is a pure function of facts; the
runner, not the check, adds timing and turns crashes into findings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from llmdoctor.command import FixLine, as_fix

if TYPE_CHECKING:  # pragma: no cover
    from llmdoctor.facts import Facts


class Status(enum.IntEnum):
    """Ordered so that ``max()`` of a set of statuses is the worst one."""

    OK = 0  #: the thing was checked and is fine
    SKIP = 1  #: not applicable here (no GPU, --offline, a needed fact is unknown)
    INFO = 2  #: worth knowing, nothing to do
    WARN = 3  #: likely to bite later; the run still passes unless --strict
    ERROR = 4  #: llmdoctor could not judge: a plugin, probe or check broke
    FAIL = 5  #: a real problem that will break a job

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Status":
        try:
            return cls[str(text).upper()]
        except KeyError:
            raise ValueError(f"unknown status {text!r}; expected one of {', '.join(s.label for s in cls)}") from None

    @property
    def is_problem(self) -> bool:
        return self >= Status.WARN


class ExitCode(enum.IntEnum):
    OK = 0  #: no failures (warnings allowed unless --strict)
    FAILURES = 1  #: at least one fail or error finding (or warn with --strict)
    USAGE = 2  #: bad command line (click's own code)
    INTERNAL = 3  #: llmdoctor itself broke


@dataclass(frozen=True)
class Finding:
    id: str  #: stable, dotted: ``category.what`` e.g. ``system.shm-small``
    category: str
    status: Status
    title: str  #: one line
    detail: str = ""
    #: the fix in words: advice that is not a command, or the fix string of a report written
    #: before fixes were structured (shown as it is); None where ``command`` says it
    fix: str | None = None
    docs: str | None = None  #: URL the diagnosis / fix comes from
    check: str | None = None  #: id of the check that produced it
    duration_s: float | None = None
    #: answers to the questions this finding decides, as (question, answer) pairs such as
    #: ("torch-build-runs:2.5.1+cu121", "no"): no two findings of a report may answer one
    #: question differently (the cross-check harness in tests/test_crosscheck.py asserts it)
    claims: tuple[tuple[str, str], ...] = ()
    #: the fix as commands and words (llmdoctor/command.py), written for the user's shell only
    #: when printed (llmdoctor/report/shells.py)
    command: FixLine | None = None

    @property
    def has_fix(self) -> bool:
        return bool(self.command is not None or (self.fix or "").strip())

    def to_dict(self) -> dict:
        """The JSON form; ``fix`` holds the words (the envelope replaces it with the command
        as written for the shell in effect) and ``command`` the structure."""
        out = {
            "id": self.id,
            "category": self.category,
            "status": self.status.label,
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
            "docs": self.docs,
            "check": self.check,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 4),
        }
        if self.claims:
            out["claims"] = dict(self.claims)
        if self.command is not None:
            out["command"] = self.command.to_json()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Finding":
        command = None
        if data.get("command") is not None:
            try:
                command = FixLine.from_json(data["command"])
            except (ValueError, TypeError, KeyError, AttributeError):
                command = None  # a damaged structure: the rendered fix string is shown as it is
        fix = data.get("fix")
        return cls(
            id=str(data["id"]),
            category=str(data.get("category") or data["id"].split(".")[0]),
            status=Status.parse(data["status"]),
            title=str(data.get("title", "")),
            detail=str(data.get("detail") or ""),
            fix=None if command is not None else (None if fix is None else str(fix)),
            docs=data.get("docs"),
            check=data.get("check"),
            duration_s=data.get("duration_s"),
            claims=tuple((str(k), str(v)) for k, v in (data.get("claims") or {}).items())
            if isinstance(data.get("claims"), dict) else (),
            command=command,
        )


CheckFn = Callable[["Facts"], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    """A judgement over facts. ``run`` must be pure: facts in, findings out."""

    id: str
    category: str
    description: str  #: one line, shown by ``llmdoctor check --list``
    run: CheckFn = field(repr=False, compare=False)
    needs: tuple[str, ...] = ()  #: probe names whose facts the check reads
    network: bool = False  #: skipped with --offline
    source: str = "builtin"  #: the plugin (distribution) that registered it
    category_title: str | None = None  #: how reports head its category ("GPU and driver"); else the name

    def finding(self, status: Status, title: str, *, id: str | None = None, detail: str = "",
                fix=None, docs: str | None = None, claims=()) -> Finding:
        """Build a finding attributed to this check (``id`` defaults to the check's).
        ``fix``: words, a :class:`~llmdoctor.command.Command`, or a sequence of words and
        commands (``(run(...), "   (or: ", run(...), ")")``); never a shell-quoted string.
        ``claims``: a mapping or pairs of (question, answer) the finding decides."""
        pairs = tuple(claims.items()) if isinstance(claims, dict) else tuple(claims)
        words, command = as_fix(fix)
        return Finding(id=id or self.id, category=self.category, status=status, title=title,
                       detail=detail, fix=words, docs=docs, check=self.id, claims=pairs, command=command)


def check(id: str, *, category: str | None = None, needs: Iterable[str] = (), network: bool = False,
          category_title: str | None = None):
    """Decorator turning ``def fn(facts, c) -> Iterable[Finding]`` into a :class:`Check`.

    The function's first docstring line is the description. ``c`` is the Check itself,
    so findings are built with ``c.finding(...)`` and carry the right id and category.
    ``category_title`` heads the category in reports (a plugin's own category, say).
    """

    def wrap(fn: Callable) -> Check:
        doc = (fn.__doc__ or "").strip().splitlines()
        holder: dict = {}

        def run(facts):
            return fn(facts, holder["check"])

        made = Check(id=id, category=category or id.split(".")[0], description=doc[0] if doc else id,
                     run=run, needs=tuple(needs), network=network, category_title=category_title)
        holder["check"] = made
        return made

    return wrap


def category_titles(checks: Iterable[Check], *more: tuple[str, str]) -> dict[str, str]:
    """{category: its title} from what ``checks`` declare, plus ``more`` (name, title) pairs."""
    titles = {c.category: c.category_title for c in checks if c.category_title}
    titles.update(more)
    return titles
