"""Network checks: the hub and the endpoints a download touches, the target's own
huggingface_hub call, TLS interception (with the issuing CA named by fingerprint),
captive portals, clock skew, proxies, and insecure leftovers of old workarounds."""

from __future__ import annotations

import datetime as dt

from packaging.specifiers import SpecifierSet

from llmdoctor.command import line, run, setvar, unset
from llmdoctor.compat import tls
from llmdoctor.data import rows, table
from llmdoctor.model import Status, check

from llmdoctor.checks.host import macos, windows
from llmdoctor.checks.python import pip_argv
from llmdoctor.checks.requirements import installed_versions

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def docs(name: str) -> str:
    return table("llmdoctor.checks", "network")["docs"][name]


def hub_client(target) -> dict | None:
    """The network.json row for the target's huggingface_hub, or None when it is absent."""
    found = installed_versions(target).get("huggingface-hub") if target else None
    if not found:
        return None
    for item in rows("llmdoctor.checks", "network"):
        if SpecifierSet(item["spec"]).contains(found[1], prereleases=True):
            return {**item, "version": str(found[1])}
    return None


def _timing(r) -> str:
    total = sum(p.seconds for p in r.phases)
    parts = ", ".join(f"{p.name} {p.seconds * 1000:.0f} ms" for p in r.phases)
    return f"{total:.2f} s ({parts})"


def _issuer(r) -> str:
    top = r.chain[-1] if r.chain else None
    if top is None:
        return "an unknown issuer (the chain could not be read)"
    if top.self_signed:
        return f"{top.subject} (SHA-256 {top.sha256})"
    return f"{top.issuer}, a CA the server does not send (export it from your browser or ask IT for its .pem)"


def _chain_detail(r) -> str:
    lines = [f"TLS: {r.tls_detail}"] if r.tls_detail else []
    for i, cert in enumerate(r.chain):
        lines.append(f"[{i}] subject: {cert.subject}\n    issuer: {cert.issuer}\n    valid: {cert.not_before} .. "
                     f"{cert.not_after}\n    SHA-256: {cert.sha256}")
    return "\n".join(lines)


def trust_fingerprint(r) -> str | None:
    """The fingerprint `fix --ssl --trust-fingerprint` would need: the root the server presents
    (None when it sends no self-signed root: then only --ca-file can name the CA)."""
    return r.chain[-1].sha256 if r.chain and r.chain[-1].self_signed else None


