"""PyTorch checks: CPU-only build on a GPU machine, driver too old for torch's CUDA, the
live GPU test, and GPU architectures missing from the build."""

from __future__ import annotations

import re

from packaging.version import Version

from llmdoctor.data import rows
from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from .nvidia import no_gpu
from .python import pip_cmd

PREVIOUS_VERSIONS = "https://pytorch.org/get-started/previous-versions/"
NO_KERNEL_DOCS = "https://pytorch.org/get-started/locally/"


def flavour_cuda(flavour: str) -> Version:
    """'cu121' -> 12.1, 'cu130' -> 13.0."""
    digits = flavour[2:]
    return Version(f"{digits[:-1]}.{digits[-1]}")


def driver_cuda(gpu_facts) -> Version | None:
    """Newest CUDA the driver runs: NVML says it; else inferred from the driver version."""
    if gpu_facts.cuda_driver_version:
        return parse_version(gpu_facts.cuda_driver_version)
    driver = parse_version(gpu_facts.driver_version)
    if driver is None:
        return None
    for item in rows("llmdoctor.checks", "cuda_driver_minimums"):
        if driver >= Version(item["min_driver"]):
            return Version(f"{item['cuda_major']}.0")
    return None


def cuda_window(gpu_facts) -> tuple[Version | None, Version | None]:
    """(min, max) CUDA whose kernels run on every visible GPU (from gpu_arch_cuda.json)."""
    low = high = None
    table = sorted(rows("llmdoctor.checks", "gpu_arch_cuda"), key=lambda r: Version(r["cc_from"]), reverse=True)
    for gpu in gpu_facts.visible_gpus:
        if gpu.cc_major is None:
            continue
        cc = Version(f"{gpu.cc_major}.{gpu.cc_minor or 0}")
        row = next((r for r in table if cc >= Version(r["cc_from"])), None)
        if row is None:
            continue
        low = max(filter(None, (low, Version(row["min_cuda"]))))
        if row["max_cuda"]:
            high = min(filter(None, (high, Version(row["max_cuda"]))))
    return low, high


def wheel_for(torch_version: str | None, max_cuda: Version | None,
              window: tuple[Version | None, Version | None] = (None, None)) -> tuple[str, str | None, str | None]:
    """(version to install, flavour, caveat): the user's torch version where the table knows
    its flavours, with the newest flavour the driver runs and the GPUs' architectures
    allow (None when none does)."""
    base = (parse_version(torch_version).base_version if parse_version(torch_version) else None) or ""
    minor = ".".join(base.split(".")[:2])
    known = {r["torch"]: r["flavours"] for r in rows("llmdoctor.checks", "torch_cuda_builds")}
    flavours = known.get(minor) or sorted({f for fl in known.values() for f in fl}, key=flavour_cuda)
    low, high = window
    usable = [f for f in flavours if (max_cuda is None or flavour_cuda(f) <= max_cuda)
              and (low is None or flavour_cuda(f) >= low) and (high is None or flavour_cuda(f) <= high)]
    if not usable:
        return base, None, None
    flavour = max(usable, key=flavour_cuda)
    caveat = None if minor in known else f"check that torch {base} has a {flavour} build on {PREVIOUS_VERSIONS}"
    return base, flavour, caveat


def best_wheel(torch_version: str | None, gpu_facts) -> tuple[str, str | None, str | None]:
    """wheel_for with this machine's driver and GPU architectures."""
    return wheel_for(torch_version, driver_cuda(gpu_facts), cuda_window(gpu_facts))


def install_cmd(facts, version: str, flavour: str | None) -> str:
    if flavour is None:
        oldest = rows("llmdoctor.checks", "cuda_driver_minimums")[-1]
        return (f"upgrade the NVIDIA driver (no current torch build runs on it; CUDA {oldest['cuda_major']} "
                f"needs >= {oldest['min_driver']})")
    spec = f"torch=={version}" if version else "torch"
    return pip_cmd(facts, "install", "--force-reinstall", spec, "--index-url",
                   f"https://download.pytorch.org/whl/{flavour}")


@check("torch.build", needs=["torch"])
def build_check(facts, c):
    """Which torch the target has, read without importing it."""
    t = facts.value("torch")
    if not t.installed:
        yield c.finding(Status.SKIP, "torch is not installed in the target environment")
        return
    what = {"cuda": f"CUDA {t.cuda} build", "rocm": f"ROCm {t.hip} build", "cpu": "CPU-only build"}[t.build]
    yield c.finding(Status.INFO, f"torch {t.version}, {what}", detail=t.location or "")


@check("torch.cpu-only", needs=["torch", "gpu"])
def cpu_only_check(facts, c):
    """CPU-only torch on a machine with an NVIDIA GPU ("Torch not compiled with CUDA enabled")."""
    t, g = facts.value("torch"), facts.value("gpu")
    if no_gpu(g) or not t.installed:
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "torch is not installed")
        return
    if t.build != "cpu":
        yield c.finding(Status.OK, f"torch {t.version} is a {t.build.upper()} build")
        return
    version, flavour, caveat = best_wheel(t.version, g)
    yield c.finding(Status.FAIL, f"torch {t.version} is a CPU-only build on a machine with "
                    f"{len(g.gpus)} NVIDIA GPU{'s' * (len(g.gpus) != 1)}: torch.cuda.is_available() is False",
                    detail=f"The driver {g.driver_version} runs CUDA up to {g.cuda_driver_version or '?'}"
                           + (f"; the {flavour} build fits it." if flavour else "; no torch build fits it.")
                           + (f" Then {caveat}." if caveat else ""),
                    fix=install_cmd(facts, version, flavour), docs=PREVIOUS_VERSIONS)


