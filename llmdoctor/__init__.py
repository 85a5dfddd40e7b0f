"""llmdoctor: an environment doctor for local LLM fine-tuning and inference."""

import os as _os

__version__ = "0.1.0"

# In a source checkout (``python -m llmdoctor`` run from the repository root imports this
# folder, not the installed copy) the built-in checks, fixes and benchmark sit beside the
# package, where pyproject.toml's package-dir maps them from. Let them resolve the same.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "checks")) and _os.path.isfile(_os.path.join(_root, "pyproject.toml")) \
        and _os.path.isdir(_os.path.join(_root, "checks")):
    __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821
del _here, _root
