"""`llmdoctor check --model ID|PATH`: will this model download, load, fit and run here?

Pure functions of the facts probes/model.py gathers (plus the target environment, the
GPUs and the host). Every finding names the model; every prescription is the exact
command or code for this machine. Data and sources: checks/data/model.json.
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from llmdoctor.command import Command, run, template, unset
from llmdoctor.data import table
from llmdoctor.model import Status, check
from llmdoctor.platforms.paths import flavor
from llmdoctor.units import gib, size
from llmdoctor.versions import parse_version

from llmdoctor.benchmark.presets import arch_from_config

from llmdoctor.checks import model_fit
from llmdoctor.checks.python import pip_cmd
from llmdoctor.checks.requirements import installed_versions

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx", ".ot", ".ckpt")
SPM_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
#: cache roots huggingface_hub itself downloads into (hfcache.hub_roots labels): no --cache-dir needed
EFFECTIVE_ROOTS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "default")


def data() -> dict:
    return table("llmdoctor.checks", "model")


def rule(name: str) -> dict:
    return next(r for r in data()["rows"] if r["name"] == name)


def project_rule(name: str) -> dict:
    return next(r for r in data()["project_rules"] if r["name"] == name)


def dist_name(module: str) -> str:
    return data()["packages"]["map"].get(module, module.split(".")[0])


def label(info) -> str:
    return info.repo_id or info.spec


def _versions(facts) -> dict:
    t = facts.value("target")
    return installed_versions(t) if t is not None else {}


def _version(facts, name: str) -> Version | None:
    found = _versions(facts).get(canonicalize_name(name))
    return found[1] if found else None


def _models(facts, origin: str = "--model"):
    m = facts.value("model")
    return [i for i in (m.models if m else ()) if i.origin == origin]


# --- which files from_pretrained needs ------------------------------------------------

def _is_weight(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(WEIGHT_SUFFIXES) or base.endswith(".index.json") and \
        base.replace(".index.json", "").endswith((".safetensors", ".bin"))


def listing(info) -> tuple[dict[str, int], str]:
    """The hub's file listing of the snapshot read (name -> size) and where it comes from:
    the hub itself when it describes this commit, else the copy huggingface_hub cached."""
    if info.hub and info.hub.listing and (info.source == "hub" or info.hub.sha == info.revision):
        return info.hub.listing, "the hub's file listing"
    if info.cached_listing:
        return info.cached_listing, "the hub's file listing cached with the download"
    return {}, ""


#: files from_pretrained (model, generation config, tokenizer, processor) asks for besides weights and code
READ_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
              "special_tokens_map.json", "added_tokens.json", "chat_template.json", "chat_template.jinja",
              "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "sentencepiece.bpe.model",
              "preprocessor_config.json", "processor_config.json")


def needed_files(info) -> tuple[set[str], str]:
    """The files from_pretrained (model and tokenizer) reads, and where that list comes from:
    the hub's listing of this snapshot when there is one (online, or the copy huggingface_hub
    cached), else what the folder itself says (its weights index, code and tokenizer files).
    Files a repo carries that from_pretrained never asks for (README, params.json,
    consolidated weights, the other weights format) are not needed."""
    here = {f.name for f in info.files}
    listed, listed_from = listing(info)
    names = set(listed) | here
    top = {n for n in names if "/" not in n}
    st = any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in top)
    need: set[str] = {"config.json"}
    need.update(n for n in top if n in READ_FILES or n.endswith(".tiktoken"))
    need.update(f for f in info.tokenizer_code)
    need.update(_auto_map_files(info.config))
    if info.code:
        need.update(info.code.relative)
        need.update(f for f in info.code.vocab_files if "/" not in f)
    for idx in info.indexes:
        if idx.error is None and (idx.name.startswith("model.safetensors") or not st):
            need.add(idx.name)
            need.update(idx.shards)
    for n in top:
        if st and n in ("model.safetensors", "model.safetensors.index.json") or \
                not st and n in ("pytorch_model.bin", "pytorch_model.bin.index.json"):
            need.add(n)
        elif listed and n.endswith(".safetensors" if st else ".bin") and n.startswith(("model-", "pytorch_model-")):
            need.add(n)
    if not any(_is_weight(n) for n in need):
        need.add("model.safetensors")  # no weights at all: name what from_pretrained looks for first
    return need, listed_from or "the folder's own files (weights index, code, tokenizer)"


def _auto_map_files(cfg: dict) -> set[str]:
    """The .py files config.json's auto_map names in this repo ("repo--module.Class" lives elsewhere)."""
    out = set()
    auto = cfg.get("auto_map") if isinstance(cfg.get("auto_map"), dict) else {}
    for value in auto.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "." in item and "--" not in item:
                out.add(item.rsplit(".", 1)[0] + ".py")
    return out


def tokenizer_ok(info) -> bool:
    """Something a tokenizer can be built from is here."""
    here = {f.name for f in info.files if f.size is not None and not f.broken}
    if "tokenizer.json" in here or here & set(SPM_FILES) or {"vocab.json", "merges.txt"} <= here or \
            "vocab.txt" in here or any(n.endswith(".tiktoken") for n in here):
        return True
    vocab = set(info.code.vocab_files) if info.code else set()
    return bool(vocab) and vocab <= here


def file_state(info):
    """(missing, damaged, needed, source): files from_pretrained needs that are absent (or
    whose link is broken), and present ones that are cut short or differ from the hub."""
    need, source = needed_files(info)
    present = {f.name: f for f in info.files if f.size is not None and not f.broken}
    missing = sorted(n for n in need if n not in present)
    damaged = []
    listed, _ = listing(info)
    for name, f in sorted(present.items()):
        if f.damage:
            damaged.append((name, f.damage))
        elif name in listed and listed[name] >= 0 and listed[name] != f.size and name in need:
            damaged.append((name, f"{f.size} bytes here, {listed[name]} on the hub"))
    return missing, damaged, need, source


