"""Network facts: the endpoints a download touches (hub, mirror, xet, pip index, PyTorch
index) probed concurrently through :mod:`llmdoctor.net`, plus one real
``huggingface_hub`` call in the target interpreter; and, without any network, the pip
and conda settings that decide TLS verification.

The whole network phase is bounded: endpoints share one deadline, the target's call
has its own, and both run at once."""

from __future__ import annotations

import configparser
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

from llmdoctor import net
from llmdoctor.compat.tls import hub_error_kind
from llmdoctor.paths import home as home_dir, read_file
from llmdoctor.platforms.pipconfig import pip_config_files
from llmdoctor.probes.base import ProbeContext
from llmdoctor.probes.python_env import probe_lines, run_script

DEFAULT_HUB = "https://huggingface.co"
MIRROR = "https://hf-mirror.com"
XET_HOSTS = ("https://cas-server.xethub.hf.co", "https://transfer.xethub.hf.co")
PIP_INDEX = "https://pypi.org/simple"
PIP_CONFIG_LIMIT = 1 << 20  #: a pip.conf / pip.ini is a few lines
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
PROBE_REPO = "openai-community/gpt2"  #: public, ungated, tiny config.json
BUDGET_S = 9.0


@dataclass(frozen=True)
class HubCall:
    """One HEAD through the target's own huggingface_hub."""

    ok: bool
    version: str | None = None  #: huggingface_hub's version in the target
    client: str | None = None  #: "requests" | "httpx" | "httpx2"
    endpoint: str | None = None
    commit: str | None = None
    errors: tuple[str, ...] = ()  #: the exception, then its causes
    seconds: float | None = None
    #: why no call was made: "no-result" (the target printed none; skip_detail: its last stderr line),
    #: "timeout" (seconds: the deadline it missed), "import-error" (skip_detail: the ImportError's text)
    skip_kind: str | None = None
    skip_detail: str | None = None
    skipped: str | None = None  #: reports of llmdoctor before skip: their sentence (read only)
    #: certificate verification of that call, asked of the stack itself: "on", "off",
    #: "bundle:<path>", "unknown..." (None: a report made before llmdoctor recorded it)
    verify: str | None = None
    timed_out: bool = False  #: abandoned at its deadline (errors then hold what its retries logged)
    #: what its errors say went wrong (compat.tls.hub_error_kind): "strict" | "offline" | "tls" | "dns" |
    #: "not-hub" | "other"; None when it worked, or in a report made before llmdoctor recorded it
    error_kind: str | None = None
    retries: tuple[str, ...] = ()  #: what huggingface_hub logged while retrying


