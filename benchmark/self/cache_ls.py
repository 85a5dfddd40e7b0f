"""Time `llmdoctor cache ls` against `hf cache ls` and `du -sh` on the same generated cache,
in one run.

    python -m llmdoctor.benchmark.self.cache_ls [--repos 2000] [--files 50] [--runs 3] [--json]

The cache (real layout: blobs, relative snapshot symlinks, refs; default 2,000 repos and
100,000 snapshot files) is written to a temporary folder and removed afterwards. Each
command runs as a fresh process; the median wall time and the peak RSS of each are
printed, with each one's ratio to `du -sh`. The commands take turns, round after round, so a
slow moment of the machine weighs on all of them alike. Figures in README.md come from this script.

`llmdoctor cache ls` is timed three ways: as a user runs it again (the listing index that
the warm-up run wrote spares reading the links of unchanged snapshot folders), as its very
first run (an empty index folder each time: every link read, the index written), and with
``--fresh`` (every link read, no index read or written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from llmdoctor.cache.index import RACY_S
from llmdoctor.benchmark.self import compile_llmdoctor
from llmdoctor.benchmark.self.cachegen import make_cache


def run(argv, env) -> tuple[float, int, int]:
    """(seconds, peak RSS in bytes, exit code) of one fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    return elapsed, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=2000)
    ap.add_argument("--files", type=int, default=50, help="snapshot files per repo")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    compile_llmdoctor()
    tmp = tempfile.mkdtemp(prefix="llmdoctor-cache-bench-")
    try:
        root = os.path.join(tmp, "hub")
        started = time.perf_counter()
        counts = make_cache(root, repos=args.repos, files_per_repo=args.files)
        made = time.perf_counter() - started
        env = {**os.environ, "HF_HUB_CACHE": root, "HF_HOME": tmp, "NO_COLOR": "1",
               "LLMDOCTOR_CACHE_DIR": os.path.join(tmp, "llmdoctor")}
        hf = shutil.which("hf", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        ls = [sys.executable, "-m", "llmdoctor", "cache", "ls", "--hub-only"]
        first = lambda: {"LLMDOCTOR_CACHE_DIR": tempfile.mkdtemp(dir=tmp)}  # noqa: E731  (no index yet)
        commands = {
            "llmdoctor cache ls": (ls, None),
            "llmdoctor cache ls --json": (ls + ["--json"], None),
            "llmdoctor cache ls, first run": (ls, first),
            "llmdoctor cache ls --fresh": (ls + ["--fresh"], None),
            "hf cache ls": ([hf, "cache", "ls", "--cache-dir", root], None) if hf else None,
            "du -sh": (["du", "-sh", root], None),
        }
        commands = {name: cmd for name, cmd in commands.items() if cmd is not None}
        if hasattr(os, "sync"):
            os.sync()  # the generator's dirty pages are written back now, not during the first command timed
        time.sleep(max(0.0, RACY_S + 0.5 - (time.perf_counter() - started - made)))  # folders count as settled
        for cmd, more in commands.values():  # warm the page and dentry caches alike for every command
            run(cmd, {**env, **(more() if more else {})})
        samples = {name: [] for name in commands}
        for _ in range(args.runs):  # round-robin, so that a slow moment of the machine hits every command alike
            for name, (cmd, more) in commands.items():
                samples[name].append(run(cmd, {**env, **(more() if more else {})}))
        rows = {}
        for name, got in samples.items():
            rows[name] = {"median_s": round(statistics.median(t for t, _, _ in got), 3),
                          "peak_rss_mib": round(max(r for _, r, _ in got) / 2**20, 1),
                          "exit_codes": sorted({c for _, _, c in got})}
        du = rows["du -sh"]["median_s"]
        for row in rows.values():
            row["vs_du"] = round(row["median_s"] / du, 2) if du else None
        out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
               "cache": {**counts, "generated_s": round(made, 1)}, "runs": args.runs, "results": rows}
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            print(f"cache: {counts['repos']} repos, {counts['files']} snapshot files, {counts['blobs']} blobs "
                  f"(generated in {made:.1f} s); {out['machine']}; median of {args.runs}")
            for name, row in rows.items():
                print(f"  {name:<31} {row['median_s']:>7.3f} s  {row['peak_rss_mib']:>7.1f} MiB  "
                      f"{row['vs_du']:>5.2f}x du  exit {row['exit_codes']}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
