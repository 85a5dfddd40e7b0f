"""The built-in checks as shipped: imported from the installed package (llmdoctor.checks),
which is what both `pip install .` and `pip install -e .` provide."""

from llmdoctor.checks import (  # noqa: F401
    build, cache, failures, flash_attn, jupyter, model, model_fit, network, nvidia, packages, python, pytorch, remote_code, stack, system,
    toolkit)