def describe_failure(r, facts, role_name: str) -> tuple:
    """(status, title, detail, fix, docs) for an endpoint result that is not ok (the fix: words,
    a command, or words and commands)."""
    where = f"{role_name} {r.url}"
    via = f" through proxy {r.proxy}" if r.proxy else ""
    phase = r.failed_phase
    if r.tls_error == "untrusted":
        fp = trust_fingerprint(r)
        fix = run("llmdoctor", "fix", "--ssl", *(("--trust-fingerprint", fp) if fp else ("--ca-file", "<your CA.pem>")))
        return (Status.FAIL, f"TLS to {where}{via} is intercepted: the certificate comes from {_issuer(r)}, which "
                f"this machine's trust store does not hold (SSLError: CERTIFICATE_VERIFY_FAILED)",
                _chain_detail(r) + "\nIf you recognise this CA as your company's proxy, trust it (never switch "
                "verification off); otherwise do not use this network.", fix, docs("ssl"))
    if r.tls_error in ("expired", "not-yet-valid"):
        leaf = r.chain[0] if r.chain else None
        local = r.local_date or "unknown"
        clock = ""
        if leaf and leaf.not_before and leaf.not_after and r.local_date:
            now = dt.datetime.fromisoformat(r.local_date)
            if now < dt.datetime.fromisoformat(leaf.not_before) or now > dt.datetime.fromisoformat(leaf.not_after):
                clock = f" This machine's clock says {local}: if that is wrong, fix the clock, not the certificate."
        what = "has expired" if r.tls_error == "expired" else "is not valid yet"
        span = f" (valid {leaf.not_before} .. {leaf.not_after})" if leaf else ""
        return (Status.FAIL, f"The certificate of {where} {what}{span}", _chain_detail(r) + clock,
                (*_fix_parts(_clock_fix(facts)), "   (if the clock is wrong; else the server's certificate must be "
                 "renewed)"), docs("ssl"))
    if r.tls_error == "hostname":
        names = r.chain[0].subject if r.chain else "another name"
        return (Status.FAIL, f"The certificate presented for {r.host} belongs to {names}: a captive portal or a "
                "misrouted proxy answers instead of the server", _chain_detail(r),
                "log in to the network's portal, or check HTTPS_PROXY / DNS", docs("captive"))
    if r.tls_error == "strict":
        return (Status.FAIL, f"Python 3.13+ rejects the CA that signs {where}: {r.tls_detail}", _chain_detail(r),
                "ask IT for a CA certificate that meets RFC 5280 (critical Basic Constraints, key identifiers); "
                "a bundle cannot fix this", docs("strict"))
    if r.tls_error == "protocol":
        return (Status.FAIL, f"TLS to {where}{via} fails with a protocol error: an https:// proxy URL for a plain "
                "HTTP proxy?", r.tls_detail or "", setvar("HTTPS_PROXY", "http://<proxy-host>:<port>"), docs("proxy"))
    if phase and phase.name == "url":
        var = "HF_ENDPOINT" if r.role == "hub" else "LLMDOCTOR_NET_TARGETS"
        return (Status.FAIL, f"{where} is {phase.error}: nothing can be downloaded from it", "",
                (setvar(var, "<a URL such as https://huggingface.co>"), "   (or: ", unset(var), ")"), docs("endpoint"))
    if phase and phase.name == "dns":
        return (Status.FAIL, f"{where}: {phase.error}", "", f"check this machine's DNS ({_dns_tools(facts, r.host)}) "
                "or set HTTPS_PROXY to your network's proxy: no command here can repair a name server", docs("ssl"))
    if phase and phase.name in ("tcp", "proxy"):
        return (Status.FAIL, f"{where}{via}: {phase.error}", "", "a firewall or proxy stands between this machine "
                "and the host: set HTTPS_PROXY to your network's proxy, or ask its administrator to allow the host",
                docs("ssl"))
    if phase and phase.name == "tls":
        return (Status.FAIL, f"TLS to {where} fails: {phase.error}", _chain_detail(r),
                "read the TLS error above: nothing on this machine can be changed to fix a server's TLS; "
                "try again later or through another network", docs("ssl"))
    if phase and phase.name == "http":
        return (Status.FAIL, f"{where} accepts the connection but gives no answer: {phase.error}", "",
                "the server or a proxy in between holds the connection: try again later, or another network or "
                "mirror", docs("ssl"))
    if r.hub_headers is False:
        ctype = r.headers.get("content-type", "?")
        return (Status.FAIL, f"{where} answers HTTP {r.status} ({ctype}) without the hub's headers (X-Repo-Commit, "
                "ETag): a captive portal or a proxy's page, not the hub", f"headers: {r.headers}",
                "open the URL in a browser and log in to the network's portal, or use a mirror", docs("captive"))
    return (Status.FAIL, f"{where}: HTTP {r.status}", f"headers: {r.headers}",
            "the server answered with an error: look at its status page, or try again later", docs("ssl"))


def _result(facts, role):
    n = facts.value("network")
    return [r for r in n.results if r.role == role] if n else []


