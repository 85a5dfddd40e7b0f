"""The cluster report: facts about the job (``ClusterFacts``), per-node findings folded into
one list, and the merged JSON document that ``--replay`` reads back.

A merged report is an ordinary llmdoctor envelope (schema_version, findings, facts,
timing) with ``"kind": "cluster"``, the ``cluster`` fact, and ``nodes``: every rank's own
envelope (its facts and findings, secrets already masked on that node). Replaying it
judges every node's facts again with today's checks and folds them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from llmdoctor.facts import Facts, ProbeResult, load
from llmdoctor.model import Finding, category_titles
from llmdoctor.probes.allreduce import AllReduceFacts
from llmdoctor.report.envelope import Report, now_iso

KIND = "cluster"


@dataclass(frozen=True)
class RankState:
    rank: int
    state: str  #: "reported" | "joined-only" | "hung" | "crashed" | "never-joined"
    host: str | None = None
    pid: int | None = None
    local_rank: int | None = None
    #: the error the rank reported (its exception; with "unreadable-report": why its report does not
    #: read); in reports of llmdoctor before cause, also llmdoctor's sentence (read only)
    detail: str = ""
    #: what llmdoctor saw, for the checks to word: "probe-unfinished" (rank 0's own probe had not
    #: finished when the launcher stopped the job), "no-heartbeat" (its heartbeat stopped
    #: silent_after_s after rank 0 started, for stale_s), "unreadable-report"
    cause: str | None = None
    silent_after_s: float | None = None
    stale_s: float | None = None
    joined_after_s: float | None = None  #: seconds after rank 0 started
    torch: str | None = None  #: the torch of the process the launcher started
    cuda_devices: int = 0  #: GPUs that process's torch sees
    nccl: str | None = None


@dataclass(frozen=True)
class NodeSummary:
    """What is compared between nodes, taken from one node's facts."""

    rank: int
    label: str
    host: str
    probed: bool = True
    python: str | None = None  #: the target interpreter (for the fix commands)
    python_version: str | None = None
    driver: str | None = None
    cuda_driver: str | None = None
    torch: str | None = None
    torch_cuda: str | None = None
    nccl: str | None = None
    gpus: tuple[str, ...] = ()
    packages: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    env_digests: dict[str, str] = field(default_factory=dict)
    os_release: str | None = None


@dataclass(frozen=True)
class ClusterFacts:
    world_size: int
    launcher: str
    master: str  #: MASTER_ADDR:MASTER_PORT
    timeout_s: float
    rank0_host: str
    ranks: tuple[RankState, ...] = ()
    nodes: tuple[NodeSummary, ...] = ()
    allreduce: AllReduceFacts | None = None
    stopped_after_s: float | None = None  #: the launcher stopped rank 0 (SIGTERM) this long after it started


# --- node summaries ------------------------------------------------------------

def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def summarize(rank: int, label: str, facts: Facts, state: RankState | None = None) -> NodeSummary:
    node, target, gpu, torch = (facts.value(n) for n in ("node", "target", "gpu", "torch"))
    packages = {}
    for d in getattr(target, "distributions", ()) or ():
        if d.name and d.version:
            packages.setdefault(_canon(d.name), d.version)
    nccl = None
    live = getattr(torch, "live", None)
    if live is not None and live.nccl:
        nccl = live.nccl
    if nccl is None and state is not None and state.nccl:
        nccl = state.nccl
    if nccl is None:
        nccl = next((v for k, v in packages.items() if k.startswith("nvidia-nccl-")), None)
    return NodeSummary(
        rank=rank, label=label, host=getattr(node, "hostname", None) or (state.host if state else None) or "?",
        python=getattr(target, "executable", None) or getattr(target, "python", None),
        python_version=getattr(target, "python_version", None),
        driver=getattr(gpu, "driver_version", None) if getattr(gpu, "source", "none") not in ("none",) else None,
        cuda_driver=getattr(gpu, "cuda_driver_version", None),
        torch=(getattr(torch, "version", None) if getattr(torch, "installed", False) else None)
        or (state.torch if state else None),
        torch_cuda=getattr(torch, "cuda", None) if torch is not None else None,
        nccl=nccl, gpus=tuple(g.name or "?" for g in getattr(gpu, "gpus", ()) or ()), packages=packages,
        env=dict(getattr(node, "environ", {}) or {}), env_digests=dict(getattr(node, "secret_digests", {}) or {}),
        os_release=getattr(facts.value("system"), "os_release", None))


