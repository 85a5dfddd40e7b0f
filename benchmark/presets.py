"""Bench model presets (data/presets.json): architecture configs, parameter counts, and the
transformers config to build a model from when no real weights are at hand. An Arch also
comes from any decoder's own config.json (``from_config``), found by ``resolve_config``: a
preset, a local folder or file, the Hugging Face cache, or (when allowed) the hub itself.
Torch-free: ``llmdoctor check`` and ``bench --estimate-only`` import it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from llmdoctor.data import row, rows, table
from llmdoctor.paths import read_file

PACKAGE = "llmdoctor.benchmark"
MAX_CONFIG_BYTES = 4 * 2**20  #: a config.json larger than this is not a model config


class ConfigError(ValueError):
    """A model's config cannot be found or read; the message says what to pass instead."""


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
    head_dim_override: int | None = None  #: config.json's head_dim where it is not hidden / heads

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_params(self) -> int:
        """Parameters in the decoder's linear projections (what 4-bit / 8-bit quantization replaces)."""
        attn = 2 * self.hidden * self.q_dim + 2 * self.hidden * self.kv_dim
        return self.layers * (attn + 3 * self.hidden * self.inter)

    def largest_linear(self) -> int:
        """Parameters of the largest single projection (an MLP matrix, or q/o at a large head count)."""
        return max(self.hidden * self.inter, self.hidden * self.q_dim)

    def other_params(self) -> int:
        """Embeddings, lm_head, norms and biases: kept in 16 bits (fp32 after prepare_model_for_kbit_training)."""
        emb = self.vocab * self.hidden * (1 if self.tied else 2)
        norms = self.layers * 2 * self.hidden + self.hidden
        bias = self.layers * (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return emb + norms + bias

    def params(self) -> int:
        return self.linear_params() + self.other_params()

    def lora_params(self, rank: int, targets=("q_proj", "k_proj", "v_proj", "o_proj")) -> int:
        dims = {"q_proj": (self.hidden, self.q_dim), "k_proj": (self.hidden, self.kv_dim),
                "v_proj": (self.hidden, self.kv_dim), "o_proj": (self.q_dim, self.hidden),
                "gate_proj": (self.hidden, self.inter), "up_proj": (self.hidden, self.inter),
                "down_proj": (self.inter, self.hidden)}
        return self.layers * sum(rank * (dims[t][0] + dims[t][1]) for t in targets)

    def transformers_config(self, dtype: str = "float16"):
        from transformers import AutoConfig

        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                "sliding_window", "head_dim")
        kw = {k: self.raw[k] for k in keys if k in self.raw}
        cfg = AutoConfig.for_model(self.model_type, **kw)
        cfg.initializer_range = 0.02
        cfg.dtype = dtype
        cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = 1, None, None
        return cfg


def _positive(cfg: dict, key: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"config.json has no positive integer {key!r} (found {value!r})")
    return value


def _arch(r: dict) -> Arch:
    heads = _positive(r, "num_attention_heads")
    kv = r.get("num_key_value_heads")
    head_dim = r.get("head_dim")
    return Arch(name=r["name"], model_type=str(r.get("model_type") or "llama"), hidden=_positive(r, "hidden_size"),
                inter=_positive(r, "intermediate_size"), layers=_positive(r, "num_hidden_layers"), heads=heads,
                kv_heads=_positive(r, "num_key_value_heads") if kv is not None else heads,
                vocab=_positive(r, "vocab_size"), tied=bool(r.get("tie_word_embeddings")),
                qkv_bias=bool(r.get("attention_bias", r.get("model_type") == "qwen2")),
                hub_id=r.get("hub_id"), source=r.get("source", ""), raw=r,
                head_dim_override=head_dim if isinstance(head_dim, int) and head_dim > 0 else None)


def preset(name: str) -> Arch | None:
    try:
        return _arch(row(PACKAGE, "presets", "name", name))
    except KeyError:
        return None


def preset_names() -> list[str]:
    return [r["name"] for r in rows(PACKAGE, "presets")]


