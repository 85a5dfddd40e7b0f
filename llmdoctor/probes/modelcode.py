"""A model repo's own code (``trust_remote_code``), read with :mod:`ast`: never imported,
never run.

What it finds, as data for the model probe to check against the target environment:

- the packages the code imports outside ``try`` blocks and ``if is_..._available()``
  blocks: transformers' own ``check_imports`` (``dynamic_module_utils.get_imports``)
  refuses to load the code when one of them is missing;
- the transformers names it imports (``from transformers.generation.utils import X``):
  one the installed transformers lacks is an ImportError at load time;
- the methods its classes call on ``self`` or ``super()`` that no class of the code
  defines, so they must come from the transformers (or torch) base classes: one the
  installed transformers lacks is an AttributeError at run time (ChatGLM3 / GLM-4's
  ``self._extract_past_from_model_output``, gone in transformers 4.49);
- tokenizer classes that call ``super().__init__()`` before setting the attributes their
  ``get_vocab()`` reads: from transformers 4.34 the base ``__init__`` calls ``get_vocab()``
  (through ``_add_tokens``), hence ChatGLM's "'ChatGLMTokenizer' object has no attribute
  'sp_tokenizer'";
- an override of ``_set_gradient_checkpointing(module, value)``, the pre-4.35 hook;
- the vocabulary files its tokenizer classes name (``vocab_files_names``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

MAX_FILE_BYTES = 2 << 20
#: modules whose classes the target may import to look members up (never the model's code)
BASE_PACKAGES = ("transformers", "torch")


@dataclass(frozen=True)
class TfImport:
    """``from transformers.X import name`` (name None: ``import transformers.X``)."""

    file: str
    line: int
    module: str
    name: str | None = None


@dataclass(frozen=True)
class MemberUse:
    """A class of the code calls ``self.attr(...)`` (or ``super().attr(...)``) that no class
    of the code defines: it must come from ``bases``."""

    file: str
    line: int
    cls: str
    attr: str
    bases: tuple[tuple[str, str], ...] = ()  #: (module, class) of transformers / torch it inherits


@dataclass(frozen=True)
class InitOrder:
    """A tokenizer class whose ``__init__`` sets ``attrs`` only after ``super().__init__()``,
    while what the base ``__init__`` reaches (``entry``) reads them."""

    file: str
    line: int
    cls: str
    attrs: tuple[str, ...]
    entry: str = "get_vocab"


@dataclass(frozen=True)
class Override:
    """A method of the code overriding a transformers hook, with its parameters."""

    file: str
    line: int
    cls: str
    name: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeScan:
    files: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  #: top-level modules transformers' check_imports requires
    tf_imports: tuple[TfImport, ...] = ()
    member_uses: tuple[MemberUse, ...] = ()
    init_order: tuple[InitOrder, ...] = ()
    overrides: tuple[Override, ...] = ()
    vocab_files: tuple[str, ...] = ()
    relative: tuple[str, ...] = ()  #: files its relative imports need (``from .configuration_x import``)
    errors: tuple[str, ...] = ()  #: files that could not be read or parsed


# --- imports, as transformers' get_imports sees them -----------------------------

def _available_guard(node: ast.If) -> bool:
    """``if is_flash_attn_2_available():`` and the other ``is_X_available()`` guards."""
    for sub in ast.walk(node.test):
        if isinstance(sub, ast.Call):
            fn = sub.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name.startswith("is_") and name.endswith("available"):
                return True
    return False


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def required_modules(tree: ast.AST) -> set[str]:
    """Top-level modules imported outside try blocks and ``is_..._available()`` guards,
    relative imports left out: what ``check_imports`` asks the environment for."""
    out: set[str] = set()

    def walk(node):
        if isinstance(node, ast.Try) or (hasattr(ast, "TryStar") and isinstance(node, getattr(ast, "TryStar"))):
            return
        if isinstance(node, ast.If) and _available_guard(node):
            return
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names if a.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return {m for m in out if m}


def _tf_imports(file: str, tree: ast.AST) -> list[TfImport]:
    """transformers imports executed at load time: not under try (a fallback exists) nor
    under ``if TYPE_CHECKING`` (never executed)."""
    out: list[TfImport] = []

    def walk(node):
        if isinstance(node, ast.Try) or (isinstance(node, ast.If) and (_type_checking(node) or _available_guard(node))):
            return
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "transformers":
            for alias in node.names:
                if alias.name != "*":
                    out.append(TfImport(file, node.lineno, node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("transformers."):
                    out.append(TfImport(file, node.lineno, alias.name, None))
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return out


# --- classes -----------------------------------------------------------------

@dataclass
class _Class:
    file: str  #: module stem, e.g. "modeling_chatglm"
    name: str
    line: int
    node: ast.ClassDef
    local_bases: list = field(default_factory=list)  #: (file, name) of bases defined in the code
    ext_bases: list = field(default_factory=list)  #: (module, name) of imported bases; ("?", text) unknown
    defined: set = field(default_factory=set)  #: methods, class attributes, self.X assignments
    dynamic: bool = False  #: __getattr__ / setattr(self, <expr>): members cannot be listed


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _import_table(tree: ast.Module) -> dict[str, tuple[str, str | None, int]]:
    """Local name -> (module, attribute or None, relative level), from every import of the file."""
    table: dict[str, tuple[str, str | None, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name != "*":
                    table[a.asname or a.name] = (node.module or "", a.name, node.level)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    table[a.asname] = (a.name, None, 0)
                else:
                    top = a.name.split(".")[0]
                    table.setdefault(top, (top, None, 0))
    return table


def _self_attr_targets(node) -> list[str]:
    out = []
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for t in targets:
        for sub in ast.walk(t):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                out.append(sub.attr)
    return out


REGISTERS = ("register_buffer", "register_parameter", "add_module", "register_module")


def _class_members(cls: ast.ClassDef) -> tuple[set[str], bool]:
    defined: set[str] = set()
    dynamic = False
    for item in cls.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(item.name)
            if item.name in ("__getattr__", "__getattribute__"):
                dynamic = True
        elif isinstance(item, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in (item.targets if isinstance(item, ast.Assign) else [item.target]):
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Name):
                        defined.add(sub.id)
    for sub in ast.walk(cls):
        if isinstance(sub, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            defined.update(_self_attr_targets(sub))
        elif isinstance(sub, (ast.For, ast.With, ast.comprehension)):
            tgt = sub.target if not isinstance(sub, ast.With) else None
            if tgt is not None:
                for t in ast.walk(tgt):
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        defined.add(t.attr)
        elif isinstance(sub, ast.Call):
            fn = sub.func
            name = _dotted(fn) or ""
            if name in ("setattr", "object.__setattr__") or name.endswith(".__setattr__") or \
                    (isinstance(fn, ast.Attribute) and fn.attr in REGISTERS):
                args = sub.args[1:] if name in ("setattr", "object.__setattr__") else sub.args
                if name in ("setattr", "object.__setattr__") and not (sub.args and isinstance(sub.args[0], ast.Name)
                                                                    and sub.args[0].id == "self"):
                    continue
                if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                    defined.add(args[0].value)
                else:
                    dynamic = True
            elif name in ("self.__dict__.update", "vars"):
                dynamic = True
    return defined, dynamic


def _asked_names(tree: ast.AST) -> set[str]:
    """Names the code asks hasattr / getattr / setattr / delattr about: it expects them to be
    missing sometimes."""
    return {n.args[1].value for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and
            n.func.id in ("hasattr", "getattr", "setattr", "delattr") and len(n.args) >= 2 and
            isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)}


def _assigned_names(tree: ast.AST) -> set[str]:
    """Attribute names the code sets on any object: it provides them itself."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Attribute):
                        out.add(sub.attr)
    return out


