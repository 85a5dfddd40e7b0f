"""How the GPUs of this node are linked, and the network NCCL would use.

GPU facts come from NVML (``pynvml`` from nvidia-ml-py, imported lazily): per GPU the
PCI bus id, NUMA node, maximum PCIe generation and width, and NVLink links; per pair
of GPUs the closest common ancestor in the PCIe tree (``nvmlDeviceGetTopologyCommonAncestor``,
what ``nvidia-smi topo -m`` prints as PIX/PXB/PHB/NODE/SYS) and the five peer-to-peer
capabilities (``nvmlDeviceGetP2PStatus``: read, write, NVLink, atomics, PCI).

The NVML calls are made by :func:`raw_nvml`, which returns NVML's own values (integers,
bus id strings) as plain JSON data; :func:`facts_from_raw` turns that into
:class:`TopologyFacts`. Recorded ``raw_nvml`` output from real multi-GPU machines is what
the tests replay (``tests/fixtures/multigpu/``), and ``tests/fixtures/real/record.sh``
records it where there is a GPU.

Network facts are read from /sys/class/net (interfaces, state, speed, addresses through
psutil) and /sys/class/infiniband (InfiniBand / RoCE ports, state, rate, link layer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from llmdoctor.probes.base import read_text

#: nvmlGpuTopologyLevel_t
TOPOLOGY_LEVELS = {0: "internal", 10: "single", 20: "multiple", 30: "hostbridge", 40: "node", 50: "system"}
#: the same levels as `nvidia-smi topo -m` prints them
SMI_LEGEND = {"internal": "X", "single": "PIX", "multiple": "PXB", "hostbridge": "PHB", "node": "NODE",
              "system": "SYS"}
#: nvmlGpuP2PStatus_t
P2P_STATUS = {0: "ok", 1: "chipset_not_supported", 2: "gpu_not_supported", 3: "ioh_topology_not_supported",
              4: "disabled_by_regkey", 5: "not_supported", 6: "unknown"}
#: nvmlGpuP2PCapsIndex_t, as literal ints: in nvidia-ml-py 13.615.71 NVML_P2P_CAPS_INDEX_READ
#: is the tuple (0,) (a trailing comma in pynvml.py), which the ctypes call would reject
P2P_CAPS = (("read", 0), ("write", 1), ("nvlink", 2), ("atomics", 3), ("pci", 4))
#: nvmlNvLinkDeviceType_t
NVLINK_REMOTE = {0: "gpu", 1: "ibmnpu", 2: "switch", 255: "unknown"}
MAX_NVLINKS = 36  #: NVML_NVLINK_MAX_LINKS in nvidia-ml-py 13.615


@dataclass(frozen=True)
class NvLink:
    link: int
    active: bool
    version: int | None = None
    remote_bus_id: str | None = None
    remote_type: str | None = None  #: "gpu" | "switch" | "ibmnpu" | "unknown"


@dataclass(frozen=True)
class TopoGpu:
    index: int
    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None  #: NVML's form, "00000000:4E:00.0"
    numa_node: int | None = None  #: None where the machine has one NUMA node or NVML cannot say
    pcie_gen_max: int | None = None  #: the fastest generation this GPU and this slot allow
    pcie_width_max: int | None = None
    pcie_gen: int | None = None
    pcie_width: int | None = None
    nvlinks: tuple[NvLink, ...] = ()
    visible: bool = True  #: selected by CUDA_VISIBLE_DEVICES (or no such variable)
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def active_nvlinks(self) -> tuple[NvLink, ...]:
        return tuple(link for link in self.nvlinks if link.active)


@dataclass(frozen=True)
class GpuPair:
    a: int
    b: int
    ancestor: str | None = None  #: TOPOLOGY_LEVELS value, None when NVML could not say
    p2p: dict[str, str] = field(default_factory=dict)  #: capability -> P2P_STATUS value
    nvlinks: int = 0  #: active NVLink links between the two (through NVSwitch: the lower GPU's count)
    nvswitch: bool = False  #: linked through NVSwitch rather than GPU to GPU

    @property
    def p2p_ok(self) -> bool | None:
        read, write = self.p2p.get("read"), self.p2p.get("write")
        if read is None and write is None:
            return None
        return read == "ok" and write == "ok"

    @property
    def legend(self) -> str:
        """What `nvidia-smi topo -m` prints for the pair: NV# where NVLink joins them."""
        if self.nvlinks:
            return f"NV{self.nvlinks}"
        return SMI_LEGEND.get(self.ancestor or "", "?")


