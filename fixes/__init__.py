"""llmdoctor's built-in fixes. They register through the ``llmdoctor.fixes`` entry
point exactly as a third-party plugin does."""

from __future__ import annotations


def builtin_fixes():
    from llmdoctor.fixes import max_jobs, mirror, ssl_trust, torch_wheel

    return (max_jobs.FIX, torch_wheel.FIX, ssl_trust.FIX, mirror.FIX)
