"""The one memory model (benchmark/estimate.py): its constants follow from the calibration runs,
it never under-predicts the validation runs by more than 5%, `bench --estimate-only` answers
from a config alone (preset, local folder or file, the HF cache, the hub) without torch, and
`check`'s gpu.memory says what bench says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakehub import FakeHub, Repo

from llmdoctor.benchmark.presets import arch_from_config
from checks_under_test import nvidia as nv
from llmdoctor.benchmark import estimate, presets, run, verdict
from llmdoctor.cli import cli

ROOT = Path(__file__).resolve().parents[1]
MODEL = estimate.model()
MISTRAL_CONFIG = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
                  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "vocab_size": 32000, "tie_word_embeddings": False}


def runs(names):
    return [json.loads((ROOT / n).read_text()) for n in names]


def test_the_constants_follow_from_the_calibration_runs_alone():
    assert not set(MODEL["calibrated_on"]) & set(MODEL["validated_on"])
    derived = estimate.calibrate(runs(MODEL["calibrated_on"]))
    assert derived["reserved_slack"] == MODEL["reserved_slack"]
    assert derived["overhead_bytes"] == MODEL["overhead_bytes"]
    assert derived["transient"] == MODEL["transient"]


@pytest.mark.parametrize("name", MODEL["validated_on"] + MODEL["calibrated_on"])
def test_a_measured_footprint_is_never_under_predicted_by_more_than_5_percent(name):
    (result,) = runs([name])
    arch = presets.preset(result["model"]["name"])
    s = result["settings"]
    seen = 0
    for p in result["profiles"].values():
        for e in p["workloads"]:
            m = e.get("measured") or {}
            if not m.get("ok"):
                continue
            predicted = estimate.predict(arch, e["workload"], batch=e.get("batch", 1), seq=s["seq"], rank=s["rank"],
                                         prompt=s["prompt"], new=s["new"]).bytes
            measured = estimate.measured_footprint(m, e["workload"])
            assert predicted >= 0.95 * measured, (name, e["workload"], predicted / measured - 1)
            seen += 1
    assert seen >= 5


def test_parts_are_what_the_docstring_says_for_yi_6b():
    yi = presets.preset("yi-6b")
    qlora, lora16 = estimate.train(yi, "nf4", 1, 1024, 16), estimate.train(yi, "16bit", 1, 1024, 16)
    assert qlora.parts["checkpoints"] == 2 * lora16.parts["checkpoints"]  # QLoRA's residual stream is fp32
    assert qlora.parts["logits"] == lora16.parts["logits"] == 1024 * 64000 * 12
    assert lora16.parts["weights"] > 11 * 2**30 and lora16.bytes > 13 * 2**30
    assert qlora.bytes == qlora.reserved + MODEL["overhead_bytes"]["train-qlora"]
    assert estimate.generate(yi, "nf4", 512, 128).bytes < estimate.generate(yi, "int8", 512, 128).bytes


def test_check_and_bench_agree_on_what_fits_a_class():
    for name in ("t4", "24gb"):
        memory = verdict.class_memory(verdict.profile(name))[0]
        title, detail = nv.what_fits(memory)
        for preset in ("yi-6b", "llama-2-7b", "mistral-7b", "qwen2.5-7b", "llama-3.1-8b"):
            arch = presets.preset(preset)
            for wl, word in nv.WORKLOAD_WORDS.items():
                fits = estimate.predict(arch, wl).bytes <= memory
                label = arch.raw["label"]
                listed = f"{word} (" in title and label in title.split(f"{word} (")[1].split(")")[0]
                everything = f"fit for {word}" in title or ", " + word in title.split(";")[0] or (
                    title.startswith("every"))
                assert fits == (listed or everything), (name, preset, wl, title)


def test_estimate_only_answers_from_a_preset_without_torch():
    code = ("import sys\nfrom llmdoctor.cli import cli\n"
            "try:\n    cli.main(['bench', '--estimate-only', '--model', 'yi-6b', '--json'], standalone_mode=False)\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["estimate_only"] and set(report["profiles"]) == {"t4", "24gb"}
    t4 = {r["workload"]: r for r in report["profiles"]["t4"]["workloads"]}
    assert t4["train-lora16"]["fits"] and t4["train-qlora"]["fits"]
    assert report["memory_model"]["validated_on"] == MODEL["validated_on"]


def test_estimate_only_reads_a_local_folder_or_config_json_and_names_what_fits(tmp_path):
    (tmp_path / "mistral").mkdir()
    (tmp_path / "mistral" / "config.json").write_text(json.dumps(MISTRAL_CONFIG))
    runner = CliRunner()
    for model in (str(tmp_path / "mistral"), str(tmp_path / "mistral" / "config.json")):
        result = runner.invoke(cli, ["bench", "--estimate-only", "--model", model])
        assert result.exit_code == 0, result.output
        assert "train-lora16" in result.output and "does not fit; train-qlora would" in result.output
        assert max(len(line) for line in result.output.splitlines()) <= 100
    arch, _ = presets.resolve_config(str(tmp_path / "mistral"))
    assert arch.params() == presets.preset("mistral-7b").params()


@pytest.mark.parametrize("content, words", [
    (b"\x00\xff garbage", "not a readable config.json"),
    (json.dumps({"model_type": "llama", "hidden_size": 0}).encode(), "does not give the model's shape"),
    (json.dumps([1, 2]).encode(), "JSON object"),
])
def test_a_bad_config_is_a_usage_error_not_a_traceback(tmp_path, content, words):
    (tmp_path / "config.json").write_bytes(content)
    result = CliRunner().invoke(cli, ["bench", "--estimate-only", "--model", str(tmp_path)])
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output


def test_check_and_bench_read_a_config_alike():
    """One config reader for both: a mixture-of-experts config counts every expert's weights
    (all of them sit in memory), in bench --estimate-only as in check --model's model.fit."""
    from checks_under_test import model_fit

    moe = {**MISTRAL_CONFIG, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}
    arch = presets.from_config("mixtral", moe)
    assert arch == arch_from_config("mixtral", moe)
    assert arch.params() > 6 * presets.preset("mistral-7b").params()
    recipe = model_fit.recipe(arch, "qlora", 1024)
    assert recipe.bytes == estimate.train(arch, "nf4", 1, 1024, model_fit.LORA_RANK).bytes