def download_bytes(info, missing) -> int | None:
    listed = listing(info)[0] or (info.hub.listing if info.hub else {})
    if not missing:
        return 0
    if not listed:
        return None
    return sum(max(0, listed.get(n, 0)) for n in missing)


def _hf_cli(facts) -> str:
    hub = _version(facts, "huggingface_hub")
    t = facts.value("target")
    row = rule("download-cli")
    name = "hf" if hub is None or hub >= Version(row["hf_from"]) else "huggingface-cli"
    if t is not None and t.kind in ("venv", "conda", "explicit") and t.executable:
        pathmod = flavor(t.platform)  # C:\...\Scripts\hf for a Windows report replayed anywhere
        return pathmod.join(pathmod.dirname(t.executable), name)
    return name


def _login(facts) -> Command:
    """The target's own `hf auth login` (`huggingface-cli login` before huggingface_hub 0.34)."""
    cli = _hf_cli(facts)
    return run(cli, "auth", "login") if cli.replace("\\", "/").rsplit("/", 1)[-1] == "hf" else run(cli, "login")


def resume_command(facts, info, files, force: bool = False) -> Command | None:
    """The hf download that fetches exactly these files into the place they are read from
    (``force``: again, over a copy that is there but unreadable)."""
    repo = info.repo_id
    if repo is None:
        guess = info.config.get("_name_or_path")
        repo = guess if isinstance(guess, str) and guess.count("/") == 1 and not guess.startswith((".", "/")) else None
    if repo is None:
        return None
    parts = [_hf_cli(facts), "download", repo]
    parts += sorted(files)[:10] if len(files) <= 10 else []
    if info.source in ("cache", "dir") and info.revision:
        parts += ["--revision", info.revision]
    if info.source == "dir" or (info.source == "cache" and info.root_label not in EFFECTIVE_ROOTS):
        parts += ["--cache-dir", info.root]
    if info.source == "local":
        parts += ["--local-dir", info.path]
    listed, _ = listing(info)
    if info.source in ("local", "dir", "cache") and (force or any(
            f.damage or (f.name in listed and listed[f.name] != f.size)
            for f in info.files if f.name in files and f.size is not None)):
        parts.append("--force-download")
    return run(*(str(p) for p in parts))


# --- where --------------------------------------------------------------------------

@check("model.location", category="model", needs=["model"])
def location_check(facts, c):
    """Where each --model is: a folder, a --dir cache folder, a hub cache, or only on the hub."""
    m = facts.value("model")
    src = rule("resolve")
    for info in _models(facts):
        name = label(info)
        if info.source == "local":
            yield c.finding(Status.INFO, f"{name}: the local folder {info.path}", docs=src["source"],
                            detail=src["why"])
        elif info.source in ("dir", "cache"):
            where = f"the cache folder {info.root} ({info.root_label})" if info.source == "dir" else \
                f"the hub cache {info.root} ({info.root_label})"
            rev = f", revision {info.revision[:12]}" if info.revision else ""
            yield c.finding(Status.INFO, f"{name}: found in {where}{rev}", docs=src["source"],
                            detail=src["why"] + "\nLooked in: " + ", ".join(info.searched))
        elif info.source == "hub":
            hub = info.hub
            if hub is None or hub.status is None:
                why = hub.error if hub else "no answer in time"
                yield c.finding(Status.WARN, f"{name}: not in any cache, and the hub did not answer ({why})",
                                id="model.not-found", detail="Looked in: " + ", ".join(info.searched),
                                fix=(run("llmdoctor", "check", "--only", "net*"), "   (why the hub does not answer)"),
                                docs=src["source"])
            elif hub.status == 200:
                need, _ = needed_files(info)
                total = download_bytes(info, sorted(need))
                yield c.finding(Status.INFO, f"{name}: not downloaded yet; from_pretrained will fetch {len(need)} "
                                f"file(s), {size(total)} from {hub.endpoint}", docs=src["source"],
                                detail="Looked in: " + ", ".join(info.searched) + f"\nRead from the hub's metadata API: "
                                f"the file listing and config.json (commit {hub.sha or '?'}), no weights.")
            elif hub.status in (401, 404) and stored_allowed(facts, m.token, hub):
                which, fix = stored_allowed(facts, m.token, hub)
                yield c.finding(Status.FAIL, f"{name}: not in any cache, and the hub hides it from the token from "
                                f"{m.token.source} ({hub.status} {hub.error_code or ''}); {which} can see it",
                                id="model.not-found", detail=rule("token")["why"] + "\n" + rule("stored-tokens")["why"],
                                fix=fix,
                                docs=rule("token")["source"])
            elif hub.status in (401, 404):
                private = "private, or " if hub.status == 401 else ""
                yield c.finding(Status.FAIL, f"{name}: not in any cache, and the hub has no such repo "
                                f"({private}misspelt: {hub.status} {hub.error_code or ''})".rstrip(),
                                id="model.not-found", detail="Looked in: " + ", ".join(info.searched),
                                fix=f"check the name at {m.endpoint}/{name}", docs=rule("gated")["source"])
            else:
                yield c.finding(Status.WARN, f"{name}: not in any cache; the hub answered {hub.status} "
                                f"{hub.error_code or ''}".rstrip(), id="model.not-found",
                                detail="Looked in: " + ", ".join(info.searched), docs=src["source"])
        else:
            if info.error == "no such folder":
                title = f"{name}: no such folder"
            elif info.error:
                title = f"{name}: {info.error}"
            elif m.hub_offline_env:
                title = f"{name}: not in any cache, and HF_HUB_OFFLINE is set: from_pretrained will not download it"
            else:
                title = f"{name}: not in any cache, and --offline: the hub was not asked"
            yield c.finding(Status.FAIL, title, id="model.not-found",
                            detail="Looked in: " + (", ".join(info.searched) or "nowhere"),
                            fix=None if info.error else (run("llmdoctor", "check", "--model", name),
                                                         "   (online), or --dir FOLDER for a cache_dir= folder"),
                            docs=src["source"])


