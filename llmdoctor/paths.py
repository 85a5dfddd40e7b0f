"""Where things live, computed from an environment mapping (so tests can pass their own)."""

from __future__ import annotations

import os
from typing import Mapping


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def xdg_cache(environ: Mapping[str, str]) -> str:
    """XDG_CACHE_HOME, else ~/.cache."""
    return os.path.expanduser(environ.get("XDG_CACHE_HOME") or os.path.join(_home(environ), ".cache"))


def cache_dir(environ: Mapping[str, str]) -> str:
    """llmdoctor's own cache: the `cache ls` index, bench's random weights (LLMDOCTOR_CACHE_DIR overrides)."""
    if environ.get("LLMDOCTOR_CACHE_DIR"):
        return os.path.expanduser(environ["LLMDOCTOR_CACHE_DIR"])
    return os.path.join(xdg_cache(environ), "llmdoctor")


def hf_home(environ: Mapping[str, str]) -> str:
    """HF_HOME as huggingface_hub.constants computes it, without importing the library."""
    if environ.get("HF_HOME"):
        return os.path.expanduser(environ["HF_HOME"])
    return os.path.join(xdg_cache(environ), "huggingface")


def hf_hub_cache(environ: Mapping[str, str]) -> str:
    """HF_HUB_CACHE, then the legacy HUGGINGFACE_HUB_CACHE, then $HF_HOME/hub."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(name):
            return os.path.expanduser(environ[name])
    return os.path.join(hf_home(environ), "hub")


def config_dir(environ: Mapping[str, str]) -> str:
    """llmdoctor's own config / journal directory (LLMDOCTOR_CONFIG_DIR overrides)."""
    if environ.get("LLMDOCTOR_CONFIG_DIR"):
        return os.path.expanduser(environ["LLMDOCTOR_CONFIG_DIR"])
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(_home(environ), ".config")
    return os.path.join(os.path.expanduser(xdg), "llmdoctor")
