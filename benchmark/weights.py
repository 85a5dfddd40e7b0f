"""Where the bench's weights come from, in order: a local folder, the Hugging Face cache
(offline), a download (only with --download), else random weights built from the preset's
config. Random weights are written as a real checkpoint (config.json + safetensors) and
loaded through from_pretrained, so quantization takes the same path as real weights."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from llmdoctor.benchmark import presets

RANDOM_MARK = "llmdoctor-random.json"
ALLOW = ["*.json", "*.safetensors", "*.model", "*.txt"]


class WeightsError(RuntimeError):
    """The model cannot be resolved; the message says what to pass instead."""


@dataclass(frozen=True)
class Weights:
    path: str
    origin: str  #: "local folder" | "Hugging Face cache" | "downloaded" | "random, normal(0, 0.02)"
    arch: presets.Arch

    @property
    def random(self) -> bool:
        return self.origin.startswith("random")


def _arch_of(path: str, name: str) -> presets.Arch:
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            return presets.from_config(name, json.load(fh))
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"{path} has no readable config.json of a decoder model: {exc}") from None


def resolve(model: str, download: bool, cache_dir: str, device: str, dtype: str, say=print) -> Weights:
    if os.path.isdir(model):
        return Weights(os.path.abspath(model), "local folder", _arch_of(model, os.path.basename(model.rstrip("/"))))
    arch = presets.preset(model)
    hub_id = arch.hub_id if arch else (model if "/" in model else None)
    if hub_id:
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(hub_id, local_files_only=True, allow_patterns=ALLOW)
            if any(f.endswith(".safetensors") for f in os.listdir(path)):
                return Weights(path, "Hugging Face cache", arch or _arch_of(path, hub_id))
        except Exception:  # not cached (or partly): fall through
            pass
        if download:
            say(f"Downloading {hub_id} (safetensors only)...")
            path = snapshot_download(hub_id, allow_patterns=ALLOW)
            return Weights(path, "downloaded", arch or _arch_of(path, hub_id))
    if arch is None:
        raise WeightsError(f"{model!r} is not a preset ({', '.join(presets.preset_names())}), a local folder, or a "
                           "model in the Hugging Face cache; pass --download to fetch it")
    folder = os.path.join(cache_dir, "random-weights", f"{arch.name}-{dtype}")
    if not os.path.exists(os.path.join(folder, RANDOM_MARK)):
        try:  # before building: a folder that cannot be made is said at once, not after the model is built
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise WeightsError(_unwritable(folder, exc)) from None
        say(f"Building {arch.name} with random weights on {device} (no real weights here; pass --download)...")
        try:
            build_random(arch, folder, device, dtype)
        except OSError as exc:  # a full or read-only disk while the checkpoint is written
            raise WeightsError(_unwritable(folder, exc)) from None
    return Weights(folder, "random, normal(0, 0.02)", arch)


def _unwritable(folder: str, exc: OSError) -> str:
    return (f"cannot write the random weights under {folder}: {exc.strerror or exc}; set LLMDOCTOR_CACHE_DIR to "
            "a writable folder with room for the checkpoint (or pass --download, or a local folder, for real weights)")


def build_random(arch: presets.Arch, folder: str, device: str, dtype: str) -> None:
    """Construct on the meta device, materialise directly on ``device`` (never a CPU copy of a
    GPU model), fill normal(0, 0.02) (norms 1), and save a safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    cfg = arch.transformers_config(dtype)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
    model.to_empty(device=device)
    model.tie_weights()  # to_empty gives tied parameters (Qwen2.5 < 7B: embeddings = lm_head) separate storage
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=gen)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    with open(os.path.join(folder, RANDOM_MARK), "w", encoding="utf-8") as fh:
        json.dump({"preset": arch.name, "dtype": dtype, "init": "normal(0, 0.02), norms 1, biases 0"}, fh)
    del model
