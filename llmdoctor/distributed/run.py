"""`llmdoctor check --distributed`: one rank per node, each probing its own node, rank 0
printing one cluster report.

Transport: torch.distributed only. Every rank reaches the c10d TCPStore at
MASTER_ADDR:MASTER_PORT, the store every launcher's env:// rendezvous uses (torchrun's
agent hosts it; elsewhere rank 0 does, as ``init_process_group`` would). Liveness
(heartbeats), each node's report, the plan and the measurements travel through it as
keys under ``llmdoctor/<run id>/``. The cross-node all-reduce is a process group (NCCL
where every rank has a GPU, gloo otherwise) formed, through the same store, by the
ranks that reported. Keys rather than a collective carry the reports because a
collective waits for every rank: one crashed or hung rank would silence all the others.

Time is bounded everywhere: rank 0 waits ``timeout_s`` for ranks to join and report
(a rank whose heartbeat stops is called crashed after ``HEARTBEAT_STALE_S``), the
all-reduce runs in a thread under its own deadline, and no rank waits on a teardown.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import signal
import sys
import threading
import time
import zlib
from typing import Callable, Mapping

from llmdoctor.model import Finding
from llmdoctor.probes.allreduce import LOCAL_TIMEOUT_S, AllReduceFacts, aggregate, run_local
from llmdoctor.report.envelope import ReplayError, Report, facts_from_json
from llmdoctor.distributed.cluster import ClusterFacts, RankState, build, labels
from llmdoctor.distributed.launch import LaunchError, RankInfo, rank_info

HEARTBEAT_S = 1.0
HEARTBEAT_STALE_S = 10.0  #: a joined rank whose heartbeat has not moved for this long has stopped
ALLREDUCE_TIMEOUT_S = 60.0
POLL_S = 0.2
#: after SIGTERM, how long rank 0 still collects before it reports: launchers send SIGKILL 30 s
#: after SIGTERM (torchrun's PContext.close, Slurm's default KillWait)
STOP_GRACE_S = 10.0
NO_TORCH = ("llmdoctor check --distributed needs torch in the environment that runs it ({python}): "
            "{python} -m pip install torch")


class Usage(Exception):
    """A one-line reason to stop with exit code 2."""


# --- what each rank does on its own node ------------------------------------------

def live_probes(rank_timeout_s: float = 120.0):
    """The built-in probes, with the single-node all-reduce live. Its deadline leaves room
    within the rank timeout, so that a hanging all-reduce is this node's finding, not a
    rank that never reported."""
    from llmdoctor.probes import builtin_probes

    deadline = max(20.0, min(LOCAL_TIMEOUT_S, rank_timeout_s - 25.0))

    def live(ctx):
        return run_local(ctx.target.python, ctx.environ, timeout_s=deadline)

    return [dataclasses.replace(p, fn=live, timeout_s=deadline + 15) if p.name == "allreduce" else p
            for p in builtin_probes()]


def probe_node(target, offline: bool, only, skip, environ: Mapping[str, str], rank_timeout_s: float = 120.0) -> dict:
    """This node's report as a JSON envelope, secrets masked here, before it is sent."""
    from llmdoctor.check.flow import diagnose
    from llmdoctor.report.render import json_text

    report = diagnose(target, offline=offline, only=only, skip=skip, environ=environ,
                      probes=live_probes(rank_timeout_s))
    return json.loads(json_text(report, environ))


def envelope_report(env: Mapping) -> Report:
    """A node's envelope as a Report, its findings as the node judged them."""
    from llmdoctor.probes import builtin_probes

    return Report(target=dict(env.get("target") or {}), facts=facts_from_json(dict(env), builtin_probes()),
                  findings=tuple(Finding.from_dict(f) for f in env.get("findings") or () if isinstance(f, dict)),
                  timing=dict(env.get("timing") or {}), offline=bool(env.get("offline")),
                  created=str(env.get("created") or ""))