def _in_try(parents: dict, node) -> bool:
    cur = parents.get(id(node))
    while cur is not None:
        if isinstance(cur, ast.Try):
            return True
        if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return False
        cur = parents.get(id(cur))
    return False


def _is_super_call(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _method(cls: ast.ClassDef, name: str):
    return next((i for i in cls.body if isinstance(i, (ast.FunctionDef, ast.AsyncFunctionDef)) and i.name == name),
                None)


def _self_reads(fn) -> set[str]:
    return {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "self" and isinstance(n.ctx, ast.Load)}


def _init_order(c: _Class, all_classes: dict, guarded: set[str] = frozenset()) -> InitOrder | None:
    """super().__init__() first, then attributes that get_vocab() (or an overriding
    _add_tokens) reads: the base __init__ of transformers >= 4.34 calls them before they exist."""
    init = _method(c.node, "__init__")
    if init is None:
        return None
    super_line = None
    for node in ast.walk(init):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__" and \
                (_is_super_call(node.func.value) or _dotted(node.func.value) in {n for _, n in c.ext_bases}):
            super_line = node.lineno if super_line is None else min(super_line, node.lineno)
    if super_line is None:
        return None
    before, after = set(), {}
    for node in ast.walk(init):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for name in _self_attr_targets(node):
                if node.lineno < super_line:
                    before.add(name)
                else:
                    after.setdefault(name, node.lineno)
    late = {k: v for k, v in after.items() if k not in before}
    if not late:
        return None
    methods = {}
    for k in _chain(c, all_classes):
        for item in all_classes[k].node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name != "__init__":
                methods.setdefault(item.name, item)
    class_level = set()
    for k in _chain(c, all_classes):
        for item in all_classes[k].node.body:
            if isinstance(item, (ast.Assign, ast.AnnAssign)):
                for t in (item.targets if isinstance(item, ast.Assign) else [item.target]):
                    if isinstance(t, ast.Name):
                        class_level.add(t.id)
    entry = "_add_tokens" if "_add_tokens" in methods else "get_vocab"
    todo = [entry]
    if entry == "_add_tokens" and any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and
                                      n.func.attr == "_add_tokens" and _is_super_call(n.func.value)
                                      for n in ast.walk(methods["_add_tokens"])):
        todo.append("get_vocab")  # the base _add_tokens calls get_vocab()
    if not any(t in methods for t in todo):
        return None
    seen, reads = set(), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in methods:
            continue
        seen.add(name)
        for attr in _self_reads(methods[name]):
            if attr in methods:
                todo.append(attr)
            else:
                reads.add(attr)
    hit = tuple(sorted(a for a in reads if a in late and a not in class_level and a not in guarded))
    if not hit:
        return None
    return InitOrder(c.file + ".py", min(late[a] for a in hit), c.name, hit, entry)


