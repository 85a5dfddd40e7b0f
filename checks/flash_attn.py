"""FlashAttention: whether this GPU and torch can use it at all (a T4 cannot: use SDPA)."""

from __future__ import annotations

from packaging.utils import canonicalize_name
from packaging.version import Version

from llmdoctor.data import row
from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from .nvidia import no_gpu

SDPA = 'AutoModelForCausalLM.from_pretrained(..., attn_implementation="sdpa")'


def installed(target, name: str) -> str | None:
    for d in target.distributions if target else ():
        if d.name and canonicalize_name(d.name) == canonicalize_name(name):
            return d.version
    return None


@check("build.flash-attn", category="build", needs=["gpu", "torch", "target"])
def flash_attn_check(facts, c):
    """FlashAttention-2/3 against the GPU's compute capability, torch and its CUDA."""
    g, t, target = facts.value("gpu"), facts.value("torch"), facts.value("target")
    if no_gpu(g):
        yield c.finding(Status.SKIP, "No NVIDIA GPU")
        return
    fa2, fa3 = row("llmdoctor.checks", "flash_attn", "name", "fa2"), row("llmdoctor.checks", "flash_attn", "name", "fa3")
    have = installed(target, "flash-attn")
    torch_cuda = parse_version(t.cuda) if t.installed else None
    for gpu in g.visible_gpus:
        if gpu.cc_major is None:
            continue
        cc = Version(gpu.compute_capability)
        if cc < Version(fa2["min_cc"]):
            status = Status.WARN if have else Status.INFO
            what = f"flash-attn {have} is installed, but " if have else ""
            yield c.finding(status, f"{what}FlashAttention-2 does not run on GPU {gpu.index} {gpu.name} (compute "
                            f"capability {gpu.compute_capability} < {fa2['min_cc']}): use PyTorch SDPA",
                            id="build.flash-attn-unsupported-gpu", detail=fa2["why"], fix=SDPA, docs=fa2["source"])
            continue
        too_old = []
        torch_version = parse_version(t.version) if t.installed else None
        if torch_version and Version(torch_version.base_version) < Version(fa2["min_torch"]):
            too_old.append(f"torch {t.version}")
        if torch_cuda and torch_cuda < Version(fa2["min_cuda"]):
            too_old.append(f"CUDA {t.cuda}")
        if too_old:
            yield c.finding(Status.WARN, f"flash-attn >= {fa2['since']} needs torch >= {fa2['min_torch']} and CUDA >= "
                            f"{fa2['min_cuda']}; this environment has {' and '.join(too_old)}",
                            id="build.flash-attn-old-stack", detail=fa2["why"], fix="llmdoctor fix --torch",
                            docs=fa2["source"])
        else:
            yield c.finding(Status.OK, f"GPU {gpu.index} {gpu.name} can use FlashAttention-2"
                            + (f" (flash-attn {have} installed)" if have else ""), docs=fa2["source"])
        if (Version(fa3["min_cc"]) <= cc <= Version(fa3["max_cc"]) and torch_cuda
                and torch_cuda >= Version(fa3["min_cuda"])):
            yield c.finding(Status.INFO, f"GPU {gpu.index} is a Hopper GPU with CUDA {t.cuda}: FlashAttention-3 "
                            "(flash-attn-3) is available too", id="build.flash-attn-3", docs=fa3["source"])
