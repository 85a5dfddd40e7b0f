"""Judging measured bench results against the GPU class profiles (data/profiles.json): does
each workload fit the class's memory, and is it at least as fast as the class's cited
reference, scaled to the benched model. A pure function of the numbers."""

from __future__ import annotations

from dataclasses import dataclass

from llmdoctor.data import row, table

from .estimate import weights
from .presets import PACKAGE, Arch

QUANT_OF = {"train-qlora": "nf4", "train-lora16": "16bit", "generate-nf4": "nf4", "generate-int8": "int8",
            "generate-16bit": "16bit"}


@dataclass(frozen=True)
class Judgement:
    workload: str
    profile: str
    fits: bool | None  #: None when there is no GPU measurement
    fast: bool | None  #: None when the class has no reference for this workload
    peak_with_context: int | None
    usable: int
    reference_tps: float | None
    measured_tps: float | None
    reference: str | None  #: how the reference was obtained, and its source
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.fits is None:
            return None
        return self.fits and self.fast is not False


def profile(name: str) -> dict:
    return row(PACKAGE, "profiles", "name", name)


def context_bytes() -> int:
    return table(PACKAGE, "profiles")["cuda_context_bytes"]


HOST_BOUND = 0.25  #: decode below this share of the bandwidth roofline is limited by the host, not the GPU


def scaled_reference(ref: dict, workload: str, arch: Arch) -> float:
    """A generation reference scaled down by weight bytes read per token for a larger model
    (decode is bandwidth-bound there), never up for a smaller one: per-token overhead (Python,
    kernel launches) floors it (benchmark/results/H200-*: qwen2.5-1.5b decoded at 47 tok/s,
    yi-6b at 43, with a quarter of the bytes). A training reference (stated for a 6B model)
    scaled by parameters."""
    if workload.startswith("generate") and ref.get("ref_weight_bytes"):
        return ref["tokens_per_s"] * min(1.0, ref["ref_weight_bytes"] / weights(arch, QUANT_OF[workload], 2))
    return ref["tokens_per_s"] * 6.06e9 / arch.params()


def judge(workload: str, prof: dict, arch: Arch, peak_allocated: int | None, tokens_per_s: float | None,
          on_gpu: bool, decode_fraction: float | None = None) -> Judgement:
    """``decode_fraction``: the measured decode's share of this GPU's bandwidth roofline, which
    says why a generation is slow when it is (the host, or the GPU)."""
    ref = prof["references"].get(workload)
    ref_tps = scaled_reference(ref, workload, arch) if ref else None
    source = f"{ref['derivation']} ({ref['source']})" if ref else None
    if not on_gpu or peak_allocated is None:
        return Judgement(workload, prof["name"], None, None, None, prof["usable_bytes"], ref_tps, tokens_per_s, source,
                         "no GPU to judge")
    peak = peak_allocated + context_bytes()
    fits = peak <= prof["usable_bytes"]
    fast = None if ref_tps is None or tokens_per_s is None else tokens_per_s >= ref_tps
    note = ""
    if fast is False and decode_fraction is not None and decode_fraction < HOST_BOUND:
        note = (f"decode under {HOST_BOUND:.0%} of this GPU's memory-bandwidth roofline (%ROOF): per-token overhead "
                "(Python, kernel launches, dequantization) limits it, not the GPU's memory; a faster host CPU or a "
                "compiled / static-cache generate helps, a larger GPU does not")
    return Judgement(workload, prof["name"], fits, fast, peak, prof["usable_bytes"], ref_tps, tokens_per_s, source,
                     note)
