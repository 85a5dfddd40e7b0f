"""The fix journal on a shared machine and after a crash: backups no one else can read, a
damaged manifest or backup that never breaks the journal nor restores the wrong bytes, and a
fix killed mid-apply that undoes cleanly without --force."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from conftest import readable_by_other_user
from fakehub import FakeHub
from llmdoctor.cli import cli
from llmdoctor.fix.model import FileChange, Plan, apply
from llmdoctor.fix.journal import Journal, JournalError

TOKEN_LINE = b"export HF_TOKEN=hf_" + b"q" * 34 + b"\n"


def fix(*args):
    return CliRunner().invoke(cli, ["fix", *args], catch_exceptions=False)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def journal_files(config) -> list:
    root = config / "journal"
    return [root, *root.rglob("*")]


def test_fix_ssl_backs_up_a_private_bashrc_privately(online, ca, hub_venv, monkeypatch, tmp_path):
    bashrc = online / ".bashrc"
    bashrc.write_bytes(b"alias ll='ls -l'\n" + TOKEN_LINE + b"export CURL_CA_BUNDLE=''\n")
    os.chmod(bashrc, 0o600)
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    config = tmp_path / "config"
    config.mkdir(mode=0o755)
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        applied = fix("--ssl", "--python", str(hub_venv), "--ca-file", str(ca_pem), "--yes")
    assert applied.exit_code == 0, applied.output
    (backup,) = [p for p in (config / "journal").rglob("*.bak") if p.read_bytes() == bashrc_before(bashrc)]
    assert mode(backup) == 0o600  # as the original, not 0644
    for path in journal_files(config):
        if path.is_dir():
            assert mode(path) == 0o700, path
    assert not readable_by_other_user(backup)
    assert mode(bashrc) == 0o600  # the edited file keeps its mode too


def bashrc_before(bashrc) -> bytes:
    return b"alias ll='ls -l'\n" + TOKEN_LINE + b"export CURL_CA_BUNDLE=''\n"


def test_fix_edits_a_symlinked_bashrc_through_its_link_and_undo_keeps_the_link(online, ca, hub_venv, monkeypatch,
                                                                                 tmp_path):
    """A dotfile manager (stow, chezmoi, a dotfiles repo) makes ~/.bashrc a link: the fix must
    edit the file the link names, not replace the link with a copy the repo no longer sees."""
    dotfiles = online / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "bashrc"
    real.write_bytes(bashrc_before(real))
    os.chmod(real, 0o600)
    bashrc = online / ".bashrc"
    os.symlink("dotfiles/bashrc", bashrc)
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        applied = fix("--ssl", "--python", str(hub_venv), "--ca-file", str(ca_pem), "--yes")
    assert applied.exit_code == 0, applied.output
    assert os.readlink(bashrc) == "dotfiles/bashrc"  # still the link (it became a plain file)
    assert b"# disabled by llmdoctor fix --ssl" in real.read_bytes() and mode(real) == 0o600
    undone = fix("--undo")
    assert undone.exit_code == 0, undone.output
    assert os.readlink(bashrc) == "dotfiles/bashrc" and real.read_bytes() == bashrc_before(real)


def test_an_old_world_readable_journal_is_made_private(tmp_path):
    root = tmp_path / "cfg" / "journal"
    root.mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)
    f = tmp_path / "a.conf"
    f.write_bytes(b"x")
    Journal(tmp_path / "cfg").begin("demo").write(str(f), b"y")
    assert mode(root) == 0o700


def _applied(tmp_path, name="a.conf"):
    f = tmp_path / name
    f.write_bytes(b"before\n")
    j = Journal(tmp_path / "cfg")
    apply(Plan("demo", "demo", changes=(FileChange(str(f), b"after\n", "test"),)), j)
    return f, j


@pytest.mark.parametrize("damage", ["no fix", "not json", "not an object", "files not a list",
                                    "a file without hashes", "backup outside", "commands not strings"])
def test_a_damaged_manifest_is_listed_and_never_breaks_the_journal(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("LLMDOCTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    f, j = _applied(tmp_path)
    _applied(tmp_path, "b.conf")
    first = j.entries()[0]
    manifest = first.folder / "manifest.json"
    data = json.loads(manifest.read_text())
    if damage == "no fix":
        del data["fix"]
    elif damage == "not an object":
        data = [data]
    elif damage == "files not a list":
        data["files"] = "a.conf"
    elif damage == "a file without hashes":
        del data["files"][0]["sha256_after"]
    elif damage == "backup outside":
        data["files"][0]["backup"] = "../../../../etc/passwd"
    elif damage == "commands not strings":
        data["undo_commands"] = [[1, 2]]
    manifest.write_text("{not json" if damage == "not json" else json.dumps(data))
    listed = fix("--journal")
    assert listed.exit_code == 0 and "damaged" in listed.output
    undone = fix("--undo")  # the newest intact entry is undone
    assert undone.exit_code == 0, undone.output
    refused = fix("--undo", first.id)
    assert refused.exit_code == 1 and "cannot be undone" in refused.output
    assert f.read_bytes() == b"after\n"  # nothing restored from a manifest that cannot be trusted


@pytest.mark.parametrize("damage", ["emptied", "changed", "removed"])
def test_a_damaged_backup_is_never_restored(tmp_path, damage):
    f, j = _applied(tmp_path)
    entry = j.find(None)
    backup = entry.folder / entry.files[0]["backup"]
    if damage == "removed":
        backup.unlink()
    else:
        backup.write_bytes(b"" if damage == "emptied" else b"someone else's bytes\n")
    with pytest.raises(JournalError, match="saved copy"):
        j.undo(entry)
    with pytest.raises(JournalError, match="saved copy"):
        j.undo(entry, force=True)
    assert f.read_bytes() == b"after\n"


KILL_AT_REPLACE = textwrap.dedent("""
    import os
    limit = int(os.environ["KILL_AT"])
    calls = [0]
    real = os.replace
    def replace(*a, **kw):
        calls[0] += 1
        if calls[0] == limit:
            os._exit(9)
        return real(*a, **kw)
    os.replace = replace
""")


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_fix_killed_mid_apply_undoes_without_force(tmp_path, venv, kill_at):
    """`fix --max-jobs` killed at its 1st, 2nd, 3rd os.replace (the manifest, the user's file, the
    manifest again): `fix --undo` then needs no --force, and no temporary file is left."""
    py = venv()
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AT_REPLACE)
    config = tmp_path / "config"
    env = {**os.environ, "KILL_AT": str(kill_at), "PYTHONPATH": str(hook), "LLMDOCTOR_CONFIG_DIR": str(config)}
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "fix", "--max-jobs", "--python", str(py), "--yes"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stdout + done.stderr
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    env.pop("KILL_AT")
    env.pop("PYTHONPATH")
    undone = subprocess.run([sys.executable, "-m", "llmdoctor", "fix", "--undo"], env=env, capture_output=True,
                            text=True, timeout=60)
    if kill_at == 1:  # killed before the first manifest was complete: nothing was recorded, nothing changed
        assert not (site / "llmdoctor-env.pth").exists()
    else:
        assert undone.returncode == 0, undone.stdout + undone.stderr
    assert not (site / "llmdoctor-env.pth").exists()
    leftovers = [p.name for p in site.iterdir() if "llmdoctor" in p.name]
    assert leftovers == [], leftovers