@check("network.hub", category="network", needs=["network"], network=True)
def hub_check(facts, c):
    """The hub endpoint (HF_ENDPOINT or huggingface.co): DNS, TCP, TLS, and an answer that is the hub's."""
    n = facts.value("network")
    (r,) = _result(facts, "hub")
    name = "the hub" if n.endpoint_from == "default" else "HF_ENDPOINT"
    if r.ok:
        commit = r.headers.get("x-repo-commit", "")[:12]
        yield c.finding(Status.OK, f"{r.url} answers as the hub (HTTP {r.status}, commit {commit}) in {_timing(r)}"
                        + (f" through proxy {r.proxy}" if r.proxy else ""))
        return
    status, title, detail, fix, link = describe_failure(r, facts, name)
    trusted = _client_trusts(facts, r) if r.tls_error == "untrusted" else None
    if trusted:  # downloads work, verified: the machine's own store is what lacks the CA
        status = Status.WARN
        title = (f"TLS to {name} {r.url} is intercepted by {_issuer(r)}: huggingface_hub in the target trusts it "
                 f"({trusted}), this machine's own trust store (Python's ssl, curl, git) does not")
        detail = (_chain_detail(r) + "\nHub downloads verify this CA (see network.hub-client); tools that read the "
                  "system store or SSL_CERT_FILE fail against the same host. Trusting the CA everywhere removes the "
                  "difference.")
    mirror = next((m for m in _result(facts, "mirror") if m.ok), None)
    if mirror is not None and r.tls_error in (None, "other") and r.hub_headers is not False:
        fix = run("llmdoctor", "fix", "--mirror", mirror.url)  # the hub cannot be reached, a mirror can
    yield c.finding(status, title, id=f"network.hub-{(r.tls_error or (r.failed_phase.name if r.failed_phase else 'portal'))}",
                    detail=detail, fix=fix, docs=link)


def _client_trusts(facts, hub) -> str | None:
    """How the target's huggingface_hub trusted the hub's certificate where this machine's store
    did not (``REQUESTS_CA_BUNDLE=/etc/corp.pem``): its call to the same endpoint succeeded with
    verification on. None when it did not."""
    n, target = facts.value("network"), facts.value("target")
    call = n.hub_call if n else None
    if call is None or call.skip_kind or call.skipped or not call.ok:
        return None
    if (call.endpoint or n.endpoint or "").rstrip("/") != hub.url.rstrip("/"):
        return None
    v = verification(facts, call)
    if v.on is not True:
        return None
    env = target.net_env if target else {}
    var = next((k for k in (hub_client(target) or {}).get("ca_vars", ()) if env.get(k) and env[k] == v.how), None)
    return f"{var}={v.how}" if var else v.how


@check("network.mirror", category="network", needs=["network"], network=True)
def mirror_check(facts, c):
    """Mirrors (hf-mirror.com by default): whether one answers as the hub where the hub itself does not."""
    (hub,) = _result(facts, "hub")
    mirrors = _result(facts, "mirror")
    if not mirrors:
        yield c.finding(Status.SKIP, "No mirror probed (HF_ENDPOINT is the mirror)")
        return
    for m in mirrors:
        if m.ok and not hub.ok:
            yield c.finding(Status.WARN, f"The hub does not answer but the mirror {m.url} does ({_timing(m)}): "
                            "downloads can go through it", id="network.mirror-available",
                            fix=run("llmdoctor", "fix", "--mirror", m.url), docs=docs("mirror"))
        elif m.ok:
            yield c.finding(Status.INFO, f"Mirror {m.url} answers too ({_timing(m)})", id="network.mirror-ok")
        else:
            status, title, detail, _, link = describe_failure(m, facts, "mirror")
            yield c.finding(Status.INFO, title, id="network.mirror-down", detail=detail, docs=link)


@check("network.endpoints", category="network", needs=["network"], network=True)
def endpoints_check(facts, c):
    """The other hosts a setup needs: xet storage, the pip index, download.pytorch.org."""
    what = {"xet": "xet storage (large files)", "pip": "the pip index", "pytorch": "PyTorch's wheel index"}
    (hub,) = _result(facts, "hub")
    for role, label in what.items():
        if role == "xet" and not hub.ok:
            continue  # xet matters once the hub answers; network.hub says why it does not
        for r in _result(facts, role):
            if r.ok or (r.status is not None and r.status < 500):
                yield c.finding(Status.OK, f"{label}: {r.url} reachable in {_timing(r)}")
                continue
            status, title, detail, fix, link = describe_failure(r, facts, label)
            if role == "xet" and r.tls_error in (None, "other"):
                fix = (setvar("HF_HUB_DISABLE_XET", "1"), "   (downloads then use plain HTTP from the hub or mirror)")
                link = docs("xet")
            if role == "pip" and r.tls_error == "untrusted":
                fix = line(*_fix_parts(fix), "   (sets PIP_CERT too)")
            yield c.finding(Status.WARN, title, id=f"network.{role}-unreachable", detail=detail, fix=fix, docs=link)




