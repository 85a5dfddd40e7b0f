"""Fix commands as data: the programs to run (their argv) and the environment variables to
set or unset, with the words that go around them. Checks build these and never quote; the
renderer writes them for the user's shell (POSIX sh, PowerShell or cmd) when a report is
printed (``llmdoctor/report/shells.py``), so one finding prints a line that runs as printed
in whichever shell it is shown for.

* :class:`Run` runs a program: ``argv`` (every word literal, never a shell expression) and
  variables set for that program only (``MAX_JOBS=4 pip install ...``);
* :class:`SetVar` sets a variable for the rest of the session; its value is literal text
  and :class:`Ref` (the value of another variable: ``"$CUDA_HOME/bin:$PATH"``);
* :class:`UnsetVar` removes one;
* :class:`Command` is steps run one after the other, each only if the previous succeeded;
* :class:`FixLine` is what a finding prints after "fix:": commands and words
  (``"   (or: "``, advice that is not a command), in order.

A placeholder the user must fill in (``<your CA.pem>``) is literal text: it is quoted like
any other word, so a line run as printed fails harmlessly instead of redirecting a file.

This module imports nothing of llmdoctor: checks, facts and renderers all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union


@dataclass(frozen=True)
class Ref:
    """The value of environment variable ``name``, inside a value: a :class:`SetVar`'s, or a
    :class:`Run` word's (``sudo chown -R "$USER" ...``, ``env "PATH=$PATH:/opt/bin"``)."""

    name: str


#: a value: literal text and references, concatenated
Value = tuple[Union[str, "Ref"], ...]


@dataclass(frozen=True)
class Run:
    #: the program (literal text) and its words: each literal text, or a Value that references
    #: variables (one word whatever the variables hold)
    argv: tuple[Union[str, Value], ...]
    env: tuple[tuple[str, str], ...] = ()  #: (name, value) set for this program only


@dataclass(frozen=True)
class SetVar:
    name: str
    value: tuple[Union[str, Ref], ...]  #: literal text and references, concatenated

    @property
    def literal(self) -> str | None:
        """The value when it references no other variable."""
        return None if any(isinstance(p, Ref) for p in self.value) else "".join(self.value)


@dataclass(frozen=True)
class UnsetVar:
    name: str


Step = Union[Run, SetVar, UnsetVar]


@dataclass(frozen=True)
class Command:
    steps: tuple[Step, ...]
    #: the shell it must be written for, whatever the user's: ``wsl --shutdown`` runs in Windows'
    #: PowerShell, not in the WSL shell that read the facts (the words around it say so)
    shell: str | None = None

    def __add__(self, other: "Command") -> "Command":
        """Both commands' steps, this one's first: ``unset("A") + run("llmdoctor", "check")``."""
        if not isinstance(other, Command):
            return NotImplemented
        return Command(self.steps + other.steps, self.shell or other.shell)


@dataclass(frozen=True)
class FixLine:
    """What a finding prints after "fix:": commands (rendered for the shell) and words (as
    they are), concatenated in order."""

    parts: tuple[Union[str, Command], ...]

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(p for p in self.parts if isinstance(p, Command))

    def to_json(self) -> list:
        return [p if isinstance(p, str) else {"steps": [_step_json(s) for s in p.steps],
                                              **({"shell": p.shell} if p.shell else {})} for p in self.parts]

    @classmethod
    def from_json(cls, data) -> "FixLine":
        """The structure ``to_json`` wrote; ValueError for anything else (a hostile report)."""
        if not isinstance(data, list) or len(data) > 64:
            raise ValueError("a fix command is a list of words and commands")
        parts: list = []
        for item in data:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("steps"), list) and 0 < len(item["steps"]) <= 64:
                # (a Ref word reads {"ref": name}; a missing name is a ValueError from _text)
                shell = item.get("shell")
                parts.append(Command(tuple(_step_from_json(s) for s in item["steps"]),
                                     shell if isinstance(shell, str) else None))
            else:
                raise ValueError(f"not a fix command part: {str(item)[:60]!r}")
        return cls(tuple(parts))


# --- building (what checks call) ------------------------------------------------

def run(*argv, env: dict[str, str] | None = None, shell: str | None = None) -> Command:
    """Run a program: ``run(python, "-m", "pip", "install", "tokenizers<0.20")``; a word that is
    a :class:`Ref` is that variable's value, a tuple of text and Refs their concatenation
    (``("PATH=", Ref("PATH"), ":/opt/bin")``), each one word."""
    words = tuple(_word(a) if i else str(a) for i, a in enumerate(argv))
    return Command((Run(words, tuple((str(k), str(v)) for k, v in (env or {}).items())),), shell)


def _word(a):
    if isinstance(a, Ref):
        return (a,)
    if isinstance(a, tuple):
        parts = tuple(p if isinstance(p, Ref) else str(p) for p in a)
        return parts if any(isinstance(p, Ref) for p in parts) else "".join(parts)
    return str(a)


def setvar(name: str, *value: Union[str, Ref]) -> Command:
    """Set ``name`` for this session: ``setvar("HF_HOME", "/data/hf")``,
    ``setvar("PATH", Ref("CUDA_HOME"), "/bin:", Ref("PATH"))``."""
    return Command((SetVar(str(name), tuple(v if isinstance(v, Ref) else str(v) for v in value)),))


