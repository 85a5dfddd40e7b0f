"""The launcher variables, the folding of per-node findings, and the cluster checks, on
facts (the torchrun tests in test_distributed_torchrun.py run the real thing)."""

from __future__ import annotations

import pytest

from llmdoctor.distributed.cluster import ClusterFacts, NodeSummary, RankState, fold, labels
from llmdoctor.distributed.launch import LaunchError, first_slurm_host, rank_info
from llmdoctor.facts import Facts, ProbeResult, dump, load
from llmdoctor.model import Finding, Status
from llmdoctor.probes.allreduce import AllReduceFacts, AllReducePoint

from llmdoctor.checks import distributed as D
from llmdoctor.report.shells import fix_text


# --- launchers ---------------------------------------------------------------------

def test_torchrun_variables():
    info = rank_info({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                      "MASTER_ADDR": "node-a", "MASTER_PORT": "29400", "TORCHELASTIC_RUN_ID": "j1",
                      "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_USE_AGENT_STORE": "True"})
    assert (info.rank, info.world_size, info.launcher, info.master_addr, info.master_port) == (1, 2, "torchrun",
                                                                                             "node-a", 29400)
    assert info.agent_store and info.run_id == "j1-0"


def test_srun_without_master_addr_takes_the_first_host_of_the_node_list():
    info = rank_info({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0", "SLURM_STEP_ID": "0",
                      "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "gpu[03-05,09]", "SLURM_NTASKS_PER_NODE": "1(x4)"})
    assert (info.rank, info.world_size, info.launcher, info.master_addr, info.master_port) == (3, 4, "slurm", "gpu03",
                                                                                             29500)
    assert info.local_world_size is None and not info.agent_store


@pytest.mark.parametrize("nodelist,first", [("gpu[03-05,09],login1", "gpu03"), ("a1,a2", "a1"), ("n[7]", "n7"),
                                            ("", None), ("[", None)])
def test_first_slurm_host(nodelist, first):
    assert first_slurm_host(nodelist) == first


@pytest.mark.parametrize("nodelist,first", [("node[01-03,07]", "node01"), ("node[07,01-03]", "node07"),
                                            ("gpu[1-4]-ib", "gpu1-ib"), ("rack1-n[001-010]-ib0,login", "rack1-n001-ib0"),
                                            ("a[1-2]b[3-4]", "a1b3"), ("login1,gpu[03-05]", "login1")])
def test_first_slurm_host_of_ranges_and_suffixes(nodelist, first):
    """Slurm host lists: zero-padded ranges kept, the first range's first host, a suffix after the
    brackets kept (`scontrol show hostnames 'gpu[1-4]-ib'` starts with gpu1-ib)."""
    assert first_slurm_host(nodelist) == first


@pytest.mark.parametrize("env,launcher,rank,size", [
    ({"PMI_RANK": "2", "PMI_SIZE": "4"}, "mpi", 2, 4),  # MPICH / Intel MPI (Hydra)
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}, "mpi", 1, 3),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_STEP_ID": "0", "PMI_RANK": "5", "PMI_SIZE": "8"}, "slurm", 5, 8),
    ({"RANK": "3", "WORLD_SIZE": "4", "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0",
      "TORCHELASTIC_RUN_ID": "j"}, "torchrun", 3, 4),  # torchrun started by srun: torchrun's rank wins
])
def test_mpi_and_slurm_variables_give_rank_size_and_launcher(env, launcher, rank, size):
    info = rank_info({**env, "MASTER_ADDR": "10.0.0.1"})
    assert (info.launcher, info.rank, info.world_size) == (launcher, rank, size)


def test_mpirun_variables_need_master_addr():
    env = {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}
    with pytest.raises(LaunchError, match="MASTER_ADDR is not set"):
        rank_info(env)
    assert rank_info({**env, "MASTER_ADDR": "10.0.0.1"}).launcher == "mpi"


@pytest.mark.parametrize("env,message", [({"RANK": "0"}, "must both be set"), ({"RANK": "x", "WORLD_SIZE": "2"},
                                                                                "not a number"),
                                         ({"RANK": "2", "WORLD_SIZE": "2"}, "not within"),
                                         ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "0"},
                                          "not a port")])