# --- files ----------------------------------------------------------------------------

@check("model.files", category="model", needs=["model", "target"])
def files_check(facts, c):
    """Every file from_pretrained reads is here and whole (shards, sizes, partials, tokenizer).

    The fix is the exact command that resumes the download."""
    for info in _models(facts):
        if info.source not in ("local", "dir", "cache"):
            continue
        name = label(info)
        missing, damaged, need, source = file_state(info)
        bad = missing + [n for n, _ in damaged]
        fix = resume_command(facts, info, bad) if bad else None
        fix_note = "" if fix else "copy them again from where this folder came from (no hub id is known for it)"
        shards = {s for idx in info.indexes for s in idx.shards}
        if missing:
            lost_shards = [n for n in missing if n in shards]
            what = f"{len(lost_shards)} of {len(shards)} weight shards" if lost_shards else "files from_pretrained reads"
            yield c.finding(Status.FAIL, f"{name}: {what} missing: {', '.join(missing[:6])}"
                            f"{' ...' if len(missing) > 6 else ''}", id="model.files-missing",
                            detail=f"{rule('sharded')['why']}\nNeeded files from {source}; folder: {info.path}",
                            fix=fix or fix_note, docs=rule("sharded")["source"])
        if damaged:
            yield c.finding(Status.FAIL, f"{name}: {len(damaged)} file(s) cut short or not as the hub has them: "
                            + "; ".join(f"{n} ({why})" for n, why in damaged[:4]), id="model.files-damaged",
                            detail=rule("safetensors")["why"], fix=fix or fix_note, docs=rule("safetensors")["source"])
        open_partials = [p for p in info.partials if not p.finished]
        if open_partials:
            total = sum(p.size for p in open_partials)
            yield c.finding(Status.WARN, f"{name}: {len(open_partials)} interrupted download(s) left "
                            f"({size(total)} in .incomplete files)", id="model.partial",
                            detail=rule("partial")["why"] + "\n" + "\n".join(p.path for p in open_partials[:5]),
                            fix=fix or resume_command(facts, info, sorted(need - {f.name for f in info.files})) or
                            fix_note, docs=rule("partial")["source"])
        stale = [p for p in info.partials if p.finished]
        if stale:
            where = ("--dir", info.root) if info.source == "dir" or info.root_label not in EFFECTIVE_ROOTS else ()
            yield c.finding(Status.INFO, f"{name}: {len(stale)} leftover .incomplete file(s) of downloads that "
                            f"finished since ({size(sum(p.size for p in stale))})", id="model.partial",
                            detail="\n".join(p.path for p in stale[:5]),
                            fix=run("llmdoctor", "cache", "prune", "--incomplete", "--repo", info.repo_id or name, *where,
                                    "--yes"), docs=rule("partial")["source"])
        unreadable = info.config_error not in (None, "missing")
        if unreadable and info.config_error.startswith("larger than"):
            yield c.finding(Status.INFO, f"{name}: config.json is {info.config_error}: not read, so its code, model "
                            "type and fit are not judged", id="model.config", detail=f"folder: {info.path}")
            unreadable = False
        elif unreadable:
            again = resume_command(facts, info, ["config.json"], force=True)
            yield c.finding(Status.FAIL, f"{name}: config.json cannot be read ({info.config_error[:120]}): "
                            "from_pretrained fails on it", id="model.config", detail=f"folder: {info.path}",
                            fix=again or fix_note, docs=rule("resolve")["source"])
        if not tokenizer_ok(info):
            yield c.finding(Status.FAIL, f"{name}: no tokenizer files (tokenizer.json, tokenizer.model, vocab.json + "
                            "merges.txt, vocab.txt, *.tiktoken)", id="model.tokenizer-files",
                            detail=f"folder: {info.path}", fix=fix or fix_note, docs=rule("resolve")["source"])
        if not bad and not open_partials and not unreadable and tokenizer_ok(info):
            total = sum(f.size or 0 for f in info.files if f.name in need)
            checked = f"sizes checked against {source}" if source.startswith("the hub") else \
                "headers checked (offline: no hub listing to compare sizes with)"
            yield c.finding(Status.OK, f"{name}: all {len(need)} files from_pretrained reads are here "
                            f"({size(total)}, {checked})")


# --- code -----------------------------------------------------------------------------

def code_verdict(code, saved: Version | None, installed: Version, task: str = "infer"):
    """What a repo's own code meets on this transformers: [(status, sentence, detail, source)].
    Used by model.code and cache.remote-code alike, so that both judge a repo the same way."""
    out = []
    if code is None:
        return out
    for issue in code.issues:
        if issue.kind in ("missing-name", "missing-module"):
            r = rule("missing-name")
            what = "module" if issue.kind == "missing-module" else "name"
            out.append((Status.FAIL, f"{issue.file}:{issue.line} imports {issue.what}, a {what} transformers "
                        f"{installed} does not have (ImportError on load)", r["why"], r["source"]))
        else:
            r = rule("missing-member")
            cls, _, attr = issue.what.rpartition(".")
            out.append((Status.FAIL, f"{issue.file}:{issue.line} {cls} calls self.{attr}(), which transformers "
                        f"{installed} no longer has (AttributeError when it runs)",
                        r["why"] + f"\nLooked up on {issue.detail}.", r["source"]))
    io = rule("init-order")
    if installed >= Version(io["since"]):
        for hit in code.init_order:
            out.append((Status.FAIL, f"{hit.file}:{hit.line} {hit.cls} sets {', '.join(hit.attrs)} after "
                        f"super().__init__(), which calls {hit.entry}() from transformers {io['since']}: "
                        f"'{hit.cls}' object has no attribute '{hit.attrs[0]}'", io["why"], io["source"]))
    gc = rule("gc-hook")
    for o in code.overrides:
        if o.name == "_set_gradient_checkpointing" and "value" in o.params:
            if Version(gc["fails_from"]) <= installed < Version(gc["fails_before"]):
                status = Status.FAIL if task in ("lora", "qlora") else Status.WARN
                out.append((status, f"{o.file}:{o.line} {o.cls} overrides _set_gradient_checkpointing(module, value): "
                            f"transformers {installed} raises TypeError in gradient_checkpointing_enable()",
                            gc["why"], gc["source"]))
    return out


