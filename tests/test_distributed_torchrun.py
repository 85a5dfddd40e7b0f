"""`llmdoctor check --distributed` under a real launcher: two or three local "nodes", each a
`torchrun --nnodes N --node-rank K` agent on 127.0.0.1 with its own target environment,
talking over gloo. Every test is bounded: the agents run in their own process groups and
are killed when rank 0 has printed (or at the test's deadline)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import install_fake_dist, make_venv, site_packages

pytest.importorskip("torch.distributed")

ONLY = "python.*,distributed.*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nnodes: int, node_rank: int, port: int, args, env, out: Path):
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", "1",
            "--node-rank", str(node_rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
            "-m", "llmdoctor", "check", "--distributed", "--only", ONLY, *args]
    return subprocess.Popen(argv, stdout=open(out, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        p.wait(timeout=10)


def wait_for(proc, out: Path, done, timeout: float) -> str:
    """Rank 0's output once ``done(text)`` holds (or the agent exits), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        if done(text) or proc.poll() is not None:
            return out.read_text(errors="replace")
        time.sleep(0.3)
    raise AssertionError(f"rank 0 printed no report within {timeout} s:\n{out.read_text(errors='replace')[-3000:]}")


def base_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCCL_", "RANK", "WORLD_SIZE", "MASTER_", "LOCAL_"))}
    env.pop("VIRTUAL_ENV", None)
    return env


def hand_launched(procs: list, tmp_path, port: int, only: str, rank_timeout: int) -> None:
    """Two ranks started with only RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK
    set, as a launcher llmdoctor does not know would start them, their output piped; each added
    to ``procs`` as it starts (so that ``stop`` reaches it whatever fails next)."""
    for rank in (0, 1):
        env = {**base_env(tmp_path), "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": "0",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-m", "llmdoctor", "check", "--distributed", "--only", only,
                                       "--rank-timeout", str(rank_timeout)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env, start_new_session=True))


def target_env(tmp_path: Path, name: str, transformers: str, extra: bool) -> Path:
    """A real venv that is the node's target: its own packages, one version apart."""
    python = make_venv(tmp_path / name)
    site = site_packages(python)
    install_fake_dist(site, "transformers", transformers)
    install_fake_dist(site, "safetensors", "0.4.5")
    if extra:
        install_fake_dist(site, "peft", "0.13.2")
    return python


def plugin_site(tmp_path: Path, name: str, code: str) -> Path:
    """A plugin in the entry point group, as pip installs it: its import is where the rank goes wrong."""
    site = tmp_path / f"{name}-site"
    install_fake_dist(site, name.replace("_", "-"), "0.1", entry_points=f"[llmdoctor.checks]\n{name} = {name}:checks\n")
    (site / f"{name}.py").write_text(code)
    return site


def test_two_torchrun_nodes_with_different_targets_report_the_drift_and_replay(tmp_path):
    a = target_env(tmp_path, "node-a", "4.45.0", extra=True)
    b = target_env(tmp_path, "node-b", "4.44.2", extra=False)
    port = free_port()
    env = base_env(tmp_path)
    out0, out1 = tmp_path / "rank0.json", tmp_path / "rank1.txt"
    procs = [torchrun(2, 0, port, ["--json", "--python", str(a), "--rank-timeout", "60"],
                      {**env, "NCCL_DEBUG": "WARN"}, out0),
             torchrun(2, 1, port, ["--json", "--python", str(b), "--rank-timeout", "60"], env, out1)]
    started = time.monotonic()
    try:
        procs[0].wait(timeout=150)
        procs[1].wait(timeout=30)
    finally:
        stop(procs)
    text = out0.read_text(errors="replace")
    doc = json.loads(text[text.index("{"):text.rindex("}") + 1])
    assert time.monotonic() - started < 150
    assert doc["kind"] == "cluster" and [n["state"] for n in doc["nodes"]] == ["reported", "reported"]
    assert all("target" in n["report"]["facts"] and "node" in n["report"]["facts"] for n in doc["nodes"])
    findings = {f["id"]: f for f in doc["findings"]}
    pk = findings["distributed.drift-packages"]
    assert pk["status"] == "warn"
    assert "peft 0.13.2 on" in pk["title"] and "missing on" in pk["title"]
    assert "transformers 4.45.0 on" in pk["title"] and "4.44.2 on" in pk["title"]
    assert f"{b} -m pip install" in pk["fix"] and " transformers==4.45.0" in pk["fix"]
    env_drift = findings["distributed.env-drift"]
    assert env_drift["title"].startswith("1 variable that changes how ranks communicate differs between nodes: "
                                         "NCCL_DEBUG: WARN on")
    assert "unset on" in env_drift["title"]
    assert findings["distributed.ranks"]["status"] == "ok"
    cross = findings["distributed.cross-node"]
    assert cross["status"] == "ok" and cross["title"].startswith(
        "All-reduce across 2 ranks on 1 node over gloo: bus bandwidth")  # both "nodes" are this host
    cluster = doc["facts"]["cluster"]["value"]
    assert cluster["launcher"] == "torchrun" and cluster["allreduce"]["correct"] is True
    targets = [n["report"]["target"]["python"] for n in doc["nodes"]]
    assert targets == [str(a), str(b)]

    saved = tmp_path / "cluster.json"
    saved.write_text(text[text.index("{"):text.rindex("}") + 1])
    replay = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--replay", str(saved), "--only", ONLY],
                            capture_output=True, text=True, timeout=60, env=env)
    assert replay.returncode == 0, replay.stderr
    assert "replay of a report from" in replay.stdout and "cluster of 2 ranks (torchrun)" in replay.stdout
    assert "Python packages differ between nodes" in replay.stdout and "NCCL_DEBUG: WARN on" in replay.stdout
    again = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--replay", str(saved), "--json", "--only",
                            ONLY], capture_output=True, text=True, timeout=60, env=env)
    redone = json.loads(again.stdout)
    assert redone["kind"] == "cluster" and len(redone["nodes"]) == 2
    assert {f["id"] for f in redone["findings"]} >= {"distributed.drift-packages", "distributed.env-drift"}


