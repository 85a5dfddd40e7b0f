"""The two bench workloads, measured: a LoRA fine-tune (QLoRA on an nf4 base, or 16-bit
LoRA) on synthetic but learnable token data, with a proof that it learned; and quantized
generation in two modes, "your stack" (eager HF generate, as users run it) and "GPU
capability" (static KV cache and torch.compile, CUDA graphs on a GPU, the method
transformers documents). Method as in optimum-benchmark / HF LLM-Perf: warm-ups first,
then at least ``reps`` iterations and at least ``min_s`` seconds; prefill = a generate of one
token (TTFT), decode = generate minus prefill (the time from its first to its last token),
per-token latency from a timestamp at every token; every timed region bracketed by a device
synchronisation. Seeds are fixed (SEEDS)."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

SEEDS = {"torch": 0, "token_set": 0, "train_batches": 1, "held_out": 2, "random_weights": 0, "prompt": 3}
TOKEN_SET = 64  #: the synthetic data counts through this many token ids (fewer where the vocabulary is smaller)
HELD_OUT = 4  #: held-out batches evaluated before and after training
LEARN_SPREADS = 3  #: the held-out loss must drop by this many times the batch-to-batch spread
LEARN_MIN_DROP = 0.01  #: ... and by at least this many nats
MAX_REPS = 1000  #: however short an iteration, stop here


@dataclass
class Measured:
    workload: str
    ok: bool = True
    error: str | None = None
    tokens_per_s: float | None = None
    spread: tuple[float, float] | None = None  #: p10, p90 of the same measure
    step_s: float | None = None
    prefill_tokens_per_s: float | None = None
    ttft_s: float | None = None
    peak_allocated: int | None = None
    peak_reserved: int | None = None
    peak_nvml: int | None = None  #: this process's GPU memory as NVML counts it (context included)
    losses: list[float] = field(default_factory=list)
    loaded_dtype: str | None = None
    extra: dict = field(default_factory=dict)
    per_token_ms: tuple[float, float] | None = None  #: decode latency per token, p50 and p90
    ttft_p90_s: float | None = None
    iterations: int | None = None
    warmup: int | None = None
    learning: dict | None = None  #: training: held-out loss before and after, and whether it learned


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peaks(device: str) -> tuple[int | None, int | None]:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated()), int(torch.cuda.max_memory_reserved())
    return None, None


class PeakSampler:
    """Calls ``read`` (bytes, or None when it cannot say) every ``interval`` seconds on a
    thread while the block runs, and once more at its end; keeps the highest value."""

    def __init__(self, read, interval: float = 0.02):
        self.read, self.interval = read, interval
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="llmdoctor-nvml-peak", daemon=True)

    def _take(self) -> None:
        try:
            value = self.read()
        except Exception:  # noqa: BLE001 - a failing reader leaves the peak unknown, never the run
            value = None
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> "PeakSampler":
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._take()


@contextlib.contextmanager
def nvml_peak(device: str):
    """A PeakSampler of this process's NVML memory on a GPU; on the CPU one that stays None."""
    if not device.startswith("cuda"):
        with PeakSampler(lambda: None, interval=3600) as sampler:
            yield sampler
        return
    from llmdoctor.probes.nvidia import ProcessMemory

    with ProcessMemory(os.getpid()) as pm, PeakSampler(pm.read) as sampler:
        yield sampler


@contextlib.contextmanager
def _quiet_int8_cast():
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast ... to float16" on every call when
    the inputs are not fp16 (float32 on the CPU): tens of megabytes of log for one generation."""
    import logging

    log = logging.getLogger("bitsandbytes.autograd._functions")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def load(path: str, quant: str, device: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch_dtype = getattr(torch, dtype)
    if quant == "int8" and device.startswith("cuda"):
        torch_dtype = torch.float16  # LLM.int8() computes in fp16: bf16 inputs would be cast in every layer, every token
    kw = {}
    if quant == "nf4":
        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_compute_dtype=torch_dtype)
    elif quant == "int8":
        kw["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, device_map={"": device}, **kw)


def _dtype_of(model) -> str:
    seen = {}
    for p in model.parameters():
        seen[str(p.dtype).replace("torch.", "")] = seen.get(str(p.dtype).replace("torch.", ""), 0) + p.numel()
    return ", ".join(f"{k} {v / sum(seen.values()):.0%}" for k, v in sorted(seen.items(), key=lambda kv: -kv[1]))


def token_set(vocab: int, size: int = TOKEN_SET, seed: int = SEEDS["token_set"]):
    """The fixed token ids the synthetic data uses (random ids, the same in every batch)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(vocab, generator=gen)[:min(size, vocab)]