def test_broken_launcher_variables_are_named(env, message):
    with pytest.raises(LaunchError, match=message):
        rank_info(env)


def test_no_launcher_is_a_world_of_one():
    info = rank_info({})
    assert (info.rank, info.world_size, info.launcher) == (0, 1, "none")


# --- folding -------------------------------------------------------------------------

def f(id, status, title, check=None):
    return Finding(id=id, category=id.split(".")[0], status=status, title=title, check=check or id)


def test_a_finding_shared_by_all_nodes_is_said_once_and_differences_name_their_nodes():
    same = f("system.shm", Status.OK, "/dev/shm 32.0 GiB")
    a = [same, f("python.dependencies", Status.OK, "59 distributions installed, every requirement met")]
    b = [same, f("python.dependency-conflict", Status.FAIL, "tokenizers 0.21.0 is installed, but ...",
                 check="python.dependencies")]
    c = [same, f("python.dependencies", Status.OK, "59 distributions installed, every requirement met")]
    out = fold([("node-a", a), ("node-b", b), ("node-c", c)])
    assert [x.title for x in out] == ["/dev/shm 32.0 GiB",
                                      "[all but node-b] 59 distributions installed, every requirement met",
                                      "[node-b] tokenizers 0.21.0 is installed, but ..."]
    assert out[2].status is Status.FAIL and out[2].detail.endswith("on: node-b")


def test_two_nodes_that_differ_are_both_named():
    out = fold([("a", [f("gpu.presence", Status.OK, "GPU 0: H100")]), ("b", [f("gpu.presence", Status.OK,
                                                                               "GPU 0: A100")])])
    assert [x.title for x in out] == ["[a] GPU 0: H100", "[b] GPU 0: A100"]


def test_a_check_one_node_did_not_run_is_tagged_with_the_node_that_ran_it():
    out = fold([("a", [f("vllm.python", Status.WARN, "vLLM has no wheel")]), ("b", [])])
    assert [x.title for x in out] == ["[a] vLLM has no wheel"]


def test_one_node_with_one_gpu_that_differs_tags_only_that_gpus_finding():
    """gpu.memory says one line per GPU; node-c has another process's memory on GPU 1. The
    lines every node shares are said once, the odd one is tagged in its place (the check's
    whole output used to be repeated for "[all but node-c]" and "[node-c]")."""
    def gpus(extra=()):
        out = [f("gpu.memory-class", Status.INFO, "GPU 0 H100: 80 GB class", check="gpu.memory"),
               f("gpu.memory-class", Status.INFO, "GPU 1 H100: 80 GB class", check="gpu.memory")]
        out += list(extra)
        out.append(f("gpu.memory-class", Status.INFO, "GPU 2 H100: 80 GB class", check="gpu.memory"))
        return out
    busy = f("gpu.memory-in-use", Status.WARN, "GPU 1: 40.0 GiB of 79.6 GiB is already used by other processes",
             check="gpu.memory")
    out = fold([("node-a", gpus()), ("node-b", gpus()), ("node-c", gpus([busy])), ("node-d", gpus())])
    assert [x.title for x in out] == ["GPU 0 H100: 80 GB class", "GPU 1 H100: 80 GB class",
                                      "[node-c] GPU 1: 40.0 GiB of 79.6 GiB is already used by other processes",
                                      "GPU 2 H100: 80 GB class"]
    assert out[2].status is Status.WARN and out[2].detail.endswith("on: node-c")


def test_a_finding_a_node_says_twice_is_kept_twice_when_folded():
    twice = [f("build.x", Status.WARN, "same line", check="build.x")] * 2
    out = fold([("a", twice), ("b", twice[:1])])
    assert [x.title for x in out] == ["same line", "[a] same line"]


def test_labels_add_the_rank_only_where_hosts_repeat():
    assert labels({0: "n1", 1: "n2", 2: "n2", 3: None}) == {0: "n1", 1: "n2#1", 2: "n2#2", 3: "unknown host"}


# --- cluster checks ----------------------------------------------------------------------

