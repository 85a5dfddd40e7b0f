"""How close a bench run came to the GPU's limits: bytes read per decoded token, model FLOPs
per token, the GPU peak table, and NVML's per-process memory sampled during a workload.
GPU numbers here are published measurements or the bench's own class references."""

from __future__ import annotations

import os
import time
from urllib.parse import urlparse

import pytest

from llmdoctor.benchmark import presets, roofline, run, workloads
from llmdoctor.data import rows
from llmdoctor.probes.nvidia import ProcessMemory

YI = presets.preset("yi-6b")


@pytest.mark.parametrize("quant, gb", [("16bit", 11.60), ("int8", 6.06), ("nf4", 3.64)])
def test_yi_6b_reads_the_weight_bytes_the_reference_derives_per_decoded_token(quant, gb):
    # derived from Yi-6B's config (5.537 B linear + 0.524 B embedding parameters): 16-bit reads every weight twice a
    # byte; LLM.int8 one byte per linear weight with the lm_head in fp16; nf4 half a byte plus an fp32 absmax per 64
    assert roofline.bytes_per_decoded_token(YI, quant, context=0) / 1e9 == pytest.approx(gb, abs=0.01)
    assert roofline.forward_flops_per_token(YI, 0) / 1e9 == pytest.approx(11.6, abs=0.05)


def test_a_published_hf_decode_measurement_is_thirty_percent_of_the_a100_roofline():
    # Llama-3.1-8B bf16, HF eager, batch 1 on an A100 80GB: 38.8 tok/s (transformers' quantization overview,
    # https://huggingface.co/docs/transformers/main/quantization/overview, data derekl35/quantization-benchmarks),
    # about 0.62 TB/s read, about 30% of the A100's 2.04 TB/s
    llama31 = presets.from_config("llama-3.1-8b", {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False})
    peak = roofline.peak_of("NVIDIA A100-SXM4-80GB")
    got = roofline.decode_fraction(38.8, llama31, "16bit", prompt=8, new=2, peak=peak)
    # the published 0.62 TB/s counts the whole embedding table as read; one row of it is
    embedding = llama31.vocab * llama31.hidden * 2
    assert 38.8 * (got["bytes_per_token"] + embedding) / 2039e9 == pytest.approx(0.30, abs=0.01)
    assert got["fraction"] == pytest.approx(0.286, abs=0.005)
    assert got["peak"] == "A100 80GB SXM" and got["source"].startswith("https://")


def test_qlora_at_the_t4_class_reference_is_about_ten_percent_mfu():
    measured = {"ok": True, "tokens_per_s": 250.0, "extra": {"trainable_params": YI.lora_params(16)}}
    eff = roofline.efficiency("train-qlora", measured, YI, seq=1024, prompt=512, new=128, rank=16,
                              peak=roofline.peak_of("Tesla T4"))
    assert 0.09 < eff["mfu"]["fraction"] < 0.10
    assert "PaLM" in eff["convention"] and roofline.headline(eff) == eff["mfu"]["fraction"]


def test_generation_reports_decode_roofline_and_prefill_mfu():
    measured = {"ok": True, "tokens_per_s": 40.0, "prefill_tokens_per_s": 3000.0}
    eff = roofline.efficiency("generate-nf4", measured, YI, seq=1024, prompt=512, new=128, rank=16,
                              peak=roofline.peak_of("NVIDIA H100 80GB HBM3"))
    assert eff["decode"]["roofline_tokens_per_s"] == pytest.approx(3.35e12 / eff["decode"]["bytes_per_token"], rel=1e-3)
    assert roofline.headline(eff) == eff["decode"]["fraction"] == pytest.approx(40 / eff["decode"]["roofline_tokens_per_s"], rel=1e-3)
    assert 0 < eff["prefill_mfu"]["fraction"] < 0.1


def test_no_peak_no_fraction_and_a_failed_workload_has_none():
    assert roofline.efficiency("generate-nf4", {"ok": True, "tokens_per_s": 3.0}, YI, 64, 16, 8, 16, None) is None
    assert roofline.efficiency("train-qlora", {"ok": False, "error": "OOM"}, YI, 64, 16, 8, 16,
                               roofline.peak_of("Tesla T4")) is None
    # a GPU whose tensor throughput is unpublished gets the bandwidth roofline but no MFU
    a10g = roofline.peak_of("NVIDIA A10G")
    assert a10g.name == "A10G" and a10g.flops is None
    assert roofline.efficiency("train-qlora", {"ok": True, "tokens_per_s": 300.0}, YI, 1024, 512, 128, 16, a10g) is None


