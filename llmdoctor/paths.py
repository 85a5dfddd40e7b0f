"""Where things live, computed from an environment mapping (so tests can pass their own).

The home directory is the one ``os.path.expanduser`` finds, as in huggingface_hub and pip:
USERPROFILE on Windows (HOME, which Git Bash sets, is ignored there), HOME elsewhere
(:func:`llmdoctor.platforms.paths.home`). Every lookup of it in llmdoctor is :func:`home`.
"""

from __future__ import annotations

import os
from typing import Mapping

from llmdoctor.platforms import paths as _platform


def home(environ: Mapping[str, str]) -> str:
    """The user's home directory for ``environ`` on this OS."""
    return _platform.home(environ)


def expand(path: str, environ: Mapping[str, str]) -> str:
    """``path`` with a leading ``~`` expanded to :func:`home` of ``environ``."""
    return _platform.expand_user(path, environ)


def xdg_cache(environ: Mapping[str, str]) -> str:
    """XDG_CACHE_HOME, else ~/.cache (huggingface_hub uses the same on Windows and macOS)."""
    return expand(environ.get("XDG_CACHE_HOME") or os.path.join(home(environ), ".cache"), environ)


def cache_dir(environ: Mapping[str, str]) -> str:
    """llmdoctor's own cache: the `cache ls` index, bench's random weights (LLMDOCTOR_CACHE_DIR overrides)."""
    if environ.get("LLMDOCTOR_CACHE_DIR"):
        return expand(environ["LLMDOCTOR_CACHE_DIR"], environ)
    return os.path.join(xdg_cache(environ), "llmdoctor")


def hf_home(environ: Mapping[str, str]) -> str:
    """HF_HOME as huggingface_hub.constants computes it, without importing the library."""
    if environ.get("HF_HOME"):
        return expand(environ["HF_HOME"], environ)
    return os.path.join(xdg_cache(environ), "huggingface")


def hf_hub_cache(environ: Mapping[str, str]) -> str:
    """HF_HUB_CACHE, then the legacy HUGGINGFACE_HUB_CACHE, then $HF_HOME/hub."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(name):
            return expand(environ[name], environ)
    return os.path.join(hf_home(environ), "hub")


def config_dir(environ: Mapping[str, str]) -> str:
    """llmdoctor's own config / journal directory (LLMDOCTOR_CONFIG_DIR overrides)."""
    if environ.get("LLMDOCTOR_CONFIG_DIR"):
        return expand(environ["LLMDOCTOR_CONFIG_DIR"], environ)
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(home(environ), ".config")
    return os.path.join(expand(xdg, environ), "llmdoctor")
