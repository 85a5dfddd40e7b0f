"""The compatibility model every check and fix consults: which NVIDIA driver runs which CUDA,
which torch builds PyTorch published (from 2.0 to the newest release) and which GPUs and
Pythons they run on, what flash-attn, bitsandbytes and DeepSpeed need of the GPU, what a
compile job of each extension build costs in RAM, and whether an HTTP stack verifies TLS.

Pure functions over the tables in ``data/`` (each row with the URL it was read from).
Nothing here reads the machine: callers pass facts in, and word the answers themselves.
"""

from __future__ import annotations

from llmdoctor.compat.cuda import (Driver, driver_of, family_min_driver, kernel_for, min_driver, native_cuda,
                                   runs_cuda, toolkit_window)
from llmdoctor.compat.torchbuilds import (Machine, Prescription, Step, TorchBuild, builds, cuda_variant, find, fit,
                                          machine_of, prescribe, release, running_build, variant_cuda)

__all__ = [
    "Driver", "Machine", "Prescription", "Step", "TorchBuild", "builds", "cuda_variant", "driver_of",
    "family_min_driver", "find", "fit", "kernel_for", "machine_of", "min_driver", "native_cuda", "prescribe",
    "release", "running_build", "runs_cuda", "toolkit_window", "variant_cuda",
]