def test_estimate_only_fetches_a_hub_id_then_finds_it_in_the_cache(tmp_path):
    repo = Repo()
    repo.add_commit({"config.json": json.dumps(MISTRAL_CONFIG).encode()})
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_DISABLE_XET": "1",
           "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1"}
    cmd = [sys.executable, "-m", "llmdoctor", "bench", "--estimate-only", "--model", "org/mistral-like", "--json"]
    with FakeHub({"org/mistral-like": repo}) as hub:
        done = subprocess.run(cmd, env={**env, "HF_ENDPOINT": hub.url}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout)["model"]["config"] == "hub (org/mistral-like, config.json only)"
    offline = subprocess.run(cmd + ["--offline"], env={**env, "HF_ENDPOINT": "http://127.0.0.1:9"},
                             capture_output=True, text=True, timeout=60)
    assert offline.returncode == 0, offline.stderr[-2000:]
    report = json.loads(offline.stdout)
    assert report["model"]["config"].startswith("Hugging Face cache") and report["model"]["params"] == 7241732096
    missing = subprocess.run([*cmd[:-2], "org/absent", "--offline"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "not in the Hugging Face cache" in missing.stderr


def test_fill_picks_the_largest_batch_that_fits_nine_tenths_of_the_class():
    yi = presets.preset("yi-6b")
    memory = verdict.class_memory(verdict.profile("24gb"))[0]
    b = estimate.largest_batch(yi, "train-qlora", memory)
    assert b > 1
    assert estimate.predict(yi, "train-qlora", batch=b).bytes <= 0.9 * memory
    assert estimate.predict(yi, "train-qlora", batch=b + 1).bytes > 0.9 * memory
    report = run.estimate_only("yi-6b", run.Settings(batch="fill"))
    assert {r["workload"]: r["batch"] for r in report["profiles"]["24gb"]["workloads"]}["train-qlora"] == b


def test_estimate_only_with_an_enormous_batch_answers_at_once():
    """--batch 99999999999: the search for a batch that would fit once tried every smaller batch
    (a hang); it bisects, and names the largest batch predicted to fit."""
    result = subprocess.run([sys.executable, "-m", "llmdoctor", "bench", "--estimate-only", "--offline", "--model",
                             "yi-6b", "--profile", "t4", "--batch", "99999999999", "--json"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {r["workload"]: r for r in json.loads(result.stdout)["profiles"]["t4"]["workloads"]}
    memory = verdict.class_memory(verdict.profile("t4"))[0]
    alt = rows["train-qlora"]["alternative"]
    assert alt.startswith("--batch ") and rows["train-qlora"]["alternative_bytes"] <= memory
    b = int(alt.split()[1])
    assert estimate.predict(presets.preset("yi-6b"), "train-qlora", batch=b + 1).bytes > memory
