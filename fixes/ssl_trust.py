"""`llmdoctor fix --ssl`: make the target environment trust the CA that signs its
connections (a TLS-intercepting proxy's), never by switching verification off.

Two routes, least invasive first:

* the issuing CA is already in the operating system's store, only the environment's
  HTTP stack does not read that store (requests and httpx use certifi): install
  truststore there and inject it at start-up;
* otherwise a combined bundle, certifi's roots plus the CA (``--ca-file FILE``, or the
  chain's root captured live, which needs ``--trust-fingerprint SHA256``), plus what a CA
  variable the machine presets already names, in the environment's own site-packages
  (``llmdoctor-ca-bundle.pem``), named by SSL_CERT_FILE (httpx, hf_xet), REQUESTS_CA_BUNDLE
  (requests) and, where pip is affected too, PIP_CERT.

Either way the variables reach every Python process of the environment through the
start-up hook in its site-packages (Jupyter kernels started from a desktop launcher
included), and the empty CURL_CA_BUNDLE / REQUESTS_CA_BUNDLE hack is removed from the
shell start-up files where it is found. It is verified in a fresh process in the user's own
environment: any HTTP answer over a verified connection proves the trust.
"""

from __future__ import annotations

import json
import os
import re
import ssl

from llmdoctor.fix import envhook
from llmdoctor import net
from llmdoctor.fix.model import FileChange, Fix, FixContext, FixError, Param, Plan, Verdict, writable_target
from llmdoctor.fix.journal import read_bytes
from llmdoctor.paths import home as home_dir

from llmdoctor.fixes import hubcall

BUNDLE_NAME = "llmdoctor-ca-bundle.pem"
ADDED = "# llmdoctor fix --ssl added: "
HACK = re.compile(r"^\s*(export\s+)?(CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE)=(''|\"\")?\s*(#.*)?$")
RC_FILES = (".bashrc", ".bash_profile", ".profile", ".zshrc", ".zshenv")


def _norm_fp(value: str) -> str:
    return re.sub(r"[^0-9A-Fa-f]", "", value or "").upper()


def pem_blocks(text: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)


