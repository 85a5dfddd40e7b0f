"""FlashAttention: whether this GPU and torch can use it at all (a T4 cannot: use SDPA)."""

from __future__ import annotations

from packaging.version import Version

from llmdoctor.command import line, setvar, template
from llmdoctor.data import row, table
from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from llmdoctor.checks.host import cuda_home
from llmdoctor.checks.nvidia import no_gpu
from llmdoctor.checks.python import pip_argv, pip_cmd
from llmdoctor.checks.pytorch import prescription_claims, prescription_detail
from llmdoctor.checks.requirements import installed_version
from llmdoctor.checks.sizing import jobs_for

SDPA = 'AutoModelForCausalLM.from_pretrained(..., attn_implementation="sdpa")'


@check("build.flash-attn", category="build", needs=["gpu", "torch", "target"])
def flash_attn_check(facts, c):
    """FlashAttention-2/3 against the GPU's compute capability, torch and its CUDA."""
    g, t, target = facts.value("gpu"), facts.value("torch"), facts.value("target")
    if no_gpu(g):
        yield c.finding(Status.SKIP, "No NVIDIA GPU")
        return
    fa2, fa3 = row("llmdoctor.compat", "flash_attn", "name", "fa2"), row("llmdoctor.compat", "flash_attn", "name", "fa3")
    have = installed_version(target, "flash-attn")
    torch_cuda = parse_version(t.cuda) if t.installed else None
    too_old = []  # what the environment lacks, whatever the GPU: said once, not once per GPU
    torch_version = parse_version(t.version) if t.installed else None
    if torch_version and Version(torch_version.base_version) < Version(fa2["min_torch"]):
        too_old.append(f"torch {t.version}")
    if torch_cuda and torch_cuda < Version(fa2["min_cuda"]):
        too_old.append(f"CUDA {t.cuda}")
    if t.installed and t.build != "cuda":
        too_old.append("a ROCm torch" if t.build == "rocm" else "a CPU-only torch")
    able = []
    for gpu in g.visible_gpus:
        if gpu.cc_major is None:
            continue
        cc = Version(gpu.compute_capability)
        if cc < Version(fa2["min_cc"]):
            status = Status.WARN if have else Status.INFO
            what = f"flash-attn {have} is installed, but " if have else ""
            yield c.finding(status, f"{what}FlashAttention-2 does not run on GPU {gpu.index} {gpu.name} (compute "
                            f"capability {gpu.compute_capability} < {fa2['min_cc']}): use PyTorch SDPA",
                            id="build.flash-attn-unsupported-gpu", detail=fa2["why"], fix=SDPA, docs=fa2["source"])
            continue
        able.append(gpu)
        if not too_old:
            yield c.finding(Status.OK, f"GPU {gpu.index} {gpu.name} can use FlashAttention-2"
                            + (f" (flash-attn {have} installed)" if have else ""), docs=fa2["source"])
        if (Version(fa3["min_cc"]) <= cc <= Version(fa3["max_cc"]) and torch_cuda
                and torch_cuda >= Version(fa3["min_cuda"])):
            yield c.finding(Status.INFO, f"GPU {gpu.index} is a Hopper GPU with CUDA {t.cuda}: FlashAttention-3 "
                            "(flash-attn-3) is available too", id="build.flash-attn-3", docs=fa3["source"])
    if too_old and able:
        p = stack_prescription(facts)
        yield c.finding(Status.WARN, f"flash-attn >= {fa2['since']} needs torch >= {fa2['min_torch']} built with "
                        f"CUDA >= {fa2['min_cuda']}; this environment has {' and '.join(too_old)}",
                        id="build.flash-attn-old-stack", detail=fa2["why"] + " " + prescription_detail(p),
                        fix=stack_fix(facts, p), docs=fa2["source"], claims=prescription_claims(p))


