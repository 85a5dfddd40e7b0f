"""Building and loading CUDA extensions: ninja, DeepSpeed's toolkit check, bitsandbytes
against the GPU's compute capability."""

from __future__ import annotations

from packaging.version import Version

from llmdoctor.command import run, setvar, unset
from llmdoctor.data import row, rows, table
from llmdoctor.model import Status, check
from llmdoctor.units import gib
from llmdoctor.versions import parse_version

from llmdoctor.checks.host import cuda_home, macos, os_name, system_install
from llmdoctor.checks.requirements import installed_version
from llmdoctor.checks.nvidia import no_gpu
from llmdoctor.checks.python import import_findings, pip_cmd
from llmdoctor.checks.sizing import jobs_for
from llmdoctor.checks.toolkit import effective_nvcc

NINJA_DOCS = "https://github.com/Dao-AILab/flash-attention#installation-and-features"
DS_DOCS = "https://www.deepspeed.ai/tutorials/advanced-install/"


@check("build.ninja", category="build", needs=["cuda", "target"])
def ninja_check(facts, c):
    """ninja present where a CUDA toolkit is (without it extension builds run serially for hours)."""
    tk = facts.value("cuda")
    nvcc = effective_nvcc(tk)
    if nvcc is None:
        yield c.finding(Status.SKIP, "No CUDA toolkit (nvcc)")
    elif tk.ninja is None or tk.ninja.version is None:
        yield c.finding(Status.WARN, "ninja is missing or broken: building flash-attn or DeepSpeed ops falls back to "
                        "a serial build that takes hours", id="build.ninja-missing",
                        detail=(tk.ninja.error if tk.ninja else "") or "",
                        fix=pip_cmd(facts, "install", "ninja"), docs=NINJA_DOCS)
    else:
        yield c.finding(Status.OK, f"ninja {tk.ninja.version}")


@check("build.compile-ram", category="build", needs=["cuda", "system", "target"])
def compile_ram_check(facts, c):
    """Parallel compile jobs of each extension build against the RAM (builds killed with -9), with
    each kind's own RAM per job: flash-attn's nvcc threads, DeepSpeed's cc1plus."""
    from llmdoctor.compat import compile as cm

    from llmdoctor.checks.sizing import kinds_here

    tk, s, t = facts.value("cuda"), facts.value("system"), facts.value("target")
    if effective_nvcc(tk) is None:
        yield c.finding(Status.SKIP, "No CUDA toolkit (nvcc)")
        return
    avail = s.ram_usable_bytes
    if avail is None:
        yield c.finding(Status.SKIP, "RAM size unknown")
        return
    raw = t.build_env.get("MAX_JOBS")
    if raw is not None and not (raw.strip().isdigit() and int(raw) > 0):
        yield c.finding(Status.WARN, f"MAX_JOBS={raw!r} is not a positive number: builds ignore or reject it",
                        id="build.max-jobs-invalid", fix=run("llmdoctor", "fix", "--max-jobs"),
                        docs=cm.kind("flash-attn")["source"])
        return
    kinds = kinds_here(facts)
    if not kinds:
        yield c.finding(Status.SKIP, "No CUDA extension build can happen here: torch is not a CUDA build and neither "
                        "flash-attn nor DeepSpeed is installed")
        return
    for p in (cm.plan(k, t.build_env, s.cpus_for_jobs or 1, avail) for k in kinds):
        each = f"up to {gib(p.per_job_bytes)} each ({p.words})"
        n = f"{p.jobs} compile job{'s' * (p.jobs != 1)} at once ({p.how})"
        if p.fits:
            yield c.finding(Status.OK, f"{p.label}: {n}, {each}, fit in {gib(avail)} of free RAM",
                            docs=p.row["source"], claims={f"compile-fits:{p.kind}": "yes"})
        else:
            yield c.finding(Status.WARN, f"{p.label}: a build would run {n}, {each}, but {gib(avail)} of free RAM "
                            f"holds about {p.ram_jobs}: the build gets killed ('Killed signal terminated program "
                            "cc1plus', return code -9)", id="build.compile-ram",
                            detail=p.row["why"], fix=run("llmdoctor", "fix", "--max-jobs"), docs=p.row["source"],
                            claims={f"compile-fits:{p.kind}": "no"})