def pin_conflicts(facts, pin: str) -> list[str]:
    """Installed distributions whose requirements on transformers the pin would break."""
    t = facts.value("target")
    version = Version(pin)
    out = []
    for d in t.distributions if t else ():
        for req in d.requires:
            try:
                r = Requirement(req)
            except InvalidRequirement:
                continue
            if canonicalize_name(r.name) == "transformers" and r.specifier and not r.marker and \
                    not r.specifier.contains(version, prereleases=True):
                out.append(f"{d.name} {d.version} requires transformers{r.specifier}")
    return out


def fetch_code(facts, repo: str | None) -> Command | None:
    """The download of a repo's current .py files (its code may have been updated since)."""
    return run(_hf_cli(facts), "download", repo, "--include", "*.py") if repo else None


def code_fix(facts, name: str, saved: Version | None, fetch_from: Command | None):
    """(the fix, a note for the detail): pin the transformers the code was saved with (the note
    names what that pin would break), or fetch the repo's current code."""
    if saved is None:
        return fetch_from, ""
    conflicts = pin_conflicts(facts, str(saved))
    fix = pip_cmd(facts, "install", f"transformers=={saved}")
    note = ("Or, if the repo's code has been updated since, download its current .py files again (hf download "
            "--include '*.py')" if fetch_from else "")
    if conflicts:
        note = f"Pinning breaks: {'; '.join(conflicts)} (use a separate environment for this model). " + note
    return fix, note.strip()


@check("model.code", category="model", needs=["model", "target"])
def code_check(facts, c):
    """Its own code, model type and saved version against the installed transformers; needed packages.

    Remote code (trust_remote_code) is read, never run; the target is asked about what it uses."""
    m = facts.value("model")
    tf = _version(facts, "transformers")
    for info in _models(facts):
        if info.source == "none" or not info.config:
            continue
        name = label(info)
        saved = parse_version(info.config.get("transformers_version") if isinstance(
            info.config.get("transformers_version"), str) else None)
        if tf is None:
            want = f"transformers>={saved}" if saved else "transformers"
            yield c.finding(Status.FAIL, f"{name}: transformers is not installed in this environment",
                            id="model.transformers-missing", fix=pip_cmd(facts, "install", want),
                            docs=rule("saved-with")["source"])
            continue
        auto_map = info.config.get("auto_map") if isinstance(info.config.get("auto_map"), dict) else {}
        remote = bool(auto_map) or info.tokenizer_remote
        mt = info.config.get("model_type")
        if info.model_type_known is False and "AutoConfig" not in auto_map:
            r = rule("model-type")
            newer = saved is not None and saved > tf
            fix = pip_cmd(facts, "install", "-U", f"transformers>={saved}") if newer else \
                (pip_cmd(facts, "install", f"transformers=={saved}") if saved else None)
            yield c.finding(Status.FAIL, f"{name}: transformers {tf} does not know model type {mt!r}"
                            + (f" (saved with {saved})" if saved else ""), id="model.model-type",
                            detail=r["why"] + ("" if newer or not saved else
                                               f"\nIt was saved with an older transformers ({saved}): this one dropped it."),
                            fix=fix, docs=r["source"])
        elif saved is not None and saved > tf and not remote:
            r = rule("saved-with")
            yield c.finding(Status.WARN, f"{name}: saved with transformers {saved}, newer than the installed {tf}",
                            id="model.transformers-version", detail=r["why"],
                            fix=pip_cmd(facts, "install", "-U", f"transformers>={saved}"), docs=r["source"])
        code = info.code
        if remote:
            verdict = code_verdict(code, saved, tf, m.request.task)
            fetch = fetch_code(facts, info.repo_id)
            if code is None:
                yield c.finding(Status.WARN, f"{name}: runs its own code (trust_remote_code), which could not be read",
                                id="model.remote-code", detail="No .py files in the folder or in transformers' "
                                "modules cache" + (", and the hub was not asked" if not m.online else ""),
                                docs=rule("check-imports")["source"])
            elif any(s >= Status.WARN for s, *_ in verdict):
                worst = max(s for s, *_ in verdict)
                fix, note = code_fix(facts, name, saved, fetch)
                yield c.finding(worst, f"{name}: its own code does not fit transformers {tf}"
                                + (f" (saved with {saved})" if saved else "") + ": " + verdict[0][1],
                                id="model.remote-code",
                                detail="\n".join([f"- {v[1]}" for v in verdict] + [verdict[0][2], note]).strip(),
                                fix=fix or note or None, docs=verdict[0][3])
            else:
                unknown = f"; {len(code.unknown)} lookups unanswered" if code.unknown else ""
                if m.target_error:
                    unknown = f"; the target could not be asked ({m.target_error})"
                status = Status.WARN if (code.unknown or m.target_error) and code.names_checked else Status.OK
                yield c.finding(status, f"{name}: runs its own code (saved with transformers {saved or '?'}); "
                                f"against transformers {tf}: its {code.names_checked} transformers import(s) and "
                                f"{code.members_checked} inherited call(s) resolve{unknown}", id="model.remote-code",
                                detail="\n".join([f"Read from {code.read_from}: {', '.join(code.files)}",
                                                  *(f"- {v[1]}" for v in verdict), *code.unknown[:5]]),
                                docs=rule("missing-member")["source"])
        missing = sorted(mod for mod, ok in info.needs.items() if ok is False)
        if missing:
            pkgs = sorted({dist_name(mod) for mod in missing})
            why = []
            if code is not None and set(missing) & set(code.missing_modules):
                why.append(rule("check-imports"))
            if set(missing) & {"sentencepiece", "google.protobuf"}:
                why.append(rule("sentencepiece"))
            if "tiktoken" in missing and not (info.code and "tiktoken" in info.code.modules):
                why.append(rule("tiktoken"))
            why = why or [rule("check-imports")]
            fix = pip_cmd(facts, "install", *pkgs)
            yield c.finding(Status.FAIL, f"{name}: needs {', '.join(pkgs)}, not installed here", id="model.imports",
                            detail="\n".join(w["why"] for w in why), fix=fix, docs=why[0]["source"])
        elif info.needs and not remote:
            yield c.finding(Status.OK, f"{name}: {', '.join(sorted(dist_name(x) for x in info.needs))} installed "
                            "for its tokenizer")


