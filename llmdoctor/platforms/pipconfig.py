"""pip's configuration files on Linux, macOS and Windows, in the order pip reads them (a later
file's value wins), as ``pip/_internal/configuration.py`` and ``pip/_internal/utils/appdirs.py``
compute them (https://pip.pypa.io/en/stable/topics/configuration/):

1. global: ``/etc/xdg/pip/pip.conf`` (each of XDG_CONFIG_DIRS) and ``/etc/pip.conf``;
   ``/Library/Application Support/pip/pip.conf`` on macOS; ``%ProgramData%\\pip\\pip.ini``;
2. user: the legacy ``~/.pip/pip.conf`` (``%USERPROFILE%\\pip\\pip.ini``), then
   ``$XDG_CONFIG_HOME/pip/pip.conf``; on macOS ``~/Library/Application Support/pip/pip.conf``
   where that folder exists, else ``~/.config/pip/pip.conf``; ``%APPDATA%\\pip\\pip.ini``.
   Skipped when PIP_CONFIG_FILE names a file that exists;
3. site: ``<environment prefix>/pip.conf`` (``pip.ini`` on Windows);
4. PIP_CONFIG_FILE. Set to the null device, no file is read at all.

Pure: the platform (``sys.platform``), the environment and the checks for existence are
arguments; Windows paths are built with ``ntpath``.
"""

from __future__ import annotations

import ntpath
import posixpath
from typing import Callable, Mapping

from llmdoctor.platforms.paths import home


def getenv(environ: Mapping[str, str], name: str, windows: bool) -> str | None:
    """A variable as the process sees it (names are case-insensitive on Windows)."""
    if name in environ:
        return environ[name]
    if windows:
        upper = name.upper()
        for key, value in environ.items():
            if key.upper() == upper:
                return value
    return None


def pip_config_files(platform: str, environ: Mapping[str, str], prefix: str | None,
                     exists: Callable[[str], bool] = lambda p: False,
                     isdir: Callable[[str], bool] = lambda p: False) -> list[tuple[str, str]]:
    """``[(kind, path)]`` in pip's order, lowest precedence first; ``kind`` is "global",
    "user", "site" or "env". ``platform`` is ``sys.platform`` ("linux", "darwin", "win32")."""
    windows = platform.startswith("win")
    mod = ntpath if windows else posixpath
    name = "pip.ini" if windows else "pip.conf"
    env_file = getenv(environ, "PIP_CONFIG_FILE", windows)
    if env_file is not None and env_file in ("/dev/null", "nul", "NUL", "\\\\.\\nul"):
        return []
    user_home = home(environ, "nt" if windows else "posix")
    out: list[tuple[str, str]] = []
    if platform == "darwin":
        out.append(("global", "/Library/Application Support/pip/pip.conf"))
    elif windows:
        data = getenv(environ, "ProgramData", True) or getenv(environ, "ALLUSERSPROFILE", True) or "C:\\ProgramData"
        out.append(("global", ntpath.join(data, "pip", name)))
    else:
        dirs = [d for d in (getenv(environ, "XDG_CONFIG_DIRS", False) or "/etc/xdg").split(":") if d]
        out += [("global", posixpath.join(d, "pip", name)) for d in dirs]
        out.append(("global", posixpath.join("/etc", name)))
    if not (env_file and exists(env_file)):
        out.append(("user", mod.join(user_home, "pip" if windows else ".pip", name)))
        if windows:
            appdata = getenv(environ, "APPDATA", True) or ntpath.join(user_home, "AppData", "Roaming")
            out.append(("user", ntpath.join(appdata, "pip", name)))
        elif platform == "darwin":
            support = posixpath.join(user_home, "Library", "Application Support", "pip")
            folder = support if isdir(support) else posixpath.join(user_home, ".config", "pip")
            out.append(("user", posixpath.join(folder, name)))
        else:
            xdg = getenv(environ, "XDG_CONFIG_HOME", False) or posixpath.join(user_home, ".config")
            out.append(("user", posixpath.join(xdg, "pip", name)))
    if prefix:
        out.append(("site", mod.join(prefix, name)))
    if env_file:
        out.append(("env", env_file))
    return out
