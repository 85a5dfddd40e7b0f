"""A live all-reduce: across the GPUs of this node (probe ``allreduce``), or, through
``llmdoctor.distributed``, across the nodes of a job. Both give :class:`AllReduceFacts`.

The single-node measurement runs only under ``llmdoctor check --distributed``: it starts
one process per GPU of the target interpreter (``llmdoctor/distributed/allreduce.py``),
joined through a FileStore in a temporary folder over NCCL, and kills them all at the
deadline, so that an all-reduce that hangs (broken PCIe peer-to-peer) becomes a finding.
A plain ``llmdoctor check`` never imports torch for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from llmdoctor.subproc import kill_group

WORKER = Path(__file__).resolve().parent.parent / "distributed" / "allreduce.py"
MARK = "LLMDOCTOR_ALLREDUCE "
LOCAL_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class AllReducePoint:
    size_bytes: int
    time_s: float  #: per operation, on the slowest rank
    algbw_gbps: float  #: size / time, GB/s (1e9 bytes)
    busbw_gbps: float  #: algbw * 2(n-1)/n


@dataclass(frozen=True)
class AllReduceFacts:
    ran: bool = False
    #: why it did not run: "not-asked" (a plain check), "timeout" (asking torch for its GPUs took over
    #: timeout_s), "crash" (that process ended with exit_code), "torch-error" (error: its exception),
    #: "few-gpus" (gpu_count under two), "no-nccl"; across nodes: "one-node", "few-nodes" (fewer than
    #: two reported), "stopped" (the launcher stopped the job first)
    skip_kind: str | None = None
    skipped: str | None = None  #: reports of llmdoctor before skip: their sentence (read only)
    scope: str = "local"  #: "local": the GPUs of one node; "cluster": one rank per node
    backend: str | None = None  #: "nccl" | "gloo"
    world: int = 0
    members: tuple[str, ...] = ()  #: cuda:0, cuda:1 ... or the nodes' names
    points: tuple[AllReducePoint, ...] = ()
    correct: bool | None = None  #: every element equal to n(n+1)/2 on every rank
    max_error: float | None = None
    error: str | None = None  #: the first failure, as the failing rank reported it
    timed_out: bool = False
    #: member -> the error it reported (its exception); in reports of llmdoctor before rank_problems,
    #: also llmdoctor's sentence for a member that gave no result (read only)
    rank_errors: dict[str, str] = field(default_factory=dict)
    #: member -> why it gave no result without an error of its own: "hung" (still running at the
    #: deadline, timeout_s), "no-result" (it exited without one: rank_exit_codes), "silent" (across
    #: nodes: no result reached rank 0 in time)
    rank_problems: dict[str, str] = field(default_factory=dict)
    rank_exit_codes: dict[str, int] = field(default_factory=dict)
    log_tail: str = ""  #: the workers' last stderr lines (NCCL WARN lines)
    timeout_s: float | None = None
    torch_version: str | None = None
    nccl_version: str | None = None
    gpu_count: int | None = None  #: the GPUs torch sees, for "few-gpus"
    exit_code: int | None = None  #: how the process asking torch ended, for "crash"

    @property
    def latency(self) -> AllReducePoint | None:
        return min(self.points, key=lambda p: p.size_bytes) if self.points else None

    @property
    def bandwidth(self) -> AllReducePoint | None:
        return max(self.points, key=lambda p: p.size_bytes) if self.points else None


def bus_factor(n: int) -> float:
    """nccl-tests' all-reduce bus bandwidth factor, 2(n-1)/n."""
    return 2.0 * (n - 1) / n if n > 0 else 0.0


def aggregate(results: Sequence[Mapping], world: int) -> tuple[tuple[AllReducePoint, ...], bool | None, float | None]:
    """Per size, the slowest rank's time (a collective finishes with its last rank), and
    the bandwidths nccl-tests would print for it."""
    by_size: dict[int, list[float]] = {}
    correct: bool | None = None
    worst = None
    for r in results:
        for p in r.get("points") or ():
            try:
                by_size.setdefault(int(p["size_bytes"]), []).append(float(p["time_s"]))
            except (KeyError, TypeError, ValueError):
                continue
        if "correct" in r:
            correct = bool(r["correct"]) if correct is None else correct and bool(r["correct"])
            try:
                err = float(r.get("max_error") or 0.0)
                worst = err if worst is None else max(worst, err)
            except (TypeError, ValueError):
                pass
    points = []
    for size, times in sorted(by_size.items()):
        t = max(times)
        if t <= 0:
            continue
        alg = size / t / 1e9
        points.append(AllReducePoint(size_bytes=size, time_s=t, algbw_gbps=alg, busbw_gbps=alg * bus_factor(world)))
    return tuple(points), correct, worst


