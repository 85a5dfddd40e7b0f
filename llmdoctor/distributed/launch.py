"""Where this process sits in a job, read from the variables its launcher set.

Pure functions of the environment. Order of lookup follows accelerate's
``get_cpu_distributed_information`` (RANK, then PMI_RANK, OMPI_COMM_WORLD_RANK,
MV2_COMM_WORLD_RANK) with Slurm's SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID added:
torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
(https://pytorch.org/docs/stable/elastic/run.html#environment-variables); srun and mpirun
set only their own, and leave MASTER_ADDR / MASTER_PORT to the job script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

DEFAULT_PORT = 29500  #: torchrun's --master-port default

RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS")
LOCAL_RANK_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK",
                   "SLURM_LOCALID")
LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE",
                   "SLURM_NTASKS_PER_NODE")
#: variables that differ from rank to rank by design: never "drift"
PER_RANK_VARS = frozenset(RANK_VARS + SIZE_VARS + LOCAL_RANK_VARS + LOCAL_SIZE_VARS + (
    "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "SLURM_NODEID", "SLURM_LOCALID",
    "TORCHELASTIC_ERROR_FILE", "TORCHELASTIC_RESTART_COUNT"))


class LaunchError(ValueError):
    """The launcher's variables are contradictory or incomplete."""


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int | None
    master_addr: str | None
    master_port: int
    launcher: str  #: "torchrun" | "slurm" | "mpi" | "env" | "none"
    run_id: str  #: keys of this job in the store
    agent_store: bool  #: torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE)


def _first_int(environ: Mapping[str, str], names, strict: bool = True) -> tuple[int | None, str | None]:
    for name in names:
        value = (environ.get(name) or "").strip()
        if value:
            try:
                return int(value), name
            except ValueError:
                if strict:
                    raise LaunchError(f"{name}={value!r} is not a number") from None
    return None, None


def first_slurm_host(nodelist: str | None) -> str | None:
    """The first host of a Slurm host list: 'gpu[03-05,09],login1' -> 'gpu03', 'n[1-4]-ib' ->
    'n1-ib' (a suffix after the brackets, and several bracket groups, as Slurm expands them)."""
    if not nodelist:
        return None
    m = re.match(r"\s*((?:[^,\[\]\s]|\[[^\]]*\])+)", nodelist)  # the first entry: commas inside brackets stay
    if not m:
        return None
    host = re.sub(r"\[([^\]]*)\]", lambda b: b.group(1).split(",")[0].split("-")[0].strip(), m.group(1))
    return host if host and "[" not in host and "]" not in host else None


def launcher_name(environ: Mapping[str, str]) -> str:
    if environ.get("TORCHELASTIC_RUN_ID") or environ.get("TORCHELASTIC_RESTART_COUNT") is not None:
        return "torchrun"
    if environ.get("SLURM_PROCID") is not None and environ.get("SLURM_STEP_ID") is not None:
        return "slurm"
    if any(environ.get(n) is not None for n in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")):
        return "mpi"
    if environ.get("RANK") is not None:
        return "env"
    return "none"


def rank_info(environ: Mapping[str, str]) -> RankInfo:
    """This process's place in the job; a lone process is rank 0 of 1 (launcher "none")."""
    rank, rank_var = _first_int(environ, RANK_VARS)
    size, _ = _first_int(environ, SIZE_VARS)
    local, _ = _first_int(environ, LOCAL_RANK_VARS, strict=False)
    local_size, _ = _first_int(environ, LOCAL_SIZE_VARS, strict=False)  # Slurm writes "2(x3)"
    launcher = launcher_name(environ)
    if rank is None and size is None:
        return RankInfo(0, 1, 0, None, None, DEFAULT_PORT, "none", "single", False)
    if rank is None or size is None:
        raise LaunchError(f"{rank_var or 'RANK'} and WORLD_SIZE must both be set (one of them is missing)")
    if size < 1 or not 0 <= rank < size:
        raise LaunchError(f"rank {rank} is not within a world of {size}")
    addr = (environ.get("MASTER_ADDR") or "").strip() or None
    if addr is None and launcher == "slurm":
        addr = first_slurm_host(environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST"))
    port_text = (environ.get("MASTER_PORT") or "").strip()
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise LaunchError(f"MASTER_PORT={port_text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise LaunchError(f"MASTER_PORT={port} is not a port number")
    if size > 1 and addr is None:
        raise LaunchError("MASTER_ADDR is not set: every rank needs the address of rank 0's host "
                          "(torchrun sets it; under srun or mpirun export it in the job script)")
    run_id = "-".join(x for x in (environ.get("TORCHELASTIC_RUN_ID"), environ.get("TORCHELASTIC_RESTART_COUNT"),
                                  environ.get("SLURM_JOB_ID"), environ.get("SLURM_STEP_ID")) if x) or "job"
    return RankInfo(rank=rank, world_size=size, local_rank=local or 0, local_world_size=local_size,
                    master_addr=addr, master_port=port, launcher=launcher, run_id=run_id,
                    agent_store=environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True")