def from_config(name: str, cfg: dict) -> Arch:
    """An Arch from a model's own config.json (a hub id or a local path given to --model), read
    by the one config reader `check --model` uses too (``arch_from_config``: llama-style
    keys, GPT-2, ChatGLM, Qwen-1, a multimodal model's text_config, mixture-of-experts counts,
    head_dim), so that check and bench size a model alike. ConfigError (a ValueError) where the
    config does not give the model's shape."""
    if not isinstance(cfg, dict):
        raise ConfigError("config.json does not hold a JSON object")
    arch = arch_from_config(name, cfg)
    if arch is None:
        raise ConfigError("config.json does not give the model's shape (a positive hidden size, layer count, head "
                          "count and vocabulary size)")
    return arch


def _read_config(path: str, name: str) -> Arch:
    try:
        cfg = json.loads(read_file(path, MAX_CONFIG_BYTES).decode("utf-8"))  # no named pipe, no device
    except OSError as exc:
        raise ConfigError(f"{path} is not a readable config.json: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable config.json: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a config.json") from None
    return from_config(name, cfg)


def resolve_config(model: str, *, fetch: bool = False, environ=None) -> tuple[Arch, str]:
    """(Arch, where its config came from) for a preset name, a local folder holding
    config.json, a config.json file, a hub id in the Hugging Face cache, or (``fetch``) a hub
    id whose config.json alone is downloaded. Torch-free."""
    arch = preset(model)
    if arch is not None:
        return arch, f"preset ({arch.source})"
    if os.path.isdir(model):
        path = os.path.join(model, "config.json")
        if not os.path.isfile(path):
            raise ConfigError(f"{model} has no config.json")
        return _read_config(path, os.path.basename(os.path.abspath(model))), path
    if os.path.isfile(model):
        return _read_config(model, os.path.basename(os.path.dirname(os.path.abspath(model))) or model), model
    if model.count("/") != 1 or any(c.isspace() for c in model):
        raise ConfigError(f"{model!r} is not a preset ({', '.join(preset_names())}), a local folder or config.json, "
                          "or a hub id (owner/name)")
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigError(f"huggingface_hub is needed to read {model}'s config: {exc}") from None
    try:
        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id, an unreadable cache
        cached = None
    if isinstance(cached, str):
        return _read_config(cached, model), f"Hugging Face cache ({cached})"
    if not fetch:
        raise ConfigError(f"{model}'s config.json is not in the Hugging Face cache (allow the hub to fetch it)")
    try:
        path = hf_hub_download(model, "config.json")
    except Exception as exc:  # noqa: BLE001 - not found, gated, offline, TLS: say which
        raise ConfigError(f"cannot fetch {model}'s config.json from the hub: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    return _read_config(path, model), f"hub ({model}, config.json only)"


MAX_DIM = 1 << 30  #: no real model has a dimension, layer or vocabulary count this large


def _int(cfg: dict, *keys) -> int | None:
    """The first of ``keys`` that holds a positive, finite, plausible number (a garbage
    config.json may hold Infinity, NaN or 10**30)."""
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)) and 0 < v <= MAX_DIM:  # not NaN, not 1e999 (inf), not absurd
            return int(v)
    return None


def arch_from_config(name: str, config: dict) -> Arch | None:
    """An Arch from a config.json of any common layout: llama-style
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
    if model_type in table(PACKAGE, "presets")["non_gated_mlp"]["types"]:
        inter = inter * 2 // 3  # two projections, counted as three by Arch
    tied = cfg.get("tie_word_embeddings") is True  # absent: counted untied, the larger of the two
    bias = bool(cfg.get("attention_bias") or cfg.get("qkv_bias") or model_type in ("qwen", "qwen2"))
    return Arch(name=name, model_type=model_type, hidden=hidden, inter=inter, layers=layers, heads=heads, kv_heads=kv,
                vocab=vocab, tied=tied, qkv_bias=bias, raw=cfg, head_dim_override=_int(cfg, "head_dim"))
