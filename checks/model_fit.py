"""Memory of one model's recipes, from its own config.json, with the estimator `llmdoctor
bench` uses (benchmark/estimate.py): pure arithmetic, no torch."""

from __future__ import annotations

from dataclasses import dataclass

from llmdoctor.benchmark import estimate
from llmdoctor.benchmark.presets import Arch
from llmdoctor.data import table

NEW_TOKENS = 64  #: generation length the inference estimates assume (bench's default)
LORA_RANK = 16


def _int(cfg: dict, *keys) -> int | None:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)) and v > 0:
            return int(v)
    return None


def arch_from_config(name: str, config: dict) -> Arch | None:
    """An Arch (benchmark/presets.py) from a config.json of any common layout: llama-style
    keys, GPT-2's n_embd / n_layer, ChatGLM's num_layers / ffn_hidden_size /
    multi_query_group_num, a multimodal model's text_config, mixture-of-experts counts.
    None when the config does not say enough."""
    cfg = dict(config or {})
    for nested in ("text_config", "llm_config", "language_config"):
        sub = cfg.get(nested)
        if isinstance(sub, dict) and _int(sub, "hidden_size", "n_embd", "d_model"):
            cfg = {**sub, "model_type": sub.get("model_type") or cfg.get("model_type")}
            break
    model_type = str(cfg.get("model_type") or "unknown")
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(cfg, "num_attention_heads", "n_head")
    vocab = _int(cfg, "padded_vocab_size", "vocab_size")
    if not (hidden and layers and heads and vocab):
        return None
    kv = _int(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if kv is None and cfg.get("multi_query_attention"):  # ChatGLM2/3
        kv = _int(cfg, "multi_query_group_num") or 1
    if kv is None and cfg.get("multi_query") is True and not cfg.get("new_decoder_architecture"):  # Falcon-7B
        kv = 1
    kv = kv or heads
    inter = _int(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim") or 4 * hidden
    if model_type == "qwen":  # Qwen (1): intermediate_size is both halves of its gated MLP together
        inter //= 2
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if experts and experts > 1:
        per = _int(cfg, "moe_intermediate_size") or inter
        shared = _int(cfg, "shared_expert_intermediate_size") or per * (_int(cfg, "n_shared_experts") or 0)
        inter = per * experts + shared
    if model_type in table("llmdoctor.checks", "model")["non_gated_mlp"]["types"]:
        inter = inter * 2 // 3  # two projections, counted as three by Arch
    tied = cfg.get("tie_word_embeddings") is True  # absent: counted untied, the larger of the two
    bias = bool(cfg.get("attention_bias") or cfg.get("qkv_bias") or model_type in ("qwen", "qwen2"))
    return Arch(name=name, model_type=model_type, hidden=hidden, inter=inter, layers=layers, heads=heads, kv_heads=kv,
                vocab=vocab, tied=tied, qkv_bias=bias, raw=cfg, head_dim_override=_int(cfg, "head_dim"))


@dataclass(frozen=True)
class Recipe:
    key: str  #: infer-16bit | infer-fp32 | infer-int8 | infer-nf4 | lora | qlora
    seq: int
    label: str  #: for people: "inference in bf16", "QLoRA (nf4)"
    bytes: int  #: the process's predicted footprint, CUDA context included (benchmark/estimate.py)
    weights: int  #: of which weights
    quant: str | None = None  #: nf4 | int8 (needs bitsandbytes)


def recipe(arch: Arch, key: str, seq: int, half: str = "bf16", scale: float = 1.0) -> Recipe:
    """The estimated peak of one recipe. ``scale`` corrects the weights when the checkpoint
    holds more (or fewer) parameters than the config's shape says (vision towers,
    unusual layers)."""
    if key.startswith("infer"):
        quant = {"infer-int8": "int8", "infer-nf4": "nf4"}.get(key, "16bit")
        elt = 4 if key == "infer-fp32" else 2
        est = estimate.generate(arch, quant, seq, NEW_TOKENS, elt=elt)
        weights = est.parts["weights"]
        if key == "infer-fp32":  # estimate.weights keeps linear layers in 2 bytes; fp32 holds 4
            weights += estimate.linear_bytes(arch, "16bit")
        label = {"infer-16bit": f"inference in {half}", "infer-fp32": "inference in fp32",
                 "infer-int8": "inference in int8 (bitsandbytes)", "infer-nf4": "inference in nf4 (bitsandbytes)"}[key]
    else:
        quant = "nf4" if key == "qlora" else "16bit"
        est = estimate.train(arch, quant, 1, seq, LORA_RANK)
        weights = est.parts["weights"]
        label = f"QLoRA (nf4 base, rank {LORA_RANK})" if key == "qlora" else f"LoRA on a {half} base (rank {LORA_RANK})"
    total = est.bytes - est.parts["weights"] + int(weights * scale)
    return Recipe(key, seq, label, total, int(weights * scale), None if quant == "16bit" else quant)


def alternatives(task: str, key: str, seq: int) -> list[tuple[str, int]]:
    """What to try, in order, when the asked recipe does not fit."""
    if task == "infer":
        order = ["infer-16bit", "infer-int8", "infer-nf4"]
        return [(k, seq) for k in order if order.index(k) > order.index(key)] if key in order else \
            [(k, seq) for k in order]
    out = [("qlora", seq)] if key == "lora" else []
    s = seq // 2
    while s >= 256:
        out.append(("qlora", s))
        s //= 2
    return out
