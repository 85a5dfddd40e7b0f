"""CUDA toolkit checks: which nvcc extension builds will use, whether it matches torch's
CUDA major and CUDA_HOME, and whether the host compiler (GCC; MSVC's cl.exe on Windows) is
one that nvcc accepts."""

from __future__ import annotations

import re
from packaging.version import Version

from llmdoctor.command import Ref, setvar, setvars
from llmdoctor.data import rows, table
from llmdoctor.platforms.paths import flavor_of
from llmdoctor.model import Status, check
from llmdoctor.versions import parse_version

from llmdoctor.checks.host import system_install, windows, wsl2

CPP_EXT_DOCS = "https://pytorch.org/docs/stable/cpp_extension.html"
INSTALL_DOCS = "https://docs.nvidia.com/cuda/cuda-installation-guide-linux/"
WINDOWS_DOCS = "https://docs.nvidia.com/cuda/cuda-installation-guide-microsoft-windows/index.html"
#: inside WSL 2 the toolkit comes from the WSL-Ubuntu repository (cuda-toolkit-12-x): the Linux guide's
#: `cuda` package brings a Linux driver, which hides the Windows one WSL maps in
WSL_DOCS = "https://docs.nvidia.com/cuda/wsl-user-guide/index.html"


def install_docs(facts) -> str:
    """The CUDA toolkit installation guide for the OS the facts describe."""
    return WINDOWS_DOCS if windows(facts) else WSL_DOCS if wsl2(facts) else INSTALL_DOCS


def effective_nvcc(tk):
    """The nvcc torch.utils.cpp_extension builds with: $CUDA_HOME, else the one on PATH,
    else /usr/local/cuda."""
    by_real = {n.real_path: n for n in tk.nvccs}
    for real in (tk.cuda_home_nvcc, tk.on_path):
        if real and real in by_real:
            return by_real[real]
    return next((n for n in tk.nvccs if n.found_via in ("/usr/local/cuda*", "Program Files")), None)


def toolkit_root(nvcc_path: str) -> str:
    """The toolkit folder of an nvcc: .../cuda-12.4/bin/nvcc -> .../cuda-12.4 (either path flavour)."""
    mod = flavor_of(nvcc_path)
    return mod.dirname(mod.dirname(nvcc_path))


def msvc_window(nvcc) -> tuple[int, int, str] | None:
    """(_MSC_VER min, first rejected, source) nvcc accepts: its own host_config.h, else the table."""
    if nvcc.msvc_window:
        return nvcc.msvc_window[0], nvcc.msvc_window[1], "crt/host_config.h of this nvcc"
    v = parse_version(nvcc.version)
    for row in rows("llmdoctor.checks", "nvcc_msvc"):
        if v is not None and Version(row["nvcc_from"]) <= Version(f"{v.major}.{v.minor}") <= Version(row["nvcc_to"]):
            return row["msc_min"], row["msc_below"], row["source"]
    return None


def max_gcc(nvcc_version: str) -> dict | None:
    v = parse_version(nvcc_version)
    chosen = None
    for row in rows("llmdoctor.checks", "nvcc_gcc"):
        if v is not None and v >= Version(row["min_nvcc"]):
            chosen = row
    return chosen