def ca_from_file(path: str) -> list[tuple[net.Cert, str]]:
    try:
        with open(os.path.expanduser(path), encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise FixError(f"cannot read --ca-file {path}: {exc.strerror or exc}") from None
    out = []
    for block in pem_blocks(text):
        try:
            out.append((net.describe_cert(ssl.PEM_cert_to_DER_cert(block)), block))
        except Exception as exc:  # a malformed block is the user's file, not our crash
            raise FixError(f"--ca-file {path} holds a certificate that cannot be read: {exc}") from None
    if not out:
        raise FixError(f"--ca-file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); convert a DER "
                       "file with: openssl x509 -inform der -in CA.cer -out CA.pem")
    return out


def failing_results(facts):
    n = facts.value("network")
    return [r for r in (n.results if n else ()) if r.tls_error == "untrusted"]


def ca_from_wire(facts, fingerprint: str | None) -> list[tuple[net.Cert, str]]:
    failing = failing_results(facts)
    if not failing:
        raise FixError("no endpoint failed TLS verification with an untrusted issuer, so there is no CA to capture; "
                       "pass the CA with --ca-file FILE")
    r = failing[0]
    if not r.chain:
        raise FixError(f"TLS to {r.url} fails but its certificate chain could not be read; pass --ca-file FILE")
    top = r.chain[-1]
    if not top.self_signed:
        raise FixError(f"{r.url} does not send the root CA (its chain ends at a certificate issued by {top.issuer}); "
                       "export that CA from your browser or ask IT for it, then: llmdoctor fix --ssl --ca-file CA.pem")
    if not fingerprint:
        raise FixError(f"{r.url} presents a chain that ends at\n  {top.subject}\n  SHA-256 {top.sha256}\n"
                       "Check this fingerprint with your IT department (or your browser's view of the certificate), "
                       f"then run:\n  llmdoctor fix --ssl --trust-fingerprint {top.sha256}")
    if _norm_fp(fingerprint) != _norm_fp(top.sha256):
        raise FixError(f"--trust-fingerprint {fingerprint} does not match the certificate {r.url} presents "
                       f"(SHA-256 {top.sha256}); nothing was trusted")
    return [(top, top.pem)]


def base_roots() -> tuple[str, str]:
    """(PEM text, where from): certifi's Mozilla roots, else the OS bundle."""
    try:
        import certifi

        with open(certifi.where(), encoding="ascii", errors="replace") as fh:
            return fh.read(), f"certifi {getattr(certifi, '__version__', '')}".strip()
    except (ImportError, OSError):
        for path in net.os_trust_store_files():
            with open(path, encoding="ascii", errors="replace") as fh:
                return fh.read(), path
    raise FixError("neither certifi nor an OS CA bundle is readable here to build a bundle from")


def render_bundle(previous: bytes | None, added: list[tuple[net.Cert, str]],
                  presets: dict[str, tuple[str, int]] | None = None) -> bytes:
    roots, origin = base_roots()
    seen = set(pem_blocks(roots))
    for name, (path, _) in (presets or {}).items():  # what the preset variables named stays trusted
        data = read_bytes(os.path.expanduser(path)) or b""
        fresh = [b for b in pem_blocks(data.decode("ascii", errors="replace")) if b not in seen]
        seen.update(fresh)
        if fresh:
            roots += f"\n# from {name}={path}\n" + "\n".join(fresh) + "\n"
    extra: dict[str, tuple[str, str]] = {}
    text = (previous or b"").decode("ascii", errors="replace")
    for m in re.finditer(re.escape(ADDED) + r"(.+?) SHA-256 ([0-9A-F:]+)\n(-----BEGIN CERTIFICATE-----.+?"
                         r"-----END CERTIFICATE-----)", text, re.S):
        extra[_norm_fp(m.group(2))] = (f"{m.group(1)} SHA-256 {m.group(2)}", m.group(3))
    for cert, pem in added:
        extra[_norm_fp(cert.sha256)] = (f"{cert.subject} SHA-256 {cert.sha256}", pem.strip())
    lines = [f"# CA bundle written by `llmdoctor fix --ssl`: the roots of {origin} plus the CAs below.",
             "# Undo with `llmdoctor fix --undo`; rebuild after a certifi upgrade with `llmdoctor fix --ssl`.", ""]
    for label, pem in extra.values():
        lines += [ADDED + label, pem, ""]
    return ("\n".join(lines) + "\n" + roots.strip() + "\n").encode("ascii", errors="replace")


def hack_changes(ctx: FixContext) -> tuple[list[FileChange], list[str]]:
    """Shell start-up lines and conda env vars that set an empty CA bundle variable."""
    home = home_dir(ctx.environ)
    changes, found = [], []
    for name in RC_FILES:
        path = os.path.join(home, name)
        data = read_bytes(path)
        if not data:
            continue
        lines = data.decode("utf-8", errors="surrogateescape").splitlines(keepends=True)
        new = [("# disabled by llmdoctor fix --ssl (it switched TLS verification off): " + line.lstrip())
               if HACK.match(line.rstrip("\r\n")) else line for line in lines]
        if new != lines:
            found += [f"{path}: {line.strip()}" for line in lines if HACK.match(line.rstrip("\r\n"))]
            changes.append(FileChange(path, "".join(new).encode("utf-8", errors="surrogateescape"),
                                      f"Remove the verification-off hack from {path}"))
    state = os.path.join(ctx.target.prefix or "", "conda-meta", "state")
    data = read_bytes(state) if ctx.target.prefix else None
    if data:
        try:
            doc = json.loads(data)
            env_vars = doc.get("env_vars") or {}
            empty = [k for k in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE") if k in env_vars and not env_vars[k]]
            if empty:
                for k in empty:
                    del env_vars[k]
                found += [f"{state}: {k}=''" for k in empty]
                changes.append(FileChange(state, (json.dumps(doc, indent=2) + "\n").encode(),
                                          "Remove the empty CA variables from the conda environment's env vars"))
        except (ValueError, AttributeError):
            pass
    return changes, found


def plan(ctx: FixContext) -> Plan:
    target, facts = writable_target(ctx), ctx.facts
    ca_file, fingerprint = ctx.options.get("ca_file"), ctx.options.get("trust_fingerprint")
    n = facts.value("network")
    hub = next((r for r in (n.results if n else ()) if r.role == "hub"), None)
    call = n.hub_call if n else None
    call_tls = bool(call and not call.ok and any("CERTIFICATE_VERIFY_FAILED" in e for e in call.errors))
    hook = envhook.hook_path(target.purelib)
    current = envhook.parse(read_bytes(hook))
    notes, changes, commands, undo = [], [], [], []
    hack, found = hack_changes(ctx)
    if found:
        notes.append("Found the 'verification off' hack; applying this plan comments it out:\n  " + "\n  ".join(found))
    changes += hack
    if not ca_file and hub is not None and hub.ok and call_tls:
        # The host verifies against the OS store plus certifi: the CA is in the OS store and
        # only this environment's stack (certifi-only) misses it.
        if tuple(target.version_info[:2]) < (3, 10):
            raise FixError("the CA is in the operating system's store, but truststore needs Python 3.10+ and the "
                           f"target is {target.python_version}; pass the CA with --ca-file FILE instead")
        title = f"Make {target.prefix} use the operating system's trust store (truststore)"
        body = ("try:\n"
                "    import importlib.util\n"
                "    if not os.environ.get('LLMDOCTOR_NO_TRUSTSTORE') and importlib.util.find_spec('truststore'):\n"
                "        __import__('truststore').inject_into_ssl()\n"
                "except Exception:\n"
                "    pass\n")
        code = f"import os; exec({body!r})\n"  # one line that never raises at start-up
        changes.append(FileChange(os.path.join(target.purelib, "llmdoctor-truststore.pth"),
                                  ("# Written by `llmdoctor fix --ssl`: verify TLS with the OS trust store.\n"
                                   + code).encode("ascii"), f"Start-up hook in {target.purelib}",
                                  mode=envhook.MODE))
        have = {(d.name or "").lower() for d in target.distributions}
        if "truststore" not in have:
            commands.append((target.executable, "-m", "pip", "install", "truststore>=0.10"))
            undo.append((target.executable, "-m", "pip", "uninstall", "-y", "truststore"))
        notes.append("Why truststore: the CA your connections need is in this machine's trust store; requests and "
                     "httpx read only certifi's bundle, truststore makes them ask the OS instead.")
        return Plan("ssl", title, changes=tuple(changes), commands=tuple(commands), undo_commands=tuple(undo),
                    notes=tuple(notes))
    added = ca_from_file(ca_file) if ca_file else ca_from_wire(facts, fingerprint)
    # the bundle lives inside the environment it serves: readable by every user of a shared
    # environment, and gone only with it (a removed ~/.config cannot break TLS)
    bundle = os.path.join(target.purelib, BUNDLE_NAME)
    presets, replace = preset_bundles(ctx, bundle)
    previous = read_bytes(bundle) or _our_bundle(current.get("SSL_CERT_FILE"))
    content = render_bundle(previous, added, presets)
    if read_bytes(bundle) != content:
        changes.append(FileChange(bundle, content, "CA bundle (certifi's roots plus the CA to trust)",
                                  mode=envhook.MODE))
    wanted = {**current, "SSL_CERT_FILE": bundle, "REQUESTS_CA_BUNDLE": bundle}
    env = target.net_env
    if any(k in env and not env[k].strip(" '\"") for k in ("CURL_CA_BUNDLE",)) or current.get("CURL_CA_BUNDLE"):
        wanted["CURL_CA_BUNDLE"] = bundle  # the hook fills an empty value with the real bundle
    if any(r.role == "pip" for r in failing_results(facts)) or current.get("PIP_CERT"):
        wanted["PIP_CERT"] = bundle
    files = [k for k, v in wanted.items() if v == bundle]
    new_hook = envhook.merge(read_bytes(hook), wanted, replace=replace, files=files)
    if new_hook != read_bytes(hook):
        changes.append(FileChange(hook, new_hook, f"Start-up hook in {target.purelib}", mode=envhook.MODE))
    for cert, _ in added:
        notes.append(f"Trusting: {cert.subject}\n  SHA-256 {cert.sha256}")
    for name, (value, count) in presets.items():
        notes.append(f"{name}={value} is set in this environment (it would win over the hook): the new bundle also "
                     f"holds its {count} certificate(s), and the hook replaces exactly that value with the bundle "
                     "(another value you set later still wins).")
    notes.append("Why a start-up hook in site-packages: Python runs it in every process of this environment, so "
                 "Jupyter kernels started from a desktop launcher get the bundle too; a line in ~/.bashrc reaches "
                 "only shells. It sets nothing once the bundle file is gone.")
    names = ", ".join(c.subject for c, _ in added)
    title = f"Trust {names} in {target.prefix} (bundle {bundle})"
    if not changes:
        return Plan("ssl", title, notes=tuple(notes), nothing_to_do="The bundle and the hook already trust it.")
    return Plan("ssl", title, changes=tuple(changes), notes=tuple(notes))


def _our_bundle(path: str | None) -> bytes | None:
    """A bundle an earlier `fix --ssl` wrote elsewhere (~/.config/llmdoctor): its added CAs carry over."""
    data = read_bytes(path) if path else None
    return data if data and b"llmdoctor fix --ssl" in data[:200] else None


def preset_bundles(ctx: FixContext, bundle: str) -> tuple[dict[str, tuple[str, int]], dict[str, list[str]]]:
    """CA variables this environment already sets to another bundle, which would win over the
    hook: {name: (value, certificates in it)} and the values the hook may replace."""
    presets, replace = {}, {}
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = (ctx.environ.get(name) or "").strip()
        if not value or value == bundle:
            continue
        data = read_bytes(os.path.expanduser(value)) if os.path.isfile(os.path.expanduser(value)) else None
        presets[name] = (value, len(pem_blocks((data or b"").decode("ascii", errors="replace"))))
        replace[name] = [ctx.environ[name]]
    return presets, replace


def verify(ctx: FixContext, plan: Plan) -> Verdict:
    """Any answer over verified TLS, in a fresh process of the target in this shell's environment."""
    return hubcall.reach(ctx.target.python, ctx.environ, hubcall.probe_repo(ctx.environ))


FIX = Fix(
    id="ssl",
    description="Trust the CA that signs this network's TLS (proxy / interception) for the target env, "
                "verification kept on",
    plan=plan,
    verify=verify,
    needs=("target", "network"),
    params=(Param("ca-file", "PEM file with the CA to trust.", kind="path", metavar="FILE"),
            Param("trust-fingerprint", "Trust the CA the failing endpoint presents, if its SHA-256 fingerprint is "
                  "this.", metavar="SHA256")),
)
