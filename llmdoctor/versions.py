"""Version strings from the wild (metadata, nvcc, drivers) parsed without raising."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version


def parse_version(text: str | None) -> Version | None:
    """``Version(text)``, or None for a missing or garbage string."""
    try:
        return Version(text or "")
    except InvalidVersion:
        return None
