"""PyTorch checks: CPU-only build on a GPU machine, driver too old for torch's CUDA, the
live GPU test, and GPU architectures missing from the build."""

from __future__ import annotations

from dataclasses import replace

from llmdoctor import compat
from llmdoctor.command import Command, FixLine, line, run
from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from llmdoctor.checks.failures import live_error
from llmdoctor.checks.host import wsl2
from llmdoctor.checks.nvidia import no_gpu
from llmdoctor.checks.python import pip_cmd

PREVIOUS_VERSIONS = "https://pytorch.org/get-started/previous-versions/"
NO_KERNEL_DOCS = "https://pytorch.org/get-started/locally/"
MINOR_COMPAT = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html"


def machine(facts) -> compat.Machine:
    """This machine as the compatibility model sees it: driver, GPUs, Python, platform."""
    m = compat.machine_of(facts.value("gpu"), facts.value("target"))
    # WSL 2 runs the Windows driver (its version a Windows one), judged by NVIDIA's Windows column
    return replace(m, driver=replace(m.driver, platform="wsl")) if wsl2(facts) else m


def torch_command(facts, build: compat.TorchBuild) -> Command:
    return pip_cmd(facts, "install", "--force-reinstall", f"torch=={build.version}", "--index-url", build.index_url)


def prescription_fix(facts, p: compat.Prescription) -> FixLine | None:
    """The steps of a prescription as one line: the blocker first (in words), then the pip command."""
    if p.build is None:
        return None
    words = [s.text for s in p.steps if s.kind != "torch"]
    return line(*(w + ", then: " for w in words), torch_command(facts, p.build))


def prescription_detail(p: compat.Prescription) -> str:
    if p.build is None:
        return p.why
    lines = []
    if p.blocked:
        lines.append(f"No build of the wanted torch runs here as the machine is: {p.why}.")
    lines.append(f"torch {p.build.label} is published (source: {p.build.source}) and has kernels for "
                 f"{', '.join(p.build.archs) or 'every GPU'}.")
    if p.alternative and p.alternative.build:
        lines.append(f"Without changing the driver: torch {p.alternative.build.label} runs on it as it is.")
    if p.unknown:
        lines.append("Not judged (unknown here): " + "; ".join(p.unknown) + ".")
    return " ".join(lines)


def prescription_claims(p: compat.Prescription) -> list[tuple[str, str]]:
    """What a prescription asserts about the machine: whether its build runs here as it is."""
    if p.build is None:
        return []
    return [(f"torch-build-runs:{p.build.label}", "no" if p.blocked else "yes")]


def prescribe(facts, **kw) -> compat.Prescription:
    """The compatibility model's torch for this machine; the user's version kept where it can be."""
    t = facts.value("torch")
    if t is not None:
        kw.setdefault("current", t.version if t.installed else None)
    else:  # torch not probed: its distribution's version
        from llmdoctor.checks.requirements import installed_version

        kw.setdefault("current", installed_version(facts.value("target"), "torch"))
    kw.setdefault("spec", torch_requirements(facts))
    return compat.prescribe(machine(facts), **kw)


def torch_fix_for(facts):
    """The command that installs a torch meeting every installed requirement on it and running
    here (``llmdoctor fix --torch`` where the GPU was not probed: it probes it)."""
    g = facts.value("gpu")
    if g is None:
        return run("llmdoctor", "fix", "--torch")
    p = prescribe(facts)
    return (prescription_fix(facts, p)
            or f"no torch build on record meets the requirements and runs here: {p.why}" + pinned_by(facts))


def torch_requirements(facts):
    """Every installed distribution's requirement on torch, merged (so that a prescribed
    torch keeps transformers, bitsandbytes, ... satisfied)."""
    from packaging.specifiers import SpecifierSet

    from packaging.utils import canonicalize_name

    from llmdoctor.checks.requirements import implied_requirements, needs_on

    target = facts.value("target")
    merged = SpecifierSet()
    for need in needs_on(target, "torch"):
        merged &= need.req.specifier
    for _, _, req in implied_requirements(target):  # transformers' [torch] floor: below it transformers drops torch
        if canonicalize_name(req.name) == "torch":
            merged &= req.specifier
    return merged


