"""Who this node is, and the environment variables that decide how a job on it communicates.

``environ`` keeps the variables that matter to NCCL, torch.distributed, CUDA and the
Hugging Face stack (the prefixes in ``RELEVANT_PREFIXES``), never the per-rank ones a
launcher sets. Values of variables named like secrets are replaced by ``***`` here,
before anything leaves the node; a short SHA-256 prefix lets two nodes be compared
without either value being sent. NCCL also reads ``NCCL_CONF_FILE``, ``/etc/nccl.conf``
and ``~/.nccl.conf`` (https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html);
the environment wins over them, as in NCCL (it does not overwrite variables already set).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from typing import Mapping

from llmdoctor.paths import home as home_dir
from llmdoctor.probes.base import read_text

RELEVANT_PREFIXES = ("NCCL_", "TORCH_NCCL_", "TORCH_DISTRIBUTED_", "GLOO_", "UCX_", "FI_", "CUDA_", "NVIDIA_",
                     "PYTORCH_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "ACCELERATE_")
RELEVANT_NAMES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH",
                  "TOKENIZERS_PARALLELISM")
MASK = "***"


@dataclass(frozen=True)
class NodeFacts:
    hostname: str
    environ: dict[str, str] = field(default_factory=dict)  #: relevant variables; secrets as ***
    secret_digests: dict[str, str] = field(default_factory=dict)  #: name -> sha256 prefix of a masked value
    nccl_conf: dict[str, str] = field(default_factory=dict)  #: from the NCCL config files, not overridden
    nccl_conf_files: tuple[str, ...] = ()
    launcher: str | None = None  #: torchrun | slurm | mpi | env | none

    def nccl(self, name: str) -> str | None:
        """A NCCL setting as NCCL sees it: the environment, else the config files."""
        value = self.environ.get(name)
        return value if value is not None else self.nccl_conf.get(name)

    def nccl_origin(self, name: str) -> str:
        if name in self.environ:
            return "the environment"
        return "nccl.conf" if name in self.nccl_conf else "default"


def relevant_environ(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    from llmdoctor.distributed.launch import PER_RANK_VARS
    from llmdoctor.report.redact import SECRET_NAME

    out, digests = {}, {}
    for name, value in environ.items():
        if name in PER_RANK_VARS or not (name.startswith(RELEVANT_PREFIXES) or name in RELEVANT_NAMES):
            continue
        if SECRET_NAME.search(name):
            out[name] = MASK
            digests[name] = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]
        else:
            out[name] = value[:2000]
    return dict(sorted(out.items())), digests


def parse_nccl_conf(text: str | None) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments; later lines win."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("NCCL_"):
            out[key] = value.strip()
    return out


def read_nccl_conf(environ: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    home = home_dir(environ)
    paths = [environ["NCCL_CONF_FILE"]] if environ.get("NCCL_CONF_FILE") else [os.path.join(home, ".nccl.conf")]
    paths.append("/etc/nccl.conf")
    merged: dict[str, str] = {}
    used = []
    for path in paths:  # the user's file first: NCCL sets a variable only if it is not set yet
        text = read_text(path, 100_000)
        if text is None:
            continue
        used.append(path)
        for key, value in parse_nccl_conf(text).items():
            merged.setdefault(key, value)
    return merged, tuple(used)


def probe_node(ctx) -> NodeFacts:
    from llmdoctor.distributed.launch import launcher_name

    environ = ctx.environ
    relevant, digests = relevant_environ(environ)
    conf, files = read_nccl_conf(environ)
    return NodeFacts(hostname=socket.gethostname() or "unknown", environ=relevant, secret_digests=digests,
                     nccl_conf=conf, nccl_conf_files=files, launcher=launcher_name(environ))