def process_info(torch) -> dict:
    """The process the launcher started: host, torch, and the GPUs it sees."""
    from llmdoctor.distributed.cluster import hostname

    info = {"host": hostname(), "pid": os.getpid(), "python": sys.executable, "torch": torch.__version__,
            "cuda_devices": 0, "nccl": None}
    try:
        if torch.cuda.is_available():
            info["cuda_devices"] = torch.cuda.device_count()
            v = torch.cuda.nccl.version()
            info["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception as exc:  # noqa: BLE001 - a broken CUDA is the node report's business
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    return info


# --- the store ------------------------------------------------------------------------

def pack(data) -> bytes:
    return zlib.compress(json.dumps(data).encode("utf-8"))


MAX_REPORT = 64 * 1024 * 1024  #: a node's report, unpacked


def unpack(raw) -> object:
    try:
        d = zlib.decompressobj()
        text = d.decompress(bytes(raw), MAX_REPORT)
        if d.unconsumed_tail:
            return None
        return json.loads(text.decode("utf-8"))
    except (zlib.error, ValueError, TypeError):
        return None


def _resolve(host: str, port: int, timeout_s: float) -> None:
    """MASTER_ADDR must resolve: said at once, in one line (the store would retry for its whole
    timeout and then blame the connection)."""
    import socket

    _, error, finished = _in_thread(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s)
    if not finished:
        raise Usage(f"llmdoctor check --distributed: MASTER_ADDR={host!r} did not resolve within {timeout_s:g} s "
                    "(the name service does not answer)")
    if error:
        raise Usage(f"llmdoctor check --distributed: MASTER_ADDR={host!r} does not resolve: "
                    f"{error.split(': ', 1)[-1][:200]}")


class Control:
    """This rank's connection to the job's store, and its heartbeat."""

    def __init__(self, info: RankInfo, timeout_s: float):
        from torch.distributed import TCPStore

        self.info = info
        self.prefix = f"llmdoctor/{info.run_id}/"
        self.timeout = datetime.timedelta(seconds=max(5.0, timeout_s))
        host, port = info.master_addr or "127.0.0.1", info.master_port
        self.host, self.port = host, port
        serve = info.rank == 0 and not info.agent_store
        _resolve(host, port, self.timeout.total_seconds())
        wait = self.timeout.total_seconds() + 5.0
        stores, error, finished = _in_thread(lambda: (TCPStore(host, port, None, serve, self.timeout,
                                                               wait_for_workers=False),
                                                      TCPStore(host, port, None, False, self.timeout)), wait)
        what = "serve" if serve else "reach"
        if not finished:  # a program that accepts connections on the port and never answers
            raise Usage(f"rank {info.rank} cannot {what} the job's store at {host}:{port} (MASTER_ADDR:MASTER_PORT): "
                        f"no answer within {wait:g} s: is another program (not a torch.distributed store) "
                        "listening on MASTER_PORT?")
        if error:  # RuntimeError / DistNetworkError: say which and where
            raise Usage(f"rank {info.rank} cannot {what} the job's store at {host}:{port} "
                        f"(MASTER_ADDR:MASTER_PORT): {error.splitlines()[0][:300]}")
        self.store, self._hb_store = stores
        self._stop = threading.Event()

    def key(self, *parts) -> str:
        return self.prefix + "/".join(str(p) for p in parts)

    def put(self, data, *parts) -> None:
        self.store.set(self.key(*parts), pack(data))

    def has(self, *parts) -> bool:
        return bool(self.store.check([self.key(*parts)]))

    def take(self, *parts):
        return unpack(self.store.get(self.key(*parts)))

    def beats(self, rank: int) -> int:
        return int(self.store.add(self.key("hb", rank), 0))

    def start_heartbeat(self) -> None:
        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    self._hb_store.add(self.key("hb", self.info.rank), 1)
                except Exception:  # noqa: BLE001 - the store is gone: nothing left to tell
                    return

        self._hb_store.add(self.key("hb", self.info.rank), 1)
        threading.Thread(target=beat, daemon=True, name="llmdoctor-heartbeat").start()

    def new_client(self):
        from torch.distributed import TCPStore

        return TCPStore(self.host, self.port, None, False, self.timeout)


class Watch:
    """Rank 0's view of one rank: joined, reported, heartbeat moving."""

    def __init__(self, rank: int):
        self.rank = rank
        self.join: dict | None = None
        self.joined_at: float | None = None
        self.report: dict | None = None
        self.beats = -1
        self.moved_at: float | None = None
        self.state: str | None = None
        self.detail = ""  #: the error it reported
        self.cause: str | None = None  #: a RankState.cause
        self.silent_after_s: float | None = None


def _in_thread(fn: Callable, timeout_s: float):
    """(value, error, finished) of fn() run in a daemon thread for at most timeout_s."""
    box: dict = {}

    def go():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported as data
            box["error"] = f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=go, daemon=True, name="llmdoctor-allreduce")
    t.start()
    t.join(timeout_s)
    return box.get("value"), box.get("error"), not t.is_alive()