def synthetic_batches(vocab: int, batch: int, seq: int, count: int, seed: int = 0):
    """``count`` batches of random walks over a fixed set of token ids (token_set): from a random
    id, each next id is one or two places further along the set, at random. Every batch is new
    (2^(seq-1) walks from each start), yet the rule is learnable by a LoRA within a few steps:
    which ids occur, then that only two ids can follow each one (a loss of ln 2 at best)."""
    import torch

    ids = token_set(vocab)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids), (count, batch, 1), generator=gen)
    steps = torch.randint(1, 3, (count, batch, seq), generator=gen)
    steps[..., 0] = 0
    return ids[(starts + steps.cumsum(-1)) % len(ids)]


def _held_out_losses(model, batches, device: str) -> list[float]:
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for ids in batches:
            ids = ids.to(device)
            out.append(float(model(input_ids=ids, labels=ids).loss.float()))
    if was_training:
        model.train()
    return out


def learned(before: list[float], after: list[float]) -> dict:
    """The proof of learning: the held-out loss fell by more than LEARN_SPREADS times the
    batch-to-batch spread (the standard deviation of the held-out losses before training),
    and by at least LEARN_MIN_DROP nats. Pure."""
    drop = statistics.fmean(before) - statistics.fmean(after)
    spread = statistics.stdev(before) if len(before) > 1 else 0.0
    threshold = max(LEARN_SPREADS * spread, LEARN_MIN_DROP)
    ok = math.isfinite(drop) and math.isfinite(threshold) and drop > threshold
    out = {"held_out_before": _finite(before), "held_out_after": _finite(after),
           "drop": round(drop, 5) if math.isfinite(drop) else None,
           "spread": round(spread, 5) if math.isfinite(spread) else None,
           "threshold": round(threshold, 5) if math.isfinite(threshold) else None, "learned": ok,
           "rule": f"held-out loss drop > max({LEARN_SPREADS} x batch-to-batch spread, {LEARN_MIN_DROP} nats); "
                   "every training step on a fresh batch, never one the model saw"}
    if not all(math.isfinite(x) for x in (*before, *after)):
        out["diverged"] = True
        out["why"] = "the held-out loss is not finite (NaN or inf, recorded as null): the fine-tune diverged"
    return out


def _finite(xs: list[float]) -> list[float | None]:
    """Losses as JSON can hold them: rounded, and None for NaN or inf (bare NaN is not JSON)."""
    return [round(x, 5) if math.isfinite(x) else None for x in xs]


def train(path: str, quant: str, device: str, dtype: str, batch: int, seq: int, steps: int, warmup: int,
          rank: int, lr: float, vocab: int, tick=lambda: None) -> Measured:
    import torch

    name = f"train-{'qlora' if quant == 'nf4' else 'lora16'}"
    torch.manual_seed(SEEDS["torch"])
    _reset_peak(device)
    with nvml_peak(device) as nvml:
        out = _train(path, quant, device, dtype, batch, seq, steps, warmup, rank, lr, vocab, tick, name)
    out.peak_nvml = nvml.peak
    gc.collect()
    return out


