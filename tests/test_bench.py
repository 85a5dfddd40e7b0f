"""`llmdoctor bench` end to end on the CPU with the tiny preset (random weights written as a
real checkpoint, QLoRA through bitsandbytes' CPU 4-bit kernels, real LoRA training with a
held-out proof of learning, eager and compiled decode), and the verdict logic on GPU-class
numbers. No timing is asserted."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmdoctor.benchmark import estimate, presets, run, verdict, weights, workloads
from llmdoctor.cli import cli

GiB = 1024**3
ROOT = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--profile", "t4", "--seq", "64", "--prompt", "16", "--new", "8", "--reps", "2",
        "--warmups", "1", "--min-seconds", "0", "--json"]


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xdg")
    runner = CliRunner(env={"XDG_CACHE_HOME": str(cache)})
    result = runner.invoke(cli, ["bench", "--model", "tiny", "--steps", "20", "--lr", "2e-3", "--decode", "eager",
                                 *FAST], catch_exceptions=False)
    return result, cache


@pytest.fixture(scope="module")
def frozen_and_compiled(tiny_result):
    """The second CPU run: a learning rate that cannot move a weight, and the compiled decode."""
    _, cache = tiny_result
    runner = CliRunner(env={"XDG_CACHE_HOME": str(cache)})
    return runner.invoke(cli, ["bench", "--model", "tiny", "--workload", "train-lora16", "--workload",
                               "generate-16bit", "--steps", "3", "--lr", "1e-12", "--decode", "both", *FAST],
                         catch_exceptions=False)


def rows_of(result) -> dict:
    report = json.loads(result.stdout)
    return {r["workload"]: r for r in report["profiles"]["t4"]["workloads"]}


def test_the_whole_pipeline_runs_on_the_cpu(tiny_result):
    result, cache = tiny_result
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads(result.stdout)
    assert report["model"]["weights"].startswith("random") and report["model"]["random_weights"]
    assert report["model"]["caveat"] and "outlier" in report["model"]["caveat"]
    assert report["device"]["kind"] == "cpu" and report["device"]["dtype"] == "float32"
    assert report["device"]["peak"] is None
    rows = rows_of(result)
    assert set(rows) == set(run.WORKLOADS)
    for name, r in rows.items():
        m = r["measured"]
        assert m["ok"], (name, m["error"])
        assert m["tokens_per_s"] > 0 and m["spread"][0] <= m["tokens_per_s"] <= m["spread"][1]
        assert r["estimate"]["bytes"] > r["estimate"]["reserved"] >= r["estimate"]["allocated"] > 0
        assert m["peak_nvml"] is None and "efficiency" not in r  # no GPU: no NVML memory, no roofline
    assert "uint8" in rows["train-qlora"]["measured"]["loaded_dtype"]  # the base really is 4-bit
    assert "int8" in rows["generate-int8"]["measured"]["loaded_dtype"]
    for name in ("generate-nf4", "generate-int8", "generate-16bit"):
        m = rows[name]["measured"]
        assert m["ttft_s"] > 0 and m["prefill_tokens_per_s"] > 0 and m["iterations"] >= 2 and m["warmup"] == 1
        assert 0 < m["per_token_ms"][0] <= m["per_token_ms"][1]
        assert rows[name]["compiled"] == {"ok": False, "skipped": "not asked for (--decode eager)"}
    setup = report["setup"]  # what the "under a minute on an H100" is read from
    assert setup["before_first_step_s"] == pytest.approx(setup["weights_s"] + setup["first_train_load_s"], abs=2e-3)
    assert rows["train-qlora"]["measured"]["extra"]["setup_s"] == setup["first_train_load_s"]


def test_a_cpu_run_carries_no_class_memory_floor_or_reference(tiny_result):
    report = json.loads(tiny_result[0].stdout)
    p = report["profiles"]["t4"]
    assert p["verdict"] is None and p["passed"] is None and "memory" not in p
    for r in p["workloads"]:
        assert r["judgement"] == {"verdict": None, "note": "no GPU: nothing is judged, no class floor applies"}
    text = json.dumps(report)
    assert "floor_tps" not in text and "reference" not in text and "tokens_per_s\": 783" not in text


def test_the_record_says_where_it_ran(tiny_result):
    report = json.loads(tiny_result[0].stdout)
    env = report["environment"]
    for lib in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "llmdoctor"):
        assert env["versions"][lib], lib
    assert env["llmdoctor"].get("commit") or env["llmdoctor"].get("why")
    assert env["cpu"]["logical_cpus"] >= 1 and env["python"]
    assert report["seeds"] == workloads.SEEDS and report["model"]["random_weights"] is True
    assert "gpu_before" not in env  # a CPU run reads no GPU clocks


def test_an_installed_llmdoctor_inside_the_users_git_project_reports_no_commit_of_theirs(tmp_path):
    """pip install llmdoctor into project/.venv, where project is the user's git repository: `git
    rev-parse HEAD` run from site-packages finds *their* repository, and its commit was
    recorded as llmdoctor's. Only a checkout that tracks llmdoctor's own file counts."""
    import importlib.util
    import subprocess

    project = tmp_path / "project"
    site = project / ".venv" / "lib" / "site-packages" / "llmdoctor" / "benchmark"
    site.mkdir(parents=True)
    (project / "train.py").write_text("print('the user project')\n")
    git = ["git", "-C", str(project), "-c", "user.name=u", "-c", "user.email=u@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "theirs"], check=True)
    theirs = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    copy = site / "record.py"
    copy.write_text((ROOT / "benchmark" / "record.py").read_text())
    spec = importlib.util.spec_from_file_location("installed_record", copy)
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    got = installed.commit()
    assert got.get("commit") != theirs and got["commit"] is None and "not a checkout of llmdoctor" in got["why"]
    from llmdoctor.benchmark import record

    assert record.commit()["commit"]  # this checkout (the tests run from one) still names its commit


def test_both_fine_tunes_learn_on_held_out_data(tiny_result):
    rows = rows_of(tiny_result[0])
    for name in ("train-qlora", "train-lora16"):
        r = rows[name]
        learning = r["learning"]
        assert learning["learned"] and learning["drop"] > learning["threshold"] >= workloads.LEARN_MIN_DROP
        assert len(learning["held_out_before"]) == workloads.HELD_OUT
        assert len(r["measured"]["losses"]) == 3 + 20
    assert json.loads(tiny_result[0].stdout)["learned"] is True


def test_a_learning_rate_of_1e_12_did_not_learn(frozen_and_compiled):
    result = frozen_and_compiled
    assert result.exit_code == run.EXIT_FAIL, result.output[-2000:]
    learning = rows_of(result)["train-lora16"]["learning"]
    assert learning["learned"] is False and abs(learning["drop"]) < workloads.LEARN_MIN_DROP
    report = json.loads(result.stdout)
    assert report["learned"] is False
    assert "did not learn" in run.text(report)


def test_a_learning_rate_that_diverges_did_not_learn_and_the_json_stays_json(tiny_result):
    """--lr 50 on the tiny model: the loss turns NaN within a few steps. The record says the
    fine-tune diverged and did not learn, and --json holds null where the loss was NaN (a bare
    NaN is not JSON: jq and JSON.parse refuse the whole document)."""
    report, cache = json.loads(tiny_result[0].stdout), tiny_result[1]
    w = weights.resolve("tiny", False, str(cache / "llmdoctor"), "cpu", "float32", say=print)
    m = workloads.train(w.path, "16bit", "cpu", "float32", 1, 64, 3, 1, 16, 50.0, w.arch.vocab)
    learning = m.learning
    assert learning["learned"] is False and learning["diverged"] is True and "not finite" in learning["why"]
    assert None in learning["held_out_after"] and None in m.losses
    entry = next(e for e in report["profiles"]["t4"]["workloads"] if e["workload"] == "train-lora16")
    entry["measured"] = dataclasses.asdict(m)
    judged = run.judge(report)
    json.dumps(judged, allow_nan=False)  # raises on NaN or inf anywhere
    assert run.exit_code(judged) == run.EXIT_FAIL and judged["learned"] is False
    line = next(x for x in run.text(judged, width=100).splitlines() if x.strip().startswith("train-lora16"))
    assert line.endswith("measured; diverged")


def test_the_compiled_decode_runs_on_the_cpu_or_says_why_not(frozen_and_compiled):
    comp = rows_of(frozen_and_compiled)["generate-16bit"]["compiled"]
    if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):  # what inductor's CPU backend needs
        assert comp["ok"], comp
        assert comp["tokens_per_s"] > 0 and comp["cache"] == "static" and comp["mode"] == "default"
        assert comp["fullgraph"] is True and comp["graph_breaks"] == 0
        assert comp["iterations"] >= 2 and comp["per_token_ms"][0] > 0
        r = rows_of(frozen_and_compiled)["generate-16bit"]
        assert r["host_overhead"]["how"] == "eager minus compiled per-token time"
    else:
        assert not comp["ok"] and "torch.compile" in comp["error"]


def test_a_compiler_that_fails_leaves_the_decode_eager_with_the_reason(monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = presets.preset("tiny").transformers_config("float32")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()

    def no_compiler(*a, **k):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    ids = workloads.synthetic_batches(cfg.vocab_size, 1, 8, 1)[0]
    got = workloads._compiled(model, ids, "cpu", 3, 0, 1, 0.0, lambda: None,
                              dict(do_sample=False, pad_token_id=0, eos_token_id=None))
    assert got["ok"] is False and "torch.compile failed, the decode stays eager" in got["error"]
    assert "fullgraph=True: RuntimeError: InvalidCxxCompiler" in got["error"] and "fullgraph=False" in got["error"]
    assert model.forward.__func__ is type(model).forward  # the model is left as it was


def test_the_learning_proof_is_a_margin_over_the_batch_spread():
    assert workloads.learned([7.0, 7.1, 6.9, 7.0], [6.0, 6.1, 5.9, 6.0])["learned"]
    flat = workloads.learned([7.0, 7.1, 6.9, 7.0], [7.0, 7.1, 6.9, 7.0])
    assert not flat["learned"] and flat["drop"] == 0
    noisy = workloads.learned([7.0, 7.4, 6.6, 7.0], [6.8, 7.2, 6.4, 6.8])  # a 0.2 drop inside a 0.33 spread
    assert not noisy["learned"] and noisy["threshold"] == pytest.approx(3 * 0.3266, abs=1e-3)
    assert not workloads.learned([7.0, 7.0], [float("nan"), 7.0])["learned"]


def test_synthetic_batches_share_one_rule_and_never_repeat_a_batch():
    train = workloads.synthetic_batches(1024, 1, 64, 13, seed=workloads.SEEDS["train_batches"])
    held = workloads.synthetic_batches(1024, 1, 64, 4, seed=workloads.SEEDS["held_out"])
    ids = workloads.token_set(1024).tolist()
    assert set(train.unique().tolist()) <= set(ids) and set(held.unique().tolist()) <= set(ids)
    seen = {tuple(b.flatten().tolist()) for b in train}
    assert len(seen) == 13 and not seen & {tuple(b.flatten().tolist()) for b in held}  # fresh, and held out
    pos = {t: i for i, t in enumerate(ids)}
    for seq in (*train[:, 0], *held[:, 0]):  # the learnable rule: the next id is one or two places on
        steps = [(pos[b] - pos[a]) % len(ids) for a, b in zip(seq.tolist(), seq.tolist()[1:])]
        assert set(steps) <= {1, 2}


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


@pytest.mark.parametrize("option", [["--lr", "nan"], ["--lr", "inf"], ["--min-seconds", "nan"],
                                    ["--min-seconds", "inf"]])
def test_a_learning_rate_or_duration_that_is_not_a_finite_number_is_a_usage_error(tmp_path, option):
    """--lr nan trains nothing and --lr inf diverges at once; --min-seconds inf never ends a
    measurement: each is refused before anything runs (gpt-99 would be refused later, by name)."""
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path)}).invoke(cli, ["bench", "--model", "gpt-99", "--device",
                                                                           "cpu", *option])
    assert result.exit_code == 2 and option[0] in result.output and "finite" in result.output
    assert "not a preset" not in result.output


QUICK = ["--device", "cpu", "--profile", "t4", "--workload", "generate-16bit", "--decode", "eager", "--prompt", "4",
         "--new", "2", "--reps", "1", "--warmups", "0", "--min-seconds", "0"]


def test_a_weights_cache_that_cannot_be_written_is_a_clear_error_before_anything_is_built(tmp_path):
    """LLMDOCTOR_CACHE_DIR under a file (or a read-only, or full, disk): said in one line, exit
    2, before the random model is built; it was an 'internal error' after building it."""
    (tmp_path / "a-file").write_text("")
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path), "LLMDOCTOR_CACHE_DIR": str(tmp_path / "a-file" / "x")}
                       ).invoke(cli, ["bench", "--model", "tiny", *QUICK])
    assert result.exit_code == 2, result.output[-2000:]
    assert "cannot write the random weights" in result.output and "LLMDOCTOR_CACHE_DIR" in result.output
    assert "Building" not in result.output and "internal error" not in result.output


def test_a_plot_path_in_a_missing_folder_is_refused_before_the_run(tmp_path):
    """--plot is written after a run of minutes: a path that cannot be written is refused first
    (it was found only then, and the run's results were lost with it)."""
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path)}).invoke(
        cli, ["bench", "--model", "tiny", *QUICK, "--plot", str(tmp_path / "no-such-folder" / "bench.png")])
    assert result.exit_code == 2 and "no-such-folder" in result.output and "--plot" in result.output
    assert "generate-16bit" not in result.output  # nothing ran


def test_plot_without_matplotlib_is_refused_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` does where it is not installed
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path)}).invoke(
        cli, ["bench", "--model", "tiny", *QUICK, "--plot", str(tmp_path / "bench.png")])
    assert result.exit_code == 2 and "pip install 'llmdoctor[plot]'" in result.output
    assert "generate-16bit" not in result.output  # refused before the run