@check("build.deepspeed", category="build", needs=["cuda", "torch", "target", "system"])
def deepspeed_check(facts, c):
    """DeepSpeed's op builder (ds_report without its cost): torch's build, CUDA_HOME / nvcc and its
    CUDA major against torch's, libaio for async_io, and host RAM for ZeRO offload."""
    have = installed_version(facts.value("target"), "deepspeed")
    if not have:
        yield c.finding(Status.SKIP, "deepspeed is not installed")
        return
    tk, t = facts.value("cuda"), facts.value("torch")
    nvcc = effective_nvcc(tk)
    if not t.installed:
        yield c.finding(Status.FAIL, f"deepspeed {have} is installed without torch", id="build.deepspeed-no-torch",
                        fix=_torch_fix(facts), docs=DS_DOCS)
    elif t.build != "cuda" and macos(facts):
        yield c.finding(Status.INFO, f"deepspeed {have} on macOS: there is no CUDA here, so its CUDA ops (fused_adam, "
                        "ZeRO on the GPU) cannot build; only its CPU ops do", id="build.deepspeed-cpu-torch",
                        detail="DeepSpeed picks its accelerator from torch; no torch build for macOS has CUDA.",
                        docs=DS_DOCS)
    elif t.build != "cuda":
        yield c.finding(Status.INFO, f"deepspeed {have} with torch {t.version} (a {t.build or 'CPU'} build) runs on "
                        "its CPU accelerator only: CUDA ops (fused_adam, ZeRO on the GPU) cannot build",
                        id="build.deepspeed-cpu-torch", detail="DeepSpeed picks its accelerator from torch; "
                        "with a CPU torch only the CPU ops (cpu_adam, cpu_lion) build.",
                        fix=_torch_fix(facts), docs=DS_DOCS)
    elif nvcc is None or nvcc.version is None:
        yield c.finding(Status.WARN, f"deepspeed {have} JIT-compiles its ops (cpu_adam, fused_adam) with nvcc, and "
                        "none is found: 'MissingCUDAException: CUDA_HOME does not exist'", id="build.deepspeed-no-nvcc",
                        fix=(f"install the CUDA {t.cuda or '<version>'} toolkit (torch's CUDA), then: ",
                             setvar("CUDA_HOME", cuda_home(facts, t.cuda or "<version>"))),
                        docs=DS_DOCS)
    elif (nv := parse_version(nvcc.release)) and (tc := parse_version(t.cuda)) and nv.major != tc.major:
        yield c.finding(Status.FAIL, f"deepspeed {have}: nvcc {nvcc.release} and torch's CUDA {t.cuda} differ in "
                        "major version: op builds raise CUDAMismatchException", id="build.deepspeed-cuda-mismatch",
                        fix=f"point CUDA_HOME at a CUDA {tc.major}.x toolkit", docs=DS_DOCS)
    else:
        yield c.finding(Status.OK, f"deepspeed {have}: nvcc {nvcc.release} can build its ops for torch's CUDA "
                        f"{t.cuda}", docs=DS_DOCS)
    g = facts.value("gpu")
    for gpu in (g.visible_gpus if g is not None and not no_gpu(g) else ()):
        for op in rows("llmdoctor.compat", "deepspeed"):
            if gpu.cc_major is not None and Version(gpu.compute_capability) < Version(op["min_cc"]):
                yield c.finding(Status.INFO, f"deepspeed {have}: its {op['op']} kernels do not build for GPU "
                                f"{gpu.index} {gpu.name} (compute capability {gpu.compute_capability} < "
                                f"{op['min_cc']}); training ops (ZeRO, fused Adam) are not affected",
                                id="build.deepspeed-gpu-arch", docs=op["source"])
    if os_name(facts) not in ("Linux", ""):
        yield c.finding(Status.INFO, f"deepspeed {have}: the async_io op (ZeRO-Infinity offload to NVMe) needs Linux's "
                        f"libaio and does not build on {'macOS' if macos(facts) else os_name(facts)}; CPU offload is "
                        "not affected", id="build.deepspeed-libaio", docs=DS_DOCS)
    elif tk.libaio is None or tk.libaio_header is None:
        missing = "libaio" if tk.libaio is None else "libaio.h"
        yield c.finding(Status.INFO, f"deepspeed {have}: {missing} is missing, so the async_io op (ZeRO-Infinity "
                        "offload to NVMe) cannot build; CPU offload is not affected", id="build.deepspeed-libaio",
                        fix=_libaio_fix(facts),
                        docs=DS_DOCS)
    yield from _offload_ram(facts, c, have)


def _libaio_fix(facts):
    """The distribution's libaio development package, or conda's."""
    conda = run("conda", "install", "-c", "conda-forge", "libaio")
    system = system_install(facts, apt=("libaio-dev",), dnf=("libaio-devel",))
    return (system, "   (conda: ", conda, ")") if system else ("in a conda env: ", conda)


