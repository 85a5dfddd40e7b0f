"""Read a fix line back the way each shell would, without that shell (no Windows, no pwsh here):

* ``posix_steps``: a POSIX sh line through ``shlex`` (with ``&&`` as punctuation), variables
  expanded from a given environment only where the line leaves them to the shell;
* ``ps_steps``: a PowerShell tokenizer for the syntax llmdoctor emits: statements split at
  ``;``, single-quoted strings (``''`` and PowerShell's typographic quotes doubled),
  double-quoted strings with backtick escapes and ``${env:NAME}`` / ``$env:NAME``, the call
  operator ``&``, bare words (only characters PowerShell passes on as they are: anything
  else raises), ``$env:NAME = ...`` and ``Remove-Item Env:NAME``;
* ``cmd_steps``: cmd's two phases as they apply to one interactive line: ``%NAME%``
  expansion (an undefined name stays as written), then ``^`` escapes and quotes, statements
  split at ``&&``; ``set "NAME=value"`` / ``set NAME=value``; a program's argv by ``mslex``
  (the Microsoft C runtime's rules). An unquoted, unescaped ``<``, ``>``, ``|`` or lone ``&``
  raises: cmd would redirect or pipe there.

Each returns steps as tuples: ``("run", argv, env)``, ``("set", name, value)``, ``("unset", name)``.
"""

from __future__ import annotations

import re
import shlex

import mslex


class Unparsed(ValueError):
    """The line is not what the shell would run as the fix says."""


# --- what a Command should read back as -------------------------------------------

def expected_steps(command, env: dict) -> list[tuple]:
    """The steps of a llmdoctor Command with every Ref resolved in ``env`` (what the shell
    would hand the program, or store in the variable); env prefixes of a Run become their own
    set steps first in shells that have no prefix form (``separate_env``)."""
    from llmdoctor.command import Ref, Run, SetVar

    def value(parts):
        return "".join(env.get(p.name, "") if isinstance(p, Ref) else p for p in parts)

    out = []
    for s in command.steps:
        if isinstance(s, Run):
            out.append(("run", [a if isinstance(a, str) else value(a) for a in s.argv], dict(s.env)))
        elif isinstance(s, SetVar):
            out.append(("set", s.name, value(s.value)))
        else:
            out.append(("unset", s.name))
    return out


def flatten_env(steps: list[tuple]) -> list[tuple]:
    """Run steps' env as set steps before them (how PowerShell and cmd lines do it)."""
    out = []
    for s in steps:
        if s[0] == "run" and s[2]:
            out += [("set", k, v) for k, v in s[2].items()]
            out.append(("run", s[1], {}))
        else:
            out.append(s)
    return out


# --- POSIX sh ---------------------------------------------------------------------

_SH_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def posix_steps(line: str, env: dict) -> list[tuple]:
    """The steps of a POSIX line; a word's ``$NAME`` is expanded only where it was not in
    single quotes (shlex keeps quoting information per character, so this re-scans)."""
    words = _posix_words(line, env)
    steps, cur = [], []
    for w in words + [None]:
        if w is None or w == ("op", "&&"):
            if not cur:
                raise Unparsed(f"empty statement in {line!r}")
            steps.extend(_posix_statement(cur))
            cur = []
        elif isinstance(w, tuple):
            raise Unparsed(f"shell operator {w[1]!r} in {line!r}")
        else:
            cur.append(w)
    return steps


def _posix_statement(words: list[str]) -> list[tuple]:
    if words[0] == "export":
        if len(words) < 2 or not all(re.match(r"[A-Za-z_][A-Za-z0-9_]*=", w) for w in words[1:]):
            raise Unparsed(f"export NAME=value ... expected: {words}")
        return [("set", *w.partition("=")[::2]) for w in words[1:]]
    if words[0] == "unset":
        if len(words) < 2:
            raise Unparsed(f"unset NAME ... expected: {words}")
        return [("unset", w) for w in words[1:]]
    env = {}
    while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    return [("run", words, env)]