def verification(facts, call) -> tls.Verification:
    """Whether the target's hub call verified certificates: as the stack itself said (recorded by
    the probe), else as the compatibility model reads its version and environment."""
    if call.verify:
        if call.verify == "off":
            return tls.Verification(False, "off (the stack itself says so for this environment)")
        if call.verify == "on":
            return tls.Verification(True, "the stack's default bundle")
        if call.verify.startswith("bundle:"):
            return tls.Verification(True, call.verify[len("bundle:"):])
        return tls.Verification(None, call.verify)
    target = facts.value("target")
    requests = installed_versions(target).get("requests") if target else None
    stack = hub_client(target)
    return tls.stack_verification(call.client or (stack or {}).get("client"), target.net_env if target else {},
                                  requests[1] if requests else None)


def _stack_key(call, target) -> str:
    client = call.client or (hub_client(target) or {}).get("client") or "?"
    return f"tls-verification:{'requests' if client == 'requests' else client}"


def hub_call_skipped(call) -> str:
    """Why the target's huggingface_hub call was not made, in words (a report from before
    HubCall.skip_kind: its sentence)."""
    if call is None:
        return "no call was made"
    if call.skip_kind == "timeout":
        within = f"within {call.seconds:g} s" if isinstance(call.seconds, (int, float)) else "in time"
        return f"the target's huggingface_hub call did not finish {within}"
    if call.skip_kind == "import-error":
        return f"huggingface_hub does not import: {call.skip_detail or 'no message'}"
    if call.skip_kind == "no-result":
        return f"the target's huggingface_hub call did not finish: {call.skip_detail or 'no output'}"
    return call.skipped or f"the target's huggingface_hub call was not made ({call.skip_kind})"


