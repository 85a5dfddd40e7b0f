"""Facts about the target environment, gathered by running a small script in the
target interpreter (which may be Python 3.8 and may crash or hang)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmdoctor import subproc
from llmdoctor.report.printable import clip
from llmdoctor.probes.base import ProbeContext, ProbeFailed, TargetFailure

SCRIPT = Path(__file__).with_name("target") / "llmdoctor_target_probe.py"

#: Packages whose import loads native code that breaks in real life (ABI mismatches,
#: NumPy 1 vs 2, missing shared libraries). torch and what imports it belong to the
#: GPU checks, which import it only where an NVIDIA driver exists.
IMPORT_MODULES = ("numpy", "tokenizers", "safetensors", "sentencepiece", "yaml", "regex")

#: CUDA extensions that import torch: imported only when installed, where their
#: failures ("undefined symbol", "CUDA Setup failed") are what users hit.
EXTENSION_MODULES = ("flash_attn", "bitsandbytes")


@dataclass(frozen=True)
class Distribution:
    name: str | None
    version: str | None
    requires: tuple[str, ...] = ()
    location: str | None = None
    error: str | None = None  #: why its metadata could not be read


@dataclass(frozen=True)
class KernelSpec:
    name: str
    path: str
    language: str | None = None
    argv0: str | None = None  #: the interpreter the kernel starts ("python" means Jupyter's own)
    argv0_exists: bool | None = None  #: None when argv0 is not an absolute path
    error: str | None = None


@dataclass(frozen=True)
class TargetFacts:
    python: str  #: the interpreter asked for
    kind: str  #: explicit | venv | conda | interpreter
    python_version: str
    version_info: tuple[int, ...]
    implementation: str
    executable: str
    prefix: str
    base_prefix: str
    in_venv: bool
    conda: bool
    platform: str
    machine: str
    include_dir: str = ""
    has_python_h: bool = False
    purelib: str | None = None
    sys_path: tuple[str, ...] = ()
    markers: dict[str, str] = field(default_factory=dict)
    distributions: tuple[Distribution, ...] = ()
    distributions_error: str | None = None
    note: str | None = None  #: from target resolution, e.g. a VIRTUAL_ENV with no python
    build_env: dict[str, str] = field(default_factory=dict)  #: MAX_JOBS etc. as the target interpreter sees them
    native_libs: dict[str, tuple[str, ...]] = field(default_factory=dict)  #: package -> its native library files
    kernelspecs: tuple[KernelSpec, ...] = ()  #: Jupyter kernels as this interpreter's Jupyter would list them
    net_env: dict[str, str] = field(default_factory=dict)  #: CA, proxy and HF_* variables it sees (passwords masked)
    net_missing_files: tuple[str, ...] = ()  #: CA variables naming a path that does not exist

    def for_humans(self) -> dict:
        """These facts for a reader of a pasted report: distributions as name==version, no sys.path."""
        from llmdoctor.facts import dump

        out = dump(self)
        out.pop("sys_path", None)
        out["distributions"] = sorted(f"{d.name}=={d.version}" for d in self.distributions)
        return out


@dataclass(frozen=True)
class ImportResult:
    module: str
    status: str  #: "ok" | "absent" | "error" | "crash" | "timeout"
    version: str | None = None
    seconds: float | None = None
    error_type: str | None = None
    #: for "error": the exception's message; for "crash" and "timeout", reports of llmdoctor before
    #: failure: their sentence (read only)
    message: str | None = None
    failure: TargetFailure | None = None  #: for "crash" and "timeout": how the interpreter failed
    method: str = "import"  #: "import", or "native": its native library loaded instead (see the target probe)
    library: str | None = None  #: the native library loaded, for "native"
    why: str | None = None  #: why loading the library decides what the import would do
    #: extension modules in the package built for another Python (e.g. cpython-310 under 3.11)
    foreign_abi: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportFacts:
    results: tuple[ImportResult, ...] = ()


def _child_env(ctx: ProbeContext) -> dict:
    env = dict(ctx.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


LINE_LIMIT = 500  #: of one line of a target's stderr kept in a finding


def describe_failure(done: subproc.Completed, step: str, timeout: float, module: str | None = None) -> TargetFailure:
    """How the target interpreter failed ``step`` (a token: "start-up", "import" of ``module`` ...),
    as data: its exit code, its deadline, its last lines of stderr."""
    tail = "\n".join(clip(line, LINE_LIMIT) for line in done.stderr[-20 * LINE_LIMIT:].strip().splitlines()[-5:])
    at = {"step": step, "module": module, "tail": tail}
    if done.start_error:
        return TargetFailure("start-error", error=done.start_error, **at)
    if done.timed_out:
        return TargetFailure("timeout", seconds=round(timeout, 1), **at)
    crash = done.crash
    if crash is not None:  # a signal (POSIX), or the NTSTATUS code of a crash (Windows)
        by_signal = crash.name.startswith(("SIG", "signal"))
        return TargetFailure("signal" if by_signal else "ntstatus", exit_code=done.returncode, **at)
    return TargetFailure("exit", exit_code=done.returncode, **at)


MARK = "@@llmdoctor@@ "


def probe_lines(stdout: str):
    """The probe's JSON lines, ignoring whatever start-up code printed around them."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            try:
                yield json.loads(line[len(MARK):])
            except (ValueError, RecursionError):
                continue


