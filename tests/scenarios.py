"""Whole-machine scenarios for the cross-check harness (tests/test_crosscheck.py) and the
situation tests: facts for every probe, built from a few knobs (driver, GPU, torch build,
nvcc, Python, installed packages, TLS setting), and the invariants a report must keep."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from factories import GiB, clock, dist, gpu, gpus, system, target, toolkit, torch_facts
from llmdoctor import compat
from llmdoctor.facts import Facts, ProbeResult
from llmdoctor.model import Status
from llmdoctor.net import Cert, EndpointResult, Phase
from llmdoctor.probes.network import HubCall, NetConfigFacts, NetworkFacts
from llmdoctor.probes.python_env import ImportFacts
from llmdoctor.versions import parse_version
from llmdoctor.report.shells import fix_text

#: (driver, the CUDA NVML reports) pairs seen on real machines
DRIVERS = (
    ("450.80.02", "11.0"), ("460.91.03", "11.2"), ("470.256.02", "11.4"), ("510.108.03", "11.6"),
    ("520.61.05", "11.8"), ("525.147.05", "12.0"), ("535.129.03", "12.2"), ("545.29.06", "12.3"),
    ("550.54.15", "12.4"), ("560.35.03", "12.6"), ("570.86.10", "12.8"), ("575.57.08", "12.9"),
    ("580.95.05", "13.0"), ("535.129.03", None),  # nvidia-smi fallback: no CUDA version reported
)
#: (name, compute capability, memory GiB)
GPUS = (
    ("Tesla K80", (3, 7), 12), ("Tesla P40", (6, 1), 24), ("Tesla V100-SXM2-32GB", (7, 0), 32),
    ("Tesla T4", (7, 5), 15), ("NVIDIA GeForce RTX 3070", (8, 6), 8), ("NVIDIA GeForce RTX 3090", (8, 6), 24),
    ("NVIDIA A100-SXM4-80GB", (8, 0), 80), ("NVIDIA GeForce RTX 4090", (8, 9), 24), ("NVIDIA L4", (8, 9), 22),
    ("NVIDIA H100 80GB HBM3", (9, 0), 80), ("NVIDIA B200", (10, 0), 180), ("NVIDIA GeForce RTX 5090", (12, 0), 32),
)
NVCCS = (None, "11.2.152", "11.8.89", "12.1.105", "12.4.131", "12.8.93", "13.0.48")
PYTHONS = ((3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14))


def realistic(driver: str, cuda: str | None, cc: tuple[int, int]) -> bool:
    """A driver that knows the GPU: its CUDA is at least the first toolkit for that architecture."""
    low, _ = compat.toolkit_window([cc])
    native = parse_version(cuda) or compat.native_cuda(parse_version(driver))
    return low is None or native is None or (native.major, native.minor) >= (low.major, low.minor)


@dataclass(frozen=True)
class Scenario:
    driver: tuple[str, str | None] = ("550.54.15", "12.4")
    gpu: tuple = GPUS[7]
    torch: str | None = "2.5.1+cu124"  #: "2.9.0+cpu", "2.5.1+cu121", None: not installed
    nvcc: str | None = "12.4.131"
    python: tuple[int, int] = (3, 11)
    packages: tuple[tuple[str, str], ...] = ()
    requires: dict = field(default_factory=dict)  #: package -> its Requires-Dist lines
    native_libs: dict = field(default_factory=dict)
    net_env: dict = field(default_factory=dict)
    intercepted: bool = False  #: the hub's TLS is intercepted by a CA the machine does not trust
    hub_state: str = "ok"  #: "ok" | "dns" | "tcp" | "http" | "portal" | "expired" (ignored when intercepted)
    mirror_ok: bool = False  #: hf-mirror.com answers as a hub
    call: HubCall | None = None  #: the target's hub call as recorded
    ram_gib: int = 64
    cpus: int = 16
    build_env: dict = field(default_factory=dict)
    live: bool = False  #: a live torch test ran (and agrees with the model)

    @property
    def verification_off(self) -> bool:
        """requests < 2.28 with an empty CURL_CA_BUNDLE and no REQUESTS_CA_BUNDLE: the stack
        verifies nothing (what the hub call's own answer would say too)."""
        versions = dict(self.packages)
        requests = parse_version(versions.get("requests"))
        return (self.call is not None and self.call.client == "requests" and requests is not None
                and requests < parse_version("2.28") and self.net_env.get("CURL_CA_BUNDLE") == ""
                and not self.net_env.get("REQUESTS_CA_BUNDLE"))


def _torch(s: Scenario, m: compat.Machine):
    if s.torch is None:
        return torch_facts(installed=False, version=None, build=None, cuda=None, location=None,
                           has_libtorch_cuda=False)
    version, _, local = s.torch.partition("+")
    cuda = compat.variant_cuda(local)
    build = "cuda" if cuda else ("rocm" if local.startswith("rocm") else "cpu")
    t = torch_facts(version=s.torch, build=build, cuda=f"{cuda.major}.{cuda.minor}" if cuda else None,
                    hip="6.2" if build == "rocm" else None)
    if s.live and build == "cuda":
        from factories import live_torch
        from llmdoctor.probes.pytorch import TorchDevice

        # what torch itself does: a driver too old for its CUDA fails is_available(); a GPU whose
        # architecture the wheel lacks is available, and its first kernel fails ("no kernel image")
        b = compat.running_build(s.torch, t.cuda)
        got = compat.fit(b, m, trust_python=True) if b is not None else None
        driver_ok = got is not None and "driver" not in got.kinds
        works = got is not None and got.ok
        name, cc, mem = s.gpu
        dev = TorchDevice(0, name, f"{cc[0]}.{cc[1]}", mem * GiB, works, 1e-5 if works else None,
                          None if works else "CUDA error: no kernel image is available for execution on the device")
        t = replace(t, live=live_torch(arch_list=b.archs if b else (), devices=(dev,) if driver_ok else (),
                                       device_count=1 if driver_ok else 0, cuda_available=driver_ok,
                                       error=None if driver_ok else "The NVIDIA driver on your system is too old"))
    return t


def facts_of(s: Scenario) -> Facts:
    name, cc, mem = s.gpu
    g = gpus(gpu(name=name, cc_major=cc[0], cc_minor=cc[1], memory_total_bytes=mem * GiB),
             driver_version=s.driver[0], cuda_driver_version=s.driver[1])
    py = ".".join(map(str, s.python))
    markers = {"implementation_name": "cpython", "os_name": "posix", "platform_machine": "x86_64",
               "platform_system": "Linux", "python_version": py, "python_full_version": py + ".0",
               "sys_platform": "linux", "platform_python_implementation": "CPython"}
    dists = [dist(n, v, *s.requires.get(n, ())) for n, v in s.packages]
    if s.torch is not None and "torch" not in dict(s.packages):
        dists.append(dist("torch", s.torch))
    t = target(version_info=(*s.python, 0), python_version=py + ".0", markers=markers, distributions=tuple(dists),
               native_libs=dict(s.native_libs), net_env=dict(s.net_env), build_env=dict(s.build_env),
               include_dir=f"/usr/include/python{py}")
    m = compat.machine_of(g, t)
    ok = (Phase("dns", True, 0.01), Phase("tcp", True, 0.02), Phase("tls", True, 0.05), Phase("http", True, 0.1))
    if s.intercepted:
        root = Cert("CN=Corp Inspection CA", "CN=Corp Inspection CA", "AB:" * 31 + "CD", "2024-01-01T00:00:00+00:00",
                    "2034-01-01T00:00:00+00:00", is_ca=True, self_signed=True)
        hub = EndpointResult("hub", "https://huggingface.co", "huggingface.co", 443,
                             (Phase("dns", True, 0.01), Phase("tcp", True, 0.02),
                              Phase("tls", False, 0.05, "CERTIFICATE_VERIFY_FAILED")), tls_error="untrusted",
                             chain=(root,))
    elif s.hub_state == "ok":
        hub = EndpointResult("hub", "https://huggingface.co", "huggingface.co", 443, ok, status=200,
                             headers={"x-repo-commit": "607a30d783dfa663caf39e06633721c8d4cfcd7e", "etag": '"a"'},
                             hub_headers=True)
    else:
        failed = {"dns": (Phase("dns", False, 0.01, "cannot resolve huggingface.co: [Errno -2] Name or service "
                                                    "not known"),),
                  "tcp": (Phase("dns", True, 0.01), Phase("tcp", False, 4.0, "cannot connect: timed out")),
                  "http": (*ok[:3], Phase("http", False, 8.0, "no answer within 8 s")),
                  "portal": ok, "expired": ok[:2] + (Phase("tls", False, 0.05, "certificate has expired"),)}
        hub = EndpointResult("hub", "https://huggingface.co", "huggingface.co", 443, failed[s.hub_state],
                             status=200 if s.hub_state == "portal" else None,
                             headers={"content-type": "text/html"} if s.hub_state == "portal" else {},
                             hub_headers=False if s.hub_state == "portal" else None,
                             tls_error="expired" if s.hub_state == "expired" else None,
                             chain=(Cert("CN=huggingface.co", "CN=Amazon RSA 2048 M02", "12:" * 31 + "34",
                                         "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),)
                             if s.hub_state == "expired" else (), local_date="2026-11-26T10:00:00+00:00")
    results = [hub]
    if s.mirror_ok:
        results.append(EndpointResult("mirror", "https://hf-mirror.com", "hf-mirror.com", 443, ok, status=200,
                                      headers={"x-repo-commit": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
                                               "etag": '"a"'}, hub_headers=True))
    net = NetworkFacts(endpoint="https://huggingface.co", endpoint_from="default", repo="openai-community/gpt2",
                       results=tuple(results), hub_call=s.call)
    tk = toolkit((s.nvcc, f"/usr/local/cuda-{s.nvcc[:4]}/bin/nvcc", "PATH")) if s.nvcc else toolkit()
    sysf = system(ram_total_bytes=s.ram_gib * GiB, ram_available_bytes=int(s.ram_gib * 0.9) * GiB,
                  cpu_usable=s.cpus, cpu_logical=s.cpus)
    values = {"gpu": g, "torch": _torch(s, m), "target": t, "cuda": tk, "system": sysf, "clock": clock(),
              "network": net, "netconfig": NetConfigFacts(), "target.imports": ImportFacts(),
              "target.extensions": ImportFacts()}
    return Facts({k: ProbeResult(k, v) for k, v in values.items()})


def report(f: Facts) -> list:
    """Every built-in check on ``f``, in this thread (the runner's per-check threads only add
    deadlines; checks are pure, so the findings are the same)."""
    from llmdoctor.checks import builtin_checks
    from llmdoctor.model import Finding

    out = []
    for c in builtin_checks():
        if any(f.value(n) is None for n in c.needs):
            continue
        try:
            out += list(c.run(f))
        except Exception as exc:  # noqa: BLE001 - a crash is an invariant violation, reported as such
            out.append(Finding(f"{c.id}.crashed", c.category, Status.ERROR, f"{type(exc).__name__}: {exc}"))
    return out


# --- invariants ------------------------------------------------------------------

TORCH_PIN = re.compile(r"torch==(\S+) --index-url https://download\.pytorch\.org/whl/(\S+?)(?=[,\s]|$)")
DRIVER_STEP = re.compile(r"upgrade the NVIDIA driver to (\S+) or newer")
PYTHON_STEP = re.compile(r"use a Python (\d+)\.(\d+) environment")
TORCH_ARG = re.compile(r"(?:^|\s)'?torch((?:[<>=!~]=?)[^\s',]*)?'?(?=[\s,]|$)")


def unpinned_torch(text: str) -> bool:
    """A pip install of torch that is not ``torch==X --index-url https://download.pytorch.org/whl/V``."""
    for command in re.split(r", then: |   \(|; ", text):
        if "pip install" not in command:
            continue
        for m in TORCH_ARG.finditer(command):
            spec = m.group(1) or ""
            if not (spec.startswith("==") and TORCH_PIN.search(command)):
                return True
    return False
FLASH_PIN = re.compile(r"flash-attn==(\S+)")


def contradictions(findings) -> list[str]:
    """Questions two findings answer differently."""
    answers: dict[str, dict[str, list[str]]] = {}
    for f in findings:
        for q, a in f.claims:
            answers.setdefault(q, {}).setdefault(a, []).append(f.id)
    return [f"{q}: " + "; ".join(f"{a} ({', '.join(ids)})" for a, ids in sorted(by.items()))
            for q, by in answers.items() if len(by) > 1]


def unrunnable_installs(findings, f: Facts) -> list[str]:
    """Fixes that install a torch (or flash-attn) the compatibility model does not have, or
    that this machine cannot run after the fix's own earlier steps."""
    from llmdoctor.data import table

    m = compat.machine_of(f.value("gpu"), f.value("target"))
    t = f.value("torch")
    current = compat.torchbuilds.base(t.version) if t is not None and t.installed else None
    flash = {r["version"] for r in table("llmdoctor.compat", "flash_attn")["wheels"]["releases"]}
    fa2_cc = tuple(int(x) for x in next(r for r in table("llmdoctor.compat", "flash_attn")["rows"]
                                        if r["name"] == "fa2")["min_cc"].split("."))
    anything = compat.prescribe(m).build  #: a torch that runs here, whatever else is installed
    bad = []
    for x in findings:
        text = fix_text(x) or ""
        for pos, match in ((mm.start(), mm) for mm in TORCH_PIN.finditer(text)):
            version, variant = match.groups()
            b = compat.find(version, variant)
            if b is None:
                bad.append(f"{x.id}: torch {version}+{variant} is not a published build: {text}")
                continue
            before = text[:pos]
            mach = m
            d = DRIVER_STEP.search(before)
            if d:
                dv = parse_version(d.group(1))
                mach = replace(mach, driver=compat.Driver(dv, compat.native_cuda(dv, mach.driver.platform), mach.driver.platform,
                                                          d.group(1)))
            p = PYTHON_STEP.search(before)
            if p:
                mach = replace(mach, python=(int(p.group(1)), int(p.group(2))))
            fit = compat.fit(b, mach, trust_python=(version == current and not p))
            if not fit.ok:
                bad.append(f"{x.id}: torch {b.label} does not run here after the steps before it: "
                           + "; ".join(pr.text for pr in fit.problems) + f" [{text}]")
        if unpinned_torch(text):
            bad.append(f"{x.id}: installs an unpinned torch (PyPI's default build, whatever the driver): {text}")
        if re.search(r"pip install(?: --\S+)* flash-attn(?!=)", text):
            bad.append(f"{x.id}: installs an unpinned flash-attn: {text}")
        for version in FLASH_PIN.findall(text):
            if version.rstrip(",") not in flash:
                bad.append(f"{x.id}: flash-attn {version} has no release on record: {text}")
        if "flash-attn" in text and "pip install" in text and m.ccs and all(cc < fa2_cc for cc in m.ccs):
            bad.append(f"{x.id}: installs flash-attn where no GPU runs FlashAttention-2: {text}")
        for where in (x.title, text, x.detail or ""):
            if NO_BUILD_AT_ALL.search(where) and anything is not None:
                bad.append(f"{x.id}: says no torch runs on this GPU, but torch {anything.label} does: {where}")
    return bad


NO_BUILD_AT_ALL = re.compile(r"no PyTorch build on record runs on compute capability")


SHELL_ENV = {"PATH": "/usr/bin:/bin", "CUDA_HOME": "/usr/local/cuda", "HOME": "/home/u", "USER": "u",
             "LIBRARY_PATH": ""}


def unreadable_commands(findings) -> list[str]:
    """Fix commands that do not read back, in POSIX sh, PowerShell and cmd alike, as the argv
    and variables they hold (tests/shell_parsers.py: each shell's quoting rules)."""
    from llmdoctor.report.shells import render
    from shell_parsers import Unparsed, cmd_steps, expected_steps, flatten_env, posix_steps, ps_steps

    bad = []
    for x in findings:
        for command in (x.command.commands if x.command is not None else ()):
            for shell, parse in (("sh", posix_steps), ("powershell", ps_steps), ("cmd", cmd_steps)):
                if command.shell and shell != command.shell:
                    continue
                want = expected_steps(command, SHELL_ENV)
                text = render(command, shell)
                try:
                    got = parse(text, SHELL_ENV)
                except (Unparsed, ValueError, IndexError) as exc:
                    bad.append(f"{x.id}: {shell} cannot run {text!r}: {exc}")
                    continue
                if got != (want if shell == "sh" else flatten_env(want)):
                    bad.append(f"{x.id}: {shell} reads {text!r} as {got}, not {want}")
    return bad


def fails_without_fix(findings) -> list[str]:
    return [f"{f.id}: {f.title}" for f in findings if f.status is Status.FAIL and not (fix_text(f) or "").strip()]


def crashes(findings) -> list[str]:
    return [f"{f.id}: {f.title}" for f in findings if f.status is Status.ERROR]


def tls_ok_while_off(findings, s: Scenario) -> list[str]:
    if not s.verification_off:
        return []
    return [f"{f.id}: {f.title}" for f in findings if f.category == "network" and f.status is Status.OK
            and re.search(r"verif|TLS|certificate", f.title)]


def violations(s: Scenario) -> list[str]:
    f = facts_of(s)
    got = report(f)
    return (contradictions(got) + unrunnable_installs(got, f) + fails_without_fix(got) + crashes(got)
            + tls_ok_while_off(got, s) + unreadable_commands(got))
