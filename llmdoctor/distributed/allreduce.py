"""An all-reduce timed the way nccl-tests times it, with torch.distributed.

Imports nothing from llmdoctor, so that it also runs as a script in the target
environment (one process per local GPU) for the single-node measurement::

    python allreduce.py --probe
    python allreduce.py --rank 0 --world 2 --init file:///tmp/x/store --backend nccl --device cuda:0

Each size is all-reduced ``warmup`` times, then ``iters`` times back to back between two
synchronisations; the time per operation is the batch's time divided by ``iters``, as
nccl-tests' ``all_reduce_perf`` reports it. Bus bandwidth is nccl-tests' formula:
algbw = S / t and busbw = algbw * 2(n-1)/n for an all-reduce of S bytes over n ranks
(https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md). The result is
checked: every rank contributes rank + 1, so every element must equal n(n+1)/2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

MARK = "LLMDOCTOR_ALLREDUCE "
#: 8 B, nccl-tests' smallest size, for latency; 32 MiB, its default size, for bandwidth
SIZES = (8, 32 * 1024 * 1024)


def bus_factor(n: int) -> float:
    return 2.0 * (n - 1) / n if n > 0 else 0.0


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def measure(dist, torch, device: str, sizes=SIZES, iters: int = 10, warmup: int = 2, group=None) -> dict:
    """Time all-reduces of each size on this rank; returns JSON data."""
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    points = []
    for size in sizes:
        n = max(1, int(size) // 4)
        buf = torch.zeros(n, dtype=torch.float32, device=device)
        for _ in range(warmup):
            dist.all_reduce(buf, group=group)
        _sync(torch, device)
        dist.barrier(group=group)
        start = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf, group=group)
        _sync(torch, device)
        points.append({"size_bytes": n * 4, "time_s": (time.perf_counter() - start) / iters, "iters": iters})
    n = max(1, int(max(sizes)) // 4)
    check = torch.full((n,), float(rank + 1), dtype=torch.float32, device=device)
    dist.all_reduce(check, group=group)
    _sync(torch, device)
    expected = world * (world + 1) / 2
    error = float((check - expected).abs().max().item())
    return {"rank": rank, "world": world, "device": device, "points": points, "correct": error == 0.0,
            "max_error": error}


def _probe() -> dict:
    import torch
    import torch.distributed as dist

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "device_count": 0, "nccl": False,
            "gloo": dist.is_available() and dist.is_gloo_available()}
    try:
        info["device_count"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
        info["nccl"] = dist.is_available() and dist.is_nccl_available()
        if info["nccl"]:
            v = torch.cuda.nccl.version()
            info["nccl_version"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception as exc:  # noqa: BLE001
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def _worker(args) -> dict:
    import torch
    import torch.distributed as dist

    if args.device.startswith("cuda"):
        torch.cuda.set_device(args.device)
    dist.init_process_group(args.backend, init_method=args.init, rank=args.rank, world_size=args.world,
                            timeout=datetime.timedelta(seconds=args.timeout))
    try:
        return measure(dist, torch, args.device, tuple(args.sizes), args.iters, args.warmup)
    finally:
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001
            pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--probe", action="store_true")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--init", default="")
    p.add_argument("--backend", default="gloo")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    try:
        out = _probe() if args.probe else _worker(args)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as data
        out = {"error": f"{type(exc).__name__}: {exc}"[:4000], "rank": args.rank}
    sys.stdout.write(MARK + json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0 if "error" not in out else 1)  # no teardown: a wedged communicator must not hang the exit


if __name__ == "__main__":
    main()
