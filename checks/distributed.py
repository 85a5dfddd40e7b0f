"""Several GPUs and several nodes: how the GPUs are linked, peer-to-peer, the NCCL
variables against that topology, the network NCCL would use, the live all-reduces, and,
over a cluster report, which ranks answered and what differs between nodes.

Node checks read the ``topology`` (NVML), ``node`` (hostname, relevant variables) and
``allreduce`` facts; cluster checks (``cluster_checks()``) read the ``cluster`` fact that
``llmdoctor check --distributed`` builds on rank 0. All are pure functions of facts.
"""

from __future__ import annotations

import re

from llmdoctor.command import run, setvar, setvars, template, unset
from llmdoctor.data import rows, table
from llmdoctor.model import Status, check
from llmdoctor.platforms.exitcodes import exit_text
from llmdoctor.versions import parse_version

NCCL_ENV_DOCS = "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html"
NCCL_TROUBLE_DOCS = "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/troubleshooting.html"
NCCL_TESTS_DOCS = "https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md"
NCCL_DEBUG_SRC = "https://github.com/NVIDIA/nccl/blob/master/src/debug.cc"
NVML_TOPO_DOCS = "https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html"
GLOO_DOCS = "https://pytorch.org/docs/stable/distributed.html#common-environment-variables"
TORCH_DRIFT_DOCS = "https://github.com/pytorch/pytorch/issues/24273"
NCCL_MISMATCH_SRC = "https://github.com/NVIDIA/nccl/blob/master/src/init.cc"
PIP_PIN_DOCS = "https://pip.pypa.io/en/stable/topics/repeatable-installs/"
RUN_DOCS = "https://pytorch.org/docs/stable/elastic/run.html"
SLOW_SHARE = 0.25  #: llmdoctor's own line: a bus bandwidth under a quarter of the links' peak is worth a warning

NO_GPU = "No NVIDIA GPU"
#: TopologyFacts.problem -> why there are no GPU facts (the exception's text follows)
TOPOLOGY_PROBLEMS = {"import-error": "nvidia-ml-py not importable", "nvml-error": "NVML",
                     "bad-data": "NVML data is not a mapping"}
#: AllReduceFacts.skip_kind -> why no all-reduce ran
ALLREDUCE_SKIPS = {"not-asked": "the live all-reduce runs with `llmdoctor check --distributed`",
                   "no-nccl": "this torch has no NCCL backend",
                   "one-node": "one node: nothing to all-reduce between",
                   "few-nodes": "fewer than two nodes reported",
                   "stopped": "the launcher stopped the job first"}
LEVEL_WORDS = {
    "internal": "on the same board", "single": "behind one PCIe switch (PIX)",
    "multiple": "through several PCIe switches (PXB)", "hostbridge": "through a PCIe host bridge, the CPU (PHB)",
    "node": "across PCIe host bridges within a NUMA node (NODE)",
    "system": "across NUMA nodes over the CPU interconnect (SYS)",
}
#: NVML common-ancestor level -> the NCCL_P2P_LEVEL path type that covers it
NCCL_PATH = {"internal": "PIX", "single": "PIX", "multiple": "PXB", "hostbridge": "PHB", "node": "PHB",
             "system": "SYS"}
P2P_LEVELS = ("LOC", "NVL", "PIX", "PXB", "PHB", "SYS")  #: the names NCCL's docs list
#: every path type ncclGetLevel accepts by name, nearest first (NCCL's src/graph/topo.h; NVB, PXN
#: and C2C/P2C came with later NCCL releases)
P2P_PATHS = ("LOC", "NVL", "NVB", "C2C", "PIX", "PXB", "P2C", "PXN", "PHB", "SYS")
P2P_LEGACY = {"0": "LOC", "1": "PIX", "2": "PXB", "3": "PHB", "4": "SYS", "5": "SYS"}
NCCL_LEVEL_SRC = "https://github.com/NVIDIA/nccl/blob/master/src/graph/paths.cc"
NCCL_PARAM_SRC = "https://github.com/NVIDIA/nccl/blob/master/src/misc/param.cc"
NCCL_DEBUG_VALUES = ("VERSION", "WARN", "INFO", "ABORT", "TRACE")
P2P_WHY = {
    "chipset_not_supported": "the chipset does not support P2P between them",
    "gpu_not_supported": "the GPU (or its driver) does not support P2P",
    "ioh_topology_not_supported": "they sit behind I/O hubs that cannot do P2P between them",
    "disabled_by_regkey": "P2P is disabled by a driver registry key",
    "not_supported": "P2P is not supported between them",
    "unknown": "NVML cannot tell",
}


# --- helpers -------------------------------------------------------------------

def gbps(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f} GB/s" if value >= 0.1 else f"{value * 1000:.1f} MB/s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def nbytes(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def _ranges(numbers) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    nums = sorted(set(numbers))
    out, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out)


def nccl_number(value: str | None) -> int | None:
    """The number NCCL reads from a variable: strtoll(value, NULL, 0) of its leading digits
    (0x hex, 0 octal); None where there are none ('true', 'yes'), which NCCL reads as 0 or its
    default."""
    m = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", value or "")
    if not m:
        return None
    sign, digits = m.groups()
    n = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits, 8) if digits.startswith("0") else int(digits)
    return -n if sign == "-" else n


def p2p_off(value: str | None) -> bool:
    """NCCL_P2P_DISABLE as ncclGetLevel reads it: P2P is off only at 1."""
    return nccl_number(value) == 1


def ib_off(value: str | None) -> bool:
    """NCCL_IB_DISABLE as an NCCL parameter: any number but 0 turns InfiniBand/RoCE off."""
    return bool(nccl_number(value))


def pcie_gbps(gen: int | None, width: int | None) -> float | None:
    if not gen or not width:
        return None
    for row in table("llmdoctor.checks", "interconnect")["pcie"]:
        if row["gen"] == gen:
            return row["gbps_per_lane"] * width
    return None


def nvlink_rate(name: str | None) -> dict | None:
    """The interconnect row for a GPU name: per link and direction, GB/s."""
    for row in rows("llmdoctor.checks", "interconnect"):
        if name and any(m in name for m in row["match"]):
            return {**row, "per_link": row["total_gbps"] / row["links"] / 2}
    return None


