"""Peak GPU memory of each bench workload, predicted from the architecture before anything
runs, so a workload that cannot fit is skipped with the reason. Counts what
torch.cuda.max_memory_allocated sees (the CUDA context and allocator slack come on top).

Weights: nf4 is half a byte per linear weight plus one fp32 absmax per 64 (bitsandbytes'
blocksize), int8 one byte plus a scale per row, 16-bit two bytes. QLoRA casts every
parameter that is not 4-bit to fp32 (peft's prepare_model_for_kbit_training). LoRA adapters
cost 16 bytes a parameter with AdamW (fp32 weight, grad, two moments). With gradient
checkpointing each layer keeps its input, and one layer's activations are live during its
recomputation; the fp32 logits and their gradient dominate at large vocabularies. Generation
keeps the logits of the last position only (transformers' generate), and both workloads hold
cuBLAS's workspace, which torch allocates through its caching allocator: 64 MiB, read off the
16-bit runs in benchmark/results/ (peak minus weights, KV cache and activations, the same for
a 64k and a 152k vocabulary). That is the H200's; GPUs before Hopper get smaller default
workspaces from torch, so there the estimate errs by tens of MiB on the safe side."""

from __future__ import annotations

from dataclasses import dataclass

from .presets import Arch

BLOCK = 64  #: bitsandbytes 4-bit blocksize
WORKSPACE = 64 * 2**20  #: cuBLAS workspace (measured, see the module's docstring)


@dataclass(frozen=True)
class Estimate:
    workload: str
    bytes: int
    parts: dict[str, int]


def linear_bytes(arch: Arch, quant: str, elt: int = 2) -> int:
    """The decoder's linear projections as bitsandbytes stores them (or in ``elt`` bytes)."""
    lin = arch.linear_params()
    return {"nf4": lin // 2 + lin // BLOCK * 4, "int8": lin + arch.layers * 7 * arch.hidden * 4,
            "16bit": lin * elt}[quant]


def weights(arch: Arch, quant: str, other_bytes: int) -> int:
    return linear_bytes(arch, quant) + arch.other_params() * other_bytes


def layer_activations(arch: Arch, tokens: int, elt: int = 2) -> int:
    """One decoder layer's live activations in training (SDPA: no seq^2 attention matrix kept)."""
    h, i = arch.hidden, arch.inter
    return tokens * elt * (6 * h + 2 * arch.kv_dim + 4 * i)


def train(arch: Arch, quant: str, batch: int, seq: int, rank: int, elt: int = 2) -> Estimate:
    tokens = batch * seq
    parts = {
        "weights": weights(arch, quant, 4 if quant == "nf4" else elt),
        "lora+adam": arch.lora_params(rank) * 16,
        "checkpoints": arch.layers * tokens * arch.hidden * elt,
        "recompute": layer_activations(arch, tokens, elt),
        "logits": tokens * arch.vocab * (elt + 4 + 4),  # output, fp32 upcast for the loss, its gradient
        "workspace": WORKSPACE,
    }
    return Estimate(f"train-{'qlora' if quant == 'nf4' else 'lora16'}", sum(parts.values()), parts)


def generate(arch: Arch, quant: str, prompt: int, new: int, batch: int = 1, elt: int = 2) -> Estimate:
    ctx = prompt + new
    parts = {
        "weights": weights(arch, quant, elt),
        "kv-cache": 2 * arch.layers * ctx * arch.kv_dim * elt * batch,
        "prefill": batch * prompt * (4 * arch.hidden + 2 * arch.inter) * elt + batch * arch.vocab * 4,
        "workspace": WORKSPACE,
    }
    return Estimate(f"generate-{quant}", sum(parts.values()), parts)