def labels(hosts: Mapping[int, str | None]) -> dict[int, str]:
    """A name per rank: the host name, with the rank where two ranks share a host."""
    count: dict[str, int] = {}
    for h in hosts.values():
        if h:
            count[h] = count.get(h, 0) + 1
    return {r: "unknown host" if not h else h if count[h] == 1 else f"{h}#{r}" for r, h in hosts.items()}


# --- folding ---------------------------------------------------------------------

def _key(f: Finding) -> str:
    return f.check or f.id


def _sig(f: Finding) -> tuple:
    return (f.id, f.status, f.title, f.fix, f.command)


def _tag(names: Sequence[str], all_names: Sequence[str]) -> str:
    rest = [n for n in all_names if n not in names]
    if len(all_names) > 2 and len(rest) < len(names):
        return f"[all but {', '.join(rest)}] "
    return f"[{', '.join(names)}] "


def _keyed(items: Sequence[Finding]) -> list[tuple]:
    """Each finding's signature with its occurrence: a line a node says twice stays twice."""
    seen: dict[tuple, int] = {}
    out = []
    for f in items:
        sig = _sig(f)
        out.append((sig, seen.get(sig, 0)))
        seen[sig] = seen.get(sig, 0) + 1
    return out


def _merge_order(sequences: Sequence[list]) -> list:
    """One order for every node's lines: a line only some nodes say goes just before the next
    line its node shares with those already placed (at the end where there is none)."""
    order: list = []
    placed: set = set()
    for keys in sequences:
        for i, k in enumerate(keys):
            if k in placed:
                continue
            after = next((n for n in keys[i + 1:] if n in placed), None)
            order.insert(order.index(after) if after is not None else len(order), k)
            placed.add(k)
    return order


def fold(node_findings: Sequence[tuple[str, Sequence[Finding]]]) -> list[Finding]:
    """One list from every node's findings. A finding that is the same on every node is said
    once; one that holds on only some nodes is said once, in its place, tagged with the nodes
    it holds for (``[node-b]``, or ``[all but node-c]``)."""
    names = [name for name, _ in node_findings]
    order: list[str] = []
    per: dict[str, dict[str, list[Finding]]] = {}
    for name, items in node_findings:
        for f in items:
            key = _key(f)
            if key not in per:
                per[key] = {}
                order.append(key)
            per[key].setdefault(name, []).append(f)
    out: list[Finding] = []
    for key in order:
        keyed = {name: _keyed(per[key].get(name, [])) for name in names}
        finding: dict[tuple, Finding] = {}  # as the first node that says it words it
        holders: dict[tuple, list[str]] = {}
        for name in names:
            for k, f in zip(keyed[name], per[key].get(name, [])):
                finding.setdefault(k, f)
                holders.setdefault(k, []).append(name)
        for k in _merge_order([keyed[name] for name in names]):
            f, where = finding[k], holders[k]
            if len(where) == len(names):
                out.append(f)
                continue
            out.append(replace(f, title=_tag(where, names) + f.title,
                               detail=(f.detail + "\n" if f.detail else "") + f"on: {', '.join(where)}"))
    return out


# --- the merged report -------------------------------------------------------------

def cluster_checks(only=(), skip=()):
    from llmdoctor.checks.distributed import cluster_checks as made
    from llmdoctor.plugins import select

    return select(list(made()), only, skip)


def node_report(envelope: Mapping, only=(), skip=()) -> Report:
    """A node's report as judged by today's checks (its facts replayed)."""
    from llmdoctor.check.flow import replay

    return replay(dict(envelope), only=only, skip=skip)