def link_peak(topo) -> tuple[float | None, str, str | None]:
    """What the slowest link between the visible GPUs allows per direction, what it is,
    and the source of the number."""
    gpus = topo.visible_gpus
    pairs = topo.visible_pairs()
    if pairs and all(p.nvlinks for p in pairs):
        rate = nvlink_rate(gpus[0].name)
        if rate:
            worst = min(pairs, key=lambda p: p.nvlinks)
            return worst.nvlinks * rate["per_link"], f"NVLink {rate['nvlink']} x{worst.nvlinks}", rate["source"]
        return None, "NVLink (rate unknown for this GPU)", None
    best = None
    for g in gpus:
        value = pcie_gbps(g.pcie_gen_max, g.pcie_width_max)
        if value is not None and (best is None or value < best[0]):
            best = (value, f"PCIe {g.pcie_gen_max}.0 x{g.pcie_width_max} (GPU {g.index})")
    if best is None:
        return None, "PCIe (generation unknown)", None
    return best[0], best[1], table("llmdoctor.checks", "interconnect")["pcie"][0]["source"]


def matrix(topo) -> str:
    """The pairs as `nvidia-smi topo -m` prints them, with the NUMA node of each GPU."""
    gpus = topo.visible_gpus
    by = {(p.a, p.b): p for p in topo.pairs}
    head = "      " + "".join(f"GPU{g.index:<4}" for g in gpus) + "NUMA"
    lines = [head]
    for a in gpus:
        cells = []
        for b in gpus:
            if a.index == b.index:
                cells.append("X")
            else:
                p = by.get((min(a.index, b.index), max(a.index, b.index)))
                ok = "" if p is None or p.p2p_ok is not False else "*"
                cells.append((p.legend if p else "?") + ok)
        lines.append(f"GPU{a.index:<3}" + "".join(f"{c:<7}" for c in cells)
                     + ("-" if a.numa_node is None else str(a.numa_node)))
    if any("*" in line for line in lines[1:]):
        lines.append("* P2P read/write not available (nvmlDeviceGetP2PStatus)")
    return "\n".join(lines)


def consumer_rule(topo) -> tuple[dict, list] | None:
    """accelerate's rule, when it applies here: (row, the matching GPUs)."""
    gpus = topo.visible_gpus
    for row in rows("llmdoctor.checks", "p2p_rules"):
        hits = [g for g in gpus if g.name and row["name_contains"] in g.name]
        if len(gpus) >= row["min_gpus"] and hits:
            return row, hits
    return None


def driver_below(driver: str | None, limit: str) -> bool | None:
    v, lim = parse_version(driver or ""), parse_version(limit)
    if v is None or lim is None:
        return None
    return v < lim


def no_topology(topo) -> str:
    """Why the topology probe has no GPU facts, in words (a report from before TopologyFacts.problem:
    its sentence)."""
    if topo.problem in TOPOLOGY_PROBLEMS:
        head = TOPOLOGY_PROBLEMS[topo.problem]
        return f"{head}: {topo.error}" if topo.error else head
    return topo.reason or ""


def allreduce_not_run(ar) -> str:
    """Why an all-reduce did not run, in words (a report from before AllReduceFacts.skip_kind: its sentence)."""
    if ar.skip_kind in ALLREDUCE_SKIPS:
        return ALLREDUCE_SKIPS[ar.skip_kind]
    asking = "torch could not be asked for its GPUs: "
    if ar.skip_kind == "torch-error":
        return asking + (ar.error or "no message")
    if ar.skip_kind == "crash":
        return asking + (exit_text(ar.exit_code) if ar.exit_code is not None else "no answer")
    if ar.skip_kind == "timeout":
        return asking + (f"no answer within {ar.timeout_s:g} s" if ar.timeout_s is not None else "timed out")
    if ar.skip_kind == "few-gpus":
        n = ar.gpu_count or 0
        return f"torch sees {n} GPU{'s' * (n != 1)}: nothing to all-reduce between"
    return ar.skipped or "no reason recorded"


def rank_failures(ar) -> dict[str, str]:
    """Member -> what went wrong there, in words: the error it reported, or why it gave no result
    (a report from before AllReduceFacts.rank_problems: rank_errors holds those sentences)."""
    out = {}
    for m in dict.fromkeys((*ar.members, *ar.rank_errors, *ar.rank_problems)):
        kind = ar.rank_problems.get(m)
        if kind == "hung":
            t = f"{ar.timeout_s:.0f} s" if isinstance(ar.timeout_s, (int, float)) else "the deadline"
            out[m] = f"still running after {t}: killed" if ar.scope == "local" else f"did not finish within {t}"
        elif kind == "no-result":
            code = ar.rank_exit_codes.get(m)
            out[m] = f"{exit_text(code) if code is not None else 'ended'} without a result"
        elif kind == "silent":
            out[m] = "no result reached rank 0 in time"
        elif kind is not None:
            out[m] = f"no result ({kind})"
        elif m in ar.rank_errors:
            out[m] = ar.rank_errors[m]
    return out


def hung_members(ar) -> list[str]:
    """The members still running at the deadline (a report from before rank_problems: read from its sentences)."""
    if ar.rank_problems:
        return [m for m, kind in ar.rank_problems.items() if kind in ("hung", "silent")]
    return [m for m, e in ar.rank_errors.items() if "still running" in e or "did not finish" in e]


def _gpu_gate(facts, c):
    """(topology, None) with two visible GPUs or more; else (None, a SKIP finding)."""
    topo = facts.value("topology")
    if topo.source != "nvml" or not topo.gpus:
        return None, c.finding(Status.SKIP, NO_GPU, detail=no_topology(topo))
    n = len(topo.visible_gpus)
    if n < 2:
        return None, c.finding(Status.SKIP, f"{'One GPU' if n == 1 else 'No GPU'} visible: no links between GPUs "
                               "to judge")
    return topo, None


# --- one node ------------------------------------------------------------------