def _posix_words(line: str, env: dict) -> list:
    """Words of ``line`` as sh splits them: quotes removed, $NAME expanded outside single
    quotes, ``&&`` and other operators as ("op", text)."""
    out, i, n = [], 0, len(line)
    word, has = [], False
    while i < n:
        c = line[i]
        if c in " \t":
            if has:
                out.append("".join(word))
                word, has = [], False
            i += 1
        elif c == "'":
            j = line.index("'", i + 1)
            word.append(line[i + 1:j])
            has, i = True, j + 1
        elif c == '"':
            i += 1
            has = True
            while line[i] != '"':
                if line[i] == "\\" and line[i + 1] in '\\"$`':
                    word.append(line[i + 1])
                    i += 2
                elif line[i] == "$":
                    m = _SH_VAR.match(line, i)
                    if not m:
                        raise Unparsed(f"unexpected $ in {line!r}")
                    word.append(env.get(m.group(1) or m.group(2), ""))
                    i = m.end()
                elif line[i] == "`" or line[i] == "!":
                    raise Unparsed(f"{line[i]!r} inside double quotes in {line!r}")
                else:
                    word.append(line[i])
                    i += 1
            i += 1
        elif c == "\\":
            word.append(line[i + 1])
            has, i = True, i + 2
        elif c in "&|;<>()":
            if has:
                out.append("".join(word))
                word, has = [], False
            op = line[i:i + 2] if line[i:i + 2] in ("&&", "||", ">>", "<<") else c
            out.append(("op", op))
            i += len(op)
        elif c == "$":
            m = _SH_VAR.match(line, i)
            if not m:
                raise Unparsed(f"unexpected $ in {line!r}")
            word.append(env.get(m.group(1) or m.group(2), ""))
            has, i = True, m.end()
        elif c in "`*?[~#{}":
            if c in "*?[" or (c == "~" and not has) or (c == "#" and not has) or c in "`{}":
                raise Unparsed(f"unquoted {c!r} in {line!r}")
            word.append(c)
            has, i = True, i + 1
        else:
            word.append(c)
            has, i = True, i + 1
    if has:
        out.append("".join(word))
    # shlex agrees on the words where nothing is expanded
    if "$" not in line:
        lex = shlex.shlex(line, posix=True, punctuation_chars="&|;<>()")
        lex.whitespace_split = True
        theirs = list(lex)
        mine = [w if isinstance(w, str) else w[1] for w in out]
        if theirs != mine:
            raise Unparsed(f"shlex reads {theirs!r}, not {mine!r}")
    return out


# --- PowerShell -------------------------------------------------------------------

PS_SINGLE = "'\u2018\u2019\u201a\u201b"
PS_KEYWORDS = set("begin break catch class clean continue data define do dynamicparam else elseif end enum exit filter "
                  "finally for foreach from function hidden if in inlinescript parallel param process return sequence "
                  "static switch throw trap try until using var while workflow".split())
PS_DOUBLE = '"\u201c\u201d\u201e'
#: characters a bare (unquoted) argument may hold: anything else means something to PowerShell
PS_BARE_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./\\:-")
_PS_ENV = re.compile(r"\$\{env:((?:`.|[^}`])+)\}|\$env:([A-Za-z_][A-Za-z0-9_]*)")


