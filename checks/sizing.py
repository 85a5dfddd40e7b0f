"""How many parallel compile jobs the RAM holds, per kind of build (llmdoctor.compat.compile)."""

from __future__ import annotations

from llmdoctor.compat import compile as cm


def safe_jobs(available_bytes: int, cpus: int, per_job_bytes: int) -> int:
    """As many jobs as there are CPUs, but no more than the RAM holds: at least 1."""
    return max(1, min(cpus, available_bytes // per_job_bytes))


def jobs_for(system, kind: str = "flash-attn", build_env=None) -> int | None:
    """MAX_JOBS for a ``kind`` build on this machine, or None when its RAM is unknown."""
    if system is None or system.ram_usable_bytes is None:
        return None
    return cm.plan(kind, build_env or {}, system.cpus_for_jobs or 1, system.ram_usable_bytes).safe_jobs


def kinds_here(facts) -> list[str]:
    """The extension builds that can happen in this environment: flash-attn wherever a CUDA
    torch is (it is built on install), DeepSpeed's ops where DeepSpeed is installed (it
    JIT-compiles them at first use)."""
    from llmdoctor.checks.requirements import installed_version

    target, t = facts.value("target"), facts.value("torch")
    out = []
    if t is None or (t.installed and t.build == "cuda") or installed_version(target, "flash-attn"):  # not probed: assume it
        out.append("flash-attn")
    if installed_version(target, "deepspeed"):
        out.append("deepspeed")
    return out
