"""The CUDA toolkit and the host compiler: every nvcc that can be found, its version,
whether CUDA_HOME agrees with the nvcc on PATH, gcc, ninja and cuDNN headers."""

from __future__ import annotations

import glob
import os
import re
import shutil
from dataclasses import dataclass

from .. import subproc
from .base import ProbeContext, read_text


@dataclass(frozen=True)
class Nvcc:
    path: str  #: as found
    real_path: str
    found_via: str  #: "PATH" | "CUDA_HOME" | "CUDA_PATH" | "/usr/local/cuda*" | "target env wheel"
    version: str | None = None  #: "12.1.105" (full) when nvcc answered
    error: str | None = None

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


def parse_cudnn_header(text: str | None) -> str | None:
    parts = {}
    for key in ("MAJOR", "MINOR", "PATCHLEVEL"):
        m = re.search(r"#define\s+CUDNN_" + key + r"\s+(\d+)", text or "")
        if not m:
            return None
        parts[key] = m.group(1)
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCHLEVEL']}"


def _version_of(exe: str, parse, args=("--version",)) -> tuple[str | None, str | None]:
    done = subproc.run([exe, *args], timeout=5)
    if done.returncode != 0:
        why = "timed out" if done.timed_out else (done.start_error or (done.stderr or done.stdout).strip()[-200:])
        return None, f"`{exe} {' '.join(args)}` failed: {why}"
    version = parse(done.stdout + "\n" + done.stderr)
    return version, None if version else f"unrecognised output of {exe} {' '.join(args)}"


def _candidates(ctx: ProbeContext):
    env = ctx.environ
    on_path = shutil.which("nvcc", path=env.get("PATH"))
    if on_path:
        yield on_path, "PATH"
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        if env.get(var):
            yield os.path.join(env[var], "bin", "nvcc"), var
    for path in ["/usr/local/cuda/bin/nvcc", *sorted(glob.glob("/usr/local/cuda-*/bin/nvcc"))]:
        yield path, "/usr/local/cuda*"
    prefix = ctx.target.prefix
    if prefix:
        for path in sorted(glob.glob(os.path.join(prefix, "lib", "python*", "site-packages", "nvidia", "*", "bin",
                                                  "nvcc"))):
            yield path, "target env wheel"


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
        seen[real] = Nvcc(path=path, real_path=real, found_via=via, version=version, error=error)
    on_path = shutil.which("nvcc", path=env.get("PATH"))
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    home_nvcc = os.path.join(home, "bin", "nvcc") if home else None
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
        libaio=libaio, libaio_header=libaio_header)
