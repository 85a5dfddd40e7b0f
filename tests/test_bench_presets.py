"""Bench presets and the memory estimator: parameter counts against the published ones,
and the estimator's verdicts on the two classes for Yi-6B (bench_anchors §5.5)."""

import pytest

from llmdoctor.benchmark import estimate, presets

GiB = 1024**3


@pytest.mark.parametrize("name", [n for n in presets.preset_names() if n != "tiny"])
def test_parameter_counts_match_the_published_ones(name):
    arch = presets.preset(name)
    assert abs(arch.params() - arch.raw["params"]) / arch.raw["params"] < 0.001


def test_yi_6b_qlora_fits_a_t4_and_16bit_lora_does_not():
    yi = presets.preset("yi-6b")
    qlora, lora16 = estimate.train(yi, "nf4", 1, 1024, 16), estimate.train(yi, "16bit", 1, 1024, 16)
    assert 5 * GiB < qlora.bytes < 10 * GiB  # 7-10 GB with context in the reference arithmetic
    assert lora16.bytes > 12 * GiB and lora16.parts["weights"] > 11 * GiB
    assert estimate.generate(yi, "nf4", 512, 128).bytes < estimate.generate(yi, "int8", 512, 128).bytes


def test_unknown_preset_is_none():
    assert presets.preset("gpt-5") is None