def _torch_fix(facts):
    """The compatibility model's torch for this machine, as a command (the driver first where needed)."""
    from llmdoctor.checks.pytorch import pinned_by, prescribe, prescription_fix

    g = facts.value("gpu")
    if g is None:  # not probed for this check: fix --torch probes the GPU itself
        return run("llmdoctor", "fix", "--torch")
    p = prescribe(facts)
    return prescription_fix(facts, p) or f"no torch build on record runs here: {p.why}" + pinned_by(facts)


#: model sizes a user is likely to ask about, in parameters
OFFLOAD_SIZES = (1.5e9, 3e9, 6e9, 7e9, 13e9)


def offload_ram_bytes(params: float, stage: int) -> int:
    """Host RAM that DeepSpeed's own estimate gives a ZeRO-2/3 CPU offload on one GPU."""
    r = row("llmdoctor.checks", "build_limits", "name", f"zero{stage}_offload_cpu_bytes_per_param")
    return int(params * r["value"] * r["buffer_factor"])


def _offload_ram(facts, c, have):
    s = facts.value("system")
    avail = s.ram_usable_bytes if s else None
    if avail is None:
        return
    z2 = row("llmdoctor.checks", "build_limits", "name", "zero2_offload_cpu_bytes_per_param")
    fits = {st: avail / (offload_ram_bytes(1, st) or 1) / 1e9 for st in (2, 3)}
    table_ = "\n".join(f"- {p / 1e9:g}B parameters: ZeRO-2 offload {gib(offload_ram_bytes(p, 2))}, ZeRO-3 offload "
                       f"{gib(offload_ram_bytes(p, 3))}" for p in OFFLOAD_SIZES)
    jobs = jobs_for(s, "deepspeed")
    detail = (f"{z2['why']}\nHost RAM needed by model size:\n{table_}\nBuilding cpu_adam: MAX_JOBS={jobs} fits "
              "the RAM (build.compile-ram). A process killed with -9 while training with offload is this RAM, not "
              "the compile: fewer compile jobs do not help there.")
    six = offload_ram_bytes(6e9, 2)
    status = Status.INFO if six <= avail else Status.WARN
    yield c.finding(status, f"deepspeed {have}: ZeRO-2 CPU offload of a 6B model needs about {gib(six)} of RAM, "
                    f"{gib(avail)} is usable here: offload fits models up to about {fits[2]:.1f}B (ZeRO-3: "
                    f"{fits[3]:.1f}B)", id="build.deepspeed-offload-ram", detail=detail,
                    fix=None if status is Status.INFO else "use a smaller model, LoRA/QLoRA instead of full "
                    "fine-tuning, or a machine with more RAM", docs=z2["source"])


def _bnb_rules(version: Version) -> dict:
    data = table("llmdoctor.compat", "bitsandbytes")
    rule = data["before_cpu"]
    for item in rows("llmdoctor.compat", "bitsandbytes"):
        if version >= Version(item["since"]):
            rule = item
    return rule


def _bnb_cudas(libs) -> set[int]:
    """The CUDA versions (as 118, 124, ...) a bitsandbytes wheel has a native library for."""
    found = set()
    for name in libs:
        tail = name.split("libbitsandbytes_cuda", 1)[1].split(".", 1)[0] if name.startswith("libbitsandbytes_cuda") else ""
        digits = tail.split("_", 1)[0]  # libbitsandbytes_cuda118_nocublaslt.so: 118
        if digits.isdigit():
            found.add(int(digits))
    return found


def _bnb_native_lib(facts, c, have):
    """The libbitsandbytes_cuda<XYZ> that bitsandbytes will load for torch's CUDA version."""
    target, t = facts.value("target"), facts.value("torch")
    libs = target.native_libs.get("bitsandbytes")
    if libs is None or t is None or not t.installed or t.build != "cuda":
        return
    spec = table("llmdoctor.compat", "bitsandbytes")["native_lib"]
    forced = target.build_env.get("BNB_CUDA_VERSION")
    cuda = forced or "".join((t.cuda or "").split(".")[:2])
    want = spec["cuda_pattern"].format(cuda=cuda)
    if any(n.startswith(want) for n in libs):
        return
    via = f"BNB_CUDA_VERSION={forced}" if forced else f"torch's CUDA {t.cuda}"
    own = "".join((t.cuda or "").split(".")[:2])
    if forced and any(n.startswith(spec["cuda_pattern"].format(cuda=own)) for n in libs):
        fix = (unset("BNB_CUDA_VERSION"), "   (the wheel has a library for torch's own CUDA)")
    elif (shipped := _bnb_cudas(libs)) and cuda.isdigit() and int(cuda) < max(shipped):
        # the wheel's libraries are all newer than torch's CUDA: no newer bitsandbytes adds an older
        # one, so torch moves, to a build whose CUDA the wheel has and the driver runs
        from llmdoctor.checks.pytorch import prescribe, prescription_fix

        p = prescribe(facts, variants={f"cu{x}" for x in shipped})
        fix = prescription_fix(facts, p) or (f"no torch build on record has a CUDA this bitsandbytes has a library "
                                             f"for and runs here: {p.why}")
    else:
        # --no-deps: the upgrade must not move torch (python.dependencies prescribes torch, driver-aware)
        fix = pip_cmd(facts, "install", "--upgrade", "--no-deps", "bitsandbytes")
    yield c.finding(Status.FAIL, f"bitsandbytes {have} has no native library for {via} ({want}*): 'CUDA Setup "
                    "failed' or a CPU-only fallback", id="build.bitsandbytes-no-cuda-lib",
                    detail=spec["why"] + f"\nLibraries in the wheel: {', '.join(libs) or 'none'}.",
                    fix=fix, docs=spec["source"])