def test_a_plot_that_fails_to_write_after_the_run_still_prints_the_results(tmp_path, monkeypatch):
    """The disk fills while the PNG is written (after a run of minutes): the results are printed
    all the same, with the error, and the bench's own exit code."""
    def disk_full(result, path):
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(run, "plot", disk_full)
    monkeypatch.setitem(sys.modules, "matplotlib", sys.modules.get("matplotlib") or types.ModuleType("matplotlib"))
    result = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path)}).invoke(
        cli, ["bench", "--model", "tiny", *QUICK, "--json", "--plot", str(tmp_path / "bench.png")])
    assert result.exit_code == 0, result.output[-2000:]
    assert json.loads(result.stdout)["profiles"]["t4"]["workloads"][0]["measured"]["ok"]
    assert "--plot" in result.stderr and "No space left on device" in result.stderr


def test_the_table_fits_the_terminal_and_says_why_nothing_was_judged(tiny_result):
    report = json.loads(tiny_result[0].stdout)
    text = run.text(report, width=100)
    assert "T4 class (16 GB): not judged (no GPU)" in text and "train-qlora" in text and "learned" in text
    assert "set-up before the first training step" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_plot_writes_a_png_or_names_the_missing_extra(tiny_result, tmp_path):
    report = json.loads(tiny_result[0].stdout)
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        with pytest.raises(ImportError):
            run.plot(report, str(tmp_path / "bench.png"))
        return
    run.plot(report, str(tmp_path / "bench.png"))
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the verdict on GPU-class numbers (constructed entries: what a GPU run records) ---------