def _allreduce(ctl: Control, plan: dict, join: dict, torch) -> dict:
    """Take part in the cross-node all-reduce the plan describes; returns this rank's result."""
    import torch.distributed as dist

    from llmdoctor.distributed import allreduce

    members = plan["participants"]
    index = members.index(ctl.info.rank)
    backend = plan["backend"]
    device = "cpu"
    if backend == "nccl":
        device = f"cuda:{ctl.info.local_rank % max(1, join.get('cuda_devices') or 1)}"

    def work():
        from torch.distributed import PrefixStore

        if backend == "nccl":
            torch.cuda.set_device(device)
        store = PrefixStore(ctl.key("pg", ""), ctl.new_client())
        dist.init_process_group(backend, store=store, rank=index, world_size=len(members),
                                timeout=datetime.timedelta(seconds=plan["timeout_s"]))
        return allreduce.measure(dist, torch, device, tuple(plan["sizes"]), plan["iters"], plan["warmup"])

    value, error, finished = _in_thread(work, plan["timeout_s"] + 5)
    if not finished:
        return {"rank": ctl.info.rank, "hung": True}
    if error:
        return {"rank": ctl.info.rank, "error": error[:2000]}
    return value


# --- the two roles ------------------------------------------------------------------------

def _own_report(target, offline, only, skip, environ, join, timeout_s=120.0) -> tuple[dict | None, str]:
    if join.get("local_rank", 0) != 0:
        return None, "joined-only"
    try:
        return probe_node(target, offline, only, skip, environ, timeout_s), "reported"
    except Exception as exc:  # noqa: BLE001 - this node's own failure, told to rank 0
        return {"error": f"{type(exc).__name__}: {exc}"}, "crashed"


def worker(info: RankInfo, ctl: Control, torch, target, offline, only, skip, environ, timeout_s: float) -> int:
    """Every rank but 0: join, probe, report, take part in the all-reduce, wait for rank 0."""
    join = {**process_info(torch), "local_rank": info.local_rank}
    ctl.put(join, "join", info.rank)
    ctl.start_heartbeat()
    env, state = _own_report(target, offline, only, skip, environ, join, timeout_s)
    ctl.put({"state": state, "envelope": env}, "report", info.rank)
    deadline = time.monotonic() + timeout_s + ALLREDUCE_TIMEOUT_S + 30
    plan = _wait_for(ctl, ("plan",), deadline)
    if plan is None:
        print(f"llmdoctor: rank {info.rank}: rank 0 ({info.master_addr}) gave no plan in time", file=sys.stderr)
        return 1
    if info.rank in plan.get("participants", ()):
        ctl.put(_allreduce(ctl, plan, join, torch), "ar", info.rank)
    _wait_for(ctl, ("done",), time.monotonic() + plan.get("timeout_s", ALLREDUCE_TIMEOUT_S) + 30)
    return 0