@dataclass(frozen=True)
class Nic:
    name: str
    operstate: str | None = None  #: "up" | "down" | "unknown" ...
    speed_mbps: int | None = None  #: None when the kernel reports none (virtual, down)
    kind: str | None = None  #: "ether" | "infiniband" | "loopback" | other ARPHRD number
    virtual: bool = False  #: under /sys/devices/virtual (bridges, docker, veth, lo)
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class IbPort:
    device: str  #: mlx5_0
    port: int
    state: str | None = None  #: "ACTIVE", "DOWN", "INIT" ...
    phys_state: str | None = None  #: "LinkUp", "Disabled", "Polling" ...
    rate: str | None = None  #: "200 Gb/sec (4X HDR)"
    rate_gbps: float | None = None
    link_layer: str | None = None  #: "InfiniBand" | "Ethernet" (RoCE)


@dataclass(frozen=True)
class TopologyFacts:
    source: str  #: "nvml" | "none"
    #: why there are no GPU facts: "import-error" (nvidia-ml-py), "nvml-error" (nvmlInit failed),
    #: "bad-data" (NVML's answer was not a mapping); error: the exception, "Type: message"
    problem: str | None = None
    error: str | None = None
    reason: str | None = None  #: reports of llmdoctor before problem: their sentence (read only)
    driver_version: str | None = None
    gpus: tuple[TopoGpu, ...] = ()
    pairs: tuple[GpuPair, ...] = ()
    nics: tuple[Nic, ...] = ()
    ib_ports: tuple[IbPort, ...] = ()
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def visible_gpus(self) -> tuple[TopoGpu, ...]:
        return tuple(g for g in self.gpus if g.visible)

    def visible_pairs(self) -> tuple[GpuPair, ...]:
        seen = {g.index for g in self.visible_gpus}
        return tuple(p for p in self.pairs if p.a in seen and p.b in seen)

    def gpu(self, index: int) -> TopoGpu | None:
        return next((g for g in self.gpus if g.index == index), None)


# --- NVML: raw values -------------------------------------------------------

def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _call(nvml, errors: dict, key: str, name: str, *args, convert: Callable = lambda v: v):
    fn = getattr(nvml, name, None)
    if fn is None:
        errors[key] = f"{name} missing from this nvidia-ml-py"
        return None
    try:
        return convert(fn(*args))
    except Exception as exc:  # noqa: BLE001 - NVMLError_NotSupported, a binding bug: an unknown value
        errors[key] = f"{name}: {type(exc).__name__}: {exc}"
        return None


def _bus_id(info) -> str | None:
    value = _text(getattr(info, "busId", None) or getattr(info, "busIdLegacy", None))
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def _nvlinks(nvml, handle, errors: dict, index: int) -> list[dict]:
    links = []
    for link in range(MAX_NVLINKS):
        scratch: dict = {}
        state = _call(nvml, scratch, "state", "nvmlDeviceGetNvLinkState", handle, link)
        if state is None:  # NOT_SUPPORTED on GPUs without NVLink, INVALID_ARGUMENT past the last link
            if link == 0 and scratch and "NotSupported" not in scratch.get("state", "") \
                    and "Not Supported" not in scratch.get("state", ""):
                errors[f"gpu{index}.nvlink"] = scratch["state"]
            break
        entry: dict[str, Any] = {"link": link, "state": int(state)}
        if state:
            entry["version"] = _call(nvml, scratch, "version", "nvmlDeviceGetNvLinkVersion", handle, link)
            entry["remote_bus_id"] = _call(nvml, scratch, "remote", "nvmlDeviceGetNvLinkRemotePciInfo", handle, link,
                                           convert=_bus_id)
            entry["remote_type"] = _call(nvml, scratch, "type", "nvmlDeviceGetNvLinkRemoteDeviceType", handle, link)
        links.append(entry)
    return links