def stack_prescription(facts):
    """The torch that flash-attn 2 can build on and run with here (torch >= 2.2 built with CUDA >= 12.0)."""
    from packaging.specifiers import SpecifierSet

    from llmdoctor.checks.pytorch import prescribe, torch_requirements

    fa2 = row("llmdoctor.compat", "flash_attn", "name", "fa2")
    return prescribe(facts, spec=torch_requirements(facts) & SpecifierSet(f">={fa2['min_torch']}"),
                     min_cuda=fa2["min_cuda"])


def stack_fix(facts, p):
    """The prescription's steps, then the flash-attn wheel that fits the prescribed torch."""
    from llmdoctor.checks.pytorch import prescription_fix

    fix = prescription_fix(facts, p)
    if fix is None:
        return f"no torch build on record both runs here and can build flash-attn: {p.why}; use {SDPA}"
    target = facts.value("target")
    if target is not None:
        name, rel = wheel_for(target, p.build.version, str(p.build.cuda), None)
        if rel is not None:
            fix = line(fix, ", then: ", pip_cmd(facts, "install", f"flash-attn=={rel['version']}",
                                                "--no-build-isolation"))
    return fix


def _tag(target) -> tuple[str | None, str | None]:
    """The wheel's Python tag and platform tag for the target interpreter."""
    if target.implementation != "CPython" or len(target.version_info) < 2:
        return None, None
    py = f"cp{target.version_info[0]}{target.version_info[1]}"
    machine = (target.machine or "").lower().replace("amd64", "x86_64")
    plat = f"{target.platform}_{machine}" if target.platform == "linux" else None
    return py, plat


def torch_cxx11_abi(t) -> bool | None:
    """torch's C++ ABI flag: measured when torch was imported, else PyTorch's wheel policy."""
    if t.live is not None and t.live.cxx11_abi is not None:
        return t.live.cxx11_abi
    version = parse_version(t.version)
    if version is None:
        return None
    return Version(version.base_version) >= Version(table("llmdoctor.compat", "flash_attn")["wheels"]
                                                    ["cxx11_abi_since_torch"])


def prebuilt_wheel(target, t) -> tuple[str, dict | None]:
    """The file name flash-attn's setup.py asks its releases for, and the newest release
    (as far as the data knows) that has it, or None."""
    return wheel_for(target, t.version, t.cuda, torch_cxx11_abi(t))


def wheel_for(target, torch_version: str | None, cuda: str | None, abi: bool | None) -> tuple[str, dict | None]:
    """wheel name and release for a torch version and CUDA (abi None: PyTorch's wheel policy)."""
    spec = table("llmdoctor.compat", "flash_attn")["wheels"]
    py, plat = _tag(target)
    tv, cv = parse_version(torch_version), parse_version(cuda)
    if abi is None and tv is not None:
        abi = Version(tv.base_version) >= Version(spec["cxx11_abi_since_torch"])
    torch_mm = f"{tv.major}.{tv.minor}" if tv else "?"
    cuda_major = str(cv.major) if cv else "?"
    latest = spec["releases"][0]["version"]
    name = spec["name"].format(version=latest, cuda_major=cuda_major, torch=torch_mm,
                               abi="TRUE" if abi else "FALSE", py=py or "?", platform=plat or "?")
    for rel in spec["releases"]:
        if (torch_mm in rel["torch"] and cuda_major in rel["cuda_major"] and py in rel["python"]
                and plat in rel["platforms"]
                and not any(x.get("torch") == torch_mm and x.get("python") == py for x in rel["exclude"])):
            return name.replace(f"-{latest}+", f"-{rel['version']}+"), rel
    return name, None