def _wait_for(ctl: Control, parts, deadline: float):
    while time.monotonic() < deadline:
        try:
            if ctl.has(*parts):
                return ctl.take(*parts)
        except Exception:  # noqa: BLE001 - rank 0's store went away: it is done, or dead
            return None
        time.sleep(POLL_S)
    return None


def leader(info: RankInfo, ctl: Control, torch, target, offline, only, skip, environ, timeout_s: float,
           sizes, iters: int, stop: threading.Event | None = None) -> tuple[Report, list, list]:
    """Rank 0: probe too, collect every rank's report within the deadline, run the
    all-reduce across the ranks that reported, and build the cluster report.

    ``stop`` is set when the launcher stops the job (SIGTERM: torchrun, srun and mpirun stop
    every rank once one exits). Rank 0 then collects for STOP_GRACE_S more, skips the
    all-reduce and reports what it has, naming the ranks that had not reported."""
    start = time.monotonic()
    deadline = start + timeout_s
    stop = stop or threading.Event()
    stopped_at = None
    join0 = {**process_info(torch), "local_rank": info.local_rank}
    ctl.put(join0, "join", 0)
    ctl.start_heartbeat()
    own: dict = {}
    t = threading.Thread(target=lambda: own.update(zip(("env", "state"), _own_report(
        target, offline, only, skip, environ, join0, timeout_s))), daemon=True, name="llmdoctor-probe")
    t.start()
    watch = {r: Watch(r) for r in range(info.world_size)}
    watch[0].join, watch[0].joined_at = join0, 0.0
    while True:
        now = time.monotonic()
        if stop.is_set() and stopped_at is None:
            stopped_at = now - start
            deadline = min(deadline, now + STOP_GRACE_S)
        if stopped_at is not None and now > deadline and watch[0].state is None and t.is_alive():
            watch[0].state, watch[0].cause = "hung", "probe-unfinished"
        if not t.is_alive() and watch[0].state is None:
            watch[0].report = {"state": own.get("state"), "envelope": own.get("env")}
            watch[0].state = own.get("state") or "crashed"
            if watch[0].state == "crashed" and isinstance(own.get("env"), dict):
                watch[0].detail = str(own["env"].get("error") or "")[:300]
        for r in range(1, info.world_size):
            w = watch[r]
            if w.state is not None:
                continue
            try:
                if _poll(ctl, w, r, now, start):
                    continue
            except (RuntimeError, OSError):
                if stopped_at is None:
                    raise
                deadline = now  # the launcher took the store down with the job: report what is known
            if now >= deadline:
                w.state = "hung" if w.join is not None else "never-joined"
        if all(w.state is not None for w in watch.values()):
            break
        time.sleep(POLL_S)
    reported = [r for r, w in watch.items() if w.state in ("reported", "joined-only")]
    backend = "nccl" if reported and all((watch[r].join or {}).get("cuda_devices", 0) > 0 for r in reported) \
        else "gloo"
    names = labels({r: (w.join or {}).get("host") for r, w in watch.items()})
    plan = {"participants": reported, "backend": backend, "sizes": list(sizes), "iters": iters, "warmup": 2,
            "timeout_s": ALLREDUCE_TIMEOUT_S}
    if len(reported) < 2 or stopped_at is not None:
        plan["participants"] = []
    if stopped_at is None:
        ctl.put(plan, "plan")
    if plan["participants"]:
        results = {0: _allreduce(ctl, plan, join0, torch)}
        ar_deadline = time.monotonic() + ALLREDUCE_TIMEOUT_S + 15
        for r in reported[1:]:
            while time.monotonic() < ar_deadline and not ctl.has("ar", r):
                time.sleep(POLL_S)
            results[r] = ctl.take("ar", r) if ctl.has("ar", r) else {"rank": r, "silent": True}
        problems = {names[r]: "hung" if v.get("hung") else "silent" for r, v in results.items()
                    if isinstance(v, dict) and (v.get("hung") or v.get("silent"))}
        errors = {names[r]: str(v.get("error")) for r, v in results.items()
                  if isinstance(v, dict) and v.get("error") and names[r] not in problems}
        good = [v for r, v in results.items() if isinstance(v, dict) and not v.get("error") and names[r] not in problems]
        points, correct, worst = aggregate(good, len(reported)) if not (errors or problems) else ((), None, None)
        ar = AllReduceFacts(ran=True, scope="cluster", backend=backend, world=len(reported),
                            members=tuple(names[r] for r in reported), points=points, correct=correct, max_error=worst,
                            error=next(iter(errors.values()), None),
                            timed_out=bool(problems), rank_errors=errors, rank_problems=problems, timeout_s=ALLREDUCE_TIMEOUT_S, torch_version=torch.__version__,
                            nccl_version=join0.get("nccl") if backend == "nccl" else None)
    else:
        why = "stopped" if stopped_at is not None else "few-nodes" if info.world_size > 1 else "one-node"
        ar = AllReduceFacts(ran=False, scope="cluster", skip_kind=why)
    if stopped_at is None:
        ctl.put({"done": True}, "done")
    return _assemble(info, watch, names, ar, timeout_s, offline, only, skip, time.monotonic() - start,
                     stopped_after_s=None if stopped_at is None else round(stopped_at, 1))


