"""Facts about the models named with ``llmdoctor check --model``: where each one is (a
local folder, a ``--dir`` cache folder, a hub cache root, else the hub's metadata API),
which of its files are here and whole, its config, its own code and what that code needs
from this environment, and whether the token in use may download it.

Resolution follows transformers: a folder path first, then the cache folders. Nothing is
downloaded but metadata (the repo's file listing with sizes, ``config.json``,
``tokenizer_config.json`` and the repo's ``.py`` files when it runs its own code), through
:mod:`llmdoctor.net` with a deadline; never a weights file. The token is read from where
huggingface_hub reads it and sent only to the hub endpoint; it is never stored in facts.
"""

from __future__ import annotations

import configparser
import errno
import json
import math
import os
import re
import shutil
import stat
import struct
import time
import zipfile
from dataclasses import dataclass, field, replace
from typing import Mapping
from urllib.parse import quote

from llmdoctor.probes import modelcode
from llmdoctor import net
from llmdoctor.paths import hf_home, read_file
from llmdoctor.probes.projectscan import ProjectFacts, scan_project
from llmdoctor.probes.base import ProbeContext
from llmdoctor.probes.python_env import probe_lines, run_script

DEFAULT_HUB = "https://huggingface.co"
NET_BUDGET_S = 10.0
TARGET_BUDGET_S = 45.0
MAX_FILES = 5000
MAX_JSON_BYTES = 4 << 20
MAX_CODE_BYTES = 1 << 20
MAX_CODE_FILES = 12
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_SINGLE = ("model.safetensors", "pytorch_model.bin")
#: config.json keys kept in facts: what the checks read (architecture, code, dtype, quantization)
CONFIG_KEYS = ("model_type", "_name_or_path", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype",
               "quantization_config", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "vocab_size", "padded_vocab_size", "tie_word_embeddings", "head_dim",
               "n_embd", "n_layer", "n_head", "n_inner", "d_model", "num_layers", "ffn_hidden_size", "ffn_dim",
               "multi_query_attention", "multi_query_group_num", "kv_channels", "num_kv_heads", "n_head_kv",
               "num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size", "num_experts_per_tok",
               "shared_expert_intermediate_size", "n_shared_experts", "attention_bias", "qkv_bias", "bias",
               "max_position_embeddings", "seq_length", "text_config", "llm_config", "language_config")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "special_tokens_map.json",
                   "tokenizer.tiktoken", "qwen.tiktoken", "ice_text.model")
SPM_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


@dataclass(frozen=True)
class ModelRequest:
    """What ``check --model`` was asked."""

    models: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()  #: cache_dir= folders (--dir)
    task: str = "infer"  #: infer | lora | qlora
    dtype: str | None = None  #: bf16 | fp16 | fp32; None: what from_pretrained does without torch_dtype
    quant: str | None = None  #: nf4 | int8
    seq: int = 1024
    project: str | None = None


@dataclass(frozen=True)
class ModelFile:
    name: str
    size: int | None = None  #: bytes here (the blob a cache link points to); None when absent
    hub_size: int | None = None  #: bytes in the hub's listing
    blob: str | None = None  #: the cache blob it links to
    broken: bool = False  #: a link to a blob that is not there
    damage: str | None = None  #: a weights file whose own header says it is cut short


@dataclass(frozen=True)
class WeightsIndex:
    name: str
    shards: tuple[str, ...] = ()
    total_size: int | None = None  #: metadata.total_size: bytes of all tensors
    error: str | None = None


@dataclass(frozen=True)
class Partial:
    path: str
    size: int
    mtime: float = 0.0
    finished: bool = False  #: the blob it was downloading is whole next to it: a leftover


@dataclass(frozen=True)
class HubInfo:
    endpoint: str
    status: int | None = None  #: of the model info API
    error_code: str | None = None  #: X-Error-Code
    error: str | None = None  #: no answer at all
    sha: str | None = None
    gated: str | None = None  #: "auto" | "manual"; None when not gated
    private: bool | None = None
    listing: dict[str, int] = field(default_factory=dict)  #: file -> size, as the hub lists it
    file_status: int | None = None  #: a GET of config.json with the token in use (200, 401, 403, 404)
    file_error_code: str | None = None
    file_error: str | None = None
    token_sent: bool = False
    #: StoredToken.key -> the status of the same GET with that stored token (asked when the one sent is refused)
    stored_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CodeIssue:
    kind: str  #: "missing-name" | "missing-module" | "missing-member"
    file: str
    line: int
    what: str  #: transformers.generation.utils.GenerateOutput, ChatGLMForConditionalGeneration._extract_past...
    detail: str = ""


