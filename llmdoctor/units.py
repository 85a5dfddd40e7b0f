"""Human units for sizes and durations."""

from __future__ import annotations

GiB = 1024**3


def gib(n: int | float | None) -> str:
    if n is None:
        return "unknown"
    value = n / GiB
    return f"{value:.0f} GiB" if value >= 100 else f"{value:.1f} GiB"


def size(n: int | float | None) -> str:
    if n is None:
        return "unknown"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


SIZE_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1024, "M": 1000**2, "MB": 1000**2, "MIB": 1024**2,
              "G": 1000**3, "GB": 1000**3, "GIB": 1024**3, "T": 1000**4, "TB": 1000**4, "TIB": 1024**4}
DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400,
                  "y": 365 * 86400}


def parse_size(text: str) -> int:
    """'200G', '1.5GB', '500MiB', '1024' -> bytes (decimal units as hf uses them; KiB/MiB/GiB binary)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text or "")
    if not m or m.group(2).upper() not in SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size: use a number with K, M, G or T (e.g. 200G, 1.5GB, 500MiB)")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2).upper()])


def parse_duration(text: str) -> float:
    """'30d', '12h', '2w', '6mo', '1y' -> seconds."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", text or "")
    if not m or m.group(2).lower() not in DURATION_UNITS:
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h, d, w, mo or y (e.g. 30d)")
    return float(m.group(1)) * DURATION_UNITS[m.group(2).lower()]


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, scale in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
                        ("hour", 3600), ("minute", 60)):
        if seconds >= scale:
            n = int(seconds // scale)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"