@check("distributed.topology", needs=["topology"])
def topology_check(facts, c):
    """How the GPUs are linked (NVLink, PCIe switch, host bridge, NUMA node), as NVML reports it."""
    topo, skip = _gpu_gate(facts, c)
    if skip:
        yield skip
        return
    gpus, pairs = topo.visible_gpus, topo.visible_pairs()
    if any(p.ancestor is None and not p.nvlinks for p in pairs):
        yield c.finding(Status.SKIP, "NVML could not tell how some GPUs are linked", detail="\n".join(
            f"{k}: {v}" for k, v in sorted(topo.unknown.items())[:10]), docs=NVML_TOPO_DOCS)
    groups: dict[str, list] = {}
    for p in pairs:
        if p.nvlinks:
            key = f"NVLink ({p.nvlinks} link{'s' * (p.nvlinks != 1)}{', NVSwitch' if p.nvswitch else ''})"
        else:
            key = LEVEL_WORDS.get(p.ancestor or "", "linked in a way NVML does not name")
        groups.setdefault(key, []).append(p)
    total = len(pairs)
    if len(groups) == 1:
        (key, _), = groups.items()
        what = f"every pair {key}" if total > 1 else f"linked {key}"
    else:
        what = "; ".join(f"{len(v)} of {total} pairs {k}" for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1])))
    peak, link, src = link_peak(topo)
    yield c.finding(Status.INFO, f"{len(gpus)} GPUs: {what}" + (f"; slowest link {link}, {gbps(peak)} each way"
                                                                 if peak else ""),
                    detail=matrix(topo), docs=src or NVML_TOPO_DOCS)
    numa: dict[int, list[int]] = {}
    for g in gpus:
        if g.numa_node is not None:
            numa.setdefault(g.numa_node, []).append(g.index)
    if len(numa) > 1:
        where = ", ".join(f"GPUs {_ranges(v)} on NUMA node {k}" for k, v in sorted(numa.items()))
        if all(p.nvlinks for p in pairs):
            tail = "NVLink joins them all, so only host-side traffic crosses the CPU interconnect"
        else:
            tail = "GPU traffic between the nodes crosses the CPU interconnect (QPI/UPI)"
        yield c.finding(Status.INFO, f"{where}: {tail}", id="distributed.numa",
                        detail="Keep each rank's data-loading threads on its GPU's NUMA node (numactl --cpunodebind).",
                        docs=NCCL_ENV_DOCS)


@check("distributed.p2p", needs=["topology", "node"])
def p2p_check(facts, c):
    """Peer-to-peer between GPUs, accelerate's RTX 40xx rule, and NCCL_P2P_DISABLE against both.

    P2P from nvmlDeviceGetP2PStatus; the rule is accelerate's check_cuda_p2p_ib_support
    (more than one GPU, an "RTX 40" name, a driver older than 550.40.07)."""
    topo, skip = _gpu_gate(facts, c)
    if skip:
        yield skip
        return
    node = facts.value("node")
    p2p_disable = node.nccl("NCCL_P2P_DISABLE")
    pairs = topo.visible_pairs()
    rule = consumer_rule(topo)
    if rule:
        row, hits = rule
        old = driver_below(topo.driver_version, row["driver_below"])
        names = sorted({g.name for g in hits})
        if old:
            missing = [k for k, v in row["sets"].items() if node.nccl(k) != v]
            exports = " ".join(f"{k}={v}" for k, v in row["sets"].items())
            if missing:
                yield c.finding(
                    Status.FAIL, f"{len(topo.visible_gpus)} x {', '.join(names)} with driver {topo.driver_version} "
                    f"(< {row['driver_below']}): NCCL's P2P between them is known to hang, and {', '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set", id="distributed.p2p-consumer-gpu",
                    detail=f"{row['why']}. `accelerate launch` sets {exports} for exactly this case "
                           f"({row['history']}); torchrun, srun and mpirun do not. Reports: {row['report']}",
                    fix=(setvars(row["sets"]), f"   (or install NVIDIA driver {row['driver_below']} or newer)"),
                    docs=row["source"])
            else:
                yield c.finding(Status.OK, f"{', '.join(names)} with driver {topo.driver_version}: {exports} set, "
                                "as accelerate does for these GPUs and drivers", id="distributed.p2p-consumer-gpu",
                                docs=row["source"])
        elif old is False and p2p_off(p2p_disable):
            yield c.finding(Status.INFO, f"NCCL_P2P_DISABLE={p2p_disable} on {', '.join(names)} with driver "
                            f"{topo.driver_version}: accelerate stops setting it from driver {row['driver_below']}",
                            id="distributed.p2p-consumer-gpu",
                            detail="These drivers report to CUDA and NCCL whether P2P works, so NCCL chooses its "
                                   "transport itself. Leaving the variable set costs nothing where P2P is off anyway.",
                            docs=row["history"])
    unknown = [p for p in pairs if p.p2p_ok is None]
    broken = [p for p in pairs if p.p2p_ok is False]
    working = [p for p in pairs if p.p2p_ok]
    hangs = bool(rule and driver_below(topo.driver_version, rule[0]["driver_below"]))
    if broken:
        by_why: dict[str, list] = {}
        for p in broken:
            status = p.p2p.get("read") if p.p2p.get("read") != "ok" else p.p2p.get("write")
            by_why.setdefault(status or "unknown", []).append(p)
        for status, items in sorted(by_why.items()):
            which = ", ".join(f"{p.a}-{p.b}" for p in items[:8]) + (" ..." if len(items) > 8 else "")
            yield c.finding(Status.INFO, f"No P2P between {len(items)} of {len(pairs)} GPU pairs ({which}): "
                            f"{P2P_WHY.get(status, status)}; NCCL copies through host memory there",
                            id="distributed.p2p-unavailable",
                            detail=f"nvmlDeviceGetP2PStatus: NVML_P2P_STATUS_{status.upper()}", docs=NVML_TOPO_DOCS)
    if working and p2p_off(p2p_disable) and not hangs:
        nv = any(p.nvlinks for p in working)
        yield c.finding(Status.WARN, f"NCCL_P2P_DISABLE={p2p_disable} (from {node.nccl_origin('NCCL_P2P_DISABLE')}) "
                        f"turns off the {'NVLink' if nv else 'PCIe'} peer-to-peer that works between "
                        f"{len(working)} of {len(pairs)} GPU pairs here: all-reduce goes through host memory",
                        id="distributed.p2p-disabled", fix=unset("NCCL_P2P_DISABLE"), docs=NCCL_ENV_DOCS)
    if working and not broken and not unknown and not hangs:
        nv = sum(1 for p in working if p.nvlinks)
        how = "over NVLink" if nv == len(working) else ("over PCIe" if not nv else f"{nv} over NVLink")
        between = "the 2 GPUs" if len(pairs) == 1 else f"all {len(pairs)} GPU pairs"
        yield c.finding(Status.OK, f"P2P read/write available between {between} ({how})")
    if unknown and not working and not broken:
        yield c.finding(Status.SKIP, "NVML could not tell whether P2P works between these GPUs",
                        detail="; ".join(f"{k}: {v}" for k, v in sorted(topo.unknown.items())[:5]))