# --- access -----------------------------------------------------------------------------

def _needs_download(info) -> bool:
    if info.source == "hub":
        return True
    if info.source in ("local", "dir", "cache"):
        missing, damaged, _, _ = file_state(info)
        return bool(missing or damaged or any(not p.finished for p in info.partials))
    return False


def stored_allowed(facts, tok, hub) -> tuple[str, Command] | None:
    """A token `hf auth login` stored that the hub serves this repo to while it refuses the one
    sent: which (never the token), and the command that makes huggingface_hub send it (unset the
    variable that wins over it; `hf auth switch` to one that is not the active one)."""
    if tok is None or hub is None:
        return None
    ok = [o for o in tok.stored if (hub.stored_status or {}).get(o.key) == 200]
    if not ok:
        return None
    o = ok[0]  # the active one first
    user = f" (user {o.user})" if o.user else ""
    var = tok.source if tok.source in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") else None
    steps = [unset(var)] if var else []
    if o.active:
        which = f"the token stored by `hf auth login` in {tok.token_file}{user}"
    else:
        which = f"the token stored as {o.key!r}{user}"
        steps.append(run(_hf_cli(facts), "auth", "switch", "--token-name", o.key))
    if not steps:
        return None
    fix = steps[0]
    for step in steps[1:]:
        fix = fix + step
    return which, fix


@check("model.access", category="model", needs=["model", "target"])
def access_check(facts, c):
    """Gated / private repos against the token in use: valid, allowed, HF_TOKEN vs stored; hf_transfer.

    The token is HF_TOKEN, else the stored one (a conflict between them is named);
    HF_HUB_ENABLE_HF_TRANSFER without hf_transfer breaks downloads on huggingface_hub < 1.0."""
    m = facts.value("model")
    models = [i for i in _models(facts) if i.repo_id]
    if not models:
        return
    tok = m.token
    gated_r, token_r = rule("gated"), rule("token")
    who = f"token from {tok.source}" if tok and tok.source else "no token"
    if tok and tok.user:
        who += f", user {tok.user}"
    held = "the token file" if tok and tok.source == "token file" else (tok.source if tok else None)
    if tok and tok.source and tok.implicit_disabled:
        who = f"no token: HF_HUB_DISABLE_IMPLICIT_TOKEN keeps the one from {held} from being sent"
    if tok and tok.env_and_file_differ:
        var = tok.source if tok.source in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") else "HF_TOKEN"
        yield c.finding(Status.WARN, f"{var} is set and differs from the token stored by `hf auth login` in "
                        f"{tok.token_file}: {var} wins, the stored one is not used", id="model.token-conflict",
                        detail=token_r["why"], fix=(unset(var), "   (or store the same token: ", _login(facts), ")"),
                        docs=token_r["source"])
    if tok and tok.whoami_status == 401:
        r = rule("whoami")
        yield c.finding(Status.FAIL, f"The Hugging Face token ({tok.source}) is not valid: the hub answers 401 to "
                        "whoami", id="model.token-invalid", detail=r["why"],
                        fix=unset("HF_TOKEN") + _login(facts) if tok.source == "HF_TOKEN" else _login(facts),
                        docs=r["source"])
    need = [i for i in models if _needs_download(i)]
    if m.hf_transfer_env and need:
        hub = _version(facts, "huggingface_hub")
        have = _version(facts, "hf_transfer")
        r = rule("hf-transfer")
        if have is None and hub is not None and hub < Version(r["before"]):
            yield c.finding(Status.FAIL, f"HF_HUB_ENABLE_HF_TRANSFER is set, but hf_transfer is not installed: "
                            f"huggingface_hub {hub} refuses to download", id="model.hf-transfer", detail=r["why"],
                            fix=(pip_cmd(facts, "install", "hf_transfer"), "   (or: ", unset("HF_HUB_ENABLE_HF_TRANSFER"),
                                 ")"),
                            docs=r["source"])
        elif hub is not None and hub >= Version(r["before"]):
            yield c.finding(Status.INFO, f"HF_HUB_ENABLE_HF_TRANSFER is set; huggingface_hub {hub} ignores it",
                            id="model.hf-transfer", detail=r["why"], fix=unset("HF_HUB_ENABLE_HF_TRANSFER"),
                            docs=r["source"])
    for info in models:
        name = label(info)
        hub = info.hub
        if hub is None or hub.status is None:
            if info in need and not m.online:
                yield c.finding(Status.SKIP, f"{name}: access not checked (offline)")
            continue
        status = hub.file_status
        gated = f"gated ({hub.gated})" if hub.gated else ("private" if hub.private else "public")
        page = f"{m.endpoint}/{name}"
        if status in (200, 302, 307):
            if info in need or hub.gated or hub.private:
                yield c.finding(Status.OK, f"{name}: {gated}; the hub serves its files ({who})")
            continue
        if info not in need:
            yield c.finding(Status.INFO, f"{name}: {gated}, and the hub refuses its files ({status} "
                            f"{hub.file_error_code or ''}) with {who}; every file is already here".replace(" )", ")"),
                            docs=gated_r["source"])
            continue
        if status == 401 and tok is not None and tok.source and tok.implicit_disabled:
            yield c.finding(Status.FAIL, f"{name}: {gated}: the hub wants a token, and HF_HUB_DISABLE_IMPLICIT_TOKEN "
                            f"keeps from_pretrained from sending the one from {held}", id="model.gated-no-token",
                            detail=gated_r["why"] + "\n" + rule("implicit-token")["why"],
                            fix=(unset("HF_HUB_DISABLE_IMPLICIT_TOKEN"), "   (or pass token=... to from_pretrained)"),
                            docs=rule("implicit-token")["source"])
        elif status == 401 and (tok is None or tok.source is None):
            yield c.finding(Status.FAIL, f"{name}: {gated}: the hub wants a token and there is none",
                            id="model.gated-no-token", detail=gated_r["why"],
                            fix=(f"accept the conditions at {page}, then: ", _login(facts)),
                            docs=gated_r["source"])
        elif status == 401 and tok and tok.whoami_status == 401:
            continue  # the invalid token is the finding
        elif status in (401, 403, 404):
            scope = " (a fine-grained token needs read access to this repo)" if tok and tok.role == "fineGrained" else ""
            title = f"{name}: {gated}: the hub refuses its files to the {who}{scope} " \
                    f"({status} {hub.file_error_code or ''})".rstrip()
            other = stored_allowed(facts, tok, hub)
            if other:
                yield c.finding(Status.FAIL, f"{title}; {other[0]} is allowed", id="model.gated-denied",
                                detail=gated_r["why"] + "\n" + token_r["why"] + "\n" + rule("stored-tokens")["why"],
                                fix=other[1], docs=token_r["source"])
                continue
            yield c.finding(Status.FAIL, title, id="model.gated-denied", detail=gated_r["why"],
                            fix=f"request access at {page} (it may take a day), or use a token of a user who has it",
                            docs=gated_r["source"])
        else:
            yield c.finding(Status.WARN, f"{name}: the hub answered {status} {hub.file_error_code or ''} for "
                            f"config.json".rstrip(), id="model.access", docs=gated_r["source"])


