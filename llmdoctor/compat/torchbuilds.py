"""PyTorch releases -> the wheels PyTorch published, and which of them a machine can run.

``builds()`` lists every (version, variant) of ``data/torch_releases.json`` with the GPU
architectures of ``data/torch_archs.json``. ``fit(build, machine)`` says what stops a build
on a machine (the driver, the GPU's architecture, the Python version, the platform), and
``prescribe(machine, ...)`` picks the build to install: one that exists and runs here, the
user's own version where it can, else the smallest ordered set of changes (the driver
first) that makes one run. Checks and fixes word the result; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Iterable

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from llmdoctor.data import table
from llmdoctor.versions import parse_version
from llmdoctor.compat.cuda import PKG, Driver, kernel_for, min_driver, mm, runs_cuda

INDEX = "https://download.pytorch.org/whl/"
PREVIOUS_VERSIONS = "https://pytorch.org/get-started/previous-versions/"


@dataclass(frozen=True)
class TorchBuild:
    version: str  #: "2.5.1"
    variant: str  #: "cu121", "rocm6.2", "cpu"
    python: tuple[str, str]  #: oldest and newest Python with wheels
    archs: tuple[str, ...] = ()  #: CUDA variants: what torch.cuda.get_arch_list() reports
    source: str = ""
    archs_source: str = ""

    @cached_property
    def cuda(self) -> Version | None:
        return variant_cuda(self.variant)

    @property
    def index_url(self) -> str:
        return INDEX + self.variant

    @property
    def label(self) -> str:
        return f"{self.version}+{self.variant}"

    @cached_property
    def key(self) -> Version:
        return Version(self.version)


@lru_cache(maxsize=256)
def variant_cuda(variant: str | None) -> Version | None:
    """'cu121' -> 12.1, 'cu130' -> 13.0; None for cpu / rocm."""
    if not variant or not variant.startswith("cu") or not variant[2:].isdigit() or len(variant) < 4:
        return None
    digits = variant[2:]
    return Version(f"{digits[:-1]}.{digits[-1]}")


def cuda_variant(cuda: str | None) -> str | None:
    """torch.version.cuda '12.1' -> 'cu121'."""
    v = parse_version(cuda)
    return None if v is None else f"cu{v.major}{v.minor}"


def _archs(version: str, variant: str) -> tuple[tuple[str, ...], str]:
    for r in table(PKG, "torch_archs")["rows"]:
        if r["variant"] == variant and SpecifierSet(r["torch"]).contains(Version(version)):
            return tuple(r["archs"]), r["source"]
    return (), ""


@lru_cache(maxsize=None)
def builds() -> tuple[TorchBuild, ...]:
    """Every published build on record, oldest version first."""
    out = []
    for r in table(PKG, "torch_releases")["rows"]:
        only = r.get("only") or {}
        for version in r["versions"]:
            for variant in r["variants"]:
                if variant in only and version not in only[variant]:
                    continue
                archs, archs_source = _archs(version, variant) if variant.startswith("cu") else ((), "")
                out.append(TorchBuild(version, variant, tuple(r["python"]), archs, r["source"], archs_source))
    return tuple(out)


def release(version: str | None) -> dict | None:
    """The torch_releases.json row of ``version``'s minor (2.5.1 -> the 2.5 row)."""
    v = parse_version(version)
    if v is None:
        return None
    minor = f"{v.major}.{v.minor}"
    return next((r for r in table(PKG, "torch_releases")["rows"] if r["minor"] == minor), None)


def base(version: str | None) -> str | None:
    """'2.5.1+cu121' -> '2.5.1'."""
    v = parse_version(version)
    return v.base_version if v else None


def find(version: str | None, variant: str | None) -> TorchBuild | None:
    """The build on record for ``version`` (any local tag ignored) and ``variant``."""
    b = base(version)
    return next((x for x in builds() if x.version == b and x.variant == variant), None)


def same_minor_build(version: str | None, variant: str | None) -> TorchBuild | None:
    """A build of the same minor and variant: the archs and Python range of a version the
    table does not list (a user's 2.10.1) are those of its minor."""
    found = find(version, variant)
    if found:
        return found
    v = parse_version(version)
    if v is None:
        return None
    cands = [x for x in builds() if x.variant == variant and (x.key.major, x.key.minor) == (v.major, v.minor)]
    return cands[-1] if cands else None


