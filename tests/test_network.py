"""Network checks and the SSL / mirror fixes against real servers on 127.0.0.1: a fake hub
(tests/fakehub.py) over TLS with CAs made by trustme, the real huggingface_hub in a real
venv, and nothing beyond this machine."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import subprocess
import time

from click.testing import CliRunner

from conftest import site_packages
from fakehub import FakeHub
from llmdoctor.cli import cli

REPO = "openai-community/gpt2"


def check(*args) -> dict:
    result = CliRunner().invoke(cli, ["check", "--json", *args], catch_exceptions=False)
    report = json.loads(result.stdout)
    by_id: dict = {}
    for f in report["findings"]:
        by_id.setdefault(f["id"], f)
    return by_id


def fix(*args):
    return CliRunner().invoke(cli, ["fix", *args], catch_exceptions=False)


def download(py, env_extra=None, drop=("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")):
    """A real hf_hub_download in a fresh process of the venv's Python, verification on."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    env["HF_HOME"] = env["HF_HOME"] + f"-{time.monotonic_ns()}"  # a cold cache every time
    code = f"from huggingface_hub import hf_hub_download as d; print(d({REPO!r}, 'config.json'))"
    return subprocess.run([str(py), "-c", code], env=env, capture_output=True, text=True, timeout=120)


def head_fails(py, env_extra=None, drop=("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")) -> bool:
    """The same stack's metadata request (no retries, unlike a failing download's ~20 s of
    back-off) fails in a fresh process of the venv's Python."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    code = ("from huggingface_hub import get_hf_file_metadata as g, hf_hub_url as u\n"
            f"m = g(u({REPO!r}, 'config.json'))\nassert m.commit_hash and m.etag")
    return subprocess.run([str(py), "-c", code], env=env, capture_output=True, timeout=120).returncode != 0


def ca_fingerprint(ca) -> str:
    import ssl

    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def snapshot(paths):
    return {p: (open(p, "rb").read() if os.path.exists(p) else None) for p in paths}


def test_untrusted_ca_then_fix_ssl_with_ca_file_then_undo(online, ca, hub_venv, monkeypatch, tmp_path):
    """1. A TLS-intercepting proxy's CA: the check names the issuer and its fingerprint;
    `fix --ssl --ca-file` makes a real download work with verification on, and removes the
    CURL_CA_BUNDLE='' hack from ~/.bashrc; `fix --undo` brings the failure back and every
    touched file is byte-identical to before."""
    bashrc = online / ".bashrc"
    bashrc.write_bytes(b"alias ll='ls -l'\nexport CURL_CA_BUNDLE=''\n")
    ca_pem = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("CURL_CA_BUNDLE", "")
        by_id = check("--python", str(hub_venv), "--only", "net.*")
        f = by_id["network.hub-untrusted"]
        assert f["status"] == "fail" and "Example Corp TLS Inspection" in f["title"]
        assert ca_fingerprint(ca) in f["title"] and "CERTIFICATE_VERIFY_FAILED" in f["title"]
        assert by_id["network.hub-client-tls"]["status"] == "fail"
        assert by_id["network.empty-ca-bundle"]["status"] == "warn"
        assert head_fails(hub_venv)

        hook = str(site_packages(hub_venv) / "llmdoctor-env.pth")
        bundle = str(site_packages(hub_venv) / "llmdoctor-ca-bundle.pem")
        before = snapshot([hook, bundle, str(bashrc)])
        dry = fix("--ssl", "--python", str(hub_venv), "--ca-file", str(ca_pem), "--dry-run")
        assert dry.exit_code == 0 and "Dry run" in dry.output and snapshot(before) == before
        applied = fix("--ssl", "--python", str(hub_venv), "--ca-file", str(ca_pem), "--yes")
        assert applied.exit_code == 0, applied.output
        assert "Verified: a fresh" in applied.output and "certificate verification on" in applied.output
        assert b"# disabled by llmdoctor fix --ssl" in bashrc.read_bytes()
        done = download(hub_venv)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not head_fails(hub_venv)  # the same probe that fails before the fix and after the undo

        undone = fix("--undo")
        assert undone.exit_code == 0, undone.output
        assert snapshot(before) == before
        assert head_fails(hub_venv)


def test_fix_ssl_from_the_wire_needs_the_fingerprint(online, ca, hub_venv, monkeypatch):
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost"), root=ca) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        refused = fix("--ssl", "--python", str(hub_venv), "--yes")
        assert refused.exit_code == 1 and ca_fingerprint(ca) in refused.output
        wrong = fix("--ssl", "--python", str(hub_venv), "--yes", "--trust-fingerprint", "AB:CD")
        assert wrong.exit_code == 1 and "does not match" in wrong.output
        applied = fix("--ssl", "--python", str(hub_venv), "--yes", "--trust-fingerprint", ca_fingerprint(ca))
        assert applied.exit_code == 0 and "Verified" in applied.output, applied.output
        assert download(hub_venv).returncode == 0


def test_a_proxy_that_does_not_send_its_root_needs_the_ca_file(online, ca, hub_venv, monkeypatch):
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost")) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        f = check("--python", str(hub_venv), "--only", "net.hub")["network.hub-untrusted"]
        assert "a CA the server does not send" in f["title"] and f["fix"].startswith("llmdoctor fix --ssl --ca-file")
        refused = fix("--ssl", "--python", str(hub_venv), "--yes", "--trust-fingerprint", ca_fingerprint(ca))
        assert refused.exit_code == 1 and "does not send the root CA" in refused.output


def test_a_server_that_never_answers(online, hub_venv, monkeypatch):
    """2. Accepts the connection, never answers: a timeout finding, and the check comes back
    within the network phase's bound instead of hanging."""
    with FakeHub(mode="hang") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        started = time.monotonic()
        by_id = check("--python", str(hub_venv), "--only", "net.hub,net.hub-client")
        assert time.monotonic() - started < 30
    f = by_id["network.hub-http"]
    assert f["status"] == "fail" and "accepts the connection but gives no answer" in f["title"]


