"""A small Hugging Face hub for the tests, on 127.0.0.1, over HTTP or TLS.

It serves the surface huggingface_hub's downloads use: HEAD/GET
``/{repo}/resolve/{rev}/{file}`` with X-Repo-Commit, ETag (git blob sha1) or, for LFS
files, a 302 to ``/blobs/{sha256}`` with X-Linked-Etag and X-Linked-Size;
``/api/models/{repo}/revision/{rev}`` and ``/api/models/{repo}/tree/{rev}``; hub error
codes (RepoNotFound, RevisionNotFound, EntryNotFound). No xet headers, so the client
takes the plain HTTP path. Access as the hub grants it: ``tokens`` maps a token to its
user (``/api/whoami-v2`` answers for it, 401 for any other); a gated repo serves its files
to users in ``granted`` (401 GatedRepo without a token, 403 with a token whose user was not
granted, its metadata stays public); a private repo exists only for its ``members`` (401
RepoNotFound without a token, 404 with another). ``?blobs=true`` lists sizes. Other behaviours for the failure tests: ``captive`` answers
200 with a login page and no hub headers, ``hang`` accepts and never answers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """commits: commit sha -> {path: bytes}; refs: branch or tag -> commit sha."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: str | None = None  #: "auto" | "manual": files only for users in `granted`
    granted: set[str] = field(default_factory=set)
    private: bool = False  #: visible only to users in `members`
    members: set[str] = field(default_factory=set)

    def add_commit(self, files: dict[str, bytes], ref: str | None = "main") -> str:
        sha = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items()))
                           .encode() + str(len(self.commits)).encode()).hexdigest()
        self.commits[sha] = dict(files)
        if ref:
            self.refs[ref] = sha
        return sha

    def resolve(self, rev: str) -> str | None:
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


TINY_CONFIG = json.dumps({"model_type": "gpt2", "n_layer": 2}).encode()