YI = presets.preset("yi-6b")
H100 = "NVIDIA H100 80GB HBM3"
S = {"seq": 1024, "rank": 16, "prompt": 256, "new": 64, "batch": 1}


def gpu_entry(workload: str, reserved: float, nvml: float | None, tps: float, compiled: dict | None = None,
              decode_fraction: float | None = None, learned: bool | None = True) -> dict:
    entry = {"workload": workload, "measured": {"ok": True, "tokens_per_s": tps, "peak_allocated": int(reserved * GiB),
                                                "peak_reserved": int(reserved * GiB),
                                                "peak_nvml": int(nvml * GiB) if nvml else None, "extra": {}}}
    if compiled is not None:
        entry["compiled"] = compiled
    if decode_fraction is not None:
        entry["efficiency"] = {"decode": {"fraction": decode_fraction}}
    if workload.startswith("train"):
        entry["learning"] = {"learned": learned}
    return entry


def judge(entry, profile="t4", peak=H100):
    return verdict.judge(entry, verdict.profile(profile), YI, S, run.roofline.peak_of(peak), on_gpu=True)


def test_a_fit_is_judged_on_the_nvml_peak_when_it_is_the_larger():
    # the issue: NVML measured the QLoRA process at 7.96 GB against 7.33 GB judged on allocated + 512 MiB
    entry = gpu_entry("train-qlora", reserved=13.9, nvml=14.9, tps=3000)
    j = judge(entry)
    assert j.footprint == int(14.9 * GiB) and j.fits is False and j.verdict == "fail"  # 14.9 GiB > 15079 MiB
    j = judge(gpu_entry("train-qlora", reserved=13.9, nvml=None, tps=3000))  # no NVML: reserved + context
    assert j.footprint == int(13.9 * GiB) + estimate.model()["overhead_bytes"]["train-qlora"]


