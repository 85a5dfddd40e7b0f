"""Keep secrets out of every output: one function that every renderer's text passes through."""

from __future__ import annotations

import re
from typing import Mapping

MASK = "***"
SECRET_NAME = re.compile(r"(TOKEN|API_KEY|APIKEY|SECRET|PASSWORD|PASSWD|ACCESS_KEY|PRIVATE_KEY|AUTH)", re.I)
#: user:password@ in any URL, and well-known token shapes
URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/@\s:]+(?::[^/@\s]*)?)@")
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
        for m in URL_USERINFO.finditer(value):
            info = m.group("info")
            if ":" in info:
                out.append(info.split(":", 1)[1])
    return sorted(set(v for v in out if len(v) >= 4), key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    for value in secret_values(environ or {}):
        text = text.replace(value, MASK)
    text = URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return TOKEN_SHAPES.sub(MASK, text)