def driver_words(g) -> str:
    """'535.129.03 (CUDA 12.2 natively; CUDA 12.x through minor-version compatibility)'."""
    d = compat.driver_of(g)
    fams = [x for x in (13, 12, 11) if d.version and (f := compat.family_min_driver(x)) and d.version >= f]
    native = f"CUDA {d.cuda} natively" if d.cuda else "CUDA ? natively"
    return f"{d} ({native}" + (f"; any CUDA {fams[0]}.x through minor-version compatibility)" if fams else ")")


def running(facts) -> tuple[compat.TorchBuild | None, compat.Fit | None]:
    """The installed CUDA torch as a build on record, and what the model says of it here."""
    t = facts.value("torch")
    b = compat.running_build(t.version, t.cuda) if t.build == "cuda" else None
    if b is None:
        return None, None
    return b, compat.fit(b, machine(facts), trust_python=True)


def live_works(t) -> bool:
    live = t.live if t.installed else None
    return bool(live and live.cuda_available and not live.error and live.devices
                and all(d.matmul_ok and not d.error for d in live.devices))


@check("torch.build", needs=["torch"])
def build_check(facts, c):
    """Which torch the target has, read without importing it."""
    t = facts.value("torch")
    if not t.installed:
        yield c.finding(Status.SKIP, "torch is not installed in the target environment")
        return
    what = {"cuda": f"CUDA {t.cuda} build", "rocm": f"ROCm {t.hip} build", "cpu": "CPU-only build"}[t.build]
    if t.build == "cpu" and t.live is not None and t.live.mps_built:  # macOS wheel: no CUDA (said once, by gpu.none-macos), MPS
        what = "macOS build with MPS (Apple GPUs) built in"
    yield c.finding(Status.INFO, f"torch {t.version}, {what}", detail=t.location or "")


@check("torch.cpu-only", needs=["torch", "gpu"])
def cpu_only_check(facts, c):
    """CPU-only torch on a machine with an NVIDIA GPU ("Torch not compiled with CUDA enabled")."""
    t, g = facts.value("torch"), facts.value("gpu")
    if no_gpu(g) or not t.installed:
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "torch is not installed")
        return
    if t.build == "cuda":
        yield c.finding(Status.OK, f"torch {t.version} is a CUDA build")
        return
    p = prescribe(facts)
    n = len(g.gpus)
    kind = "a ROCm (AMD GPU) build" if t.build == "rocm" else "a CPU-only build"
    yield c.finding(Status.FAIL, f"torch {t.version} is {kind} on a machine with {n} NVIDIA "
                    f"GPU{'s' * (n != 1)}: torch.cuda.is_available() is False",
                    detail=f"The driver is {driver_words(g)}. " + prescription_detail(p),
                    fix=prescription_fix(facts, p) or _no_fix(p, facts),
                    docs=p.build.source if p.build else PREVIOUS_VERSIONS,
                    claims=[("torch-cuda-works", "no"), *prescription_claims(p)])