def summary(rank, label, **kw):
    base = dict(rank=rank, label=label, host=label, python=f"/envs/{label}/bin/python", python_version="3.11.7",
                driver="550.54.15", torch="2.5.1+cu121", torch_cuda="12.1", nccl="2.21.5",
                packages={"torch": "2.5.1+cu121", "transformers": "4.45.0"}, env={"NCCL_DEBUG": "WARN"})
    base.update(kw)
    return NodeSummary(**base)


def cluster(nodes=(), ranks=None, allreduce=None, world=None):
    ranks = ranks or tuple(RankState(n.rank, "reported", n.host) for n in nodes)
    cf = ClusterFacts(world_size=world or len(ranks), launcher="torchrun", master="node-a:29500", timeout_s=120.0,
                      rank0_host="node-a", ranks=tuple(ranks), nodes=tuple(nodes), allreduce=allreduce)
    return Facts({"cluster": ProbeResult("cluster", cf)})


def run(check, facts):
    return list(check.run(facts))


def test_nodes_that_match_report_no_drift():
    nodes = (summary(0, "node-a"), summary(1, "node-b"))
    (drift,) = run(D.drift_check, cluster(nodes))
    assert drift.status is Status.OK
    (env,) = run(D.env_drift_check, cluster(nodes))
    assert env.status is Status.OK


def test_drift_in_nccl_torch_driver_and_packages_with_fixes_for_the_odd_node_out():
    nodes = (summary(0, "node-a"), summary(1, "node-b"),
             summary(2, "node-c", torch="2.4.0+cu121", nccl="2.20.5", driver="535.104.05",
                     packages={"torch": "2.4.0+cu121", "transformers": "4.40.0", "flash-attn": "2.6.3"}))
    got = {x.id: x for x in run(D.drift_check, cluster(nodes))}
    assert got["distributed.drift-nccl"].status is Status.FAIL
    assert "2.21.5 on node-a, node-b, 2.20.5 on node-c" in got["distributed.drift-nccl"].title
    torch = got["distributed.drift-torch"]
    assert torch.status is Status.WARN
    assert fix_text(torch) == ("on node-c: /envs/node-c/bin/python -m pip install --force-reinstall torch==2.5.1 "
                               "--index-url https://download.pytorch.org/whl/cu121")
    pk = got["distributed.drift-packages"]
    assert pk.title.startswith("3 Python packages differ between nodes: flash-attn missing on node-a, node-b, "
                               "2.6.3 on node-c")
    assert fix_text(pk) == "on node-c: /envs/node-c/bin/python -m pip install transformers==4.45.0"
    assert got["distributed.drift-driver"].status is Status.INFO


def test_the_same_torch_version_built_for_another_cuda_is_replaced_not_left_as_satisfied():
    """2.5.1+cu124 satisfies `torch==2.5.1` (PEP 440 ignores the local label): without
    --force-reinstall pip would say "Requirement already satisfied" and change nothing."""
    nodes = (summary(0, "node-a"), summary(1, "node-b"),
             summary(2, "node-c", torch="2.5.1+cu124", torch_cuda="12.4",
                     packages={"torch": "2.5.1+cu124", "transformers": "4.45.0"}))
    got = {x.id: x for x in run(D.drift_check, cluster(nodes))}
    assert "2.5.1+cu121 on node-a, node-b, 2.5.1+cu124 on node-c" in got["distributed.drift-torch"].title
    assert fix_text(got["distributed.drift-torch"]) == (
        "on node-c: /envs/node-c/bin/python -m pip install --force-reinstall torch==2.5.1 "
        "--index-url https://download.pytorch.org/whl/cu121")
    assert fix_text(got["distributed.drift-packages"]) is None  # the torch finding says how


