"""Memory of one model's recipes, from its own config.json, with the estimator `llmdoctor
bench` uses (benchmark/estimate.py): pure arithmetic, no torch."""

from __future__ import annotations

from dataclasses import dataclass

from llmdoctor.benchmark import estimate
from llmdoctor.benchmark.presets import Arch

NEW_TOKENS = 64  #: generation length the inference estimates assume (bench's default)
LORA_RANK = 16


@dataclass(frozen=True)
class Recipe:
    key: str  #: infer-16bit | infer-fp32 | infer-int8 | infer-nf4 | lora | qlora
    seq: int
    label: str  #: for people: "inference in bf16", "QLoRA (nf4)"
    bytes: int  #: the process's predicted footprint, CUDA context included (benchmark/estimate.py)
    weights: int  #: of which weights
    quant: str | None = None  #: nf4 | int8 (needs bitsandbytes)


def recipe(arch: Arch, key: str, seq: int, half: str = "bf16", scale: float = 1.0) -> Recipe:
    """The estimated peak of one recipe. ``scale`` corrects the weights when the checkpoint
    holds more (or fewer) parameters than the config's shape says (vision towers,
    unusual layers)."""
    if key.startswith("infer"):
        quant = {"infer-int8": "int8", "infer-nf4": "nf4"}.get(key, "16bit")
        elt = 4 if key == "infer-fp32" else 2
        est = estimate.generate(arch, quant, seq, NEW_TOKENS, elt=elt)
        weights = est.parts["weights"]
        if key == "infer-fp32":  # estimate.weights keeps linear layers in 2 bytes; fp32 holds 4
            weights += estimate.linear_bytes(arch, "16bit")
        label = {"infer-16bit": f"inference in {half}", "infer-fp32": "inference in fp32",
                 "infer-int8": "inference in int8 (bitsandbytes)", "infer-nf4": "inference in nf4 (bitsandbytes)"}[key]
    else:
        quant = "nf4" if key == "qlora" else "16bit"
        est = estimate.train(arch, quant, 1, seq, LORA_RANK)
        weights = est.parts["weights"]
        label = f"QLoRA (nf4 base, rank {LORA_RANK})" if key == "qlora" else f"LoRA on a {half} base (rank {LORA_RANK})"
    total = est.bytes - est.parts["weights"] + int(weights * scale)
    return Recipe(key, seq, label, total, int(weights * scale), None if quant == "16bit" else quant)


def alternatives(task: str, key: str, seq: int) -> list[tuple[str, int]]:
    """What to try, in order, when the asked recipe does not fit."""
    if task == "infer":
        order = ["infer-16bit", "infer-int8", "infer-nf4"]
        return [(k, seq) for k in order if order.index(k) > order.index(key)] if key in order else \
            [(k, seq) for k in order]
    out = [("qlora", seq)] if key == "lora" else []
    s = seq // 2
    while s >= 256:
        out.append(("qlora", s))
        s //= 2
    return out
