"""Building and loading CUDA extensions: ninja, DeepSpeed's toolkit check, bitsandbytes
against the GPU's compute capability."""

from __future__ import annotations

from packaging.version import Version

from llmdoctor.data import row, rows, table
from llmdoctor.model import Status, check
from llmdoctor.units import gib
from llmdoctor.versions import parse_version

from .flash_attn import installed
from .nvidia import no_gpu
from .python import pip_cmd
from .toolkit import effective_nvcc

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
    """Parallel compile jobs of an extension build against the RAM (builds killed with -9)."""
    tk, s, t = facts.value("cuda"), facts.value("system"), facts.value("target")
    if effective_nvcc(tk) is None:
        yield c.finding(Status.SKIP, "No CUDA toolkit (nvcc)")
        return
    per_job = row("llmdoctor.checks", "build_limits", "name", "ram_per_compile_job_bytes")
    avail = s.ram_usable_bytes
    if avail is None:
        yield c.finding(Status.SKIP, "RAM size unknown")
        return
    cpus = s.cpus_for_jobs
    fits = max(1, avail // per_job["value"])  # RAM alone; more CPUs than jobs is no danger
    raw = t.build_env.get("MAX_JOBS")
    jobs = int(raw) if raw and raw.strip().isdigit() and int(raw) > 0 else None
    if raw is not None and jobs is None:
        yield c.finding(Status.WARN, f"MAX_JOBS={raw!r} is not a positive number: builds ignore or reject it",
                        id="build.max-jobs-invalid", fix="llmdoctor fix --max-jobs", docs=per_job["source"])
        return
    planned = jobs or cpus + 2  # ninja's default parallelism is the CPU count plus two
    source = f"MAX_JOBS={jobs}" if jobs else f"ninja's default: {cpus} CPUs + 2"
    if planned > fits:
        yield c.finding(Status.WARN, f"An extension build would run {planned} compile jobs ({source}) but "
                        f"{gib(avail)} of free RAM holds about {fits}: flash-attn / DeepSpeed builds get killed "
                        "('Killed signal terminated program cc1plus')", id="build.compile-ram",
                        detail=per_job["why"], fix="llmdoctor fix --max-jobs", docs=per_job["source"])
    else:
        yield c.finding(Status.OK, f"{planned} compile jobs ({source}) fit in {gib(avail)} of free RAM")


@check("build.deepspeed", category="build", needs=["cuda", "torch", "target"])
def deepspeed_check(facts, c):
    """DeepSpeed's op builder: CUDA_HOME / nvcc present and the same CUDA major as torch."""
    have = installed(facts.value("target"), "deepspeed")
    if not have:
        yield c.finding(Status.SKIP, "deepspeed is not installed")
        return
    tk, t = facts.value("cuda"), facts.value("torch")
    nvcc = effective_nvcc(tk)
    if nvcc is None or nvcc.version is None:
        yield c.finding(Status.WARN, f"deepspeed {have} JIT-compiles its ops (cpu_adam, fused_adam) with nvcc, and "
                        "none is found: 'MissingCUDAException: CUDA_HOME does not exist'", id="build.deepspeed-no-nvcc",
                        fix="install the CUDA toolkit matching torch and export CUDA_HOME=/usr/local/cuda-<version>",
                        docs=DS_DOCS)
        return
    nv, tc = parse_version(nvcc.release), parse_version(t.cuda) if t.installed else None
    if tc and nv and nv.major != tc.major:
        yield c.finding(Status.FAIL, f"deepspeed {have}: nvcc {nvcc.release} and torch's CUDA {t.cuda} differ in "
                        "major version: op builds raise CUDAMismatchException", id="build.deepspeed-cuda-mismatch",
                        fix="point CUDA_HOME at a CUDA {}.x toolkit".format(tc.major), docs=DS_DOCS)
    else:
        yield c.finding(Status.OK, f"deepspeed {have}: nvcc {nvcc.release} can build its ops for torch's CUDA "
                        f"{t.cuda if t.installed else '?'}", docs=DS_DOCS)


def _bnb_rules(version: Version) -> dict:
    data = table("llmdoctor.checks", "bitsandbytes")
    rule = data["before_cpu"]
    for item in rows("llmdoctor.checks", "bitsandbytes"):
        if version >= Version(item["since"]):
            rule = item
    return rule


@check("build.bitsandbytes", category="build", needs=["gpu", "target"])
def bitsandbytes_check(facts, c):
    """bitsandbytes against the GPU's compute capability (and CPU support where there is no GPU)."""
    have = installed(facts.value("target"), "bitsandbytes")
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
                            id="build.bitsandbytes-no-device", fix=pip_cmd(facts, "install", "bitsandbytes>=0.46"),
                            docs=rule["source"])
        return
    for gpu in g.visible_gpus:
        if gpu.cc_major is None:
            continue
        cc = Version(gpu.compute_capability)
        if cc < Version(rule["min_cc"]):
            yield c.finding(Status.FAIL, f"bitsandbytes {have} has no kernels for GPU {gpu.index} {gpu.name} "
                            f"(compute capability {gpu.compute_capability} < {rule['min_cc']})",
                            id="build.bitsandbytes-gpu-too-old", fix=pip_cmd(facts, "install", "bitsandbytes<0.48"),
                            docs=rule["source"])
        elif cc < Version(rule["int8_min_cc"]):
            yield c.finding(Status.INFO, f"GPU {gpu.index} {gpu.name}: bitsandbytes 4-bit (QLoRA) works; "
                            f"LLM.int8 (load_in_8bit) needs compute capability {rule['int8_min_cc']}",
                            id="build.bitsandbytes-no-int8", docs=rule["source"])
        else:
            yield c.finding(Status.OK, f"bitsandbytes {have}: 4-bit and LLM.int8 run on GPU {gpu.index}",
                            docs=rule["source"])
