"""The one module that talks to the network.

``probe_endpoint`` walks one URL through DNS, TCP (or an HTTP CONNECT tunnel through
the proxy the environment names), the TLS handshake with verification on, and an HTTP
HEAD, timing each phase. When verification fails it connects once more *without*
verifying, only to read the chain the server presents, so that the report can name
the issuing CA and its fingerprint; nothing is ever sent over that connection.
Every socket operation has a timeout, so a server that accepts and never answers
costs at most the phase budget.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import unquote, urlsplit

from llmdoctor.compat.tls import STRICT_MARKERS
from llmdoctor.report.redact import mask_userinfo

#: OpenSSL verify codes (x509_vfy.h) by what they mean to a user
UNTRUSTED = {2: "unable to get issuer certificate", 18: "self-signed certificate",
             19: "self-signed certificate in certificate chain", 20: "unable to get local issuer certificate",
             21: "unable to verify the first certificate"}
EXPIRED, NOT_YET_VALID, HOSTNAME_MISMATCH, IP_MISMATCH = 10, 9, 62, 64


@dataclass(frozen=True)
class Cert:
    subject: str
    issuer: str
    sha256: str  #: colon-separated hex, as browsers show it
    not_before: str  #: ISO 8601, UTC
    not_after: str
    is_ca: bool = False
    self_signed: bool = False
    pem: str = ""  #: the certificate itself (public), so a fix can trust it after confirmation


@dataclass(frozen=True)
class Endpoint:
    role: str  #: "hub" | "mirror" | "xet" | "pip" | "pytorch"
    url: str  #: base URL, e.g. https://huggingface.co
    path: str = "/"  #: what the HEAD asks for
    expect_hub: bool = False  #: the answer must carry the hub's headers (X-Repo-Commit, ETag)


@dataclass(frozen=True)
class Phase:
    name: str  #: "dns" | "tcp" | "proxy" | "tls" | "http"
    ok: bool
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class EndpointResult:
    role: str
    url: str
    host: str
    port: int
    phases: tuple[Phase, ...] = ()
    proxy: str | None = None  #: the proxy used, credentials masked
    tls_error: str | None = None  #: "untrusted" | "expired" | "not-yet-valid" | "hostname" | "strict" | "other"
    tls_detail: str | None = None  #: OpenSSL's verify message
    chain: tuple[Cert, ...] = ()  #: as presented, leaf first (only read when verification failed)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  #: the hub-relevant response headers
    server_date: str | None = None  #: the Date header, ISO 8601 UTC
    local_date: str | None = None
    hub_headers: bool | None = None  #: X-Repo-Commit and an ETag present (None when not asked)

    @property
    def ok(self) -> bool:
        return bool(self.phases) and all(p.ok for p in self.phases) and self.hub_headers is not False

    @property
    def failed_phase(self) -> Phase | None:
        return next((p for p in self.phases if not p.ok), None)


HUB_HEADERS = ("x-repo-commit", "etag", "x-linked-etag", "x-linked-size", "content-length", "location",
               "x-error-code", "content-type", "server", "x-xet-hash")


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy requests / httpx use for ``url`` from HTTP(S)_PROXY, ALL_PROXY and NO_PROXY."""
    parts = urlsplit(url)
    env = {k.lower(): v for k, v in environ.items() if k.lower().endswith("_proxy") and v}
    no_proxy = env.get("no_proxy", "")
    if no_proxy.strip() == "*":
        return None
    host = (parts.hostname or "").lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        entry = entry.split(":")[0].lstrip(".").lstrip("*.")
        if host == entry or host.endswith("." + entry):
            return None
    proxy = env.get(f"{parts.scheme}_proxy") or env.get("all_proxy")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def _connect(host: str, port: int, timeout: float, phases: list, proxy: str | None, target_host: str,
             target_port: int) -> socket.socket:
    started = time.perf_counter()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        phases.append(Phase("dns", False, time.perf_counter() - started, f"cannot resolve {host}: {exc}"))
        raise
    phases.append(Phase("dns", True, time.perf_counter() - started))
    started = time.perf_counter()
    last = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            break
        except OSError as exc:
            sock.close()
            last = exc
    else:
        why = "timed out" if isinstance(last, socket.timeout) else str(last)
        phases.append(Phase("tcp", False, time.perf_counter() - started, f"cannot connect to {host}:{port}: {why}"))
        raise last or OSError("no address")
    phases.append(Phase("tcp", True, time.perf_counter() - started))
    if proxy is None:
        return sock
    started = time.perf_counter()
    parts = urlsplit(proxy)
    request = f"CONNECT {target_host}:{target_port} HTTP/1.1\r\nHost: {target_host}:{target_port}\r\n"
    if parts.username:
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    try:
        sock.sendall((request + "\r\n").encode())
        response = http.client.HTTPResponse(sock, method="CONNECT")
        response.begin()
        if response.status != 200:
            raise OSError(f"the proxy answered CONNECT with {response.status} {response.reason}")
    except (OSError, http.client.HTTPException) as exc:
        sock.close()
        phases.append(Phase("proxy", False, time.perf_counter() - started, f"proxy tunnel failed: {exc}"))
        raise OSError(str(exc)) from None
    phases.append(Phase("proxy", True, time.perf_counter() - started))
    return sock