def test_a_variable_missing_on_one_node_and_a_secret_that_differs():
    nodes = (summary(0, "node-a", env={"NCCL_SOCKET_IFNAME": "ens1", "HF_TOKEN": "***"},
                     env_digests={"HF_TOKEN": "aaaa"}),
             summary(1, "node-b", env={"HF_TOKEN": "***"}, env_digests={"HF_TOKEN": "bbbb"}))
    got = {x.id: x for x in run(D.env_drift_check, cluster(nodes))}
    comm = got["distributed.env-drift"]
    assert comm.status is Status.WARN
    assert comm.title == ("1 variable that changes how ranks communicate differs between nodes: NCCL_SOCKET_IFNAME: "
                          "ens1 on node-a, unset on node-b")
    other = got["distributed.env-drift-other"]
    assert other.title == "1 variable differs between nodes: HF_TOKEN: *** (value 1) on node-a, *** (value 2) on node-b"
    assert "aaaa" not in other.title + other.detail


def test_crashed_hung_and_missing_ranks_are_failures_naming_their_host():
    ranks = (RankState(0, "reported", "node-a"),
             RankState(1, "crashed", "node-b", cause="no-heartbeat", silent_after_s=12.4, stale_s=10.0),
             RankState(2, "hung", "node-c", pid=4242), RankState(3, "never-joined"))
    got = run(D.ranks_check, cluster((summary(0, "node-a"),), ranks))
    titles = [x.title for x in got]
    assert all(x.status is Status.FAIL for x in got) and len(got) == 3
    assert titles[0] == ("Rank 1 on node-b stopped after joining: it crashed or was killed (no heartbeat since 12 s "
                         "after rank 0 started, 10 s of silence)")
    assert titles[1].startswith("Rank 2 on node-c joined but had not reported after 120 s: it hangs")
    assert fix_text(got[1]) == "py-spy dump --pid 4242   (on node-c, to see where it waits)"
    assert titles[2].startswith("Rank 3 (host unknown) never joined within 120 s")


def test_what_was_seen_of_a_rank_is_the_checks_wording_and_old_sentences_still_show():
    new = (RankState(1, "crashed", "node-b", cause="unreadable-report", detail="TypeError: expected an object"),
           RankState(0, "hung", "node-a", cause="probe-unfinished"))
    old = load(RankState, {"rank": 1, "state": "crashed", "host": "node-b",
                           "detail": "no heartbeat since 31 s after rank 0 started, 10 s of silence"})
    assert [D.rank_detail(r) for r in (*new, old)] == [
        "its report is unreadable: TypeError: expected an object",
        "its own probe had not finished when the launcher stopped the job",
        "no heartbeat since 31 s after rank 0 started, 10 s of silence"]
    (f,) = run(D.ranks_check, cluster((summary(0, "node-a"),), (RankState(0, "reported", "node-a"), old)))
    assert f.title.endswith("it crashed or was killed (no heartbeat since 31 s after rank 0 started, 10 s of silence)")


def test_why_no_allreduce_ran_across_nodes_is_the_checks_wording():
    nodes = (summary(0, "a"),)
    one = "one node: nothing to all-reduce between"
    for ar, words in ((AllReduceFacts(scope="cluster", skip_kind="one-node"), one),
                      (AllReduceFacts(scope="cluster", skip_kind="few-nodes"), "fewer than two nodes reported"),
                      (AllReduceFacts(scope="cluster", skip_kind="stopped"), "the launcher stopped the job first"),
                      (load(AllReduceFacts, {"scope": "cluster", "skipped": one}), one)):  # from before skip_kind
        (f,) = run(D.cross_node_check, cluster(nodes, allreduce=ar))
        assert f.status is Status.SKIP and f.title == f"No all-reduce across nodes: {words}"


def test_cross_node_allreduce_over_gloo_and_a_rank_that_hung_in_it():
    pts = (AllReducePoint(8, 1e-3, 8e-6, 8e-6), AllReducePoint(32 << 20, 0.06, 0.56, 0.56))
    ok = AllReduceFacts(ran=True, scope="cluster", backend="gloo", world=2, members=("a", "b"), points=pts,
                        correct=True)
    (f,) = run(D.cross_node_check, cluster((summary(0, "a"), summary(1, "b")), allreduce=ok))
    assert f.status is Status.OK
    assert f.title == ("All-reduce across 2 nodes over gloo: bus bandwidth 0.6 GB/s at 32 MiB (60.0 ms each), "
                       "latency 1.0 ms at 8 B")
    hung = AllReduceFacts(ran=True, scope="cluster", backend="nccl", world=2, members=("a", "b"), timed_out=True,
                          rank_problems={"b": "hung"}, timeout_s=60.0)
    old = load(AllReduceFacts, {**dump(hung), "rank_problems": {}, "error": "did not finish within 60 s",
                                "rank_errors": {"b": "did not finish within 60 s"}})  # a report from before rank_problems
    for ar in (hung, old):
        (f,) = run(D.cross_node_check, cluster((summary(0, "a"), summary(1, "b")), allreduce=ar))
        assert f.status is Status.FAIL and f.title.startswith("The all-reduce across 2 nodes over nccl did not finish "
                                                               "within 60.0 s on b")
        assert f.detail.startswith("did not finish within 60 s")