@check("network.hub-client", category="network", needs=["network", "target"], network=True)
def hub_client_check(facts, c):
    """One real call through the target's huggingface_hub: its HTTP stack, the CA variables that
    stack reads, whether it verified certificates, and the error it raises (TLS errors are often
    hidden under LocalEntryNotFoundError)."""
    n, target = facts.value("network"), facts.value("target")
    call = n.hub_call
    if call is None or call.skip_kind or call.skipped:
        yield c.finding(Status.SKIP, hub_call_skipped(call))
        return
    stack = hub_client(target)
    reads = f"; it reads {' / '.join(stack['ca_vars'])}, else {stack['default_trust']}" if stack else ""
    who = f"huggingface_hub {call.version} ({call.client or '?'})"
    endpoint = call.endpoint or n.endpoint  # a call recorded without its endpoint asked the probed one
    (hub,) = _result(facts, "hub")
    fp = trust_fingerprint(hub)
    ssl_fix = run("llmdoctor", "fix", "--ssl", *(("--trust-fingerprint", fp) if fp else ()))
    v = verification(facts, call)
    key = _stack_key(call, target)
    if call.ok:
        if v.on is False:
            how = ("only because certificate verification is off" if hub.tls_error == "untrusted"
                   else "with certificate verification off")
            yield c.finding(Status.FAIL, f"{who} in the target reaches {endpoint} {how}: {v.how}",
                            id="network.hub-client-unverified",
                            detail="Any machine between you and the hub can read and change what is downloaded. "
                                   + ("The hub's TLS is intercepted here (see network.hub): with verification on, "
                                      "this call fails." if hub.tls_error == "untrusted" else ""),
                            fix=(ssl_fix, "   (trusts the right CA and removes the verification-off setting)"),
                            docs=docs("curl_ca_bundle"), claims={key: "off"})
        elif v.on is None:
            yield c.finding(Status.INFO, f"{who} in the target reaches {endpoint}; whether it verified the "
                            f"certificate is unknown ({v.how}){reads}", claims={})
        else:
            yield c.finding(Status.OK, f"{who} in the target reaches {endpoint} with certificate verification "
                            f"on ({v.how}){reads}", claims={key: "on"})
        return
    text = "\n".join(call.errors)
    if not hub.ok and hub.tls_error != "untrusted" and endpoint and endpoint.rstrip("/") == hub.url:
        yield c.finding(Status.SKIP, f"{who} fails as network.hub says ({call.errors[0][:120] if call.errors else '?'})")
        return
    late = f" (abandoned after {call.seconds:.0f} s of retries)" if call.timed_out and call.seconds else ""
    kind = call.error_kind or tls.hub_error_kind(text)  # a report from before error_kind: read its errors
    if kind == "strict":
        yield c.finding(Status.FAIL, f"{who}: the target's Python (3.13+ strict X.509) rejects the CA that signs "
                        f"{endpoint}, even where the CA is trusted", id="network.hub-client-strict", detail=text,
                        fix="ask IT for a CA certificate that meets RFC 5280 (critical Basic Constraints, key "
                            "identifiers); a bundle cannot fix this", docs=docs("strict"))
    elif kind == "offline":
        yield c.finding(Status.WARN, f"{who} refuses every request: HF_HUB_OFFLINE is on", id="network.hub-offline",
                        detail=text, fix=unset("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"), docs=docs("offline"))
    elif kind == "tls":
        extra = (" The same host verifies against the OS store and certifi together: this stack trusts only "
                 "one of them." if hub.ok else "")
        yield c.finding(Status.FAIL, f"{who} fails TLS verification to {endpoint}{reads}{late}",
                        id="network.hub-client-tls", detail=text + extra, fix=ssl_fix, docs=docs("ssl"),
                        claims={key: "on"} if v.on else {})
    elif kind == "dns":
        mirror = next((m for m in _result(facts, "mirror") if m.ok), None)
        yield c.finding(Status.FAIL, f"{who} cannot resolve the host of {endpoint}: DNS fails{late}",
                        id="network.hub-client-dns", detail=text,
                        fix=(run("llmdoctor", "fix", "--mirror", mirror.url) if mirror else
                             f"check DNS ({_dns_tools(facts, call.endpoint)}) or set HTTPS_PROXY to your network's "
                             "proxy; no command here can repair a name server"), docs=docs("ssl"))
    elif kind == "not-hub":
        yield c.finding(Status.FAIL, f"{who}: {endpoint} does not answer like a hub (no X-Repo-Commit)",
                        id="network.hub-client-not-hub", detail=text,
                        fix="open the endpoint in a browser: a captive portal or a proxy's page answers instead of "
                            "the hub; log in there, or point HF_ENDPOINT at the hub or a mirror",
                        docs=docs("captive"))
    elif missing := [k for k in (stack or {}).get("ca_vars", ()) if k in target.net_missing_files]:
        # requests: "Could not find a suitable TLS CA certificate bundle, invalid path: ..."
        env = target.net_env
        yield c.finding(Status.FAIL, f"{who} cannot reach {endpoint}: {missing[0]}={env.get(missing[0], '?')}, the "
                        "bundle it reads, does not exist", id="network.hub-client-ca-file", detail=text,
                        fix=(unset(missing[0]), "   (or point it at your CA bundle; or: ", ssl_fix, ")"),
                        docs=docs("ssl"))
    else:
        last = call.errors[0] if call.errors else "unknown error"
        yield c.finding(Status.FAIL, f"{who} cannot reach {endpoint}: {last[:200]}{late}",
                        id="network.hub-client-failed", detail=text + ("\nRetries logged:\n" + "\n".join(call.retries)
                                                                      if call.retries else ""),
                        fix="read the error above (detail); network.hub probes the same endpoint step by step "
                            "(DNS, TCP, TLS, HTTP) and names the failing one", docs=docs("ssl"))


def _fix_parts(fix) -> tuple:
    return fix if isinstance(fix, tuple) else (fix,)


