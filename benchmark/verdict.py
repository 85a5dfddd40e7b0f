"""Judging bench results against the GPU classes (data/profiles.json): does each workload fit
the class's memory, and does the GPU reach the class's floor? A pure function of numbers.

* A class's memory is what its smallest member shows in nvidia-smi. A run fits when its
  measured footprint, max(torch's reserved peak + context, NVML's process peak), is at most
  that; a workload the memory model predicts not to fit fails as "predicted", with the
  nearest option that would fit.
* A class's floor is its slowest member's reachable figure: each member's data sheet peak
  (data/gpu_peaks.json) times an achievable fraction derived from a published measurement,
  for the benched model's bytes read per decoded token (generation) or FLOPs per trained
  token (training). Every derived number carries its arithmetic.
* The verdict judges the GPU's capability: compiled decode (static KV cache, torch.compile,
  CUDA graphs) where it ran, the eager figure ("your stack") beside it. Below the floor is a
  FAIL only when nothing but the GPU can have limited the run (compiled whole-graph decode, or
  a decode already at half this GPU's roofline); otherwise the host may have, and the verdict
  is INCONCLUSIVE, never FAIL."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmdoctor.data import row, table

from llmdoctor.benchmark import estimate, roofline
from llmdoctor.benchmark.estimate import QUANT_OF
from llmdoctor.benchmark.presets import PACKAGE, Arch, preset

MiB = 2**20
HOST_BOUND = 0.25  #: eager decode under this share of the bandwidth roofline: per-token host overhead limits it
GPU_BOUND = 0.5  #: a decode at this share of the roofline or more is limited by the GPU, however it was run
TRAIN_HOST_BOUND = 0.5  #: training MFU under this share of the floor's MFU: the GPU idles (host, or the batch)


def profile(name: str) -> dict:
    return row(PACKAGE, "profiles", "name", name)


def profiles() -> dict:
    return table(PACKAGE, "profiles")


def class_memory(prof: dict) -> tuple[int, str]:
    """(bytes, derivation): what the class's smallest member shows in nvidia-smi."""
    known = [m for m in prof["members"] if m.get("nvidia_smi_mib")]
    smallest = min(known, key=lambda m: m["nvidia_smi_mib"])
    return smallest["nvidia_smi_mib"] * MiB, (f"the smallest member, {smallest['gpu']}, shows "
                                              f"{smallest['nvidia_smi_mib']} MiB in nvidia-smi "
                                              f"({smallest['nvidia_smi_source']})")