def _train(path, quant, device, dtype, batch, seq, steps, warmup, rank, lr, vocab, tick, name) -> Measured:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    setup_started = time.perf_counter()
    model = load(path, quant, device, dtype)
    gc_kwargs = {"use_reentrant": False}
    if quant == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    else:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=gc_kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        model.enable_input_require_grads()
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    loaded = _dtype_of(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    data = synthetic_batches(vocab, batch, seq, warmup + steps, seed=SEEDS["train_batches"])
    held_out = synthetic_batches(vocab, batch, seq, HELD_OUT, seed=SEEDS["held_out"])
    before = _held_out_losses(model, held_out, device)
    model.train()
    _sync(device)
    setup_s = time.perf_counter() - setup_started  # load, quantize, wrap in LoRA: all before the first step
    times, losses = [], []
    for step in range(warmup + steps):
        ids = data[step].to(device)  # a fresh batch every step: a falling loss is learning, not memory
        _sync(device)
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        elapsed = time.perf_counter() - started
        losses.append(float(loss.detach()))
        if step >= warmup:
            times.append(elapsed)
        tick()
    alloc, reserved = _peaks(device)  # before the held-out evaluation, which runs without gradients
    after = _held_out_losses(model, held_out, device)
    tps = [batch * seq / t for t in times]
    out = Measured(name, tokens_per_s=statistics.median(tps), spread=(_pct(tps, 0.1), _pct(tps, 0.9)),
                   step_s=statistics.median(times), peak_allocated=alloc, peak_reserved=reserved,
                   losses=[x if math.isfinite(x) else None for x in losses],
                   loaded_dtype=loaded, iterations=steps, warmup=warmup, learning=learned(before, after),
                   extra={"setup_s": round(setup_s, 3), "batch": batch, "seq": seq, "lr": lr,
                          "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)})
    del model, opt
    return out


def _stamps(device: str):
    """A logits processor that timestamps every generated token (after a device sync)."""
    from transformers import LogitsProcessor

    class Stamps(LogitsProcessor):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores):
            _sync(device)
            self.times.append(time.perf_counter())
            return scores

    return Stamps()


def _iterations(run_once, reps: int, min_s: float, tick) -> list:
    """Run ``run_once`` at least ``reps`` times and for at least ``min_s`` seconds (optimum-benchmark's
    iterations and duration, both minimums), at most MAX_REPS times."""
    results, started = [], time.perf_counter()
    while len(results) < MAX_REPS and (len(results) < reps or time.perf_counter() - started < min_s):
        results.append(run_once())
        tick()
    return results


def _decode(model, ids, device: str, new: int, warmup: int, reps: int, min_s: float, tick, gen_kw: dict,
            warm_new: int) -> dict:
    """Warm up, then time prefill (a one-token generate) and a full generate per iteration:
    decode = (new - 1) tokens / the full generate's first-to-last-token time; per-token latency
    from the same timestamps."""
    from transformers import LogitsProcessorList

    prompt = ids.shape[1]

    def generate(n, stamps=None):
        kw = dict(gen_kw, max_new_tokens=n, min_new_tokens=n)
        if stamps is not None:
            kw["logits_processor"] = LogitsProcessorList([stamps])
        return model.generate(ids, **kw)

    for _ in range(warmup):
        generate(warm_new)
        tick()

    def once():
        _sync(device)
        t0 = time.perf_counter()
        generate(1)
        _sync(device)
        t1 = time.perf_counter()
        stamps = _stamps(device)
        out = generate(new, stamps)
        _sync(device)
        t2 = time.perf_counter()
        if out.shape[1] != prompt + new:
            raise RuntimeError(f"generation stopped after {out.shape[1] - prompt} of {new} tokens")
        gaps = [b - a for a, b in zip(stamps.times, stamps.times[1:])]
        return t1 - t0, t2 - t1, gaps

    runs = _iterations(once, reps, min_s, tick)
    prefill = [r[0] for r in runs]
    # decode = the generate minus its prefill, read inside the same call (first to last token's
    # timestamp): a separate prefill call, subtracted, lets host noise make it negative
    decode = [(new - 1) / max(1e-9, sum(r[2])) for r in runs]
    gaps = [g for r in runs for g in r[2]]
    return {"tokens_per_s": statistics.median(decode), "spread": (_pct(decode, 0.1), _pct(decode, 0.9)),
            "ttft_s": statistics.median(prefill), "ttft_p90_s": _pct(prefill, 0.9),
            "prefill_tokens_per_s": prompt / statistics.median(prefill),
            "per_token_ms": (round(1000 * _pct(gaps, 0.5), 3), round(1000 * _pct(gaps, 0.9), 3)) if gaps else None,
            "iterations": len(runs), "warmup": warmup}


def generate(path: str, quant: str, device: str, dtype: str, prompt: int, new: int, reps: int, warmup: int,
             vocab: int, tick=lambda: None, min_s: float = 0.0, modes=("eager", "compiled")) -> Measured:
    """Both decode modes on one loaded model: the returned Measured is "your stack" (eager);
    ``extra["compiled"]`` holds the capability measurement (or why there is none)."""
    import torch

    name = f"generate-{quant}"
    torch.manual_seed(SEEDS["torch"])
    _reset_peak(device)
    with _quiet_int8_cast():
        model = load(path, quant, device, dtype)
        model.eval()
        loaded = _dtype_of(model)
        ids = synthetic_batches(vocab, 1, prompt, 1, seed=SEEDS["prompt"])[0].to(device)
        kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
        out = Measured(name, loaded_dtype=loaded, extra={"modes": list(modes)})
        if "eager" in modes:
            with nvml_peak(device) as nvml, torch.no_grad():
                got = _decode(model, ids, device, new, warmup, reps, min_s, tick, kw, warm_new=2)
            for k, v in got.items():
                setattr(out, k, v)
            out.peak_allocated, out.peak_reserved = _peaks(device)
            out.peak_nvml = nvml.peak
        if "compiled" in modes:
            try:
                out.extra["compiled"] = _compiled(model, ids, device, new, warmup, reps, min_s, tick, kw)
            finally:
                _release_compiled()
        else:
            out.extra["compiled"] = {"ok": False, "skipped": "not asked for (--decode eager)"}
        if "eager" not in modes:
            out.extra["eager"] = "not asked for (--decode compiled)"
    del model
    gc.collect()
    _reset_peak(device)  # hand the cached blocks back before the next workload measures its own peak
    return out


def _release_compiled() -> None:
    """Drop compiled graphs and CUDA graph pools, so that the next workload starts clean."""
    import torch

    torch._dynamo.reset()
    try:
        from torch._inductor import cudagraph_trees

        cudagraph_trees.reset_cudagraph_trees()
    except Exception:  # noqa: BLE001 - an older or newer torch without this hook
        pass


@contextlib.contextmanager
def _dynamo_option(name: str, value):
    """LLM.int8() with its outlier threshold has data-dependent shapes: bitsandbytes' own
    compile tests set capture_dynamic_output_shape_ops for its whole-graph compile."""
    import torch

    config = torch._dynamo.config
    had = hasattr(config, name)
    old = getattr(config, name, None)
    if had:
        setattr(config, name, value)
    try:
        yield
    finally:
        if had:
            setattr(config, name, old)


def compile_mode(device: str) -> str:
    """CUDA graphs ("reduce-overhead") on a GPU; inductor's default on the CPU, which has none."""
    return "reduce-overhead" if device.startswith("cuda") else "default"


def _compiled(model, ids, device: str, new: int, warmup: int, reps: int, min_s: float, tick, kw: dict) -> dict:
    """The capability measurement: static KV cache + torch.compile of the forward, whole graph
    first, with graph breaks if it must; eager stays eager, with the reason, where it cannot
    compile. Its own memory peaks (the model stays loaded, so they are whole peaks too)."""
    import torch

    mode = compile_mode(device)
    own = "forward" in vars(model)  # an instance attribute to put back, or the class's method to fall back to
    original = model.forward
    gen_kw = dict(kw, cache_implementation="static")
    if hasattr(model.generation_config, "disable_compile"):
        gen_kw["disable_compile"] = True  # transformers' own auto-compile would wrap this compiled forward again
    errors = []
    for fullgraph in (True, False):
        torch._dynamo.reset()
        counters = torch._dynamo.utils.counters
        counters.clear()
        _reset_peak(device)
        started = time.perf_counter()
        try:
            model.forward = torch.compile(original, mode=mode, fullgraph=fullgraph, dynamic=False)
            with nvml_peak(device) as nvml, torch.no_grad(), _dynamo_option("capture_dynamic_output_shape_ops", True):
                # warm-ups generate the full length: the static cache keeps one shape, so nothing recompiles
                got = _decode(model, ids, device, new, max(2, warmup), reps, min_s, tick, gen_kw, warm_new=new)
        except Exception as exc:  # noqa: BLE001 - a compiler that cannot handle this model is a finding
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            errors.append(f"fullgraph={fullgraph}: {type(exc).__name__}: {first}")
            continue
        finally:
            if own:
                model.forward = original
            else:
                vars(model).pop("forward", None)
        alloc, reserved = _peaks(device)
        breaks = sum(counters.get("graph_break", {}).values())
        skips = sum(v for k, v in counters.get("inductor", {}).items() if "cudagraph_skips" in k)
        return {"ok": True, **got, "mode": mode, "fullgraph": fullgraph, "graph_breaks": breaks,
                "cudagraph_skips": skips, "compile_and_warmup_s": round(time.perf_counter() - started, 2),
                "peak_allocated": alloc, "peak_reserved": reserved, "peak_nvml": nvml.peak,
                "cache": "static", "errors": errors}
    torch._dynamo.reset()
    return {"ok": False, "error": "torch.compile failed, the decode stays eager: " + "; ".join(errors),
            "mode": mode}