def source_build_blockers(facts) -> list[tuple[str, str, object]]:
    """(what stops a flash-attn source build, what to do in words, its fix), in the order a
    build meets them."""
    from llmdoctor.units import gib

    from llmdoctor.checks.toolkit import effective_nvcc, max_gcc

    tk, t, target, s = (facts.value(n) for n in ("cuda", "torch", "target", "system"))
    fa2 = row("llmdoctor.compat", "flash_attn", "name", "fa2")
    build = table("llmdoctor.compat", "flash_attn")["source_build"]
    out = []
    if target.platform != "linux":
        out.append((f"flash-attn publishes no {target.platform} wheels and its source build is only tested on Linux",
                    "use WSL2 or Linux", "use WSL2 or Linux, or attn_implementation=\"sdpa\""))
    nvcc = effective_nvcc(tk) if tk else None
    nv, tc = (parse_version(nvcc.release) if nvcc and nvcc.version else None), parse_version(t.cuda)
    if nv is None:
        words = f"install the CUDA {t.cuda} toolkit"
        out.append(("no nvcc (CUDA toolkit) for the build", words,
                    (words + ", then: ", setvar("CUDA_HOME", cuda_home(facts, t.cuda)))))
    elif tc and nv.major != tc.major:
        words = f"point CUDA_HOME at a CUDA {tc.major}.x toolkit"
        out.append((f"nvcc {nvcc.release} is not CUDA {tc.major}.x like torch's CUDA {t.cuda}", words, words))
    elif nv < Version(fa2["min_cuda"]):
        words = f"install CUDA {fa2['min_cuda']} or newer"
        out.append((f"nvcc {nvcc.release} is older than the CUDA {fa2['min_cuda']} flash-attn needs", words, words))
    if tk and (tk.ninja is None or tk.ninja.version is None):
        out.append(("ninja is missing: the build runs serially for hours", "install ninja",
                    pip_cmd(facts, "install", "ninja")))
    if nv is not None and tk.gcc and tk.gcc.version and (limit := max_gcc(nvcc.version)):
        gv = parse_version(tk.gcc.version)
        if gv and gv.major > limit["max_gcc"]:
            out.append((f"{tk.gcc.name} {tk.gcc.version} is newer than nvcc {nvcc.release} accepts",
                        f"build with gcc-{limit['max_gcc']} (NVCC_CCBIN)",
                        setvar("NVCC_CCBIN", f"/usr/bin/gcc-{limit['max_gcc']}")))
    if not target.has_python_h:
        words = f"install the development headers of Python {target.python_version} (python.headers says how)"
        out.append(("Python headers (Python.h) are missing", words, words))
    tmp = next((d for d in s.disks if d.role == "tmp"), None) if s else None
    if tmp and tmp.free_bytes is not None and tmp.free_bytes < build["min_free_disk_bytes"]:
        out.append((f"only {gib(tmp.free_bytes)} free in {tmp.path} (the build needs about "
                    f"{gib(build['min_free_disk_bytes'])})", "point TMPDIR at a folder on a larger disk",
                    setvar("TMPDIR", "<a folder on a larger disk>")))
    return out