def _sysfs_numa(bus_id: str | None) -> int | None:
    """/sys/bus/pci/devices/0000:4e:00.0/numa_node (NVML's bus id has an 8-digit domain)."""
    if not bus_id or ":" not in bus_id:
        return None
    domain, rest = bus_id.split(":", 1)
    text = read_text(f"/sys/bus/pci/devices/{domain[-4:].lower()}:{rest.lower()}/numa_node")
    try:
        value = int((text or "").strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def raw_nvml(nvml) -> dict:
    """NVML's answers, as NVML gives them, as JSON data. ``nvml`` is the initialised pynvml module."""
    errors: dict[str, str] = {}
    raw: dict[str, Any] = {
        "driver_version": _call(nvml, errors, "driver", "nvmlSystemGetDriverVersion", convert=_text),
        "devices": [], "common_ancestor": [], "p2p": {cap: [] for cap, _ in P2P_CAPS}, "errors": errors,
    }
    count = _call(nvml, errors, "count", "nvmlDeviceGetCount") or 0
    handles = []
    for i in range(count):
        handle = _call(nvml, errors, f"gpu{i}.handle", "nvmlDeviceGetHandleByIndex", i)
        handles.append(handle)
        if handle is None:
            raw["devices"].append({"index": i})
            continue
        bus = _call(nvml, errors, f"gpu{i}.pci", "nvmlDeviceGetPciInfo", handle, convert=_bus_id)
        numa = _call(nvml, {}, "numa", "nvmlDeviceGetNumaNodeId", handle)
        raw["devices"].append({
            "index": i,
            "name": _call(nvml, errors, f"gpu{i}.name", "nvmlDeviceGetName", handle, convert=_text),
            "uuid": _call(nvml, errors, f"gpu{i}.uuid", "nvmlDeviceGetUUID", handle, convert=_text),
            "pci_bus_id": bus,
            "numa_node": numa if isinstance(numa, int) and numa >= 0 else _sysfs_numa(bus),
            "pcie_gen_max": _call(nvml, errors, f"gpu{i}.pcie_gen_max", "nvmlDeviceGetMaxPcieLinkGeneration", handle),
            "pcie_width_max": _call(nvml, errors, f"gpu{i}.pcie_width_max", "nvmlDeviceGetMaxPcieLinkWidth", handle),
            "pcie_gen": _call(nvml, errors, f"gpu{i}.pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", handle),
            "pcie_width": _call(nvml, errors, f"gpu{i}.pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", handle),
            "nvlinks": _nvlinks(nvml, handle, errors, i),
        })
    for i, hi in enumerate(handles):
        row = []
        for j, hj in enumerate(handles):
            if i == j or hi is None or hj is None:
                row.append(0 if i == j else None)
            else:
                row.append(_call(nvml, errors, f"ancestor{i}-{j}", "nvmlDeviceGetTopologyCommonAncestor", hi, hj))
        raw["common_ancestor"].append(row)
    for cap, index in P2P_CAPS:
        for i, hi in enumerate(handles):
            row = []
            for j, hj in enumerate(handles):
                if i == j or hi is None or hj is None:
                    row.append(None)
                else:
                    row.append(_call(nvml, errors, f"p2p.{cap}{i}-{j}", "nvmlDeviceGetP2PStatus", hi, hj, index))
            raw["p2p"][cap].append(row)
    return raw


# --- raw values -> facts (pure, never raises on garbage) ----------------------

def _int(value) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _cell(matrix, i: int, j: int):
    try:
        return matrix[i][j]
    except (IndexError, KeyError, TypeError):
        return None


def _short_bus(bus: str | None) -> str | None:
    """'00000000:4E:00.0' and '0000:4e:00.0' compare equal."""
    if not isinstance(bus, str) or ":" not in bus:
        return None
    domain, rest = bus.split(":", 1)
    return f"{domain[-4:].zfill(4)}:{rest}".upper()


def facts_from_raw(raw: Mapping, nics=(), ib_ports=(), visible: set[int] | None = None) -> TopologyFacts:
    """TopologyFacts from :func:`raw_nvml` data (live or recorded)."""
    if not isinstance(raw, Mapping):
        return TopologyFacts(source="none", problem="bad-data", nics=tuple(nics), ib_ports=tuple(ib_ports))
    gpus = []
    for pos, dev in enumerate(raw.get("devices") or ()):
        if not isinstance(dev, Mapping):
            continue
        index = _int(dev.get("index"))
        index = pos if index is None else index
        links = []
        for item in dev.get("nvlinks") or ():
            if not isinstance(item, Mapping) or _int(item.get("link")) is None:
                continue
            links.append(NvLink(link=_int(item["link"]), active=bool(_int(item.get("state"))),
                                version=_int(item.get("version")),
                                remote_bus_id=_short_bus(item.get("remote_bus_id")),
                                remote_type=NVLINK_REMOTE.get(_int(item.get("remote_type")))
                                if item.get("remote_type") is not None else None))
        numa = _int(dev.get("numa_node"))
        gpus.append(TopoGpu(
            index=index, name=dev.get("name") if isinstance(dev.get("name"), str) else None,
            uuid=dev.get("uuid") if isinstance(dev.get("uuid"), str) else None,
            pci_bus_id=_short_bus(dev.get("pci_bus_id")), numa_node=numa if numa is not None and numa >= 0 else None,
            pcie_gen_max=_int(dev.get("pcie_gen_max")), pcie_width_max=_int(dev.get("pcie_width_max")),
            pcie_gen=_int(dev.get("pcie_gen")), pcie_width=_int(dev.get("pcie_width")), nvlinks=tuple(links),
            visible=visible is None or index in visible))
    by_bus = {g.pci_bus_id: g.index for g in gpus if g.pci_bus_id}
    pairs = []
    p2p_raw = raw.get("p2p") if isinstance(raw.get("p2p"), Mapping) else {}
    for x, ga in enumerate(gpus):
        for y in range(x + 1, len(gpus)):
            gb = gpus[y]
            level = _int(_cell(raw.get("common_ancestor"), x, y))
            p2p = {}
            for cap, _ in P2P_CAPS:
                status = _int(_cell(p2p_raw.get(cap), x, y))
                if status is not None:
                    p2p[cap] = P2P_STATUS.get(status, "unknown")
            direct = sum(1 for link in ga.active_nvlinks if link.remote_bus_id and by_bus.get(link.remote_bus_id)
                         == gb.index)
            switched = 0
            if not direct and p2p.get("nvlink") == "ok":
                a = [link for link in ga.active_nvlinks if link.remote_type == "switch"]
                b = [link for link in gb.active_nvlinks if link.remote_type == "switch"]
                switched = min(len(a), len(b))
            pairs.append(GpuPair(a=ga.index, b=gb.index, ancestor=TOPOLOGY_LEVELS.get(level) if level is not None
                                 else None, p2p=p2p, nvlinks=direct or switched, nvswitch=bool(switched)))
    errors = raw.get("errors") if isinstance(raw.get("errors"), Mapping) else {}
    driver = raw.get("driver_version")
    return TopologyFacts(source="nvml", driver_version=driver if isinstance(driver, str) else None, gpus=tuple(gpus),
                         pairs=tuple(pairs), nics=tuple(nics), ib_ports=tuple(ib_ports),
                         unknown={str(k): str(v) for k, v in errors.items()})


# --- network ------------------------------------------------------------------

ARPHRD = {"1": "ether", "32": "infiniband", "772": "loopback"}


def read_nics(sys_net: str = "/sys/class/net", addrs: Mapping | None = None) -> tuple[Nic, ...]:
    """Interfaces with their state, speed and IP addresses."""
    try:
        names = sorted(os.listdir(sys_net))
    except OSError:
        return ()
    if addrs is None:
        try:
            import psutil

            addrs = psutil.net_if_addrs()
        except Exception:  # noqa: BLE001
            addrs = {}
    out = []
    for name in names:
        base = os.path.join(sys_net, name)
        speed = _int(read_text(os.path.join(base, "speed")))
        kind = (read_text(os.path.join(base, "type")) or "").strip()
        state = (read_text(os.path.join(base, "operstate")) or "").strip() or None
        try:
            virtual = "/devices/virtual/" in os.path.realpath(base)
        except OSError:
            virtual = False
        ips = []
        for a in addrs.get(name, ()) if isinstance(addrs, Mapping) else ():
            family = getattr(getattr(a, "family", None), "name", "")
            if family in ("AF_INET", "AF_INET6") and getattr(a, "address", None):
                ips.append(str(a.address).split("%")[0])
        out.append(Nic(name=name, operstate=state, speed_mbps=speed if speed and speed > 0 else None,
                       kind=ARPHRD.get(kind, kind or None), virtual=virtual, addresses=tuple(ips)))
    return tuple(out)


def _after_colon(text: str | None) -> str | None:
    """'4: ACTIVE' -> 'ACTIVE'."""
    if not text:
        return None
    text = text.strip()
    return text.split(":", 1)[1].strip() if ":" in text else text


def parse_rate(text: str | None) -> float | None:
    """'200 Gb/sec (4X HDR)' -> 200.0."""
    try:
        return float((text or "").split()[0])
    except (IndexError, ValueError):
        return None


def read_ib(sys_ib: str = "/sys/class/infiniband") -> tuple[IbPort, ...]:
    """InfiniBand and RoCE ports (an RDMA device whose link layer is Ethernet is RoCE)."""
    try:
        devices = sorted(os.listdir(sys_ib))
    except OSError:
        return ()
    out = []
    for dev in devices:
        ports_dir = os.path.join(sys_ib, dev, "ports")
        try:
            ports = sorted(os.listdir(ports_dir), key=lambda p: _int(p) or 0)
        except OSError:
            continue
        for port in ports:
            base = os.path.join(ports_dir, port)
            rate = (read_text(os.path.join(base, "rate")) or "").strip() or None
            out.append(IbPort(device=dev, port=_int(port) or 0, state=_after_colon(read_text(os.path.join(base, "state"))),
                              phys_state=_after_colon(read_text(os.path.join(base, "phys_state"))), rate=rate,
                              rate_gbps=parse_rate(rate),
                              link_layer=(read_text(os.path.join(base, "link_layer")) or "").strip() or None))
    return tuple(out)


# --- the probe ------------------------------------------------------------------

def probe_topology(ctx) -> TopologyFacts:
    from llmdoctor.probes.nvidia import Gpu, select_visible

    nics, ib = read_nics(), read_ib()
    try:
        import pynvml as nvml
    except Exception as exc:  # noqa: BLE001
        return TopologyFacts(source="none", problem="import-error", error=f"{type(exc).__name__}: {exc}", nics=nics,
                             ib_ports=ib)
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return TopologyFacts(source="none", problem="nvml-error", error=f"{type(exc).__name__}: {exc}", nics=nics,
                             ib_ports=ib)
    try:
        raw = raw_nvml(nvml)
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    stub = [Gpu(index=d.get("index", i), uuid=d.get("uuid")) for i, d in enumerate(raw["devices"])]
    visible, _, _ = select_visible(ctx.environ.get("CUDA_VISIBLE_DEVICES"), stub)
    return facts_from_raw(raw, nics, ib, visible)