@check("torch.driver", needs=["torch", "gpu"])
def driver_check(facts, c):
    """The NVIDIA driver runs torch's CUDA build (natively or through minor-version compatibility)."""
    t, g = facts.value("torch"), facts.value("gpu")
    if no_gpu(g) or not t.installed or t.build != "cuda":
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "torch is not a CUDA build")
        return
    cuda = parse_version(t.cuda)
    m = machine(facts)
    if cuda is None or not m.driver.known:
        yield c.finding(Status.SKIP, f"cannot judge: CUDA {t.cuda or '?'} / driver {g.driver_version or '?'}")
        return
    b, f = running(facts)
    ptx = bool(f and f.ptx_jit)
    runs = compat.runs_cuda(cuda, m.driver, ptx_jit=ptx)
    need, source = compat.min_driver(cuda, ptx, m.driver.platform)
    label = b.label if b else f"{t.version}"
    if live_works(t) or runs:
        how = "the live test ran a matmul on it" if live_works(t) else (
            "natively" if m.driver.cuda and (m.driver.cuda.major, m.driver.cuda.minor) >= (cuda.major, cuda.minor)
            else f"through minor-version compatibility (CUDA {cuda.major}.x needs >= {need})")
        yield c.finding(Status.OK, f"Driver {m.driver} runs torch's CUDA {t.cuda} (needs >= {need or '?'})",
                        detail=f"It runs it {how}." if not live_works(t) else f"Proven: {how}.", docs=source,
                        claims=[(f"torch-build-runs:{label}", "yes"), ("torch-cuda-works", "yes")] if live_works(t)
                        else [(f"torch-build-runs:{label}", "yes")] if f is not None and f.ok
                        else [(f"driver-runs-cuda:{cuda.major}.{cuda.minor}{'-ptx' if ptx else ''}", "yes")])
        p = prescribe(facts)
        if p.build and not p.blocked and p.build.version == (compat.torchbuilds.base(t.version)) \
                and p.build.cuda and p.build.cuda > cuda:
            yield c.finding(Status.INFO, f"This driver also runs the {p.build.variant} build of torch "
                            f"{p.build.version} (newer CUDA than {t.cuda})", id="torch.newer-build-fits",
                            fix=torch_command(facts, p.build), docs=p.build.source,
                            claims=prescription_claims(p))
        return
    if runs is None:
        yield c.finding(Status.SKIP, f"cannot judge whether driver {m.driver} runs CUDA {t.cuda}")
        return
    p = prescribe(facts)
    yield c.finding(Status.FAIL, f"Driver {m.driver} is too old for torch {t.version} (CUDA {t.cuda} needs "
                    f"driver >= {need or '?'}" + (", PTX JIT for this GPU" if ptx else "") + ")",
                    detail=f"The driver is {driver_words(g)}. " + prescription_detail(p),
                    fix=prescription_fix(facts, p) or _no_fix(p, facts), docs=source,
                    claims=[(f"torch-build-runs:{label}", "no"), ("torch-cuda-works", "no"), *prescription_claims(p)])


def _no_fix(p: compat.Prescription, facts=None) -> str:
    return f"no torch build fixes this here: {p.why}" + (pinned_by(facts) if facts is not None else "")


def pinned_by(facts) -> str:
    """Who holds the requirements on torch that a prescription had to meet, in words ('' when none)."""
    from llmdoctor.checks.requirements import needs_on

    needs = [n for n in needs_on(facts.value("target"), "torch") if str(n.req.specifier)]
    if not needs:
        return ""
    return ("; the torch requirement comes from " + ", ".join(f"{n.requirer} (torch{n.req.specifier})" for n in needs)
            + ": upgrade or remove it first")


LIVE_SKIPS = {"no-driver": "no NVIDIA driver on this machine: torch was not imported"}


def live_not_run(t) -> str:
    """Why torch's live test did not run, in words (a report from before live_skip_kind: its sentence)."""
    return LIVE_SKIPS.get(t.live_skip_kind or "") or t.live_skipped or "the live test did not run"


