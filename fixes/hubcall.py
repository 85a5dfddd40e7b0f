"""Verification shared by the network fixes, run in a fresh process of the target
interpreter in the environment the user works in (this shell's variables, plus what the
start-up hook sets), so that what it proves is what the user's next download meets."""

from __future__ import annotations

import os
import tempfile
from typing import Mapping

from llmdoctor import subproc
from llmdoctor.fix.model import Verdict
from llmdoctor.paths import hf_hub_cache
from llmdoctor.probes.python_env import SCRIPT, probe_lines

#: CA variables (kept for plugins that import the name)
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT")
ENDPOINT_VARS = ("HF_ENDPOINT", "HF_HUB_DISABLE_XET")
DEFAULT_REPO = "openai-community/gpt2"


def probe_repo(environ: Mapping[str, str]) -> str:
    """The repo to ask for: LLMDOCTOR_PROBE_REPO, else a model the user has in the hub cache
    (the most recently used), else openai-community/gpt2."""
    if environ.get("LLMDOCTOR_PROBE_REPO"):
        return environ["LLMDOCTOR_PROBE_REPO"]
    root = hf_hub_cache(environ)
    try:
        with os.scandir(root) as it:
            found = [(e.stat(follow_symlinks=False).st_mtime, e.name) for e in it
                     if e.name.startswith("models--") and e.is_dir(follow_symlinks=False)]
    except OSError:
        found = []
    for _, name in sorted(found, reverse=True):
        parts = name[len("models--"):].split("--")
        if len(parts) == 2 and all(parts):
            return "/".join(parts)
    return DEFAULT_REPO


def _env(environ: Mapping[str, str], drop: tuple[str, ...]) -> dict:
    env = {k: v for k, v in environ.items() if k not in drop}
    env.pop("PYTHONPATH", None)
    return env


def _describe_verify(value: str | None) -> str:
    if not value or value == "on":
        return "certificate verification on"
    if value.startswith("bundle:"):
        return f"certificate verification on, against {value[len('bundle:'):]}"
    return f"certificate verification {value}"


def reach(python: str, environ: Mapping[str, str], repo: str, filename: str = "config.json",
          timeout: float = 30.0, drop: tuple[str, ...] = ()) -> Verdict:
    """Proof that TLS to the hub verifies for ``python`` in ``environ``: any HTTP answer over a
    connection made with verification on (a 404 for a repo that server lacks proves it as well
    as a 200)."""
    done = subproc.run([python, str(SCRIPT), "reach", repo, filename, str(timeout)], timeout=timeout + 15,
                       env=_env(environ, drop))
    data = next(iter(probe_lines(done.stdout)), None)
    if not isinstance(data, dict):
        why = "timed out" if done.timed_out else (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(False, f"the check in {python} did not finish: {why}")
    if data.get("import_error"):
        return Verdict(False, f"huggingface_hub does not import in {python}: {data['import_error']}")
    endpoint, status, verify = data.get("endpoint") or "the hub", data.get("status"), data.get("verify")
    what = f"{repo}/{filename}"
    if data.get("scheme") == "http":
        return Verdict(bool(data.get("answered")), f"{endpoint} is plain HTTP: there is no TLS to verify "
                                                   f"(HTTP {status} for {what})")
    if not data.get("answered"):
        return Verdict(False, f"a fresh {python}, in this shell's environment, gets no answer from {endpoint}: "
                              + " <- ".join(data.get("errors") or ["unknown error"]))
    if verify == "off" or (verify or "").startswith("unknown"):
        return Verdict(False, f"a fresh {python} reached {endpoint} (HTTP {status}) but with {_describe_verify(verify)}"
                              ": that proves nothing about trust; the environment still switches verification off")
    answer = (f"HTTP {status} for {what}" + ("" if status == 200 else " (that server does not serve it to us; the "
                                              "answer still came over the verified connection)"))
    return Verdict(True, f"a fresh {python}, in this shell's environment, reached {endpoint} over TLS with "
                         f"{_describe_verify(verify)}: {answer}. The certificate {endpoint} presents is trusted.")


def download(python: str, environ: Mapping[str, str], repo: str, filename: str = "config.json",
             drop: tuple[str, ...] = (), timeout: float = 60.0) -> Verdict:
    """Download ``repo/filename`` in a new ``python`` process (what the user's next download does)."""
    with tempfile.TemporaryDirectory(prefix="llmdoctor-verify-") as cache:
        done = subproc.run([python, str(SCRIPT), "download", repo, filename, cache], timeout=timeout,
                           env=_env(environ, drop))
        data = next(iter(probe_lines(done.stdout)), None)
    if not isinstance(data, dict):
        why = "timed out" if done.timed_out else (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(False, f"the download in {python} did not finish: {why}")
    endpoint = (data.get("env") or {}).get("HF_ENDPOINT", "https://huggingface.co")
    how = ("over plain HTTP (no TLS)" if data.get("scheme") == "http" else
           f"over TLS with {_describe_verify(data.get('verify'))}")
    if data.get("ok"):
        return Verdict(True, f"a fresh {python} downloaded {repo}/{filename} ({data.get('size')} bytes) from "
                             f"{endpoint} {how}")
    return Verdict(False, f"a fresh {python} still cannot download {repo}/{filename} from {endpoint}: "
                          + " <- ".join(data.get("errors") or ["unknown error"]))