def test_the_class_memory_is_its_smallest_member_in_nvidia_smi():
    assert verdict.class_memory(verdict.profile("t4"))[0] == 15079 * 2**20
    assert verdict.class_memory(verdict.profile("24gb"))[0] == 23028 * 2**20  # an A10 / A10G, not 24 GiB
    assert verdict.torch_cap_bytes(verdict.profile("t4"), "train-lora16") == (
        15079 * 2**20 - estimate.model()["overhead_bytes"]["train-lora16"])


def test_every_member_card_has_its_nvidia_smi_total_with_a_source():
    """The class's memory is the smallest member's: a member without a total could be the smallest."""
    for name in ("t4", "24gb"):
        members = verdict.profile(name)["members"]
        for m in members:
            assert m["nvidia_smi_mib"] and m["nvidia_smi_source"].startswith("https://"), m
        assert verdict.class_memory(verdict.profile(name))[0] == min(m["nvidia_smi_mib"] for m in members) * 2**20


def test_a_workload_predicted_not_to_fit_fails_its_class_with_the_option_that_would():
    qwen7 = presets.preset("qwen2.5-7b")
    est = estimate.predict(qwen7, "train-lora16")
    memory = verdict.class_memory(verdict.profile("t4"))[0]
    assert est.bytes > memory
    alt, alt_bytes = estimate.alternative(qwen7, "train-lora16", memory)
    assert alt == "train-qlora" and alt_bytes <= memory
    entry = {"workload": "train-lora16", "predicted": {"bytes": est.bytes, "alternative": alt,
                                                       "alternative_bytes": alt_bytes}}
    j = verdict.judge(entry, verdict.profile("t4"), qwen7, S, run.roofline.peak_of(H100), on_gpu=True)
    assert j.verdict == "fail" and j.judged_on == "predicted" and "train-qlora would fit" in j.note
    assert verdict.class_verdict([verdict.as_dict(j)]) == "fail"


