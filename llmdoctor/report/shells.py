"""Fix commands (``llmdoctor/command.py``) written for the shell they will be pasted into:
POSIX sh (bash, zsh, dash), PowerShell (Windows PowerShell 5.1 and PowerShell 7) or cmd.

* POSIX sh: every word ``shlex.quote``-d; ``export NAME=value``, ``unset NAME``; a value
  that references a variable is double-quoted (``"$CUDA_HOME/bin:$PATH"``); steps joined
  with ``&&``.
* PowerShell: a word that is not plainly safe is single-quoted (an embedded quote doubled,
  PowerShell's typographic quotes ‘ ’ ‚ ‛ included); a quoted program is called with the
  call operator ``&``; ``$env:NAME = 'value'``, ``Remove-Item Env:NAME``; steps joined with
  ``;`` (Windows PowerShell 5.1 has no ``&&``).
* cmd: words quoted by ``mslex`` for cmd (double quotes, ``^`` before ``%`` ``!`` ``^`` and
  any ``&`` ``|`` ``<`` ``>`` outside quotes), so the program's C runtime gets the argv back;
  ``set "NAME=value"``, ``set "NAME="``; steps joined with ``&&``.

What "runs as printed" means, and how it is tested without Windows: README, "Fix commands
for your shell"; ``tests/test_shells.py``.
"""

from __future__ import annotations

import re
import shlex
from typing import Mapping

from llmdoctor.command import Command, FixLine, Ref, Run, SetVar, UnsetVar

#: the names --shell accepts, and the dialect each is written in
SHELLS = {"sh": "sh", "bash": "sh", "zsh": "sh", "dash": "sh", "ksh": "sh", "powershell": "powershell",
          "pwsh": "powershell", "cmd": "cmd"}
CHOICES = ("sh", "bash", "zsh", "powershell", "pwsh", "cmd")
DIALECTS = ("sh", "powershell", "cmd")


def dialect(shell: str | None) -> str:
    """The dialect a shell name is written in; a shell llmdoctor does not write for (fish,
    tcsh, nu) and None get POSIX sh."""
    return SHELLS.get((shell or "sh").lower().removesuffix(".exe"), "sh")


def written_for(shell: str | None) -> str:
    """The shell a line for ``shell`` is written for: itself where llmdoctor writes for it,
    else sh (fish, tcsh, nu get POSIX lines)."""
    name = (shell or "sh").lower().removesuffix(".exe")
    return name if name in SHELLS else "sh"


def described(shell: str | None) -> str:
    """Which shell the lines are for, in words: ``pwsh``, or for a shell llmdoctor does not write
    for, ``POSIX sh (fish is not a shell llmdoctor writes for: run the lines in sh or bash)``."""
    name = written_for(shell)
    if name == "sh" and shell and shell.lower().removesuffix(".exe") not in SHELLS:
        return f"POSIX sh ({shell} is not a shell llmdoctor writes for: run the lines in sh or bash)"
    return name


# --- POSIX sh ----------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _sh_name(name: str) -> str:
    return name if _NAME.match(name) else shlex.quote(name)


def _sh_value(value: tuple) -> str:
    if not any(isinstance(p, Ref) for p in value):
        return shlex.quote("".join(value))
    if any("!" in p for p in value if isinstance(p, str)):  # history expansion in interactive double quotes
        return "".join(shlex.quote(p) if isinstance(p, str) else f'"${{{p.name}}}"' for p in value if p != "")
    out = []
    for i, p in enumerate(value):
        if isinstance(p, Ref):
            nxt = value[i + 1] if i + 1 < len(value) else ""
            braced = isinstance(nxt, str) and nxt[:1] and (nxt[0].isalnum() or nxt[0] == "_")
            out.append(f"${{{p.name}}}" if braced or not _NAME.match(p.name) else f"${p.name}")
        else:
            out.append(re.sub(r'([\\"$`])', r"\\\1", p))
    return '"' + "".join(out) + '"'