@check("build.flash-attn-install", category="build", needs=["torch", "target", "cuda", "system", "gpu"])
def flash_attn_install_check(facts, c):
    """What `pip install flash-attn` would do here: download a prebuilt wheel, or compile (and whether that can work)."""
    target, t, g = facts.value("target"), facts.value("torch"), facts.value("gpu")
    have = installed_version(target, "flash-attn")
    docs = table("llmdoctor.compat", "flash_attn")["wheels"]["source"]
    if have:
        yield c.finding(Status.SKIP, f"flash-attn {have} is installed (build.extension-imports imports it)")
        return
    if not t.installed:
        yield c.finding(Status.SKIP, "torch is not installed: flash-attn builds against it")
        return
    if facts.value("system").os == "Darwin":  # no CUDA there: gpu.presence says so once
        yield c.finding(Status.SKIP, "No CUDA on macOS")
        return
    fa2 = row("llmdoctor.compat", "flash_attn", "name", "fa2")
    gpus = [x for x in (g.visible_gpus if not no_gpu(g) else ()) if x.cc_major is not None]
    if gpus and all(Version(x.compute_capability) < Version(fa2["min_cc"]) for x in gpus):
        yield c.finding(Status.SKIP, "No GPU here runs FlashAttention-2 (see build.flash-attn)")
        return
    if t.build != "cuda" or not parse_version(t.cuda):
        kind = "CPU-only" if t.build in (None, "cpu") else t.build
        yield c.finding(Status.INFO, f"flash-attn cannot be installed here: torch {t.version} is a "
                        f"{kind} build and flash-attn compiles against torch's CUDA",
                        id="build.flash-attn-needs-cuda-torch",
                        detail="Its setup.py reads torch.version.cuda to pick a wheel and to compile; with a CPU "
                               "torch both fail. Without an NVIDIA GPU use attn_implementation=\"sdpa\".",
                        fix=stack_fix(facts, stack_prescription(facts)) if not no_gpu(g) else SDPA, docs=docs)
        return
    tv, tc = parse_version(t.version), parse_version(t.cuda)
    if (tv and Version(tv.base_version) < Version(fa2["min_torch"])) or tc < Version(fa2["min_cuda"]):
        p = stack_prescription(facts)
        yield c.finding(Status.WARN, f"`pip install flash-attn` cannot work on torch {t.version} (CUDA {t.cuda}): "
                        f"flash-attn >= {fa2['since']} needs torch >= {fa2['min_torch']} built with CUDA >= "
                        f"{fa2['min_cuda']}" + (f"; first {p.blocker.text}" if p.blocked else ""),
                        id="build.flash-attn-old-stack", detail=fa2["why"] + " " + prescription_detail(p),
                        fix=stack_fix(facts, p), docs=fa2["source"], claims=prescription_claims(p))
        return
    name, release = prebuilt_wheel(target, t)
    latest = table("llmdoctor.compat", "flash_attn")["wheels"]["releases"][0]["version"]
    if release and release["version"] == latest:
        yield c.finding(Status.OK, f"`pip install flash-attn --no-build-isolation` downloads the prebuilt {name}",
                        docs=release["source"])
        return
    if release:
        yield c.finding(Status.INFO, f"flash-attn {latest} has no prebuilt wheel for torch {t.version}; "
                        f"{release['version']} has one ({name})", id="build.flash-attn-older-wheel",
                        fix=pip_cmd(facts, "install", f"flash-attn=={release['version']}", "--no-build-isolation"),
                        docs=release["source"])
        return
    blockers = source_build_blockers(facts)
    jobs = jobs_for(facts.value("system"), "flash-attn", target.build_env)
    why = (f"No prebuilt flash-attn wheel matches torch {t.version}, CUDA {t.cuda}, "
           f"{_tag(target)[0] or target.implementation} on {target.platform} (it looks for {name})")
    if blockers:
        detail = why + ". A source build would stop at:\n" + "\n".join(f"- {b} (fix: {w})" for b, w, _ in blockers)
        yield c.finding(Status.WARN, f"`pip install flash-attn` would compile from source and fail: "
                        f"{blockers[0][0]}" + (f" (+{len(blockers) - 1} more)" if len(blockers) > 1 else ""),
                        id="build.flash-attn-source-build-blocked", detail=detail, fix=blockers[0][2], docs=docs)
    else:
        build = table("llmdoctor.compat", "flash_attn")["source_build"]
        yield c.finding(Status.INFO, f"`pip install flash-attn` compiles from source here (no prebuilt wheel); "
                        f"nvcc, ninja, compiler, headers and disk are ready: run it with MAX_JOBS={jobs or 1}",
                        id="build.flash-attn-source-build", detail=why + ".",
                        fix=template(build["build_cmd"], {"jobs": str(jobs or 1), "pip": pip_argv(facts),
                                                          "version": latest}),
                        docs=build["source"])
