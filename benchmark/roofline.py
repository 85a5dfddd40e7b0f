"""How close a measured run comes to the GPU's physical limits (data/gpu_peaks.json).

Decode at batch 1 reads every weight once per token, so ``tokens/s x bytes read per token``
against the peak memory bandwidth is the fraction of the roofline reached. Training and
prefill are compute-bound: model FLOPs utilisation (PaLM, appendix B) is ``tokens/s x model
FLOPs per token`` against the peak dense 16-bit tensor throughput.

Model FLOPs per token, PaLM's convention (recomputation by gradient checkpointing is not
counted): a full fine-tune costs 6N + 12·L·H·Q·T; LoRA leaves the base frozen, so its
weight-gradient GEMMs (2N) are not run: 4N + 12·L·H·Q·T plus 6 per adapter parameter.
N counts the matmul weights (decoder projections and the lm_head; the embedding is a
lookup). Forward alone (prefill): 2N + 4·L·H·Q·T. Pure functions of numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmdoctor.data import rows

from .estimate import linear_bytes
from .presets import PACKAGE, Arch
from .verdict import QUANT_OF

CONVENTION = ("MFU = tokens/s x model FLOPs per token / peak dense 16-bit TFLOPS; LoRA counts 4N + 6 per adapter "
              "parameter + 12·L·H·Q·T per token (frozen base, recomputation not counted, PaLM appendix B)")


@dataclass(frozen=True)
class Peak:
    name: str
    bandwidth: float  #: bytes/s
    flops: float | None  #: dense 16-bit tensor FLOP/s, None where unpublished
    source: str


def peak_of(device_name: str | None) -> Peak | None:
    """The row for a GPU name as torch or NVML reports it ("Tesla T4", "NVIDIA H100 80GB HBM3")."""
    if not device_name:
        return None
    for r in rows(PACKAGE, "gpu_peaks"):
        if re.search(r["match"], device_name, re.IGNORECASE):
            tf = r.get("tflops_16bit")
            return Peak(r["name"], r["bandwidth_gbs"] * 1e9, tf * 1e12 if tf else None, r["source"])
    return None


def matmul_params(arch: Arch) -> int:
    return arch.linear_params() + arch.vocab * arch.hidden  # the lm_head, tied or not, is a matmul


def attention_flops(arch: Arch, seq: int) -> int:
    """Forward attention score and value matmuls per token at context ``seq`` (4·L·H·Q·T)."""
    return 4 * arch.layers * arch.heads * arch.head_dim * seq


def train_flops_per_token(arch: Arch, seq: int, lora_params: int) -> int:
    return 4 * matmul_params(arch) + 6 * lora_params + 3 * attention_flops(arch, seq)


def forward_flops_per_token(arch: Arch, seq: int) -> int:
    return 2 * matmul_params(arch) + attention_flops(arch, seq)


def bytes_per_decoded_token(arch: Arch, quant: str, context: int, elt: int = 2) -> int:
    """Weight bytes read for one decoded token (bitsandbytes keeps the lm_head and norms in
    16 bits; the embedding reads one row) plus the KV cache read at ``context`` tokens."""
    linear = linear_bytes(arch, quant, elt)
    rest = (arch.vocab * arch.hidden + arch.layers * 2 * arch.hidden + arch.hidden + arch.hidden) * elt
    kv = 2 * arch.layers * arch.kv_dim * elt * context
    return linear + rest + kv


def decode_fraction(tokens_per_s: float, arch: Arch, quant: str, prompt: int, new: int, peak: Peak) -> dict:
    """Share of the bandwidth roofline a batch-1 decode reached (mean context over the decode)."""
    per_token = bytes_per_decoded_token(arch, quant, prompt + new // 2)
    roof = peak.bandwidth / per_token
    return {"bytes_per_token": per_token, "roofline_tokens_per_s": round(roof, 1),
            "fraction": round(tokens_per_s / roof, 4), "peak": peak.name, "source": peak.source}


def mfu(tokens_per_s: float, flops_per_token: int, peak: Peak) -> dict | None:
    if not peak.flops:
        return None
    return {"flops_per_token": flops_per_token, "fraction": round(tokens_per_s * flops_per_token / peak.flops, 4),
            "peak": peak.name, "source": peak.source}


def efficiency(workload: str, measured: dict, arch: Arch, seq: int, prompt: int, new: int, rank: int,
               peak: Peak | None) -> dict | None:
    """The fractions of ``peak`` one measured workload reached: MFU for training; the
    bandwidth roofline for decode and MFU for prefill in generation."""
    if peak is None or not measured.get("ok") or not measured.get("tokens_per_s"):
        return None
    tps = measured["tokens_per_s"]
    if workload.startswith("train"):
        lora = (measured.get("extra") or {}).get("trainable_params") or arch.lora_params(rank)
        got = mfu(tps, train_flops_per_token(arch, seq, lora), peak)
        return {"mfu": got, "convention": CONVENTION} if got else None
    out = {"decode": decode_fraction(tps, arch, QUANT_OF[workload], prompt, new, peak)}
    if measured.get("prefill_tokens_per_s"):
        out["prefill_mfu"] = mfu(measured["prefill_tokens_per_s"], forward_flops_per_token(arch, prompt), peak)
    return out


def headline(eff: dict | None) -> float | None:
    """The one fraction a table shows: MFU for training, the decode roofline share for generation."""
    if not eff:
        return None
    if "mfu" in eff:
        return eff["mfu"]["fraction"]
    return eff["decode"]["fraction"]
