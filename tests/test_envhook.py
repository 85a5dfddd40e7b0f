"""The start-up hook (llmdoctor-env.pth) that fixes write into an environment, against the ways
it broke or vanished (issue 14, item 8): written 0600 so other users of a shared environment
silently lost the variables; a non-BMP character in the bundle path made it raise at every
start of that Python; removing ~/.config/llmdoctor broke TLS in huggingface_hub and pip."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_venv, outer_site_packages, site_packages
from fakehub import FakeHub
from llmdoctor.fix import envhook
from llmdoctor.cli import cli


def fix(*args):
    return CliRunner().invoke(cli, ["fix", *args], catch_exceptions=False)


def run(py, code, env=None, user=None):
    argv = [str(py), "-c", code]
    if user:
        argv = [shutil.which("runuser") or "runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_a_hook_value_with_an_emoji_never_breaks_python_start_up(venv):
    """Values are written with Python escapes: a path with a non-BMP character (or a byte that is
    not UTF-8) comes back exactly, and nothing is printed at start-up."""
    py = venv()
    odd = "/srv/\U0001F917 models/bundle.pem"
    (site_packages(py) / envhook.HOOK_NAME).write_bytes(envhook.render({"LLMDOCTOR_T": odd, "MAX_JOBS": "3"}))
    done = run(py, "import os, json; print(json.dumps([os.environ.get('LLMDOCTOR_T'), os.environ.get('MAX_JOBS')]))",
               env={k: v for k, v in os.environ.items() if k not in ("LLMDOCTOR_T", "MAX_JOBS")})
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout) == [odd, "3"]
    assert envhook.render({"A": odd}).isascii()


def test_a_hook_whose_file_is_gone_sets_nothing(venv, tmp_path):
    py = venv()
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("not read by this test\n")
    (site_packages(py) / envhook.HOOK_NAME).write_bytes(
        envhook.render({"SSL_CERT_FILE": str(bundle), "MAX_JOBS": "2"}, files=["SSL_CERT_FILE"]))
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "MAX_JOBS")}
    code = "import os; print(os.environ.get('SSL_CERT_FILE'), os.environ.get('MAX_JOBS'))"
    assert run(py, code, env).stdout.split() == [str(bundle), "2"]
    bundle.unlink()
    done = run(py, code, env)
    assert done.stdout.split() == ["None", "2"] and done.stderr == ""


def test_the_hook_replaces_only_the_value_recorded_at_fix_time(venv):
    py = venv()
    (site_packages(py) / envhook.HOOK_NAME).write_bytes(
        envhook.render({"HF_ENDPOINT": "https://hf-mirror.com"}, replace={"HF_ENDPOINT": ["http://dead:1"]}))
    code = "import os; print(os.environ.get('HF_ENDPOINT'))"
    base = {k: v for k, v in os.environ.items() if k != "HF_ENDPOINT"}
    assert run(py, code, base).stdout.strip() == "https://hf-mirror.com"
    assert run(py, code, {**base, "HF_ENDPOINT": "http://dead:1"}).stdout.strip() == "https://hf-mirror.com"
    assert run(py, code, {**base, "HF_ENDPOINT": "https://mine.example"}).stdout.strip() == "https://mine.example"


def test_fix_ssl_keeps_working_after_llmdoctors_own_config_is_removed(online, ca, venv, monkeypatch, tmp_path):
    """The bundle used to live in ~/.config/llmdoctor: once that was removed, TLS failed in every
    process of the environment. It now lives in the environment's own site-packages."""
    py = venv()
    outer_site_packages(py)
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    code = ("from huggingface_hub import get_hf_file_metadata as g, hf_hub_url as u\n"
            "m = g(u('openai-community/gpt2', 'config.json'))\nassert m.commit_hash and m.etag")
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert fix("--ssl", "--python", str(py), "--ca-file", str(ca_pem), "--yes").exit_code == 0
        shutil.rmtree(os.environ["LLMDOCTOR_CONFIG_DIR"])
        assert run(py, code, dict(os.environ)).returncode == 0
        (site_packages(py) / "llmdoctor-ca-bundle.pem").unlink()  # the environment's own bundle removed too
        gone = run(py, code + "\nprint('verified')", dict(os.environ))
        assert "Error processing line" not in gone.stderr and "CERTIFICATE_VERIFY_FAILED" in gone.stderr


def _make_user() -> str | None:
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        return None
    name = f"llmdt{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    return name if made.returncode == 0 else None


def test_another_user_of_a_shared_environment_gets_the_variables(online, ca, monkeypatch, tmp_path):
    """A shared environment (one venv, several users): the hook and the bundle were 0600, so the
    other users silently ran without the CA while the fix printed "Verified"."""
    base = shutil.which("python3.11", path="/usr/bin")
    if base is None:
        pytest.skip("needs a system Python other users can run")
    user = _make_user()
    if user is None:
        pytest.skip("cannot create a second user here")
    shared = Path(tempfile.mkdtemp(prefix="llmdoctor-shared-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        py = make_venv(shared / "venv", base)
        subprocess.run(["chmod", "-R", "a+rX", str(shared)], check=True)
        ca_pem = tmp_path / "corp-ca.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
            fix("--ssl", "--python", str(py), "--ca-file", str(ca_pem), "--yes")  # verification needs hub: not here
        site = site_packages(py)
        for name in (envhook.HOOK_NAME, "llmdoctor-ca-bundle.pem"):
            assert stat.S_IMODE((site / name).stat().st_mode) == 0o644, name
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
        done = run(py, "import os, ssl; f = os.environ['SSL_CERT_FILE']; ssl.create_default_context(cafile=f); print(f)",
                   env=env, user=user)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(site / "llmdoctor-ca-bundle.pem")
        assert pwd.getpwnam(user).pw_uid != os.geteuid()
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        shutil.rmtree(shared, ignore_errors=True)
