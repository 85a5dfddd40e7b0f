"""The fix journal: every file a fix touches is backed up first, so ``fix --undo``
restores it byte for byte (or removes it, if the fix created it).

Layout, under llmdoctor's config dir::

    journal/<entry-id>/manifest.json   fix id, time, files: path, existed, sha256 before/after, mode
    journal/<entry-id>/<n>.bak         the bytes of file n before the fix

The journal's folders are private (0700) and each backup keeps its original's mode, so a
0600 ``~/.bashrc`` holding a token is never copied somewhere others can read. A backup is
checked against the hash recorded for it before it is restored. Each file is recorded
before it is written, with the name of the temporary file its new bytes go through, so a
fix killed at any point can be undone: a file still as it was before counts as untouched,
and a temporary file left behind is removed. A manifest that cannot be read is listed as
damaged; it never stops the journal from working.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
import uuid
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


PRIVATE = 0o700


def atomic_write(path: str, data: bytes, mode: int | None = None, tmp: str | None = None) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file.
    ``tmp`` names the temporary file (the journal records it first); it is created anew,
    never opened if something is already there."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if tmp is None:
        fd, tmp = tempfile.mkstemp(prefix=".llmdoctor-", dir=folder)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
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
    damaged: str | None = None  #: why the manifest cannot be used (then nothing is undone from it)

    def describe(self) -> str:
        if self.damaged:
            return f"{self.id}  {'?':<10} damaged {self.damaged}"
        state = "undone" if self.undone else "active"
        paths = ", ".join([f["path"] for f in self.files] + [" ".join(c) for c in self.undo_commands]) or "nothing"
        return f"{self.id}  {self.fix:<10} {state:<7} {paths}"


_FILE_KEYS = {"path": str, "existed": bool, "sha256_before": (str, type(None)), "sha256_after": (str, type(None)),
              "mode": (int, type(None)), "backup": (str, type(None))}


def _entry(folder: Path, data) -> Entry:
    """An Entry from a manifest's data, or a damaged one saying what is wrong with it."""
    def damaged(why: str) -> Entry:
        return Entry(folder.name, "?", "", (), False, folder, damaged=why)

    if not isinstance(data, dict):
        return damaged("manifest.json is not an object")
    for key, kind in (("fix", str), ("created", str), ("files", list)):
        if not isinstance(data.get(key), kind):
            return damaged(f"manifest.json has no valid {key!r}")
    for f in data["files"]:
        if not isinstance(f, dict) or any(k not in f or not isinstance(f[k], t) for k, t in _FILE_KEYS.items()):
            return damaged("manifest.json lists a file without path, hashes, mode or backup")
        if f["backup"] is not None and (os.sep in f["backup"] or f["backup"] in (".", "..", "")):
            return damaged(f"manifest.json names a backup outside its folder: {f['backup']!r}")
        if f["existed"] != (f["backup"] is not None) or f["existed"] != (f["sha256_before"] is not None):
            return damaged("manifest.json lists a file whose backup does not match whether it existed")
    commands = data.get("undo_commands") or []
    if not isinstance(commands, list) or not all(isinstance(c, list) and c and all(isinstance(a, str) for a in c)
                                                 for c in commands):
        return damaged("manifest.json has malformed undo commands")
    return Entry(folder.name, data["fix"], data["created"], tuple(data["files"]), data.get("undone") is True,
                 folder, tuple(tuple(c) for c in commands))


