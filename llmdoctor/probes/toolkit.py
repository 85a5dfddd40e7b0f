"""The CUDA toolkit and the host compiler: every nvcc that can be found, its version,
whether CUDA_HOME agrees with the nvcc on PATH, gcc, ninja and cuDNN headers.

On Windows the toolkit is ``nvcc.exe`` under CUDA_PATH (the installer sets it, and a
CUDA_PATH_V12_4 per version) or ``%ProgramFiles%\\NVIDIA GPU Computing Toolkit\\CUDA\\v*``, and
the host compiler is MSVC's ``cl.exe`` (on PATH in a Visual Studio developer prompt), whose
version nvcc bounds in ``crt/host_config.h``: that guard is read from each nvcc's own header."""

from __future__ import annotations

import glob
import ntpath
import os
import posixpath
import re
import shutil
from dataclasses import dataclass

from llmdoctor import subproc
from llmdoctor.probes.base import ProbeContext, read_text


@dataclass(frozen=True)
class Nvcc:
    path: str  #: as found
    real_path: str
    found_via: str  #: "PATH" | "CUDA_HOME" | "CUDA_PATH" | "/usr/local/cuda*" | "target env wheel"
    version: str | None = None  #: "12.1.105" (full) when nvcc answered
    error: str | None = None
    msvc_window: tuple[int, int] | None = None  #: Windows: (_MSC_VER min, first rejected) from its host_config.h

    @property
    def release(self) -> str | None:
        """'12.1' from '12.1.105'."""
        return ".".join(self.version.split(".")[:2]) if self.version else None


@dataclass(frozen=True)
class Tool:
    name: str
    path: str | None = None
    version: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ToolkitFacts:
    nvccs: tuple[Nvcc, ...] = ()
    on_path: str | None = None  #: real path of the nvcc PATH finds
    cuda_home: str | None = None  #: CUDA_HOME (or CUDA_PATH) as set
    cuda_home_nvcc: str | None = None  #: real path of $CUDA_HOME/bin/nvcc, when it exists
    gcc: Tool | None = None
    ninja: Tool | None = None
    cudnn_header: str | None = None  #: "9.1.0" from cudnn_version.h
    cudnn_header_path: str | None = None
    libaio: str | None = None  #: libaio.so* found in the linker's directories (DeepSpeed's async_io op)
    libaio_header: str | None = None  #: libaio.h, which building async_io needs too
    host_os: str | None = None  #: os.name where this was probed: "nt" means the host compiler is MSVC (cl)


LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64",
            "/usr/local/lib")


def find_libaio(extra_dirs=()) -> tuple[str | None, str | None]:
    """libaio's shared library and header, as DeepSpeed's async_io builder needs them."""
    lib = next((hit for d in (*extra_dirs, *LIB_DIRS) for hit in sorted(glob.glob(os.path.join(d, "libaio.so*")))),
               None)
    header = next((h for h in (*(os.path.join(d, "..", "include", "libaio.h") for d in extra_dirs),
                               "/usr/include/libaio.h", "/usr/local/include/libaio.h") if os.path.isfile(h)), None)
    return lib, os.path.normpath(header) if header else None


def parse_nvcc(text: str | None) -> str | None:
    """'Cuda compilation tools, release 12.1, V12.1.105' -> '12.1.105'."""
    m = re.search(r"release\s+(\d+\.\d+)\s*,\s*V(\d+\.\d+(?:\.\d+)?)", text or "")
    if m:
        return m.group(2)
    m = re.search(r"release\s+(\d+\.\d+)", text or "")
    return m.group(1) if m else None


def parse_gcc(text: str | None) -> str | None:
    """'gcc (Ubuntu 13.2.0-23ubuntu4) 13.2.0' -> '13.2.0'."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)\s*$", first) or re.search(r"\)\s*(\d+\.\d+(?:\.\d+)?)", first)
    return m.group(1) if m else None


def parse_msvc(text: str | None) -> str | None:
    """cl.exe's banner 'Microsoft (R) C/C++ Optimizing Compiler Version 19.39.33523 for x64' -> '19.39.33523'."""
    m = re.search(r"Compiler Version\s+(\d+\.\d+(?:\.\d+)*)", text or "")
    return m.group(1) if m else None


