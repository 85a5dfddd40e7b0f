"""Bench model presets (data/presets.json): architecture configs, parameter counts, and the
transformers config to build a model from when no real weights are at hand."""

from __future__ import annotations

from dataclasses import dataclass

from llmdoctor.data import row, rows

PACKAGE = "llmdoctor.benchmark"


@dataclass(frozen=True)
class Arch:
    name: str
    model_type: str
    hidden: int
    inter: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    qkv_bias: bool
    hub_id: str | None = None
    source: str = ""
    raw: dict | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_params(self) -> int:
        """Parameters in the decoder's linear projections (what 4-bit / 8-bit quantization replaces)."""
        attn = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_dim
        return self.layers * (attn + 3 * self.hidden * self.inter)

    def other_params(self) -> int:
        """Embeddings, lm_head, norms and biases: kept in 16 bits (fp32 after prepare_model_for_kbit_training)."""
        emb = self.vocab * self.hidden * (1 if self.tied else 2)
        norms = self.layers * 2 * self.hidden + self.hidden
        bias = self.layers * (self.hidden + 2 * self.kv_dim) if self.qkv_bias else 0
        return emb + norms + bias

    def params(self) -> int:
        return self.linear_params() + self.other_params()

    def lora_params(self, rank: int, targets=("q_proj", "k_proj", "v_proj", "o_proj")) -> int:
        dims = {"q_proj": (self.hidden, self.hidden), "k_proj": (self.hidden, self.kv_dim),
                "v_proj": (self.hidden, self.kv_dim), "o_proj": (self.hidden, self.hidden),
                "gate_proj": (self.hidden, self.inter), "up_proj": (self.hidden, self.inter),
                "down_proj": (self.inter, self.hidden)}
        return self.layers * sum(rank * (dims[t][0] + dims[t][1]) for t in targets)

    def transformers_config(self, dtype: str = "float16"):
        from transformers import AutoConfig

        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                "sliding_window")
        kw = {k: self.raw[k] for k in keys if k in self.raw}
        cfg = AutoConfig.for_model(self.model_type, **kw)
        cfg.initializer_range = 0.02
        cfg.dtype = dtype
        cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = 1, None, None
        return cfg


def _arch(r: dict) -> Arch:
    return Arch(name=r["name"], model_type=r["model_type"], hidden=r["hidden_size"], inter=r["intermediate_size"],
                layers=r["num_hidden_layers"], heads=r["num_attention_heads"], kv_heads=r["num_key_value_heads"],
                vocab=r["vocab_size"], tied=bool(r.get("tie_word_embeddings")), qkv_bias=r["model_type"] == "qwen2",
                hub_id=r.get("hub_id"), source=r.get("source", ""), raw=r)


def preset(name: str) -> Arch | None:
    try:
        return _arch(row(PACKAGE, "presets", "name", name))
    except KeyError:
        return None


def preset_names() -> list[str]:
    return [r["name"] for r in rows(PACKAGE, "presets")]


def from_config(name: str, cfg: dict) -> Arch:
    """An Arch from a model's own config.json (a hub id or a local path given to --model)."""
    raw = {**cfg, "name": name}
    raw.setdefault("num_key_value_heads", cfg.get("num_attention_heads"))
    return _arch({**raw, "model_type": cfg.get("model_type", "llama")})
