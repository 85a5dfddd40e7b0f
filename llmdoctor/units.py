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