class Journal:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "journal"

    def begin(self, fix: str) -> "Recording":
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.root.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
        _make_private(self.root)
        n = 0
        while (self.root / f"{stamp}-{fix}-{n}").exists():
            n += 1
        folder = self.root / f"{stamp}-{fix}-{n}"
        folder.mkdir(mode=PRIVATE)
        _make_private(folder)
        return Recording(folder, fix)

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.is_symlink():
                continue
            try:
                raw = (folder / "manifest.json").read_bytes()
            except FileNotFoundError:
                continue  # an interrupted fix before its first file: nothing to undo
            except OSError as exc:
                out.append(Entry(folder.name, "?", "", (), False, folder, damaged=f"cannot read manifest.json: "
                                                                                   f"{exc.strerror or exc}"))
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):
                out.append(Entry(folder.name, "?", "", (), False, folder, damaged="manifest.json is not JSON"))
                continue
            out.append(_entry(folder, data))
        return out

    def find(self, entry_id: str | None) -> Entry:
        entries = self.entries()
        if entry_id:
            entries = [e for e in entries if e.id == entry_id]
            if not entries:
                raise JournalError(f"no journal entry {entry_id!r} (see `llmdoctor fix --journal`)")
            if entries[-1].damaged:
                raise JournalError(f"{entry_id} cannot be undone: {entries[-1].damaged}")
            return entries[-1]
        entries = [e for e in entries if not e.undone and not e.damaged]
        if not entries:
            raise JournalError("nothing to undo: no fix has been applied (or all were undone)")
        return entries[-1]

    def undo(self, entry: Entry, force: bool = False, run=None) -> list[str]:
        """Restore every file of ``entry``, newest change first, then run its undo commands.
        Refuses, touching nothing, when a file was changed since the fix (unless ``force``)."""
        if entry.undone:
            raise JournalError(f"{entry.id} was already undone")
        for f in entry.files:  # a temporary file a killed fix left behind is ours
            if f.get("temp") and isinstance(f["temp"], str) and os.path.dirname(f["temp"]) == \
                    os.path.dirname(f["path"]) and os.path.lexists(f["temp"]):
                os.unlink(f["temp"])
        now = {f["path"]: sha256(read_bytes(f["path"])) for f in entry.files}
        # as the fix left it, or as it was before (the fix was killed before writing it)
        changed = [f["path"] for f in entry.files if now[f["path"]] not in (f["sha256_after"], f["sha256_before"])]
        if changed and not force:
            raise JournalError("changed since the fix, so undo would lose those edits: " + ", ".join(changed)
                               + " (use --force to restore the saved copies anyway)")
        backups = {}
        for f in entry.files:
            if f["existed"]:
                try:
                    data = (entry.folder / f["backup"]).read_bytes()
                except OSError as exc:
                    raise JournalError(f"the saved copy of {f['path']} cannot be read: {exc.strerror or exc}; "
                                       "nothing was restored") from None
                if sha256(data) != f["sha256_before"]:
                    raise JournalError(f"the saved copy of {f['path']} ({entry.folder / f['backup']}) is not what "
                                       "was saved (its hash differs); nothing was restored")
                backups[f["path"]] = data
        done = []
        for f in reversed(entry.files):
            if f["existed"]:
                if now[f["path"]] != f["sha256_before"]:
                    atomic_write(f["path"], backups[f["path"]], f.get("mode"))
            elif os.path.exists(f["path"]):
                os.unlink(f["path"])
            done.append(f["path"])
        for argv in entry.undo_commands:
            from llmdoctor.subproc import run_attached

            code = (run or run_attached)(argv)
            if code != 0:
                from llmdoctor.platforms.exitcodes import exit_text

                raise JournalError(f"`{' '.join(argv)}` {exit_text(code)}; run it again by hand")
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
        """Replace ``path`` with ``data`` (None removes it), after saving what was there. A link
        (a ~/.bashrc a dotfile manager links to its repo) is written through: the file it names
        changes and the link stays, where a rename onto it would replace it with a copy."""
        path = os.path.realpath(path)
        before = read_bytes(path)
        mode = os.stat(path).st_mode & 0o7777 if before is not None else None
        temp = None if data is None else os.path.join(os.path.dirname(path), f".{os.path.basename(path)}."
                                                                             f"llmdoctor-{uuid.uuid4().hex[:12]}")
        record = {"path": path, "existed": before is not None, "sha256_before": sha256(before),
                  "sha256_after": sha256(data), "mode": mode, "backup": None, "temp": temp}
        if before is not None:
            record["backup"] = f"{len(self.files)}.bak"
            _write_private(self.folder / record["backup"], before, mode)
        self.files.append(record)
        self._save()  # recorded before the change: undo works even if we die mid-write
        if data is None:
            if before is not None:
                os.unlink(path)
        else:
            atomic_write(path, data, mode, tmp=temp)

    def _save(self) -> None:
        manifest = {"fix": self.fix, "created": self.created, "files": self.files, "undone": False,
                    "undo_commands": self._undo_commands}
        atomic_write(str(self.folder / "manifest.json"), json.dumps(manifest, indent=2).encode())


def _make_private(folder: Path) -> None:
    """Only the owner may enter a journal folder (an older llmdoctor made them 0755)."""
    try:
        if folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o077:
            os.chmod(folder, PRIVATE)
    except OSError:
        pass


def _write_private(path: Path, data: bytes, mode: int | None) -> None:
    """A backup: created with no access for others, then given its original's mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if mode is not None:
        os.chmod(path, mode & 0o777)