def _poll(ctl: Control, w: Watch, r: int, now: float, start: float) -> bool:
    """One look at rank r in the store; True once its state is settled."""
    if w.join is None and ctl.has("join", r):
        w.join, w.joined_at = ctl.take("join", r) or {}, now - start
    if w.join is not None and ctl.has("report", r):
        w.report = ctl.take("report", r) or {}
        w.state = w.report.get("state") or "crashed"
        env = w.report.get("envelope")
        if w.state == "crashed" and isinstance(env, dict):
            w.detail = str(env.get("error") or "")[:300]
        return True
    if w.join is not None:
        beats = ctl.beats(r)
        if beats != w.beats:
            w.beats, w.moved_at = beats, now
        elif w.moved_at is not None and now - w.moved_at > HEARTBEAT_STALE_S:
            w.state, w.cause, w.silent_after_s = "crashed", "no-heartbeat", round(w.moved_at - start, 1)
            return True
    return False


def _assemble(info, watch, names, ar, timeout_s, offline, only, skip, elapsed, stopped_after_s=None):
    states, nodes, envelopes = [], [], []
    for r in sorted(watch):
        w = watch[r]
        join = w.join or {}
        env = (w.report or {}).get("envelope") if w.state == "reported" else None
        state = RankState(rank=r, state=w.state or "never-joined", host=join.get("host"), pid=join.get("pid"),
                          local_rank=join.get("local_rank"), detail=w.detail, cause=w.cause,
                          silent_after_s=w.silent_after_s, stale_s=HEARTBEAT_STALE_S if w.silent_after_s is not None
                          else None,
                          joined_after_s=None if w.joined_at is None else round(w.joined_at, 2),
                          torch=join.get("torch"), cuda_devices=int(join.get("cuda_devices") or 0),
                          nccl=join.get("nccl"))
        if isinstance(env, dict):
            try:
                nodes.append((state, envelope_report(env)))
            except (ReplayError, TypeError, ValueError, AttributeError, KeyError) as exc:
                state = dataclasses.replace(state, state="crashed", cause="unreadable-report", detail=str(exc)[:300])
                env = None
        states.append(state)
        envelopes.append(env if isinstance(env, dict) else None)
    cf = ClusterFacts(world_size=info.world_size, launcher=info.launcher,
                      master=f"{info.master_addr or '-'}:{info.master_port}", timeout_s=timeout_s,
                      rank0_host=names.get(0, "?"), ranks=tuple(states), allreduce=ar,
                      stopped_after_s=stopped_after_s)
    report = build(cf, nodes, only=only, skip=skip, offline=offline, timing={"total_s": round(elapsed, 3)})
    return report, envelopes, states