@dataclass(frozen=True)
class CodeFacts:
    files: tuple[str, ...] = ()  #: the .py files read
    read_from: str | None = None  #: the folder (or "hub") they came from
    modules: tuple[str, ...] = ()  #: packages transformers' check_imports requires
    missing_modules: tuple[str, ...] = ()  #: of those, not installed in the target
    names_checked: int = 0
    members_checked: int = 0
    issues: tuple[CodeIssue, ...] = ()
    unknown: tuple[str, ...] = ()  #: lookups the target could not answer (transformers does not import...)
    init_order: tuple[modelcode.InitOrder, ...] = ()
    overrides: tuple[modelcode.Override, ...] = ()
    vocab_files: tuple[str, ...] = ()
    relative: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    spec: str  #: as given
    origin: str = "--model"  #: or "project" for a model a project script loads with trust_remote_code
    repo_id: str | None = None
    source: str = "none"  #: local | dir | cache | hub | none
    path: str | None = None  #: the folder read (a local folder or a cache snapshot)
    root: str | None = None  #: the cache root
    root_label: str | None = None  #: --dir, HF_HOME, default, cache_dir= in train.py ...
    revision: str | None = None  #: the snapshot's commit
    searched: tuple[str, ...] = ()  #: where it was looked for, in order
    cached_listing: dict[str, int] = field(default_factory=dict)  #: the hub's listing of this commit, as
    #: huggingface_hub cached it (trees/<commit>.json): file -> size
    files: tuple[ModelFile, ...] = ()
    indexes: tuple[WeightsIndex, ...] = ()
    partials: tuple[Partial, ...] = ()  #: .incomplete downloads left behind
    config: dict = field(default_factory=dict)  #: config.json, the keys the checks read
    config_error: str | None = None
    tokenizer_class: str | None = None
    tokenizer_remote: bool = False  #: tokenizer_config.json has an auto_map
    tokenizer_code: tuple[str, ...] = ()  #: the .py files that auto_map names (in this repo)
    code: CodeFacts | None = None
    #: nested config (text_config...) -> that config as the target's transformers completes it with its
    #: config class's defaults (a saved nested config holds only what differs from them)
    config_defaults: dict[str, dict] = field(default_factory=dict)
    config_defaults_error: str | None = None  #: why it could not ("no-transformers", the exception)
    model_type_known: bool | None = None  #: the installed transformers has config.model_type
    needs: dict[str, bool | None] = field(default_factory=dict)  #: module the files need -> installed here
    hub: HubInfo | None = None
    dest: str | None = None  #: where a download goes
    dest_free_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class StoredToken:
    """A token `hf auth login` stored besides the one sent (never the token itself)."""

    key: str  #: its name in stored_tokens; "" for the token file's when stored_tokens does not name it
    active: bool = False  #: the token file's (`hf auth switch --token-name` makes another one active)
    whoami_status: int | None = None
    user: str | None = None


@dataclass(frozen=True)
class TokenFacts:
    source: str | None = None  #: HF_TOKEN | HUGGING_FACE_HUB_TOKEN | token file; None: no token
    token_file: str | None = None  #: the stored token's file, when there is one
    env_and_file_differ: bool = False  #: HF_TOKEN set and a different token stored: HF_TOKEN wins
    implicit_disabled: bool = False  #: HF_HUB_DISABLE_IMPLICIT_TOKEN: from_pretrained sends no token, HF_TOKEN's
    #: included (the hub is asked without one; whoami still checks the token)
    whoami_status: int | None = None
    user: str | None = None
    role: str | None = None  #: read | write | fineGrained
    error: str | None = None
    stored: tuple[StoredToken, ...] = ()  #: the other stored tokens, asked for the repos the one sent is refused


@dataclass(frozen=True)
class ModelFacts:
    request: ModelRequest = field(default_factory=ModelRequest)
    models: tuple[ModelInfo, ...] = ()
    token: TokenFacts | None = None
    endpoint: str = DEFAULT_HUB
    online: bool = False  #: the hub could be asked
    hub_offline_env: bool = False  #: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set
    hf_transfer_env: bool = False  #: HF_HUB_ENABLE_HF_TRANSFER set
    target_error: str | None = None  #: the target's answer about modules and transformers could not be had
    transformers_model_types: int | None = None  #: how many model types the installed transformers knows
    project: ProjectFacts | None = None


# --- where things are -----------------------------------------------------------

def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_path(spec: str) -> bool:
    """A folder path rather than a repo id: absolute, relative with ./ or ~, or more than
    one slash (a repo id has at most one)."""
    return spec.startswith(("/", "./", "../", "~", ".\\")) or spec in (".", "..") or spec.count("/") > 1 or \
        spec.endswith("/") or "\\" in spec


def _cache_repo(root: str, repo_id: str) -> str:
    return os.path.join(root, "models--" + repo_id.replace("/", "--"))


