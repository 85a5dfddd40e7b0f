"""`llmdoctor bench`: predict, run and judge the workloads for each GPU class, and render the
result as a table, JSON, or a plot; ``estimate_only`` predicts without running anything."""

from __future__ import annotations

import json
import math
import os
import textwrap
from dataclasses import asdict, dataclass, field, fields

from llmdoctor import paths

from llmdoctor.benchmark import estimate, presets, roofline, verdict
from llmdoctor.benchmark.estimate import QUANT_OF
from llmdoctor.benchmark.presets import Arch

#: int8 last: the likeliest to break a compiler (bitsandbytes xfails its int8 CUDA graphs on torch >= 2.10)
WORKLOADS = ("train-qlora", "train-lora16", "generate-nf4", "generate-16bit", "generate-int8")
INT8_CAVEAT = ("bitsandbytes int8 with its default outlier threshold (6.0) is faster on random weights than on "
               "trained ones: random weights have no outlier features, so the fp16 decomposition path rarely runs.")
EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 4
SCHEMA = 2
HOST_REMEDY = ("a static KV cache with torch.compile(mode='reduce-overhead'), i.e. CUDA graphs "
               "(generation_config.cache_implementation='static'; model.forward = torch.compile(model.forward, "
               "mode='reduce-overhead', fullgraph=True)), or a faster host CPU")


@dataclass
class Settings:
    model: str = "yi-6b"
    profiles: tuple[str, ...] = ("t4", "24gb")
    workloads: tuple[str, ...] = WORKLOADS
    batch: int | str = 1  #: or "fill": per class, the largest batch the memory model fits in 90% of it
    seq: int = 1024
    steps: int = 10
    warmup: int = 3  #: training warm-up steps
    rank: int = 16
    lr: float = 2e-4
    prompt: int = 256  #: HF LLM-Perf's shape: batch 1, 256 prompt tokens, 64 new
    new: int = 64
    reps: int = 10  #: generation iterations, at least (optimum-benchmark: 10)
    gen_warmup: int = 10  #: generation warm-ups (optimum-benchmark: 10)
    min_seconds: float = 10.0  #: generation iterations last at least this long (optimum-benchmark: 10 s)
    decode: str = "both"  #: "both" | "eager" | "compiled"
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


def _settings_dict(s: Settings) -> dict:
    return {k: v for k, v in asdict(s).items() if k != "cache_dir"}


def _predict(arch: Arch, wl: str, s: dict, batch: int) -> estimate.Estimate:
    return estimate.predict(arch, wl, batch=batch, seq=s["seq"], rank=s["rank"], prompt=s["prompt"], new=s["new"])


def _batch_for(arch: Arch, wl: str, s: Settings, prof: dict, on_gpu: bool = True) -> int:
    """The training batch: --batch N, or with --batch fill the largest the memory model fits in
    90% of the class (1 on the CPU, where no class memory applies)."""
    if not wl.startswith("train") or s.batch != "fill" or not on_gpu:
        return int(s.batch) if s.batch != "fill" else 1
    memory = verdict.class_memory(prof)[0]
    return max(1, estimate.largest_batch(arch, wl, memory, seq=s.seq, rank=s.rank))