# --- a replayed cluster report, through every output ------------------------------------

def _cluster_document(nodes) -> dict:
    """A merged report as rank 0 writes it, from recorded node envelopes."""
    import copy
    import json
    from dataclasses import asdict
    from pathlib import Path

    recorded = json.loads((Path(__file__).parent / "fixtures" / "real" / "h100" / "check.json").read_text())
    ranks = [RankState(i, "reported", host) for i, (host, _) in enumerate(nodes)]
    cf = ClusterFacts(world_size=len(nodes), launcher="srun", master="node-a:29500", timeout_s=120.0,
                      rank0_host="node-a", ranks=tuple(ranks))
    envelopes = []
    for host, change in nodes:
        env = copy.deepcopy(recorded)
        env["facts"]["node"] = {"value": {"hostname": host, "environ": {"NCCL_DEBUG": "WARN"}, "launcher": "slurm"}}
        gpu = env["facts"]["gpu"]["value"]
        gpu["gpus"] = [dict(gpu["gpus"][0], index=i, uuid=f"GPU-{host}-{i}") for i in range(4)]
        change(env["facts"])
        envelopes.append(env)
    return {"schema_version": 1, "kind": "cluster", "created": "2026-01-01T00:00:00+00:00",
            "facts": {"cluster": {"value": asdict(cf)}},
            "nodes": [{"rank": r.rank, "host": r.host, "state": "reported", "report": e} for r, e in zip(ranks, envelopes)]}


def test_one_node_of_four_with_another_process_on_a_gpu_and_a_small_shm_is_named_once_in_every_output(tmp_path):
    import json

    from click.testing import CliRunner

    from llmdoctor.cli import cli

    def odd(facts):
        facts["gpu"]["value"]["gpus"][2]["processes"] = [{"pid": 4242, "name": "python", "used_memory_bytes": 40 << 30}]
        facts["system"]["value"]["shm_total_bytes"] = 64 << 20

    doc = _cluster_document([("node-a", lambda f: None), ("node-b", lambda f: None), ("node-c", odd),
                             ("node-d", lambda f: None)])
    saved = tmp_path / "cluster.json"
    saved.write_text(json.dumps(doc))
    runner = CliRunner()
    text = runner.invoke(cli, ["check", "--replay", str(saved), "--only", "gpu,system"]).output
    as_json = runner.invoke(cli, ["check", "--replay", str(saved), "--only", "gpu,system", "--json"]).output
    again = tmp_path / "again.json"
    again.write_text(as_json)
    replayed = runner.invoke(cli, ["check", "--replay", str(again), "--only", "gpu,system"]).output
    markdown = runner.invoke(cli, ["report", "--replay", str(saved), "--only", "gpu,system"]).output
    titles = [f["title"] for f in json.loads(as_json)["findings"]]
    for out in (text, replayed, markdown, "\n".join(titles)):
        assert out.count("GPU 2: 40.0 GiB of 79.6 GiB is already used by other processes") == 1, out
        assert "[node-c] GPU 2: 40.0 GiB" in out
        assert "[node-c] /dev/shm is only 64.0 MiB" in out
        assert out.count("GPU 2: no ECC errors") == 1 and "[all but node-c] GPU" not in out
        assert out.count("GPU 2 NVIDIA H100 80GB HBM3: 80 GB class") == 1
    assert len(json.loads(as_json)["nodes"]) == 4