def run_script(ctx: ProbeContext, args, timeout: float) -> subproc.Completed:
    return subproc.run([ctx.target.python, str(SCRIPT), *args], timeout=timeout, env=_child_env(ctx))


def probe_target(ctx: ProbeContext, timeout: float = 18.0) -> TargetFacts:
    done = run_script(ctx, ["env"], timeout)
    if done.returncode != 0:
        raise ProbeFailed.of(describe_failure(done, "env-scan", timeout))
    data = next(iter(probe_lines(done.stdout)), None)
    if not isinstance(data, dict) or "python_version" not in data:
        raise ProbeFailed.of(TargetFailure("no-result", step="env-scan", cut_bytes=done.cut,
                                           tail=clip(done.stdout[-LINE_LIMIT:], LINE_LIMIT)))
    dists = tuple(
        Distribution(name=d.get("name"), version=d.get("version"), requires=tuple(d.get("requires") or ()),
                     location=d.get("location"), error=d.get("error"))
        for d in data.get("distributions") or ()
    )
    return TargetFacts(
        python=ctx.target.python, kind=ctx.target.kind, note=ctx.target.note,
        python_version=data["python_version"], version_info=tuple(data["version_info"]),
        implementation=data["implementation"], executable=data["executable"], prefix=data["prefix"],
        base_prefix=data["base_prefix"], in_venv=bool(data["in_venv"]), conda=bool(data["conda"]),
        platform=data["platform"], machine=data["machine"], include_dir=data.get("include_dir") or "",
        has_python_h=bool(data.get("has_python_h")), purelib=data.get("purelib"),
        sys_path=tuple(data.get("sys_path") or ()), markers=dict(data.get("markers") or {}),
        distributions=dists, distributions_error=data.get("distributions_error"),
        build_env={str(k): str(v) for k, v in (data.get("build_env") or {}).items()},
        net_env={str(k): str(v) for k, v in (data.get("net_env") or {}).items()},
        net_missing_files=tuple(str(k) for k in data.get("net_missing_files") or ()),
        native_libs={str(k): tuple(str(n) for n in v) for k, v in (data.get("native_libs") or {}).items()},
        kernelspecs=tuple(KernelSpec(name=str(k.get("name")), path=str(k.get("path")), language=k.get("language"),
                                     argv0=k.get("argv0"), argv0_exists=k.get("argv0_exists"), error=k.get("error"))
                          for k in data.get("kernelspecs") or () if isinstance(k, dict)),
    )


def _installed_modules(ctx: ProbeContext, modules) -> list[str]:
    """Modules among ``modules`` that the target can find (without importing them)."""
    code = ("import importlib.util,sys\n"
            "print('\\n'.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))")
    done = subproc.run([ctx.target.python, "-c", code, *modules], timeout=10, env=_child_env(ctx))
    if done.returncode != 0:
        raise ProbeFailed.of(describe_failure(done, "start-up", 10))
    return [line for line in done.stdout.split() if line]


def probe_imports(ctx: ProbeContext, modules=IMPORT_MODULES, timeout: float = 25.0, mode: str = "imports"
                  ) -> ImportFacts:
    """Import each installed module; a crash is pinned on the module being imported,
    and the modules after it are retried in a fresh interpreter. All of it within ``timeout``."""
    deadline = time.monotonic() + timeout
    present = _installed_modules(ctx, modules)
    results: list[ImportResult] = [ImportResult(m, "absent") for m in modules if m not in present]
    pending = list(present)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            results += [ImportResult(m, "timeout", failure=TargetFailure("not-tried", step="import", module=m))
                        for m in pending]
            break
        done = run_script(ctx, [mode, *pending], left)
        seen: dict[str, dict] = {}
        current = None
        for event in probe_lines(done.stdout):
            if not isinstance(event, dict) or event.get("module") not in pending:
                continue  # not a line of ours (start-up code may print anything)
            if event.get("event") == "start":
                current = event["module"]
            elif event.get("event") in ("ok", "error"):
                seen[event["module"]] = event
                current = None
        for name in pending:
            event = seen.get(name)
            if event is None:
                continue
            how = {"method": "native", "library": _text(event.get("library")), "why": _text(event.get("why"))} \
                if event.get("method") == "native" else {}
            if event["event"] == "ok":
                results.append(ImportResult(name, "ok", version=_text(event.get("version")),
                                            seconds=_number(event.get("seconds")), **how))
            else:
                results.append(ImportResult(name, "error", seconds=_number(event.get("seconds")),
                                            error_type=_text(event.get("type")), message=_text(event.get("message")),
                                            foreign_abi=tuple(str(x) for x in event.get("foreign_abi") or ()
                                                              if isinstance(event.get("foreign_abi"), list)), **how))
        if current is None or done.returncode == 0:
            break
        failure = describe_failure(done, "import", left, module=current)
        results.append(ImportResult(current, failure.probe_kind, failure=failure))
        pending = [m for m in pending[pending.index(current) + 1:] if m not in seen]
    order = {m: i for i, m in enumerate(modules)}
    return ImportFacts(results=tuple(sorted(results, key=lambda r: order.get(r.module, 0))))


def probe_extensions(ctx: ProbeContext) -> ImportFacts:
    """The installed CUDA extensions (flash_attn, bitsandbytes) in the target: imported, or, for
    bitsandbytes where that decides the same, its native library loaded (no torch import)."""
    return probe_imports(ctx, EXTENSION_MODULES, timeout=40.0, mode="extensions")


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