def _dns_tools(facts, host: str | None) -> str:
    """Where this OS shows the name servers it asks, and how to ask them by hand."""
    host = (host or "huggingface.co").split("://")[-1].split("/")[0].rsplit(":", 1)[0] or "huggingface.co"
    if windows(facts):
        return f"`ipconfig /all`, `nslookup {host}`"
    if macos(facts):
        return f"`scutil --dns`, `dscacheutil -q host -a name {host}`"
    return "`resolvectl status`, /etc/resolv.conf"


def _clock_fix(facts):
    """Set the clock from the network, as this OS does it."""
    if windows(facts):
        return run("w32tm", "/resync"), "   (in a terminal run as administrator; or Settings > Time > Sync now)"
    if macos(facts):
        return run("sudo", "sntp", "-sS", "time.apple.com")
    return run("sudo", "timedatectl", "set-ntp", "true")


@check("network.clock", category="network", needs=["network"], network=True)
def clock_check(facts, c):
    """This machine's clock against the Date servers send (a wrong clock breaks TLS)."""
    limit = table("llmdoctor.checks", "network")["clock_skew_s"]
    for r in facts.value("network").results:
        if r.server_date and r.local_date:
            skew = (dt.datetime.fromisoformat(r.local_date) - dt.datetime.fromisoformat(r.server_date)).total_seconds()
            if abs(skew) > limit:
                yield c.finding(Status.WARN, f"This machine's clock is {abs(skew) / 60:.0f} min "
                                f"{'ahead of' if skew > 0 else 'behind'} {r.host}'s: certificates look expired or "
                                "not yet valid", id="network.clock-skew", fix=_clock_fix(facts),
                                docs=docs("ssl"))
            else:
                yield c.finding(Status.OK, f"Clock agrees with {r.host} within {abs(skew):.0f} s")
            return
    yield c.finding(Status.SKIP, "No server answered with a Date header")


def _empty(env, name) -> bool:
    return name in env and env[name].strip() in ("", "''", '""')


