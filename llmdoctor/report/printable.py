"""Text from outside (a replayed report, a target's stderr, a cache folder's name, a file's
lines) made safe to print: control characters shown as escapes, never sent raw.

A terminal obeys what it is sent: ``ESC ] 52`` writes the clipboard, ``ESC ] 8`` makes a
link, ``CSI`` sequences move the cursor and rewrite lines, a bare carriage return hides what
came before it, and the bidirectional overrides of Unicode show text in another order than
it is read (CVE-2021-42574). Every renderer passes such text through :func:`printable`
(terminal, Markdown, table cells) or :func:`json_text` (JSON, whose escapes keep it valid).
One ``str.translate`` over a fixed table: linear in the text.
"""

from __future__ import annotations

import re

#: Unicode's explicit bidirectional formatting characters (Trojan Source)
BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
#: line and paragraph separators some terminals and editors honour as new lines
SEPARATORS = (0x2028, 0x2029)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _table(multiline: bool) -> dict[int, str]:
    codes = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *BIDI, *SEPARATORS]
    table = {c: _escape(c) for c in codes}
    table.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
    if multiline:
        del table[ord("\n")], table[ord("\t")]
    return table


_ONE_LINE = _table(multiline=False)
_LINES = _table(multiline=True)


def printable(text: str | None, multiline: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``);
    newlines and tabs survive only when ``multiline``. Carriage returns never do."""
    if not text:
        return text or ""
    if not isinstance(text, str):
        text = str(text)
    return text.translate(_LINES if multiline else _ONE_LINE)


_JSON_UNSAFE = re.compile("[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069`]")


def json_text(text: str) -> str:
    """JSON text (from ``json.dumps``) with the characters it leaves raw, C1 controls and
    bidirectional overrides (and backticks, which end a Markdown code fence), written as
    ``\\uXXXX`` escapes: the same document, safe to print."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, the cut marked with an ellipsis (a table cell)."""
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, saying how many were left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit} more characters)"