def _sh_steps(steps) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(steps):
        s = steps[i]
        if isinstance(s, SetVar):  # consecutive literal exports share one `export`
            group = [s]
            while (i + 1 < len(steps) and isinstance(steps[i + 1], SetVar)
                   and not any(isinstance(p, Ref) and p.name in {g.name for g in group} for p in steps[i + 1].value)):
                i += 1
                group.append(steps[i])
            out.append("export " + " ".join(f"{_sh_name(g.name)}={_sh_value(g.value)}" for g in group))
        elif isinstance(s, UnsetVar):
            group = [s]
            while i + 1 < len(steps) and isinstance(steps[i + 1], UnsetVar):
                i += 1
                group.append(steps[i])
            out.append("unset " + " ".join(_sh_name(g.name) for g in group))
        else:
            env = "".join(f"{_sh_name(k)}={shlex.quote(v)} " for k, v in s.env)
            out.append(env + " ".join(shlex.quote(a) if isinstance(a, str) else _sh_value(a) for a in s.argv))
        i += 1
    return out


# --- PowerShell --------------------------------------------------------------------

#: PowerShell reads these as single quotes too (its tokenizer's IsSingleQuote)
PS_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
PS_DOUBLE_QUOTES = '"\u201c\u201d\u201e'
#: a word PowerShell passes on as it is, unquoted: letters, digits and path punctuation,
#: starting with a letter (a word starting with a digit is read as a number: 30d is the
#: decimal 30, 1kb is 1024, 007 is 7), or a small whole number
_PS_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_./\\:-]*\Z|(0|[1-9][0-9]{0,8})\Z")
_PS_FLAG = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*\Z")  # -m, --index-url (no '.' or ':': PowerShell splits those)
#: words PowerShell reads as a keyword where a command name stands
PS_KEYWORDS = frozenset("begin break catch class clean continue data define do dynamicparam else elseif end enum "
                        "exit filter finally for foreach from function hidden if in inlinescript parallel param "
                        "process return sequence static switch throw trap try until using var while workflow".split())


def ps_quote(word: str) -> str:
    """``word`` as one PowerShell argument: as it is where nothing in it is special, else in
    single quotes (no expansion at all inside), each single quote doubled."""
    if word and (_PS_BARE.match(word) or _PS_FLAG.match(word)) and word != "--":
        return word
    return ps_quote_always(word)


def _ps_var(name: str) -> str:
    if _NAME.match(name):
        return f"$env:{name}"
    return "${env:" + re.sub(r"([{}`])", r"`\1", name) + "}"


def _ps_value(value: tuple) -> str:
    if not any(isinstance(p, Ref) for p in value):
        return ps_quote_always("".join(value))
    out = []
    for p in value:
        if isinstance(p, Ref):
            out.append("${env:" + re.sub(r"([{}`])", r"`\1", p.name) + "}")
        else:
            out.append("".join("`" + c if c in "`$" + PS_DOUBLE_QUOTES else c for c in p))
    return '"' + "".join(out) + '"'


def ps_quote_always(word: str) -> str:
    return "'" + "".join(c * 2 if c in PS_SINGLE_QUOTES else c for c in word) + "'"


def _ps_run(step: Run) -> str:
    env = "".join(f"{_ps_var(k)} = {ps_quote_always(v)}; " for k, v in step.env)
    program = ps_quote(step.argv[0]) if step.argv[0].lower() not in PS_KEYWORDS else ps_quote_always(step.argv[0])
    call = ("& " if program != step.argv[0] else "") + program
    return env + " ".join([call] + [ps_quote(a) if isinstance(a, str) else _ps_value(a) for a in step.argv[1:]])


def _ps_steps(steps) -> list[str]:
    out = []
    for s in steps:
        if isinstance(s, SetVar):
            out.append(f"{_ps_var(s.name)} = {_ps_value(s.value)}")
        elif isinstance(s, UnsetVar):
            out.append(f"Remove-Item Env:{s.name}" if _NAME.match(s.name)
                       else f"Remove-Item -LiteralPath {ps_quote_always('Env:' + s.name)}")
        else:
            out.append(_ps_run(s))
    return out


# --- cmd ---------------------------------------------------------------------------

def cmd_quote(word: str) -> str:
    import mslex

    return mslex.quote(word, for_cmd=True)


_CMD_PLAIN_VALUE = re.compile(r'[^"%!^\r\n]*\Z')
_CMD_SPECIAL = '^&|<>()"!%'


def _caret(text: str) -> str:
    """``text`` for cmd outside quotes: ^ before every character cmd would act on (``^%``
    stops an expansion: ``%NAME^%`` names no variable)."""
    return "".join("^" + c if c in _CMD_SPECIAL else c for c in text)


