"""How many parallel compile jobs the RAM holds (about 5 GB each, build_limits.json)."""

from __future__ import annotations

from llmdoctor.data import row


def per_job() -> dict:
    return row("llmdoctor.checks", "build_limits", "name", "ram_per_compile_job_bytes")


def safe_jobs(available_bytes: int, cpus: int, per_job_bytes: int) -> int:
    """As many jobs as there are CPUs, but no more than the RAM holds: at least 1."""
    return max(1, min(cpus, available_bytes // per_job_bytes))


def jobs_for(system) -> int | None:
    """MAX_JOBS for this machine, or None when its RAM is unknown."""
    if system is None or system.ram_usable_bytes is None:
        return None
    return safe_jobs(system.ram_usable_bytes, system.cpus_for_jobs or 1, per_job()["value"])