def test_compiled_decode_is_judged_and_eager_host_overhead_is_not_a_failure():
    floor = verdict.decode_floor(verdict.profile("24gb"), YI, "16bit", 256, 64)["tokens_per_s"]
    compiled = {"ok": True, "tokens_per_s": floor * 10, "fullgraph": True, "cudagraph_skips": 0}
    j = judge(gpu_entry("generate-16bit", 12.0, 12.8, tps=floor / 2, compiled=compiled, decode_fraction=0.05), "24gb")
    assert j.verdict == "pass" and j.judged_on == "compiled" and j.measured_tps == floor * 10


def test_a_slow_decode_without_a_compiled_measurement_is_inconclusive_never_fail():
    # the issue: an H200 failed the 24 GB class because eager HF generate paid ~20 ms of host time per token
    floor = verdict.decode_floor(verdict.profile("24gb"), YI, "16bit", 256, 64)["tokens_per_s"]
    j = judge(gpu_entry("generate-16bit", 12.0, 12.8, tps=floor * 0.8,
                        compiled={"ok": False, "error": "torch.compile failed, the decode stays eager: ..."},
                        decode_fraction=0.10), "24gb")
    assert j.verdict == "inconclusive" and j.fast is None and "host may limit it" in j.note
    assert run.exit_code({"profiles": {"24gb": {"verdict": "inconclusive", "workloads": []}}}) == run.EXIT_INCONCLUSIVE