def test_a_captive_portal_is_not_the_hub(online, ca, hub_venv, monkeypatch, tmp_path):
    """3. A 200 with a login page and no hub headers."""
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    with FakeHub(cert=ca.issue_cert("127.0.0.1"), mode="captive") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        by_id = check("--python", str(hub_venv), "--only", "net.hub,net.hub-client")
    f = by_id["network.hub-portal"]
    assert "without the hub's headers" in f["title"] and "text/html" in f["title"]
    client = by_id["network.hub-client"]  # the target's own huggingface_hub sees the same page
    assert client["status"] == "skip" and "X-Repo-Commit" in client["title"]


def test_an_expired_certificate(online, ca, hub_venv, monkeypatch, tmp_path):
    """4. Expired: named as such, with the validity period and this machine's clock."""
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    leaf = ca.issue_cert("127.0.0.1", not_before=past - dt.timedelta(days=60), not_after=past)
    with FakeHub(cert=leaf) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        by_id = check("--python", str(hub_venv), "--only", "net.hub")
    f = by_id["network.hub-expired"]
    assert "has expired" in f["title"] and "This machine's clock says" in f["detail"]


def test_a_hostname_mismatch(online, ca, hub_venv, monkeypatch, tmp_path):
    """5. A certificate for another name: a captive portal or a misrouted proxy."""
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    with FakeHub(cert=ca.issue_cert("portal.example")) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        by_id = check("--python", str(hub_venv), "--only", "net.hub")
    f = by_id["network.hub-hostname"]
    assert "belongs to" in f["title"] and "127.0.0.1" in f["title"]


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}"


def test_hub_dead_mirror_alive_then_fix_mirror(online, hub_venv, monkeypatch):
    """6. The hub endpoint refuses connections, the mirror answers as a hub: the check says
    so and names the fix; `fix --mirror URL` makes a real download work; undo restores."""
    dead = _dead_url()
    with FakeHub() as mirror:
        monkeypatch.setenv("HF_ENDPOINT", dead)
        monkeypatch.setenv("LLMDOCTOR_NET_TARGETS", f"mirror={mirror.url}")
        by_id = check("--python", str(hub_venv), "--only", "network.*")
        assert by_id["network.hub-tcp"]["fix"] == f"llmdoctor fix --mirror {mirror.url}"
        assert by_id["network.mirror-available"]["status"] == "warn"
        assert head_fails(hub_venv)

        hook = str(site_packages(hub_venv) / "llmdoctor-env.pth")
        before = snapshot([hook])
        refused = fix("--mirror", dead, "--python", str(hub_venv), "--yes")
        assert refused.exit_code == 1 and "does not answer as a hub" in refused.output and snapshot(before) == before
        applied = fix("--mirror", mirror.url, "--python", str(hub_venv), "--yes")
        assert applied.exit_code == 0 and "Verified" in applied.output, applied.output
        assert "HF_HUB_DISABLE_XET=1" in applied.output
        assert "replaces exactly that value" in applied.output  # HF_ENDPOINT is set in this shell
        assert not head_fails(hub_venv)  # the user's next download, with the shell's HF_ENDPOINT, uses the mirror
        done = download(hub_venv, drop=("HF_ENDPOINT",))
        assert done.returncode == 0, done.stderr[-2000:]
        assert not head_fails(hub_venv, drop=("HF_ENDPOINT",))
        assert fix("--undo").exit_code == 0 and snapshot(before) == before
        assert head_fails(hub_venv, drop=("HF_ENDPOINT",), env_extra={"HF_ENDPOINT": dead})