def snapshot(repo_dir: str) -> tuple[str | None, str | None]:
    """(snapshot folder, commit): refs/main's, else the newest snapshot."""
    try:
        commit = read_file(os.path.join(repo_dir, "refs", "main"), 100, cut=True).decode("utf-8", "replace").strip()
        if commit and os.path.isdir(os.path.join(repo_dir, "snapshots", commit)):
            return os.path.join(repo_dir, "snapshots", commit), commit
    except OSError:
        pass
    try:
        snaps = [e for e in os.scandir(os.path.join(repo_dir, "snapshots")) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return None, None
    if not snaps:
        return None, None
    newest = max(snaps, key=lambda e: e.stat(follow_symlinks=False).st_mtime)
    return newest.path, newest.name


def _safetensors_damage(path: str, size: int) -> str | None:
    """A safetensors file is 8 bytes of header length, the JSON header, then the tensors;
    the header's largest end offset says how long the file must be."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{size} bytes: too short to hold a safetensors header"
            (n,) = struct.unpack("<Q", head)
            if n > size:
                return "the header length is larger than the file"
            if n > 32 << 20:
                return None  # not read: a header this large is not worth reading to check a length
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        return f"unreadable header: {type(exc).__name__}"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    want = 8 + n + max(ends, default=0)
    if size < want:
        return f"{size} of {want} bytes: cut short"
    return None


def _zip_damage(path: str) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        return f"not a whole zip archive (torch.save): {exc}"
    return None


def _damage(name: str, path: str, size: int) -> str | None:
    if name.endswith(".safetensors"):
        return _safetensors_damage(path, size)
    if name.endswith(".bin") and "pytorch_model" in name and size >= 4:
        try:
            with open(path, "rb") as fh:
                magic = fh.read(4)
        except OSError:
            return None
        if magic == b"PK\x03\x04":  # torch >= 1.6 saves a zip; older pickles are left alone
            return _zip_damage(path)
    return None


def _list_folder(folder: str) -> list[ModelFile]:
    out = []
    for dirpath, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder)
        for name in sorted(names):
            if len(out) >= MAX_FILES:
                return out
            rel = name if rel_dir == "." else os.path.join(rel_dir, name).replace(os.sep, "/")
            full = os.path.join(dirpath, name)
            blob = None
            try:
                if os.path.islink(full):
                    blob = os.path.basename(os.readlink(full))
                st = os.stat(full)
            except OSError:
                out.append(ModelFile(rel, None, blob=blob, broken=True))
                continue
            damage = _damage(rel, full, st.st_size) if rel.endswith((".safetensors", ".bin")) and \
                stat.S_ISREG(st.st_mode) else None  # a named pipe's open would wait for a writer forever
            out.append(ModelFile(rel, st.st_size, blob=blob, damage=damage))
        if rel_dir.count(os.sep) >= 3:
            dirs[:] = []
    return out


def _partials(repo_dir: str | None, local: str | None) -> list[Partial]:
    out = []
    folders = []
    if repo_dir:
        folders.append(os.path.join(repo_dir, "blobs"))
    if local:  # hf download --local-dir keeps partials in .cache/huggingface/download
        folders.append(os.path.join(local, ".cache", "huggingface", "download"))
    for folder in folders:
        for dirpath, _, names in os.walk(folder):
            for name in names:
                if name.endswith(".incomplete"):
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except OSError:
                        continue
                    done = os.path.exists(os.path.join(dirpath, name[:-len(".incomplete")])) and repo_dir is not None
                    out.append(Partial(os.path.join(dirpath, name), st.st_size, st.st_mtime, done))
    return out


def _cached_tree(repo_dir: str, commit: str | None) -> dict[str, int]:
    """huggingface_hub (1.x) keeps the file listing of each commit it downloaded in
    trees/<commit>.json: the hub's sizes, known offline."""
    if not commit:
        return {}
    data, _ = read_json(os.path.join(repo_dir, "trees", f"{commit}.json"))
    files = data.get("files") if isinstance(data, dict) and data.get("format_version") == 1 else None
    out = {}
    for name, meta in (files or {}).items():
        if isinstance(name, str) and isinstance(meta, dict):
            size = meta.get("lfs_size", meta.get("size"))
            if isinstance(size, int):
                out[name] = size
    return out


def read_json(path: str) -> tuple[dict | None, str | None]:
    try:
        data = json.loads(read_file(path, MAX_JSON_BYTES).decode("utf-8"))
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:  # a named pipe, a device, larger than 4 MiB
        if exc.errno == errno.EFBIG:  # the fact checks read (and reports before read_file wrote)
            return None, f"larger than {MAX_JSON_BYTES >> 20} MiB"
        return None, exc.strerror or f"{type(exc).__name__}: {exc}"
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return (data, None) if isinstance(data, dict) else (None, "not a JSON object")


def trim_config(cfg: dict) -> dict:
    out = {}
    for k in CONFIG_KEYS:
        if k not in cfg:
            continue
        v = cfg[k]
        if isinstance(v, dict):
            v = {kk: vv for kk, vv in v.items() if isinstance(vv, (str, int, float, bool, list, type(None))) or
                 (kk in ("auto_map",) and isinstance(vv, dict))}
            if len(json.dumps(v, default=str)) > 20000:
                continue
        elif isinstance(v, list) and len(v) > 50:
            continue
        out[k] = v
    return out


def _index(name: str, data: dict | None, error: str | None) -> WeightsIndex:
    if data is None:
        return WeightsIndex(name, error=error)
    wm = data.get("weight_map")
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    total = meta.get("total_size")
    if not isinstance(wm, dict):
        return WeightsIndex(name, error="no weight_map")
    shards = tuple(sorted({v for v in wm.values() if isinstance(v, str)}))
    return WeightsIndex(name, shards, int(total) if isinstance(total, (int, float)) else None)


def _free(path: str) -> int | None:
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        return shutil.disk_usage(probe or "/").free
    except OSError:
        return None


# --- the hub ----------------------------------------------------------------------

def token_facts(environ: Mapping[str, str]) -> tuple[TokenFacts, str | None]:
    """Where huggingface_hub's get_token finds the token (HF_TOKEN, then the legacy
    HUGGING_FACE_HUB_TOKEN, then the token file), and the token itself, kept apart."""
    path = environ.get("HF_TOKEN_PATH") or os.path.join(hf_home(environ), "token")
    stored = None
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            stored = fh.read(4096).strip() or None
    except OSError:
        pass
    env_name = next((n for n in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if (environ.get(n) or "").strip()), None)
    env_token = environ[env_name].strip() if env_name else None
    facts = TokenFacts(source=env_name or ("token file" if stored else None),
                       token_file=path if stored else None,
                       env_and_file_differ=bool(env_token and stored and env_token != stored),
                       implicit_disabled=_truthy(environ.get("HF_HUB_DISABLE_IMPLICIT_TOKEN")))
    token = env_token or stored
    return facts, token


MAX_STORED_TOKENS = 4


def stored_tokens(environ: Mapping[str, str]) -> list[tuple[str, bool, str]]:
    """(key, active, token) for each token `hf auth login` stored: the token file's (active), and
    each one the stored_tokens file beside it names (an INI file: [name] hf_token = ...)."""
    path = os.path.expanduser(environ.get("HF_TOKEN_PATH") or os.path.join(hf_home(environ), "token"))
    active = None
    try:
        with open(path, encoding="utf-8") as fh:
            active = fh.read(4096).strip() or None
    except OSError:
        pass
    ini = configparser.ConfigParser(interpolation=None)
    try:
        with open(os.path.join(os.path.dirname(path), "stored_tokens"), encoding="utf-8") as fh:
            ini.read_string(fh.read(64 << 10))
    except (OSError, UnicodeDecodeError, configparser.Error):
        ini = configparser.ConfigParser(interpolation=None)
    out = []
    for name in ini.sections():
        token = (ini.get(name, "hf_token", fallback="") or "").strip()
        if token and token not in [t for _, _, t in out]:
            out.append((name, token == active, token))
    if active and active not in [t for _, _, t in out]:
        out.append(("", True, active))
    return sorted(out, key=lambda o: not o[1])


def _error_code(ans: net.HttpAnswer) -> str | None:
    return ans.headers.get("x-error-code")


def _get(endpoint: str, path: str, environ, token: str | None, deadline: float, method: str = "GET",
         max_bytes: int = MAX_JSON_BYTES) -> net.HttpAnswer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ans = net.http_request(endpoint + path, environ, method=method, headers=headers, deadline=deadline,
                           timeout=min(4.0, max(0.5, deadline - time.monotonic())), max_bytes=max_bytes)
    hops = 0
    while ans.status in (301, 302, 307, 308) and hops < 3 and ans.headers.get("location", "").startswith("/"):
        hops += 1  # a renamed repo: the hub answers with a relative redirect
        ans = net.http_request(endpoint + ans.headers["location"], environ, method=method, headers=headers,
                               deadline=deadline, timeout=min(4.0, max(0.5, deadline - time.monotonic())),
                               max_bytes=max_bytes)
    return ans


def _json(ans: net.HttpAnswer):
    try:
        return json.loads(ans.body.decode("utf-8")) if ans.status == 200 and not ans.truncated else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: an answer nested 100,000 deep
        return None


def hub_info(endpoint: str, repo_id: str, environ, token: str | None, deadline: float) -> tuple[HubInfo, dict]:
    """The repo's listing (sizes included), gating, and a GET of config.json with the token
    as huggingface_hub would send it. Returns the facts and the small files fetched."""
    fetched: dict[str, bytes] = {}
    ans = _get(endpoint, f"/api/models/{repo_id}/revision/main?blobs=true", environ, token, deadline)
    if ans.status == 401 and token and "invalid" in (ans.headers.get("x-error-message") or "").lower():
        ans = _get(endpoint, f"/api/models/{repo_id}/revision/main?blobs=true", environ, None, deadline)
    if ans.status is None:
        return HubInfo(endpoint, error=ans.error), fetched
    data = _json(ans)
    info = HubInfo(endpoint, status=ans.status, error_code=_error_code(ans), token_sent=bool(token))
    if isinstance(data, dict):
        listing = {}
        for s in data.get("siblings") or []:
            if isinstance(s, dict) and isinstance(s.get("rfilename"), str):
                lfs = s.get("lfs") if isinstance(s.get("lfs"), dict) else {}
                size = lfs.get("size", s.get("size"))
                listing[s["rfilename"]] = int(size) if isinstance(size, (int, float)) and math.isfinite(size) \
                    and not isinstance(size, bool) else -1  # JSON may say 1e999: infinity
        gated = data.get("gated")
        info = replace(info, sha=data.get("sha") if isinstance(data.get("sha"), str) else None,
                       gated=gated if isinstance(gated, str) else None,
                       private=data.get("private") if isinstance(data.get("private"), bool) else None,
                       listing=listing)
    rev = quote(info.sha or "main", safe="")
    cfg = _get(endpoint, f"/{repo_id}/resolve/{rev}/config.json", environ, token, deadline, max_bytes=MAX_JSON_BYTES)
    info = replace(info, file_status=cfg.status, file_error_code=_error_code(cfg), file_error=cfg.error)
    if cfg.status == 200:
        fetched["config.json"] = cfg.body
        for name in ("tokenizer_config.json",):
            if name in info.listing:
                got = _get(endpoint, f"/{repo_id}/resolve/{rev}/{name}", environ, token, deadline)
                if got.status == 200:
                    fetched[name] = got.body
    return info, fetched


def whoami(endpoint: str, environ, token: str, deadline: float, facts: TokenFacts) -> TokenFacts:
    ans = _get(endpoint, "/api/whoami-v2", environ, token, deadline)
    if ans.status is None:
        return replace(facts, error=ans.error)
    data = _json(ans) or {}
    auth = data.get("auth") if isinstance(data.get("auth"), dict) else {}
    access = auth.get("accessToken") if isinstance(auth.get("accessToken"), dict) else {}
    return replace(facts, whoami_status=ans.status, user=data.get("name") if isinstance(data.get("name"), str) else None,
                   role=access.get("role") if isinstance(access.get("role"), str) else None)


# --- one model ----------------------------------------------------------------------

def _roots(ctx: ProbeContext, extra: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(root, kind, label): --dir folders (and cache_dir= found in the project) first, then
    every hub cache root."""
    from llmdoctor.cache import scan as hfcache

    out, seen = [], set()
    for path, label in extra:
        for cand in (path, os.path.join(path, "hub")):
            real = os.path.realpath(os.path.expanduser(cand))
            if real not in seen and os.path.isdir(real):
                seen.add(real)
                out.append((os.path.abspath(os.path.expanduser(cand)), "dir", label))
    for loc in hfcache.hub_roots(ctx.environ):
        real = os.path.realpath(loc.path)
        if real not in seen:
            seen.add(real)
            out.append((loc.path, "cache", loc.source))
    return out


def locate(spec: str, ctx: ProbeContext, roots: list[tuple[str, str, str]], origin: str = "--model") -> ModelInfo:
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        folder = os.path.abspath(path)
        return _read_folder(ModelInfo(spec, origin, None, "local", folder, searched=(folder,)), folder, None)
    if looks_like_path(spec) or not REPO_ID.match(spec) or "--" in spec or ".." in spec:
        return ModelInfo(spec, origin, source="none", searched=(os.path.abspath(path),),
                         error="no such folder" if looks_like_path(spec) else "neither a folder nor a hub repo id")
    searched = []
    for root, kind, label in roots:
        repo_dir = _cache_repo(root, spec)
        searched.append(repo_dir)
        if not os.path.isdir(repo_dir):
            continue
        snap, commit = snapshot(repo_dir)
        info = ModelInfo(spec, origin, spec, kind, snap, root, label, commit, tuple(searched))
        if snap is None:  # only partial blobs so far
            return replace(info, partials=tuple(_partials(repo_dir, None)))
        return replace(_read_folder(info, snap, repo_dir), cached_listing=_cached_tree(repo_dir, commit))
    return ModelInfo(spec, origin, spec, "hub" if not ctx.offline else "none", searched=tuple(searched))


def _read_folder(info: ModelInfo, folder: str, repo_dir: str | None) -> ModelInfo:
    files = _list_folder(folder)
    names = {f.name: f for f in files}
    indexes = []
    for name in WEIGHT_INDEXES:
        if name in names:
            indexes.append(_index(name, *read_json(os.path.join(folder, name))))
    cfg, cfg_error = read_json(os.path.join(folder, "config.json"))
    tok, _ = read_json(os.path.join(folder, "tokenizer_config.json"))
    tok = tok or {}
    return replace(info, files=tuple(files), indexes=tuple(indexes),
                   partials=tuple(_partials(repo_dir, folder if repo_dir is None else None)),
                   config=trim_config(cfg) if cfg else {}, config_error=cfg_error,
                   tokenizer_class=tok.get("tokenizer_class") if isinstance(tok.get("tokenizer_class"), str) else None,
                   tokenizer_remote=bool(tok.get("auto_map")), tokenizer_code=tuple(same_repo_code(tok)))


def code_sources(info: ModelInfo, environ) -> tuple[dict[str, str], str | None]:
    """The repo's .py files: from its folder, else transformers' modules cache (where
    trust_remote_code copies them)."""
    folders = []
    if info.path:
        folders.append(info.path)
    if info.repo_id:
        modules = environ.get("HF_MODULES_CACHE") or os.path.join(hf_home(environ), "modules")
        base = os.path.join(modules, "transformers_modules", *info.repo_id.split("/"))
        if info.revision:
            folders.append(os.path.join(base, info.revision))
        folders.append(base)
    for folder in folders:
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".py") and not n.startswith("__"))
        except OSError:
            continue
        out = {}
        for name in names[:MAX_CODE_FILES]:
            try:
                full = os.path.join(folder, name)
                out[name] = read_file(full, MAX_CODE_BYTES).decode("utf-8", "replace")
            except OSError:
                continue
        if out:
            return out, folder
    return {}, None


def _auto_map_files(cfg: dict) -> list[str]:
    out = []
    for value in (cfg.get("auto_map") or {}).values() if isinstance(cfg.get("auto_map"), dict) else ():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "." in item:
                ref = item.split("--")[-1]
                out.append(ref.rsplit(".", 1)[0] + ".py")
    return sorted(set(out))


def same_repo_code(cfg: dict) -> list[str]:
    """The .py files an auto_map names in this repo ("repo--module.Class" lives in another)."""
    out = []
    auto = cfg.get("auto_map") if isinstance(cfg, dict) and isinstance(cfg.get("auto_map"), dict) else {}
    for value in auto.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "." in item and "--" not in item:
                out.append(item.rsplit(".", 1)[0] + ".py")
    return sorted(set(out))


def _fetch_code(endpoint, info: ModelInfo, environ, token, deadline) -> dict[str, str]:
    wanted = _auto_map_files(info.config)
    if info.hub and info.hub.listing:
        wanted = sorted(set(wanted) | {n for n in info.hub.listing if n.endswith(".py") and "/" not in n})
    out = {}
    rev = quote((info.hub.sha if info.hub else None) or "main", safe="")
    for name in wanted[:MAX_CODE_FILES]:
        if time.monotonic() > deadline:
            break
        got = _get(endpoint, f"/{info.repo_id}/resolve/{rev}/{name}", environ, token, deadline, max_bytes=MAX_CODE_BYTES)
        if got.status == 200 and not got.truncated:
            out[name] = got.body.decode("utf-8", errors="replace")
    return out


def _needed_modules(info: ModelInfo, scan: modelcode.CodeScan | None) -> list[str]:
    names = {f.name for f in info.files} | set(info.hub.listing if info.hub else ())
    out = set(scan.modules if scan else ())
    if not info.tokenizer_remote and "tokenizer.json" not in names:
        if names & set(SPM_FILES):
            out |= {"sentencepiece", "google.protobuf"}
        if any(n.endswith(".tiktoken") for n in names):
            out.add("tiktoken")
    return sorted(out)


NESTED_CONFIGS = ("text_config", "llm_config", "language_config")


def _plausible(sub: dict) -> bool:
    """Numbers a config class can be built from without building something huge (Gemma3TextConfig
    makes a list of num_hidden_layers layer types)."""
    for k, v in sub.items():
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                abs(v) > (10_000 if k in ("num_hidden_layers", "n_layer", "num_layers") else 1 << 30):
            return False
    return True


def config_requests(info: ModelInfo) -> list[tuple[str, str, dict, str | None]]:
    """The nested configs of a multimodal model to have completed with transformers' defaults:
    (section, model_type, given, section to pick from the result). A section names its own
    model_type (llava's text_config: llama); else its parent's config class builds it (not for
    a config of the repo's own code)."""
    cfg = info.config
    out = []
    for section in NESTED_CONFIGS:
        sub = cfg.get(section)
        if not isinstance(sub, dict) or not _plausible(sub):
            continue
        if isinstance(sub.get("model_type"), str) and sub["model_type"]:
            out.append((section, sub["model_type"], sub, None))
        elif isinstance(cfg.get("model_type"), str) and not (isinstance(cfg.get("auto_map"), dict) and
                                                              "AutoConfig" in cfg["auto_map"]):
            out.append((section, cfg["model_type"], {section: sub}, section))
    return out


def target_request(infos: list[tuple[ModelInfo, modelcode.CodeScan | None]], model_types: bool = True,
                   configs: bool = True) -> dict:
    modules, names, members = set(), set(), {}
    for info, scan in infos:
        modules |= set(_needed_modules(info, scan))
        if scan is None:
            continue
        for imp in scan.tf_imports:
            names.add((imp.module, imp.name))
        for use in scan.member_uses:
            for mod, cls in use.bases:
                members.setdefault((mod, cls), set()).add(use.attr)
    configs = [[f"{i}:{section}", mt, given, pick] for i, (info, _) in enumerate(infos)
               for section, mt, given, pick in config_requests(info)] if configs else []
    return {"modules": sorted(modules), "names": sorted([m, n] for m, n in names if m),
            "members": sorted([m, c, sorted(a)] for (m, c), a in members.items()), "model_types": model_types,
            "configs": configs}


def config_defaults(i: int, info: ModelInfo, answer: dict | None, error: str | None) -> dict:
    """The ModelInfo fields for model ``i``'s completed nested configs, from the target's answer."""
    asked = config_requests(info)
    if not asked:
        return {}
    got = {item[0]: item[1:] for item in (answer or {}).get("configs") or []
           if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)}
    filled, errors = {}, []
    for section, *_ in asked:
        value, why = got.get(f"{i}:{section}", (None, error or "not answered"))
        if isinstance(value, dict):  # the shape, not what transformers stamps on any config it writes
            filled[section] = {k: v for k, v in trim_config(value).items() if v is not None and k not in
                               ("transformers_version", "_name_or_path", "architectures", "auto_map")}
        else:
            errors.append(str(why)[:400])
    return {"config_defaults": filled, "config_defaults_error": errors[0] if errors else None}


def ask_target(ctx: ProbeContext, request: dict, timeout: float) -> tuple[dict | None, str | None]:
    done = run_script(ctx, ["model-env", json.dumps(request)], timeout)
    data = next(iter(probe_lines(done.stdout)), None)
    if isinstance(data, dict):
        return data, None
    if done.timed_out:
        return None, f"the target interpreter did not answer within {timeout:g} s"
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"the target interpreter failed: {done.start_error or tail}"[:400]


def code_facts(scan: modelcode.CodeScan, folder: str | None, answer: dict | None) -> CodeFacts:
    names = {(m, n): state for m, n, state in (answer or {}).get("names") or []} if answer else {}
    members = {(m, c): (state, set(missing)) for m, c, state, missing in (answer or {}).get("members") or []} \
        if answer else {}
    modules = (answer or {}).get("modules") or {}
    issues, unknown = [], []
    for imp in scan.tf_imports:
        state = names.get((imp.module, imp.name))
        what = f"{imp.module}.{imp.name}" if imp.name else imp.module
        if state == "missing":
            issues.append(CodeIssue("missing-name", imp.file, imp.line, what))
        elif state == "no-module":
            issues.append(CodeIssue("missing-module", imp.file, imp.line, what))
        elif state is None or state.startswith("error"):
            unknown.append(f"{what}: {state or 'not answered'}")
    for use in scan.member_uses:
        states = [members.get(tuple(b)) for b in use.bases]
        if not states or any(s is None or s[0] != "ok" for s in states):
            continue  # a base that cannot be looked up: nothing is claimed
        if all(use.attr in s[1] for s in states):
            issues.append(CodeIssue("missing-member", use.file, use.line, f"{use.cls}.{use.attr}",
                                    " and ".join(f"{m}.{c}" for m, c in use.bases)))
    missing = tuple(m for m in scan.modules if modules.get(m) is False)
    return CodeFacts(files=scan.files, read_from=folder, modules=scan.modules, missing_modules=missing,
                     names_checked=len(scan.tf_imports), members_checked=len(scan.member_uses), issues=tuple(issues),
                     unknown=tuple(unknown[:20]), init_order=scan.init_order, overrides=scan.overrides,
                     vocab_files=scan.vocab_files, relative=scan.relative, errors=scan.errors)


def _dest(info: ModelInfo, roots: list[tuple[str, str, str]], environ) -> str | None:
    if info.source == "local":
        return info.path
    if info.root:
        return info.root
    return roots[0][0] if roots and roots[0][1] == "dir" else next((r for r, k, _ in roots if k == "cache"), None)


def _locate_one(spec: str, ctx, roots, origin: str) -> ModelInfo:
    """``locate``, and one model that cannot be read (a folder no reader expected) is that
    model's error, not the loss of every model's facts."""
    try:
        return locate(spec, ctx, roots, origin)
    except Exception as exc:  # noqa: BLE001
        return ModelInfo(spec=spec, origin=origin, error=f"could not be read ({_what(exc)})")


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def probe_model(ctx: ProbeContext) -> ModelFacts:
    req: ModelRequest = getattr(ctx, "model", None) or ModelRequest()
    environ = ctx.environ
    endpoint = (environ.get("HF_ENDPOINT") or DEFAULT_HUB).rstrip("/")
    hub_offline = _truthy(environ.get("HF_HUB_OFFLINE")) or _truthy(environ.get("TRANSFORMERS_OFFLINE"))
    base = ModelFacts(request=req, endpoint=endpoint, online=not ctx.offline and not hub_offline,
                      hub_offline_env=hub_offline, hf_transfer_env=_truthy(environ.get("HF_HUB_ENABLE_HF_TRANSFER")))
    if not req.models and not req.project:
        return base
    project = scan_project(req.project) if req.project else None
    extra = [(d, "--dir") for d in req.dirs]
    if project is not None:
        extra += [(d, "cache_dir= in the project") for d in project.cache_dirs]
    roots = _roots(ctx, extra)
    specs = [(s, "--model") for s in req.models]
    if project is not None:
        seen = set(req.models)
        for hit in project.hits:
            if hit.rule == "trust-remote-code" and hit.model and hit.model not in seen:
                seen.add(hit.model)
                specs.append((hit.model, "project"))
    infos = [_locate_one(s, ctx, roots, origin) for s, origin in specs]
    token_f, token = token_facts(environ)
    # from_pretrained passes token=None: with HF_HUB_DISABLE_IMPLICIT_TOKEN huggingface_hub then sends
    # no token at all, HF_TOKEN's included (build_hf_headers); the hub is asked as it would be
    sent = None if token_f.implicit_disabled else token
    started = time.monotonic()
    deadline = started + NET_BUDGET_S
    others = [o for o in stored_tokens(environ) if o[2] != sent][:MAX_STORED_TOKENS] if sent else []
    if base.online:
        if token:
            token_f = whoami(endpoint, environ, token, deadline, token_f)
        for i, info in enumerate(infos):
            if info.repo_id is None or info.origin != "--model" or time.monotonic() > deadline:
                continue
            hub, fetched = hub_info(endpoint, info.repo_id, environ, sent, deadline)
            if others and hub.file_status in (401, 403, 404):  # would a stored token be served?
                rev = quote(hub.sha or "main", safe="")
                hub = replace(hub, stored_status={
                    k: _get(endpoint, f"/{info.repo_id}/resolve/{rev}/config.json", environ, t, deadline).status
                    for k, _, t in others if time.monotonic() < deadline})
            info = replace(info, hub=hub)
            if info.source == "hub":
                cfg = fetched.get("config.json")
                data = None
                try:
                    data = json.loads(cfg.decode("utf-8")) if cfg else None
                except (ValueError, UnicodeDecodeError, RecursionError):
                    pass
                tok = None
                try:
                    tok = json.loads(fetched["tokenizer_config.json"].decode("utf-8")) \
                        if "tokenizer_config.json" in fetched else None
                except (ValueError, UnicodeDecodeError, RecursionError):
                    pass
                info = replace(info, config=trim_config(data) if isinstance(data, dict) else {},
                               config_error=None if isinstance(data, dict) else "not fetched",
                               tokenizer_class=tok.get("tokenizer_class") if isinstance(tok, dict) and
                               isinstance(tok.get("tokenizer_class"), str) else None,
                               tokenizer_remote=bool(isinstance(tok, dict) and tok.get("auto_map")),
                               tokenizer_code=tuple(same_repo_code(tok)) if isinstance(tok, dict) else (),
                               revision=hub.sha)
            infos[i] = info
        served = {k for info in infos if info.hub for k, st in info.hub.stored_status.items() if st == 200}
        stored = []
        for key, active, t in others:
            if key in served:  # whose token it is, for the finding that names it
                who = whoami(endpoint, environ, t, deadline, TokenFacts())
                stored.append(StoredToken(key, active, who.whoami_status, who.user))
            elif any(info.hub and key in info.hub.stored_status for info in infos):
                stored.append(StoredToken(key, active))
        token_f = replace(token_f, stored=tuple(stored))
    scans: list[tuple[ModelInfo, modelcode.CodeScan | None, str | None]] = []
    for info in infos:
        try:
            sources, folder = code_sources(info, environ)
            remote = bool(info.config.get("auto_map")) or info.tokenizer_remote
            if not sources and remote and info.source == "hub" and base.online:
                sources = _fetch_code(endpoint, info, environ, sent, started + NET_BUDGET_S + 3)
                folder = "hub" if sources else None
            scans.append((info, modelcode.scan(sources) if sources and remote else None, folder))
        except Exception:  # noqa: BLE001 - one model's code that cannot be read (model.remote-code says
            scans.append((info, None, None))  # so) loses no other model
    answer, target_error = (None, None)
    if infos:
        answer, target_error = ask_target(ctx, target_request([(i, s) for i, s, _ in scans]), TARGET_BUDGET_S)
    types = set((answer or {}).get("model_types") or ()) if answer and answer.get("model_types") else None
    modules = (answer or {}).get("modules") or {}
    out = []
    for info, scan, folder in scans:
        mt = info.config.get("model_type")
        dest = _dest(info, roots, environ)
        out.append(replace(
            info, code=code_facts(scan, folder, answer) if scan is not None else None,
            **config_defaults(len(out), info, answer, target_error),
            model_type_known=(mt in types) if types is not None and isinstance(mt, str) else None,
            needs={m: modules.get(m) for m in _needed_modules(info, scan)},
            dest=dest, dest_free_bytes=_free(dest) if dest else None))
    return replace(base, models=tuple(out), token=token_f, target_error=target_error,
                   transformers_model_types=len(types) if types is not None else None, project=project)
