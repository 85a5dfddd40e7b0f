"""RAM per compile job, per kind of extension build (``data/compile_memory.json``).

A flash-attn job is one nvcc running NVCC_THREADS (default 4) threads at up to 5 GB each,
and flash-attn's setup.py sizes MAX_JOBS from free RAM itself when it is unset. A DeepSpeed
op is compiled by torch.utils.cpp_extension through ninja, one cc1plus (or nvcc) per job,
MAX_JOBS or ninja's default of CPUs + 2 at once. The numbers are sourced or measured; each
row says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from llmdoctor.data import rows
from llmdoctor.compat.cuda import PKG


@dataclass(frozen=True)
class JobPlan:
    kind: str  #: "flash-attn" | "deepspeed"
    label: str
    per_job_bytes: int  #: RAM one compile job can take at its peak
    jobs: int  #: the jobs the build will run at once here
    how: str  #: where that number comes from ("MAX_JOBS=8", "ninja's default: 16 CPUs + 2", ...)
    safe_jobs: int  #: MAX_JOBS to use: no more jobs than CPUs or than the RAM holds (at least 1)
    row: dict
    safe_ram: int = 0  #: the free RAM judged against
    words: str = ""  #: what one job is, short ("4 nvcc threads x 5.0 GiB")

    @property
    def peak_bytes(self) -> int:
        return self.jobs * self.per_job_bytes

    @property
    def ram_jobs(self) -> int:
        """The jobs the RAM alone holds (more CPUs than jobs is no danger)."""
        return max(1, self.safe_ram // self.per_job_bytes)

    @property
    def fits(self) -> bool:
        return self.jobs <= self.ram_jobs


def kind(name: str) -> dict:
    return next(r for r in rows(PKG, "compile_memory") if r["kind"] == name)


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def per_job(name: str, build_env: Mapping[str, str]) -> int:
    r = kind(name)
    if r.get("bytes_per_thread"):
        threads = _int(build_env.get(r["threads_env"])) or r["threads_default"]
        return threads * r["bytes_per_thread"]
    return r["bytes_per_job"]


def plan(name: str, build_env: Mapping[str, str], cpus: int, avail_bytes: int) -> JobPlan:
    """How many jobs a build of ``name`` runs here, what they need, and what the RAM holds."""
    r = kind(name)
    each = per_job(name, build_env)
    cpus = max(1, cpus or 1)
    safe = max(1, min(cpus, avail_bytes // each))
    jobs = _int(build_env.get("MAX_JOBS"))
    if jobs:
        how = f"MAX_JOBS={jobs}"
    elif r.get("sizes_itself"):
        jobs = max(1, min(cpus // 2 or 1, avail_bytes // each))
        how = "its setup.py sizes MAX_JOBS from free RAM"
    else:
        jobs = cpus + 2
        how = f"ninja's default: {cpus} CPUs + 2"
    if r.get("bytes_per_thread"):
        threads = each // r["bytes_per_thread"]
        words = f"{threads} nvcc thread{'s' * (threads != 1)} x {r['bytes_per_thread'] / 2**30:.1f} GiB"
    else:
        words = r["per_job_words"]
    return JobPlan(name, r["label"], each, jobs, how, safe, r, avail_bytes, words)


def safe_max_jobs(names, build_env: Mapping[str, str], cpus: int, avail_bytes: int) -> tuple[int, list[JobPlan]]:
    """One MAX_JOBS that every build of ``names`` survives (MAX_JOBS is shared by them all)."""
    plans = [plan(n, build_env, cpus, avail_bytes) for n in names]
    return min(p.safe_jobs for p in plans), plans