def _p2p_level(value: str) -> tuple[str | None, bool]:
    """(path type, legacy integer) of an NCCL_P2P_LEVEL value as ncclGetLevel reads it: a name
    compared case by case, else a leading number clamped to the old table (7 is SYS); None when
    NCCL ignores the variable."""
    if value in P2P_PATHS:
        return value, False
    if value[:1].isdigit():
        n = nccl_number(value) or 0
        return P2P_LEGACY[str(min(n, 5))], True
    return None, False


@check("distributed.nccl-env", needs=["topology", "node"])
def nccl_env_check(facts, c):
    """NCCL_P2P_LEVEL and NCCL_DEBUG: values NCCL understands, and what they do on this topology."""
    topo, node = facts.value("topology"), facts.value("node")
    if topo.source != "nvml" or not topo.gpus:
        yield c.finding(Status.SKIP, NO_GPU, detail=no_topology(topo))
        return
    said = False
    level = node.nccl("NCCL_P2P_LEVEL")
    if level is not None:
        said = True
        path, legacy = _p2p_level(level)
        origin = node.nccl_origin("NCCL_P2P_LEVEL")
        if path is None and level.strip().upper() in P2P_PATHS:
            yield c.finding(Status.WARN, f"NCCL_P2P_LEVEL={level!r} (from {origin}) is ignored: NCCL compares the "
                            "level's name case by case (and without spaces), so it keeps its default",
                            id="distributed.nccl-p2p-level", fix=setvar("NCCL_P2P_LEVEL", level.strip().upper()),
                            docs=NCCL_LEVEL_SRC)
        elif path is None:
            yield c.finding(Status.WARN, f"NCCL_P2P_LEVEL={level!r} (from {origin}) is not a level NCCL knows: "
                            f"use one of {', '.join(P2P_LEVELS)}", id="distributed.nccl-p2p-level",
                            fix=unset("NCCL_P2P_LEVEL"), docs=NCCL_ENV_DOCS)
        else:
            pairs = topo.visible_pairs()
            order = {p: i for i, p in enumerate(P2P_PATHS)}
            usable = [p for p in pairs if p.p2p_ok is not False]
            cut = [p for p in usable if not p.nvlinks and order[NCCL_PATH.get(p.ancestor or "", "SYS")] > order[path]]
            cut += [p for p in usable if p.nvlinks and path == "LOC"]
            note = " (a legacy number: NCCL's docs advise the name, as numbers changed meaning)" if legacy else ""
            if cut and len(pairs) > 0:
                yield c.finding(Status.INFO, f"NCCL_P2P_LEVEL={level}{note} keeps NCCL from using P2P between "
                                f"{len(cut)} of {len(pairs)} GPU pairs, which it would otherwise consider",
                                id="distributed.nccl-p2p-level", detail=matrix(topo),
                                fix=(unset("NCCL_P2P_LEVEL"), "   (unless it works around a known problem)"),
                                docs=NCCL_ENV_DOCS)
            else:
                yield c.finding(Status.OK if not legacy else Status.INFO,
                                f"NCCL_P2P_LEVEL={level}{note} allows P2P on every path between these GPUs",
                                id="distributed.nccl-p2p-level", docs=NCCL_ENV_DOCS)
    for var, what, where in (("NCCL_P2P_DISABLE", "P2P stays on", "if P2P is meant to be off"),
                             ("NCCL_IB_DISABLE", "InfiniBand/RoCE stays on", "if InfiniBand/RoCE is meant to be off")):
        value = node.nccl(var)
        if value is not None and value.strip() and nccl_number(value) is None:
            said = True
            yield c.finding(Status.WARN, f"{var}={value!r} (from {node.nccl_origin(var)}) is not a number: NCCL "
                            f"reads it as 0, so {what}", id="distributed.nccl-number",
                            fix=(setvar(var, "1"), f"   ({where})"), docs=NCCL_PARAM_SRC)
    debug = node.nccl("NCCL_DEBUG")
    if debug is not None:
        said = True
        if debug.strip().upper() not in NCCL_DEBUG_VALUES:
            yield c.finding(Status.WARN, f"NCCL_DEBUG={debug!r} is not a level NCCL knows: it logs nothing, even "
                            "warnings", id="distributed.nccl-debug",
                            fix=(setvar("NCCL_DEBUG", "WARN"), "   (INFO to see which transports and interfaces it picks)"),
                            docs=NCCL_DEBUG_SRC)
        elif debug.strip().upper() in ("INFO", "TRACE"):
            yield c.finding(Status.INFO, f"NCCL_DEBUG={debug}: NCCL logs every communicator's set-up (useful to "
                            "see its transports; noisy in long jobs)", id="distributed.nccl-debug", docs=NCCL_ENV_DOCS)
        else:
            yield c.finding(Status.OK, f"NCCL_DEBUG={debug}", id="distributed.nccl-debug", docs=NCCL_ENV_DOCS)
    if not said:
        shown = sorted(k for k in {**node.nccl_conf, **node.environ} if k.startswith("NCCL_"))
        yield c.finding(Status.OK, "NCCL_P2P_LEVEL and NCCL_DEBUG unset: NCCL picks its paths itself"
                        + (f" (also set: {', '.join(shown)})" if shown else ""))


def ifname_filter(value: str) -> tuple[bool, bool, list[str]]:
    """NCCL_SOCKET_IFNAME syntax: (exclude, exact, prefixes). '^' excludes, '=' matches exactly."""
    text = value.strip()
    exclude = text.startswith("^")
    if exclude:
        text = text[1:]
    exact = text.startswith("=")
    if exact:
        text = text[1:]
    return exclude, exact, [p.strip() for p in text.split(",") if p.strip()]


def ifname_matches(value: str, names) -> list[str]:
    exclude, exact, items = ifname_filter(value)
    out = []
    for name in names:
        hit = any(name == p if exact else name.startswith(p) for p in items)
        if hit != exclude:
            out.append(name)
    return out


