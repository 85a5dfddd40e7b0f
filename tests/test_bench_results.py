"""The committed GPU runs (benchmark/results/, recorded on an H200 lent to a session by
benchmark/gpu_evidence.sh) judged again by this version of the estimator, the references and
the roofline: the estimator stays within 15% of every measured peak, the training runs
learned, and the verdicts follow from the numbers. No timing of this machine is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmdoctor.benchmark import presets, run, verdict

RESULTS = Path(__file__).resolve().parents[1] / "benchmark" / "results"
FILES = sorted(RESULTS.glob("*.json"))
GiB = 1024**3


def recorded(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def measured_entries(result: dict):
    for pname, p in result["profiles"].items():
        for entry in p["workloads"]:
            if "measured" in entry and entry["measured"]["ok"]:
                yield pname, entry


def test_there_are_gpu_runs_of_yi_6b_for_both_profiles():
    yi = recorded("H200-yi-6b.json")
    assert yi["device"]["kind"] == "cuda" and yi["device"]["name"] == "NVIDIA H200"
    assert set(yi["profiles"]) == {"t4", "24gb"}
    assert {e["workload"] for _, e in measured_entries(yi)} == set(run.WORKLOADS)
    assert (RESULTS / "H200-yi-6b.png").stat().st_size > 10_000


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_the_estimator_is_within_15_percent_of_every_measured_peak(path):
    result = run.rejudge(json.loads(path.read_text()))
    errors = {(p, e["workload"]): e["estimate_error"] for p, e in measured_entries(result)}
    assert errors
    worst = max(errors.items(), key=lambda kv: abs(kv[1]))
    assert abs(worst[1]) <= 0.15, f"{path.name}: {worst}"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_recorded_fine_tune_learned(path):
    result = run.rejudge(json.loads(path.read_text()))
    trains = [e for _, e in measured_entries(result) if e["workload"].startswith("train")]
    assert all(e["loss_fell"] for e in trains)
    for e in trains:
        losses = e["measured"]["losses"]
        assert len(losses) == result["settings"]["warmup"] + result["settings"]["steps"]


def test_yi_6b_set_up_before_the_first_step_is_under_a_minute():
    setup = recorded("H200-yi-6b.json")["setup"]
    assert setup["before_first_step_s"] < 60
    assert setup["before_first_step_s"] == pytest.approx(setup["weights_s"] + setup["first_train_load_s"], abs=0.01)


def test_yi_6b_passes_the_t4_class_under_a_cap_and_fails_24gb_on_host_bound_decode():
    result = run.rejudge(recorded("H200-yi-6b.json"))
    t4, big = result["profiles"]["t4"], result["profiles"]["24gb"]
    assert t4["capped_fraction"] == pytest.approx(verdict.profile("t4")["usable_bytes"] / result["device"]["total_memory"])
    assert t4["passed"] is True and big["passed"] is False and run.exit_code(result) == 1
    for e in big["workloads"]:
        j = e["judgement"]
        if e["workload"].startswith("train"):
            assert j["fits"] and j["fast"]
        else:  # decode slower than an RTX 4090's, at a small share of the H200's bandwidth: the host limits it
            assert j["fits"] and j["fast"] is False
            assert e["efficiency"]["decode"]["fraction"] < verdict.HOST_BOUND
            assert "per-token overhead" in j["note"]


def test_a_workload_measured_under_the_smaller_cap_is_reused_for_the_larger_class():
    result = recorded("H200-yi-6b.json")
    t4_cap = result["profiles"]["t4"]["capped_fraction"]
    assert all(e["measured_under_cap"] == t4_cap for e in result["profiles"]["24gb"]["workloads"])


def test_a_smaller_model_is_not_held_to_a_bandwidth_scaled_up_reference():
    qwen = presets.preset("qwen2.5-1.5b")
    j = verdict.judge("generate-16bit", verdict.profile("24gb"), qwen, int(3 * GiB), 46.7, on_gpu=True,
                      decode_fraction=0.03)
    assert j.reference_tps == pytest.approx(47.46)  # the RTX 4090's Llama-3.1-8B figure, not 4x it
    # recorded: 46.7 tok/s for 1.5B against 43.3 for 6B on the same H200; decode did not scale with bytes
    q = {e["workload"]: e for _, e in measured_entries(recorded("H200-qwen2.5-1.5b.json"))}
    y = {e["workload"]: e for _, e in measured_entries(recorded("H200-yi-6b.json"))}
    assert q["generate-16bit"]["measured"]["tokens_per_s"] < 2 * y["generate-16bit"]["measured"]["tokens_per_s"]


def test_int8_on_the_gpu_loads_fp16_and_its_estimate_holds():
    result = run.rejudge(recorded("H200-yi-6b-int8.json"))
    [(_, entry)] = [pe for pe in measured_entries(result) if pe[0] == "t4"]
    assert "float16" in entry["measured"]["loaded_dtype"] and "bfloat16" not in entry["measured"]["loaded_dtype"]
    assert abs(entry["estimate_error"]) <= 0.15


def test_the_recorded_table_fits_100_columns_and_explains_the_slow_decode():
    text = run.text(run.rejudge(recorded("H200-yi-6b.json")), width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "PASS" in text and "FAIL" in text and "too slow [1]" in text and "[1] decode under 25%" in text
    assert "set-up before the first training step" in text
