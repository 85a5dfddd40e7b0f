"""A stand-in transformers package for the model tests: the few names and base-class
members the remote code in tests/fixtures/remote_code imports and calls, as given
transformers versions have (or no longer have) them, plus CONFIG_MAPPING_NAMES in the
layout of transformers 4.x. Installed into a real venv's site-packages with its dist-info,
so the target probe imports it exactly as it would the real one (without torch: the real
modeling_utils imports torch, whose install would cost minutes)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conftest import install_fake_dist

MODEL_TYPES = ("albert", "bert", "gpt2", "llama", "mistral", "t5")


def install(site: Path, version: str, *, extract_past: bool = True, model_types=MODEL_TYPES,
            extra_requires=(), generate_output: bool = True) -> None:
    """transformers ``version`` in ``site``: GenerationMixin has _extract_past_from_model_output
    only when ``extract_past`` (transformers < 4.49); generation.utils.GenerateOutput only
    when ``generate_output``."""
    install_fake_dist(site, "transformers", version, requires=extra_requires, module="transformers", code=f"""
        __version__ = "{version}"
        from .configuration_utils import PretrainedConfig
        from .generation.utils import GenerationMixin
        from .generation.configuration_utils import GenerationConfig
        from .generation.stopping_criteria import StoppingCriteriaList
        from .modeling_utils import PreTrainedModel
        from .tokenization_utils import PreTrainedTokenizer, AddedToken
    """)
    pkg = site / "transformers"
    files = {
        "configuration_utils.py": "class PretrainedConfig:\n    pass\n",
        "modeling_outputs.py": "class ModelOutput(dict):\n    pass\nclass BaseModelOutputWithPast(ModelOutput):\n"
                               "    pass\nclass CausalLMOutputWithPast(ModelOutput):\n    pass\n"
                               "class SequenceClassifierOutputWithPast(ModelOutput):\n    pass\n",
        "modeling_utils.py": """
            class PreTrainedModel:
                def post_init(self): pass
                def get_head_mask(self, head_mask, n): return head_mask
                def forward(self, *a, **k): pass
                def gradient_checkpointing_enable(self): pass
            """,
        "tokenization_utils_base.py": "class EncodedInput(list):\n    pass\nclass BatchEncoding(dict):\n    pass\n",
        "tokenization_utils.py": """
            class AddedToken(str):
                pass
            class PreTrainedTokenizer:
                def __init__(self, **kwargs):
                    self._add_tokens([], special_tokens=True)
                def _add_tokens(self, new_tokens, special_tokens=False):
                    return len(self.get_vocab())
            """,
        "utils/__init__.py": "from . import logging\nclass PaddingStrategy(str):\n    pass\n",
        "utils/logging.py": "import logging\ndef get_logger(name):\n    return logging.getLogger(name)\n",
        "generation/__init__.py": "from .logits_process import LogitsProcessor\n",
        "generation/configuration_utils.py": "class GenerationConfig:\n    pass\n",
        "generation/stopping_criteria.py": "class StoppingCriteriaList(list):\n    pass\n",
        "generation/logits_process.py": "class LogitsProcessor:\n    pass\nclass LogitsProcessorList(list):\n    pass\n",
        "generation/streamers.py": "class BaseStreamer:\n    pass\n",
        "generation/utils.py": """
            from ..modeling_outputs import ModelOutput
            from .configuration_utils import GenerationConfig
            from .logits_process import LogitsProcessorList
            from .stopping_criteria import StoppingCriteriaList
            class GenerationMixin:
                def generate(self, *a, **k): pass
            """ + ("""
                def _extract_past_from_model_output(self, outputs, standardize_cache_format=False): pass
            """ if extract_past else "") + ("""
            GenerateOutput = ModelOutput
            """ if generate_output else ""),
        "models/__init__.py": "",
        "models/auto/__init__.py": "",
        "models/auto/configuration_auto.py": "from collections import OrderedDict\nCONFIG_MAPPING_NAMES = OrderedDict(\n"
                                             "    [\n" + "".join(f"        ({t!r}, {t.title()!r}),\n" for t in model_types)
                                             + "    ]\n)\n",
    }
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    # modeling_utils must see GenerationMixin (transformers < 4.50 inherits it)
    (pkg / "modeling_utils.py").write_text("from .generation.utils import GenerationMixin\n" +
                                           textwrap.dedent(files["modeling_utils.py"]).replace(
                                               "class PreTrainedModel:", "class PreTrainedModel(GenerationMixin):"))


def remove(site: Path) -> None:
    import shutil

    shutil.rmtree(site / "transformers", ignore_errors=True)
    for info in site.glob("transformers-*.dist-info"):
        shutil.rmtree(info)