def build(cf: ClusterFacts, nodes: Sequence[tuple[RankState, Report | None]], *, only=(), skip=(),
          offline: bool = False, timing: dict | None = None, replayed_from: dict | None = None) -> Report:
    """The cluster report: node findings folded, then the cluster checks' findings."""
    from llmdoctor.check.runner import judge

    names = labels({s.rank: s.host for s, _ in nodes} | {r.rank: r.host for r in cf.ranks})
    summaries = tuple(summarize(s.rank, names[s.rank], rep.facts, s) for s, rep in nodes if rep is not None)
    cf = replace(cf, nodes=summaries)
    folded = fold([(names[s.rank], list(rep.findings)) for s, rep in nodes if rep is not None])
    facts = Facts({"cluster": ProbeResult("cluster", cf)})
    findings = folded + judge(cluster_checks(only, skip), facts, offline=offline)
    hosts = ", ".join(f"{names[r.rank]} (rank {r.rank})" for r in cf.ranks)
    target = {"python": None, "kind": KIND, "prefix": None, "python_version": None,
              "executable": f"cluster of {cf.world_size} rank{'s' * (cf.world_size != 1)} "
                            f"({'no launcher' if cf.launcher == 'none' else cf.launcher}): {hosts}"}
    from llmdoctor.check.flow import selected_checks

    titles = {**selected_checks().titles, **category_titles(cluster_checks(only, skip))}
    return Report(target=target, facts=facts, findings=tuple(findings), timing=timing or {}, offline=offline,
                  created=now_iso(), replayed_from=replayed_from, categories=titles)


def to_document(report: Report, envelopes: Sequence[Mapping | None], ranks: Sequence[RankState],
                shell: str | None = None) -> dict:
    """The merged JSON: the cluster envelope (fix commands written for ``shell``), then every
    node's own envelope."""
    from llmdoctor.report.envelope import to_json

    doc = to_json(report, shell)
    doc["kind"] = KIND
    by_rank = {r.rank: r for r in ranks}
    doc["nodes"] = [{"rank": r.rank, "host": r.host, "state": r.state,
                     "report": env} for r, env in zip([by_rank[k] for k in sorted(by_rank)], envelopes)]
    return doc


def is_cluster_document(data) -> bool:
    return isinstance(data, dict) and data.get("kind") == KIND and isinstance(data.get("nodes"), list)


def replay(data: dict, *, only=(), skip=()) -> tuple[Report, list, list]:
    """Judge a merged report again: every node's facts with today's checks, then fold."""
    from llmdoctor.report.envelope import ReplayError

    facts = data.get("facts")
    entry = facts.get("cluster") if isinstance(facts, dict) else None
    if not isinstance(entry, dict):
        raise ReplayError("the cluster report has no cluster facts (facts.cluster is not an object)")
    try:
        cf = load(ClusterFacts, entry.get("value"))
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ReplayError(f"cannot read the cluster facts: {type(exc).__name__}: {exc}") from None
    if not isinstance(cf, ClusterFacts):
        raise ReplayError("the cluster report has no cluster facts")
    nodes, envelopes = [], []
    states = {r.rank: r for r in cf.ranks}
    for item in data.get("nodes") or ():
        if not isinstance(item, dict) or type(item.get("rank")) is not int:
            continue
        host, said = item.get("host"), item.get("state")  # what the typed cluster facts do not hold: checked here
        state = states.get(item["rank"]) or RankState(rank=item["rank"], state=said if isinstance(said, str) else "?",
                                                       host=host if isinstance(host, str) else None)
        env = item.get("report")
        rep = None
        if isinstance(env, dict):
            try:
                rep = node_report(env, only, skip)
            except ReplayError:
                env = None  # a node entry that is not a report: that node is left out, the rest replays
        envelopes.append(env)
        nodes.append((state, rep))
    report = build(cf, nodes, only=only, skip=skip, offline=bool(data.get("offline")),
                   timing={"total_s": 0.0},
                   replayed_from={"created": data.get("created"), "tool": data.get("tool")})
    return report, envelopes, list(cf.ranks)


def hostname() -> str:
    import socket

    return socket.gethostname() or "?"
