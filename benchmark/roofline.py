"""How close a measured run comes to the GPU's physical limits (data/gpu_peaks.json).

Decode at batch 1 reads every weight once per token, so ``tokens/s x bytes read per token``
against the peak memory bandwidth is the fraction of the roofline reached. Training and
prefill are compute-bound: model FLOPs utilisation (PaLM, appendix B) is ``tokens/s x model
FLOPs per token`` against the peak dense 16-bit tensor throughput.

Model FLOPs per token, PaLM's convention (recomputation by gradient checkpointing is not
counted): a full fine-tune costs 6N + 12·L·H·Q·T; LoRA leaves the base frozen, so its
weight-gradient GEMMs (2N) are not run: 4N + 12·L·H·Q·T plus 6 per adapter parameter.
N counts the matmul weights (decoder projections and the lm_head; the embedding is a
lookup). Hardware FLOPs (HFU) count what the GPU really runs: with gradient checkpointing
each decoder layer's forward runs twice, + 2·N_decoder + 4·L·H·Q·T, so for the N part MFU is
4/6 of HFU. Prefill: 2·N_decoder + 4·L·H·Q·T per prompt token, and the lm_head once, for the
last position only (transformers' generate keeps that position's logits). Pure functions of
numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmdoctor.data import rows

from llmdoctor.benchmark.estimate import linear_bytes
from llmdoctor.benchmark.presets import PACKAGE, Arch
from llmdoctor.benchmark.estimate import QUANT_OF

CONVENTION = ("MFU = tokens/s x model FLOPs per token / peak dense 16-bit TFLOPS; LoRA counts 4N + 6 per adapter "
              "parameter + 12·L·H·Q·T per token (frozen base, recomputation not counted, PaLM appendix B); HFU adds "
              "the recomputed forward of gradient checkpointing, 2·N_decoder + 4·L·H·Q·T")


@dataclass(frozen=True)
class Peak:
    name: str
    bandwidth: float  #: bytes/s
    flops: float | None  #: dense 16-bit tensor FLOP/s, None where unpublished
    source: str
    derived: str | None = None  #: the arithmetic where the dense figure is derived from the sparse one


def peak_of(device_name: str | None) -> Peak | None:
    """The row for a GPU name as torch or NVML reports it ("Tesla T4", "NVIDIA H100 80GB HBM3")."""
    if not device_name:
        return None
    for r in rows(PACKAGE, "gpu_peaks"):
        if re.search(r["match"], device_name, re.IGNORECASE):
            tf = r.get("tflops_16bit")
            return Peak(r["name"], r["bandwidth_gbs"] * 1e9, tf * 1e12 if tf else None, r["source"], r.get("derived"))
    return None


def peak_named(name: str) -> Peak:
    """The row of gpu_peaks.json called ``name`` ("T4", "RTX 4090")."""
    for r in rows(PACKAGE, "gpu_peaks"):
        if r["name"] == name:
            tf = r.get("tflops_16bit")
            return Peak(r["name"], r["bandwidth_gbs"] * 1e9, tf * 1e12 if tf else None, r["source"], r.get("derived"))
    raise KeyError(f"gpu_peaks.json has no row named {name!r}")


def matmul_params(arch: Arch) -> int:
    return arch.linear_params() + arch.vocab * arch.hidden  # the lm_head, tied or not, is a matmul


def attention_flops(arch: Arch, seq: int) -> int:
    """Forward attention score and value matmuls per token at context ``seq`` (4·L·H·Q·T)."""
    return 4 * arch.layers * arch.heads * arch.head_dim * seq


def train_flops_per_token(arch: Arch, seq: int, lora_params: int) -> int:
    """Model FLOPs (MFU's numerator) per trained token of a LoRA step."""
    return 4 * matmul_params(arch) + 6 * lora_params + 3 * attention_flops(arch, seq)


def train_hw_flops_per_token(arch: Arch, seq: int, lora_params: int) -> int:
    """Hardware FLOPs (HFU's numerator): gradient checkpointing runs each layer's forward again."""
    return train_flops_per_token(arch, seq, lora_params) + 2 * arch.linear_params() + attention_flops(arch, seq)


def forward_flops_per_token(arch: Arch, seq: int) -> int:
    """A forward over every position, logits included (a training forward)."""
    return 2 * matmul_params(arch) + attention_flops(arch, seq)


def prefill_flops_per_token(arch: Arch, prompt: int) -> float:
    """generate's prefill per prompt token: the decoder for every position, the lm_head once."""
    return 2 * arch.linear_params() + attention_flops(arch, prompt) + 2 * arch.vocab * arch.hidden / prompt


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


def mfu(tokens_per_s: float, flops_per_token: float, peak: Peak) -> dict | None:
    if not peak.flops:
        return None
    return {"flops_per_token": round(flops_per_token), "fraction": round(tokens_per_s * flops_per_token / peak.flops, 4),
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
        if not got:
            return None
        return {"mfu": got, "hfu": mfu(tps, train_hw_flops_per_token(arch, seq, lora), peak), "convention": CONVENTION}
    out = {"decode": decode_fraction(tps, arch, QUANT_OF[workload], prompt, new, peak)}
    if measured.get("prefill_tokens_per_s"):
        out["prefill_mfu"] = mfu(measured["prefill_tokens_per_s"], prefill_flops_per_token(arch, prompt), peak)
    return out


def headline(eff: dict | None) -> float | None:
    """The one fraction a table shows: MFU for training, the decode roofline share for generation."""
    if not eff:
        return None
    if "mfu" in eff:
        return eff["mfu"]["fraction"]
    return eff["decode"]["fraction"]