def _usable(nic) -> bool:
    return (nic.operstate or "").lower() in ("up", "unknown") and (bool(nic.addresses) or nic.kind == "loopback")


@check("distributed.network", needs=["topology", "node"])
def network_check(facts, c):
    """Interfaces and InfiniBand/RoCE ports against the NCCL and gloo network variables.

    NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME against the interfaces; NCCL_IB_DISABLE and
    NCCL_IB_HCA against the RDMA ports."""
    topo, node = facts.value("topology"), facts.value("node")
    nics = {n.name: n for n in topo.nics}
    for var, nccl in (("NCCL_SOCKET_IFNAME", True), ("GLOO_SOCKET_IFNAME", False)):
        value = node.nccl(var) if nccl else node.environ.get(var)
        if value is None:
            continue
        if nccl:
            chosen = ifname_matches(value, nics)
        else:  # gloo takes exact names, comma-separated
            chosen = [n for n in (x.strip() for x in value.split(",")) if n in nics]
        usable = [n for n in chosen if _usable(nics[n])]
        docs = NCCL_ENV_DOCS if nccl else GLOO_DOCS
        have = ", ".join(f"{n.name} ({n.operstate or '?'}{', ' + n.addresses[0] if n.addresses else ''})"
                         for n in topo.nics) or "none found"
        good = [n.name for n in topo.nics if _usable(n) and n.kind != "loopback"]
        fix = setvar(var, f"{'=' if nccl else ''}{good[0]}") if good else None
        if not chosen:
            effect = 'NCCL fails with "unhandled system error"' if nccl else "gloo cannot connect"
            yield c.finding(Status.FAIL, f"{var}={value!r} matches no network interface on this node: {effect}",
                            id="distributed.socket-ifname", detail=f"interfaces here: {have}", fix=fix, docs=docs)
        elif not usable:
            yield c.finding(Status.FAIL, f"{var}={value!r} selects {', '.join(chosen)}, which "
                            f"{'is' if len(chosen) == 1 else 'are'} down or without an address",
                            id="distributed.socket-ifname", detail=f"interfaces here: {have}", fix=fix, docs=docs)
        elif all(nics[n].kind == "loopback" for n in usable):
            yield c.finding(Status.WARN, f"{var}={value!r} selects only the loopback interface: other nodes "
                            "cannot reach this one through it", id="distributed.socket-ifname",
                            detail=f"interfaces here: {have}", fix=fix, docs=docs)
        else:
            speed = [f"{n} {nics[n].speed_mbps // 1000 if nics[n].speed_mbps >= 1000 else nics[n].speed_mbps}"
                     f"{' Gb/s' if nics[n].speed_mbps >= 1000 else ' Mb/s'}" if nics[n].speed_mbps else n
                     for n in usable]
            yield c.finding(Status.OK, f"{var}={value} selects {', '.join(speed)}", id="distributed.socket-ifname",
                            docs=docs)
    ports = topo.ib_ports
    active = [p for p in ports if (p.state or "").upper() == "ACTIVE"]
    ib_disable = node.nccl("NCCL_IB_DISABLE")
    hca = node.nccl("NCCL_IB_HCA")
    if hca is not None and ports:
        names = sorted({p.device for p in ports})
        wanted = [h.split(":")[0] for h in ifname_filter(hca)[2]]
        exclude = hca.strip().startswith("^")
        if not exclude and not any(any(n.startswith(w) for n in names) for w in wanted):
            yield c.finding(Status.FAIL, f"NCCL_IB_HCA={hca!r} names no RDMA device here ({', '.join(names)}): NCCL "
                            "falls back to TCP sockets", id="distributed.ib-hca", fix=setvar("NCCL_IB_HCA", names[0]),
                            docs=NCCL_ENV_DOCS)
    if ib_off(ib_disable) and active:
        kinds = sorted({"RoCE" if (p.link_layer or "").lower() == "ethernet" else "InfiniBand" for p in active})
        best = max((p.rate_gbps or 0) for p in active)
        yield c.finding(Status.WARN, f"NCCL_IB_DISABLE={ib_disable} while {len(active)} {'/'.join(kinds)} port"
                        f"{'s are' if len(active) != 1 else ' is'} active"
                        f"{f' ({best:g} Gb/s)' if best else ''}: NCCL sends everything over TCP sockets instead",
                        id="distributed.ib-disabled", fix=unset("NCCL_IB_DISABLE"), docs=NCCL_ENV_DOCS)
    elif ports and not active:
        down = ", ".join(f"{p.device}:{p.port} {p.state or '?'}/{p.phys_state or '?'}" for p in ports[:6])
        yield c.finding(Status.WARN, f"{len(ports)} InfiniBand/RoCE port{'s' * (len(ports) != 1)} but none ACTIVE "
                        f"({down}): NCCL falls back to TCP sockets", id="distributed.ib-down",
                        fix=(run("ibstat"), "   (check the cable, the subnet manager (opensm) and the port's link)"),
                        docs=NCCL_TROUBLE_DOCS)
    elif active:
        desc = ", ".join(f"{p.device}:{p.port} {'RoCE' if (p.link_layer or '').lower() == 'ethernet' else 'IB'}"
                         f"{f' {p.rate_gbps:g} Gb/s' if p.rate_gbps else ''}" for p in active[:6])
        yield c.finding(Status.OK, f"{len(active)} InfiniBand/RoCE port{'s' * (len(active) != 1)} active: {desc}",
                        id="distributed.ib")
    set_any = node.nccl("NCCL_SOCKET_IFNAME") is not None or "GLOO_SOCKET_IFNAME" in node.environ
    if set_any or ports:
        return
    if (node.launcher or "none") != "none":
        up = [n for n in topo.nics if _usable(n) and n.kind != "loopback"]
        names = ", ".join(n.name for n in up[:6]) or "only the loopback interface"
        yield c.finding(Status.INFO if up else Status.WARN,
                        f"No InfiniBand/RoCE; NCCL and gloo choose among: {names}"
                        + ("" if up else ": other nodes cannot reach this one"),
                        id="distributed.interfaces", docs=NCCL_ENV_DOCS)
    elif topo.source != "nvml" or not topo.gpus:
        yield c.finding(Status.SKIP, NO_GPU, detail="no NCCL network variable, no InfiniBand/RoCE, no launcher")
    else:
        yield c.finding(Status.SKIP, "No InfiniBand/RoCE and no NCCL network variable: the network matters only "
                        "across nodes (run under a launcher with --distributed)")


