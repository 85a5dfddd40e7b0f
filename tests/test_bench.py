"""`llmdoctor bench` end to end on the CPU with the tiny preset (random weights written as a
real checkpoint, QLoRA through bitsandbytes' CPU 4-bit kernels, real LoRA training whose loss
falls), and the verdict logic on GPU-class numbers. No timing is asserted."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmdoctor.benchmark import presets, run, verdict, weights
from llmdoctor.cli import cli

GiB = 1024**3


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xdg")
    runner = CliRunner(env={"XDG_CACHE_HOME": str(cache)})
    result = runner.invoke(cli, ["bench", "--model", "tiny", "--device", "cpu", "--profile", "t4", "--seq", "64",
                                 "--steps", "20", "--lr", "2e-3", "--prompt", "16", "--new", "8", "--reps", "2",
                                 "--json"], catch_exceptions=False)
    return result, cache


def test_the_whole_pipeline_runs_on_the_cpu(tiny_result):
    result, cache = tiny_result
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads(result.stdout)
    assert report["model"]["weights"].startswith("random") and report["model"]["random_weights"]
    assert report["model"]["caveat"] and "outlier" in report["model"]["caveat"]
    assert report["device"]["kind"] == "cpu" and report["device"]["dtype"] == "float32"
    assert report["device"]["peak"] is None
    rows = {r["workload"]: r for r in report["profiles"]["t4"]["workloads"]}
    assert set(rows) == set(run.WORKLOADS)
    for name, r in rows.items():
        m = r["measured"]
        assert m["ok"], (name, m["error"])
        assert m["tokens_per_s"] > 0 and m["spread"][0] <= m["tokens_per_s"] <= m["spread"][1]
        assert r["judgement"]["fits"] is None and "no GPU" in r["judgement"]["note"]
        assert r["estimate_bytes"] > 0
        assert m["peak_nvml"] is None and "efficiency" not in r  # no GPU: no NVML memory, no roofline
    assert "uint8" in rows["train-qlora"]["measured"]["loaded_dtype"]  # the base really is 4-bit
    assert "int8" in rows["generate-int8"]["measured"]["loaded_dtype"]
    for name in ("generate-nf4", "generate-int8", "generate-16bit"):
        assert rows[name]["measured"]["ttft_s"] > 0 and rows[name]["measured"]["prefill_tokens_per_s"] > 0
    assert report["profiles"]["t4"]["passed"] is None
    setup = report["setup"]  # what the "under a minute on an H100" is read from
    assert setup["before_first_step_s"] == pytest.approx(setup["weights_s"] + setup["first_train_load_s"], abs=2e-3)
    assert rows["train-qlora"]["measured"]["extra"]["setup_s"] == setup["first_train_load_s"]


def test_the_loss_falls_in_both_fine_tunes(tiny_result):
    report = json.loads(tiny_result[0].stdout)
    rows = {r["workload"]: r for r in report["profiles"]["t4"]["workloads"]}
    for name in ("train-qlora", "train-lora16"):
        losses = rows[name]["measured"]["losses"]
        assert len(losses) == 3 + 20 and rows[name]["loss_fell"]
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05


def test_random_weights_are_reused_and_a_local_folder_is_taken_as_is(tiny_result):
    _, cache = tiny_result
    built = weights.resolve("tiny", False, str(cache / "llmdoctor"), "cpu", "float32", say=print)
    assert built.random and (cache / "llmdoctor" / "random-weights" / "tiny-float32" / "config.json").exists()
    local = weights.resolve(built.path, False, str(cache), "cpu", "float32", say=print)
    assert local.origin == "local folder" and local.arch.hidden == 256


def test_an_unknown_model_is_a_usage_error(tmp_path):
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path)}).invoke(cli, ["bench", "--model", "gpt-99",
                                                                           "--device", "cpu"])
    assert result.exit_code == 2 and "not a preset" in result.output


# --- the verdict on GPU-class numbers (constructed for these tests: this project has no
# --- recorded GPU bench run yet) ---

YI = presets.preset("yi-6b")


def test_qlora_that_fits_a_t4_and_beats_its_reference():
    j = verdict.judge("train-qlora", verdict.profile("t4"), YI, peak_allocated=int(7.1 * GiB), tokens_per_s=320.0,
                      on_gpu=True)
    assert j.fits and j.fast and j.passed
    assert j.reference_tps == pytest.approx(250 * 6.06e9 / YI.params())
    assert "unsloth" in j.reference


def test_16bit_lora_does_not_fit_the_t4_but_fits_24gb():
    peak = int(14.9 * GiB)  # + the CUDA context: over a T4's 15 GiB, under 23 GiB
    t4 = verdict.judge("train-lora16", verdict.profile("t4"), YI, peak, 400.0, on_gpu=True)
    big = verdict.judge("train-lora16", verdict.profile("24gb"), YI, peak, 400.0, on_gpu=True)
    assert not t4.fits and not t4.passed and t4.fast is None  # the T4 class has no 16-bit LoRA reference
    assert big.fits and big.passed


def test_int8_decode_reference_is_scaled_by_weight_bytes():
    j = verdict.judge("generate-int8", verdict.profile("t4"), YI, int(6.5 * GiB), 3.0, on_gpu=True)
    assert j.reference_tps < 5.98  # Yi-6B reads more bytes per token than Qwen2.5-3B
    assert j.fits and j.fast is False and j.passed is False


def test_exit_code_follows_the_profiles():
    ok = {"profiles": {"t4": {"passed": True}, "24gb": {"passed": None}}}
    bad = {"profiles": {"t4": {"passed": False}, "24gb": {"passed": True}}}
    assert run.exit_code(ok) == 0 and run.exit_code(bad) == 1


def test_the_table_fits_the_terminal_and_says_why_nothing_was_judged(tiny_result):
    report = json.loads(tiny_result[0].stdout)
    text = run.text(report, width=100)
    assert "T4 class (16 GB): not judged (no GPU)" in text and "train-qlora" in text
    assert "set-up before the first training step" in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("  note:")) <= 100


def test_plot_writes_a_png_or_names_the_missing_extra(tiny_result, tmp_path):
    report = json.loads(tiny_result[0].stdout)
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        with pytest.raises(ImportError):
            run.plot(report, str(tmp_path / "bench.png"))
        return
    run.plot(report, str(tmp_path / "bench.png"))
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