# --- the machine ---------------------------------------------------------------

@dataclass(frozen=True)
class Machine:
    driver: Driver
    ccs: tuple[tuple[int, int], ...] = ()  #: compute capability of every visible GPU
    gpu_names: tuple[str, ...] = ()
    python: tuple[int, int] | None = None
    platform: str = "linux"  #: sys.platform of the target
    arch: str = "x86_64"


def machine_of(gpu_facts, target_facts=None) -> Machine:
    """A Machine from the gpu and target facts (either may be None)."""
    from llmdoctor.compat.cuda import driver_of

    platform = (getattr(target_facts, "platform", None) or "linux") if target_facts else "linux"
    arch = ((getattr(target_facts, "machine", None) or "x86_64") if target_facts else "x86_64").lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    gpus = [g for g in (getattr(gpu_facts, "visible_gpus", ()) or ()) if g.cc_major is not None]
    vi = tuple(getattr(target_facts, "version_info", ()) or ())[:2] if target_facts else ()
    return Machine(driver=driver_of(gpu_facts, platform),
                   ccs=tuple((g.cc_major, g.cc_minor or 0) for g in gpus),
                   gpu_names=tuple(g.name or f"GPU {g.index}" for g in gpus),
                   python=tuple(int(x) for x in vi) if len(vi) == 2 else None,
                   platform=platform, arch=arch)


# --- what stops a build --------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    kind: str  #: "driver" | "arch" | "python" | "platform"
    text: str  #: what stops it, in words
    need: str | None = None  #: driver: the minimum version; python: a Python that has wheels
    source: str = ""


@dataclass(frozen=True)
class Fit:
    build: TorchBuild
    problems: tuple[Problem, ...] = ()
    unknown: tuple[str, ...] = ()  #: what could not be judged (no driver version ...)
    ptx_jit: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(p.kind for p in self.problems)


