"""Keep secrets out of every output: one function that every renderer's text passes through.

Linear in the text whatever it holds (a target that prints one 300,000-character line, a
replayed report with a megabyte string): each pattern starts only at a fixed marker
(``://``, ``?`` or ``&``, ``hf_``...) and no two attempts scan the same span twice."""

from __future__ import annotations

import re
from typing import Mapping

MASK = "***"
SECRET_NAME = re.compile(r"(TOKEN|API_KEY|APIKEY|SECRET|PASSWORD|PASSWD|ACCESS_KEY|PRIVATE_KEY|AUTH)", re.I)
#: user:password@ in any URL (found from each "://", see _userinfo), and well-known token shapes
_SCHEME_END = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*\Z")
_USERINFO = re.compile(r"[^/@\s:]+(?::[^/@\s]*)?@")
TOKEN_SHAPES = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,})\b")
QUERY_SECRET = re.compile(r"([?&](?:token|access_token|api_key|apikey|key|sig|signature)=)[^&\s\"']+", re.I)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of variables whose names say they are secret, and passwords in proxy URLs."""
    out = []
    for name, value in environ.items():
        if not value or len(value) < 4:
            continue
        if SECRET_NAME.search(name):
            out.append(value)
        for m in _userinfo(value):
            info = m.group()[:-1]
            if ":" in info:
                out.append(info.split(":", 1)[1])
    return sorted(set(v for v in out if len(v) >= 4), key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    for value in secret_values(environ or {}):
        text = text.replace(value, MASK)
    text = mask_userinfo(text)
    text = QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return TOKEN_SHAPES.sub(MASK, text)


def _userinfo(text: str) -> list[re.Match]:
    """The ``user[:password]@`` right after each ``scheme://`` in ``text``. A scan stops at the
    next "/" and every "://" holds one, so the whole search is linear."""
    found = []
    i = text.find("://")
    while i != -1:
        if _SCHEME_END.search(text, max(0, i - 32), i):
            m = _USERINFO.match(text, i + 3)
            if m:
                found.append(m)
        i = text.find("://", i + 3)
    return found


def mask_userinfo(text: str) -> str:
    """``scheme://user:password@host`` as ``scheme://***@host``."""
    spans = _userinfo(text)
    if not spans:
        return text
    parts, last = [], 0
    for m in spans:
        parts += [text[last:m.start()], MASK, "@"]
        last = m.end()
    parts.append(text[last:])
    return "".join(parts)
