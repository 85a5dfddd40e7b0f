"""The all-reduce path on the CPU with gloo: real processes of a real interpreter, timed
the way nccl-tests times them; and `check --distributed` on one node, with and without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmdoctor.model import Status
from llmdoctor.probes.allreduce import AllReduceFacts, aggregate, run_local

pytest.importorskip("torch.distributed")


def test_gloo_allreduce_across_two_processes_measures_bus_bandwidth_and_checks_the_sums():
    ar = run_local(sys.executable, dict(os.environ), backend="gloo", world=2, timeout_s=90, sizes=(8, 1 << 20),
                   iters=3)
    assert ar.ran and not ar.error and not ar.timed_out, ar.rank_errors
    assert ar.correct is True and ar.max_error == 0.0
    assert [p.size_bytes for p in ar.points] == [8, 1 << 20]
    big = ar.bandwidth
    assert big.algbw_gbps == pytest.approx((1 << 20) / big.time_s / 1e9)
    assert big.busbw_gbps == pytest.approx(big.algbw_gbps * 2 * (2 - 1) / 2)
    assert ar.latency.size_bytes == 8


def test_the_slowest_rank_sets_the_time_and_busbw_uses_2_n_minus_1_over_n():
    results = [{"points": [{"size_bytes": 1000, "time_s": 1e-6}], "correct": True, "max_error": 0.0},
               {"points": [{"size_bytes": 1000, "time_s": 2e-6}], "correct": True, "max_error": 0.0},
               {"points": [{"size_bytes": 1000, "time_s": "garbage"}], "correct": False, "max_error": 2.0},
               {"points": [{"size_bytes": 1000, "time_s": 1.5e-6}], "correct": True}]
    (p,), correct, worst = aggregate(results, 4)
    assert p.time_s == 2e-6 and p.algbw_gbps == pytest.approx(0.5) and p.busbw_gbps == pytest.approx(0.75)
    assert correct is False and worst == 2.0


def test_a_target_without_torch_reports_the_error_of_each_worker(venv):
    python = venv("no-torch")
    ar = run_local(str(python), dict(os.environ), backend="gloo", world=2, timeout_s=60)
    assert ar.ran and not ar.points and not ar.timed_out
    assert set(ar.rank_errors) == {"cpu:0", "cpu:1"} and "ModuleNotFoundError" in ar.error


def test_a_hanging_interpreter_is_killed_at_the_deadline(tmp_path):
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nsleep 120\n")
    hang.chmod(0o755)
    started = time.monotonic()
    ar = run_local(str(hang), dict(os.environ), backend="gloo", world=2, timeout_s=5)
    assert time.monotonic() - started < 20
    assert ar.timed_out and ar.rank_problems == {"cpu:0": "hung", "cpu:1": "hung"}  # kinds, not sentences
    assert ar.rank_errors == {} and ar.error is None
    from llmdoctor.checks.distributed import allreduce_findings, rank_failures
    from llmdoctor.model import check

    c = check("distributed.allreduce")(lambda facts, c: ())
    (f,) = allreduce_findings(ar, c, where="across 2 GPUs", id_prefix="distributed.allreduce")
    assert f.status is Status.FAIL and f.title.startswith(f"The all-reduce across 2 GPUs over gloo did not finish "
                                                          f"within {ar.timeout_s} s on cpu:0, cpu:1")
    assert rank_failures(ar)["cpu:0"] == f"still running after {ar.timeout_s:.0f} s: killed"


def test_a_worker_that_exits_without_a_result_is_named_with_its_exit_code(tmp_path):
    quits = tmp_path / "python"
    quits.write_text("#!/bin/sh\nexit 3\n")
    quits.chmod(0o755)
    ar = run_local(str(quits), dict(os.environ), backend="gloo", world=2, timeout_s=20)
    assert not ar.timed_out and ar.rank_problems == {"cpu:0": "no-result", "cpu:1": "no-result"}
    assert ar.rank_exit_codes == {"cpu:0": 3, "cpu:1": 3} and ar.rank_errors == {}
    from llmdoctor.checks.distributed import allreduce_findings
    from llmdoctor.model import check

    c = check("distributed.allreduce")(lambda facts, c: ())
    (f,) = allreduce_findings(ar, c, where="across 2 GPUs", id_prefix="distributed.allreduce")
    assert f.id == "distributed.allreduce-error"
    assert f.title == "The all-reduce across 2 GPUs over gloo failed: exited with code 3 without a result"


def test_with_a_cpu_torch_there_is_nothing_to_allreduce_between():
    ar = run_local(sys.executable, dict(os.environ), timeout_s=60)
    assert not ar.ran and (ar.skip_kind, ar.gpu_count, ar.skipped) == ("few-gpus", 0, None)  # a kind, not a sentence
    from llmdoctor.checks.distributed import allreduce_not_run

    assert allreduce_not_run(ar) == "torch sees 0 GPUs: nothing to all-reduce between"


def _without_torch(tmp_path: Path) -> Path:
    """A real environment with llmdoctor and its dependencies but no torch: a venv whose
    site-packages links every package of the test environment except torch's."""
    from conftest import make_venv, site_packages

    python = make_venv(tmp_path / "env")
    site = site_packages(python)
    linked = tmp_path / "linked"
    linked.mkdir()
    for d in [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]:
        for entry in Path(d).iterdir():
            low = entry.name.lower()
            if low.startswith(("torch", "functorch", "triton", "nvidia")) or (linked / entry.name).exists():
                continue
            (linked / entry.name).symlink_to(entry)
    (site / "zz_linked.pth").write_text(f"import site; site.addsitedir({str(linked)!r})\n")
    return python


def test_check_distributed_without_torch_says_so_in_one_line(tmp_path):
    python = _without_torch(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run([str(python), "-m", "llmdoctor", "check", "--distributed"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (f"llmdoctor check --distributed needs torch in the environment that runs it "
                                   f"({python}): {python} -m pip install torch")
    plain = subprocess.run([str(python), "-m", "llmdoctor", "check", "--only", "system.*"], capture_output=True,
                           text=True, timeout=120, env=env)
    assert plain.returncode == 0, plain.stderr  # the plain check never needs torch


def test_check_distributed_on_one_node_without_a_launcher(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--distributed", "--only", "distributed.*"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert "cluster of 1 rank (no launcher)" in done.stdout
    assert "All 1 node reported" in done.stdout
    assert "No all-reduce across nodes: one node: nothing to all-reduce between" in done.stdout