def _classify(exc: ssl.SSLError) -> tuple[str, str]:
    message = getattr(exc, "verify_message", None) or str(exc)
    code = getattr(exc, "verify_code", None)
    if any(m in message for m in STRICT_MARKERS):
        return "strict", message
    if code in UNTRUSTED:
        return "untrusted", message
    if code == EXPIRED:
        return "expired", message
    if code == NOT_YET_VALID:
        return "not-yet-valid", message
    if code in (HOSTNAME_MISMATCH, IP_MISMATCH) or "mismatch" in message.lower() or "doesn't match" in message:
        return "hostname", message
    if "WRONG_VERSION_NUMBER" in str(exc) or "UNKNOWN_PROTOCOL" in str(exc):
        return "protocol", str(exc)
    return "other", message


def describe_cert(der: bytes) -> Cert:
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    try:
        from cryptography import x509
    except ImportError:  # the fingerprint is what identifies the CA; names are a courtesy
        return Cert(subject="?", issuer="?", sha256=fingerprint, not_before="", not_after="",
                    pem=ssl.DER_cert_to_PEM_cert(der))
    cert = x509.load_der_x509_certificate(der)
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        basic = False
    return Cert(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(), sha256=fingerprint,
                not_before=cert.not_valid_before_utc.isoformat(), not_after=cert.not_valid_after_utc.isoformat(),
                is_ca=bool(basic), self_signed=cert.subject == cert.issuer, pem=ssl.DER_cert_to_PEM_cert(der))


def presented_chain(host: str, port: int, timeout: float, proxy: str | None, server_name: str) -> tuple[Cert, ...]:
    """The certificates the server presents, read without verifying them (and sending nothing)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    phases: list = []
    p = urlsplit(proxy) if proxy else None
    sock = _connect(p.hostname if p else host, (p.port or 80) if p else port, timeout, phases, proxy, host, port)
    try:
        with ctx.wrap_socket(sock, server_hostname=server_name) as tls:
            sslobj = getattr(tls, "_sslobj", None)
            getter = getattr(tls, "get_unverified_chain", None) or getattr(sslobj, "get_unverified_chain", None)
            if getter is not None:
                ders = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in getter() or ()]
            else:
                ders = [tls.getpeercert(binary_form=True)]
            return tuple(describe_cert(d) for d in ders if d)
    finally:
        sock.close()


def trust_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """What a default client trusts: SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi
    plus the operating system's store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cafile, capath = environ.get("SSL_CERT_FILE"), environ.get("SSL_CERT_DIR")
    if cafile or capath:
        ctx.load_verify_locations(cafile=cafile or None, capath=capath or None)
        return ctx
    ctx.load_default_certs()
    try:
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
    except (ImportError, OSError):
        pass
    return ctx


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint (malformed, not http(s), no host, bad port), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"not an http:// or https:// URL (scheme {parts.scheme!r})" if parts.scheme else "no http(s):// scheme"
    if not parts.hostname:
        return "no host name"
    if port == 0:
        return "port 0"
    return None


