"""llmdoctor's own speed benchmarks (start-up, `cache ls`), each timed in the same run as
the reference it is compared to."""

from __future__ import annotations

import compileall
import importlib
import os

PACKAGES = ("llmdoctor", "llmdoctor.checks", "llmdoctor.fixes", "llmdoctor.benchmark")


def compile_llmdoctor() -> None:
    """Write llmdoctor's bytecode, as pip does when it installs a wheel. A development
    install never does where PYTHONDONTWRITEBYTECODE is set, and every timed run would then
    compile each edited module again, a cost no installed copy pays."""
    for name in PACKAGES:
        for folder in importlib.import_module(name).__path__:
            if os.path.isfile(os.path.join(folder, "__init__.py")):  # not the editable finder's extra entries
                compileall.compile_dir(folder, quiet=2)