# --- fit ------------------------------------------------------------------------------

def _stored_bytes_per_param(cfg: dict) -> int:
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "").replace("torch.", "")
    return 4 if dtype in ("float32", "float") else 2


def _weights_in_files(info) -> int | None:
    for idx in info.indexes:
        if idx.total_size:
            return idx.total_size
    listed = listing(info)[0] or (info.hub.listing if info.hub else {})
    files = {f.name: f.size for f in info.files if f.size} or {k: v for k, v in listed.items() if v > 0}
    st = [v for k, v in files.items() if k.endswith(".safetensors")]
    if st:
        return sum(st)
    return sum(v for k, v in files.items() if k.endswith(".bin") and k.startswith("pytorch_model")) or None


def _asked(info, req, tf: Version | None) -> tuple[str, str]:
    """(recipe key, how the dtype was decided)."""
    if req.task == "qlora" or (req.task == "lora" and req.quant):
        return "qlora", "asked"
    if req.task == "lora":
        return "lora", "asked"
    if req.quant:
        return f"infer-{req.quant}", "asked"
    if req.dtype == "fp32":
        return "infer-fp32", "asked"
    if req.dtype:
        return "infer-16bit", "asked"
    r = rule("fp32-default")
    if tf is not None and tf < Version(r["before"]):
        return "infer-fp32", f"no dtype given: transformers {tf} loads in fp32 without torch_dtype"
    return ("infer-fp32" if _stored_bytes_per_param(info.config) == 4 else "infer-16bit",
            "no dtype given: dtype='auto' loads the checkpoint's dtype")


def recipe_code(r) -> str:
    if r.key == "infer-int8":
        return "from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map='auto')"
    if r.key in ("infer-nf4", "qlora"):
        return ("from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True, "
                "bnb_4bit_quant_type='nf4', bnb_4bit_compute_dtype=torch.bfloat16), device_map='auto')"
                + (f"; LoRA at max_length={r.seq}" if r.key == "qlora" else ""))
    if r.key == "infer-16bit":
        return "from_pretrained(..., torch_dtype=torch.bfloat16, device_map='auto')"
    if r.key == "lora":
        return f"from_pretrained(..., torch_dtype=torch.bfloat16); LoRA at max_length={r.seq}"
    return "from_pretrained(..., torch_dtype=torch.float32)"


NESTED_CONFIGS = ("text_config", "llm_config", "language_config")


def shape_config(info) -> dict:
    """config.json with each nested config (a multimodal model's text_config...) as the target's
    transformers completed it with its config class's defaults, which the saved copy leaves out."""
    cfg = dict(info.config)
    filled = info.config_defaults if isinstance(info.config_defaults, dict) else {}
    for section in NESTED_CONFIGS:
        if isinstance(cfg.get(section), dict) and isinstance(filled.get(section), dict):
            cfg[section] = {**cfg[section], **filled[section]}
    return cfg