@check("build.bitsandbytes", category="build", needs=["gpu", "target", "torch"])
def bitsandbytes_check(facts, c):
    """bitsandbytes against the GPU's compute capability (and CPU support where there is no GPU)."""
    have = installed_version(facts.value("target"), "bitsandbytes")
    version = parse_version(have)
    if version is None:
        yield c.finding(Status.SKIP, "bitsandbytes is not installed" if not have else f"bitsandbytes {have}: version?")
        return
    rule, g = _bnb_rules(version), facts.value("gpu")
    if no_gpu(g):
        if rule["cpu"]:
            yield c.finding(Status.INFO, f"bitsandbytes {have} runs 4-bit and 8-bit on the CPU here (no NVIDIA GPU)",
                            docs=rule["source"])
        else:
            yield c.finding(Status.WARN, f"bitsandbytes {have} has no CPU backend and there is no NVIDIA GPU",
                            id="build.bitsandbytes-no-device",
                            fix=pip_cmd(facts, "install", "--no-deps", "bitsandbytes>=0.46"),
                            docs=rule["source"])
        return
    yield from _bnb_native_lib(facts, c, have)
    for gpu in g.visible_gpus:
        if gpu.cc_major is None:
            continue
        cc = Version(gpu.compute_capability)
        if cc < Version(rule["min_cc"]):
            yield c.finding(Status.FAIL, f"bitsandbytes {have} has no kernels for GPU {gpu.index} {gpu.name} "
                            f"(compute capability {gpu.compute_capability} < {rule['min_cc']})",
                            id="build.bitsandbytes-gpu-too-old",
                            fix=pip_cmd(facts, "install", "--no-deps", "bitsandbytes<0.48"),
                            docs=rule["source"])
        elif cc < Version(rule["int8_min_cc"]):
            yield c.finding(Status.INFO, f"GPU {gpu.index} {gpu.name}: bitsandbytes 4-bit (QLoRA) works; "
                            f"LLM.int8 (load_in_8bit) needs compute capability {rule['int8_min_cc']}",
                            id="build.bitsandbytes-no-int8", docs=rule["source"])
        else:
            yield c.finding(Status.OK, f"bitsandbytes {have}: 4-bit and LLM.int8 run on GPU {gpu.index}",
                            docs=rule["source"])


@check("build.extension-imports", category="build", needs=["target.extensions", "target"])
def extension_imports_check(facts, c):
    """The installed CUDA extensions (flash_attn, bitsandbytes) import in the target, or why not."""
    results = facts.value("target.extensions").results
    present = [r for r in results if r.status != "absent"]
    if not present:
        yield c.finding(Status.SKIP, "Neither flash-attn nor bitsandbytes is installed")
        return
    yield from import_findings(facts, c, results, "build.extension-import", {"flash_attn": "flash-attn"})
    imported = [r for r in present if r.status == "ok" and r.method != "native"]
    if imported:
        from llmdoctor.checks.python import shown

        dists = {"flash_attn": "flash-attn"}
        yield c.finding(Status.OK, "Imports cleanly: " + ", ".join(shown(facts, r, dists) for r in imported))
    for r in present:
        if r.status == "ok" and r.method == "native":
            name = (r.library or "").replace("\\", "/").rsplit("/", 1)[-1]
            yield c.finding(Status.OK, f"{r.module}{' ' + r.version if r.version else ''}: its native library {name} "
                            "loads",
                            detail=f"Not imported: {r.why}, so {name} is the library `import {r.module}` loads "
                                   "(and importing it would also import torch and its compiler stack).")