def classify(text: str) -> dict | None:
    low = (text or "").lower()
    for row in rows("llmdoctor.checks", "nccl_errors"):
        if any(p.lower() in low for p in row["patterns"]):
            return row
    return None


def _known_fix(row: dict):
    """A nccl_errors.json row's fix (words and commands), or None."""
    return template(row["fix"], {}) if row.get("fix") else None


def allreduce_findings(ar, c, *, where: str, topo=None, node=None, id_prefix: str):
    """Findings for one all-reduce result (local across GPUs, or across nodes)."""
    what = f"all-reduce {where} over {ar.backend}"
    failures = rank_failures(ar)
    log = "\n".join(x for x in (ar.error or "", *failures.values(), ar.log_tail) if x)
    known = classify(log)
    if ar.timed_out:
        hint, fix, docs = "", None, NCCL_TROUBLE_DOCS
        if known:
            hint, fix, docs = f": {known['title']}", _known_fix(known), known["source"]
        elif topo is not None and ar.backend == "nccl":
            rule = consumer_rule(topo)
            if rule:
                hint = f": the known hang of PCIe P2P between {rule[1][0].name} cards"
                fix, docs = setvar("NCCL_P2P_DISABLE", "1"), rule[0]["report"]
            else:
                hint = ": typically broken PCIe peer-to-peer (ACS or the IOMMU on the path between the GPUs)"
                fix, docs = (run("llmdoctor", "check", "--distributed", env={"NCCL_P2P_DISABLE": "1"}),
                             "   (if that passes, fix ACS/IOMMU)"), "https://github.com/NVIDIA/nccl/issues/631"
        hung = hung_members(ar)
        yield c.finding(Status.FAIL, f"The {what} did not finish within {ar.timeout_s or '?'} s"
                        + (f" on {', '.join(hung)}" if hung else "") + hint,
                        id=f"{id_prefix}-hang", detail=log[-2000:], fix=fix, docs=docs)
        return
    if ar.error or failures:
        first = ar.error or next(iter(failures.values()))
        title = f"The {what} failed: {first.splitlines()[0][:200] if first else 'no result'}"
        if known:
            title = f"The {what} failed: {known['title']}"
        yield c.finding(Status.FAIL, title, id=f"{id_prefix}-error", detail=log[-2000:],
                        fix=_known_fix(known) if known else (setvar("NCCL_DEBUG", "INFO"), " and run again"),
                        docs=known["source"] if known else NCCL_TROUBLE_DOCS)
        return
    if ar.correct is False:
        yield c.finding(Status.FAIL, f"The {what} returned wrong values (largest error {ar.max_error:g}): data is "
                        "corrupted between these ranks", id=f"{id_prefix}-wrong",
                        detail="Every rank contributed rank+1; every element must equal n(n+1)/2. Wrong sums "
                               "between GPUs are the broken-P2P symptom of nccl-tests#117.",
                        fix=(setvar("NCCL_P2P_DISABLE", "1"), "   (and report it to the system's vendor)"),
                        docs="https://github.com/NVIDIA/nccl-tests/issues/117")
        return
    bw, lat = ar.bandwidth, ar.latency
    if bw is None:
        yield c.finding(Status.SKIP, f"The {what} gave no timings")
        return
    title = (f"{what[0].upper()}{what[1:]}: bus bandwidth {gbps(bw.busbw_gbps)} at {nbytes(bw.size_bytes)} "
             f"({duration(bw.time_s)} each)")
    if lat is not None and lat is not bw:
        title += f", latency {duration(lat.time_s)} at {nbytes(lat.size_bytes)}"
    status, peak_note, docs = Status.OK, "", NCCL_TESTS_DOCS
    fix = None
    if topo is not None and ar.backend == "nccl" and ar.scope == "local":
        peak, link, _ = link_peak(topo)
        if peak:
            share = bw.busbw_gbps / peak
            peak_note = f"; {share:.0%} of the {gbps(peak)} the slowest link allows ({link})"
            if share < SLOW_SHARE:
                status = Status.WARN
                fix = (run("llmdoctor", "check", "--distributed",
                           env={"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,GRAPH"}), "   (see the paths NCCL picks)")
    detail = (f"members: {', '.join(ar.members)}; busbw = size/time x 2(n-1)/n (nccl-tests); "
              f"results correct: {ar.correct}")
    if status is Status.WARN:
        detail += f"; under {SLOW_SHARE:.0%} of the links' peak (llmdoctor's own threshold)"
    yield c.finding(status, title + peak_note, id=f"{id_prefix}", detail=detail, fix=fix, docs=docs)


@check("distributed.allreduce", needs=["allreduce", "topology"])
def allreduce_check(facts, c):
    """A live all-reduce across this node's GPUs over NCCL (with --distributed).

    Bus bandwidth by nccl-tests' formula against what the links allow, and its sums checked."""
    ar, topo = facts.value("allreduce"), facts.value("topology")
    if not ar.ran:
        if topo.source != "nvml" or not topo.gpus:
            yield c.finding(Status.SKIP, NO_GPU, detail=allreduce_not_run(ar))
        else:
            yield c.finding(Status.SKIP, f"Live all-reduce across GPUs not run: {allreduce_not_run(ar)}")
        return
    yield from allreduce_findings(ar, c, where=f"across {ar.world} GPUs", topo=topo if topo.source == "nvml" else None,
                                  id_prefix="distributed.allreduce")


# --- a cluster -------------------------------------------------------------------

def rank_detail(r) -> str:
    """What llmdoctor saw of a rank that did not report, in words, with the error it reported (a report
    from before RankState.cause: its sentence)."""
    if r.cause == "probe-unfinished":
        return "its own probe had not finished when the launcher stopped the job"
    if r.cause == "no-heartbeat":
        since = f" since {r.silent_after_s:.0f} s after rank 0 started" if isinstance(r.silent_after_s, (int, float)) \
            else ""
        quiet = f", {r.stale_s:g} s of silence" if isinstance(r.stale_s, (int, float)) else ""
        return f"no heartbeat{since}{quiet}"
    if r.cause == "unreadable-report":
        return f"its report is unreadable: {r.detail or 'no reason given'}"
    return f"{r.detail} ({r.cause})" if r.cause and r.detail else r.cause or r.detail


