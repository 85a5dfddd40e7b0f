"""GPU topology, peer-to-peer and NCCL variables, judged from NVML answers recorded in the
shape ``raw_nvml`` returns them (tests/fixtures/multigpu/*.json).

There is no GPU where these tests run. Each fixture says where its values come from
(its "source" and "provenance" keys): the names, bus ids, topology levels, NUMA nodes and
P2P statuses are the ones public `nvidia-smi topo -m`, `topo -p2p rw` and NCCL INFO
outputs show for those machines; values those outputs do not show are marked
"constructed" or "derived" there. `tests/fixtures/real/record.sh` records the same shape
(topology_raw.json) on a machine with a GPU.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from llmdoctor.facts import Facts, ProbeResult, dump, load
from llmdoctor.model import Status
from llmdoctor.probes.allreduce import AllReduceFacts, AllReducePoint, bus_factor
from llmdoctor.probes.node import NodeFacts, parse_nccl_conf, read_nccl_conf, relevant_environ
from llmdoctor.probes.topology import IbPort, Nic, TopologyFacts, facts_from_raw, raw_nvml, read_ib, read_nics

from llmdoctor.checks import distributed as D
from llmdoctor.report.shells import fix_text

FIXTURES = Path(__file__).parent / "fixtures" / "multigpu"
ETH = Nic("eth0", "up", 25000, "ether", False, ("10.0.0.5",))
LO = Nic("lo", "unknown", None, "loopback", True, ("127.0.0.1",))


def recorded(name: str, visible=None, nics=(ETH, LO), ib=()) -> TopologyFacts:
    return facts_from_raw(json.loads((FIXTURES / f"{name}.json").read_text()), nics, ib, visible)


def node(launcher="torchrun", conf=None, **env) -> NodeFacts:
    return NodeFacts(hostname="gpu-01", environ=dict(env), nccl_conf=conf or {}, launcher=launcher)


def facts(topo, nd=None, ar=None) -> Facts:
    return Facts({"topology": ProbeResult("topology", topo), "node": ProbeResult("node", nd or node()),
                  "allreduce": ProbeResult("allreduce", ar or AllReduceFacts(skipped="not run"))})


def run(check, f):
    return list(check.run(f))


def by_id(findings):
    return {x.id: x for x in findings}


# --- the consumer-GPU rule (accelerate's) ------------------------------------

def test_two_rtx_4090_on_a_driver_before_550_40_07_without_nccl_variables_fail_with_accelerates_fix():
    got = by_id(run(D.p2p_check, facts(recorded("rtx4090x2_driver535"))))
    f = got["distributed.p2p-consumer-gpu"]
    assert f.status is Status.FAIL
    assert "RTX 4090 with driver 535.104.05 (< 550.40.07)" in f.title
    assert fix_text(f).startswith("export NCCL_P2P_DISABLE=1 NCCL_IB_DISABLE=1")
    assert "accelerate" in f.docs and "accelerate launch" in f.detail
    assert "distributed.p2p" not in got  # NVML's "P2P OK" is exactly what hangs here: not said as good news


def test_the_same_gpus_with_both_variables_set_as_accelerate_sets_them_pass():
    f = facts(recorded("rtx4090x2_driver535"), node(NCCL_P2P_DISABLE="1", NCCL_IB_DISABLE="1"))
    (rule,) = [x for x in run(D.p2p_check, f) if x.id == "distributed.p2p-consumer-gpu"]
    assert rule.status is Status.OK


def test_the_variables_set_in_nccl_conf_count_as_set():
    f = facts(recorded("rtx4090x2_driver535"), node(conf={"NCCL_P2P_DISABLE": "1", "NCCL_IB_DISABLE": "1"}))
    (rule,) = [x for x in run(D.p2p_check, f) if x.id == "distributed.p2p-consumer-gpu"]
    assert rule.status is Status.OK


def test_one_rtx_4090_is_not_judged_between_gpus():
    (f,) = run(D.p2p_check, facts(recorded("rtx4090x2_driver535", visible={0})))
    assert f.status is Status.SKIP and "One GPU visible" in f.title


def test_rtx_4090s_on_a_new_driver_with_p2p_disable_left_set_are_told_it_is_no_longer_needed():
    got = by_id(run(D.p2p_check, facts(recorded("rtx4090x8_two_sockets"), node(NCCL_P2P_DISABLE="1"))))
    assert got["distributed.p2p-consumer-gpu"].status is Status.INFO
    assert "accelerate stops setting it from driver 550.40.07" in got["distributed.p2p-consumer-gpu"].title
    unavailable = got["distributed.p2p-unavailable"]
    assert unavailable.status is Status.INFO and "No P2P between 28 of 28 GPU pairs" in unavailable.title
    assert "GPU_NOT_SUPPORTED" in unavailable.detail
    assert "distributed.p2p-disabled" not in got  # nothing works to be turned off


def test_rtx_5090s_reporting_gpu_not_supported_copy_through_host_memory():
    got = by_id(run(D.p2p_check, facts(recorded("rtx5090x2_gns"))))
    assert "distributed.p2p-consumer-gpu" not in got  # RTX 50xx is not in accelerate's set
    assert got["distributed.p2p-unavailable"].title.startswith("No P2P between 1 of 1 GPU pairs (0-1)")


# --- NVLink, NUMA, and turning P2P off where it works --------------------------

def test_eight_h100_on_nvswitch_topology_matrix_numa_and_link_peak():
    got = run(D.topology_check, facts(recorded("h100x8_nvswitch")))
    topo, numa = got
    assert topo.title == ("8 GPUs: every pair NVLink (18 links, NVSwitch); slowest link NVLink 4 x18, "
                          "450.0 GB/s each way")
    assert topo.detail.splitlines()[1].split() == ["GPU0", "X"] + ["NV18"] * 7 + ["0"]
    assert numa.id == "distributed.numa" and "GPUs 0-3 on NUMA node 0, GPUs 4-7 on NUMA node 1" in numa.title
    assert "NVLink joins them all" in numa.title


def test_nccl_p2p_disable_on_an_nvlink_machine_warns_that_it_turns_nvlink_off():
    got = by_id(run(D.p2p_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_DISABLE="1"))))
    f = got["distributed.p2p-disabled"]
    assert f.status is Status.WARN and "turns off the NVLink peer-to-peer" in f.title
    assert fix_text(f) == "unset NCCL_P2P_DISABLE" and "the environment" in f.title


def test_two_sockets_of_rtx_4090_count_pairs_per_path():
    topo, numa = run(D.topology_check, facts(recorded("rtx4090x8_two_sockets")))
    assert "16 of 28 pairs across NUMA nodes over the CPU interconnect (SYS)" in topo.title
    assert "12 of 28 pairs through a PCIe host bridge, the CPU (PHB)" in topo.title
    assert "PCIe 4.0 x16 (GPU 0), 31.5 GB/s each way" in topo.title
    assert "crosses the CPU interconnect" in numa.title


def test_cuda_visible_devices_limits_the_judged_pairs_to_the_visible_gpus():
    (topo,) = run(D.topology_check, facts(recorded("rtx4090x8_two_sockets", visible={0, 1, 2, 3})))
    assert topo.title.startswith("4 GPUs: every pair through a PCIe host bridge")


# --- NCCL variables against the topology ---------------------------------------------

def test_nccl_p2p_level_pix_keeps_p2p_off_host_bridge_pairs():
    f = facts(recorded("rtx4090x2_driver535"), node(NCCL_P2P_DISABLE="1", NCCL_IB_DISABLE="1", NCCL_P2P_LEVEL="PIX"))
    (level,) = run(D.nccl_env_check, f)
    assert level.status is Status.INFO and "between 1 of 1 GPU pairs" in level.title


def test_nccl_p2p_level_where_p2p_is_unsupported_anyway_cuts_nothing():
    (level,) = run(D.nccl_env_check, facts(recorded("rtx5090x2_gns"), node(NCCL_P2P_LEVEL="LOC")))
    assert level.status is Status.OK


def test_nccl_p2p_level_nonsense_and_legacy_numbers():
    (bad,) = run(D.nccl_env_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_LEVEL="NVLINK")))
    assert bad.status is Status.WARN and "not a level NCCL knows" in bad.title
    (legacy,) = run(D.nccl_env_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_LEVEL="5")))
    assert legacy.status is Status.INFO and "legacy number" in legacy.title
    (nvl_cut,) = run(D.nccl_env_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_LEVEL="LOC")))
    assert "between 28 of 28 GPU pairs" in nvl_cut.title


def test_nccl_p2p_level_in_lower_case_is_ignored_by_nccl():
    """NCCL compares the names with strcmp (src/graph/paths.cc, ncclGetLevel): 'pxb' is no level
    and NCCL keeps its default; it was judged as PXB."""
    (f,) = run(D.nccl_env_check, facts(recorded("rtx4090x2_driver535"), node(NCCL_P2P_LEVEL="pxb")))
    assert f.status is Status.WARN and "NCCL_P2P_LEVEL='pxb'" in f.title and "case" in f.title
    assert fix_text(f) == "export NCCL_P2P_LEVEL=PXB"


@pytest.mark.parametrize("value", ["7", "10", "4"])
def test_nccl_p2p_level_numbers_above_4_are_read_as_sys(value):
    """ncclGetLevel reads any leading number and clamps it to its table: 7 is SYS, not an unknown level."""
    (f,) = run(D.nccl_env_check, facts(recorded("rtx4090x8_two_sockets"), node(NCCL_P2P_LEVEL=value)))
    assert f.status is Status.INFO and "legacy number" in f.title and "allows P2P on every path" in f.title


def test_nccl_p2p_level_nvb_of_newer_nccl_is_a_level():
    (f,) = run(D.nccl_env_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_LEVEL="NVB")))
    assert f.status is Status.OK and "allows P2P on every path" in f.title


def test_nccl_p2p_disable_true_is_not_the_number_nccl_reads():
    """NCCL reads NCCL_P2P_DISABLE as a number and disables P2P only at 1: 'true' leaves it on."""
    got = by_id(run(D.p2p_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_DISABLE="true"))))
    assert "distributed.p2p-disabled" not in got
    (f,) = [x for x in run(D.nccl_env_check, facts(recorded("h100x8_nvswitch"), node(NCCL_P2P_DISABLE="true")))
            if x.id == "distributed.nccl-number"]
    assert f.status is Status.WARN and "NCCL_P2P_DISABLE='true'" in f.title and "P2P stays on" in f.title
    assert fix_text(f) == "export NCCL_P2P_DISABLE=1   (if P2P is meant to be off)"


def test_nccl_ib_disable_yes_with_an_active_port_leaves_infiniband_on():
    t = recorded("h100x8_nvswitch", ib=(HDR,))
    got = by_id(run(D.network_check, facts(t, node(NCCL_IB_DISABLE="yes"))))
    assert "distributed.ib-disabled" not in got and got["distributed.ib"].status is Status.OK
    (f,) = [x for x in run(D.nccl_env_check, facts(t, node(NCCL_IB_DISABLE="yes"))) if x.id == "distributed.nccl-number"]
    assert "NCCL_IB_DISABLE='yes'" in f.title and "InfiniBand/RoCE stays on" in f.title


@pytest.mark.parametrize("value,status", [("info", Status.INFO), ("WARN", Status.OK), ("verbose", Status.WARN)])
def test_nccl_debug_values(value, status):
    (f,) = run(D.nccl_env_check, facts(recorded("h100x8_nvswitch"), node(NCCL_DEBUG=value)))
    assert f.status is status


# --- the network: socket interfaces, InfiniBand/RoCE -----------------------------------

@pytest.mark.parametrize("value,expected", [
    ("eth", ["eth0", "eth1"]), ("=eth0", ["eth0"]), ("^docker", ["eth0", "eth1", "ib0", "lo"]),
    ("^=eth0", ["docker0", "eth1", "ib0", "lo"]), ("ib,eth1", ["eth1", "ib0"]), ("=eth", []),
])
def test_nccl_socket_ifname_syntax(value, expected):
    assert D.ifname_matches(value, ["docker0", "eth0", "eth1", "ib0", "lo"]) == expected


def test_socket_ifname_naming_no_interface_fails_with_the_interfaces_there():
    got = by_id(run(D.network_check, facts(recorded("h100x8_nvswitch"), node(NCCL_SOCKET_IFNAME="ens1f0"))))
    f = got["distributed.socket-ifname"]
    assert f.status is Status.FAIL and "matches no network interface" in f.title
    assert fix_text(f) == "export NCCL_SOCKET_IFNAME==eth0" and "eth0 (up, 10.0.0.5)" in f.detail


def test_socket_ifname_selecting_only_loopback_warns_and_a_down_interface_fails():
    lo_only = by_id(run(D.network_check, facts(recorded("h100x8_nvswitch"), node(NCCL_SOCKET_IFNAME="lo"))))
    assert lo_only["distributed.socket-ifname"].status is Status.WARN
    down = replace(ETH, name="eth1", operstate="down", addresses=())
    t = recorded("h100x8_nvswitch", nics=(ETH, down, LO))
    got = by_id(run(D.network_check, facts(t, node(NCCL_SOCKET_IFNAME="=eth1"))))
    assert got["distributed.socket-ifname"].status is Status.FAIL and "down or without an address" in \
        got["distributed.socket-ifname"].title


def test_gloo_socket_ifname_takes_exact_names():
    ok = by_id(run(D.network_check, facts(recorded("h100x8_nvswitch"), node(GLOO_SOCKET_IFNAME="eth0"))))
    assert ok["distributed.socket-ifname"].status is Status.OK
    bad = by_id(run(D.network_check, facts(recorded("h100x8_nvswitch"), node(GLOO_SOCKET_IFNAME="eth"))))
    assert bad["distributed.socket-ifname"].status is Status.FAIL


HDR = IbPort("mlx5_0", 1, "ACTIVE", "LinkUp", "200 Gb/sec (4X HDR)", 200.0, "InfiniBand")


def test_ib_disabled_while_a_port_is_active_warns():
    t = recorded("h100x8_nvswitch", ib=(HDR,))
    got = by_id(run(D.network_check, facts(t, node(NCCL_IB_DISABLE="1"))))
    f = got["distributed.ib-disabled"]
    assert f.status is Status.WARN and "1 InfiniBand port is active (200 Gb/s)" in f.title


def test_ib_ports_all_down_warn_and_a_wrong_hca_fails():
    down = replace(HDR, state="DOWN", phys_state="Polling")
    got = by_id(run(D.network_check, facts(recorded("h100x8_nvswitch", ib=(down,)), node(NCCL_IB_HCA="mlx4"))))
    assert got["distributed.ib-down"].status is Status.WARN and "mlx5_0:1 DOWN/Polling" in got["distributed.ib-down"].title
    assert got["distributed.ib-hca"].status is Status.FAIL and fix_text(got["distributed.ib-hca"]) == "export NCCL_IB_HCA=mlx5_0"
    ok = by_id(run(D.network_check, facts(recorded("h100x8_nvswitch", ib=(HDR,)), node(NCCL_IB_HCA="mlx5"))))
    assert ok["distributed.ib"].status is Status.OK and "mlx5_0:1 IB 200 Gb/s" in ok["distributed.ib"].title


def test_no_gpu_and_no_launcher_skips_the_network():
    none = TopologyFacts(source="none", reason="NVML: library not found", nics=(ETH, LO))
    (f,) = run(D.network_check, facts(none, node(launcher="none")))
    assert f.status is Status.SKIP


# --- the single-node all-reduce, judged ---------------------------------------------------

def local(**kw) -> AllReduceFacts:
    base = AllReduceFacts(ran=True, backend="nccl", world=2, members=("cuda:0", "cuda:1"), correct=True,
                          points=(AllReducePoint(8, 30e-6, 8 / 30e-6 / 1e9, 8 / 30e-6 / 1e9),
                                  AllReducePoint(32 << 20, 2.0e-3, (32 << 20) / 2e-3 / 1e9,
                                                 (32 << 20) / 2e-3 / 1e9)), timeout_s=88.0)
    return replace(base, **kw)


def test_an_allreduce_at_most_of_pcie_bandwidth_is_fine():
    (f,) = run(D.allreduce_check, facts(recorded("rtx5090x2_gns"), ar=local()))
    assert f.status is Status.OK
    assert f.title.startswith("All-reduce across 2 GPUs over nccl: bus bandwidth 16.8 GB/s at 32 MiB (2.0 ms each), "
                              "latency 30 µs at 8 B; 27% of the 63.0 GB/s")


def test_an_allreduce_far_below_the_links_warns():
    slow = local(points=(AllReducePoint(32 << 20, 0.05, 0.67, 0.67),))
    (f,) = run(D.allreduce_check, facts(recorded("h100x8_nvswitch"), ar=replace(slow, world=8)))
    assert f.status is Status.WARN and "0% of the 450.0 GB/s" in f.title


def test_a_hanging_allreduce_on_rtx_4090s_with_an_old_driver_names_the_p2p_hang():
    hung = local(points=(), correct=None, timed_out=True, timeout_s=88.0,
                 rank_problems={"cuda:0": "hung", "cuda:1": "hung"})
    (f,) = run(D.allreduce_check, facts(recorded("rtx4090x2_driver535"), ar=hung))
    assert f.status is Status.FAIL and f.id == "distributed.allreduce-hang"
    assert "did not finish within 88.0 s on cuda:0, cuda:1: the known hang of PCIe P2P" in f.title
    assert f.detail.startswith("still running after 88 s: killed\nstill running after 88 s: killed")
    assert fix_text(f) == "export NCCL_P2P_DISABLE=1"


def test_a_hanging_allreduce_in_a_report_from_before_rank_problems_still_names_the_ranks():
    old = dump(local(points=(), correct=None, timed_out=True, timeout_s=88.0))
    old.pop("rank_problems"), old.pop("rank_exit_codes")
    old.update(error="still running after 88 s: killed", rank_errors={"cuda:0": "still running after 88 s: killed",
                                                                       "cuda:1": "still running after 88 s: killed"})
    (f,) = run(D.allreduce_check, facts(recorded("rtx4090x2_driver535"), ar=load(AllReduceFacts, old)))
    assert f.status is Status.FAIL and f.id == "distributed.allreduce-hang"
    assert "did not finish within 88.0 s on cuda:0, cuda:1: the known hang of PCIe P2P" in f.title


def test_an_allreduce_failing_on_dev_shm_says_so():
    shm = local(points=(), correct=None, error="DistBackendError: NCCL error: unhandled system error",
                log_tail="NCCL WARN Error while creating shared memory segment /dev/shm/nccl-X (size 9637888)")
    (f,) = run(D.allreduce_check, facts(recorded("rtx5090x2_gns"), ar=shm))
    assert f.status is Status.FAIL and "/dev/shm is too small" in f.title and "--shm-size" in fix_text(f)


def test_wrong_sums_are_a_failure():
    (f,) = run(D.allreduce_check, facts(recorded("rtx4090x2_driver535"), ar=local(correct=False, max_error=3.0)))
    assert f.status is Status.FAIL and "wrong values" in f.title


def test_a_plain_check_says_the_allreduce_needs_distributed():
    from llmdoctor.probes.allreduce import probe_allreduce

    ar = probe_allreduce(None)
    assert (ar.skip_kind, ar.skipped) == ("not-asked", None)
    (f,) = run(D.allreduce_check, facts(recorded("rtx5090x2_gns"), ar=ar))
    assert f.status is Status.SKIP
    assert f.title == ("Live all-reduce across GPUs not run: the live all-reduce runs with "
                       "`llmdoctor check --distributed`")


def test_an_allreduce_that_cannot_ask_torch_for_its_gpus_records_a_kind_the_check_words(tmp_path, venv):
    """Three real target interpreters: one that dies (its exit code), one that hangs (the seconds
    it had), one without torch (torch's own error). The facts hold kinds and raw data only."""
    import os

    from llmdoctor.probes.allreduce import run_local

    dies, hang = tmp_path / "dies", tmp_path / "hang"
    dies.write_text("#!/bin/sh\nexit 3\n")
    hang.write_text("#!/bin/sh\nsleep 60\n")
    for script in (dies, hang):
        script.chmod(0o755)
    crash = run_local(str(dies), dict(os.environ), timeout_s=20)
    assert (crash.ran, crash.skip_kind, crash.exit_code, crash.skipped) == (False, "crash", 3, None)
    hung = run_local(str(hang), dict(os.environ), timeout_s=2)
    assert (hung.skip_kind, hung.timeout_s, hung.skipped) == ("timeout", 2.0, None)
    no_torch = run_local(str(venv()), dict(os.environ), timeout_s=60)
    assert no_torch.skip_kind == "torch-error" and no_torch.error.startswith("ModuleNotFoundError: ")
    asking = "Live all-reduce across GPUs not run: torch could not be asked for its GPUs: "
    titles = [run(D.allreduce_check, facts(recorded("rtx5090x2_gns"), ar=ar))[0].title
              for ar in (crash, hung, no_torch)]
    assert titles == [asking + "exited with code 3", asking + "no answer within 2 s", asking + no_torch.error]


@pytest.mark.parametrize("ar, words", [
    (AllReduceFacts(skip_kind="few-gpus", gpu_count=1), "torch sees 1 GPU: nothing to all-reduce between"),
    (AllReduceFacts(skip_kind="no-nccl"), "this torch has no NCCL backend"),
    # a report from before AllReduceFacts.skip_kind: its sentence, as it was
    (load(AllReduceFacts, {"ran": False, "skipped": "torch sees 1 GPU: nothing to all-reduce between"}),
     "torch sees 1 GPU: nothing to all-reduce between"),
])
def test_why_the_allreduce_did_not_run_is_the_checks_wording(ar, words):
    (f,) = run(D.allreduce_check, facts(recorded("rtx5090x2_gns"), ar=ar))
    assert f.status is Status.SKIP and f.title == f"Live all-reduce across GPUs not run: {words}"


def test_bus_bandwidth_is_nccl_tests_formula():
    assert bus_factor(2) == 1.0 and bus_factor(8) == 1.75 and bus_factor(1) == 0.0


# --- reading NVML, sysfs and nccl.conf ---------------------------------------------------------

class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """Answers as pynvml does, from a recorded fixture, raising where NVML raises."""

    NVMLError = FakeNVMLError

    def __init__(self, raw):
        self.raw = raw
        self.p2p_indices = set()

    def nvmlSystemGetDriverVersion(self):
        return self.raw["driver_version"].encode()

    def nvmlDeviceGetCount(self):
        return len(self.raw["devices"])

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.raw["devices"][h]["name"]

    def nvmlDeviceGetUUID(self, h):
        return self.raw["devices"][h]["uuid"]

    def nvmlDeviceGetPciInfo(self, h):
        return type("Pci", (), {"busId": self.raw["devices"][h]["pci_bus_id"].encode()})()

    def nvmlDeviceGetNumaNodeId(self, h):
        raise FakeNVMLError("Not Supported")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h):
        return self.raw["devices"][h]["pcie_gen_max"]

    def nvmlDeviceGetMaxPcieLinkWidth(self, h):
        return self.raw["devices"][h]["pcie_width_max"]

    nvmlDeviceGetCurrPcieLinkGeneration = nvmlDeviceGetMaxPcieLinkGeneration
    nvmlDeviceGetCurrPcieLinkWidth = nvmlDeviceGetMaxPcieLinkWidth

    def nvmlDeviceGetNvLinkState(self, h, link):
        links = self.raw["devices"][h]["nvlinks"]
        if link >= len(links):
            raise type("NVMLError_NotSupported", (FakeNVMLError,), {})("Not Supported")
        return links[link]["state"]

    def nvmlDeviceGetNvLinkVersion(self, h, link):
        return self.raw["devices"][h]["nvlinks"][link]["version"]

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h, link):
        return type("Pci", (), {"busId": self.raw["devices"][h]["nvlinks"][link]["remote_bus_id"].encode()})()

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, h, link):
        return self.raw["devices"][h]["nvlinks"][link]["remote_type"]

    def nvmlDeviceGetTopologyCommonAncestor(self, a, b):
        if (a, b) == (0, 7):
            raise FakeNVMLError("Unknown Error")
        return self.raw["common_ancestor"][a][b]

    def nvmlDeviceGetP2PStatus(self, a, b, index):
        if not isinstance(index, int):  # pynvml's NVML_P2P_CAPS_INDEX_READ is the tuple (0,)
            raise TypeError("ctypes cannot pass a tuple")
        self.p2p_indices.add(index)
        cap = ("read", "write", "nvlink", "atomics", "pci")[index]
        return self.raw["p2p"][cap][a][b]


