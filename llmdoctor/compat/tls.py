"""Whether an HTTP stack verifies certificates, decided from its version and the environment
exactly as the stack itself decides it.

requests before 2.28 read ``verify = REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE`` and passed an
empty string on as "do not verify"; 2.28 (psf/requests#6074) falls back to True instead.
REQUESTS_CA_BUNDLE is read first, so a real bundle there wins over an empty
CURL_CA_BUNDLE. httpx (huggingface_hub 1.x and 2.x) reads SSL_CERT_FILE / SSL_CERT_DIR
and has no variable that switches verification off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from packaging.version import Version

REQUESTS_FIX = Version("2.28")
REQUESTS_DOCS = "https://github.com/psf/requests/pull/6074"


@dataclass(frozen=True)
class Verification:
    on: bool | None  #: None: cannot tell
    how: str  #: in words: "certifi's bundle", "REQUESTS_CA_BUNDLE=/etc/ssl/ca.pem", "off: CURL_CA_BUNDLE=''"
    variable: str | None = None  #: the variable that decided it


def requests_verification(env: Mapping[str, str], requests_version: Version | None) -> Verification:
    """What ``requests.Session().request(...)`` does with certificates in ``env``."""
    rcb, ccb = env.get("REQUESTS_CA_BUNDLE"), env.get("CURL_CA_BUNDLE")
    if rcb:  # a non-empty value wins in every version
        return Verification(True, f"REQUESTS_CA_BUNDLE={rcb}", "REQUESTS_CA_BUNDLE")
    if ccb:
        return Verification(True, f"CURL_CA_BUNDLE={ccb}", "CURL_CA_BUNDLE")
    if ccb == "" and requests_version is not None and requests_version < REQUESTS_FIX:
        return Verification(False, f"off: CURL_CA_BUNDLE is empty and requests {requests_version} < 2.28 "
                                   "takes that as 'do not verify'", "CURL_CA_BUNDLE")
    if ccb == "" and requests_version is None:
        return Verification(None, "CURL_CA_BUNDLE is empty and the requests version is unknown", "CURL_CA_BUNDLE")
    return Verification(True, "certifi's bundle")


def stack_verification(client: str | None, env: Mapping[str, str],
                       requests_version: Version | None) -> Verification:
    """Verification of the HTTP stack huggingface_hub uses (``client``: requests, httpx, httpx2)."""
    if client == "requests":
        return requests_verification(env, requests_version)
    if client in ("httpx", "httpx2"):
        if env.get("SSL_CERT_FILE"):
            return Verification(True, f"SSL_CERT_FILE={env['SSL_CERT_FILE']}", "SSL_CERT_FILE")
        return Verification(True, "its default trust store")
    return Verification(None, "unknown HTTP stack")


#: what Python 3.13's VERIFY_X509_STRICT rejects in some interception CAs
STRICT_MARKERS = ("Basic Constraints of CA cert not marked critical", "Missing Authority Key Identifier",
                  "CA cert does not include key usage extension", "Missing Subject Key Identifier")
DNS_MARKERS = ("NameResolutionError", "Failed to resolve", "Name or service not known", "nodename nor servname",
               "getaddrinfo failed", "Temporary failure in name resolution", "No address associated with hostname")
TLS_MARKERS = ("CERTIFICATE_VERIFY_FAILED", "SSLError", "SSLCertVerification")
OFFLINE_MARKERS = ("OfflineModeIsEnabled",)
NOT_HUB_MARKERS = ("X-Repo-Commit", "FileMetadataError")


def hub_error_kind(text: str) -> str | None:
    """What an HTTP client's error text (an exception and its causes, as huggingface_hub raises
    them) says went wrong: "strict" (3.13's strict X.509), "offline" (HF_HUB_OFFLINE), "tls",
    "dns", "not-hub" (an answer without the hub's headers), or None."""
    for kind, markers in (("strict", STRICT_MARKERS), ("offline", OFFLINE_MARKERS), ("tls", TLS_MARKERS),
                          ("dns", DNS_MARKERS), ("not-hub", NOT_HUB_MARKERS)):
        if any(m in text for m in markers):
            return kind
    return None
