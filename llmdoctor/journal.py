"""The fix journal: every file a fix touches is backed up first, so ``fix --undo``
restores it byte for byte (or removes it, if the fix created it).

Layout, under llmdoctor's config dir::

    journal/<entry-id>/manifest.json   fix id, time, files: path, existed, sha256 before/after, mode
    journal/<entry-id>/<n>.bak         the bytes of file n before the fix
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class JournalError(RuntimeError):
    """An undo that would lose data, or a journal that cannot be read."""


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def read_bytes(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def atomic_write(path: str, data: bytes, mode: int | None = None) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".llmdoctor-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Entry:
    id: str
    fix: str
    created: str
    files: tuple[dict, ...]
    undone: bool
    folder: Path
    undo_commands: tuple[tuple[str, ...], ...] = ()

    def describe(self) -> str:
        state = "undone" if self.undone else "active"
        paths = ", ".join([f["path"] for f in self.files] + [" ".join(c) for c in self.undo_commands]) or "nothing"
        return f"{self.id}  {self.fix:<10} {state:<7} {paths}"


class Journal:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "journal"

    def begin(self, fix: str) -> "Recording":
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.root.mkdir(parents=True, exist_ok=True)
        n = 0
        while (self.root / f"{stamp}-{fix}-{n}").exists():
            n += 1
        folder = self.root / f"{stamp}-{fix}-{n}"
        folder.mkdir()
        return Recording(folder, fix)

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(self.root.iterdir()):
            try:
                data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # an interrupted fix before its first file: nothing to undo
            out.append(Entry(folder.name, data["fix"], data["created"], tuple(data["files"]),
                             bool(data.get("undone")), folder,
                             tuple(tuple(c) for c in data.get("undo_commands") or ())))
        return out

    def find(self, entry_id: str | None) -> Entry:
        entries = [e for e in self.entries() if not e.undone]
        if entry_id:
            entries = [e for e in self.entries() if e.id == entry_id]
            if not entries:
                raise JournalError(f"no journal entry {entry_id!r} (see `llmdoctor fix --journal`)")
        if not entries:
            raise JournalError("nothing to undo: no fix has been applied (or all were undone)")
        return entries[-1]

    def undo(self, entry: Entry, force: bool = False, run=None) -> list[str]:
        """Restore every file of ``entry``, newest change first, then run its undo commands.
        Refuses, touching nothing, when a file was changed since the fix (unless ``force``)."""
        if entry.undone:
            raise JournalError(f"{entry.id} was already undone")
        changed = [f["path"] for f in entry.files if sha256(read_bytes(f["path"])) != f["sha256_after"]]
        if changed and not force:
            raise JournalError("changed since the fix, so undo would lose those edits: " + ", ".join(changed)
                               + " (use --force to restore the saved copies anyway)")
        done = []
        for f in reversed(entry.files):
            if f["existed"]:
                atomic_write(f["path"], (entry.folder / f["backup"]).read_bytes(), f.get("mode"))
            elif os.path.exists(f["path"]):
                os.unlink(f["path"])
            done.append(f["path"])
        for argv in entry.undo_commands:
            import subprocess

            code = (run or (lambda a: subprocess.run(list(a)).returncode))(argv)
            if code != 0:
                raise JournalError(f"`{' '.join(argv)}` exited with {code}; run it again by hand")
            done.append(" ".join(argv))
        manifest = entry.folder / "manifest.json"
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["undone"] = True
        atomic_write(str(manifest), json.dumps(data, indent=2).encode())
        return done


class Recording:
    """One fix being applied: back up, then write; the manifest is rewritten after each
    file so an interrupted fix can still be undone."""

    def __init__(self, folder: Path, fix: str):
        self.folder = folder
        self.fix = fix
        self.files: list[dict] = []
        self._undo_commands: list[list[str]] = []
        self.created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()

    @property
    def id(self) -> str:
        return self.folder.name

    def undo_commands(self, commands) -> None:
        """Commands `fix --undo` runs after restoring files (e.g. reinstall the old torch)."""
        self._undo_commands = [list(c) for c in commands]
        self._save()

    def write(self, path: str, data: bytes | None) -> None:
        """Replace ``path`` with ``data`` (None removes it), after saving what was there."""
        path = os.path.abspath(path)
        before = read_bytes(path)
        mode = os.stat(path).st_mode & 0o7777 if before is not None else None
        record = {"path": path, "existed": before is not None, "sha256_before": sha256(before),
                  "sha256_after": sha256(data), "mode": mode, "backup": None}
        if before is not None:
            record["backup"] = f"{len(self.files)}.bak"
            (self.folder / record["backup"]).write_bytes(before)
        self.files.append(record)
        self._save()  # recorded before the change: undo works even if we die mid-write
        if data is None:
            if before is not None:
                os.unlink(path)
        else:
            atomic_write(path, data, mode)

    def _save(self) -> None:
        manifest = {"fix": self.fix, "created": self.created, "files": self.files, "undone": False,
                    "undo_commands": self._undo_commands}
        atomic_write(str(self.folder / "manifest.json"), json.dumps(manifest, indent=2).encode())