def setvars(pairs: dict[str, str]) -> Command:
    """Several literal variables at once, in order."""
    return Command(tuple(SetVar(str(k), (str(v),)) for k, v in pairs.items()))


def unset(*names: str) -> Command:
    return Command(tuple(UnsetVar(str(n)) for n in names))


def line(*parts: Union[str, Command, "FixLine", None]) -> FixLine:
    """A fix line from commands and words, in order (None parts are left out; a FixLine's
    parts are taken in place)."""
    out: list = []
    for p in parts:
        if p is None or p == "":
            continue
        if isinstance(p, FixLine):
            out.extend(p.parts)
        elif isinstance(p, (str, Command)):
            out.append(p)
        else:
            raise TypeError(f"a fix line holds words and commands, not {type(p).__name__}")
    return FixLine(tuple(out))


def as_fix(value) -> tuple[str | None, FixLine | None]:
    """What a check passed as ``fix=`` (words, a Command, a FixLine, or a sequence of words
    and commands) as (words, structured line): words alone stay words."""
    if value is None or isinstance(value, str):
        return value, None
    if isinstance(value, Command):
        return None, FixLine((value,))
    made = value if isinstance(value, FixLine) else line(*value)
    if not made.commands:
        return "".join(made.parts) or None, None
    return None, made


def template(parts, fields: dict) -> FixLine:
    """A fix written as data (``checks/data/*.json``): a list of words and steps,
    ``{"run": ["{pip}", "install", "{dist}"]}``, ``{"set": {"NAME": "value"}}``,
    ``{"unset": ["NAME"]}``, filled from ``fields`` (str.format). A word that is exactly
    ``{name}`` where ``fields[name]`` is a tuple expands to its words (``{pip}``: the
    target's python, -m, pip)."""
    if isinstance(parts, str):
        parts = [parts]
    out: list = []
    steps: list = []

    def flush():
        if steps:
            out.append(Command(tuple(steps)))
            steps.clear()

    for part in parts:
        if isinstance(part, str):
            flush()
            out.append(part.format_map(_words(fields)))
        elif "run" in part:
            argv: list[str] = []
            for word in part["run"]:
                key = word[1:-1] if word.startswith("{") and word.endswith("}") else None
                if key is not None and isinstance(fields.get(key), tuple):
                    argv.extend(fields[key])
                else:
                    argv.append(word.format_map(_words(fields)))
            env = tuple((k, str(v).format_map(_words(fields))) for k, v in (part.get("env") or {}).items())
            steps.append(Run(tuple(argv), env))
        elif "set" in part:
            steps.extend(SetVar(k, (str(v).format_map(_words(fields)),)) for k, v in part["set"].items())
        elif "unset" in part:
            steps.extend(UnsetVar(n) for n in part["unset"])
        else:
            raise ValueError(f"not a fix template part: {part!r}")
    flush()
    return FixLine(tuple(out))


class _Fields(dict):
    def __missing__(self, key):  # a brace the data means literally stays as it is
        return "{" + key + "}"


def _words(fields: dict) -> dict:
    """Fields for str.format inside a word: a tuple field as its words joined (as words go)."""
    return _Fields({k: " ".join(v) if isinstance(v, tuple) else v for k, v in fields.items()})


def _step_json(step: Step) -> dict:
    if isinstance(step, Run):
        return {"run": [a if isinstance(a, str) else {"value": _value_json(a)} for a in step.argv],
                **({"env": dict(step.env)} if step.env else {})}
    if isinstance(step, SetVar):
        return {"set": step.name, "value": _value_json(step.value)}
    return {"unset": step.name}


def _value_json(value) -> list:
    return [p if isinstance(p, str) else {"ref": p.name} for p in value]


def _value_from_json(value) -> tuple:
    if not isinstance(value, list) or len(value) > 64:
        raise ValueError("a value is a list of text and references")
    return tuple(Ref(_text(p.get("ref"))) if isinstance(p, dict) else _text(p) for p in value)


def _text(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, not {type(value).__name__}")
    return value


def _step_from_json(data) -> Step:
    if not isinstance(data, dict):
        raise ValueError("a step is an object")
    if "run" in data:
        argv, env = data["run"], data.get("env") or {}
        if not isinstance(argv, list) or not argv or len(argv) > 256 or not isinstance(env, dict):
            raise ValueError("run: a non-empty list of words")
        words = tuple(_value_from_json(a.get("value")) if isinstance(a, dict) and i else _text(a)
                      for i, a in enumerate(argv))
        return Run(words, tuple((_text(k), _text(v)) for k, v in env.items()))
    if "set" in data:
        value = data.get("value")
        if not isinstance(value, list):
            raise ValueError("set: a value list")
        return SetVar(_text(data["set"]), _value_from_json(value))
    if "unset" in data:
        return UnsetVar(_text(data["unset"]))
    raise ValueError("a step runs, sets or unsets")


def programs(fix: FixLine | None) -> Iterable[str]:
    """The programs a fix line runs (argv[0] of every Run)."""
    for cmd in (fix.commands if fix else ()):
        for step in cmd.steps:
            if isinstance(step, Run):
                yield step.argv[0]
