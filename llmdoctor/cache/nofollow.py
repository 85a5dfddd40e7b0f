"""Deleting inside a folder without ever following a symbolic link below it.

A cache that others can write (a team cache, a world-writable ``/data/hf``) may hold a
link where a folder should be: ``snapshots/`` pointing at someone's project, ``blobs/`` at
their database. A path string that goes through such a link leaves the folder, however its
``realpath`` is compared afterwards. So every operation here starts from the folder itself
(the one the user named, which may be a link of their own) and descends one name at a
time, opening each sub-folder with ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's
descriptor: a link, a file or anything else in a folder's place stops the operation with
:class:`NotFollowed`. Entries are removed by name relative to their folder's descriptor, so
unlinking a link removes the link, never what it points to. Where the platform has no
descriptor-relative calls (Windows), each component is checked with ``lstat`` instead
(links and junctions refused), which is as good as it gets there.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from contextlib import contextmanager
from typing import Iterator, Sequence

_NOFOLLOW_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
#: descriptor-relative open, unlink, rmdir, rename and scandir: every step of a walk resolves one name
BY_FD = (os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd and os.rmdir in os.supports_dir_fd
         and os.rename in os.supports_dir_fd and os.scandir in os.supports_fd and hasattr(os, "O_NOFOLLOW"))
_NOT_A_FOLDER = {errno.ELOOP, errno.ENOTDIR, getattr(errno, "EMLINK", errno.ELOOP)}


class NotFollowed(OSError):
    """A component that should be a folder is a symbolic link (or not a folder): not followed."""


def _why(path: str) -> str:
    try:
        st = os.lstat(path)
    except OSError:
        return "not a folder"
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    return "not a folder"


def split(base: str, path: str) -> list[str] | None:
    """The components of ``path`` below ``base``, compared as written (never resolved); None
    when ``path`` is not strictly below ``base`` or names a parent (``..``)."""
    base = os.path.abspath(base)
    path = os.path.abspath(path)
    try:
        rel = os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return None
    parts = rel.split(os.sep)
    if rel in (os.curdir, "") or any(p in ("", os.curdir, os.pardir) for p in parts):
        return None
    return parts


class Folder:
    """A folder, opened once, and the operations below it that follow no link."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    # --- opening -----------------------------------------------------------------------------
    @contextmanager
    def opened(self, parts: Sequence[str], create: bool = False) -> Iterator[int | str]:
        """The descriptor of the sub-folder ``parts`` (or, without descriptors, its checked
        path). ``create`` makes missing folders (mode 0700). Raises NotFollowed for a link."""
        if not BY_FD:
            yield self._checked_path(parts, create)
            return
        fds: list[int] = []
        try:
            fds.append(os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)))
            here = self.path
            for name in parts:
                here = os.path.join(here, name)
                try:
                    fds.append(os.open(name, _NOFOLLOW_DIR, dir_fd=fds[-1]))
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, 0o700, dir_fd=fds[-1])
                    except FileExistsError:
                        pass
                    fds.append(os.open(name, _NOFOLLOW_DIR, dir_fd=fds[-1]))
                except OSError as exc:
                    if exc.errno in _NOT_A_FOLDER:
                        raise NotFollowed(exc.errno, f"{here} is {_why(here)}: not followed") from None
                    raise
            yield fds[-1]
        finally:
            for fd in fds:
                os.close(fd)

    def _checked_path(self, parts: Sequence[str], create: bool) -> str:
        here = self.path
        for name in parts:
            here = os.path.join(here, name)
            try:
                st = os.lstat(here)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(here, 0o700)
                st = os.lstat(here)
            junction = getattr(os.path, "isjunction", lambda p: False)(here)
            if stat.S_ISLNK(st.st_mode) or junction or not stat.S_ISDIR(st.st_mode):
                raise NotFollowed(errno.ELOOP, f"{here} is {_why(here)}: not followed")
        return here

    def check(self, parts: Sequence[str]) -> None:
        """Raise NotFollowed (or OSError) unless every component of ``parts`` is a real folder."""
        with self.opened(parts):
            pass

    # --- removing ----------------------------------------------------------------------------
    def unlink(self, parts: Sequence[str]) -> bool:
        """Remove the file or link ``parts``; False when it was already gone."""
        *folder, name = parts
        with self.opened(folder) as where:
            try:
                if BY_FD:
                    os.unlink(name, dir_fd=where)
                else:
                    os.unlink(os.path.join(where, name))
                return True
            except FileNotFoundError:
                return False

    def remove_tree(self, parts: Sequence[str]) -> bool:
        """Remove ``parts`` and, if it is a real folder, everything in it; a link anywhere is
        removed as a link. False when it was already gone."""
        *folder, name = parts
        with self.opened(folder) as where:
            if not BY_FD:
                return _remove_tree_by_path(os.path.join(where, name))
            return remove_tree_at(where, name)

    def move(self, parts: Sequence[str], to: Sequence[str], new_name: str) -> bool:
        """Rename ``parts`` into the sub-folder ``to`` (made if missing) as ``new_name``: one
        step, so a reader sees the entry either in place or gone. False when it was gone."""
        *folder, name = parts
        with self.opened(folder) as src, self.opened(to, create=True) as dst:
            try:
                if BY_FD:
                    os.rename(name, new_name, src_dir_fd=src, dst_dir_fd=dst)
                else:
                    os.rename(os.path.join(src, name), os.path.join(dst, new_name))
                return True
            except FileNotFoundError:
                return False

    def names(self, parts: Sequence[str]) -> list[str]:
        """The entries of the sub-folder ``parts``."""
        with self.opened(parts) as where:
            with os.scandir(where) as it:
                return [e.name for e in it]


def remove_tree_at(parent: int, name: str) -> bool:
    """Delete entry ``name`` of the folder open at ``parent``, and everything below it if it is
    a real folder, descending by descriptor and following no link. Iterative: a hostile tree a
    hundred thousand folders deep cannot exhaust the stack (it can the descriptors: that is an
    OSError, and what was removed so far stays removed)."""
    try:
        top = os.open(name, _NOFOLLOW_DIR, dir_fd=parent)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno not in _NOT_A_FOLDER:
            raise
        try:
            os.unlink(name, dir_fd=parent)  # a link or a file: the entry itself
        except FileNotFoundError:
            return False
        return True
    stack = [(parent, name, top, False)]
    try:
        while stack:
            pfd, entry, fd, listed = stack[-1]
            if listed:
                stack.pop()
                os.close(fd)
                try:
                    os.rmdir(entry, dir_fd=pfd)
                except FileNotFoundError:
                    pass
                continue
            stack[-1] = (pfd, entry, fd, True)
            with os.scandir(fd) as it:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for child, is_dir in children:
                if is_dir:
                    try:
                        sub = os.open(child, _NOFOLLOW_DIR, dir_fd=fd)
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        if exc.errno not in _NOT_A_FOLDER:
                            raise
                    else:
                        stack.append((fd, child, sub, False))
                        continue
                try:
                    os.unlink(child, dir_fd=fd)
                except FileNotFoundError:
                    pass
    finally:
        for _, _, fd, _ in stack:
            os.close(fd)
    return True


def _remove_tree_by_path(path: str) -> bool:  # pragma: no cover - platforms without dir_fd
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    junction = getattr(os.path, "isjunction", lambda p: False)(path)
    if stat.S_ISDIR(st.st_mode) and not junction:
        shutil.rmtree(path)  # does not follow links or junctions below it
    else:
        os.unlink(path)
    return True