def _py(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def fit(b: TorchBuild, m: Machine, *, trust_python: bool = False) -> Fit:
    """What stops build ``b`` on machine ``m`` (``trust_python``: the user runs this very
    version on their Python already, so its Python range is not in question)."""
    problems, unknown, ptx = [], [], False
    if m.python and not trust_python and not (_py(b.python[0]) <= m.python <= _py(b.python[1])):
        want = b.python[1] if m.python > _py(b.python[1]) else b.python[0]
        problems.append(Problem("python", f"torch {b.version} has no wheel for Python {m.python[0]}.{m.python[1]} "
                                f"(it has {b.python[0]} to {b.python[1]})", want, b.source))
    cuda = b.cuda
    if b.variant.startswith("cu"):
        if m.platform == "darwin":
            problems.append(Problem("platform", "PyTorch publishes no CUDA wheels for macOS", None, b.source))
        elif m.platform == "linux" and m.arch == "aarch64":
            rule = table(PKG, "torch_archs")["aarch64"]
            if b.key < Version(rule["min_torch"]) or cuda < Version(rule["min_cuda"]):
                problems.append(Problem("platform", f"torch {b.label} has no Linux aarch64 wheel (CUDA wheels for "
                                        f"aarch64 start with torch {rule['min_torch']} {_cu(rule['min_cuda'])})",
                                        None, rule["source"]))
        if b.archs:
            for cc, name in zip(m.ccs, m.gpu_names or ("the GPU",) * len(m.ccs)):
                how = kernel_for(cc, b.archs)
                if how is None:
                    problems.append(Problem("arch", f"torch {b.label} has no kernels for {name} (compute capability "
                                            f"{cc[0]}.{cc[1]}; it has {', '.join(b.archs)})", None, b.archs_source))
                elif how == "ptx":
                    ptx = True
        elif m.ccs:
            unknown.append(f"the GPU architectures of torch {b.label} are not on record")
        if m.ccs:
            runs = runs_cuda(cuda, m.driver, ptx_jit=ptx)
            need, source = min_driver(cuda, ptx, m.driver.platform)
            if runs is False:
                why = (f"driver {_dv(m.driver)} runs CUDA up to {m.driver.cuda or '?'}" +
                       (f" natively and {_fam(m)} through minor-version compatibility" if not ptx else "") +
                       f"; torch {b.label} needs CUDA {cuda}" + (" with PTX JIT (a driver of that CUDA)" if ptx else ""))
                problems.append(Problem("driver", why, need, source))
            elif runs is None:
                unknown.append("the driver version")
    return Fit(b, tuple(problems), tuple(unknown), ptx)


def _cu(text: str) -> str:
    v = Version(text)
    return f"cu{v.major}{v.minor}"


def _dv(d: Driver) -> str:
    return str(d)


def _fam(m: Machine) -> str:
    from llmdoctor.compat.cuda import family_min_driver

    majors = [x for x in (11, 12, 13) if (f := family_min_driver(x, m.driver.platform)) and m.driver.version
              and m.driver.version >= f]
    return f"CUDA {max(majors)}.x" if majors else "no CUDA family"


# --- prescriptions ---------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    kind: str  #: "driver" | "python" | "torch"
    text: str  #: the step in words (for "driver" and "python")
    need: str | None = None  #: driver version / Python version
    build: TorchBuild | None = None
    source: str = ""


@dataclass(frozen=True)
class Prescription:
    """The torch to install and the ordered steps before it. ``build`` is None when no
    build on record can ever run here (``why`` says why: a GPU no release supports)."""

    build: TorchBuild | None
    steps: tuple[Step, ...] = ()
    why: str = ""
    alternative: "Prescription | None" = None  #: a second way (keep the driver, change the version)
    unknown: tuple[str, ...] = field(default=())

    @property
    def blocked(self) -> bool:
        """A change other than installing torch comes first (the driver, Python)."""
        return any(s.kind != "torch" for s in self.steps)

    @property
    def blocker(self) -> Step | None:
        return next((s for s in self.steps if s.kind != "torch"), None)


def _closeness(b: TorchBuild, current: Version | None):
    """Sort key: the user's version first, then the nearest newer one, then the nearest
    older one; within a version the newest CUDA."""
    cuda = b.cuda or Version("0")
    if current is None:
        return (0, -b.key.major, -b.key.minor, -b.key.micro, -cuda.major, -cuda.minor)
    if b.key == current:
        return (0, 0, 0, 0, -cuda.major, -cuda.minor)
    if b.key > current:
        return (1, b.key.major, b.key.minor, -b.key.micro, -cuda.major, -cuda.minor)
    return (2, -b.key.major, -b.key.minor, -b.key.micro, -cuda.major, -cuda.minor)


def candidates(*, spec: SpecifierSet | None = None, min_cuda: Version | None = None,
               variants: Iterable[str] | None = None, cpu: bool = False) -> list[TorchBuild]:
    wanted = set(variants) if variants is not None else None
    out = []
    for b in builds():
        if cpu != (b.variant == "cpu") or (not cpu and not b.variant.startswith("cu")):
            continue
        if spec is not None and not spec.contains(b.key, prereleases=True):
            continue
        if min_cuda is not None and (b.cuda is None or mm(b.cuda) < mm(min_cuda)):
            continue
        if wanted is not None and b.variant not in wanted:
            continue
        out.append(b)
    return out


def prescribe(m: Machine, *, current: str | None = None, spec: SpecifierSet | str | None = None,
              min_cuda: Version | str | None = None, variants: Iterable[str] | None = None,
              cpu: bool = False) -> Prescription:
    """The torch build to install on ``m`` under the given constraints, and what must change
    first when none runs yet. ``current``: the user's torch version, kept where a build of it
    runs, else the nearest version that does."""
    spec = SpecifierSet(spec) if isinstance(spec, str) else spec
    min_cuda = Version(min_cuda) if isinstance(min_cuda, str) else min_cuda
    return _prescribe(m, current, spec, min_cuda, None if variants is None else frozenset(variants), cpu)


@lru_cache(maxsize=1024)
def _prescribe(m: Machine, current, spec, min_cuda, variants, cpu) -> Prescription:
    cur = parse_version(base(current)) if current else None
    cands = candidates(spec=spec, min_cuda=min_cuda, variants=variants, cpu=cpu or not m.ccs)
    if not cands:
        what = _constraints(spec, min_cuda, variants)
        return Prescription(None, why=f"no PyTorch build on record is {what}")
    fits = [fit(b, m, trust_python=(cur is not None and b.key == cur)) for b in cands]
    good = sorted((f for f in fits if f.ok), key=lambda f: _closeness(f.build, cur))
    fixable = [f for f in fits if not f.ok and f.kinds <= {"driver", "python"}]
    mine_ok = [f for f in good if cur is not None and f.build.key == cur]
    mine_fixable = [f for f in fixable if cur is not None and f.build.key == cur]
    if mine_ok or (good and not mine_fixable):
        best = good[0]
        return Prescription(best.build, (Step("torch", "", build=best.build),), unknown=best.unknown)
    if not fixable:
        reasons = sorted({p.text for f in fits for p in f.problems if p.kind in ("arch", "platform")})
        return Prescription(None, why=_no_build_why(m, reasons, _constraints(spec, min_cuda, variants)))
    chosen = _blocked(min(mine_fixable or fixable, key=lambda f: _cost(f, cur)), m)
    if good:  # the user's version needs a new driver; another version runs on this one
        alt = good[0]
        chosen = Prescription(chosen.build, chosen.steps, chosen.why,
                              Prescription(alt.build, (Step("torch", "", build=alt.build),), unknown=alt.unknown),
                              chosen.unknown)
    return chosen


def _cost(f: Fit, cur: Version | None):
    driver = [p for p in f.problems if p.kind == "driver"]
    # a driver step of unknown size (no minimum on record for this platform, such as CUDA 13 on Windows)
    # ranks after every known one
    d = Version(driver[0].need) if driver and driver[0].need else Version("99999") if driver else Version("0")
    return (len(f.kinds), "python" in f.kinds, d, _closeness(f.build, cur))


def _blocked(best: Fit, m: Machine | None = None) -> Prescription:
    steps = []
    for kind in ("driver", "python"):
        p = next((p for p in best.problems if p.kind == kind), None)
        if p is None:
            continue
        if kind == "driver":
            wsl = m is not None and m.driver.platform == "wsl"
            text = ((f"upgrade the NVIDIA driver on Windows to {p.need} or newer" if p.need else
                     f"upgrade the NVIDIA driver on Windows to one that supports CUDA {best.build.cuda}")
                    + " (WSL 2 runs the Windows driver: install none inside WSL)" if wsl else
                    f"upgrade the NVIDIA driver to {p.need} or newer" if p.need else
                    f"upgrade the NVIDIA driver to one that supports CUDA {best.build.cuda}")
        else:
            text = f"use a Python {p.need} environment ({p.text})"
        steps.append(Step(kind, text, p.need, source=p.source))
    steps.append(Step("torch", "", build=best.build))
    return Prescription(best.build, tuple(steps), why="; ".join(p.text for p in best.problems),
                        unknown=best.unknown)


def _constraints(spec, min_cuda, variants) -> str:
    parts = []
    if spec is not None and str(spec):
        parts.append(f"torch{spec}")
    if min_cuda is not None:
        parts.append(f"built with CUDA >= {min_cuda}")
    if variants is not None:
        parts.append(f"one of {', '.join(sorted(variants))}")
    return " and ".join(parts) or "on record"


def _no_build_why(m: Machine, reasons: list[str], constraints: str = "on record") -> str:
    """Why no candidate runs; under constraints (a requirement's pin, flash-attn's CUDA floor)
    it says so, since another torch may well run here."""
    ccs = ", ".join(f"{a}.{b}" for a, b in m.ccs) or "?"
    which = "on record" if constraints == "on record" else f"on record that is {constraints}"
    text = f"no PyTorch build {which} runs on compute capability {ccs}"
    if reasons:
        text += ": " + reasons[0]
    return text


def running_build(version: str | None, cuda: str | None) -> TorchBuild | None:
    """The record of an installed CUDA torch (same minor's archs where the patch is not listed)."""
    return same_minor_build(version, cuda_variant(cuda))