@check("torch.driver", needs=["torch", "gpu"])
def driver_check(facts, c):
    """The NVIDIA driver is new enough for torch's CUDA build (minor-version compatibility)."""
    t, g = facts.value("torch"), facts.value("gpu")
    if no_gpu(g) or not t.installed or t.build != "cuda":
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "torch is not a CUDA build")
        return
    major = parse_version(t.cuda).major if parse_version(t.cuda) else None
    row = next((r for r in rows("llmdoctor.checks", "cuda_driver_minimums") if r["cuda_major"] == major), None)
    driver = parse_version(g.driver_version)
    if row is None or driver is None:
        yield c.finding(Status.SKIP, f"no driver minimum on record for CUDA {t.cuda} / driver {g.driver_version}")
        return
    if driver >= Version(row["min_driver"]):
        yield c.finding(Status.OK, f"Driver {g.driver_version} runs torch's CUDA {t.cuda} "
                        f"(needs >= {row['min_driver']})", docs=row["source"])
        version, flavour, caveat = best_wheel(t.version, g)
        if flavour and parse_version(t.cuda) and flavour_cuda(flavour) > parse_version(t.cuda):
            yield c.finding(Status.INFO, f"This driver also runs the {flavour} build of torch {version} "
                            f"(newer CUDA than {t.cuda})", id="torch.newer-build-fits",
                            detail=caveat or "", fix=install_cmd(facts, version, flavour), docs=PREVIOUS_VERSIONS)
        return
    version, flavour, caveat = best_wheel(t.version, g)
    yield c.finding(Status.FAIL, f"Driver {g.driver_version} is too old for torch {t.version} (CUDA {t.cuda} "
                    f"needs driver >= {row['min_driver']})",
                    detail="Upgrade the NVIDIA driver"
                           + (f", or install the {flavour} build that this driver runs." if flavour else ".")
                           + (f" Then {caveat}." if caveat else ""),
                    fix=install_cmd(facts, version, flavour), docs=row["source"])


@check("torch.live", needs=["torch", "gpu"])
def live_check(facts, c):
    """torch.cuda works: is_available(), and a matmul on every visible GPU matches the CPU."""
    t, g = facts.value("torch"), facts.value("gpu")
    if no_gpu(g) or not t.installed or t.build == "cpu":
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "torch has no GPU support (see torch.cpu-only)")
        return
    if t.live_error:
        yield c.finding(Status.FAIL, f"`import torch` in the target failed: {t.live_error.splitlines()[0]}",
                        detail=t.live_error,
                        fix=install_cmd(facts, *best_wheel(t.version, g)[:2]))
        return
    live = t.live
    if live is None:
        yield c.finding(Status.SKIP, t.live_skipped or "the live test did not run")
        return
    if live.error or not live.cuda_available:
        yield c.finding(Status.FAIL, f"torch.cuda.is_available() is False with {len(g.visible_gpus)} visible GPU(s)"
                        + (f": {live.error}" if live.error else ""), detail=live.error or "",
                        docs="https://pytorch.org/docs/stable/notes/cuda.html")
        return
    bad = [d for d in live.devices if d.error or not d.matmul_ok]
    for d in bad:
        yield c.finding(Status.FAIL, f"GPU {d.index} ({d.name}): "
                        + (d.error or f"matmul differs from the CPU by {d.matmul_max_abs_diff}"),
                        id="torch.live-device", detail=d.error or "")
    if not bad:
        yield c.finding(Status.OK, f"torch.cuda sees {live.device_count} GPU{'s' * (live.device_count != 1)}; "
                        "a matmul on each matches the CPU")


def runs_on(cc: str, arch_list) -> bool:
    """A build runs on compute capability ``cc`` if it has cubins for that major at a minor
    <= cc's, or PTX (compute_XY) at or below cc to JIT from."""
    major, minor = (int(x) for x in cc.split("."))
    for arch in arch_list:
        m = re.fullmatch(r"(sm|compute)_(\d+)(\d)a?", arch)
        if not m:
            continue
        a_major, a_minor = int(m.group(2)), int(m.group(3))
        if m.group(1) == "sm" and a_major == major and a_minor <= minor:
            return True
        if m.group(1) == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


@check("torch.arch", needs=["torch", "gpu"])
def arch_check(facts, c):
    """Each GPU's compute capability is in torch's compiled arch list ("no kernel image is available")."""
    t, g = facts.value("torch"), facts.value("gpu")
    live = t.live if t.installed else None
    if no_gpu(g) or live is None or not live.arch_list:
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "needs the live torch test")
        return
    for gpu in g.visible_gpus:
        if not gpu.compute_capability:
            continue
        if runs_on(gpu.compute_capability, live.arch_list):
            yield c.finding(Status.OK, f"GPU {gpu.index} (sm_{gpu.compute_capability.replace('.', '')}) is in "
                            f"torch's arch list")
        else:
            yield c.finding(Status.FAIL, f"GPU {gpu.index} {gpu.name} (compute capability {gpu.compute_capability}) "
                            f"is not in torch {t.version}'s arch list {', '.join(live.arch_list)}: "
                            "'no kernel image is available for execution on the device'",
                            id="torch.arch-missing", docs=NO_KERNEL_DOCS,
                            fix=install_cmd(facts, *best_wheel(None, g)[:2]))
