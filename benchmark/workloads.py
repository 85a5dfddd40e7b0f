"""The two bench workloads, measured: a LoRA fine-tune (QLoRA on an nf4 base, or 16-bit
LoRA) on synthetic but learnable token data, and quantized generation (prefill, decode,
time to first token). Timed regions are bracketed by a device synchronisation; medians and
spreads come from several steps or repetitions after warm-up; seeds are fixed."""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

QUANTS = {"nf4": "4-bit nf4 (bitsandbytes)", "int8": "8-bit LLM.int8 (bitsandbytes)", "16bit": "16-bit"}


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


def synthetic_batches(vocab: int, batch: int, seq: int, count: int, seed: int = 0):
    """Token sequences that count upward from a random start (mod vocab): random-looking, yet
    learnable, so the loss of a real training run falls."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, vocab, (count, batch, 1), generator=gen)
    return (starts + torch.arange(seq).view(1, 1, seq)) % vocab


def train(path: str, quant: str, device: str, dtype: str, batch: int, seq: int, steps: int, warmup: int,
          rank: int, lr: float, vocab: int, tick=lambda: None) -> Measured:
    import torch

    name = f"train-{'qlora' if quant == 'nf4' else 'lora16'}"
    torch.manual_seed(0)
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
    data = synthetic_batches(vocab, batch, seq, 8)
    model.train()
    _sync(device)
    setup_s = time.perf_counter() - setup_started  # load, quantize, wrap in LoRA: all before the first step
    times, losses = [], []
    for step in range(warmup + steps):
        ids = data[step % len(data)].to(device)
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
    alloc, reserved = _peaks(device)
    tps = [batch * seq / t for t in times]
    out = Measured(name, tokens_per_s=statistics.median(tps), spread=(_pct(tps, 0.1), _pct(tps, 0.9)),
                   step_s=statistics.median(times), peak_allocated=alloc, peak_reserved=reserved, losses=losses,
                   loaded_dtype=loaded, extra={"setup_s": round(setup_s, 3), "trainable_params": sum(p.numel() for p in model.parameters()
                                                                       if p.requires_grad)})
    del model, opt
    return out


def generate(path: str, quant: str, device: str, dtype: str, prompt: int, new: int, reps: int, warmup: int,
             vocab: int, tick=lambda: None) -> Measured:
    import torch

    name = f"generate-{quant}"
    torch.manual_seed(0)
    _reset_peak(device)
    with nvml_peak(device) as nvml, _quiet_int8_cast():
        out = _generate(path, quant, device, dtype, prompt, new, reps, warmup, vocab, tick, name)
    out.peak_nvml = nvml.peak
    gc.collect()
    return out


def _generate(path, quant, device, dtype, prompt, new, reps, warmup, vocab, tick, name) -> Measured:
    import torch

    model = load(path, quant, device, dtype)
    model.eval()
    loaded = _dtype_of(model)
    ids = synthetic_batches(vocab, 1, prompt, 1)[0].to(device)
    kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    prefill, full = [], []
    with torch.no_grad():
        for rep in range(warmup + reps):
            _sync(device)
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
            _sync(device)
            t1 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, **kw)
            _sync(device)
            t2 = time.perf_counter()
            assert out.shape[1] == prompt + new, "generation stopped early"
            if rep >= warmup:
                prefill.append(t1 - t0)
                full.append(t2 - t1)
            tick()
    alloc, reserved = _peaks(device)
    ttft = statistics.median(prefill)
    decode = [(new - 1) / max(1e-9, f - p) for f, p in zip(full, prefill)]
    out = Measured(name, tokens_per_s=statistics.median(decode), spread=(_pct(decode, 0.1), _pct(decode, 0.9)),
                   prefill_tokens_per_s=prompt / ttft, ttft_s=ttft, peak_allocated=alloc, peak_reserved=reserved,
                   loaded_dtype=loaded)
    del model
    return out