@pytest.mark.parametrize("reported, row", [
    ("Tesla T4", "T4"), ("NVIDIA L4", "L4"), ("NVIDIA A10", "A10"), ("NVIDIA A10G", "A10G"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"), ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"), ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"), ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA GeForce RTX 3090", "RTX 3090"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA L40S", None), ("CPU", None), (None, None)])
def test_gpu_names_as_torch_reports_them_find_their_peaks(reported, row):
    peak = roofline.peak_of(reported)
    assert (peak.name if peak else None) == row


def test_every_peak_row_names_its_source():
    for r in rows("llmdoctor.benchmark", "gpu_peaks"):
        assert urlparse(r["source"]).scheme == "https" and r["bandwidth_gbs"] > 0 and r["note"]


def test_the_sampler_keeps_the_highest_reading_and_survives_a_failing_reader():
    readings = iter([100, 300, 200] + [None] * 10_000)
    with workloads.PeakSampler(lambda: next(readings), interval=0.001) as sampler:
        time.sleep(0.05)
    assert sampler.peak == 300

    def broken():
        raise RuntimeError("NVML went away")

    with workloads.PeakSampler(broken, interval=0.001) as sampler:
        time.sleep(0.01)
    assert sampler.peak is None


def test_nvml_process_memory_on_a_machine_without_a_driver_is_unknown_with_its_reason():
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver: the no-driver path cannot be seen here")
    with ProcessMemory(os.getpid()) as pm:
        assert pm.read() is None and "NVML" in pm.why
    with workloads.nvml_peak("cpu") as sampler:
        pass
    assert sampler.peak is None


def test_a_t4_run_is_judged_and_tabled_with_its_compiled_and_eager_decode():
    """A run as a T4 would record it (nf4, both decode modes), judged end to end by run.judge."""
    result = {
        "model": {"name": "yi-6b", "arch": "yi-6b", "params": YI.params(), "weights": "random, normal(0, 0.02)",
                  "caveat": None},
        "device": {"kind": "cuda", "name": "Tesla T4", "dtype": "float16", "torch": "2.13.0", "total_memory": 15.6e9},
        "settings": {"seq": 1024, "rank": 16, "prompt": 256, "new": 64, "batch": 1},
        "profiles": {"t4": {"title": "T4 class (16 GB)", "workloads": [{
            "workload": "generate-nf4", "batch": 1,
            "measured": {"ok": True, "tokens_per_s": 12.0, "spread": [11.5, 12.4], "peak_allocated": 4 * 2**30,
                         "peak_reserved": int(4.1 * 2**30), "peak_nvml": int(4.5 * 2**30), "extra": {}},
            "compiled": {"ok": True, "tokens_per_s": 21.0, "fullgraph": True, "cudagraph_skips": 0}}]}},
    }
    judged = run.judge(result)
    (entry,) = judged["profiles"]["t4"]["workloads"]
    assert entry["efficiency"]["decode_compiled"]["fraction"] == pytest.approx(
        21.0 * roofline.bytes_per_decoded_token(YI, "nf4", 256 + 32) / 320e9, rel=1e-3)
    assert entry["judgement"]["judged_on"] == "compiled" and entry["judgement"]["verdict"] == "pass"
    assert entry["host_overhead"]["ms_per_token"] == pytest.approx(1000 / 12 - 1000 / 21, abs=0.01)
    text = run.text(judged, width=110)
    line = next(x for x in text.splitlines() if x.strip().startswith("generate-nf4"))
    assert "%ROOF" in text and " 24% " in line and " 12.0 " in line and " 21.0 " in line  # 21 tok/s x 3.6 GB / 320
    assert "T4, 320 GB/s, 65 TFLOPS" in " ".join(text.split())
    assert max(len(x) for x in text.splitlines()) <= 110


def test_hfu_counts_the_recomputed_forward_beside_mfu():
    lora = YI.lora_params(16)
    mfu = roofline.train_flops_per_token(YI, 1024, lora)
    hfu = roofline.train_hw_flops_per_token(YI, 1024, lora)
    assert hfu - mfu == 2 * YI.linear_params() + roofline.attention_flops(YI, 1024)
    # the N part: MFU counts 4N, HFU 6N with the decoder's forward run twice (4/6, not 0.63)
    assert (4 * YI.linear_params()) / (6 * YI.linear_params()) == pytest.approx(0.667, abs=1e-3)
    eff = roofline.efficiency("train-qlora", {"ok": True, "tokens_per_s": 1000.0, "extra": {"trainable_params": lora}},
                              YI, 1024, 256, 64, 16, roofline.peak_of("NVIDIA H200"))
    assert eff["hfu"]["fraction"] > eff["mfu"]["fraction"] and "HFU" in eff["convention"]


def test_prefill_counts_the_lm_head_for_the_last_position_only():
    # generate keeps the last position's logits: 2 x vocab x hidden once per prompt, not per token
    per_token = roofline.prefill_flops_per_token(YI, 512)
    assert per_token == pytest.approx(2 * YI.linear_params() + roofline.attention_flops(YI, 512)
                                      + 2 * YI.vocab * YI.hidden / 512)
    assert per_token < roofline.forward_flops_per_token(YI, 512) - 0.99 * 2 * YI.vocab * YI.hidden


@pytest.mark.parametrize("reported, row, bandwidth", [
    ("NVIDIA H200", "H200 SXM", 4800), ("NVIDIA H200 NVL", "H200 NVL", 4800),
    ("NVIDIA GH200 480GB", "GH200 96GB HBM3", 4000), ("NVIDIA GH200 144G HBM3e", "GH200 144GB HBM3e", 4900)])
def test_h200_h200_nvl_and_gh200_are_separate_rows_from_nvidia_com(reported, row, bandwidth):
    peak = roofline.peak_of(reported)
    assert peak.name == row and peak.bandwidth == bandwidth * 1e9 and peak.source.startswith("https://www.nvidia.com/")
    assert peak.derived and "sparsity / 2" in peak.derived  # NVIDIA states these with sparsity