@check("cuda.nvcc", needs=["cuda", "torch"])
def nvcc_check(facts, c):
    """nvcc present, matching torch's CUDA major, and CUDA_HOME agreeing with PATH."""
    tk, t = facts.value("cuda"), facts.value("torch")
    system = facts.value("system")
    if system is not None and system.os == "Darwin":
        yield c.finding(Status.SKIP, "No CUDA on macOS (gpu.presence says what runs instead)")
        return
    nvcc = effective_nvcc(tk)
    torch_cuda = parse_version(t.cuda) if t.installed and t.build == "cuda" else None
    if nvcc is None or nvcc.version is None:
        need = f" {t.cuda}" if torch_cuda else ""
        yield c.finding(Status.INFO, "No CUDA toolkit (nvcc) found: prebuilt wheels work; building flash-attn, "
                        f"DeepSpeed ops or bitsandbytes from source needs the CUDA{need} toolkit",
                        id="cuda.nvcc-missing", docs=install_docs(facts))
        return
    where = f"nvcc {nvcc.release} ({nvcc.path}, via {nvcc.found_via})"
    if tk.cuda_home and tk.on_path and tk.cuda_home_nvcc and tk.cuda_home_nvcc != tk.on_path:
        on_path = next((n for n in tk.nvccs if n.real_path == tk.on_path), None)
        yield c.finding(Status.WARN, f"CUDA_HOME={tk.cuda_home} (nvcc {nvcc.release}) but PATH finds "
                        f"nvcc {on_path.release if on_path else '?'} at {tk.on_path}: builds mix two toolkits",
                        id="cuda.home-mismatch", fix=_path_first(facts), docs=CPP_EXT_DOCS)
    if torch_cuda and parse_version(nvcc.release) and parse_version(nvcc.release).major != torch_cuda.major:
        match = [n for n in tk.nvccs if parse_version(n.release) and parse_version(n.release).major == torch_cuda.major]
        fix = (setvar("CUDA_HOME", toolkit_root(match[0].real_path)) + _path_first(facts)
               if match else f"install the CUDA {torch_cuda.major}.x toolkit ({install_docs(facts)}) and point CUDA_HOME at it")
        yield c.finding(Status.WARN, f"{where} but torch {t.version} is built with CUDA {t.cuda}: CUDA extension "
                        "builds (flash-attn, DeepSpeed ops) will fail", id="cuda.nvcc-torch-mismatch",
                        detail="torch.utils.cpp_extension refuses a toolkit whose major version differs from "
                               "torch's CUDA.", fix=fix, docs=CPP_EXT_DOCS)
    else:
        yield c.finding(Status.OK, where + (f", same major as torch's CUDA {t.cuda}" if torch_cuda else ""))
    yield from _nvcc_vs_gpus(facts, c, nvcc)


def _path_first(facts):
    """CUDA_HOME's bin folder first on PATH (Windows separates with ; and \\)."""
    if windows(facts):
        return setvar("PATH", Ref("CUDA_HOME"), "\\bin;", Ref("PATH"))
    return setvar("PATH", Ref("CUDA_HOME"), "/bin:", Ref("PATH"))


def _nvcc_vs_gpus(facts, c, nvcc):
    """nvcc must be able to generate code for every GPU: CUDA 13 removed Maxwell, Pascal and
    Volta; Blackwell needs 12.8 (compatibility model: gpu_arch_cuda.json)."""
    from llmdoctor import compat

    from llmdoctor.checks.nvidia import no_gpu

    g, nv = facts.value("gpu"), parse_version(nvcc.release)
    if g is None or no_gpu(g) or nv is None:
        return
    for gpu in g.visible_gpus:
        if gpu.cc_major is None:
            continue
        low, high = compat.toolkit_window([(gpu.cc_major, gpu.cc_minor or 0)])
        if high is not None and (nv.major, nv.minor) > (high.major, high.minor):
            yield c.finding(Status.WARN, f"nvcc {nvcc.release} cannot build for GPU {gpu.index} {gpu.name} (compute "
                            f"capability {gpu.compute_capability}): CUDA {high} is the last toolkit that targets it",
                            id="cuda.nvcc-gpu-too-old",
                            fix=f"install a CUDA {high} toolkit (or older, of torch's CUDA major) and point CUDA_HOME at it",
                            docs=install_docs(facts))
        elif low is not None and (nv.major, nv.minor) < (low.major, low.minor):
            yield c.finding(Status.WARN, f"nvcc {nvcc.release} cannot build for GPU {gpu.index} {gpu.name} (compute "
                            f"capability {gpu.compute_capability}): it needs CUDA {low} or newer",
                            id="cuda.nvcc-gpu-too-new",
                            fix=f"install a CUDA {low} or newer toolkit (of torch's CUDA major) and point CUDA_HOME at it",
                            docs=install_docs(facts))