def _chain(c: _Class, all_classes: dict, seen=None) -> list:
    """The class and its bases defined in the code, nearest first."""
    seen = set() if seen is None else seen
    key = (c.file, c.name)
    if key in seen:
        return []
    seen.add(key)
    out = [key]
    for base in c.local_bases:
        if base in all_classes:
            out += _chain(all_classes[base], all_classes, seen)
    return out


def _ext_bases(c: _Class, all_classes: dict) -> list:
    out = []
    for key in _chain(c, all_classes):
        for b in all_classes[key].ext_bases:
            if b not in out:
                out.append(b)
    return out


def scan(sources: dict[str, str]) -> CodeScan:
    """``sources``: file name (``modeling_x.py``) -> its text."""
    modules: set[str] = set()
    tf: list[TfImport] = []
    errors: list[str] = []
    trees: dict[str, ast.Module] = {}
    for name, text in sorted(sources.items()):
        try:
            tree = ast.parse(text, filename=name)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        trees[name[:-3] if name.endswith(".py") else name] = tree
        modules |= required_modules(tree)
        tf += _tf_imports(name, tree)
    local_stems = set(trees)
    relative = sorted({f"{(n.module or '').split('.')[0]}.py" for t in trees.values() for n in ast.walk(t)
                       if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module} |
                      {f"{a.name}.py" for t in trees.values() for n in ast.walk(t)
                       if isinstance(n, ast.ImportFrom) and n.level == 1 and not n.module for a in n.names})
    classes: dict[tuple[str, str], _Class] = {}
    guarded: set[str] = set()  #: asked about or assigned somewhere: not claimed missing
    asked: set[str] = set()  #: asked about with hasattr / getattr
    vocab: set[str] = set()
    for stem, tree in trees.items():
        asked |= _asked_names(tree)
        guarded |= asked | _assigned_names(tree)
        table = _import_table(tree)
        top_classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            c = _Class(stem, node.name, node.lineno, node)
            c.defined, c.dynamic = _class_members(node)
            for base in node.bases:
                text = _dotted(base)
                if text is None:
                    c.ext_bases.append(("?", ast.dump(base)[:60]))
                    continue
                head, _, rest = text.partition(".")
                if not rest and head in top_classes:
                    c.local_bases.append((stem, head))
                elif head in table:
                    module, attr, level = table[head]
                    if level:  # from .configuration_x import XConfig
                        other = module.split(".")[-1] if module else attr
                        if module and other in local_stems and not rest:
                            c.local_bases.append((other, attr))
                        elif not module and attr in local_stems and rest:  # from . import other; other.Cls
                            c.local_bases.append((attr, rest))
                        else:
                            c.ext_bases.append(("?", text))
                    elif attr is None:  # import torch.nn as nn; nn.Module
                        mod, _, cls_name = f"{module}.{rest}".rpartition(".")
                        c.ext_bases.append((mod, cls_name))
                    elif rest:  # from torch import nn; nn.Module
                        mod, _, cls_name = f"{module}.{attr}.{rest}".rpartition(".")
                        c.ext_bases.append((mod, cls_name))
                    else:
                        c.ext_bases.append((module, attr))
                elif text in ("object",):
                    continue
                else:
                    c.ext_bases.append(("?", text))
            classes[(stem, node.name)] = c
            for item in node.body:
                if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "vocab_files_names"
                                                        for t in item.targets) and isinstance(item.value, ast.Dict):
                    vocab |= {v.value for v in item.value.values if isinstance(v, ast.Constant)
                              and isinstance(v.value, str)}
        for node in tree.body:  # VOCAB_FILES_NAMES = {...} at module level, the usual spelling
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.upper() == "VOCAB_FILES_NAMES"
                                                    for t in node.targets) and isinstance(node.value, ast.Dict):
                vocab |= {v.value for v in node.value.values if isinstance(v, ast.Constant)
                          and isinstance(v.value, str)}
    uses: list[MemberUse] = []
    init_order: list[InitOrder] = []
    overrides: list[Override] = []
    for key, c in classes.items():
        chain = _chain(c, classes)
        bases = _ext_bases(c, classes)
        known = set().union(*(classes[k].defined for k in chain))
        dynamic = any(classes[k].dynamic for k in chain)
        tf_bases = [b for b in bases if b[0].split(".")[0] == "transformers"]
        checkable = bases and tf_bases and all(b[0].split(".")[0] in BASE_PACKAGES for b in bases)
        if any(n in known for n in ("generate", "prepare_inputs_for_generation")) and \
                any(b[0].startswith("torch") or b[0].startswith("transformers") for b in bases):
            # transformers adds GenerationMixin to such remote classes (add_generation_mixin_to_remote_model)
            if ("transformers", "GenerationMixin") not in bases:
                bases = bases + [("transformers", "GenerationMixin")]
        parents = {}
        for node in ast.walk(c.node):
            for child in ast.iter_child_nodes(node):
                parents[id(child)] = node
        if checkable and not dynamic:
            above = set().union(*(classes[k].defined for k in chain[1:])) if len(chain) > 1 else set()
            seen_attr = set()
            for node in ast.walk(c.node):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                target, attr = node.func.value, node.func.attr
                if attr.startswith("__") or attr in guarded or attr in seen_attr or _in_try(parents, node):
                    continue
                if isinstance(target, ast.Name) and target.id == "self" and attr not in known:
                    pass
                elif _is_super_call(target) and attr not in above:
                    pass
                else:
                    continue
                seen_attr.add(attr)
                uses.append(MemberUse(c.file + ".py", node.lineno, c.name, attr, tuple(tuple(b) for b in bases)))
        if tf_bases:
            found = _init_order(c, classes, asked)
            if found is not None and any("Tokenizer" in b[1] for b in tf_bases):
                init_order.append(found)
            hook = _method(c.node, "_set_gradient_checkpointing")
            if hook is not None:
                params = tuple(a.arg for a in hook.args.args[1:] + hook.args.kwonlyargs)
                overrides.append(Override(c.file + ".py", hook.lineno, c.name, hook.name, params))
    return CodeScan(files=tuple(sorted(sources)), modules=tuple(sorted(modules)), tf_imports=tuple(tf),
                    member_uses=tuple(uses), init_order=tuple(init_order), overrides=tuple(overrides),
                    vocab_files=tuple(sorted(vocab)), relative=tuple(relative), errors=tuple(errors))