def _host_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port or (443 if parts.scheme != "http" else 80)
    except ValueError:
        return "", 0


def probe_endpoint(ep: Endpoint, environ: Mapping[str, str], timeout: float = 4.0,
                   context: ssl.SSLContext | None = None) -> EndpointResult:
    bad = url_problem(ep.url)
    if bad:
        return EndpointResult(ep.role, ep.url, "", 0, phases=(Phase("url", False, 0.0, bad),))
    parts = urlsplit(ep.url)
    host, scheme = parts.hostname or "", parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        proxy = proxy_for(ep.url, environ)
        if proxy and url_problem(proxy):
            raise ValueError(f"the proxy for it is {url_problem(proxy)}")
    except ValueError as exc:
        return EndpointResult(ep.role, ep.url, host, port, phases=(Phase("proxy", False, 0.0, str(exc)),))
    phases: list[Phase] = []
    base = dict(role=ep.role, url=ep.url, host=host, port=port, proxy=mask_userinfo(proxy) if proxy else None)
    p = urlsplit(proxy) if proxy else None
    try:
        sock = _connect(p.hostname if p else host, (p.port or 80) if p else port, timeout, phases,
                        proxy if scheme == "https" else None, host, port)
    except (OSError, UnicodeError):
        return EndpointResult(phases=tuple(phases), **base)
    tls_error = tls_detail = None
    chain: tuple[Cert, ...] = ()
    conn = sock
    if scheme == "https":
        started = time.perf_counter()
        try:
            ctx = context or trust_context(environ)
            conn = ctx.wrap_socket(sock, server_hostname=host)
            phases.append(Phase("tls", True, time.perf_counter() - started))
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            if isinstance(exc, ssl.SSLError):
                tls_error, tls_detail = _classify(exc)
            else:
                tls_error, tls_detail = ("timeout" if isinstance(exc, socket.timeout) else "other"), str(exc)
            phases.append(Phase("tls", False, time.perf_counter() - started, f"{tls_error}: {tls_detail}"))
            if tls_error in ("untrusted", "expired", "not-yet-valid", "hostname", "strict", "other"):
                try:
                    chain = presented_chain(host, port, timeout, proxy, host)
                except Exception:  # the chain is an extra for the report, never a reason to fail
                    chain = ()
            return EndpointResult(phases=tuple(phases), tls_error=tls_error, tls_detail=tls_detail, chain=chain,
                                  local_date=_now(), **base)
    started = time.perf_counter()
    path = ep.path if proxy is None or scheme == "https" else ep.url.rstrip("/") + ep.path
    try:
        request = (f"HEAD {path} HTTP/1.1\r\nHost: {parts.netloc.rsplit('@', 1)[-1]}\r\n"
                   "User-Agent: llmdoctor\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n")
        conn.sendall(request.encode())
        response = http.client.HTTPResponse(conn, method="HEAD")
        response.begin()
        headers = {k.lower(): v for k, v in response.getheaders() if k.lower() in HUB_HEADERS}
        date = response.getheader("Date")
        phases.append(Phase("http", True, time.perf_counter() - started))
    except (OSError, http.client.HTTPException) as exc:
        why = "no answer (timed out)" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}"
        phases.append(Phase("http", False, time.perf_counter() - started, why))
        return EndpointResult(phases=tuple(phases), local_date=_now(), **base)
    finally:
        conn.close()
    hub = None
    if ep.expect_hub:
        hub = bool(headers.get("x-repo-commit")) and bool(headers.get("etag") or headers.get("x-linked-etag"))
    return EndpointResult(phases=tuple(phases), status=response.status, headers=headers,
                          server_date=_http_date(date), local_date=_now(), hub_headers=hub, **base)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _http_date(value: str | None) -> str | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).astimezone(dt.timezone.utc).isoformat() if value else None
    except (TypeError, ValueError):
        return None