def _measure(wl: str, path: str, s: Settings, device: str, dtype: str, vocab: int, batch: int, tick):
    from llmdoctor.benchmark import workloads

    quant = QUANT_OF[wl]
    modes = {"both": ("eager", "compiled"), "eager": ("eager",), "compiled": ("compiled",)}[s.decode]
    try:
        if wl.startswith("train"):
            return workloads.train(path, quant, device, dtype, batch, s.seq, s.steps, s.warmup, s.rank, s.lr,
                                   vocab, tick)
        return workloads.generate(path, quant, device, dtype, s.prompt, s.new, s.reps, s.gen_warmup, vocab, tick,
                                  min_s=s.min_seconds, modes=modes)
    except Exception as exc:  # an out-of-memory under the cap is a result, not a crash
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        return workloads.Measured(wl, ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")


def _reusable(measured: dict, key: tuple, cap: float | None):
    """A successful run of ``key`` (workload, batch) under this cap or a smaller one (None:
    uncapped, the largest), and the cap it ran under. A failed run is never reused."""
    if (key, cap) in measured:
        return measured[(key, cap)], cap
    for (k, under), m in measured.items():
        if k == key and m.ok and under is not None and (cap is None or under <= cap):
            return m, under
    return None, None


def summary(profile_name: str, estimate_bytes: int, m) -> str:
    """One line per measured workload, printed as the bench goes (progress on long work)."""
    if not m.ok and not m.extra.get("compiled", {}).get("ok"):
        return f"{profile_name}: {m.workload} failed: {m.error}"
    parts = [f"{m.workload}"]
    if m.tokens_per_s:
        parts.append(f"{m.tokens_per_s:,.1f} tok/s" + (" eager" if m.workload.startswith("generate") else ""))
    comp = m.extra.get("compiled") or {}
    if comp.get("ok"):
        parts.append(f"{comp['tokens_per_s']:,.1f} tok/s compiled")
    elif comp.get("error"):
        parts.append("no compiled decode")
    if m.learning:
        parts.append("learned" if m.learning["learned"] else "did NOT learn")
    if m.peak_reserved:
        parts.append(f"peak {_gib(m.peak_reserved)} reserved (predicted footprint {_gib(estimate_bytes)})")
    return f"{profile_name}: " + ", ".join(parts)


def run(s: Settings, say=print, progress=None) -> dict:
    """Everything predicted, measured and judged, as one JSON-able dict."""
    import time

    import torch

    from llmdoctor.benchmark import record, weights, workloads

    device, dtype, dev = pick_device(s.device)
    on_gpu = device.startswith("cuda")
    env = record.environment(device)
    started = time.perf_counter()
    w = weights.resolve(s.model, s.download, s.cache_dir, device, dtype, say)
    weights_s = time.perf_counter() - started
    arch = w.arch
    peak = roofline.peak_of(dev["name"]) if on_gpu else None
    result = {
        "schema_version": SCHEMA,
        "model": {"name": s.model, "arch": arch.name, "params": arch.params(), "weights": w.origin, "path": w.path,
                  "random_weights": w.random, "caveat": INT8_CAVEAT if w.random else None},
        "device": {**dev, "dtype": dtype, "torch": torch.__version__, "peak": asdict(peak) if peak else None},
        "environment": env,
        "seeds": dict(workloads.SEEDS),
        "settings": _settings_dict(s),
        "profiles": {},
        "setup": {"weights_s": round(weights_s, 3), "first_train_load_s": None, "before_first_step_s": None},
    }
    measured: dict = {}  # a run serves every class whose cap is at least the one it ran under
    names = sorted(s.profiles, key=lambda n: verdict.class_memory(verdict.profile(n))[0])
    for name in names:  # smallest class first: a run under a smaller cap is proven to fit a larger class
        prof = verdict.profile(name)
        memory = verdict.class_memory(prof)[0]
        rows = []
        for wl in s.workloads:
            batch = _batch_for(arch, wl, s, prof, on_gpu)
            est = _predict(arch, wl, result["settings"], batch)
            entry = {"workload": wl, "batch": batch if wl.startswith("train") else 1, "estimate": _est_dict(est)}
            if on_gpu and est.bytes > memory:
                alt, alt_bytes = estimate.alternative(arch, wl, memory, batch=batch, seq=s.seq, rank=s.rank,
                                                      prompt=s.prompt, new=s.new)
                entry["predicted"] = {"bytes": est.bytes, "alternative": alt, "alternative_bytes": alt_bytes}
                rows.append(entry)
                continue
            cap = None
            if on_gpu:
                usable = verdict.torch_cap_bytes(prof, wl)
                if dev["total_memory"] > usable:
                    cap = usable / dev["total_memory"]
            m, under = _reusable(measured, (wl, batch), cap)
            if m is not None and under != cap:
                entry["measured_under_cap"] = under
            if m is None:
                reps = s.warmup + s.steps if wl.startswith("train") else (s.gen_warmup + s.reps) * len(
                    {"both": (1, 2)}.get(s.decode, (1,)))
                tick = progress(f"{name}: {wl}", reps) if progress else (lambda: None)
                if cap is not None:
                    torch.cuda.set_per_process_memory_fraction(cap, 0)  # prove the fit under the class's memory
                try:
                    m = _measure(wl, w.path, s, device, dtype, arch.vocab, batch, tick)
                    if not m.ok and batch > 1 and s.batch == "fill" and "out of memory" in (m.error or "").lower():
                        entry["fill_retry"] = {"batch": batch, "error": m.error}
                        batch = entry["batch"] = max(1, batch // 2)
                        m = _measure(wl, w.path, s, device, dtype, arch.vocab, batch, tick)
                finally:
                    if cap is not None:
                        torch.cuda.set_per_process_memory_fraction(1.0, 0)
                measured[((wl, batch), cap)] = m
                entry["ran_under_cap"] = cap
                if m.extra.get("setup_s") is not None and result["setup"]["first_train_load_s"] is None:
                    result["setup"]["first_train_load_s"] = m.extra["setup_s"]
                    result["setup"]["before_first_step_s"] = round(weights_s + m.extra["setup_s"], 3)
                say(summary(name, est.bytes, m))
            md = asdict(m)
            comp = md["extra"].pop("compiled", None)
            entry["measured"] = md
            if comp is not None:
                entry["compiled"] = comp
            rows.append(entry)
        result["profiles"][name] = {"title": prof["title"], "memory": memory,
                                    "memory_derived": verdict.class_memory(prof)[1], "workloads": rows}
    if on_gpu:
        result["environment"]["gpu_after"] = record.gpu_state(torch.cuda.current_device())
    return judge(result)


def _est_dict(e: estimate.Estimate) -> dict:
    return {"bytes": e.bytes, "allocated": e.allocated, "reserved": e.reserved, "overhead": e.overhead,
            "parts": e.parts}


def _arch_of(result: dict) -> Arch:
    arch = presets.preset(result["model"]["name"]) or presets.preset(result["model"]["arch"])
    if arch is None and result["model"].get("path"):
        try:
            arch = presets.resolve_config(result["model"]["path"])[0]
        except presets.ConfigError:
            arch = None
    if arch is None:
        raise ValueError(f"{result['model']['name']!r} is not a preset and its config is not readable here")
    return arch


def _settings_of(result: dict) -> dict:
    known = {f.name: f.default for f in fields(Settings) if f.name != "cache_dir"}
    s = {**known, **{k: v for k, v in result["settings"].items() if k in known}}
    return s


def _host_overhead(entry: dict, arch: Arch, s: dict, peak) -> dict | None:
    """Host milliseconds per decoded token in "your stack": the eager decode's per-token time
    beyond the compiled one (or, with no compiled decode, beyond the bandwidth roofline: an
    upper bound), and what would remove it."""
    m, comp = entry.get("measured") or {}, entry.get("compiled") or {}
    if not m.get("ok") or not m.get("tokens_per_s"):
        return None
    eager_ms = 1000 / m["tokens_per_s"]
    if comp.get("ok") and comp.get("tokens_per_s"):
        base, how = 1000 / comp["tokens_per_s"], "eager minus compiled per-token time"
    elif peak is not None:
        per_token = roofline.bytes_per_decoded_token(arch, QUANT_OF[entry["workload"]], s["prompt"] + s["new"] // 2)
        base, how = 1000 * per_token / peak.bandwidth, "eager per-token time minus the bandwidth roofline's (at most)"
    else:
        return None
    return {"ms_per_token": round(max(0.0, eager_ms - base), 3), "eager_ms_per_token": round(eager_ms, 3),
            "baseline_ms_per_token": round(base, 3), "how": how, "remedy": HOST_REMEDY}


UNPROVEN = ("recorded before the held-out proof of learning: its 8 batches were reused in a cycle and its loss fell "
            "only when batches repeated (memorisation), so learning is not proven")


def _judge_entry(entry: dict, prof: dict, arch: Arch, s: dict, peak, on_gpu: bool) -> None:
    wl = entry["workload"]
    batch = entry.get("batch", s["batch"] if isinstance(s["batch"], int) else 1)
    est = _predict(arch, wl, s, batch)
    entry["estimate"] = _est_dict(est)
    m = entry.get("measured")
    if on_gpu and m is None and "compiled" not in entry:  # not run: today's prediction, not the record's
        memory = verdict.class_memory(prof)[0]
        entry.pop("predicted", None)
        if est.bytes > memory:
            alt, alt_bytes = estimate.alternative(arch, wl, memory, batch=batch, seq=s["seq"], rank=s["rank"],
                                                  prompt=s["prompt"], new=s["new"])
            entry["predicted"] = {"bytes": est.bytes, "alternative": alt, "alternative_bytes": alt_bytes}
    if m is not None:
        eff = roofline.efficiency(wl, m, arch, s["seq"], s["prompt"], s["new"], s["rank"], peak) or {}
        comp = entry.get("compiled") or {}
        if peak is not None and comp.get("ok") and comp.get("tokens_per_s"):
            eff["decode_compiled"] = roofline.decode_fraction(comp["tokens_per_s"], arch, QUANT_OF[wl], s["prompt"],
                                                              s["new"], peak)
        if eff:
            entry["efficiency"] = eff
        if wl.startswith("train"):
            entry["learning"] = m.get("learning") or {"learned": None, "why": UNPROVEN}
        else:
            ho = _host_overhead(entry, arch, s, peak)
            if ho:
                entry["host_overhead"] = ho
        comp = entry.get("compiled") or {}
        src = m if m.get("ok") and (m.get("peak_reserved") or m.get("peak_nvml")) else comp if comp.get("ok") else {}
        fp = estimate.measured_footprint(src, wl) if src else None
        if fp:
            entry["footprint"] = fp
            entry["estimate_error"] = round(est.bytes / fp - 1, 4)
    if not on_gpu:
        entry["judgement"] = {"verdict": None, "note": "no GPU: nothing is judged, no class floor applies"}
        return
    j = verdict.as_dict(verdict.judge(entry, prof, arch, {**s, "seq": s["seq"]}, peak, on_gpu))
    if wl.startswith("train") and (entry.get("learning") or {}).get("learned") is None and j["verdict"] == "pass":
        why = (entry.get("learning") or {}).get("why") or "learning not proven"
        j["verdict"], j["note"] = "inconclusive", "; ".join(x for x in (j["note"], why) if x)
    entry["judgement"] = j


def judge(result: dict) -> dict:
    """Judge a result's measurements with this version's memory model, floors and roofline
    (run() ends here, and rejudge() brings a recorded result here)."""
    out = json.loads(json.dumps(result))
    arch = _arch_of(out)
    s = _settings_of(out)
    on_gpu = out["device"]["kind"] == "cuda"
    peak = roofline.peak_of(out["device"]["name"]) if on_gpu else None
    out["device"]["peak"] = asdict(peak) if peak else None
    for name, p in out["profiles"].items():
        prof = verdict.profile(name)
        if on_gpu:
            p["memory"], p["memory_derived"] = verdict.class_memory(prof)
        else:  # a CPU run carries no class memory, no floors, no references
            p.pop("memory", None)
            p.pop("memory_derived", None)
        for entry in p["workloads"]:
            _judge_entry(entry, prof, arch, s, peak, on_gpu)
        p["verdict"] = verdict.class_verdict([e["judgement"] for e in p["workloads"]])
        p["passed"] = None if p["verdict"] is None else p["verdict"] == "pass"
    trains = [e["learning"] for p in out["profiles"].values() for e in p["workloads"] if e.get("learning")]
    out["learned"] = None if not trains or any(t.get("learned") is None for t in trains) else all(
        t["learned"] for t in trains)
    return _json_safe(out)


def _json_safe(x):
    """NaN and inf as null: ``--json`` stays JSON (RFC 8259 has no NaN) whatever a run measured."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


OLD_KEYS = ("estimate_bytes", "estimate_parts", "loss_fell", "judgement", "estimate_error", "efficiency")


def rejudge(result: dict) -> dict:
    """A recorded result (``--json``, any schema) judged again from its measurements alone: how
    the committed GPU runs are kept current. A workload the run skipped stays unmeasured."""
    out = json.loads(json.dumps(result))
    for p in out["profiles"].values():
        for entry in p["workloads"]:
            for k in OLD_KEYS:
                entry.pop(k, None)
            if "skipped" in entry and "measured" not in entry:
                entry.setdefault("not_run", entry.pop("skipped"))
            if p.get("capped_fraction") and "measured_under_cap" not in entry and "measured" in entry:
                entry.setdefault("ran_under_cap", p["capped_fraction"])
            if "measured" in entry and entry["workload"].startswith("generate") and "compiled" not in entry:
                entry["compiled"] = {"ok": False, "skipped": "not measured: recorded before the bench had a "
                                                            "compiled decode"}
        p.pop("capped_fraction", None)
    out.setdefault("schema_version", 1)
    out["rejudged_with"] = SCHEMA
    return judge(out)


def exit_code(result: dict) -> int:
    """0 every judged class passes (or nothing is judged: no GPU) and every fine-tune learned;
    1 a class fails or a fine-tune did not learn; 4 inconclusive (the host may have limited a
    measurement, or learning is not proven), never a failure."""
    verdicts = [p.get("verdict") for p in result["profiles"].values()]
    learned = [e["learning"].get("learned") for p in result["profiles"].values() for e in p["workloads"]
               if e.get("learning")]
    if "fail" in verdicts or False in learned:
        return EXIT_FAIL
    if "inconclusive" in verdicts:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def _tps(x) -> str:
    return "-" if not x else f"{x:.0f}" if x >= 1000 else f"{x:.1f}"


WORDS = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", None: "not judged (no GPU)"}


def text(result: dict, width: int = 100) -> str:
    from llmdoctor.report.printable import fit

    m, d = result["model"], result["device"]
    size = f"{m['params'] / 1e9:.2f} B" if m["params"] >= 1e8 else f"{m['params'] / 1e6:.1f} M"
    out = textwrap.wrap(f"{m['name']} ({size} parameters, weights: {m['weights']}) on {d['name']} "
                        f"({d['dtype']}, torch {d['torch']})", width=max(40, width), subsequent_indent="  ")
    if m.get("caveat"):
        out += textwrap.wrap(f"note: {m['caveat']}", width=max(40, width), initial_indent="  ", subsequent_indent="  ")
    st = result.get("setup") or {}
    if st.get("before_first_step_s") is not None:
        out.append(f"  set-up before the first training step: {st['before_first_step_s']:.1f} s (weights "
                   f"{st['weights_s']:.1f} s, loading and wrapping in LoRA {st['first_train_load_s']:.1f} s)")
    for name, p in result["profiles"].items():
        cap = [e.get("ran_under_cap") or e.get("measured_under_cap") for e in p["workloads"]]
        cap = max((c for c in cap if c), default=None)
        mem = f", {p['memory'] / 2**20:.0f} MiB" if p.get("memory") else ""
        capped = f", GPU capped to {cap:.0%}" if cap else ""
        out += ["", f"{p['title']}{mem}{capped}: {WORDS[p.get('verdict')]}"]
        out.append(f"  {'WORKLOAD':<15} {'PREDICT':>9} {'MEASURED':>9} {'TOK/S':>7} {'EAGER':>7} {'FLOOR':>7} "
                   f"{'%ROOF':>6}  VERDICT")
        notes: dict[str, int] = {}
        for r in p["workloads"]:
            j = r.get("judgement") or {}
            ms = r.get("measured") or {}
            comp = r.get("compiled") or {}
            pred = _gib(r["estimate"]["bytes"]).replace(" GiB", "G")
            meas = _gib(r.get("footprint")).replace(" GiB", "G")
            if r["workload"].startswith("train"):
                tps, eager = _tps(ms.get("tokens_per_s")), ""
            else:
                tps = _tps(comp.get("tokens_per_s")) if comp.get("ok") else "-"
                eager = _tps(ms.get("tokens_per_s"))
            floor = _tps(j.get("floor_tps"))
            frac = _headline(r)
            roof = "-" if frac is None else f"{frac:.0%}" if frac >= 0.01 else f"{frac:.1%}"
            if "predicted" in r:
                word = "FAIL (predicted)"
            elif j.get("verdict") is None:
                word = "measured" if ms.get("ok") or comp.get("ok") else f"error: {ms.get('error')}"
            else:
                word = j["verdict"].upper() if j["verdict"] != "pass" else "pass"
            learning = r.get("learning") or {}
            if learning.get("learned") is False:
                word += "; diverged" if learning.get("diverged") else "; did not learn"  # diverged: did not learn
            elif learning.get("learned") is True:
                word += ", learned"
            note = j.get("note") or ""
            if note and j.get("verdict") is not None:
                word += f" [{notes.setdefault(note, len(notes) + 1)}]"
            line = (f"  {r['workload']:<15} {pred:>9} {meas:>9} {tps:>7} {eager or '':>7} {floor:>7} "
                    f"{roof:>6}  ")
            out.append(line + fit(word, max(12, width - len(line))))
        for note, i in notes.items():
            out += textwrap.wrap(f"[{i}] {note}", width=max(40, width), initial_indent="  ", subsequent_indent="      ")
        util = [(r["workload"], r["efficiency"]) for r in p["workloads"]
                if (r.get("efficiency") or {}).get("mfu") and r["efficiency"].get("hfu")]
        if util and p is next(iter(result["profiles"].values())):
            out.append("  MFU / HFU (recomputation counted): " + ", ".join(
                f"{wl} {e['mfu']['fraction']:.1%} / {e['hfu']['fraction']:.1%}" for wl, e in util))
        hosts = [(r["workload"], r["host_overhead"]) for r in p["workloads"] if r.get("host_overhead")]
        if hosts and p is next(iter(result["profiles"].values())):
            worst = max(hosts, key=lambda h: h[1]["ms_per_token"])
            out += textwrap.wrap(
                f"host overhead of eager decode ({worst[1]['how']}): up to {worst[1]['ms_per_token']:.1f} ms per token "
                f"({worst[0]}); removed by {worst[1]['remedy']}", width=max(40, width), initial_indent="  ",
                subsequent_indent="  ")
    out += [""] + textwrap.wrap(
        "PREDICT: the memory model's footprint; MEASURED: max(torch reserved + context, NVML process peak); TOK/S: "
        "compiled decode (static cache + torch.compile) or training; EAGER: HF generate as users run it; FLOOR: the "
        "class's slowest member's reachable figure (--json holds each derivation); %ROOF: training MFU, decode share "
        "of the bandwidth roofline", width=max(40, width))
    if d.get("peak"):
        pk = d["peak"]
        flops = f", {pk['flops'] / 1e12:g} TFLOPS" if pk.get("flops") else ""
        out += textwrap.wrap(f"roofline of this GPU: {pk['name']}, {pk['bandwidth'] / 1e9:g} GB/s{flops} "
                             f"({pk['source']})", width=max(40, width))
    return "\n".join(out) + "\n"


def _headline(r: dict) -> float | None:
    eff = r.get("efficiency") or {}
    if "mfu" in eff:
        return eff["mfu"]["fraction"]
    got = eff.get("decode_compiled") or eff.get("decode")
    return got["fraction"] if got else None


def plot(result: dict, path: str) -> None:
    """Throughput (compiled and eager decode, training) and memory per workload against each
    class's floors and memory (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 4.8))
    for k, (name, p) in enumerate(result["profiles"].items()):
        color = f"C{k}"
        rows = [r for r in p["workloads"] if r.get("measured")]
        labels = [f"{name}\n{r['workload']}" for r in rows]
        cap = [(r["measured"].get("tokens_per_s") if r["workload"].startswith("train") else
                (r.get("compiled") or {}).get("tokens_per_s")) or float("nan") for r in rows]  # no bar: not measured
        eager = [(r["measured"].get("tokens_per_s") or 0) if r["workload"].startswith("generate") else 0 for r in rows]
        ax_t.bar(labels, cap, alpha=0.75, color=color, label=f"{name}: compiled decode / training")
        ax_t.scatter(labels, [e or float("nan") for e in eager], marker="o", color="k", s=18,
                     label="eager decode (your stack)" if k == 0 else None)
        floors = [(lab, (r.get("judgement") or {}).get("floor_tps")) for lab, r in zip(labels, rows)]
        floors = [(lab, f) for lab, f in floors if f]
        if floors:
            ax_t.scatter(*zip(*floors), marker="_", s=500, color="r", label="class floor" if k == 0 else None)
        ax_m.bar(labels, [(r.get("footprint") or 0) / 2**30 for r in rows], alpha=0.75, color=color)
        ax_m.scatter(labels, [r["estimate"]["bytes"] / 2**30 for r in rows], marker="x", color="k",
                     label="predicted" if k == 0 else None)
        if p.get("memory"):
            ax_m.axhline(p["memory"] / 2**30, linestyle="--", color=color, label=f"{p['title']}")
    ax_t.set_yscale("log")  # training runs at thousands of tokens/s, decode at tens
    ax_t.set_ylabel("tokens/s, log scale (no bar: no compiled decode measured)")
    ax_t.legend(fontsize=7)
    ax_m.set_ylabel("GiB: measured footprint (bar), predicted (x)")
    ax_m.legend(fontsize=7)
    for ax in (ax_t, ax_m):
        ax.tick_params(axis="x", labelsize=7, rotation=45)
    fig.suptitle(f"{result['model']['name']} on {result['device']['name']} (re-judged with schema "
                 f"{result.get('rejudged_with', result.get('schema_version'))})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- --estimate-only: the memory model alone, no torch, no GPU ------------------------------

def estimate_only(model: str, s: Settings, *, fetch: bool = True) -> dict:
    """The predicted footprint of every workload against every class (and the option that
    would fit where one does not), from the model's config alone."""
    arch, origin = presets.resolve_config(model, fetch=fetch)
    classes = {}
    for name in s.profiles:
        prof = verdict.profile(name)
        memory, derived = verdict.class_memory(prof)
        rows = []
        for wl in s.workloads:
            batch = _batch_for(arch, wl, s, prof)
            e = estimate.predict(arch, wl, batch=batch, seq=s.seq, rank=s.rank, prompt=s.prompt, new=s.new)
            row = {"workload": wl, "batch": batch, "estimate": _est_dict(e), "fits": e.bytes <= memory}
            if not row["fits"]:
                row["alternative"], row["alternative_bytes"] = estimate.alternative(
                    arch, wl, memory, batch=batch, seq=s.seq, rank=s.rank, prompt=s.prompt, new=s.new)
            rows.append(row)
        classes[name] = {"title": prof["title"], "memory": memory, "memory_derived": derived, "workloads": rows}
    m = estimate.model()
    return {"schema_version": SCHEMA, "estimate_only": True,
            "model": {"name": model, "arch": arch.name, "params": arch.params(), "config": origin},
            "settings": {k: v for k, v in _settings_dict(s).items() if k in ("seq", "rank", "batch", "prompt", "new")},
            "memory_model": {"calibrated_on": m["calibrated_on"], "validated_on": m["validated_on"]},
            "profiles": classes}


def estimate_text(result: dict, width: int = 100) -> str:
    from llmdoctor.report.printable import fit

    m, st = result["model"], result["settings"]
    size = f"{m['params'] / 1e9:.2f} B" if m["params"] >= 1e8 else f"{m['params'] / 1e6:.1f} M"
    wrap = dict(width=max(40, width), subsequent_indent="  ")
    out = textwrap.wrap(f"{m['name']} ({size} parameters; config: {m['config']})", **wrap)
    out += textwrap.wrap(f"predicted peak per process, CUDA context included (training batch {st['batch']} x "
                         f"{st['seq']}, LoRA rank {st['rank']}; generation {st['prompt']} + {st['new']} tokens)",
                         initial_indent="  ", **wrap)
    for p in result["profiles"].values():
        out += [""] + textwrap.wrap(f"{p['title']}: {p['memory'] / 2**20:.0f} MiB, "
                                    f"{p['memory_derived'].split(' (')[0]}", **wrap)
        for r in p["workloads"]:
            word = "fits" if r["fits"] else "does not fit" + (
                f"; {r['alternative']} would ({_gib(r['alternative_bytes'])})" if r.get("alternative") else "")
            b = f"batch {r['batch']}" if r["workload"].startswith("train") else ""
            out.append(fit(f"  {r['workload']:<15} {_gib(r['estimate']['bytes']):>10}  {b:<9} {word}", width))
    mm = result["memory_model"]
    out += ["", *textwrap.wrap(f"Memory model calibrated on {', '.join(mm['calibrated_on'])}, validated on "
                               f"{', '.join(mm['validated_on'])} (never more than 5% under a measured peak there).",
                               width=max(40, width))]
    return "\n".join(out) + "\n"
