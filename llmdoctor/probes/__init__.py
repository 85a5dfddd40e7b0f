"""Probes gather facts. Each is a function of a :class:`ProbeContext` returning one
frozen dataclass; the runner gives each its own thread and deadline."""

from __future__ import annotations

from llmdoctor.probes.base import Probe, ProbeContext, ProbeFailed, TargetFailure, read_text  # noqa: F401 - the probes' vocabulary, re-exported


def builtin_probes() -> tuple[Probe, ...]:
    from llmdoctor.probes.clock import ClockFacts, probe_clock
    from llmdoctor.probes.nvidia import GpuFacts, probe_gpu
    from llmdoctor.probes.python_env import ImportFacts, TargetFacts, probe_extensions, probe_imports, probe_target
    from llmdoctor.probes.cache import CacheFacts, probe_cache
    from llmdoctor.probes.network import NetConfigFacts, NetworkFacts, probe_netconfig, probe_network
    from llmdoctor.probes.pytorch import TorchFacts, probe_torch
    from llmdoctor.probes.remote_code import RemoteCodeFacts, probe_remote_code
    from llmdoctor.probes.system import SystemFacts, probe_system
    from llmdoctor.probes.toolkit import ToolkitFacts, probe_toolkit
    from llmdoctor.probes.allreduce import AllReduceFacts, probe_allreduce
    from llmdoctor.probes.node import NodeFacts, probe_node
    from llmdoctor.probes.topology import TopologyFacts, probe_topology
    from llmdoctor.probes.model import ModelFacts, probe_model
    from llmdoctor.probes.platform import PlatformFacts, probe_platform

    return (
        Probe("clock", probe_clock, ClockFacts, timeout_s=2.0,
              description="the date the report is made (checks judge dates against it, so replays agree)"),
        Probe("system", probe_system, SystemFacts, timeout_s=10.0,
              description="OS, WSL, container, CPUs, RAM, swap, /dev/shm, disks"),
        Probe("platform", probe_platform, PlatformFacts, timeout_s=10.0,
              description="WSL 2's GPU files and memory cap, Windows' symlink privilege and runtime DLLs, macOS' CPU "
                          "(Apple silicon, Rosetta), the shell's variables"),
        Probe("target", probe_target, TargetFacts, timeout_s=20.0, crash_is_failure=True,
              description="the target interpreter and its installed distributions"),
        Probe("gpu", probe_gpu, GpuFacts, timeout_s=10.0,
              description="NVIDIA driver and GPUs through NVML (nvidia-smi fallback)"),
        Probe("torch", probe_torch, TorchFacts, timeout_s=80.0,
              description="PyTorch build (read without importing); live GPU test where a driver exists"),
        Probe("cuda", probe_toolkit, ToolkitFacts, timeout_s=15.0,
              description="CUDA toolkit (every nvcc), CUDA_HOME, host compiler, ninja, cuDNN headers"),
        Probe("target.imports", probe_imports, ImportFacts, timeout_s=30.0, crash_is_failure=True,
              description="imports the target's native-extension packages in a subprocess"),
        Probe("target.extensions", probe_extensions, ImportFacts, timeout_s=45.0, crash_is_failure=True,
              description="imports the target's installed CUDA extensions (flash_attn, bitsandbytes); "
                          "bitsandbytes by its native library where that decides the same"),
        Probe("network", probe_network, NetworkFacts, timeout_s=12.0, network=True,
              description="hub, mirror, xet, pip and PyTorch endpoints (DNS, TCP, TLS, HTTP) and one real "
                          "huggingface_hub call in the target"),
        Probe("netconfig", probe_netconfig, NetConfigFacts, timeout_s=5.0,
              description="pip and conda settings that decide TLS verification and the index"),
        Probe("cache", probe_cache, CacheFacts, timeout_s=20.0,
              description="Hugging Face cache roots: contents, what prune could free, filesystems, split caches"),
        Probe("hub.remote-code", probe_remote_code, RemoteCodeFacts, timeout_s=60.0,
              description="cached model repos with their own code (auto_map) and the transformers they were saved with"),
        Probe("topology", probe_topology, TopologyFacts, timeout_s=10.0,
              description="how the GPUs are linked (NVML P2P status, NVLink, PCIe, NUMA) and the network interfaces "
                          "and InfiniBand/RoCE ports"),
        Probe("node", probe_node, NodeFacts, timeout_s=5.0,
              description="host name, the NCCL / torch.distributed / CUDA / HF variables and nccl.conf"),
        Probe("allreduce", probe_allreduce, AllReduceFacts, timeout_s=5.0,
              description="a live all-reduce across this node's GPUs (with --distributed only)"),
        Probe("model", probe_model, ModelFacts, timeout_s=70.0,
              description="the models named with --model (and loaded by --project's scripts): where they are, "
                          "their files, config and code, hub access; nothing without --model"),
    )
