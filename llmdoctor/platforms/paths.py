"""Paths as each platform reads them: the home directory, one path under another, the
filesystem a path lives on. Pure functions; the path flavour (``ntpath`` or ``posixpath``)
is an argument, so Windows paths are handled the same way on any machine.

One helper per idea: every "is this path under that folder" and "which mount holds this
path" in llmdoctor goes through :func:`is_under` and :func:`longest_prefix`; every home
directory lookup through :func:`home`.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
from typing import Callable, Iterable, Mapping, TypeVar

T = TypeVar("T")

_WINDOWS_NAMES = ("nt", "windows", "win32", "cygwin")
_DRIVE_OR_UNC = re.compile(r"^(?:[A-Za-z]:(?:[\\/]|$)|\\\\[^\\]+\\)")


def is_windows(os_name: str | None) -> bool:
    """``os.name``, ``platform.system()`` or ``sys.platform`` naming Windows."""
    return (os_name or "").lower() in _WINDOWS_NAMES


def flavor(os_name: str | None = None):
    """``ntpath`` for Windows (``os.name`` "nt", ``platform.system()`` "Windows", ``sys.platform``
    "win32"), else ``posixpath``; the running OS when ``os_name`` is None."""
    return ntpath if is_windows(os.name if os_name is None else os_name) else posixpath


def flavor_of(path: str | None):
    """The flavour a recorded path was written in: a drive (``D:\\``) or UNC share is Windows."""
    return ntpath if path and _DRIVE_OR_UNC.match(path) else posixpath


def _norm(path: str, pathmod) -> str:
    return pathmod.normcase(pathmod.normpath(path))


def same_path(a: str, b: str, pathmod=None) -> bool:
    """Whether two paths name the same file as the platform compares names (by name only)."""
    pathmod = pathmod or flavor_of(b)
    return bool(a) and bool(b) and _norm(a, pathmod) == _norm(b, pathmod)


def is_under(path: str, folder: str, pathmod=None) -> bool:
    """Whether ``path`` is ``folder`` or inside it, compared as the platform compares paths
    (case-insensitively and with either slash on Windows); by name, no link is followed."""
    pathmod = pathmod or flavor_of(folder)
    p, f = _norm(path, pathmod), _norm(folder, pathmod)
    if p == f:
        return True
    return p.startswith(f if f.endswith(pathmod.sep) else f + pathmod.sep)


def longest_prefix(path: str, items: Iterable[T], key: Callable[[T], str], pathmod=None) -> T | None:
    """The item whose folder (``key(item)``) holds ``path`` most closely: the mount a path
    lives on is the longest mount point it is under (of two equal ones, the later: a mount
    over the same point hides the earlier one, and mount tables list it last)."""
    best, best_len = None, -1
    for item in items:
        folder = key(item)
        if not folder:
            continue
        mod = pathmod or flavor_of(folder)
        if is_under(path, folder, mod):
            n = len(_norm(folder, mod))
            if n >= best_len:
                best, best_len = item, n
    return best


def home(environ: Mapping[str, str], os_name: str | None = None) -> str:
    """The home directory as ``os.path.expanduser("~")`` finds it for ``environ``, which is
    where huggingface_hub (``~/.cache/huggingface``) and pip (``~/.config/pip``,
    ``%USERPROFILE%\\pip``) look: USERPROFILE, else HOMEDRIVE + HOMEPATH on Windows (HOME is
    ignored there since Python 3.8); HOME, else the password database, elsewhere."""
    windows = is_windows(os.name if os_name is None else os_name)
    running = is_windows(os.name) == windows
    if windows:
        if environ.get("USERPROFILE"):
            return environ["USERPROFILE"]
        if environ.get("HOMEPATH"):
            return ntpath.join(environ.get("HOMEDRIVE") or "", environ["HOMEPATH"])
    elif environ.get("HOME"):
        return environ["HOME"]
    if running:
        if not windows:
            try:
                import pwd

                return pwd.getpwuid(os.getuid()).pw_dir
            except (ImportError, KeyError, OSError):
                pass
        found = os.path.expanduser("~")
        if found != "~":
            return found
    return "~"


def expand_user(path: str, environ: Mapping[str, str], os_name: str | None = None) -> str:
    """``path`` with a leading ``~`` replaced by :func:`home` of ``environ`` (``~user`` is
    left to the running OS's ``expanduser``)."""
    if not path or not path.startswith("~"):
        return path
    pathmod = flavor(os_name)
    seps = (pathmod.sep, pathmod.altsep) if pathmod.altsep else (pathmod.sep,)
    if len(path) == 1 or path[1] in seps:
        return home(environ, os_name) + path[1:]
    return os.path.expanduser(path) if pathmod is os.path else path