def test_through_a_connect_proxy_with_credentials_that_never_show(online, ca, hub_venv, monkeypatch, tmp_path):
    """The hub reached through an authenticating CONNECT proxy (HTTPS_PROXY with user and
    password): the probe tunnels, reports the proxy with its credentials masked, and the
    password appears nowhere in the output."""
    import base64

    from fakehub import ConnectProxy

    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    monkeypatch.delenv("NO_PROXY", raising=False)
    with FakeHub(cert=ca.issue_cert("127.0.0.1", "localhost")) as hub, ConnectProxy() as proxy:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HTTPS_PROXY", f"http://alice:s3cret-Pa55@127.0.0.1:{proxy.port}")
        result = CliRunner().invoke(cli, ["check", "--json", "--python", str(hub_venv), "--only", "network.*"],
                                    catch_exceptions=False)
        text = CliRunner().invoke(cli, ["check", "--python", str(hub_venv), "--only", "net.*"]).output
    by_id = {f["id"]: f for f in json.loads(result.stdout)["findings"]}
    assert by_id["network.hub"]["status"] == "ok" and f"through proxy http://***@127.0.0.1:{proxy.port}" in by_id["network.hub"]["title"]
    assert by_id["network.hub-client"]["status"] == "ok"
    assert f"Basic {base64.b64encode(b'alice:s3cret-Pa55').decode()}" in proxy.auth
    assert "s3cret-Pa55" not in result.stdout and "s3cret-Pa55" not in text


def test_every_endpoint_hanging_is_still_bounded(online, hub_venv, monkeypatch):
    """Hub, mirror and pip index all accept and never answer: each is a timeout finding and
    the whole network phase stays within its bound."""
    with FakeHub(mode="hang") as hub, FakeHub(mode="hang") as mirror, FakeHub(mode="hang") as pip:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("LLMDOCTOR_NET_TARGETS", f"mirror={mirror.url},pip={pip.url}")
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["check", "--json", "--python", str(hub_venv), "--only", "net.*"],
                                    catch_exceptions=False)
        elapsed = time.monotonic() - started
    report = json.loads(result.stdout)
    assert elapsed < 30 and report["facts"]["network"]["value"]["seconds"] < 10
    ids = {f["id"] for f in report["findings"]}
    assert {"network.hub-http", "network.mirror-down", "network.pip-unreachable"} <= ids


def test_a_target_without_huggingface_hub_records_the_import_error_and_the_check_words_it(online, venv, monkeypatch):
    """The target's own hub call cannot be made: the fact holds a kind and the ImportError's
    text, not a sentence; the finding's words are the check's."""
    py = venv()  # a bare venv: no huggingface_hub
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = CliRunner().invoke(cli, ["check", "--json", "--python", str(py), "--only", "network.hub-client"],
                                    catch_exceptions=False)
    report = json.loads(result.stdout)
    call = report["facts"]["network"]["value"]["hub_call"]
    assert call["skip_kind"] == "import-error" and call["skipped"] is None
    assert call["skip_detail"].startswith("ModuleNotFoundError: ") and "huggingface_hub" in call["skip_detail"]
    (f,) = [f for f in report["findings"] if f["check"] == "network.hub-client"]
    assert f["status"] == "skip" and f["title"] == f"huggingface_hub does not import: {call['skip_detail']}"


def test_a_target_that_hangs_or_dies_before_the_hub_call_answers_is_a_kind(tmp_path):
    """An interpreter that never answers is "timeout" with the seconds it had; one that dies is
    "no-result" with its last line of stderr (real processes, no network)."""
    from llmdoctor.probes import ProbeContext
    from llmdoctor.probes.network import _hub_call
    from llmdoctor.target import Target

    hang, dies = tmp_path / "hang", tmp_path / "dies"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    dies.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    for script in (hang, dies):
        script.chmod(0o755)
    box: dict = {}
    started = time.monotonic()
    _hub_call(ProbeContext(target=Target(str(hang), "explicit"), environ=dict(os.environ)), REPO, 1.5, box)
    assert time.monotonic() - started < 10
    assert (box["call"].skip_kind, box["call"].seconds, box["call"].skipped) == ("timeout", 1.5, None)
    box = {}
    _hub_call(ProbeContext(target=Target(str(dies), "explicit"), environ=dict(os.environ)), REPO, 5.0, box)
    assert (box["call"].skip_kind, box["call"].skip_detail) == ("no-result", "Fatal Python error: init_fs_encoding")
