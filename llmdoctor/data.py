"""Data tables shipped in the package: versions and limits live in JSON, each row with its source."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def table(package: str, name: str) -> dict:
    """Parse ``package/data/name.json`` once."""
    with resources.files(package).joinpath("data", f"{name}.json").open("r", encoding="utf-8") as fh:
        return json.load(fh)


def rows(package: str, name: str) -> list[dict]:
    return list(table(package, name)["rows"])


def row(package: str, name: str, key: str, value: str) -> dict:
    for item in rows(package, name):
        if item.get(key) == value:
            return item
    raise KeyError(f"{name}.json has no row with {key}={value!r}")