@dataclass(frozen=True)
class NetworkFacts:
    endpoint: str  #: the hub endpoint in effect
    endpoint_from: str  #: "HF_ENDPOINT" or "default"
    repo: str  #: the repo whose config.json the probes ask for
    results: tuple[net.EndpointResult, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  #: as the target sees it
    hub_call: HubCall | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class PipSetting:
    path: str  #: a config file, or "environment"
    index_url: str | None = None
    trusted_host: str | None = None
    cert: str | None = None


@dataclass(frozen=True)
class CondaSetting:
    path: str
    ssl_verify: str | None = None


@dataclass(frozen=True)
class NetConfigFacts:
    pip: tuple[PipSetting, ...] = ()
    conda: tuple[CondaSetting, ...] = ()


def _endpoints(env: Mapping[str, str], hub: str, repo: str, pip_index: str) -> list[net.Endpoint]:
    path = f"/{repo}/resolve/main/config.json"
    out = [net.Endpoint("hub", hub, path, expect_hub=True)]
    custom = env.get("LLMDOCTOR_NET_TARGETS")
    if custom is not None:  # "role=url,role=url": replaces mirror / xet / pip / pytorch (empty: none)
        for item in filter(None, (i.strip() for i in custom.split(","))):
            role, _, url = item.partition("=")
            if role == "hub" or not url:  # the hub is HF_ENDPOINT's; a malformed item names nothing
                continue
            hubby = role == "mirror"
            out.append(net.Endpoint(role, url.rstrip("/"), path if hubby else "/", expect_hub=hubby))
        return out
    if hub.rstrip("/") != MIRROR:
        out.append(net.Endpoint("mirror", MIRROR, path, expect_hub=True))
    if hub.rstrip("/") == DEFAULT_HUB and not env.get("HF_HUB_DISABLE_XET"):
        out += [net.Endpoint("xet", h, "/") for h in XET_HOSTS]
    parts = pip_index.rstrip("/").split("/", 3)
    out.append(net.Endpoint("pip", "/".join(parts[:3]), "/" + (parts[3] + "/" if len(parts) > 3 else "") + "pip/"))
    out.append(net.Endpoint("pytorch", PYTORCH_INDEX.rstrip("/").rsplit("/", 1)[0], "/whl/"))
    return out


def _hub_call(ctx: ProbeContext, repo: str, timeout: float, box: dict) -> None:
    done = run_script(ctx, ["hub", repo, "config.json", str(max(1.0, timeout - 2))], timeout)
    data = next(iter(probe_lines(done.stdout)), None)
    if not isinstance(data, dict):
        if done.timed_out:
            box["call"] = HubCall(ok=False, skip_kind="timeout", seconds=round(timeout, 1))
        else:
            tail = done.stderr.strip().splitlines()
            box["call"] = HubCall(ok=False, skip_kind="no-result", skip_detail=tail[-1] if tail else None)
        return
    box["env"] = data.get("env") or {}
    if data.get("import_error"):
        box["call"] = HubCall(ok=False, skip_kind="import-error", skip_detail=str(data["import_error"]))
        return
    errors = tuple(str(e) for e in data.get("errors") or ())
    ok = bool(data.get("ok"))
    box["call"] = HubCall(ok=ok, version=data.get("version"), client=data.get("client"),
                          endpoint=data.get("endpoint"), commit=data.get("commit"), errors=errors,
                          error_kind=None if ok else (hub_error_kind("\n".join(errors)) or "other"),
                          seconds=data.get("seconds"),
                          verify=data.get("verify") if isinstance(data.get("verify"), str) else None,
                          timed_out=bool(data.get("timed_out")),
                          retries=tuple(str(e) for e in data.get("retries") or ()))


def target_net_env(ctx: ProbeContext) -> tuple[dict[str, str], dict[str, str]]:
    """(the environment as the target interpreter sees it for networking, what it added or changed:
    a start-up hook's HF_ENDPOINT or CA bundle)."""
    done = run_script(ctx, ["netenv"], 5.0)
    seen = next(iter(probe_lines(done.stdout)), None)
    seen = {str(k): str(v) for k, v in seen.items()} if isinstance(seen, dict) else {}
    return {**ctx.environ, **seen}, seen


def probe_network(ctx: ProbeContext) -> NetworkFacts:
    started = time.monotonic()
    env, seen = target_net_env(ctx)
    hub = (env.get("HF_ENDPOINT") or DEFAULT_HUB).rstrip("/")
    repo = env.get("LLMDOCTOR_PROBE_REPO") or PROBE_REPO
    pip_index = env.get("PIP_INDEX_URL") or next((s.index_url for s in reversed(read_pip_config(ctx).pip)
                                                  if s.index_url), None) or PIP_INDEX  # the last file wins
    box: dict = {}
    left = BUDGET_S - (time.monotonic() - started)
    caller = threading.Thread(target=_hub_call, args=(ctx, repo, left, box), daemon=True)
    caller.start()
    results = net.probe_all(_endpoints(env, hub, repo, pip_index), env, budget=left - 0.5)
    caller.join(max(0.0, BUDGET_S - (time.monotonic() - started)))
    call = box.get("call") or HubCall(ok=False, skip_kind="timeout", seconds=round(time.monotonic() - started, 1))
    return NetworkFacts(endpoint=hub, endpoint_from="HF_ENDPOINT" if env.get("HF_ENDPOINT") else "default",
                        repo=repo, results=results, env=dict(seen) if isinstance(seen, dict) else {},
                        hub_call=call, seconds=round(time.monotonic() - started, 3))


def _pip_files(environ: Mapping[str, str], prefix: str | None) -> list[str]:
    """pip's configuration files on this OS, lowest precedence first (pip's own order)."""
    return [path for _, path in pip_config_files(sys.platform, environ, prefix, os.path.exists, os.path.isdir)]


def read_pip_config(ctx: ProbeContext) -> NetConfigFacts:
    pip = []
    for path in _pip_files(ctx.environ, ctx.target.prefix):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:  # PIP_CONFIG_FILE may name a named pipe or /dev/zero: read_file reads neither
            parser.read_string(read_file(path, PIP_CONFIG_LIMIT).decode("utf-8"), path)
        except FileNotFoundError:
            continue
        except (configparser.Error, OSError, UnicodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            pip.append(PipSetting(path, trusted_host=None, index_url=None, cert=f"unreadable: {why}"))
            continue
        values = {}
        for section in ("global", "install", "download"):
            if parser.has_section(section):
                for key in ("index-url", "trusted-host", "cert"):
                    if parser.has_option(section, key):
                        values.setdefault(key, parser.get(section, key).strip())
        if values:
            pip.append(PipSetting(path, values.get("index-url"), values.get("trusted-host"), values.get("cert")))
    env_pip = {k: ctx.environ[k] for k in ("PIP_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CERT") if ctx.environ.get(k)}
    if env_pip:
        pip.append(PipSetting("environment", env_pip.get("PIP_INDEX_URL"), env_pip.get("PIP_TRUSTED_HOST"),
                              env_pip.get("PIP_CERT")))
    return NetConfigFacts(pip=tuple(pip), conda=tuple(_condarc(ctx)))


def _condarc(ctx: ProbeContext) -> list[CondaSetting]:
    import re

    home = home_dir(ctx.environ)
    files = ["/etc/conda/.condarc", "/etc/conda/condarc", os.path.join(home, ".condarc"),
             os.path.join(home, ".config", "conda", ".condarc")]
    if ctx.target.prefix:
        files.append(os.path.join(ctx.target.prefix, ".condarc"))
    if ctx.environ.get("CONDARC"):
        files.append(ctx.environ["CONDARC"])
    out = []
    for path in files:
        try:
            text = read_file(path, 1 << 20, cut=True).decode("utf-8", "replace")
        except OSError:
            continue
        m = re.search(r"^ssl_verify\s*:\s*(\S+)", text, re.M)
        out.append(CondaSetting(path, m.group(1).strip("'\"") if m else None))
    return out


def probe_netconfig(ctx: ProbeContext) -> NetConfigFacts:
    return read_pip_config(ctx)