@check("network.insecure", category="network", needs=["target", "netconfig"])
def insecure_check(facts, c):
    """Leftovers that switch TLS verification off or block the hub: empty CA variables, pip
    trusted-host, conda ssl_verify false, HF_HUB_OFFLINE, CA variables naming missing files."""
    target, cfg = facts.value("target"), facts.value("netconfig")
    env = target.net_env
    hits = 0
    requests = installed_versions(target).get("requests")
    ver = tls.requests_verification({k: ("" if _empty(env, k) else v) for k, v in env.items()},
                                    requests[1] if requests else None)
    for name in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        if not _empty(env, name):
            continue
        hits += 1
        detail = ("An empty bundle variable disabled certificate checks in requests before 2.28 and does "
                  "nothing in huggingface_hub 1.x and later.")
        if requests is not None and ver.on is False and ver.variable == name:
            yield c.finding(Status.FAIL, f"{name} is set to an empty string, and requests {requests[1]} (< 2.28) "
                            "takes that as 'verify nothing': TLS verification is off for requests",
                            id="network.empty-ca-bundle", detail=detail,
                            fix=(run("llmdoctor", "fix", "--ssl"), "   (removes it and trusts the right CA instead)"),
                            docs=docs("curl_ca_bundle"), claims={"tls-verification:requests": "off"})
        elif requests is not None and ver.on and ver.variable == "REQUESTS_CA_BUNDLE":
            yield c.finding(Status.INFO, f"{name} is set to an empty string but does nothing here: requests reads "
                            f"REQUESTS_CA_BUNDLE first, and it names a bundle ({env['REQUESTS_CA_BUNDLE']}): "
                            "verification is on", id="network.empty-ca-bundle", detail=detail,
                            fix=(unset(name), "   (a leftover of the old 'verification off' trick)"),
                            docs=docs("curl_ca_bundle"), claims={"tls-verification:requests": "on"})
        elif requests is not None and ver.on and ver.variable != name and requests[1] < tls.REQUESTS_FIX:
            yield c.finding(Status.INFO, f"{name} is set to an empty string but does nothing here: requests "
                            f"{requests[1]} reads past an empty {name} to {ver.how}: verification is on",
                            id="network.empty-ca-bundle", detail=detail,
                            fix=(unset(name), "   (a leftover of the old 'verification off' trick)"),
                            docs=docs("curl_ca_bundle"), claims={"tls-verification:requests": "on"})
        else:
            why = (f"requests {requests[1]} >= 2.28 ignores it" if requests else "requests is not installed")
            yield c.finding(Status.WARN, f"{name} is set to an empty string: the old 'verification off' trick "
                            f"({why}; it only hides the real problem)", id="network.empty-ca-bundle", detail=detail,
                            fix=(run("llmdoctor", "fix", "--ssl"), "   (removes it and trusts the right CA instead)"),
                            docs=docs("curl_ca_bundle"))
    for name in target.net_missing_files:
        value = env.get(name, "")
        if value:
            hits += 1
            yield c.finding(Status.FAIL, f"{name}={value} names a file that does not exist: every TLS connection "
                            "of the stacks that read it fails", id="network.ca-var-missing-file",
                            fix=(unset(name), "   (or: ", run("llmdoctor", "fix", "--ssl"), ")"), docs=docs("ssl"))
    for s in cfg.pip:
        if s.trusted_host:
            hits += 1
            yield c.finding(Status.WARN, f"pip trusts {s.trusted_host} without certificate checks ({s.path})",
                            id="network.pip-trusted-host", detail="--trusted-host accepts any certificate for that "
                            "host, as insecure as switching verification off.",
                            fix=((run(*pip_argv(facts), "config", "unset", "global.trusted-host"), "   (then: ",
                                  run("llmdoctor", "fix", "--ssl"), ")") if s.path != "environment"
                                 else unset("PIP_TRUSTED_HOST")),
                            docs=docs("pip_trusted_host"))
    for s in cfg.conda:
        if (s.ssl_verify or "").lower() in ("false", "no", "0"):
            hits += 1
            yield c.finding(Status.WARN, f"conda's ssl_verify is false in {s.path}", id="network.conda-ssl-verify",
                            fix=run("conda", "config", "--set", "ssl_verify", "truststore"), docs=docs("conda_ssl_verify"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if env.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            hits += 1
            yield c.finding(Status.WARN, f"{name}={env[name]}: no download is even attempted (left on by accident?)",
                            id="network.offline-mode", fix=unset(name), docs=docs("offline"))
    stack = hub_client(target)
    set_vars = [v for v in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE") if env.get(v, "").strip() and not _empty(env, v)]
    if stack and set_vars and not set(set_vars) & set(stack["ca_vars"]):
        hits += 1
        yield c.finding(Status.INFO, f"{' and '.join(set_vars)} is set, but huggingface_hub {stack['version']} "
                        f"({stack['client']}) reads {' / '.join(stack['ca_vars'])}: that setting does not reach "
                        "hub downloads", id="network.ca-var-ignored", fix=run("llmdoctor", "fix", "--ssl"),
                        docs=stack["source"])
    if not hits:
        yield c.finding(Status.OK, "No insecure TLS leftovers (empty CA variables, trusted-host, ssl_verify off)")


@check("network.proxy", category="network", needs=["target"])
def proxy_check(facts, c):
    """Proxy variables as the target's clients read them: an https:// URL for a plain HTTP proxy."""
    env = facts.value("target").net_env
    found = {k: v for k, v in env.items() if k in PROXY_VARS and v}
    if not found:
        yield c.finding(Status.SKIP, "No proxy variables set")
        return
    for name, value in found.items():
        if value.lower().startswith("https://"):
            yield c.finding(Status.WARN, f"{name}={value}: an https:// proxy URL means TLS to the proxy itself; most "
                            "corporate proxies speak plain HTTP there ('WRONG_VERSION_NUMBER')",
                            id="network.proxy-https-url",
                            fix=setvar(name, "http://" + value[len("https://"):].replace("***@", "<user>:<password>@")),
                            docs=docs("proxy"))
    plain = ", ".join(f"{k}={v}" for k, v in found.items())
    yield c.finding(Status.INFO, f"Proxy in use: {plain}", id="network.proxy")