def parse_host_config(text: str | None) -> tuple[int, int] | None:
    """nvcc's MSVC window from crt/host_config.h: '#if _MSC_VER < 1910 || _MSC_VER >= 1950' -> (1910, 1950)."""
    m = re.search(r"_MSC_VER\s*<\s*(\d{4})\s*\|\|\s*_MSC_VER\s*>=\s*(\d{4})", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_cudnn_header(text: str | None) -> str | None:
    parts = {}
    for key in ("MAJOR", "MINOR", "PATCHLEVEL"):
        m = re.search(r"#define\s+CUDNN_" + key + r"\s+(\d+)", text or "")
        if not m:
            return None
        parts[key] = m.group(1)
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCHLEVEL']}"


def _version_of(exe: str, parse, args=("--version",), any_exit: bool = False) -> tuple[str | None, str | None]:
    """``any_exit``: the banner counts whatever the exit code (cl.exe run bare prints it, then its usage)."""
    done = subproc.run([exe, *args], timeout=5)
    if any_exit and done.returncode is not None and parse(done.stdout + "\n" + done.stderr):
        return parse(done.stdout + "\n" + done.stderr), None
    if done.returncode != 0:
        why = "timed out" if done.timed_out else (done.start_error or (done.stderr or done.stdout).strip()[-200:])
        return None, f"`{exe} {' '.join(args)}` failed: {why}"
    version = parse(done.stdout + "\n" + done.stderr)
    return version, None if version else f"unrecognised output of {exe} {' '.join(args)}"


def nvcc_candidates(environ, prefix: str | None, os_name: str = os.name, glob_fn=glob.glob):
    """(path, how it was found) of every place an nvcc may be, in the order builds look:
    PATH is searched by the caller; then CUDA_HOME / CUDA_PATH / CUDA_ROOT (and on Windows each
    CUDA_PATH_Vx_y the installer sets), the default install folders, the env's nvidia wheel."""
    windows = os_name == "nt"
    mod = ntpath if windows else posixpath
    exe = "nvcc.exe" if windows else "nvcc"
    names = ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
    if windows:
        names += sorted((k for k in environ if re.fullmatch(r"CUDA_PATH_V\d+_\d+", k.upper())), reverse=True)
    for var in names:
        if environ.get(var):
            yield mod.join(environ[var], "bin", exe), var
    if windows:
        program_files = environ.get("ProgramFiles") or environ.get("PROGRAMFILES") or "C:\\Program Files"
        root = mod.join(program_files, "NVIDIA GPU Computing Toolkit", "CUDA")
        for path in sorted(glob_fn(mod.join(root, "v*", "bin", exe)), reverse=True):
            yield path, "Program Files"
        if prefix:
            for path in sorted(glob_fn(mod.join(prefix, "Lib", "site-packages", "nvidia", "*", "bin", exe))):
                yield path, "target env wheel"
        return
    for path in ["/usr/local/cuda/bin/nvcc", *sorted(glob_fn("/usr/local/cuda-*/bin/nvcc"))]:
        yield path, "/usr/local/cuda*"
    if prefix:
        for path in sorted(glob_fn(mod.join(prefix, "lib", "python*", "site-packages", "nvidia", "*", "bin", exe))):
            yield path, "target env wheel"


def _candidates(ctx: ProbeContext):
    on_path = shutil.which("nvcc", path=ctx.environ.get("PATH"))
    if on_path:
        yield on_path, "PATH"
    yield from nvcc_candidates(ctx.environ, ctx.target.prefix)


def probe_toolkit(ctx: ProbeContext) -> ToolkitFacts:
    env = ctx.environ
    seen: dict[str, Nvcc] = {}
    for path, via in _candidates(ctx):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        version, error = _version_of(path, parse_nvcc)
        window = None
        if os.name == "nt":  # the MSVC guard of this nvcc's own headers
            window = parse_host_config(read_text(os.path.join(os.path.dirname(os.path.dirname(real)), "include",
                                                              "crt", "host_config.h")))
        seen[real] = Nvcc(path=path, real_path=real, found_via=via, version=version, error=error, msvc_window=window)
    on_path = shutil.which("nvcc", path=env.get("PATH"))
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    home_nvcc = os.path.join(home, "bin", "nvcc.exe" if os.name == "nt" else "nvcc") if home else None
    if os.name == "nt":  # nvcc drives MSVC's cl.exe; it prints its banner, with the version, on stderr
        compiler = env.get("NVCC_CCBIN") or "cl"
        gcc_path = shutil.which(compiler, path=env.get("PATH"))
        gcc = Tool("cl", gcc_path, *(_version_of(gcc_path, parse_msvc, args=(), any_exit=True) if gcc_path else
                                     (None, "cl.exe not on PATH")))
    else:
        compiler = env.get("NVCC_CCBIN") or env.get("CC") or "gcc"
        gcc_path = shutil.which(compiler, path=env.get("PATH"))
        gcc = Tool(compiler, gcc_path, *(_version_of(gcc_path, parse_gcc) if gcc_path else (None, "not found")))
    ninja_path = shutil.which("ninja", path=env.get("PATH"))
    ninja = Tool("ninja", ninja_path, *(_version_of(ninja_path, lambda t: t.strip().splitlines()[0] if t.strip()
                                                     else None) if ninja_path else (None, "not found")))
    cudnn = cudnn_path = None
    roots = [home] if home else []
    roots += ["/usr/local/cuda", "/usr"]
    for root in roots:
        for header in (os.path.join(root, "include", "cudnn_version.h"),
                       os.path.join(root, "include", "x86_64-linux-gnu", "cudnn_version.h")):
            text = read_text(header)
            if text and parse_cudnn_header(text):
                cudnn, cudnn_path = parse_cudnn_header(text), header
                break
        if cudnn:
            break
    conda_lib = [os.path.join(ctx.target.prefix, "lib")] if ctx.target.prefix else []
    libaio, libaio_header = find_libaio(conda_lib)
    return ToolkitFacts(
        nvccs=tuple(seen.values()), on_path=os.path.realpath(on_path) if on_path else None, cuda_home=home,
        cuda_home_nvcc=os.path.realpath(home_nvcc) if home_nvcc and os.path.isfile(home_nvcc) else None,
        gcc=gcc, ninja=ninja, cudnn_header=cudnn, cudnn_header_path=cudnn_path,
        libaio=libaio, libaio_header=libaio_header, host_os=os.name)