def test_raw_nvml_reads_every_answer_and_keeps_errors_as_unknowns():
    raw = json.loads((FIXTURES / "h100x8_nvswitch.json").read_text())
    fake = FakeNvml(raw)
    got = raw_nvml(fake)
    assert fake.p2p_indices == {0, 1, 2, 3, 4}
    assert got["driver_version"] == "570.158.01" and len(got["devices"]) == 8
    assert got["devices"][0]["pci_bus_id"] == "00000000:18:00.0" and len(got["devices"][0]["nvlinks"]) == 18
    assert got["devices"][0]["numa_node"] is None  # NVML said Not Supported and there is no sysfs entry here
    assert got["common_ancestor"][0][7] is None and "ancestor0-7" in got["errors"]
    topo = facts_from_raw(got)
    pair = next(p for p in topo.pairs if (p.a, p.b) == (0, 7))
    assert pair.ancestor is None and pair.nvlinks == 18 and pair.nvswitch
    assert "gpu0.nvlink" not in got["errors"]  # NotSupported past the last link is not an error


def nvml_module(raw, init_error=None):
    """FakeNvml as the pynvml module the probe imports, its nvmlInit raising init_error."""
    fake = FakeNvml(raw)

    def init():
        if init_error is not None:
            raise init_error

    fake.nvmlInit, fake.nvmlShutdown = init, lambda: None
    return fake


