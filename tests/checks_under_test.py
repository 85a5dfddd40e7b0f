"""The built-in checks as shipped: imported from the installed package (llmdoctor.checks),
which is what both `pip install .` and `pip install -e .` provide."""

from llmdoctor.checks import build, flash_attn, nvidia, packages, python, pytorch, stack, system, toolkit  # noqa: F401