@check("distributed.ranks", needs=["cluster"])
def ranks_check(facts, c):
    """Every rank joined and reported in time; one that crashed, hung or never joined is named."""
    cl = facts.value("cluster")
    reported = [r for r in cl.ranks if r.state == "reported"]
    bad = [r for r in cl.ranks if r.state not in ("reported", "joined-only")]
    stopped = cl.stopped_after_s
    when = f"when the launcher stopped the job ({stopped:g} s after rank 0 started)" if stopped is not None else ""
    for r in bad:
        host = r.host or "host unknown"
        if r.state == "never-joined" and stopped is not None:
            title = (f"Rank {r.rank} ({host}) had not joined {when}: it exited or failed before joining (a "
                     "launcher stops every rank once one exits), or the job was cancelled")
            fix = (f"read the launcher's output for rank {r.rank}'s exit code and error "
                   "(torchrun prints it under 'Root Cause')")
        elif r.state == "hung" and stopped is not None:
            title = f"Rank {r.rank} on {host} had joined but not reported {when}" + (
                f" ({rank_detail(r)})" if rank_detail(r) else "")
            fix = (f"read the launcher's output for the rank that exited first (torchrun: 'Root Cause'); on {host}: ",
                   run("llmdoctor", "check"))
        elif r.state == "never-joined":
            title = (f"Rank {r.rank} ({host}) never joined within {cl.timeout_s:g} s: it did not start, or cannot "
                     f"reach {cl.master}")
            fix = (f"check that the job started rank {r.rank}, and that {cl.master} is reachable from its node "
                   "(firewall, MASTER_ADDR)")
        elif r.state == "hung":
            title = (f"Rank {r.rank} on {host} joined but had not reported after {cl.timeout_s:g} s: it hangs"
                     + (f" ({rank_detail(r)})" if rank_detail(r) else ""))
            fix = (run("py-spy", "dump", "--pid", str(r.pid)), f"   (on {host}, to see where it waits)") if r.pid \
                else None
        else:
            title = f"Rank {r.rank} on {host} stopped after joining: it crashed or was killed" + (
                f" ({rank_detail(r)})" if rank_detail(r) else "")
            fix = (run("llmdoctor", "check", env={"LLMDOCTOR_DEBUG": "1"}), f"   (on {host}, to see the error)")
        yield c.finding(Status.FAIL, title, id=f"distributed.rank-{r.state}", fix=fix, docs=RUN_DOCS,
                        detail=f"launcher {cl.launcher}, world size {cl.world_size}, rank 0 on {cl.rank0_host}")
    extra = [r for r in cl.ranks if r.state == "joined-only"]
    if extra:
        hosts = sorted({r.host or "?" for r in extra})
        nhosts = len({r.host for r in cl.ranks})
        yield c.finding(Status.INFO, f"{len(cl.ranks)} ranks on {nhosts} host{'s' * (nhosts != 1)}: only local "
                        f"rank 0 of each node probes it ({len(extra)} other rank{'s' * (len(extra) != 1)} on "
                        f"{', '.join(hosts)} only joined)", id="distributed.ranks-per-node",
                        fix=(run("torchrun", "--nproc-per-node", "1", "..."),
                             "   (one rank per node is enough for llmdoctor)"),
                        docs=RUN_DOCS)
    if not bad:
        names = ", ".join(f"{n.label}" for n in cl.nodes)
        yield c.finding(Status.OK, f"All {len(reported)} node{'s' * (len(reported) != 1)} reported ({names}), "
                        f"launched by {cl.launcher}")


def _reference(values: dict) -> str | None:
    """The value most nodes have; on a tie, rank 0's (the first node's)."""
    counts: dict = {}
    for v in values.values():
        counts[v] = counts.get(v, 0) + 1
    if not counts:
        return None
    first = next(iter(values.values()))
    return max(counts, key=lambda v: (counts[v], v == first))


def _differs(nodes, get) -> dict | None:
    values = {n.label: get(n) for n in nodes}
    return values if len(set(values.values())) > 1 else None


def _per_node(values: dict, missing: str = "none") -> str:
    groups: dict = {}
    for label, v in values.items():
        groups.setdefault(v, []).append(label)
    return ", ".join(f"{missing if v is None else v} on {', '.join(labels)}" for v, labels in groups.items())


TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


def torch_install(python: str, version: str):
    """The pip command that installs exactly this torch build ('2.5.1+cu121' from PyTorch's cu121 index).
    --force-reinstall: `torch==2.5.1` is already satisfied by an installed 2.5.1+cu124 (PEP 440
    ignores the local label), and pip would change nothing."""
    base, _, local = version.partition("+")
    return run(python, "-m", "pip", "install", "--force-reinstall", f"torch=={base}",
               *(("--index-url", f"https://download.pytorch.org/whl/{local}") if local else ()))


def _on_nodes(items) -> tuple:
    """("on node-b: ", command, "; on node-c: ", command): one command per node, in words' order."""
    out: list = []
    for label, command, *rest in items:
        out += ["; " if out else "", f"on {label}: ", command, *rest]
    return tuple(out)


def _minor(version: str | None) -> str | None:
    v = parse_version(version or "")
    return None if v is None else f"{v.major}.{v.minor}"