def test_the_topology_probe_reads_nvml_and_records_why_it_could_not_as_a_kind(monkeypatch):
    """A working NVML gives GPUs (CUDA_VISIBLE_DEVICES applied); an NVML that does not start or
    a missing nvidia-ml-py is a kind plus the exception's text, and the check words it."""
    import sys

    from llmdoctor.probes import ProbeContext
    from llmdoctor.probes.topology import probe_topology
    from llmdoctor.target import Target

    ctx = ProbeContext(target=Target(sys.executable, "explicit"), environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    raw = json.loads((FIXTURES / "h100x8_nvswitch.json").read_text())
    monkeypatch.setitem(sys.modules, "pynvml", nvml_module(raw))
    topo = probe_topology(ctx)
    assert topo.source == "nvml" and len(topo.gpus) == 8 and [g.index for g in topo.visible_gpus] == [0, 1]
    monkeypatch.setitem(sys.modules, "pynvml", nvml_module(raw, FakeNVMLError("Driver Not Loaded")))
    topo = probe_topology(ctx)
    assert (topo.source, topo.problem, topo.error, topo.reason) == ("none", "nvml-error",
                                                                    "FakeNVMLError: Driver Not Loaded", None)
    (f,) = run(D.nccl_env_check, facts(topo))
    assert (f.status, f.title, f.detail) == (Status.SKIP, "No NVIDIA GPU", "NVML: FakeNVMLError: Driver Not Loaded")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails
    topo = probe_topology(ctx)
    assert topo.problem == "import-error" and topo.error and topo.reason is None
    (f,) = run(D.nccl_env_check, facts(topo))
    assert f.detail == f"nvidia-ml-py not importable: {topo.error}"


def test_a_topology_from_before_problem_still_says_why_there_are_no_gpu_facts():
    said = "NVML: NVMLError_LibraryNotFound: NVML Shared Library Not Found"
    (f,) = run(D.nccl_env_check, facts(load(TopologyFacts, {"source": "none", "reason": said})))
    assert f.status is Status.SKIP and f.detail == said


@pytest.mark.parametrize("garbage", [None, [], "x", {"devices": "x"}, {"devices": [1, None, {"index": "a"}]},
                                     {"devices": [{"index": 0}, {"index": 1}], "common_ancestor": "zz",
                                      "p2p": {"read": [[None, "q"]]}}])
def test_facts_from_raw_never_raises_on_garbage(garbage):
    topo = facts_from_raw(garbage)
    assert isinstance(topo, TopologyFacts)


def test_topology_facts_round_trip_through_json():
    topo = recorded("h100x8_nvswitch", ib=(HDR,))
    again = load(TopologyFacts, json.loads(json.dumps(dump(topo))))
    assert again == topo
    assert load(TopologyFacts, {"source": "nvml"}).pairs == ()  # an older report without the newer fields


def test_read_nics_and_ib_from_sysfs(tmp_path):
    net = tmp_path / "net"
    for name, state, speed, kind in (("eth0", "up", "25000", "1"), ("lo", "unknown", "", "772"),
                                     ("ib0", "down", "-1", "32")):
        (net / name).mkdir(parents=True)
        (net / name / "operstate").write_text(state + "\n")
        (net / name / "speed").write_text(speed + "\n")
        (net / name / "type").write_text(kind + "\n")
    addr = type("A", (), {"family": type("F", (), {"name": "AF_INET"})(), "address": "10.1.2.3"})()
    nics = {n.name: n for n in read_nics(str(net), {"eth0": [addr]})}
    assert nics["eth0"] == Nic("eth0", "up", 25000, "ether", False, ("10.1.2.3",))
    assert nics["lo"].kind == "loopback" and nics["ib0"].speed_mbps is None and nics["ib0"].kind == "infiniband"
    port = tmp_path / "ib" / "mlx5_0" / "ports" / "1"
    port.mkdir(parents=True)
    (port / "state").write_text("4: ACTIVE\n")
    (port / "phys_state").write_text("5: LinkUp\n")
    (port / "rate").write_text("200 Gb/sec (4X HDR)\n")
    (port / "link_layer").write_text("Ethernet\n")
    (p,) = read_ib(str(tmp_path / "ib"))
    assert (p.state, p.phys_state, p.rate_gbps, p.link_layer) == ("ACTIVE", "LinkUp", 200.0, "Ethernet")
    assert read_ib(str(tmp_path / "missing")) == ()


def test_nccl_conf_files_and_the_environment(tmp_path):
    assert parse_nccl_conf("# c\nNCCL_DEBUG=WARN\nNCCL_SOCKET_IFNAME==ens1f0\nOTHER=1\n") == {
        "NCCL_DEBUG": "WARN", "NCCL_SOCKET_IFNAME": "=ens1f0"}
    (tmp_path / ".nccl.conf").write_text("NCCL_P2P_DISABLE=1\n")
    conf, files = read_nccl_conf({"HOME": str(tmp_path)})
    assert conf.get("NCCL_P2P_DISABLE") == "1" and str(tmp_path / ".nccl.conf") in files
    nd = NodeFacts("h", environ={"NCCL_P2P_DISABLE": "0"}, nccl_conf=conf)
    assert nd.nccl("NCCL_P2P_DISABLE") == "0" and nd.nccl_origin("NCCL_P2P_DISABLE") == "the environment"


def test_relevant_environ_masks_secrets_and_drops_per_rank_variables():
    env, digests = relevant_environ({"HF_TOKEN": "hf_" + "a" * 30, "NCCL_DEBUG": "INFO", "RANK": "3",
                                     "LOCAL_RANK": "1", "HOME": "/root", "CUDA_VISIBLE_DEVICES": "0,1"})
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1", "HF_TOKEN": "***", "NCCL_DEBUG": "INFO"}
    assert set(digests) == {"HF_TOKEN"} and "a" * 10 not in digests["HF_TOKEN"]
