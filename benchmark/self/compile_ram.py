"""Peak RAM of one compile job of a CUDA-extension build, measured.

``python -m llmdoctor.benchmark.self.compile_ram --python ENV/bin/python [--op CPUAdamBuilder]``
JIT-builds a DeepSpeed op in that environment (DeepSpeed and torch installed there) through
torch.utils.cpp_extension and ninja, exactly as a training script's first import does, with
the C++ compiler wrapped so that every compile unit's peak resident memory (the compiler
driver and its cc1plus, ``getrusage(RUSAGE_CHILDREN).ru_maxrss``) is recorded. MAX_JOBS=1, so
each figure is one job alone; a build runs MAX_JOBS of them at once. The result is what
``llmdoctor/compat/data/compile_memory.json`` cites for DeepSpeed's ops.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

WRAPPER = """\
#!{python}
import json, os, resource, subprocess, sys
real = {real!r}
started = __import__("time").perf_counter()
code = subprocess.call([real] + sys.argv[1:])
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
if "-c" in sys.argv[1:]:
    unit = next((a for a in sys.argv[1:] if a.endswith((".cpp", ".cc", ".cu", ".c"))), "?")
    with open({log!r}, "a") as fh:
        fh.write(json.dumps({{"unit": os.path.basename(unit), "peak_rss_bytes": rss,
                             "seconds": __import__("time").perf_counter() - started, "exit": code}}) + "\\n")
sys.exit(code)
"""

BUILD = """\
import os
from deepspeed.accelerator import get_accelerator
builder = get_accelerator().create_op_builder({op!r})
builder.load(verbose=False)
print("built", {op!r}, "with", get_accelerator().device_name())
"""


def measure(python: str, op: str = "CPUAdamBuilder", timeout: float = 1800) -> dict:
    real = shutil.which(os.environ.get("CXX", "c++"))
    if real is None:
        raise SystemExit("no C++ compiler (c++) on PATH")
    with tempfile.TemporaryDirectory(prefix="llmdoctor-compile-ram-") as tmp:
        log = os.path.join(tmp, "units.jsonl")
        wrapper = os.path.join(tmp, "c++")
        with open(wrapper, "w") as fh:
            fh.write(WRAPPER.format(python=sys.executable, real=real, log=log))
        os.chmod(wrapper, 0o755)
        env = {**os.environ, "CXX": wrapper, "MAX_JOBS": "1", "TORCH_EXTENSIONS_DIR": os.path.join(tmp, "ext")}
        started = time.perf_counter()
        done = subprocess.run([python, "-c", textwrap.dedent(BUILD.format(op=op))], env=env, capture_output=True,
                              text=True, timeout=timeout)
        units = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
    return {"op": op, "python": python, "compiler": real, "returncode": done.returncode,
            "seconds": round(time.perf_counter() - started, 1), "units": units,
            "max_peak_rss_bytes": max((u["peak_rss_bytes"] for u in units), default=None),
            "stderr_tail": done.stderr[-2000:] if done.returncode else ""}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of an environment with deepspeed")
    parser.add_argument("--op", default="CPUAdamBuilder", help="DeepSpeed op builder class name")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.python, args.op)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for u in result["units"]:
            print(f"{u['unit']:<40} {u['peak_rss_bytes'] / 2**30:6.2f} GiB  {u['seconds']:6.1f} s")
        peak = result["max_peak_rss_bytes"]
        print(f"{result['op']}: {len(result['units'])} compile units, peak {peak / 2**30:.2f} GiB per job"
              if peak else f"no compile unit recorded (exit {result['returncode']}):\n{result['stderr_tail']}")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