def test_a_killed_rank_and_a_hanging_rank_become_findings_naming_their_host_in_bounded_time(tmp_path):
    hang = plugin_site(tmp_path, "hangs_at_import", "import time\ntime.sleep(3600)\n")
    kill = plugin_site(tmp_path, "killed_at_import", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    port = free_port()
    env = base_env(tmp_path)
    outs = [tmp_path / f"node{i}.txt" for i in range(3)]
    timeout = 20
    args = ["--rank-timeout", str(timeout)]
    started = time.monotonic()
    procs = [torchrun(3, 0, port, args, env, outs[0]),
             torchrun(3, 1, port, args, {**env, "PYTHONPATH": str(hang)}, outs[1]),
             torchrun(3, 2, port, args, {**env, "PYTHONPATH": str(kill)}, outs[2])]
    try:
        text = wait_for(procs[0], outs[0], lambda t: re.search(r"problems? in .*\(\d+\.\d+ s\)\s*$", t) is not None,
                        timeout=timeout + 120)
    finally:
        stop(procs)
    elapsed = time.monotonic() - started
    host = socket.gethostname()
    assert f"Rank 1 on {host} joined but had not reported after {timeout} s: it hangs" in text, text
    assert f"Rank 2 on {host} stopped after joining: it crashed or was killed (no heartbeat since " in text, text
    assert "One node reported: nothing to compare" in text
    assert "No all-reduce across nodes: fewer than two nodes reported" in text
    assert elapsed < timeout + 120


def test_a_rank_that_never_joins_is_named_after_the_timeout(tmp_path):
    """Any launcher that sets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (here: none but
    the test), with rank 1 never started."""
    env = {**base_env(tmp_path), "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--distributed", "--only", "distributed.*",
                           "--rank-timeout", "6"], capture_output=True, text=True, timeout=120, env=env)
    assert time.monotonic() - started < 90
    assert done.returncode == 1, done.stderr
    assert "cluster of 2 ranks (env)" in done.stdout
    assert f"Rank 1 (host unknown) never joined within 6 s: it did not start, or cannot reach 127.0.0.1:" \
           f"{env['MASTER_PORT']}" in done.stdout