@check("distributed.drift", needs=["cluster"])
def drift_check(facts, c):
    """What differs between nodes: driver, CUDA, torch, NCCL, Python and its packages."""
    cl = facts.value("cluster")
    nodes = [n for n in cl.nodes if n.probed]
    if len(nodes) < 2:
        yield c.finding(Status.SKIP, "One node reported: nothing to compare")
        return
    found = False
    nccl = _differs(nodes, lambda n: n.nccl)
    if nccl and all(nccl.values()):
        found = True
        yield c.finding(Status.FAIL, f"NCCL differs between nodes: {_per_node(nccl)}: NCCL refuses to build a "
                        "communicator across them (\"Mismatched NCCL version detected\")", id="distributed.drift-nccl",
                        fix="install the same torch build on every node", docs=NCCL_MISMATCH_SRC)
    torch = _differs(nodes, lambda n: n.torch)
    if torch:
        found = True
        ref = _reference(torch)
        odd = [(n, torch[n.label]) for n in nodes if torch[n.label] != ref]
        fixes = _on_nodes((n.label, torch_install(n.python, ref)) for n, _ in odd if ref and n.python)
        yield c.finding(Status.WARN, f"torch differs between nodes: {_per_node(torch, 'not installed')}",
                        id="distributed.drift-torch",
                        detail="torch.distributed does not check that ranks run the same version; it works on a "
                               "best-effort basis and may fail in odd ways (a pytorch maintainer, issue #24273).",
                        fix=fixes or None, docs=TORCH_DRIFT_DOCS)
    cuda = _differs(nodes, lambda n: n.torch_cuda)
    if cuda and not torch:
        found = True
        yield c.finding(Status.WARN, f"torch's CUDA build differs between nodes: {_per_node(cuda, 'CPU-only')}",
                        id="distributed.drift-cuda", docs=TORCH_DRIFT_DOCS)
    driver = _differs(nodes, lambda n: n.driver)
    if driver:
        found = True
        yield c.finding(Status.INFO, f"NVIDIA drivers differ between nodes: {_per_node(driver, 'no driver')}",
                        id="distributed.drift-driver",
                        detail="Each node's own torch.driver finding says whether its driver runs its torch.",
                        docs="https://github.com/pytorch/pytorch/issues/108212")
    py = _differs(nodes, lambda n: _minor(n.python_version))
    if py:
        found = True
        yield c.finding(Status.WARN, f"Python differs between nodes: {_per_node(py, 'unknown')}: wheels, and the "
                        "pickled objects ranks exchange, may differ", id="distributed.drift-python",
                        docs=TORCH_DRIFT_DOCS)
    names = sorted({k for n in nodes for k in n.packages})
    diffs = []
    for name in names:
        values = {n.label: n.packages.get(name) for n in nodes}
        if len(set(values.values())) > 1:
            diffs.append((name, values))
    if diffs:
        found = True
        shown = "; ".join(f"{name} {_per_node(v, 'missing')}" for name, v in diffs[:3])
        more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        fixes = []
        for n in nodes:
            pins = []
            for name, values in diffs:
                if name in TORCH_FAMILY:  # their wheels come from PyTorch's index: the torch finding says how
                    continue
                ref = _reference(values)
                if ref is not None and values[n.label] != ref:
                    pins.append(f"{name}=={ref}")
            if pins and n.python:
                fixes.append((n.label, run(n.python, "-m", "pip", "install", *pins[:12]),
                              f" (and {len(pins) - 12} more, in the detail)" if len(pins) > 12 else ""))
        detail = "\n".join(f"{name}: {_per_node(v, 'missing')}" for name, v in diffs)
        yield c.finding(Status.WARN, f"{len(diffs)} Python package{'s differ' if len(diffs) != 1 else ' differs'} "
                        f"between nodes: {shown}{more}", id="distributed.drift-packages", detail=detail,
                        fix=_on_nodes(fixes) or None, docs=PIP_PIN_DOCS)
    if not found:
        yield c.finding(Status.OK, f"Same driver, CUDA, torch, NCCL, Python and packages on all {len(nodes)} nodes")


#: variables whose difference changes how ranks talk to each other
COMM_VARS = re.compile(r"^(NCCL_|TORCH_NCCL_|TORCH_DISTRIBUTED_|GLOO_|UCX_|FI_|CUDA_VISIBLE_DEVICES$|"
                       r"NVIDIA_VISIBLE_DEVICES$)")


@check("distributed.env-drift", needs=["cluster"])
def env_drift_check(facts, c):
    """Environment variables that differ between nodes (NCCL_*, CUDA_VISIBLE_DEVICES, HF_*, ...).

    Secrets are compared by a digest made on each node, never shown."""
    cl = facts.value("cluster")
    nodes = [n for n in cl.nodes if n.probed]
    if len(nodes) < 2:
        yield c.finding(Status.SKIP, "One node reported: nothing to compare")
        return
    names = sorted({k for n in nodes for k in n.env})
    comm, other = [], []
    for name in names:
        values = {n.label: (n.env_digests.get(name) or n.env.get(name)) if name in n.env else None for n in nodes}
        if len(set(values.values())) > 1:
            secret = any(name in n.env_digests for n in nodes)
            tags = {v: f"*** (value {i + 1})" for i, v in enumerate(dict.fromkeys(x for x in values.values() if x))}
            shown = {label: None if v is None else (tags[v] if secret else v) for label, v in values.items()}
            (comm if COMM_VARS.match(name) else other).append((name, shown))
    for items, status, what in ((comm, Status.WARN, "that change{} how ranks communicate"),
                                (other, Status.INFO, "")):
        if not items:
            continue
        one = len(items) == 1
        title = "; ".join(f"{name}: {_per_node(v, 'unset')}" for name, v in items[:3])
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        what = what.format("s" if one else "")
        yield c.finding(status, f"{len(items)} variable{'' if one else 's'} {what + ' ' if what else ''}"
                        f"differ{'s' if one else ''} between nodes: {title}{more}", id="distributed.env-drift" if status is Status.WARN
                        else "distributed.env-drift-other",
                        detail="\n".join(f"{name}: {_per_node(v, 'unset')}" for name, v in items),
                        fix="set the same values on every node (in the job script, before the launcher)",
                        docs=NCCL_ENV_DOCS if status is Status.WARN else None)
    if not comm and not other:
        yield c.finding(Status.OK, f"The NCCL, torch.distributed, CUDA and Hugging Face variables are the same on "
                        f"all {len(nodes)} nodes")


@check("distributed.cross-node", needs=["cluster"])
def cross_node_check(facts, c):
    """An all-reduce across the nodes (NCCL where every rank has a GPU, gloo otherwise).

    Bus bandwidth by nccl-tests' formula, latency, and its sums checked."""
    cl = facts.value("cluster")
    ar = cl.allreduce
    if ar is None or not ar.ran:
        yield c.finding(Status.SKIP, f"No all-reduce across nodes: {allreduce_not_run(ar) if ar else 'not run'}")
        return
    hosts = len({r.host for r in cl.ranks if r.state in ("reported", "joined-only")})
    where = f"across {ar.world} nodes" if hosts >= ar.world else \
        f"across {ar.world} ranks on {hosts} node{'s' * (hosts != 1)}"
    yield from allreduce_findings(ar, c, where=where, id_prefix="distributed.cross-node")


def cluster_checks():
    return (ranks_check, drift_check, env_drift_check, cross_node_check)