def unshaped(info) -> tuple[str, bool]:
    """Why a config gives no shape, and whether it is a nested config left to defaults the target
    could not fill in."""
    section = next((s for s in NESTED_CONFIGS if isinstance(info.config.get(s), dict)), None)
    if section is None or section in (info.config_defaults or {}):
        return "its config.json does not give the model's shape", False
    model_type = info.config[section].get("model_type") or info.config.get("model_type")
    why = info.config_defaults_error
    tail = "transformers is not installed in the target" if why == "no-transformers" else \
        f"the target's transformers could not fill them in ({why or 'not asked'})"
    return f"its {section} leaves the language model's shape to transformers' defaults for model type " \
           f"{model_type!r}, and {tail}", True


@check("model.fit", category="model", needs=["model", "target", "system", "gpu"])
def fit_check(facts, c):
    """Memory per recipe from its config.json against each GPU, host RAM and disk; the recipe that fits.

    The bench's estimator; fp32 when no dtype is given on transformers < 5."""
    m = facts.value("model")
    s, g = facts.value("system"), facts.value("gpu")
    tf = _version(facts, "transformers")
    req = m.request
    fit_r = rule("fit")
    gpus = [x for x in g.visible_gpus if x.memory_free_bytes]
    for info in _models(facts):
        if not info.config:
            continue
        name = label(info)
        arch = arch_from_config(name, shape_config(info))
        if arch is None:
            why, nested = unshaped(info)
            r = rule("nested-config") if nested else {}
            yield c.finding(Status.SKIP, f"{name}: {why}; fit not estimated", detail=r.get("why", ""),
                            docs=r.get("source"))
            continue
        stored = _weights_in_files(info)
        file_params = stored // _stored_bytes_per_param(info.config) if stored else None
        scale = file_params / arch.params() if file_params else 1.0
        scale = scale if 0.5 <= scale <= 3 else 1.0
        params = int(arch.params() * scale)
        half = "fp16" if req.dtype == "fp16" or (gpus and all((x.cc_major or 0) < 8 for x in gpus)) else "bf16"
        key, why_dtype = _asked(info, req, tf)
        asked = model_fit.recipe(arch, key, req.seq, half, scale)
        rest = "" if scale == 1.0 else \
            f"; {arch.params() / 1e9:.2f}B of them in the language model its config describes, the rest (a vision " \
            "tower, a projector) counted from the checkpoint's size" \
            if scale > 1 and any(isinstance(info.config.get(s), dict) for s in NESTED_CONFIGS) else \
            f"; its config's shape gives {arch.params() / 1e9:.2f}B, scaled to the checkpoint's size"
        detail = (f"{params / 1e9:.2f}B parameters ({arch.layers} layers, hidden {arch.hidden}, {arch.kv_heads} KV "
                  f"heads, vocab {arch.vocab}){rest}; {why_dtype}; seq {req.seq}"
                  + (f", {model_fit.NEW_TOKENS} new tokens" if key.startswith("infer") else ", batch 1") +
                  "; the process's footprint, CUDA context included, by the memory model llmdoctor bench "
                  f"uses and measures.\n{fit_r['why']}")
        bnb = _version(facts, "bitsandbytes") is not None and _version(facts, "accelerate") is not None

        def quant_fix(r):
            if r.quant and not bnb:
                return ("; first: ", pip_cmd(facts, "install", "bitsandbytes", "accelerate"))
            return ()

        if not gpus:
            if key.startswith("infer"):
                yield c.finding(Status.INFO, f"{name}: no GPU visible: {asked.label} runs on the CPU, from host RAM",
                                id="model.gpu-fit", detail=detail, docs=fit_r["source"])
            else:
                yield c.finding(Status.FAIL, f"{name}: {asked.label} needs a GPU ({gib(asked.bytes)}), and none "
                                "is visible", id="model.gpu-fit", detail=detail, docs=fit_r["source"])
        else:
            best = max(gpus, key=lambda x: x.memory_free_bytes)
            where = f"GPU {best.index} ({best.name or '?'}, {gib(best.memory_free_bytes)} free)"
            if asked.bytes <= best.memory_free_bytes:
                yield c.finding(Status.OK, f"{name}: {asked.label} at {req.seq} tokens needs about "
                                f"{gib(asked.bytes)}: fits {where}", id="model.gpu-fit", detail=detail,
                                docs=fit_r["source"])
            else:
                found = None
                for alt_key, alt_seq in model_fit.alternatives(req.task, key, req.seq):
                    alt = model_fit.recipe(arch, alt_key, alt_seq, half, scale)
                    if alt.bytes <= best.memory_free_bytes:
                        found = alt
                        break
                title = f"{name}: {asked.label} at {req.seq} tokens needs about {gib(asked.bytes)}; {where} " \
                        "has too little"
                total_free = sum(x.memory_free_bytes for x in gpus)
                if found is not None:
                    seq_note = f" at {found.seq} tokens" if found.seq != req.seq else ""
                    yield c.finding(Status.FAIL, f"{title}. {found.label}{seq_note} needs {gib(found.bytes)}: "
                                    "fits", id="model.gpu-fit", detail=detail,
                                    fix=(recipe_code(found), *quant_fix(found)), docs=fit_r["source"])
                elif key.startswith("infer") and len(gpus) > 1 and asked.bytes <= total_free:
                    yield c.finding(Status.WARN, f"{title}; spread over the {len(gpus)} GPUs it fits",
                                    id="model.gpu-fit", detail=detail,
                                    fix="from_pretrained(..., device_map='auto')", docs=fit_r["source"])
                else:
                    yield c.finding(Status.FAIL, f"{title}, and no smaller recipe (int8, nf4, QLoRA, shorter sequences) "
                                    "fits either", id="model.gpu-fit", detail=detail,
                                    fix="a smaller model, or a GPU with more memory", docs=fit_r["source"])
        # host RAM: from_pretrained without device_map materialises the weights in RAM in the load dtype
        avail = s.ram_usable_bytes
        if avail is not None and key in ("infer-fp32", "infer-16bit", "lora"):
            load = params * (4 if key == "infer-fp32" else 2)
            r = rule("fp32-default")
            if load > avail:
                if key == "infer-fp32" and params * 2 <= avail:
                    yield c.finding(Status.FAIL, f"{name}: loads in fp32 ({why_dtype.split(': ', 1)[-1]}): "
                                    f"{gib(load)} of RAM, {gib(avail)} available; in bf16 it takes {gib(params * 2)}",
                                    id="model.host-ram", detail=r["why"],
                                    fix="from_pretrained(..., torch_dtype=torch.bfloat16)", docs=r["source"])
                else:
                    yield c.finding(Status.WARN, f"{name}: its weights ({gib(load)}) exceed the {gib(avail)} of RAM "
                                    "available: load straight to the GPU, shard by shard", id="model.host-ram",
                                    detail=r["why"], fix="from_pretrained(..., device_map='auto')", docs=r["source"])
            elif key == "infer-fp32" and why_dtype != "asked":
                yield c.finding(Status.INFO, f"{name}: loads in fp32 ({gib(load)} of RAM, {gib(avail)} available); "
                                f"torch_dtype=torch.bfloat16 halves it", id="model.host-ram", detail=r["why"],
                                docs=r["source"])
        # disk for the download
        if info.source in ("hub", "local", "dir", "cache"):
            missing = file_state(info)[0] if info.source != "hub" else sorted(needed_files(info)[0])
            total = download_bytes(info, missing)
            if total and info.dest_free_bytes is not None:
                if total > info.dest_free_bytes:
                    yield c.finding(Status.FAIL, f"{name}: the download needs {size(total)}; {info.dest} has "
                                    f"{size(info.dest_free_bytes)} free", id="model.disk",
                                    fix=(run("llmdoctor", "cache", "prune"), "   (or --dir / HF_HOME on a larger disk)"),
                                    docs=rule("resolve")["source"])
                else:
                    yield c.finding(Status.OK, f"{name}: the download ({size(total)}) fits the "
                                    f"{size(info.dest_free_bytes)} free at {info.dest}", id="model.disk")


