"""Where things live, computed from an environment mapping (so tests can pass their own).

The home directory is the one ``os.path.expanduser`` finds, as in huggingface_hub and pip:
USERPROFILE on Windows (HOME, which Git Bash sets, is ignored there), HOME elsewhere
(:func:`llmdoctor.platforms.paths.home`). Every lookup of it in llmdoctor is :func:`home`.
"""

from __future__ import annotations

import errno
import os
import stat
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


#: open without waiting (a named pipe's open waits for a writer) and without taking a terminal
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def read_file(path: str, limit: int, cut: bool = False, follow: bool = True) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A file from outside (a config a variable names, a model folder's config.json, a ref in a
    cache others can write) may be a named pipe, whose open waits forever for a writer, or a
    device such as /dev/zero, whose read never ends: it is refused before it is opened
    (OSError EINVAL, "not a regular file"), checked again once opened without waiting, and read
    to at most ``limit`` bytes: a larger file is OSError EFBIG, or with ``cut`` its first
    ``limit`` bytes. ``follow=False`` refuses a symbolic link as well."""
    st = os.stat(path) if follow else os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, _not_regular(st.st_mode), path)
    fd = os.open(path, _READ_FLAGS | (0 if follow else getattr(os, "O_NOFOLLOW", 0)))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for something else since the check
            raise OSError(errno.EINVAL, _not_regular(st.st_mode), path)
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        if not cut:
            raise OSError(errno.EFBIG, f"larger than {_size(limit)}: not read", path)
        data = data[:limit]
    return data


def _not_regular(mode: int) -> str:
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file")
    return f"not a regular file ({kind}): not read"


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n >> 10} KiB" if n >= 1024 else f"{n} bytes"


def read_text_file(path: str, limit: int, cut: bool = False) -> str:
    """:func:`read_file` as UTF-8 text (undecodable bytes replaced)."""
    return read_file(path, limit, cut).decode("utf-8", errors="replace")