def probe_all(endpoints, environ: Mapping[str, str], budget: float = 9.0) -> tuple[EndpointResult, ...]:
    """Every endpoint at once, each in a daemon thread; the whole call returns within
    ``budget`` seconds even when every endpoint hangs (unfinished ones are timeouts)."""
    import threading

    results: dict[int, EndpointResult] = {}
    per_phase = max(1.0, min(4.0, budget / 2.5))

    def work(i, ep):
        try:
            results[i] = probe_endpoint(ep, environ, timeout=per_phase)
        except Exception as exc:  # a bug here must not take the report down
            results[i] = EndpointResult(ep.role, ep.url, _host_port(ep.url)[0], 0,
                                        phases=(Phase("http", False, 0.0, f"{type(exc).__name__}: {exc}"),))

    threads = [threading.Thread(target=work, args=(i, ep), daemon=True) for i, ep in enumerate(endpoints)]
    deadline = time.monotonic() + budget
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out = []
    for i, ep in enumerate(endpoints):
        host, port = _host_port(ep.url)
        out.append(results.get(i) or EndpointResult(
            ep.role, ep.url, host, port, phases=(Phase("http", False, budget, f"no answer within {budget:.0f} s"),)))
    return tuple(out)


def os_trust_store_files() -> list[str]:
    paths = ssl.get_default_verify_paths()
    out = [p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.isfile(p)]
    return sorted(set(out))


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP exchange: the status and the hub-relevant headers, the body up to a cap,
    or why there was no answer."""

    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  #: no answer: DNS, TCP, proxy, TLS or HTTP failure, or the deadline
    truncated: bool = False


def http_request(url: str, environ: Mapping[str, str], *, method: str = "GET", headers: Mapping[str, str] | None = None,
                 timeout: float = 4.0, max_bytes: int = 4 << 20, deadline: float | None = None,
                 context: ssl.SSLContext | None = None) -> HttpAnswer:
    """One request with verification on, through the proxy the environment names; every
    socket operation has ``timeout`` and the whole exchange ends by ``deadline``
    (``time.monotonic()``). Redirects are not followed: the caller decides."""
    parts = urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    proxy = proxy_for(url, environ)
    p = urlsplit(proxy) if proxy else None
    end = deadline if deadline is not None else time.monotonic() + 3 * timeout

    def left() -> float:
        return max(0.05, min(timeout, end - time.monotonic()))

    phases: list[Phase] = []
    try:
        sock = _connect(p.hostname if p else host, (p.port or 80) if p else port, left(), phases,
                        proxy if scheme == "https" else None, host, port)
    except (OSError, UnicodeError):
        bad = next((ph for ph in phases if not ph.ok), None)
        return HttpAnswer(url, error=bad.error if bad else "cannot connect")
    conn = sock
    try:
        if scheme == "https":
            try:
                conn = (context or trust_context(environ)).wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                kind = _classify(exc)[0] if isinstance(exc, ssl.SSLError) else "other"
                return HttpAnswer(url, error=f"TLS ({kind}): {exc}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if proxy is not None and scheme != "https":
            path = url
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc.rsplit('@', 1)[-1]}", "User-Agent: llmdoctor",
                 "Accept-Encoding: identity", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.settimeout(left())
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        response = http.client.HTTPResponse(conn, method=method)
        response.begin()
        kept = {k.lower(): v for k, v in response.getheaders()
                if k.lower() in HUB_HEADERS or k.lower() in ("x-error-message", "link")}
        body, truncated = b"", False
        if method != "HEAD":
            chunks, size = [], 0
            while size <= max_bytes:
                if time.monotonic() > end:
                    return HttpAnswer(url, response.status, kept, error="the answer did not finish in time")
                conn.settimeout(left())
                chunk = response.read(min(65536, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            body = b"".join(chunks)
            if len(body) > max_bytes:
                body, truncated = body[:max_bytes], True
        return HttpAnswer(url, response.status, kept, body, truncated=truncated)
    except (OSError, http.client.HTTPException, UnicodeError) as exc:
        why = "no answer (timed out)" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}"
        return HttpAnswer(url, error=why)
    finally:
        conn.close()