def single(info: RankInfo, torch, target, offline, only, skip, environ, timeout_s: float):
    """No launcher (or a world of one): this node alone, without a store."""
    start = time.monotonic()
    join = {**process_info(torch), "local_rank": info.local_rank}
    env, state = _own_report(target, offline, only, skip, environ, {**join, "local_rank": 0}, timeout_s)
    w = Watch(0)
    w.join, w.joined_at, w.state = join, 0.0, state
    w.report = {"state": state, "envelope": env}
    if state == "crashed" and isinstance(env, dict):
        w.detail = str(env.get("error") or "")[:300]
    names = labels({0: join.get("host")})
    ar = AllReduceFacts(ran=False, scope="cluster", skip_kind="one-node")
    return _assemble(info, {0: w}, names, ar, timeout_s, offline, only, skip, time.monotonic() - start)


# --- entry point ----------------------------------------------------------------------------

STOP = threading.Event()  #: set by SIGTERM once catch_sigterm() ran


def catch_sigterm(environ: Mapping[str, str] | None = None) -> None:
    """On rank 0 of a job, from now on SIGTERM sets STOP instead of ending the process, so that
    it still prints the report when the launcher stops the job (torchrun, srun and mpirun stop
    every rank once one exits). Called first thing by `check --distributed`, before torch is
    imported. The other ranks keep the default: SIGTERM ends them."""
    try:
        info = rank_info(os.environ if environ is None else environ)
    except LaunchError:
        return
    if info.rank == 0 and info.world_size > 1 and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: STOP.set())


@dataclasses.dataclass(frozen=True)
class Outcome:
    info: RankInfo
    report: Report | None = None  #: rank 0's cluster report; None on the other ranks
    envelopes: tuple = ()  #: every rank's own envelope (None where it sent none)
    states: tuple = ()
    code: int = 0  #: the exit code of a rank other than 0


def run(python, offline: bool, only, skip, *, timeout_s: float, environ: Mapping[str, str] | None = None,
        sizes=None, iters: int = 10) -> Outcome:
    """Take this rank's part; rank 0 returns the cluster report. Raises Usage (one line)
    when torch is missing or the launcher's variables do not add up."""
    from llmdoctor.distributed.allreduce import SIZES

    environ = dict(os.environ if environ is None else environ)
    try:
        info = rank_info(environ)
    except LaunchError as exc:
        raise Usage(f"llmdoctor check --distributed: {exc}") from None
    # c10d logs each failed store call as a warning with a C++ stack dump (a peer that closed the
    # store, a port that does not answer); this command says what went wrong in one line instead.
    # The level is read when torch loads; the user's own setting wins.
    quiet = "TORCH_CPP_LOG_LEVEL" not in os.environ
    if quiet:
        os.environ["TORCH_CPP_LOG_LEVEL"] = "ERROR"
    try:
        import torch
        import torch.distributed  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a torch that fails to import
        raise Usage(NO_TORCH.format(python=sys.executable)) from None
    finally:
        if quiet:
            os.environ.pop("TORCH_CPP_LOG_LEVEL", None)
    from llmdoctor.target import TargetError, resolve_target

    try:
        target = resolve_target(python, environ)
    except TargetError as exc:
        raise Usage(f"--python: {exc}") from None
    if info.world_size == 1:
        report, envelopes, states = single(info, torch, target, offline, only, skip, environ, timeout_s)
        return Outcome(info, report, tuple(envelopes), tuple(states))
    ctl = Control(info, timeout_s)
    try:
        if info.rank != 0:
            return Outcome(info, code=worker(info, ctl, torch, target, offline, only, skip, environ, timeout_s))
        report, envelopes, states = leader(info, ctl, torch, target, offline, only, skip, environ, timeout_s,
                                           sizes or SIZES, iters, STOP)
    except (RuntimeError, OSError) as exc:  # the store went away under us (its host died)
        raise Usage(f"rank {info.rank}: the job's store at {ctl.host}:{ctl.port} stopped answering: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    return Outcome(info, report, tuple(envelopes), tuple(states))