def torch_cap_bytes(prof: dict, workload: str) -> int:
    """What torch may reserve under the class's memory: the class's memory less the memory
    outside torch's allocator (data/memory_model.json overhead_bytes)."""
    return class_memory(prof)[0] - estimate.model()["overhead_bytes"][workload]


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def measured_fraction(m: dict) -> tuple[float, str]:
    """A published decode measurement's share of its GPU's bandwidth roofline, with the arithmetic."""
    arch = preset(m["model"])
    peak = roofline.peak_named(m["gpu"])
    per_token = roofline.bytes_per_decoded_token(arch, m["quant"], m["prompt"] + m["new"] // 2)
    frac = m["tokens_per_s"] * per_token / peak.bandwidth
    return frac, (f"{m['tokens_per_s']:g} tok/s x {_gb(per_token)} read per token ({arch.raw.get('label', arch.name)} "
                  f"{m['quant']}) / {peak.bandwidth / 1e9:g} GB/s ({peak.name}) = {frac:.1%}")


def achievable(quant: str, gpu: str) -> dict:
    """The achievable fraction of ``gpu``'s bandwidth roofline for ``quant`` (profiles.json's
    decode_rule): its own published measurement, else the lowest published one."""
    ms = [m for m in profiles()["decode_measurements"] if m["quant"] == quant]
    own = [m for m in ms if m["gpu"] == gpu]
    chosen = own[0] if own else min(ms, key=lambda m: measured_fraction(m)[0])
    frac, arith = measured_fraction(chosen)
    how = "its own published measurement" if own else "the lowest published fraction (no measurement on this card)"
    return {"fraction": frac, "derived": f"{how}: {arith}", "what": chosen["what"], "source": chosen["source"]}


def decode_floor(prof: dict, arch: Arch, quant: str, prompt: int, new: int) -> dict:
    """The class's decode floor for ``arch`` in ``quant``: min over members of bandwidth x
    achievable fraction / bytes read per decoded token (mean context of the decode)."""
    per_token = roofline.bytes_per_decoded_token(arch, quant, prompt + new // 2)
    members = []
    for mem in prof["members"]:
        peak = roofline.peak_named(mem["gpu"])
        ach = achievable(quant, mem["gpu"])
        tps = peak.bandwidth * ach["fraction"] / per_token
        members.append({"gpu": mem["gpu"], "tokens_per_s": round(tps, 2), "derived": (
            f"{peak.bandwidth / 1e9:g} GB/s ({peak.source}) x {ach['fraction']:.1%} / {_gb(per_token)} per token "
            f"= {tps:.1f} tok/s; the fraction is {ach['derived']} ({ach['source']})")})
    slowest = min(members, key=lambda m: m["tokens_per_s"])
    return {"tokens_per_s": slowest["tokens_per_s"], "member": slowest["gpu"], "derived": slowest["derived"],
            "members": members}


def training_mfu() -> dict:
    """The published training measurement's model FLOPs utilisation, with the arithmetic."""
    m = profiles()["training_measurements"][0]
    arch = preset(m["model"])
    peak = roofline.peak_named(m["gpu"])
    flops = roofline.train_flops_per_token(arch, m["seq"], arch.lora_params(m["rank"], tuple(m["targets"])))
    frac = m["tokens_per_s"] * flops / peak.flops
    return {"fraction": frac, "derived": (f"{m['tokens_per_s']:g} tok/s x {flops / 1e9:.2f} GFLOP per token "
                                          f"({arch.raw.get('label', arch.name)}, LoRA rank {m['rank']}, seq {m['seq']}) "
                                          f"/ {peak.flops / 1e12:g} TFLOPS ({peak.name}) = {frac:.1%} MFU"),
            "what": m["what"], "source": m["source"]}


def training_floor(prof: dict, arch: Arch, seq: int, rank: int, trainable: int | None = None) -> dict | None:
    mfu = training_mfu()
    flops = roofline.train_flops_per_token(arch, seq, trainable or arch.lora_params(rank))
    members = []
    for mem in prof["members"]:
        peak = roofline.peak_named(mem["gpu"])
        if not peak.flops:
            continue
        tps = peak.flops * mfu["fraction"] / flops
        members.append({"gpu": mem["gpu"], "tokens_per_s": round(tps, 1), "derived": (
            f"{peak.flops / 1e12:g} TFLOPS ({peak.source}) x {mfu['fraction']:.1%} MFU / {flops / 1e9:.2f} GFLOP per "
            f"token = {tps:.0f} tok/s; the MFU is {mfu['derived']} ({mfu['source']})")})
    if not members:
        return None
    slowest = min(members, key=lambda m: m["tokens_per_s"])
    return {"tokens_per_s": slowest["tokens_per_s"], "member": slowest["gpu"], "derived": slowest["derived"],
            "mfu": mfu["fraction"], "members": members}


@dataclass(frozen=True)
class Judgement:
    workload: str
    profile: str
    verdict: str | None  #: "pass" | "fail" | "inconclusive"; None where nothing is judged (no GPU)
    fits: bool | None
    footprint: int | None  #: measured: max(reserved + context, NVML peak); or predicted, when not run
    memory: int  #: the class's memory (its smallest member in nvidia-smi)
    fast: bool | None  #: None: no floor, or inconclusive
    floor_tps: float | None
    measured_tps: float | None  #: the figure judged: compiled decode where it ran, else eager
    judged_on: str | None  #: "compiled" | "eager" | "training" | "predicted"
    floor: dict | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.verdict is None else self.verdict == "pass"


def judge_fit(workload: str, prof: dict, measured: dict | None) -> tuple[bool | None, int | None]:
    if not measured:
        return None, None
    fp = estimate.measured_footprint(measured, workload)
    return (None, None) if fp is None else (fp <= class_memory(prof)[0], fp)


def judge(entry: dict, prof: dict, arch: Arch, settings: dict, peak: roofline.Peak | None, on_gpu: bool) -> Judgement:
    """One workload of one class. ``entry`` holds "measured" (eager / training), optionally
    "compiled" (the capability decode), "predicted_not_to_fit" and "efficiency"."""
    wl = entry["workload"]
    memory = class_memory(prof)[0]
    quant = QUANT_OF[wl]
    if wl.startswith("train"):
        m = entry.get("measured") or {}
        fl = training_floor(prof, arch, settings["seq"], settings["rank"], (m.get("extra") or {}).get("trainable_params"))
    else:
        fl = decode_floor(prof, arch, quant, settings["prompt"], settings["new"])
    floor_tps = fl["tokens_per_s"] if fl else None
    if not on_gpu:
        return Judgement(wl, prof["name"], None, None, None, memory, None, None, None, None, None,
                         "no GPU: nothing is judged against the class")
    if entry.get("predicted"):
        p = entry["predicted"]
        return Judgement(wl, prof["name"], "fail", False, p["bytes"], memory, None, floor_tps, None, "predicted", fl,
                         f"predicted {p['bytes'] / 2**30:.2f} GiB > the class's {memory / 2**30:.2f} GiB; "
                         + (f"{p['alternative']} would fit ({p['alternative_bytes'] / 2**30:.2f} GiB)"
                            if p.get("alternative") else "nothing smaller in the bench fits"))
    m = entry.get("measured") or {}
    comp = entry.get("compiled") or {}
    if "measured" not in entry and "compiled" not in entry:  # never run, yet not predicted not to fit
        est = (entry.get("estimate") or {}).get("bytes")
        return Judgement(wl, prof["name"], "inconclusive", None, None, memory, None, floor_tps, None, None, fl,
                         f"not measured (the record says: {entry.get('not_run') or 'not run'})" + (
                             f"; this memory model predicts it fits ({est / 2**30:.2f} GiB): run it again"
                             if est else ""))
    if not m.get("ok") and not comp.get("ok"):
        return Judgement(wl, prof["name"], "fail", False, None, memory, None, floor_tps, None, None, fl,
                         f"failed under the class's memory: {m.get('error') or comp.get('error')}")
    # the fit of "your stack" (eager, or the training run); the compiled run's where only it ran
    fits, footprint = judge_fit(wl, prof, m if m.get("ok") and (m.get("peak_reserved") or m.get("peak_nvml"))
                                else comp)
    notes = []
    if fits is False:
        notes.append(f"{footprint / 2**30:.2f} GiB measured > the class's {memory / 2**30:.2f} GiB")
    fast, judged_on, tps, slow_verdict = None, None, None, None
    if wl.startswith("train"):
        tps, judged_on = m.get("tokens_per_s"), "training"
        if fl and tps:
            fast = tps >= floor_tps
            if not fast:
                got = ((entry.get("efficiency") or {}).get("mfu") or {}).get("fraction")
                idle = got is not None and got < TRAIN_HOST_BOUND * fl["mfu"]
                slow_verdict = "inconclusive" if idle else "fail"
                notes.append(f"{tps:.0f} < {floor_tps:.0f} tok/s" + (
                    f" at {got:.1%} MFU: this GPU idles (the host or a small batch limits it); raise --batch"
                    if idle else ""))
    else:
        eff = entry.get("efficiency") or {}
        if comp.get("ok") and comp.get("tokens_per_s"):
            tps, judged_on = comp["tokens_per_s"], "compiled"
            frac = (eff.get("decode_compiled") or {}).get("fraction")
            trusted = bool(comp.get("fullgraph")) and not comp.get("cudagraph_skips")
        else:
            tps, judged_on = m.get("tokens_per_s"), "eager"
            frac = (eff.get("decode") or {}).get("fraction")
            trusted = False
        if tps:
            fast = tps >= floor_tps
            if not fast:
                gpu_bound = trusted or (frac is not None and frac >= GPU_BOUND)
                slow_verdict = "fail" if gpu_bound else "inconclusive"
                if gpu_bound:
                    notes.append(f"{judged_on} decode {tps:.1f} < {floor_tps:.1f} tok/s: the GPU limits it")
                else:
                    cause = ("the compiled decode had graph breaks or ran without CUDA graphs" if judged_on == "compiled"
                             else f"no compiled decode ({comp.get('error') or comp.get('skipped') or 'not run'})")
                    at = f" at {frac:.1%} of this GPU's roofline" if frac is not None else ""
                    notes.append(f"{judged_on} decode {tps:.1f} < {floor_tps:.1f} tok/s{at}: {cause}, so the host "
                                 "may limit it, not the GPU")
    learning = entry.get("learning")
    if learning and learning.get("learned") is False:
        notes.append("the fine-tune did not learn" + (" (it diverged: the loss is not finite)"
                                                       if learning.get("diverged") else ""))
    if fits is False or (learning and learning.get("learned") is False) or slow_verdict == "fail":
        verdict = "fail"
    elif slow_verdict == "inconclusive":
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return Judgement(wl, prof["name"], verdict, fits, footprint, memory, None if slow_verdict == "inconclusive"
                     else fast, floor_tps, tps, judged_on, fl, "; ".join(notes))


def class_verdict(judgements: list[dict]) -> str | None:
    """The worst over a class's workloads: fail > inconclusive > pass; None where nothing was judged."""
    got = [j["verdict"] for j in judgements if j and j.get("verdict")]
    if not got:
        return None
    return "fail" if "fail" in got else "inconclusive" if "inconclusive" in got else "pass"


def as_dict(j: Judgement) -> dict:
    return asdict(j)
