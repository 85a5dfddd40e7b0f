"""Verification shared by the network fixes: a real huggingface_hub download in a fresh
process of the target interpreter, with verification on, into a throwaway cache."""

from __future__ import annotations

import tempfile
from typing import Mapping

from llmdoctor import subproc
from llmdoctor.fixing import Verdict
from llmdoctor.probes.python_env import SCRIPT, probe_lines

#: set by the user's shell, these would win over the start-up hook a fix writes
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT")
ENDPOINT_VARS = ("HF_ENDPOINT", "HF_HUB_DISABLE_XET")


def download(python: str, environ: Mapping[str, str], repo: str, filename: str = "config.json",
             drop: tuple[str, ...] = CA_VARS, timeout: float = 60.0) -> Verdict:
    """Download ``repo/filename`` in a new ``python`` process whose environment lacks
    ``drop``, so that what the start-up hook sets is what counts."""
    env = {k: v for k, v in environ.items() if k not in drop}
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="llmdoctor-verify-") as cache:
        done = subproc.run([python, str(SCRIPT), "download", repo, filename, cache], timeout=timeout, env=env)
        data = next(iter(probe_lines(done.stdout)), None)
    if not isinstance(data, dict):
        why = "timed out" if done.timed_out else (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(False, f"the download in {python} did not finish: {why}")
    endpoint = (data.get("env") or {}).get("HF_ENDPOINT", "https://huggingface.co")
    if data.get("ok"):
        return Verdict(True, f"a fresh {python} downloaded {repo}/{filename} ({data.get('size')} bytes) from "
                             f"{endpoint} with certificate verification on")
    return Verdict(False, f"a fresh {python} still cannot download {repo}/{filename} from {endpoint}: "
                          + " <- ".join(data.get("errors") or ["unknown error"]))