def _cmd_set(name: str, value: tuple) -> str:
    text = "".join(p if isinstance(p, str) else f"%{p.name}%" for p in value)
    if all(_CMD_PLAIN_VALUE.match(p) for p in value if isinstance(p, str)) and _CMD_PLAIN_VALUE.match(name):
        return f'set "{name}={text}"'
    # a quote, %, ! or ^ in the value: no quotes at all, every special character escaped, and
    # the value ends where the next `&&` starts, with no space that would become part of it
    escaped = "".join(_caret(p) if isinstance(p, str) else f"%{p.name}%" for p in value)
    stripped = escaped.rstrip(" ")  # a trailing space escaped too: nothing may trim it off
    return f"set {_caret(name)}={stripped}" + "^ " * (len(escaped) - len(stripped))


def _cmd_word(word) -> str:
    """A word for cmd: literal text quoted by mslex; a value with references in double quotes,
    its literal text as mslex would quote it inside them and each reference as %NAME%."""
    if isinstance(word, str):
        return cmd_quote(word)
    return '"' + "".join(re.sub(r'(\\*)"', r'\1\1\\"', p) if isinstance(p, str) else f"%{p.name}%"
                         for p in word) + '"'


def _cmd_steps(steps) -> list[str]:
    out = []
    for s in steps:
        if isinstance(s, SetVar):
            out.append(_cmd_set(s.name, s.value))
        elif isinstance(s, UnsetVar):
            out.append(f'set "{s.name}="' if _CMD_PLAIN_VALUE.match(s.name) else f"set {_caret(s.name)}=")
        else:
            out.extend([_cmd_set(k, (v,)) for k, v in s.env] + [" ".join(_cmd_word(a) for a in s.argv)])
    return out


# --- one command, one fix line ---------------------------------------------------

def render(command: Command, shell: str | None = None) -> str:
    """``command`` as one line that runs as printed in ``shell`` (or in the shell the command
    names for itself)."""
    kind = dialect(command.shell or shell)
    if kind == "powershell":
        return "; ".join(_ps_steps(command.steps))
    if kind == "cmd":
        parts = _cmd_steps(command.steps)
        # an unquoted `set NAME=value` ends at `&&` only without a space before it
        return "".join(p + ("&& " if p.startswith("set ") and not p.startswith('set "') else " && ")
                       for p in parts[:-1]) + parts[-1]
    return " && ".join(_sh_steps(command.steps))


def render_line(fix: FixLine, shell: str | None = None) -> str:
    return "".join(p if isinstance(p, str) else render(p, shell) for p in fix.parts)


def fix_text(finding, shell: str | None = None) -> str | None:
    """What a finding prints after "fix:" in ``shell``: its command rendered for it, or its
    words (advice, or the fix string of a report written before fixes were structured)."""
    command = getattr(finding, "command", None)
    return render_line(command, shell) if command is not None else finding.fix


def argv_line(argv, shell: str | None = None) -> str:
    """One program's argv as a line for ``shell`` (a fix plan's "Will run:")."""
    return render(Command((Run(tuple(str(a) for a in argv)),)), shell)


# --- which shell -------------------------------------------------------------------

def shell_of_facts(facts) -> str | None:
    """The shell a report's own facts name: the platform probe's detected shell, else what
    its recorded variables and parent processes say (a report from before the shell was
    detected), else PowerShell for a report from Windows; None when the facts say nothing."""
    from llmdoctor.platforms.shell import from_facts

    platform = facts.value("platform") if facts is not None else None
    system = facts.value("system") if facts is not None else None
    os_name = getattr(platform, "os", None) or getattr(system, "os", None)
    return from_facts(getattr(platform, "shell", None), os_name)


def choose(override: str | None, facts, local=None) -> str:
    """--shell, else the report's facts, else ``local()`` (this machine's shell), else sh."""
    if override:
        return override.lower()
    found = shell_of_facts(facts)
    if found:
        return found
    return (local() if local else None) or "sh"


def environ_shell(environ: Mapping[str, str]) -> str | None:
    """LLMDOCTOR_SHELL, when it names a shell."""
    value = (environ.get("LLMDOCTOR_SHELL") or "").strip().lower()
    return value if value in SHELLS else None
