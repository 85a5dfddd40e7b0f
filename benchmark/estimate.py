"""The one GPU memory model of llmdoctor: the peak a bench workload (a LoRA / QLoRA fine-tune,
or quantized generation) reaches, predicted from the architecture alone. ``llmdoctor bench``
predicts every workload with it before running anything, ``bench --estimate-only`` prints it,
and the ``gpu.memory`` check says with it what fits the GPU it finds, so check and bench
never disagree. Torch-free.

What is predicted is the process's footprint as nvidia-smi counts it, the quantity the bench
judges a fit on: torch's reserved peak plus the memory outside torch's allocator (CUDA
context, library handles). Parts of torch's allocated peak:

* weights: nf4 is half a byte per linear weight plus one fp32 absmax per 64 (bitsandbytes'
  blocksize), int8 one byte plus a scale per row, 16-bit two bytes. QLoRA casts every
  parameter that is not 4-bit to fp32 (peft's prepare_model_for_kbit_training), so its
  embeddings, norms and lm_head are fp32, and so is the residual stream they feed.
* LoRA adapters: 16 bytes a parameter (fp32 weight, gradient, AdamW's two moments).
* activations with gradient checkpointing: each layer's input is kept (fp32 in QLoRA), and one
  layer's activations are live while it is recomputed.
* the loss: at the start of backward the fp32 log-softmax of the logits, its gradient and the
  gradient of its input are live together, 12 bytes per token and vocabulary entry.
* generation: the KV cache, one layer's prefill activations, the last position's fp32 logits.
* quantized layers: a 16-bit copy of a projection is live while it is quantized at load and
  while it is dequantized for a matmul over many tokens (``transient``, in units of the
  largest projection).
* cuBLAS's workspace, which torch allocates through its caching allocator.

Then ``reserved = allocated x (1 + slack)`` and ``footprint = reserved + overhead``. The
constants (data/memory_model.json) are derived from the runs named there as calibration runs
by ``calibrate``; the runs named as validation runs test them (tests/test_bench_estimate.py):
the footprint is never under-predicted by more than 5% there. The overhead was measured on an
H200; GPUs with fewer SMs have smaller CUDA contexts, so elsewhere it errs on the safe side."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmdoctor.data import table

from llmdoctor.benchmark.presets import PACKAGE, Arch

BLOCK = 64  #: bitsandbytes 4-bit blocksize
QUANT_OF = {"train-qlora": "nf4", "train-lora16": "16bit", "generate-nf4": "nf4", "generate-int8": "int8",
            "generate-16bit": "16bit"}
WORKLOADS = tuple(QUANT_OF)
LOGIT_BYTES = 12  #: log-softmax output, its gradient, the gradient of its input (fp32 each)
MiB = 2**20


def model() -> dict:
    """The calibrated constants (data/memory_model.json)."""
    return table(PACKAGE, "memory_model")


@dataclass(frozen=True)
class Estimate:
    workload: str
    bytes: int  #: predicted footprint: what nvidia-smi counts for the process (context included)
    parts: dict[str, int]  #: torch-allocated parts, bytes
    allocated: int = 0  #: torch.cuda.max_memory_allocated, predicted
    reserved: int = 0  #: torch.cuda.max_memory_reserved, predicted
    overhead: int = 0  #: outside torch's allocator (CUDA context, library handles)
    settings: dict = field(default_factory=dict)


def linear_bytes(arch: Arch, quant: str, elt: int = 2) -> int:
    """The decoder's linear projections as bitsandbytes stores them (or in ``elt`` bytes)."""
    lin = arch.linear_params()
    rows_ = arch.layers * (arch.q_dim + 2 * arch.kv_dim + arch.hidden + 2 * arch.inter + arch.hidden)
    return {"nf4": lin // 2 + lin // BLOCK * 4, "int8": lin + rows_ * 4, "16bit": lin * elt}[quant]


def weights(arch: Arch, quant: str, other_bytes: int) -> int:
    return linear_bytes(arch, quant) + arch.other_params() * other_bytes


def layer_activations(arch: Arch, tokens: int, elt: int = 2) -> int:
    """One decoder layer's live activations in training (SDPA: no seq^2 attention matrix kept)."""
    h, i = arch.hidden, arch.inter
    return tokens * elt * (4 * h + 2 * arch.q_dim + 2 * arch.kv_dim + 4 * i)


def _finish(workload: str, parts: dict[str, int], settings: dict) -> Estimate:
    m = model()
    allocated = sum(parts.values())
    reserved = math.ceil(allocated * (1 + m["reserved_slack"][workload]))
    overhead = m["overhead_bytes"][workload]
    return Estimate(workload, reserved + overhead, parts, allocated, reserved, overhead, settings)


def train(arch: Arch, quant: str, batch: int, seq: int, rank: int, elt: int = 2,
          targets=("q_proj", "k_proj", "v_proj", "o_proj")) -> Estimate:
    """A LoRA fine-tune step on ``quant`` ("nf4": QLoRA, "16bit") with gradient checkpointing."""
    m = model()
    tokens = batch * seq
    qlora = quant == "nf4"
    act = 4 if qlora else elt  # QLoRA's fp32 norms and embeddings make the residual stream fp32
    workload = "train-qlora" if qlora else "train-lora16"
    parts = {
        "weights": weights(arch, quant, 4 if qlora else elt),
        "lora+adam": arch.lora_params(rank, targets) * 16,
        "checkpoints": arch.layers * tokens * arch.hidden * act,
        "recompute": layer_activations(arch, tokens, elt) + tokens * arch.hidden * act,
        "logits": tokens * arch.vocab * LOGIT_BYTES,
        "transient": int(m["transient"][quant] * arch.largest_linear() * elt),
        "workspace": m["workspace_bytes"],
    }
    return _finish(workload, parts, {"batch": batch, "seq": seq, "rank": rank})


def generate(arch: Arch, quant: str, prompt: int, new: int, batch: int = 1, elt: int = 2) -> Estimate:
    m = model()
    ctx = prompt + new
    parts = {
        "weights": weights(arch, quant, elt),
        "kv-cache": 2 * arch.layers * ctx * arch.kv_dim * elt * batch,
        "prefill": batch * prompt * (2 * arch.hidden + arch.q_dim + arch.kv_dim + 2 * arch.inter) * elt
        + batch * arch.vocab * 4,
        "transient": int(m["transient"][quant] * arch.largest_linear() * elt),
        "workspace": m["workspace_bytes"],
    }
    return _finish(f"generate-{quant}", parts, {"batch": batch, "prompt": prompt, "new": new})


def predict(arch: Arch, workload: str, *, batch: int = 1, seq: int = 1024, rank: int = 16, prompt: int = 512,
            new: int = 128) -> Estimate:
    """Any bench workload by name, with the bench's settings."""
    quant = QUANT_OF[workload]
    if workload.startswith("train"):
        return train(arch, quant, batch, seq, rank)
    return generate(arch, quant, prompt, new, batch)


@dataclass(frozen=True)
class Fit:
    workload: str
    estimate: Estimate
    memory: int  #: the GPU's (or class's) total memory as nvidia-smi shows it
    fits: bool
    alternative: str | None = None  #: a change that would fit, where this does not (data, not wording)
    alternative_bytes: int | None = None


def alternative(arch: Arch, workload: str, memory: int, *, batch: int = 1, seq: int = 1024, rank: int = 16,
                prompt: int = 512, new: int = 128) -> tuple[str | None, int | None]:
    """The nearest option that is predicted to fit ``memory``: ("train-qlora", bytes),
    ("--seq 512", bytes), ("--batch 2", ...), ("generate-nf4", bytes); (None, None) if none."""
    kw = dict(batch=batch, seq=seq, rank=rank, prompt=prompt, new=new)
    if workload == "train-lora16":
        e = predict(arch, "train-qlora", **kw)
        if e.bytes <= memory:
            return "train-qlora", e.bytes
    if workload.startswith("train"):
        if batch > 1:  # the footprint grows with the batch: bisect for the largest that fits
            lo, hi = 0, batch  # batch lo fits (0: none yet), batch hi does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if predict(arch, workload, **{**kw, "batch": mid}).bytes <= memory:
                    lo = mid
                else:
                    hi = mid
            if lo:
                return f"--batch {lo}", predict(arch, workload, **{**kw, "batch": lo}).bytes
        s = seq // 2
        while s >= 128:
            e = predict(arch, workload, **{**kw, "batch": 1, "seq": s})
            if e.bytes <= memory:
                return f"--batch 1 --seq {s}" if batch > 1 else f"--seq {s}", e.bytes
            s //= 2
        if workload != "train-qlora":
            e = predict(arch, "train-qlora", **{**kw, "batch": 1, "seq": 128})
            if e.bytes <= memory:
                return "train-qlora --seq 128", e.bytes
        return None, None
    order = ("generate-int8", "generate-nf4") if workload == "generate-16bit" else ("generate-nf4",)
    for other in order:
        if other != workload:
            e = predict(arch, other, **kw)
            if e.bytes <= memory:
                return other, e.bytes
    return None, None


def fits(arch: Arch, memory: int, workloads=WORKLOADS, **settings) -> list[Fit]:
    """Each workload's predicted footprint against ``memory`` (bytes, as nvidia-smi shows the
    GPU's total), with the nearest option that fits where it does not."""
    out = []
    for wl in workloads:
        e = predict(arch, wl, **settings)
        ok = e.bytes <= memory
        alt, alt_bytes = (None, None) if ok else alternative(arch, wl, memory, **settings)
        out.append(Fit(wl, e, memory, ok, alt, alt_bytes))
    return out


def largest_batch(arch: Arch, workload: str, memory: int, *, limit: int = 64, margin: float = 0.9, **settings) -> int:
    """The largest training batch (1..limit) predicted to fill at most ``margin`` of ``memory``;
    0 when not even batch 1 fits."""
    best = 0
    for b in range(1, limit + 1):
        if predict(arch, workload, **{**settings, "batch": b}).bytes > margin * memory:
            break
        best = b
    return best


# --- calibration: how data/memory_model.json's constants follow from recorded runs ------------

def measured_footprint(measured: dict, workload: str) -> int | None:
    """The bench's measure of a run's memory: max(reserved + overhead, NVML process peak)."""
    reserved, nvml = measured.get("peak_reserved"), measured.get("peak_nvml")
    if reserved is None and nvml is None:
        return None
    return max((reserved or 0) + model()["overhead_bytes"][workload], nvml or 0)


def calibrate(runs: list[dict]) -> dict:
    """The constants, from recorded GPU runs (the bench's JSON): per workload, the largest
    ``reserved / allocated - 1`` and ``NVML - reserved`` seen, and the load transient that
    covers a quantized generation's allocated peak beyond the other parts, rounded up (slack to 1%, overhead to
    1 MiB, the transient to 0.1 of the largest projection)."""
    from llmdoctor.benchmark.presets import preset

    slack: dict[str, float] = {}
    overhead: dict[str, int] = {}
    transient: dict[str, float] = {"16bit": 0.0}
    for run in runs:
        arch = preset(run["model"]["name"]) or preset(run["model"]["arch"])
        s = run["settings"]
        for p in run["profiles"].values():
            for e in p["workloads"]:
                m = e.get("measured") or {}
                if not m.get("ok") or not m.get("peak_allocated") or not m.get("peak_reserved"):
                    continue
                wl = e["workload"]
                slack[wl] = max(slack.get(wl, 0.0), m["peak_reserved"] / m["peak_allocated"] - 1)
                if m.get("peak_nvml"):
                    overhead[wl] = max(overhead.get(wl, 0), m["peak_nvml"] - m["peak_reserved"])
                quant = QUANT_OF[wl]
                if quant != "16bit" and wl.startswith("generate"):
                    est = predict(arch, wl, batch=1, seq=s["seq"], rank=s["rank"], prompt=s["prompt"], new=s["new"])
                    unexplained = m["peak_allocated"] - (est.allocated - est.parts["transient"])
                    transient[quant] = max(transient.get(quant, 0.0), unexplained / (arch.largest_linear() * 2))
    return {"reserved_slack": {k: math.ceil(v * 100) / 100 for k, v in slack.items()},
            "overhead_bytes": {k: math.ceil(v / MiB) * MiB for k, v in overhead.items()},
            "transient": {k: math.ceil(v * 10) / 10 for k, v in transient.items()}}