@check("torch.live", needs=["torch", "gpu"])
def live_check(facts, c):
    """torch.cuda works: is_available(), and a matmul on every visible GPU matches the CPU."""
    t, g = facts.value("torch"), facts.value("gpu")
    if no_gpu(g) or not t.installed or t.build == "cpu":
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "torch has no GPU support (see torch.cpu-only)")
        return
    failed = live_error(t)
    if failed:
        p = prescribe(facts)
        yield c.finding(Status.FAIL, f"`import torch` in the target failed: {failed.splitlines()[0]}",
                        detail=failed + "\n" + prescription_detail(p),
                        fix=prescription_fix(facts, p) or _no_fix(p, facts), claims={"torch-cuda-works": "no"})
        return
    live = t.live
    if live is None:
        yield c.finding(Status.SKIP, live_not_run(t))
        return
    if live.error or not live.cuda_available:
        text = live.error or ""
        b, f = running(facts)
        if f is not None and "driver" in f.kinds:  # the model agrees: the driver is too old
            p = prescribe(facts)
            fix = prescription_fix(facts, p) or _no_fix(p, facts)
        else:
            fix = ("look at the exception above: it names the failing piece (driver library, "
                   "CUDA_VISIBLE_DEVICES, a container without --gpus); then run `nvidia-smi` in the same shell")
        yield c.finding(Status.FAIL, f"torch.cuda.is_available() is False with {len(g.visible_gpus)} visible GPU(s)"
                        + (f": {text}" if text else ""), detail=text, fix=fix,
                        docs="https://pytorch.org/docs/stable/notes/cuda.html", claims={"torch-cuda-works": "no"})
        return
    bad = [d for d in live.devices if d.error or not d.matmul_ok]
    for d in bad:
        title = f"GPU {d.index} ({d.name}): " + (d.error or f"matmul differs from the CPU by {d.matmul_max_abs_diff}")
        if no_kernels(d, live.arch_list):  # the wheel lacks this GPU's architecture: torch.arch says which
            p = prescribe(facts)
            yield c.finding(Status.FAIL, title, id="torch.live-device",
                            detail=(d.error or "") + "\n" + prescription_detail(p),
                            fix=prescription_fix(facts, p) or _no_fix(p, facts), docs=NO_KERNEL_DOCS,
                            claims=[(f"torch-has-kernels:{d.index}", "no"), *prescription_claims(p)])
            continue
        yield c.finding(Status.FAIL, title, id="torch.live-device", detail=d.error or "",
                        fix=(run("nvidia-smi", "-q", "-i", str(d.index)), "   (look for ECC errors and XID events; "
                             "the GPU or its driver is faulty, not the Python environment)"),
                        claims={f"torch-has-kernels:{d.index}": "yes"})
    if not bad:
        yield c.finding(Status.OK, f"torch.cuda sees {live.device_count} GPU{'s' * (live.device_count != 1)}; "
                        "a matmul on each matches the CPU", claims={"torch-cuda-works": "yes"})


def no_kernels(d, arch_list) -> bool:
    """A device whose failure is torch's missing architecture, not the hardware: CUDA's own
    words for it, or a capability the arch list does not cover."""
    if d.error and "no kernel image" in d.error:
        return True
    return bool(d.capability and arch_list and _cc(d.capability) and not runs_on(d.capability, arch_list))


def _cc(text: str) -> bool:
    major, _, minor = text.partition(".")
    return major.isdigit() and minor.isdigit()


def runs_on(cc: str, arch_list) -> bool:
    """A build runs on compute capability ``cc`` if it has cubins for that major at a minor
    <= cc's, or PTX (compute_XY) at or below cc to JIT from."""
    major, minor = (int(x) for x in cc.split("."))
    return compat.kernel_for((major, minor), tuple(arch_list)) is not None


@check("torch.arch", needs=["torch", "gpu"])
def arch_check(facts, c):
    """Each GPU's compute capability is in torch's compiled arch list ("no kernel image is available")."""
    t, g = facts.value("torch"), facts.value("gpu")
    live = t.live if t.installed else None
    if no_gpu(g) or live is None or not live.arch_list:
        yield c.finding(Status.SKIP, "No NVIDIA GPU" if no_gpu(g) else "needs the live torch test")
        return
    for gpu in g.visible_gpus:
        if not gpu.compute_capability:
            continue
        if runs_on(gpu.compute_capability, live.arch_list):
            yield c.finding(Status.OK, f"GPU {gpu.index} (sm_{gpu.compute_capability.replace('.', '')}) is in "
                            f"torch's arch list", claims={f"torch-has-kernels:{gpu.index}": "yes"})
        else:
            p = prescribe(facts)
            yield c.finding(Status.FAIL, f"GPU {gpu.index} {gpu.name} (compute capability {gpu.compute_capability}) "
                            f"is not in torch {t.version}'s arch list {', '.join(live.arch_list)}: "
                            "'no kernel image is available for execution on the device'",
                            id="torch.arch-missing", docs=NO_KERNEL_DOCS, detail=prescription_detail(p),
                            fix=prescription_fix(facts, p) or _no_fix(p, facts),
                            claims=[("torch-cuda-works", "no"), (f"torch-has-kernels:{gpu.index}", "no"),
                                    *prescription_claims(p)])