def test_a_compiled_only_run_is_judged_on_its_own_memory_and_speed():
    floor = verdict.decode_floor(verdict.profile("t4"), YI, "16bit", 256, 64)["tokens_per_s"]
    entry = {"workload": "generate-16bit", "measured": {"ok": True, "tokens_per_s": None, "extra": {}},
             "compiled": {"ok": True, "tokens_per_s": floor * 2, "fullgraph": True, "cudagraph_skips": 0,
                          "peak_reserved": int(12.5 * GiB), "peak_nvml": int(13.5 * GiB)}}
    j = judge(entry)
    assert j.verdict == "pass" and j.judged_on == "compiled" and j.footprint == int(13.5 * GiB)


def test_a_slow_decode_under_cuda_graphs_fails():
    floor = verdict.decode_floor(verdict.profile("t4"), YI, "nf4", 256, 64)["tokens_per_s"]
    compiled = {"ok": True, "tokens_per_s": floor * 0.5, "fullgraph": True, "cudagraph_skips": 0}
    j = judge(gpu_entry("generate-nf4", 4.0, 4.8, tps=floor * 0.3, compiled=compiled), "t4", peak="Tesla T4")
    assert j.verdict == "fail" and "the GPU limits it" in j.note
    breaks = dict(compiled, fullgraph=False)  # graph breaks: the host is back in the loop
    assert judge(gpu_entry("generate-nf4", 4.0, 4.8, tps=floor * 0.3, compiled=breaks), "t4").verdict == "inconclusive"


def test_an_idle_gpu_in_training_is_inconclusive_and_a_busy_one_that_is_slow_fails():
    fl = verdict.training_floor(verdict.profile("t4"), YI, 1024, 16)
    slow = gpu_entry("train-qlora", 7.0, 7.6, tps=fl["tokens_per_s"] * 0.5)
    slow["efficiency"] = {"mfu": {"fraction": 0.02}}
    assert judge(slow).verdict == "inconclusive"
    slow["efficiency"] = {"mfu": {"fraction": 0.20}}
    assert judge(slow).verdict == "fail"


def test_a_fine_tune_that_did_not_learn_fails_its_class():
    fl = verdict.training_floor(verdict.profile("t4"), YI, 1024, 16)
    j = judge(gpu_entry("train-qlora", 7.0, 7.6, tps=fl["tokens_per_s"] * 3, learned=False))
    assert j.verdict == "fail" and "did not learn" in j.note


def test_exit_codes_fail_before_inconclusive_before_pass():
    def res(*verdicts, learned=True):
        return {"profiles": {str(i): {"verdict": v, "workloads": [{"learning": {"learned": learned}}]}
                             for i, v in enumerate(verdicts)}}

    assert run.exit_code(res("pass", "pass")) == 0 and run.exit_code(res(None)) == 0
    assert run.exit_code(res("pass", "inconclusive")) == 4 and run.exit_code(res("inconclusive", "fail")) == 1
    assert run.exit_code(res(None, learned=False)) == 1  # a CPU run whose fine-tune did not learn