@check("cuda.host-compiler", needs=["cuda"])
def host_compiler_check(facts, c):
    """Host GCC within what the nvcc in use accepts ('unsupported GNU version!')."""
    tk = facts.value("cuda")
    nvcc = effective_nvcc(tk)
    if nvcc is None or nvcc.version is None:
        yield c.finding(Status.SKIP, "No CUDA toolkit (nvcc)")
        return
    gcc = tk.gcc
    if tk.host_os == "nt" or (gcc is not None and gcc.name == "cl"):
        yield _msvc_finding(c, nvcc, gcc)
        return
    if gcc is None or gcc.version is None:
        yield c.finding(Status.WARN, f"No working host compiler ({gcc.name if gcc else 'gcc'}: "
                        f"{gcc.error if gcc else 'not found'}): nvcc cannot build anything",
                        id="cuda.host-compiler-missing",
                        fix=system_install(facts, apt=("build-essential",), dnf=("gcc", "gcc-c++", "make"))
                        or "install gcc and g++ with your distribution's package manager", docs=INSTALL_DOCS)
        return
    row = max_gcc(nvcc.version)
    major = parse_version(gcc.version).major if parse_version(gcc.version) else None
    if row is None or major is None:
        yield c.finding(Status.INFO, f"{gcc.name} {gcc.version} with nvcc {nvcc.release}: no limit on record")
    elif major > row["max_gcc"]:
        n = row["max_gcc"]
        yield c.finding(Status.WARN, f"{gcc.name} {gcc.version} is newer than nvcc {nvcc.release} accepts "
                        f"(GCC {n} at most): builds stop with 'unsupported GNU version!'",
                        id="cuda.gcc-too-new", fix=_older_gcc(facts, n),
                        docs=row["source"])
    else:
        yield c.finding(Status.OK, f"{gcc.name} {gcc.version} is within nvcc {nvcc.release}'s range "
                        f"(GCC {row['max_gcc']} at most)", docs=row["source"])


def _older_gcc(facts, n: int):
    """GCC ``n`` installed next to the newer one, and nvcc and the build pointed at it."""
    use = setvars({"NVCC_CCBIN": f"/usr/bin/gcc-{n}", "CC": f"gcc-{n}", "CXX": f"g++-{n}"})
    install = system_install(facts, apt=(f"gcc-{n}", f"g++-{n}"))
    return install + use if install else (f"install GCC {n} next to this one, then: ", use)


def msc_ver(cl_version: str | None) -> int | None:
    """_MSC_VER from cl's version: 19.39.33523 -> 1939."""
    m = re.match(r"(\d+)\.(\d+)", cl_version or "")
    return int(m.group(1)) * 100 + int(m.group(2)) if m else None


def _msvc_finding(c, nvcc, cl):
    """Windows: nvcc drives MSVC's cl.exe, and accepts only the _MSC_VER range of its host_config.h."""
    if cl is None or cl.version is None:
        return c.finding(Status.WARN, f"MSVC's cl.exe, the host compiler nvcc needs on Windows, is not on PATH "
                         f"({cl.error if cl else 'not found'}): building a CUDA extension here fails",
                         id="cuda.host-compiler-missing",
                         fix="install Visual Studio (or its Build Tools) with 'Desktop development with C++', then "
                             "build from the 'x64 Native Tools Command Prompt for VS'", docs=WINDOWS_DOCS)
    msc = msc_ver(cl.version)
    window = msvc_window(nvcc)
    if window is None or msc is None:
        return c.finding(Status.INFO, f"cl {cl.version} with nvcc {nvcc.release}: no MSVC limit on record")
    low, below, source = window
    docs = source if source.startswith("http") else table("llmdoctor.checks", "nvcc_msvc")["error_source"]
    if not low <= msc < below:
        newer = msc >= below
        return c.finding(Status.WARN, f"cl {cl.version} (_MSC_VER {msc}) is {'newer' if newer else 'older'} than "
                         f"nvcc {nvcc.release} accepts (_MSC_VER {low} to {below - 1}, from {source}): builds stop "
                         "with 'unsupported Microsoft Visual Studio version!'", id="cuda.msvc-unsupported",
                         detail="nvcc's crt/host_config.h checks _MSC_VER before it compiles anything.",
                         fix=(f"add an MSVC toolset below _MSC_VER {below} in the Visual Studio Installer (Individual "
                              "components), or install a CUDA toolkit that accepts this one" if newer else
                              "install Visual Studio 2017 or newer"), docs=docs)
    return c.finding(Status.OK, f"cl {cl.version} (_MSC_VER {msc}) is within nvcc {nvcc.release}'s range "
                     f"({low} to {below - 1})", docs=docs)