def probe_allreduce(ctx) -> AllReduceFacts:
    """What a plain `llmdoctor check` records: nothing measured."""
    return AllReduceFacts(ran=False, skip_kind="not-asked")


def _env(environ: Mapping[str, str]) -> dict:
    env = dict(environ)
    env.setdefault("NCCL_DEBUG", "WARN")  # NCCL's own reason for a failure lands in the log tail
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE"):
        env.pop(name, None)  # the workers form their own group, not the job's
    return env


def _parse(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            try:
                data = json.loads(line[len(MARK):])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _tail(text: str, lines: int = 8) -> str:
    keep = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(keep[-lines:])[-3000:]


def _spawn(argvs: Sequence[Sequence[str]], env: Mapping[str, str], timeout_s: float):
    """Run the processes side by side; at the deadline kill every one still running.
    Returns [(returncode or None, stdout, stderr)] in order."""
    procs = []
    outs = []
    try:
        for argv in argvs:
            out = tempfile.TemporaryFile()
            err = tempfile.TemporaryFile()
            outs.append((out, err))
            procs.append(subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=dict(env), start_new_session=True))
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        result = []
        for proc, (out, err) in zip(procs, outs):
            code = proc.poll()
            if code is None:
                kill_group(proc)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            out.seek(0)
            err.seek(0)
            result.append((code, out.read(1_000_000).decode("utf-8", "replace"),
                           err.read(1_000_000).decode("utf-8", "replace")))
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_group(proc)
        for out, err in outs:
            out.close()
            err.close()


def run_local(python: str, environ: Mapping[str, str], *, timeout_s: float = LOCAL_TIMEOUT_S,
              backend: str | None = None, world: int | None = None, sizes: Sequence[int] | None = None,
              iters: int | None = None) -> AllReduceFacts:
    """All-reduce across this node's GPUs (one process each) with the target interpreter.
    ``backend``/``world`` given (gloo, 2) runs it on the CPU, which is how tests run it."""
    started = time.monotonic()
    env = _env(environ)
    info: dict = {}
    if backend is None:
        ((code, out, err),) = _spawn([[python, str(WORKER), "--probe"]], env, min(60.0, timeout_s))
        info = _parse(out) or {}
        if info.get("error"):
            return AllReduceFacts(ran=False, skip_kind="torch-error", error=str(info["error"]), log_tail=_tail(err),
                                  torch_version=info.get("torch"))
        if not info:
            return AllReduceFacts(ran=False, skip_kind="timeout" if code is None else "crash", exit_code=code,
                                  timeout_s=min(60.0, timeout_s) if code is None else None, log_tail=_tail(err))
        count = int(info.get("device_count") or 0)
        if count < 2:
            return AllReduceFacts(ran=False, skip_kind="few-gpus", gpu_count=count, torch_version=info.get("torch"))
        if not info.get("nccl"):
            return AllReduceFacts(ran=False, skip_kind="no-nccl", torch_version=info.get("torch"))
        backend, world = "nccl", count
    world = int(world or 2)
    members = tuple(f"cuda:{i}" if backend == "nccl" else f"cpu:{i}" for i in range(world))
    left = max(5.0, timeout_s - (time.monotonic() - started))
    with tempfile.TemporaryDirectory(prefix="llmdoctor-allreduce-") as tmp:
        init = "file://" + os.path.join(tmp, "store")
        extra = []
        if sizes:
            extra += ["--sizes", *map(str, sizes)]
        if iters:
            extra += ["--iters", str(iters)]
        argvs = [[python, str(WORKER), "--rank", str(i), "--world", str(world), "--init", init,
                  "--backend", backend, "--device", members[i] if backend == "nccl" else "cpu",
                  "--timeout", str(max(5, int(left))), *extra] for i in range(world)]
        done = _spawn(argvs, env, left)
    results, rank_errors, problems, codes, tails = [], {}, {}, {}, []
    for member, (code, out, err) in zip(members, done):
        data = _parse(out)
        if code is None:
            problems[member] = "hung"
        elif data is None:
            problems[member], codes[member] = "no-result", code
        elif data.get("error"):
            rank_errors[member] = str(data["error"])
        else:
            results.append(data)
        if err.strip():
            tails.append(_tail(err, 4))
    points, correct, worst = aggregate(results, world) if len(results) == world else ((), None, None)
    first = next(iter(rank_errors.values()), None)
    return AllReduceFacts(
        ran=True, scope="local", backend=backend, world=world, members=members, points=points, correct=correct,
        max_error=worst, error=first, timed_out="hung" in problems.values(), rank_errors=rank_errors,
        rank_problems=problems, rank_exit_codes=codes,
        log_tail="\n".join(tails)[-3000:], timeout_s=round(left, 1), torch_version=info.get("torch"),
        nccl_version=info.get("nccl_version"))
