"""`llmdoctor bench`: estimate, run and judge the workloads for each GPU class profile, and
render the result as a table, JSON, or a plot."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import asdict, dataclass, field, fields

from llmdoctor import paths

from . import estimate, presets, roofline, verdict, weights, workloads
from .presets import Arch

WORKLOADS = ("train-qlora", "train-lora16", "generate-nf4", "generate-int8", "generate-16bit")
INT8_CAVEAT = ("bitsandbytes int8 with its default outlier threshold (6.0) is faster on random weights than on "
               "trained ones: random weights have no outlier features, so the fp16 decomposition path rarely runs.")


@dataclass
class Settings:
    model: str = "yi-6b"
    profiles: tuple[str, ...] = ("t4", "24gb")
    workloads: tuple[str, ...] = WORKLOADS
    batch: int = 1
    seq: int = 1024
    steps: int = 10
    warmup: int = 3
    rank: int = 16
    lr: float = 2e-4
    prompt: int = 512
    new: int = 128
    reps: int = 3
    device: str = "auto"
    download: bool = False
    cache_dir: str = field(default_factory=lambda: paths.cache_dir(os.environ))


def pick_device(wanted: str) -> tuple[str, str, dict]:
    """(device, dtype, description): bf16 where the GPU has it (compute capability >= 8.0), fp16
    on older GPUs (a T4), float32 on the CPU."""
    import torch

    if wanted == "cpu" or (wanted == "auto" and not torch.cuda.is_available()):
        return "cpu", "float32", {"kind": "cpu", "name": "CPU", "total_memory": None}
    if not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA GPU (llmdoctor check says why)")
    props = torch.cuda.get_device_properties(0)
    dtype = "bfloat16" if props.major >= 8 else "float16"
    return "cuda:0", dtype, {"kind": "cuda", "name": props.name, "total_memory": int(props.total_memory),
                             "capability": f"{props.major}.{props.minor}"}


def _estimate(arch: Arch, name: str, s: Settings) -> estimate.Estimate:
    quant = verdict.QUANT_OF[name]
    if name.startswith("train"):
        return estimate.train(arch, quant, s.batch, s.seq, s.rank)
    return estimate.generate(arch, quant, s.prompt, s.new)


def _alternative(name: str, s: Settings) -> str:
    if name == "train-lora16":
        return "train-qlora (4-bit base) fits where 16-bit LoRA does not"
    if name.startswith("train"):
        return f"--seq {max(128, s.seq // 2)} or --batch 1 lowers the activations"
    return "generate-nf4 needs the least memory"


def _measure(wl: str, path: str, s: Settings, device: str, dtype: str, vocab: int, tick) -> workloads.Measured:
    quant = verdict.QUANT_OF[wl]
    try:
        if wl.startswith("train"):
            return workloads.train(path, quant, device, dtype, s.batch, s.seq, s.steps, s.warmup, s.rank, s.lr,
                                   vocab, tick)
        return workloads.generate(path, quant, device, dtype, s.prompt, s.new, s.reps, s.warmup, vocab, tick)
    except Exception as exc:  # an out-of-memory under the cap is a result, not a crash
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        return workloads.Measured(wl, ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")


def _reusable(measured: dict, wl: str, cap: float | None) -> tuple[workloads.Measured | None, float | None]:
    """A successful run of ``wl`` under this cap or a smaller one (None: uncapped, the largest),
    and the cap it ran under. A failed run is never reused: a larger cap may let it fit."""
    if (wl, cap) in measured:
        return measured[(wl, cap)], cap
    for (name, under), m in measured.items():
        if name == wl and m.ok and under is not None and (cap is None or under <= cap):
            return m, under
    return None, None


def summary(profile_name: str, estimate_bytes: int, m: workloads.Measured) -> str:
    """One line per measured workload, printed as the bench goes (progress on long work)."""
    if not m.ok:
        return f"{profile_name}: {m.workload} failed: {m.error}"
    tps = f"{m.tokens_per_s:,.1f} tok/s" if m.tokens_per_s else "no throughput"
    peak = f", peak {_gib(m.peak_allocated)} (estimate {_gib(estimate_bytes)})" if m.peak_allocated else ""
    return f"{profile_name}: {m.workload} {tps}{peak}"


def run(s: Settings, say=print, progress=None) -> dict:
    """Everything measured and judged, as one JSON-able dict."""
    import torch

    import time

    device, dtype, dev = pick_device(s.device)
    started = time.perf_counter()
    w = weights.resolve(s.model, s.download, s.cache_dir, device, dtype, say)
    weights_s = time.perf_counter() - started
    arch = w.arch
    on_gpu = device.startswith("cuda")
    peak = roofline.peak_of(dev["name"]) if on_gpu else None
    result = {
        "schema_version": 1,
        "model": {"name": s.model, "arch": arch.name, "params": arch.params(), "weights": w.origin, "path": w.path,
                  "random_weights": w.random, "caveat": INT8_CAVEAT if w.random else None},
        "device": {**dev, "dtype": dtype, "torch": torch.__version__, "peak": asdict(peak) if peak else None},
        "settings": {k: v for k, v in asdict(s).items() if k != "cache_dir"},
        "profiles": {},
        "setup": {"weights_s": round(weights_s, 3), "first_train_load_s": None, "before_first_step_s": None},
    }
    measured: dict[tuple[str, float | None], workloads.Measured] = {}  # a run serves every profile with its cap
    # smallest class first: a workload that ran under a smaller cap is proven to fit a larger one
    for name in sorted(s.profiles, key=lambda n: verdict.profile(n)["usable_bytes"]):
        prof = verdict.profile(name)
        cap = None
        if on_gpu and dev["total_memory"] > prof["usable_bytes"]:
            cap = prof["usable_bytes"] / dev["total_memory"]
            torch.cuda.set_per_process_memory_fraction(cap, 0)  # prove the fit under the class's memory
        rows = []
        for wl in s.workloads:
            est = _estimate(arch, wl, s)
            entry = {"workload": wl, "estimate_bytes": est.bytes, "estimate_parts": est.parts}
            if on_gpu and est.bytes + verdict.context_bytes() > prof["usable_bytes"]:
                entry["skipped"] = (f"predicted {est.bytes / 2**30:.1f} GiB + context > {prof['title']}'s "
                                    f"{prof['usable_bytes'] / 2**30:.1f} GiB; {_alternative(wl, s)}")
                rows.append(entry)
                continue
            m, under = _reusable(measured, wl, cap)
            if m is not None and under != cap:
                entry["measured_under_cap"] = under
            if m is None:
                tick = progress(f"{name}: {wl}", s.warmup + (s.steps if wl.startswith("train") else s.reps)) \
                    if progress else (lambda: None)
                m = measured[(wl, cap)] = _measure(wl, w.path, s, device, dtype, arch.vocab, tick)
                if m.extra.get("setup_s") is not None and result["setup"]["first_train_load_s"] is None:
                    result["setup"]["first_train_load_s"] = m.extra["setup_s"]
                    result["setup"]["before_first_step_s"] = round(weights_s + m.extra["setup_s"], 3)
                say(summary(name, est.bytes, m))
            entry["measured"] = asdict(m)
            _judge_entry(entry, est, prof, arch, s, peak, on_gpu)
            rows.append(entry)
        if cap is not None:
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        result["profiles"][name] = {"title": prof["title"], "capped_fraction": cap, "workloads": rows,
                                    "passed": _passed(rows)}
    return result


def _judge_entry(entry: dict, est: estimate.Estimate, prof: dict, arch: Arch, s: Settings, peak, on_gpu: bool) -> None:
    """Efficiency, falling loss, estimate error and the class judgement of one measured workload."""
    wl, m = entry["workload"], entry["measured"]
    eff = roofline.efficiency(wl, m, arch, s.seq, s.prompt, s.new, s.rank, peak)
    if eff:
        entry["efficiency"] = eff
    if m["losses"]:
        k = max(1, min(3, len(m["losses"]) // 3))
        entry["loss_fell"] = sum(m["losses"][-k:]) / k < sum(m["losses"][:k]) / k
    if m["peak_allocated"]:
        entry["estimate_error"] = round(est.bytes / m["peak_allocated"] - 1, 3)
    frac = ((eff or {}).get("decode") or {}).get("fraction")
    j = verdict.judge(wl, prof, arch, m["peak_allocated"] if m["ok"] else None, m["tokens_per_s"], on_gpu, frac)
    if on_gpu and not m["ok"]:
        j = verdict.Judgement(wl, prof["name"], False, None, None, prof["usable_bytes"], j.reference_tps, None,
                              j.reference, f"failed under the cap: {m['error']}")
    entry["judgement"] = asdict(j)


def _passed(rows: list[dict]) -> bool | None:
    judged = [r["judgement"] for r in rows if "judgement" in r and r["judgement"]["fits"] is not None]
    if not judged:
        return None
    return all(j["fits"] and j["fast"] is not False for j in judged) and all(r.get("loss_fell", True) for r in rows)


def rejudge(result: dict) -> dict:
    """A recorded result (``--json``) judged again by this version's estimator, references and
    roofline, from its measurements alone: how the committed GPU runs are kept current. A
    workload the run skipped stays skipped (there is nothing to judge)."""
    out = json.loads(json.dumps(result))
    arch = presets.preset(result["model"]["name"]) or presets.preset(result["model"]["arch"])
    if arch is None:
        raise ValueError(f"{result['model']['name']!r} is not a preset; only preset results can be re-judged")
    known = {f.name for f in fields(Settings)}
    s = Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in result["settings"].items() if k in known})
    on_gpu = result["device"]["kind"] == "cuda"
    peak = roofline.peak_of(result["device"]["name"]) if on_gpu else None
    out["device"]["peak"] = asdict(peak) if peak else None
    for name, p in out["profiles"].items():
        prof = verdict.profile(name)
        for entry in p["workloads"]:
            est = _estimate(arch, entry["workload"], s)
            entry["estimate_bytes"], entry["estimate_parts"] = est.bytes, est.parts
            if "measured" in entry:
                _judge_entry(entry, est, prof, arch, s, peak, on_gpu)
        p["passed"] = _passed(p["workloads"])
    return out


def exit_code(result: dict) -> int:
    verdicts = [p["passed"] for p in result["profiles"].values()]
    return 1 if any(v is False for v in verdicts) else 0


def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def text(result: dict, width: int = 100) -> str:
    from llmdoctor.cacheview import _fit

    m, d = result["model"], result["device"]
    size = f"{m['params'] / 1e9:.2f} B" if m["params"] >= 1e8 else f"{m['params'] / 1e6:.1f} M"
    out = [_fit(f"{m['name']} ({size} parameters, weights: {m['weights']}) on {d['name']} "
                f"({d['dtype']}, torch {d['torch']})", width)]
    if m.get("caveat"):
        out += textwrap.wrap(f"note: {m['caveat']}", width=max(40, width), initial_indent="  ", subsequent_indent="  ")
    st = result.get("setup") or {}
    if st.get("before_first_step_s") is not None:
        out.append(f"  set-up before the first training step: {st['before_first_step_s']:.1f} s (weights "
                   f"{st['weights_s']:.1f} s, loading and wrapping in LoRA {st['first_train_load_s']:.1f} s)")
    for name, p in result["profiles"].items():
        verdict_word = {True: "PASS", False: "FAIL", None: "not judged (no GPU)"}[p["passed"]]
        cap = f", GPU capped to {p['capped_fraction']:.0%}" if p["capped_fraction"] else ""
        out += ["", f"{p['title']}{cap}: {verdict_word}"]
        out.append(f"  {'WORKLOAD':<15} {'ESTIMATE':>10} {'PEAK':>10} {'TOK/S':>9} {'P10-P90':>13} {'REF':>8} "
                   f"{'%ROOF':>6}  VERDICT")
        notes: dict[str, int] = {}
        for r in p["workloads"]:
            if "skipped" in r:
                line = f"  {r['workload']:<15} {_gib(r['estimate_bytes']):>10} {'':>10} {'':>9} {'':>13} {'':>8} {'':>6}  "
                out.append(line + _fit("skipped: " + r["skipped"], max(12, width - len(line))))
                continue
            ms, j = r["measured"], r["judgement"]
            tps = f"{ms['tokens_per_s']:.1f}" if ms.get("tokens_per_s") else "-"
            spread = "-".join(f"{v:.0f}" if v >= 100 else f"{v:.1f}" for v in ms["spread"]) if ms.get("spread") else ""
            ref = f"{j['reference_tps']:.1f}" if j.get("reference_tps") and j["fits"] is not None else "-"
            if not ms["ok"]:
                word = "error: " + ms["error"]
            elif j["fits"] is None:
                word = j["note"]
            else:
                word = ("fits" if j["fits"] else "does not fit") + ", " + {
                    True: "fast enough", False: "too slow", None: "no reference"}[j["fast"]]
                if j["note"]:
                    word += f" [{notes.setdefault(j['note'], len(notes) + 1)}]"
            if r.get("loss_fell") is False:
                word += "; loss did not fall"
            frac = roofline.headline(r.get("efficiency"))
            line = (f"  {r['workload']:<15} {_gib(r['estimate_bytes']):>10} {_gib(ms.get('peak_allocated')):>10} "
                    f"{tps:>9} {spread:>13} {ref:>8} {'-' if frac is None else f'{frac:.0%}':>6}  ")
            out.append(line + _fit(word, max(12, width - len(line))))
        for note, i in notes.items():
            out += textwrap.wrap(f"[{i}] {note}", width=max(40, width), initial_indent="  ", subsequent_indent="      ")
    if d.get("peak"):
        pk = d["peak"]
        flops = f", {pk['flops'] / 1e12:g} TFLOPS" if pk.get("flops") else ""
        out += [""] + textwrap.wrap(f"%ROOF: training = model FLOPs utilisation, generation = share of the decode "
                                    f"bandwidth roofline ({pk['name']}: {pk['bandwidth'] / 1e9:g} GB/s{flops})",
                                    width=max(40, width))
    return "\n".join(out) + "\n"


def plot(result: dict, path: str) -> None:
    """Throughput and peak memory per workload against each profile's limits (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, (name, p) in enumerate(result["profiles"].items()):
        color = f"C{k}"
        rows = [r for r in p["workloads"] if "measured" in r and r["measured"].get("tokens_per_s")]
        labels = [f"{name}\n{r['workload']}" for r in rows]
        ax_t.bar(labels, [r["measured"]["tokens_per_s"] for r in rows], alpha=0.7, color=color)
        refs = [(lab, r["judgement"]["reference_tps"]) for lab, r in zip(labels, rows) if r["judgement"]["reference_tps"]]
        if refs:
            ax_t.scatter(*zip(*refs), marker="_", s=400, color="k")
        peaks = [(r["measured"].get("peak_allocated") or 0) / 2**30 for r in rows]
        ax_m.bar(labels, peaks, alpha=0.7, color=color)
        ax_m.axhline(verdict.profile(name)["usable_bytes"] / 2**30, linestyle="--", color=color, label=p["title"])
    ax_t.set_yscale("log")  # training runs at thousands of tokens/s, decode at tens
    ax_t.set_ylabel("tokens/s, log scale (bar: measured, tick: class reference)")
    ax_m.set_ylabel("peak GiB (torch allocated)")
    ax_m.legend()
    for ax in (ax_t, ax_m):
        ax.tick_params(axis="x", labelsize=7, rotation=45)
    fig.suptitle(f"{result['model']['name']} on {result['device']['name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