# --- the user's scripts and notebooks ---------------------------------------------------------

def _where(hit) -> str:
    return f"{hit.file}{f' cell {hit.cell}' if hit.cell else ''}:{hit.line}"


@check("model.project", category="model", needs=["model", "target", "gpu"])
def project_check(facts, c):
    """--project: known traps in scripts and notebooks, read and never run.

    An empty CA bundle variable, verify=False, bitsandbytes or device_map without their
    packages, trust_remote_code on code that does not fit this transformers, a hard-coded
    "cuda" where there is no GPU."""
    m = facts.value("model")
    p = m.project
    if p is None:
        return
    if p.error:
        yield c.finding(Status.FAIL, f"--project {p.root}: {p.error}", id="model.project")
        return
    g = facts.value("gpu")
    torch_f = facts.value("torch")
    tf = _version(facts, "transformers")
    have_bnb, have_acc = _version(facts, "bitsandbytes"), _version(facts, "accelerate")
    models = {i.spec: i for i in (m.models if m else ())}
    found = 0
    for hit in p.hits:
        r = project_rule(hit.rule)
        status = Status.parse(r["status"])
        fix = template(r["fix"], {}) if r.get("fix") else None
        fields = {"detail": hit.detail, "model": hit.model or "a model", "installed": tf, "missing": "", "why": ""}
        if hit.rule == "bnb-quantization":
            missing = [n for n, v in (("bitsandbytes", have_bnb), ("accelerate", have_acc)) if v is None]
            if not missing:
                continue
            fields["missing"] = " and ".join(missing) + (" is" if len(missing) == 1 else " are")
            fix = pip_cmd(facts, "install", *missing)
        elif hit.rule == "device-map":
            if have_acc is not None:
                continue
            fix = pip_cmd(facts, "install", "accelerate")
        elif hit.rule == "trust-remote-code":
            info = models.get(hit.model or "")
            if info is None or info.code is None or tf is None:
                continue
            saved = parse_version(info.config.get("transformers_version")
                                  if isinstance(info.config.get("transformers_version"), str) else None)
            verdict = [v for v in code_verdict(info.code, saved, tf, m.request.task) if v[0] >= Status.WARN]
            if not verdict:
                continue
            fix, _ = code_fix(facts, hit.model, saved, None)
            fields["detail"] = verdict[0][1]
        elif hit.rule == "hard-coded-cuda":
            if g is not None and g.visible_gpus and not (torch_f is not None and torch_f.installed and
                                                        torch_f.build == "cpu"):
                continue
            fields["why"] = "this machine has no visible GPU" if g is None or not g.visible_gpus else \
                f"torch {torch_f.version} here is a CPU-only build"
        found += 1
        title = r["title"].format(**fields)
        yield c.finding(status, f"{_where(hit)}: {title}", id=f"model.project.{hit.rule}",
                        detail=hit.text + (f"\n{fields['detail']}" if hit.rule == "trust-remote-code" else ""),
                        fix=fix, docs=r["source"])
    tail = f"; {len(p.errors)} could not be parsed" if p.errors else ""
    if not found:
        yield c.finding(Status.OK, f"--project {p.root}: {p.files} script(s) and notebook(s) read, no known trap "
                        f"found{tail}", id="model.project", detail="\n".join(p.errors[:10]))
    elif p.errors:
        yield c.finding(Status.INFO, f"--project {p.root}: {len(p.errors)} file(s) could not be parsed",
                        id="model.project", detail="\n".join(p.errors[:10]))
