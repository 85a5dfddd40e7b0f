"""Text out in any code page, JSON in and out as UTF-8 whatever the locale.

A Windows console shows UTF-16 (Python writes it with WriteConsoleW), but output that is
redirected or piped is encoded in the console's code page: cp437 or cp850 for most of
Europe and America, cp932 in Japan, cp949 in Korea, cp1252 where PYTHONIOENCODING or an IDE
says so. Printing "·", "—", "°C", "…" or "✓" there raised UnicodeEncodeError (exit 3).

- Human output (:func:`adapt_streams`): stdout and stderr keep their encoding, and a
  character it cannot show is written as the nearest thing it can (``—`` as ``-``, ``…`` as
  ``...``, ``✓`` as ``+``, box drawing as ``-``, ``+``, an accented letter without its
  accent); what has no such fallback becomes ``?``, as Windows itself does, and so does a
  character whose nearest thing a shell would act on (``“`` ``’`` ``＆`` ``≥`` ``→``, a
  no-break space): a fix line keeps the quoting it was written with; a byte of an
  undecodable file name (a lone surrogate) is shown as ``\\xNN``.
- JSON (:func:`write_json`) is written to the byte stream as UTF-8, whatever the locale, so
  ``check --json > r.json`` then ``--replay r.json`` works under every code page.
- A report read back (:func:`decode_document`) is UTF-8 with or without a byte-order mark,
  or UTF-16 / UTF-32 with one: what Windows PowerShell 5.1's ``>`` writes (UTF-16 LE).
"""

from __future__ import annotations

import codecs
import sys
import unicodedata

HANDLER = "llmdoctor-degrade"

#: the nearest ASCII for characters llmdoctor and rich print
FALLBACK = {
    "…": "...", "—": "-", "–": "-", "‒": "-", "―": "-", "−": "-", "·": "-", "•": "*", "◦": "*",
    "✓": "+", "✔": "+", "✗": "x", "✘": "x", "°": "deg", "µ": "u", "×": "x", "÷": "/", "±": "+/-",
    "→": "->", "←": "<-", "↔": "<->", "⇒": "=>", "≥": ">=", "≤": "<=", "≠": "!=", "≈": "~",
    "‘": "'", "’": "'", "‚": ",", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"',
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u200b": "",
    "█": "#", "▉": "#", "▊": "#", "▋": "#", "▌": "#", "▍": "#", "▎": "#", "▏": "#",
    "░": ".", "▒": ":", "▓": "#", "╸": "-", "╺": "-", "━": "-", "─": "-", "═": "=",
}


#: what a fallback may never hold: characters a shell acts on (quotes, redirections, expansions,
#: separators), and spaces, which split a word cmd leaves unquoted. A fix line's word that held
#: “ & calc & ” or ＆ is quoted (or not) for what it holds; a fallback of " or & would change how
#: the shell reads it, so such a character is shown as "?", as Windows itself does
SHELL_ACTIVE = frozenset(" \t'\"`$\\!%^&|<>();")


def _one(ch: str, encoding: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept from an undecodable name
        return f"\\x{code - 0xDC00:02x}"
    if ch in FALLBACK:
        return FALLBACK[ch] if not SHELL_ACTIVE.intersection(FALLBACK[ch]) else "?"
    if 0x2500 <= code <= 0x257F:  # box drawing: lines and corners
        return "+"
    if 0x2800 <= code <= 0x28FF:  # braille spinners
        return "*"
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and base != ch and not SHELL_ACTIVE.intersection(base):
        try:
            base.encode(encoding)
            return base
        except (UnicodeError, LookupError):
            pass
    return "?"


def _degrade(exc: UnicodeError):
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start:exc.end]
    return "".join(_one(ch, exc.encoding) for ch in text), exc.end


def register() -> None:
    try:
        codecs.lookup_error(HANDLER)
    except LookupError:
        codecs.register_error(HANDLER, _degrade)


def degrade(text: str, encoding: str) -> str:
    """``text`` as it appears in ``encoding`` with the fallbacks (what a stream adapted by
    :func:`adapt_streams` writes)."""
    register()
    return text.encode(encoding, HANDLER).decode(encoding)


def is_utf(encoding: str | None) -> bool:
    try:
        return codecs.lookup(encoding or "ascii").name.startswith("utf")
    except LookupError:
        return False


def adapt_streams(*streams) -> None:
    """Make ``streams`` (stdout and stderr by default) write what their encoding cannot show
    as its nearest fallback instead of raising; their encoding is kept."""
    register()
    for stream in streams or (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None or getattr(stream, "errors", None) == HANDLER:
            continue
        try:
            reconfigure(errors=HANDLER)
        except (ValueError, OSError, TypeError):
            pass


def write_json(text: str, stream=None, newline: bool = True) -> None:
    """Write JSON text as UTF-8 bytes whatever the stream's encoding (a lone surrogate, from a
    file name that is not UTF-8, becomes its ``\\udcXX`` JSON escape: the document stays valid)."""
    stream = stream or sys.stdout
    data = text + ("\n" if newline else "")
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a stream without bytes underneath (a test's StringIO)
        stream.write(data)
        stream.flush()
        return
    stream.flush()
    buffer.write(data.encode("utf-8", "backslashreplace"))
    buffer.flush()


BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_document(raw: bytes) -> str:
    """A saved document's text: UTF-8, or what its byte-order mark says (UTF-16 from PowerShell's
    ``>``); raises UnicodeDecodeError for anything else (a legacy code page is never guessed)."""
    for bom, codec in BOMS:  # UTF-32 LE before UTF-16 LE: its mark begins with UTF-16's
        if raw.startswith(bom):
            return raw.decode(codec)
    return raw.decode("utf-8")