def default_repos() -> dict[str, Repo]:
    repo = Repo()
    repo.add_commit({"config.json": TINY_CONFIG, "model.safetensors": b"\0" * 2048})
    return {"openai-community/gpt2": repo}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: "FakeHub"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, headers: dict, body: bytes = b"", head: bool = False):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, head: bool, commit: str | None = None):
        headers = {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json"}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, json.dumps({"error": code}).encode(), head)

    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    def _route(self, head: bool):
        hub = self.hub
        hub.requests.append((self.command, self.path))
        path = unquote(urlsplit(self.path).path)
        if hub.mode == "captive":
            body = b"<html><body>Please log in to the guest network</body></html>"
            return self._send(200, {"Content-Type": "text/html"}, body, head)
        if path.startswith("/blobs/"):
            sha = path.split("/")[-1]
            data = hub.blobs.get(sha)
            if data is None:
                return self._error(404, "EntryNotFound", head)
            return self._send(200, {"Content-Type": "application/octet-stream", "ETag": f'"{sha}"'}, data, head)
        if path == "/api/whoami-v2":
            token, user = self._user()
            if user is None:
                return self._send(401, {"X-Error-Message": "Invalid credentials in Authorization header"},
                                  b'{"error": "Invalid credentials in Authorization header"}', head)
            body = {"type": "user", "name": user, "auth": {"type": "access_token",
                                                           "accessToken": {"displayName": "test", "role": "read"}}}
            return self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode(), head)
        if path.startswith("/api/models/"):
            return self._api(path[len("/api/models/"):], head)
        for kind in ("datasets", "spaces"):  # kept in `repos` as "datasets/org/name"
            if path.startswith(f"/api/{kind}/"):
                return self._api(f"{kind}/" + path[len(f"/api/{kind}/"):], head)
        if "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            rev, _, filename = rest.partition("/")
            return self._resolve(repo_id, rev, filename, head)
        return self._send(200, {"Content-Type": "text/plain"}, b"fake hub", head)

    def _user(self):
        """(token sent, its user or None)."""
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else None
        return token, self.hub.tokens.get(token) if token else None

    def _invalid_token(self, head) -> bool:
        token, user = self._user()
        if token and user is None:
            self._send(401, {"X-Error-Message": "Invalid credentials in Authorization header",
                             "Content-Type": "application/json"}, b'{"error": "Invalid credentials"}', head)
            return True
        return False

    def _lookup(self, repo_id, rev, head, files=False):
        """(repo, commit), or None after answering with the hub's error code."""
        if self._invalid_token(head):
            return None
        repo = self.hub.repos.get(repo_id)
        token, user = self._user()
        if repo is not None and repo.private and user not in repo.members:
            self._error(404 if token else 401, "RepoNotFound", head)
            return None
        if repo is not None and files and repo.gated and user not in repo.granted:
            who = "you are not in the authorized list" if user else "You must have access to it and be authenticated"
            self._error(403 if user else 401, "GatedRepo", head)
            self.hub.refused.append((repo_id, user, who))
            return None
        if repo is None:
            self._error(404, "RepoNotFound", head)
            return None
        commit = repo.resolve(rev)
        if commit is None:
            self._error(404, "RevisionNotFound", head)
            return None
        return repo, commit

    def _resolve(self, repo_id, rev, filename, head):
        found = self._lookup(repo_id, rev, head, files=True)
        if found is None:
            return None
        repo, commit = found
        data = repo.commits[commit].get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", head, commit)
        if filename.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            self.hub.blobs[sha] = data
            return self._send(302, {"Location": f"{self.hub.blob_url}/blobs/{sha}", "X-Repo-Commit": commit,
                                    "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                    "ETag": f'"{git_blob_sha1(data)}"'}, b"", head)
        return self._send(200, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"',
                                "Content-Type": "application/octet-stream"}, data, head)

    def _api(self, rest, head):
        for marker in ("/revision/", "/tree/"):
            if marker in rest:
                repo_id, _, rev = rest.partition(marker)
                rev = rev.split("/")[0]
                break
        else:
            repo_id, marker, rev = rest, "/revision/", "main"
        found = self._lookup(repo_id, rev, head)
        if found is None:
            return None
        repo, commit = found
        files = repo.commits[commit]
        if marker == "/tree/":
            items = []
            for name, data in sorted(files.items()):
                item = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                if name.endswith(LFS_SUFFIXES):
                    item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
                items.append(item)
            body = json.dumps(items).encode()
        else:
            public_id = repo_id.split("/", 1)[1] if repo_id.startswith(("datasets/", "spaces/")) else repo_id
            blobs = "blobs=true" in (urlsplit(self.path).query or "")
            siblings = []
            for n in sorted(files):
                item = {"rfilename": n}
                if blobs:
                    item["size"] = len(files[n])
                    item["blobId"] = git_blob_sha1(files[n])
                    if n.endswith(LFS_SUFFIXES):
                        item["lfs"] = {"sha256": hashlib.sha256(files[n]).hexdigest(), "size": len(files[n]),
                                       "pointerSize": 130}
                siblings.append(item)
            body = json.dumps({"id": public_id, "modelId": public_id, "sha": commit, "private": repo.private,
                               "gated": repo.gated or False, "siblings": siblings}).encode()
        return self._send(200, {"Content-Type": "application/json"}, body, head)


def _listen(on_connection) -> tuple[socket.socket, int]:
    """A socket on 127.0.0.1 (any free port) handing each accepted connection to ``on_connection``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            on_connection(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, sock.getsockname()[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client refusing our certificate is the test
        pass


class FakeHub:
    """``with FakeHub(cert=leaf) as hub: hub.url`` — TLS when a trustme LeafCert is given."""

    def __init__(self, repos: dict[str, Repo] | None = None, cert=None, mode: str = "hub", root=None,
                 tokens: dict[str, str] | None = None):
        self.repos = repos if repos is not None else default_repos()
        self.tokens = dict(tokens or {})  #: token -> user name
        self.refused: list[tuple] = []  #: (repo, user, why) of every gated refusal
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.mode, self.cert, self.root = mode, cert, root  # root: a trustme CA sent after the leaf
        self._server = None
        self._sock = None
        self._held: list[socket.socket] = []
        self.url = ""

    def __enter__(self) -> "FakeHub":
        if self.mode == "hang":
            self._sock, port = _listen(self._held.append)  # accepted, never read, never answered
        else:
            handler = type("Handler", (_Handler,), {"hub": self})
            self._server = _Server(("127.0.0.1", 0), handler)
            if self.cert is not None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                if self.root is None:
                    self.cert.configure_cert(ctx)
                else:  # as intercepting proxies often do: leaf, then their own root
                    import tempfile

                    with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
                        fh.write(self.cert.private_key_and_cert_chain_pem.bytes() + self.root.cert_pem.bytes())
                        fh.flush()
                        ctx.load_cert_chain(fh.name)
                self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
            port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"{'https' if self.cert is not None else 'http'}://127.0.0.1:{port}"
        # LFS blobs come from "another host", as from the hub's CDN: the client follows that
        # redirect and reads the hub headers from the first answer only
        self.blob_url = self.url.replace("127.0.0.1", "localhost")
        return self

    def __exit__(self, *exc):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._sock is not None:
            self._sock.close()
        for conn in self._held:
            conn.close()


class ConnectProxy:
    """An HTTP proxy on 127.0.0.1 that only tunnels (CONNECT), as corporate proxies do for
    https://; it records each request's Proxy-Authorization header."""

    def __init__(self):
        self.auth: list[str | None] = []
        self.url = ""

    def __enter__(self) -> "ConnectProxy":
        self._sock, self.port = _listen(lambda conn: threading.Thread(target=self._serve, args=(conn,),
                                                                      daemon=True).start())
        return self

    def _serve(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self.auth.append(headers.get("proxy-authorization"))
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __exit__(self, *exc):
        self._sock.close()
