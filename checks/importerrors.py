"""What an import failure's text says about its cause (data: import_errors.json)."""

from __future__ import annotations

import re

from llmdoctor.data import rows


def classify(text: str | None) -> dict | None:
    """The first import_errors.json row whose pattern matches ``text``, or None."""
    for item in rows("llmdoctor.checks", "import_errors"):
        if re.search(item["pattern"], text or ""):
            return item
    return None