def _ps_tokens(line: str, env: dict) -> list:
    """Tokens: ("word", text, quoted), ("op", ";" / "&" / "="), with strings resolved."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t":
            i += 1
        elif c == ";":
            out.append(("op", ";"))
            i += 1
        elif c == "&" and (i + 1 >= n or line[i + 1] in " \t"):
            out.append(("op", "&"))
            i += 1
        elif c == "=" and (i + 1 >= n or line[i + 1] in " \t"):
            out.append(("op", "="))
            i += 1
        elif c in PS_SINGLE:
            text, i = [], i + 1
            while True:
                if i >= n:
                    raise Unparsed(f"unterminated single quote in {line!r}")
                if line[i] in PS_SINGLE:
                    if i + 1 < n and line[i + 1] in PS_SINGLE:
                        text.append(line[i])
                        i += 2
                        continue
                    i += 1
                    break
                text.append(line[i])
                i += 1
            _word_end(line, i)
            out.append(("word", "".join(text), True))
        elif c in PS_DOUBLE:
            text, i = [], i + 1
            while True:
                if i >= n:
                    raise Unparsed(f"unterminated double quote in {line!r}")
                ch = line[i]
                if ch == "`":
                    text.append(line[i + 1])
                    i += 2
                elif ch == "$":
                    m = _PS_ENV.match(line, i)
                    if not m:
                        raise Unparsed(f"a $ that PowerShell would expand in {line!r}")
                    name = re.sub(r"`(.)", r"\1", m.group(1)) if m.group(1) else m.group(2)
                    text.append(env.get(name, ""))
                    i = m.end()
                elif ch in PS_DOUBLE:
                    if i + 1 < n and line[i + 1] in PS_DOUBLE:
                        text.append(ch)
                        i += 2
                        continue
                    i += 1
                    break
                else:
                    text.append(ch)
                    i += 1
            _word_end(line, i)
            out.append(("word", "".join(text), True))
        elif c == "$":
            m = re.compile(r"\$env:([A-Za-z_][A-Za-z0-9_]*)|\$\{env:((?:`.|[^}`])+)\}").match(line, i)
            if not m:
                raise Unparsed(f"a bare $ in {line!r}")
            name = m.group(1) or re.sub(r"`(.)", r"\1", m.group(2))
            out.append(("var", name))
            i = m.end()
        else:
            j = i
            while j < n and line[j] not in " \t;":
                j += 1
            word = line[i:j]
            bad = set(word) - PS_BARE_OK
            if bad:
                raise Unparsed(f"bare word {word!r} holds {sorted(bad)!r}, which PowerShell reads as syntax")
            if word.startswith("-") and ("." in word or ":" in word):
                raise Unparsed(f"bare {word!r}: PowerShell splits a parameter-like word at '.' or ':'")
            if word[:1].isdigit() and not re.fullmatch(r"0|[1-9][0-9]{0,8}", word):
                raise Unparsed(f"bare {word!r}: PowerShell reads a word starting with a digit as a number "
                               "(30d is decimal 30, 1kb is 1024)")
            if word[:1] in ".-" and not re.fullmatch(r"--?[A-Za-z][A-Za-z0-9-]*", word):
                raise Unparsed(f"bare {word!r}: a word starting with {word[0]!r} means something to PowerShell")
            out.append(("word", word, False))
            i = j
    return out


def _word_end(line: str, i: int) -> None:
    if i < len(line) and line[i] not in " \t;":
        raise Unparsed(f"a quoted string runs into {line[i:i + 10]!r}: PowerShell would join or split it")


def ps_steps(line: str, env: dict) -> list[tuple]:
    tokens = _ps_tokens(line, env)
    steps, cur = [], []
    for t in tokens + [("op", ";")]:
        if t == ("op", ";"):
            if not cur:
                raise Unparsed(f"empty statement in {line!r}")
            steps.append(_ps_statement(cur, line))
            cur = []
        else:
            cur.append(t)
    return steps


def _ps_statement(tokens: list, line: str) -> tuple:
    if tokens[0][0] == "var":
        if len(tokens) != 3 or tokens[1] != ("op", "=") or tokens[2][0] != "word" or not tokens[2][2]:
            raise Unparsed(f"$env: assignment of one quoted string expected in {line!r}")
        return ("set", tokens[0][1], tokens[2][1])
    if tokens[0][:2] == ("word", "Remove-Item"):
        rest = tokens[1:]
        if len(rest) == 1 and not rest[0][2] and rest[0][1].startswith("Env:"):
            return ("unset", rest[0][1][4:])
        if len(rest) == 2 and rest[0][1] == "-LiteralPath" and rest[1][2] and rest[1][1].startswith("Env:"):
            return ("unset", rest[1][1][4:])
        raise Unparsed(f"Remove-Item Env:NAME expected in {line!r}")
    call = tokens[0] == ("op", "&")
    words = tokens[1:] if call else tokens
    if not words or any(w[0] != "word" for w in words):
        raise Unparsed(f"a command of words expected in {line!r}")
    if words[0][2] and not call:
        raise Unparsed(f"a quoted program without the call operator & is a string, not a command: {line!r}")
    if not words[0][2] and words[0][1].lower() in PS_KEYWORDS:
        raise Unparsed(f"{words[0][1]!r} where a command stands is a PowerShell keyword: {line!r}")
    return ("run", [w[1] for w in words], {})


# --- cmd --------------------------------------------------------------------------

def _percent(line: str, env: dict) -> str:
    """cmd's phase 1 on a command line: %NAME% replaced where NAME is defined, else kept."""
    out, i = [], 0
    upper = {k.upper(): v for k, v in env.items()}
    while i < len(line):
        if line[i] == "%":
            j = line.find("%", i + 1)
            if j < 0:
                out.append(line[i:])
                break
            name = line[i + 1:j]
            if name.upper() in upper and name:
                out.append(upper[name.upper()])
                i = j + 1
            else:
                out.append(line[i:j])
                i = j
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def _cmd_statements(line: str) -> list[str]:
    """Split at && outside quotes and not escaped; an unquoted, unescaped < > | or lone & raises."""
    parts, cur, quoted, i = [], [], False, 0
    while i < len(line):
        c = line[i]
        if c == "^" and not quoted:
            cur.append(line[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "&":
            if line[i:i + 2] != "&&":
                raise Unparsed(f"an unquoted & in {line!r}: cmd would start another command there")
            parts.append(_trim("".join(cur)))
            cur, i = [], i + 2
            continue
        elif not quoted and c in "<>|":
            raise Unparsed(f"an unquoted {c!r} in {line!r}: cmd would redirect or pipe there")
        cur.append(c)
        i += 1
    parts.append(_trim("".join(cur)))
    return parts


def _trim(statement: str) -> str:
    """A statement between && separators without the one space on each side of them (an
    escaped trailing space, ^ , belongs to the statement)."""
    statement = statement[1:] if statement.startswith(" ") else statement
    if statement.endswith(" ") and not statement.endswith("^ "):
        statement = statement[:-1]
    return statement


def _uncaret(text: str) -> str:
    """Phase 2 outside quotes: ^X is X; quotes stay (the program's parser reads them)."""
    out, quoted, i = [], False, 0
    while i < len(text):
        c = text[i]
        if c == '"':
            quoted = not quoted
        if c == "^" and not quoted and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def cmd_steps(line: str, env: dict) -> list[tuple]:
    steps = []
    for raw in _cmd_statements(line):
        stmt = raw  # phase 1 runs on the whole line first; here per statement, as the env is fixed
        stmt = _percent(stmt, env)
        if stmt.lower().startswith("set "):
            body = stmt[4:]
            if body.startswith('"'):
                if not body.endswith('"'):
                    raise Unparsed(f"set \"NAME=value\" expected in {raw!r}")
                inner = body[1:-1]
            else:
                inner = _uncaret(body)
            name, eq, value = inner.partition("=")
            if not eq:
                raise Unparsed(f"set NAME=value expected in {raw!r}")
            steps.append(("unset", name) if value == "" else ("set", name, value))
        else:
            steps.append(("run", mslex.split(stmt, like_cmd=True), {}))
    return steps
