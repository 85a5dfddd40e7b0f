"""Time llmdoctor's start-up and offline check against torch's collect_env, in one run.

    python -m llmdoctor.benchmark.self.startup [--runs 7] [--json]

Each command runs as a fresh process, several times, the commands taking turns round after
round (so that a slow moment of a shared machine weighs on all of them alike); medians and
the ratio to `python -m torch.utils.collect_env` are printed (that is the reference: the tool
people paste into bug reports today). Figures in README.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from llmdoctor.benchmark.self import compile_llmdoctor

COMMANDS = {
    "llmdoctor --help": [sys.executable, "-m", "llmdoctor", "--help"],
    "llmdoctor check --offline": [sys.executable, "-m", "llmdoctor", "check", "--offline"],
    "python -m torch.utils.collect_env": [sys.executable, "-m", "torch.utils.collect_env"],
}
REFERENCE = "python -m torch.utils.collect_env"


def time_once(argv: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - started, done.returncode


def torch_present() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(bool(u.find_spec('torch')))"],
                           capture_output=True, text=True)
    return probe.stdout.strip() == "True"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    compile_llmdoctor()
    commands = dict(COMMANDS)
    if not torch_present():
        del commands[REFERENCE]
        print("torch is not installed here: the collect_env reference is left out "
              "(pip install torch==2.13.0 for the comparison)", file=sys.stderr)
    for cmd in commands.values():
        time_once(cmd)  # warm the page cache once, untimed
    samples: dict[str, list[float]] = {name: [] for name in commands}
    codes: dict[str, int] = {}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            seconds, codes[name] = time_once(cmd)
            samples[name].append(seconds)
    results = {name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "runs": args.runs,
                      "last_exit_code": codes[name]} for name, s in samples.items()}
    ref = results.get(REFERENCE, {}).get("median_s")
    for row in results.values():
        row["ratio_to_collect_env"] = round(row["median_s"] / ref, 3) if ref else None
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "nvidia_driver": os.path.exists("/proc/driver/nvidia/version")}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return 0
    print(f"Python {meta['python']} on {meta['machine']}, {meta['cpus']} CPUs, NVIDIA driver: {meta['nvidia_driver']}, "
          f"{args.runs} runs each")
    print(f"{'command':<36} {'median':>8} {'min':>8} {'max':>8} {'vs collect_env':>15}")
    for name, row in results.items():
        ratio = f"{row['ratio_to_collect_env']:.2f}x" if row["ratio_to_collect_env"] else "-"
        print(f"{name:<36} {row['median_s']:>7.3f}s {row['min_s']:>7.3f}s {row['max_s']:>7.3f}s {ratio:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
