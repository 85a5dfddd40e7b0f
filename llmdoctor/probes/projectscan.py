"""Scan a project's scripts and notebooks for known traps, without running anything:
Python files are parsed with :mod:`ast`, notebooks read as JSON and their code cells
parsed the same way (IPython ``%magic`` / ``!shell`` lines are read as text, not parsed).

The scanner reports *what is written where* (a rule id, file, line, the line's text, the
model a ``from_pretrained`` call names); whether it is a problem on this machine is the
checks' call (checks/model.py), which know what is installed and whether there is a GPU.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass

MAX_FILES = 2000
MAX_FILE_BYTES = 2 << 20
MAX_NOTEBOOK_BYTES = 32 << 20  #: a notebook's outputs (plots as base64) make it large; its code is small
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", "env", ".env", "site-packages",
             ".ipynb_checkpoints", ".tox", ".mypy_cache", ".pytest_cache", "build", "dist", ".cache", "wandb"}
CA_VARS = ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
LOADERS = ("from_pretrained",)
QUANT_KW = ("load_in_8bit", "load_in_4bit")


@dataclass(frozen=True)
class Hit:
    rule: str  #: ca-bundle-empty | verify-false | bnb-quantization | trust-remote-code | device-map | hard-coded-cuda
    file: str  #: relative to the project folder
    line: int
    text: str  #: the source line (trimmed)
    cell: int | None = None  #: notebook cell number (1-based)
    model: str | None = None  #: the model a from_pretrained call names, when it is a literal
    detail: str = ""  #: e.g. which variable, which keyword


@dataclass(frozen=True)
class ProjectFacts:
    root: str
    files: int = 0  #: scripts and notebooks read
    hits: tuple[Hit, ...] = ()
    cache_dirs: tuple[str, ...] = ()  #: cache_dir= folders the code passes to from_pretrained
    errors: tuple[str, ...] = ()  #: files that could not be read or parsed
    truncated: bool = False
    error: str | None = None  #: the folder itself could not be read


def _const_str(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return "?"


def _truthy(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _empty_str(node) -> bool:
    """A string literal that is empty or only blanks ("" and "  " alike)."""
    text = _const_str(node)
    return text is not None and not text.strip()


def _env_dict_hits(node) -> list[str]:
    """CA variables a dict literal ({"CURL_CA_BUNDLE": ""}) or dict(CURL_CA_BUNDLE="") empties."""
    if isinstance(node, ast.Dict):
        return [_const_str(k) for k, v in zip(node.keys, node.values) if _const_str(k) in CA_VARS and _empty_str(v)]
    if isinstance(node, ast.Call) and _dotted(node.func) == "dict":
        return [k.arg for k in node.keywords if k.arg in CA_VARS and _empty_str(k.value)]
    return []


def _cuda_literal(text: str | None) -> bool:
    return bool(text) and re.fullmatch(r"cuda(:\d+)?", text) is not None


class _Visitor(ast.NodeVisitor):
    def __init__(self, lines: list[str]):
        self.lines = lines
        self.hits: list[tuple[str, int, str | None, str]] = []  #: (rule, line, model, detail)
        self.strings: dict[str, str] = {}  #: NAME = "literal" at any level (model ids kept in a variable)
        self.cache_dirs: list[str] = []
        self.guarded = 0  #: inside `if torch.cuda.is_available():` (or any test naming cuda)

    def hit(self, rule: str, node, model: str | None = None, detail: str = ""):
        if rule == "hard-coded-cuda" and self.guarded:
            return
        self.hits.append((rule, getattr(node, "lineno", 1), model, detail))

    def visit_If(self, node: ast.If):
        guard = any(isinstance(n, (ast.Attribute, ast.Name)) and "cuda" in (getattr(n, "attr", "") or
                                                                           getattr(n, "id", "")).lower()
                    for n in ast.walk(node.test))
        self.visit(node.test)
        self.guarded += guard
        for child in node.body:
            self.visit(child)
        self.guarded -= guard
        for child in node.orelse:
            self.visit(child)

    def visit_Assign(self, node: ast.Assign):
        value = _const_str(node.value)
        for t in node.targets:
            if isinstance(t, ast.Name) and value is not None:
                self.strings[t.id] = value
            # os.environ["CURL_CA_BUNDLE"] = ""
            if isinstance(t, ast.Subscript) and _dotted(t.value).endswith("environ"):
                key = _const_str(t.slice)
                if key in CA_VARS and value is not None and not value.strip():
                    self.hit("ca-bundle-empty", node, detail=key)
        # session.verify = False: every request of that requests.Session skips verification
        if isinstance(node.value, ast.Constant) and node.value.value is False and \
                any(isinstance(t, ast.Attribute) and t.attr == "verify" for t in node.targets):
            self.hit("verify-false", node, detail=f"{_dotted(node.targets[0])} = False")
        # ssl._create_default_https_context = ssl._create_unverified_context
        if any(_dotted(t).endswith("_create_default_https_context") for t in node.targets) and \
                _dotted(node.value).endswith("_create_unverified_context"):
            self.hit("verify-false", node, detail="ssl._create_unverified_context")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign):
        # os.environ |= {"CURL_CA_BUNDLE": ""}
        if isinstance(node.op, ast.BitOr) and _dotted(node.target).endswith("environ"):
            for key in _env_dict_hits(node.value):
                self.hit("ca-bundle-empty", node, detail=key)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call):
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        # os.environ.setdefault / update / putenv with an empty CA bundle
        if last in ("setdefault", "putenv", "__setitem__") and len(node.args) >= 2 and \
                _const_str(node.args[0]) in CA_VARS and _empty_str(node.args[1]):
            self.hit("ca-bundle-empty", node, detail=_const_str(node.args[0]) or "")
        if last == "update" and name.endswith("environ.update"):
            for k in node.keywords:
                if k.arg in CA_VARS and _empty_str(k.value):
                    self.hit("ca-bundle-empty", node, detail=k.arg)
            for arg in node.args:
                for key in _env_dict_hits(arg):
                    self.hit("ca-bundle-empty", node, detail=key)
        verify = _kw(node, "verify")
        if isinstance(verify, ast.Constant) and verify.value is False:
            self.hit("verify-false", node, detail=name)
        model = None
        if last in LOADERS and node.args:
            first = node.args[0]
            model = _const_str(first) or (self.strings.get(first.id) if isinstance(first, ast.Name) else None)
        if last in LOADERS or last == "BitsAndBytesConfig" or last == "pipeline":
            for kw in QUANT_KW:
                if _truthy(_kw(node, kw)):
                    self.hit("bnb-quantization", node, model, kw)
            if last == "BitsAndBytesConfig":
                self.hit("bnb-quantization", node, None, "BitsAndBytesConfig")
            if _truthy(_kw(node, "trust_remote_code")) and last in LOADERS:
                self.hit("trust-remote-code", node, model)
            dm = _kw(node, "device_map")
            if dm is not None and not (isinstance(dm, ast.Constant) and dm.value is None):
                self.hit("device-map", node, model, _const_str(dm) or _dotted(dm))
                if _cuda_literal(_const_str(dm)):
                    self.hit("hard-coded-cuda", node, model, f"device_map={_const_str(dm)!r}")
            cache_dir = _const_str(_kw(node, "cache_dir"))
            if cache_dir and last in LOADERS:
                self.cache_dirs.append(cache_dir)
        # .to("cuda"), torch.device("cuda"), device="cuda", .cuda()
        if last in ("to", "device") and node.args and _cuda_literal(_const_str(node.args[0])):
            self.hit("hard-coded-cuda", node, None, f"{last}({_const_str(node.args[0])!r})")
        elif last == "cuda" and isinstance(node.func, ast.Attribute) and not name.startswith("torch.cuda"):
            self.hit("hard-coded-cuda", node, None, ".cuda()")
        device = _const_str(_kw(node, "device"))
        if _cuda_literal(device):
            self.hit("hard-coded-cuda", node, None, f"device={device!r}")
        self.generic_visit(node)


MAGIC_ENV = re.compile(r"^\s*%env\s+(CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE)\s*[= ]\s*(['\"]{2})?\s*$")
SHELL_EXPORT = re.compile(r"^\s*!\s*export\s+(CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE)=(['\"]{2})?\s*$")


def scan_source(text: str) -> tuple[list[tuple[str, int, str | None, str]], list[str], str | None]:
    """Hits in one script or cell: (rule, line, model, detail); cache_dir= values; a parse error."""
    lines = text.splitlines()
    magic_hits = []
    code_lines = []
    for i, line in enumerate(lines, 1):
        m = MAGIC_ENV.match(line) or SHELL_EXPORT.match(line)
        if m:
            magic_hits.append(("ca-bundle-empty", i, None, m.group(1)))
        # IPython magics and shell escapes are not Python: blank them, keep the numbering
        code_lines.append("" if re.match(r"^\s*[%!]", line) else line)
    try:
        tree = ast.parse("\n".join(code_lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return magic_hits, [], f"{type(exc).__name__}: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', '?')})"
    v = _Visitor(lines)
    v.visit(tree)
    return magic_hits + v.hits, v.cache_dirs, None


def _line(lines: list[str], n: int) -> str:
    return lines[n - 1].strip()[:200] if 0 < n <= len(lines) else ""


def _files(root: str):
    count = 0
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if name.endswith((".py", ".ipynb")):
                count += 1
                if count > MAX_FILES:
                    yield None
                    return
                yield os.path.join(folder, name)


def _notebook_cells(path: str) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        data = json.load(fh)
    cells = data.get("cells") if isinstance(data, dict) else None
    if cells is None and isinstance(data, dict):  # nbformat 3: worksheets
        cells = [c for w in data.get("worksheets") or [] for c in (w.get("cells") or [])]
    out = []
    for i, cell in enumerate(cells or [], 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", cell.get("input", ""))
        text = "".join(src) if isinstance(src, list) else str(src)
        out.append((i, text))
    return out


def scan_project(root: str) -> ProjectFacts:
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        return ProjectFacts(root=root, error="not a folder" if os.path.exists(root) else "no such folder")
    hits: list[Hit] = []
    errors: list[str] = []
    cache_dirs: list[str] = []
    files = 0
    truncated = False
    for path in _files(root):
        if path is None:
            truncated = True
            break
        rel = os.path.relpath(path, root)
        try:
            if not os.path.isfile(path):  # a link to a device or a folder: nothing to read
                continue
            cap = MAX_NOTEBOOK_BYTES if path.endswith(".ipynb") else MAX_FILE_BYTES
            if os.path.getsize(path) > cap:
                errors.append(f"{rel}: larger than {cap >> 20} MiB, not read")
                continue
            if path.endswith(".ipynb"):
                units = _notebook_cells(path)
            else:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    units = [(None, fh.read())]
        except (OSError, ValueError, RecursionError, AttributeError, TypeError) as exc:  # a notebook of any shape
            errors.append(f"{rel}: {type(exc).__name__}: {exc}")
            continue
        files += 1
        for cell, text in units:
            found, dirs, error = scan_source(text)
            if error:
                errors.append(f"{rel}{f' cell {cell}' if cell else ''}: {error}")
            lines = text.splitlines()
            for rule, line, model, detail in found:
                hits.append(Hit(rule, rel, line, _line(lines, line), cell, model, detail))
            for d in dirs:
                full = os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(d)))
                if full not in cache_dirs:
                    cache_dirs.append(full)
    return ProjectFacts(root=root, files=files, hits=tuple(hits), cache_dirs=tuple(cache_dirs),
                        errors=tuple(errors), truncated=truncated)
