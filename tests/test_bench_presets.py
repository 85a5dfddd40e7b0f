"""Bench presets: parameter counts against the published ones, and configs as users have them."""

import pytest

from llmdoctor.benchmark import presets


@pytest.mark.parametrize("name", [n for n in presets.preset_names() if n != "tiny"])
def test_parameter_counts_match_the_published_ones(name):
    arch = presets.preset(name)
    assert abs(arch.params() - arch.raw["params"]) / arch.raw["params"] < 0.001


def test_unknown_preset_is_none():
    assert presets.preset("gpt-5") is None


def test_a_config_without_kv_heads_is_multi_head_and_head_dim_is_read_where_given():
    mha = presets.from_config("x", {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                                    "num_attention_heads": 32, "vocab_size": 32000})
    assert mha.kv_heads == 32 and mha.params() == presets.preset("llama-2-7b").params()
    odd = presets.from_config("y", {"model_type": "qwen3", "hidden_size": 2048, "intermediate_size": 6144,
                                    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
                                    "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": True})
    assert odd.head_dim == 128 and odd.q_dim == 2048 and odd.kv_dim == 1024


def test_a_multimodal_config_is_read_through_its_text_config():
    cfg = {"model_type": "llava", "text_config": {"model_type": "llama", "hidden_size": 4096,
                                                  "intermediate_size": 11008, "num_hidden_layers": 32,
                                                  "num_attention_heads": 32, "vocab_size": 32064}}
    assert presets.from_config("llava", cfg).layers == 32
