"""llmdoctor's built-in checks. They register through the ``llmdoctor.checks`` entry
point exactly as a third-party plugin does."""

from __future__ import annotations


#: how reports head the built-in checks' categories (the checks own their wording)
CATEGORY_TITLES = {
    "python": "Python environment",
    "system": "System",
    "gpu": "GPU and driver",
    "cuda": "CUDA toolkit",
    "torch": "PyTorch",
    "network": "Network",
    "cache": "Hugging Face cache",
    "build": "Building CUDA extensions",
    "distributed": "Several GPUs and nodes",
    "model": "Model",
}


def builtin_checks():
    from dataclasses import replace

    return tuple(replace(c, category_title=CATEGORY_TITLES.get(c.category)) for c in _checks())


def _checks():
    from llmdoctor.checks import (build, cache, distributed, flash_attn, jupyter, model, network, nvidia, packages,
                                  platforms, python, pytorch, remote_code, stack, system, toolkit)

    return (
        python.target_check,
        python.version_check,
        python.headers_check,
        python.imports_check,
        packages.dependencies_check,
        stack.known_bad_check,
        stack.implied_extras_check,
        jupyter.jupyter_kernel_check,
        system.platform_check,
        system.memory_check,
        system.swap_check,
        system.shm_check,
        system.disk_check,
        system.cpu_check,
        platforms.wsl_check,
        platforms.wsl_memory_check,
        platforms.windows_check,
        platforms.macos_check,
        nvidia.presence_check,
        nvidia.visible_devices_check,
        nvidia.memory_check,
        nvidia.bf16_check,
        nvidia.health_check,
        pytorch.build_check,
        pytorch.cpu_only_check,
        pytorch.driver_check,
        pytorch.live_check,
        pytorch.arch_check,
        toolkit.nvcc_check,
        toolkit.host_compiler_check,
        flash_attn.flash_attn_check,
        flash_attn.flash_attn_install_check,
        build.extension_imports_check,
        build.ninja_check,
        build.compile_ram_check,
        build.deepspeed_check,
        build.bitsandbytes_check,
        remote_code.remote_code_check,
        cache.contents_check,
        cache.location_check,
        cache.split_check,
        cache.network_fs_check,
        cache.symlinks_check,
        network.insecure_check,
        network.proxy_check,
        network.hub_check,
        network.hub_client_check,
        network.mirror_check,
        network.endpoints_check,
        network.clock_check,
        distributed.topology_check,
        distributed.p2p_check,
        distributed.nccl_env_check,
        distributed.network_check,
        distributed.allreduce_check,
        model.location_check,
        model.files_check,
        model.code_check,
        model.access_check,
        model.fit_check,
        model.project_check,
    )