def test_a_master_port_held_by_another_program_is_one_line_on_every_rank_in_bounded_time(tmp_path):
    """MASTER_PORT taken on rank 0's host by a program that accepts connections and never answers
    (another service, a stale job): rank 0 cannot serve, and rank 1 got no answer and waited
    for ever; both printed c10d's C++ stack dumps."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(16)
    port = squatter.getsockname()[1]
    procs = []
    try:
        hand_launched(procs, tmp_path, port, "distributed.ranks", 6)
        started = time.monotonic()
        outs = [p.communicate(timeout=90) for p in procs]
        assert time.monotonic() - started < 60
    finally:
        stop(procs)
        squatter.close()
    for rank, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert f"rank {rank} cannot" in err and f"127.0.0.1:{port}" in err
    assert "no answer" in outs[1][1]


def test_a_master_addr_that_does_not_resolve_is_one_line_at_once(tmp_path):
    env = {**base_env(tmp_path), "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
           "MASTER_ADDR": "no-such-host.invalid", "MASTER_PORT": str(free_port())}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--distributed", "--rank-timeout", "30"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert time.monotonic() - started < 25  # not the store's 30 s of retries
    assert done.returncode == 2
    assert done.stderr.startswith("llmdoctor check --distributed: MASTER_ADDR='no-such-host.invalid' does not "
                                  "resolve"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_two_ranks_under_no_launcher_end_without_stack_dumps(tmp_path):
    """The "any launcher" path: two processes with only RANK / WORLD_SIZE / MASTER_ADDR /
    MASTER_PORT / LOCAL_RANK set. When rank 0 closes the store it served, rank 1 printed
    c10d's "recvValue failed" warning with a C++ stack dump."""
    port = free_port()
    procs = []
    try:
        hand_launched(procs, tmp_path, port, "distributed.ranks,distributed.cross-node", 30)
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        stop(procs)
    assert procs[0].returncode == 0, outs[0]
    assert "All-reduce across 2 ranks on 1 node over gloo" in outs[0][0]
    for _, err in outs:
        assert "frame #" not in err and "Exception raised from" not in err, err


def test_a_launcher_that_sets_half_the_variables_is_a_usage_error(tmp_path):
    env = {**base_env(tmp_path), "RANK": "1"}
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--distributed"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == ("llmdoctor check --distributed: RANK and WORLD_SIZE must both be set (one of them "
                                   "is missing)")


def test_two_ranks_on_one_node_only_local_rank_0_probes_and_both_all_reduce(tmp_path):
    env = base_env(tmp_path)
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "llmdoctor", "check",
                           "--distributed", "--only", "distributed.*", "--rank-timeout", "60"],
                          capture_output=True, text=True, timeout=150, env=env, start_new_session=True)
    assert done.returncode == 0, done.stdout + done.stderr
    host = socket.gethostname()
    assert f"2 ranks on 1 host: only local rank 0 of each node probes it (1 other rank on {host} only joined)" \
        in done.stdout
    assert "All-reduce across 2 ranks on 1 node over gloo" in done.stdout


def test_a_local_rank_that_exits_makes_torchrun_stop_the_job_and_rank_0_still_reports(tmp_path):
    """Two ranks under one torchrun agent: when local rank 1 exits, torchrun sends SIGTERM to
    rank 0 (and SIGKILL 30 s later). Rank 0 reports what it has within its grace, naming rank 1."""
    early = tmp_path / "early-exit"
    early.mkdir()
    (early / "sitecustomize.py").write_text("import os, time\nif os.environ.get('RANK') == '1':\n"
                                            "    time.sleep(2)\n    os._exit(3)\n")
    env = {**base_env(tmp_path), "PYTHONPATH": str(early)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "llmdoctor", "check",
                           "--distributed", "--only", "distributed.*", "--rank-timeout", "90"],
                          capture_output=True, text=True, timeout=120, env=env, start_new_session=True)
    assert time.monotonic() - started < 60  # the grace after SIGTERM, not the 90 s rank timeout
    assert "Rank 1 (host unknown) had not joined when the launcher stopped the job (" in done.stdout, \
        done.stdout + done.stderr[-3000:]
    assert "it exited or failed before joining" in done.stdout
    assert "No all-reduce across nodes: the launcher stopped the job first" in done.stdout
    assert "exitcode  : 3" in done.stderr  # torchrun's own account: rank 1 exited with 3


def test_a_cluster_report_that_is_damaged_replays_what_it_can(tmp_path):
    doc = {"schema_version": 1, "kind": "cluster", "facts": {"cluster": {"value": {
        "world_size": 2, "launcher": "srun", "master": "n1:29500", "timeout_s": 120, "rank0_host": "n1",
        "ranks": [{"rank": 0, "state": "reported", "host": "n1"}, {"rank": 1, "state": "never-joined"}]}}},
        "nodes": [{"rank": 0, "host": "n1", "state": "reported", "report": {"not": "a report"}}, "garbage",
                  {"rank": 1, "report": None}]}
    saved = tmp_path / "damaged.json"
    saved.write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--replay", str(saved)], capture_output=True,
                          text=True, timeout=60, env=base_env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Rank 1 (host unknown) never joined within 120 s" in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "facts": {"cluster": {"value": {"ranks": "x"}}}}))
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--replay", str(bad)], capture_output=True,
                          text=True, timeout=60, env=base_env(tmp_path))
    assert done.returncode == 2 and "cannot read the cluster facts" in done.stderr and "Traceback" not in done.stderr
