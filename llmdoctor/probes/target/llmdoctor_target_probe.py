"""Runs inside the *target* interpreter, which may be any CPython >= 3.8.

Standard library only, no f-string "=" specifiers, no walrus, no 3.9+ typing:
this file must stay importable by Python 3.8. It prints one JSON document on
stdout and imports nothing heavy. It lives alone in its folder because Python
puts a script's folder first on sys.path.

    python llmdoctor_target_probe.py env
    python llmdoctor_target_probe.py imports numpy transformers ...
    python llmdoctor_target_probe.py extensions flash_attn bitsandbytes
    python llmdoctor_target_probe.py model-env '{"modules": [...], "names": [...], ...}'

In ``imports`` mode each module gets a JSON line "start" before its import and a
result line after it, flushed at once, so that when an import kills the
interpreter (a segfault in a native extension) the caller knows which one.
"""

import json
import os
import platform
import sys
import sysconfig
import time
import traceback


def _markers():
    # The PEP 508 environment, computed as packaging.markers.default_environment does.
    impl = sys.implementation
    info = impl.version
    iver = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        iver += info.releaselevel[0] + str(info.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": iver,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _distributions():
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - 3.8+ always has it
        return [], "importlib.metadata is missing"
    out = []
    for dist in metadata.distributions():
        try:
            meta = dist.metadata
            name = meta["Name"] if meta is not None else None
            try:
                location = str(dist.locate_file(""))
            except Exception:
                location = None
            out.append({
                "name": name,
                "version": meta["Version"] if meta is not None else None,
                "requires": list(dist.requires or []),
                "location": location,
            })
        except Exception as exc:  # a broken METADATA file must not hide the rest
            out.append({"name": None, "version": None, "requires": [], "location": None,
                        "error": "{}: {}".format(type(exc).__name__, exc)})
    return out, None


BUILD_ENV = ("MAX_JOBS", "NVCC_THREADS", "CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST", "DS_BUILD_OPS",
             "DS_BUILD_AIO", "DS_BUILD_CPU_ADAM", "FLASH_ATTENTION_FORCE_BUILD", "FLASH_ATTENTION_SKIP_CUDA_BUILD",
             "BNB_CUDA_VERSION", "TMPDIR")

#: what decides where and how the target's HTTP clients connect (proxy passwords masked)
NET_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "PIP_INDEX_URL",
           "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CONFIG_FILE", "HF_ENDPOINT", "HF_HUB_OFFLINE",
           "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_XET", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
           "http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _mask(value):
    import re

    return re.sub(r"(://)[^/@\s]+@", r"\1***@", value)


def _net_env():
    return {k: _mask(os.environ[k]) for k in NET_ENV if k in os.environ}


def _client():
    for client in ("httpx2", "httpx", "requests"):
        if client in sys.modules:
            return client
    return None


def _verification(client, url):
    """Whether the stack huggingface_hub uses verifies certificates for ``url``, asked of the
    stack itself: "on", "off", or "bundle:<path>"."""
    if client == "requests":
        try:
            import requests

            verify = requests.Session().merge_environment_settings(url, {}, None, None, None).get("verify")
        except Exception as exc:
            return "unknown: {}: {}".format(type(exc).__name__, exc)
        if verify is False or verify == "":
            return "off"
        if verify is True or verify is None:
            return "on"
        return "bundle:" + str(verify)
    if client in ("httpx", "httpx2"):
        return "on"  # httpx has no environment variable that switches verification off
    return "unknown"


def _chain(exc):
    out, seen = [], set()
    while exc is not None and id(exc) not in seen and len(out) < 8:
        seen.add(id(exc))
        out.append("{}: {}".format(type(exc).__name__, str(exc).strip()[:600]))
        exc = exc.__cause__ or exc.__context__
    return out


def _bounded(fn, timeout):
    """Run ``fn()`` under a deadline the caller can keep: huggingface_hub retries failed
    requests with sleeps of 1 to 8 s (23 s and more for one HEAD); here those sleeps are
    skipped and the call is abandoned at ``timeout``, with what its retries logged so far.
    Returns (result, exception, logged messages, timed out)."""
    import logging
    import threading

    logged = []

    class Keep(logging.Handler):
        def emit(self, record):
            try:
                logged.append(record.getMessage()[:600])
            except Exception:
                pass

    hub_logger = logging.getLogger("huggingface_hub")
    hub_logger.addHandler(Keep(level=logging.WARNING))
    real_sleep = time.sleep
    time.sleep = lambda seconds: real_sleep(min(seconds, 0.05))
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    time.sleep = real_sleep
    return box.get("result"), box.get("error"), logged, worker.is_alive()


def hub_call(repo, filename, timeout):
    """HEAD one file through the target's own huggingface_hub, as a download starts."""
    out = {"env": _net_env()}
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(max(1, timeout))))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(max(1, timeout))))
    started = time.perf_counter()
    try:
        import huggingface_hub
    except BaseException as exc:
        out["import_error"] = "{}: {}".format(type(exc).__name__, exc)
        return out
    out["version"] = getattr(huggingface_hub, "__version__", None)
    try:
        from huggingface_hub import constants

        out["endpoint"] = constants.ENDPOINT
    except BaseException:
        pass
    url = None
    try:
        url = huggingface_hub.hf_hub_url(repo, filename)
    except BaseException as exc:
        out.update(ok=False, errors=_chain(exc))
        return out
    left = max(1.0, timeout - (time.perf_counter() - started))
    meta, exc, logged, late = _bounded(lambda: huggingface_hub.get_hf_file_metadata(url, timeout=left), left)
    out["client"] = _client()
    out["verify"] = _verification(out["client"], url)
    if late:
        out.update(ok=False, timed_out=True,
                   errors=["TimeoutError: the call did not finish within {:.0f} s".format(left)] + logged[-3:])
    elif exc is not None:
        out.update(ok=False, errors=_chain(exc))
    else:
        commit, etag = getattr(meta, "commit_hash", None), getattr(meta, "etag", None)
        if commit and etag:
            out.update(ok=True, commit=commit, etag=etag)
        else:  # some versions return empty metadata where hf_hub_download then raises
            out.update(ok=False, errors=["FileMetadataError: the answer has no X-Repo-Commit / ETag header: "
                                         "it does not come from a Hugging Face hub"])
    out["retries"] = [m for m in logged if "Retrying" in m or "thrown while requesting" in m][-5:]
    out["seconds"] = time.perf_counter() - started
    return out


def _status_of(exc):
    """The HTTP status an exception (or one of its causes) carries, if the server answered."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
        exc = exc.__cause__ or exc.__context__
    return None


def hub_reach(repo, filename, timeout):
    """Whether TLS to the hub verifies, in this process's own environment: any HTTP answer over
    a verified connection proves it (a 404 for a repo the server does not have included)."""
    out = {"env": _net_env()}
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except BaseException as exc:
        out["import_error"] = "{}: {}".format(type(exc).__name__, exc)
        return out
    out["version"] = getattr(huggingface_hub, "__version__", None)
    out["endpoint"] = getattr(constants, "ENDPOINT", None)
    url = huggingface_hub.hf_hub_url(repo, filename)
    meta, exc, logged, late = _bounded(lambda: huggingface_hub.get_hf_file_metadata(url, timeout=timeout), timeout)
    out["client"] = _client()
    out["verify"] = _verification(out["client"], url)
    out["scheme"] = url.split(":", 1)[0]
    if late:
        out.update(answered=False, errors=["TimeoutError: no answer within {:.0f} s".format(timeout)] + logged[-3:])
    elif exc is None:
        out.update(answered=True, status=200, commit=getattr(meta, "commit_hash", None))
    else:
        status = _status_of(exc)
        out.update(answered=status is not None, status=status, errors=_chain(exc))
    return out


def hub_download(repo, filename, cache_dir):
    """A real download through the target's huggingface_hub, verification on (fix checks)."""
    out = {"env": _net_env()}
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo, filename, cache_dir=cache_dir)
        out.update(ok=True, path=path, size=os.path.getsize(path))
    except BaseException as exc:
        out.update(ok=False, errors=_chain(exc)[:6])
    out["client"] = _client()
    try:
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(repo, filename)
        out["verify"] = _verification(out["client"], url)
        out["scheme"] = url.split(":", 1)[0]
    except BaseException:
        pass
    return out


#: packages whose native libraries are listed (found without importing them)
NATIVE_LIBS = {"bitsandbytes": "libbitsandbytes_*"}


def _native_libs():
    import fnmatch
    import importlib.util

    out = {}
    for package, pattern in NATIVE_LIBS.items():
        try:
            spec = importlib.util.find_spec(package)
        except Exception:  # a broken package must not hide the rest
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = list(spec.submodule_search_locations)[0]
        try:
            names = sorted(n for n in os.listdir(folder) if fnmatch.fnmatch(n, pattern))
        except OSError:
            continue
        out[package] = names
    return out


def _jupyter_dirs():
    # jupyter_core.paths.jupyter_path("kernels"), without importing jupyter_core
    dirs = []
    for entry in os.environ.get("JUPYTER_PATH", "").split(os.pathsep):
        if entry:
            dirs.append(entry)
    if sys.platform == "darwin":
        dirs.append(os.path.expanduser("~/Library/Jupyter"))
    elif os.name == "nt":
        dirs.append(os.path.join(os.environ.get("APPDATA", ""), "jupyter"))
    else:
        data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        dirs.append(os.path.join(data_home, "jupyter"))
    dirs.append(os.path.join(sys.prefix, "share", "jupyter"))
    if os.name == "nt":
        dirs.append(os.path.join(os.environ.get("PROGRAMDATA", ""), "jupyter"))
    else:
        dirs += ["/usr/local/share/jupyter", "/usr/share/jupyter"]
    return [os.path.join(d, "kernels") for d in dirs]


def _kernelspecs():
    out, seen = [], set()
    for folder in _jupyter_dirs():
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            spec = os.path.join(folder, name, "kernel.json")
            if name in seen or not os.path.isfile(spec):
                continue
            seen.add(name)  # the first directory in the search path wins, as in jupyter_client
            try:
                with open(spec, encoding="utf-8") as fh:
                    data = json.load(fh)
                argv = data.get("argv") or []
                argv0 = argv[0] if argv and isinstance(argv[0], str) else None
                out.append({"name": name, "path": spec, "language": data.get("language"), "argv0": argv0,
                            "argv0_exists": os.path.exists(argv0) if argv0 and os.path.isabs(argv0) else None})
            except Exception as exc:
                out.append({"name": name, "path": spec, "error": "{}: {}".format(type(exc).__name__, exc)})
    return out


def env():
    paths = sysconfig.get_paths()
    include = paths.get("include") or ""
    dists, dist_error = _distributions()
    return {
        "python_version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "in_venv": getattr(sys, "base_prefix", sys.prefix) != sys.prefix or hasattr(sys, "real_prefix"),
        "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
        "platform": sys.platform,
        "machine": platform.machine(),
        "include_dir": include,
        "has_python_h": bool(include) and os.path.isfile(os.path.join(include, "Python.h")),
        "purelib": paths.get("purelib"),
        "sys_path": [p for p in sys.path if p],
        "markers": _markers(),
        "distributions": dists,
        "distributions_error": dist_error,
        # as this interpreter sees them: a start-up hook (llmdoctor-env.pth) counts too
        "build_env": {k: os.environ[k] for k in BUILD_ENV if k in os.environ},
        "native_libs": _native_libs(),
        "net_env": _net_env(),
        "net_missing_files": [k for k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                                          "PIP_CERT")
                              if os.environ.get(k, "").strip(" '\"") and
                              not os.path.exists(os.path.expanduser(os.environ[k].strip()))],
        "kernelspecs": _kernelspecs(),
    }


MARK = "@@llmdoctor@@ "  # start-up code (a .pth, sitecustomize) may print too: our lines carry this


def _emit(obj):
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _foreign_abi(folder, limit=20000):
    """Extension modules under ``folder`` built for another Python than this one
    (``_x.cpython-310-x86_64-linux-gnu.so`` under 3.11): what a site-packages copied between
    Python versions leaves behind. Lists at most five, after looking at ``limit`` files."""
    import re

    mine = "cpython-{}{}".format(sys.version_info[0], sys.version_info[1])
    pat = re.compile(r"\.(cpython-\d+)[^.]*\.so$|\.cp(\d+)-win[^.]*\.pyd$")
    found, seen = [], 0
    for root, dirs, files in os.walk(folder):
        for name in files:
            seen += 1
            m = pat.search(name)
            if m:
                tag = m.group(1) or "cpython-" + m.group(2)
                if tag != mine:
                    found.append(os.path.relpath(os.path.join(root, name), os.path.dirname(folder)))
                    if len(found) >= 5:
                        return found
        if seen > limit:
            break
    return found


def imports(modules):
    import importlib.util

    for name in modules:
        _emit({"event": "start", "module": name})
        started = time.perf_counter()
        folder = None
        try:
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations:
                folder = list(spec.submodule_search_locations)[0]
        except Exception:
            pass
        try:
            mod = __import__(name)
            version = getattr(mod, "__version__", None)
            _emit({"event": "ok", "module": name, "seconds": time.perf_counter() - started,
                   "version": version if isinstance(version, str) else None})
        except BaseException as exc:  # SystemExit and friends included: report, go on
            lines = traceback.format_exception_only(type(exc), exc)
            cause = exc.__cause__ or exc.__context__
            if cause is not None:  # numpy hides the real error behind "relaunch your python interpreter"
                lines += ["\nCaused by: "] + traceback.format_exception_only(type(cause), cause)
            event = {"event": "error", "module": name, "seconds": time.perf_counter() - started,
                     "type": type(exc).__name__, "message": "".join(lines).strip()[-2000:]}
            try:
                event["foreign_abi"] = _foreign_abi(folder) if folder else []
            except Exception:
                pass
            _emit(event)


def _driver_present():
    """Whether an NVIDIA driver's CUDA library loads here (then torch may see a GPU)."""
    import ctypes

    names = {"win32": ["nvcuda.dll"], "darwin": []}.get(sys.platform, ["libcuda.so.1", "libcuda.so"])
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return os.path.exists("/proc/driver/nvidia/version")


def _release(version):
    parts = []
    for piece in (version or "").split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts)


#: from this release `import bitsandbytes` picks its library as read below (cextension.get_native_library):
#: the CPU library whenever torch.cuda.is_available() is False
BNB_CPU_BACKEND = (0, 46)


def bnb_native_library():
    """(library, version, why) when which native library `import bitsandbytes` loads is certain
    without importing it (and torch): torch is a CPU build, or no NVIDIA driver is installed,
    so torch.cuda.is_available() is False and bitsandbytes >= 0.46 loads its CPU library.
    None whenever that is not certain (a driver, ROCm, XPU, an older bitsandbytes): then the
    caller imports it."""
    import importlib.util
    from importlib import metadata

    try:
        version = metadata.version("bitsandbytes")
        spec = importlib.util.find_spec("bitsandbytes")
    except Exception:
        return None
    if spec is None or not spec.submodule_search_locations or _release(version) < BNB_CPU_BACKEND:
        return None
    torch = torch_static()
    if not torch.get("installed") or torch.get("error") or torch.get("hip") or "xpu" in (torch.get("version") or ""):
        return None
    if torch.get("cuda"):
        if _driver_present():
            return None
        why = "no NVIDIA driver is installed, so torch {} sees no GPU".format(torch.get("version"))
    else:
        why = "torch {} is a CPU build".format(torch.get("version"))
    suffix = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")
    folder = list(spec.submodule_search_locations)[0]
    return os.path.join(folder, "libbitsandbytes_cpu" + suffix), version, why


def extensions(modules):
    """Like ``imports``, except that bitsandbytes is judged by loading the native library its
    import would load, where that is certain (``bnb_native_library``): the same verdict on its
    native code without paying for torch and its compiler stack. Anything else is imported."""
    import ctypes

    for name in modules:
        native = bnb_native_library() if name == "bitsandbytes" else None
        if native is None:
            imports([name])
            continue
        library, version, why = native
        _emit({"event": "start", "module": name})
        started = time.perf_counter()
        base = {"module": name, "version": version, "method": "native", "library": library, "why": why}
        try:
            if not os.path.exists(library):
                raise OSError("{}: cannot open shared object file: No such file or directory".format(library))
            ctypes.CDLL(library)
            base.update(event="ok", seconds=time.perf_counter() - started)
        except BaseException as exc:
            base.update(event="error", seconds=time.perf_counter() - started, type=type(exc).__name__,
                        message="".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:])
        _emit(base)


def _version_py_field(text, name):
    import re

    m = re.search(r"^" + name + r"\s*(?::[^=]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|None)", text, re.M)
    if not m:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def torch_static():
    """torch's build facts without importing it: torch/version.py read as text."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {"installed": False}
    folder = list(spec.submodule_search_locations)[0]
    out = {"installed": True, "location": folder}
    try:
        with open(os.path.join(folder, "version.py"), encoding="utf-8") as fh:
            text = fh.read()
        for name in ("__version__", "cuda", "hip", "git_version"):
            out[name.strip("_")] = _version_py_field(text, name)
    except OSError as exc:
        out["error"] = "{}: {}".format(type(exc).__name__, exc)
    lib = os.path.join(folder, "lib")
    out["has_libtorch_cuda"] = os.path.exists(os.path.join(lib, "libtorch_cuda.so")) or \
        os.path.exists(os.path.join(lib, "torch_cuda.dll"))
    if sys.platform == "win32":  # which runtime DLLs torch ships itself (a WinError 126 diagnosis)
        try:
            out["lib_dlls"] = sorted(n.lower() for n in os.listdir(lib) if n.lower().endswith(".dll"))
        except OSError:
            pass
    try:
        from importlib import metadata

        wheels = []
        for dist in metadata.distributions():
            name = (dist.metadata["Name"] or "") if dist.metadata is not None else ""
            if name.lower().startswith("nvidia-") and name.lower() != "nvidia-ml-py":
                wheels.append([name, dist.version])
        out["nvidia_wheels"] = sorted(wheels)
    except Exception as exc:  # a broken METADATA must not hide the torch facts
        out["nvidia_wheels_error"] = "{}: {}".format(type(exc).__name__, exc)
    return out


def torch_live():
    """Import torch and use every visible GPU: a small matmul checked against the CPU."""
    out = {}
    import torch

    out["version"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["arch_list"] = list(torch.cuda.get_arch_list()) if hasattr(torch.cuda, "get_arch_list") else []
    out["cxx11_abi"] = bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", False))
    for key, fn in (("cudnn", lambda: torch.backends.cudnn.version()),
                    ("nccl", lambda: ".".join(str(x) for x in torch.cuda.nccl.version()))):
        try:
            value = fn()
            out[key] = None if value is None else str(value)
        except Exception as exc:
            out[key + "_error"] = "{}: {}".format(type(exc).__name__, exc)
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        out["device_count"] = torch.cuda.device_count() if out["cuda_available"] else 0
    except Exception as exc:
        out["cuda_available"], out["device_count"] = False, 0
        out["error"] = "{}: {}".format(type(exc).__name__, exc)
    devices = []
    for i in range(out["device_count"]):
        dev = {"index": i}
        try:
            props = torch.cuda.get_device_properties(i)
            dev.update(name=props.name, capability="{}.{}".format(props.major, props.minor),
                       total_memory_bytes=int(props.total_memory))
            gen = torch.Generator().manual_seed(0)
            a = torch.randn(256, 256, generator=gen)
            b = torch.randn(256, 256, generator=gen)
            got = (a.to("cuda:{}".format(i)) @ b.to("cuda:{}".format(i))).cpu()
            diff = float((got - a @ b).abs().max())
            dev.update(matmul_max_abs_diff=diff, matmul_ok=diff < 1e-2)
        except Exception as exc:
            dev["error"] = "{}: {}".format(type(exc).__name__, str(exc).strip()[:1000])
        devices.append(dev)
    out["devices"] = devices
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    for key, name in (("mps_built", "is_built"), ("mps_available", "is_available")):
        try:
            out[key] = bool(getattr(mps, name)()) if mps is not None else False
        except Exception as exc:
            out[key + "_error"] = "{}: {}".format(type(exc).__name__, exc)
    return out


#: the only packages whose modules model_env imports (never the model's own code)
MODEL_ENV_PACKAGES = ("transformers", "torch")


def _lookup(module, name):
    """Whether ``from module import name`` works: "ok", "missing" (the module has no such
    name), "no-module" (no such module), or "error: ..." (the import itself failed)."""
    import importlib
    import importlib.util

    if module.split(".")[0] not in MODEL_ENV_PACKAGES:
        return "error: not looked up"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            return "no-module"
        return "error: {}: {}".format(type(exc).__name__, str(exc)[:300])
    except BaseException as exc:
        return "error: {}: {}".format(type(exc).__name__, str(exc)[:300])
    if name is None:
        return "ok"
    try:
        if hasattr(mod, name):
            return "ok"
    except BaseException as exc:  # a lazy module's __getattr__ failing on a missing backend
        return "error: {}: {}".format(type(exc).__name__, str(exc)[:300])
    try:
        if importlib.util.find_spec(module + "." + name) is not None:
            return "ok"  # from package import submodule
    except BaseException:
        pass
    return "missing"


def _mapping_keys(node):
    """String keys of a dict literal, a list of (key, value) tuples, or OrderedDict(...) of either."""
    import ast

    keys = []
    if isinstance(node, ast.Call):
        for arg in node.args:
            keys += _mapping_keys(arg)
        for kw in node.keywords:
            keys += _mapping_keys(kw.value)
    elif isinstance(node, ast.Dict):
        keys += [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    elif isinstance(node, (ast.List, ast.Tuple)):
        keys += [e.elts[0].value for e in node.elts if isinstance(e, ast.Tuple) and e.elts and
                 isinstance(e.elts[0], ast.Constant) and isinstance(e.elts[0].value, str)]
    return keys


def _model_types_read():
    """The keys of transformers' CONFIG_MAPPING_NAMES, read from its source without importing
    transformers (which imports torch): every literal assigned to, or added to, the table in
    configuration_auto.py and in the module it imports the table from. None when that finds
    too few to be the table."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec("transformers")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = os.path.join(list(spec.submodule_search_locations)[0], "models", "auto")
    except Exception:
        return None
    keys, todo, seen = set(), ["configuration_auto"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            with open(os.path.join(folder, name + ".py"), encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
        except Exception:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CONFIG_MAPPING_NAMES"
                                                    for t in node.targets):
                keys.update(_mapping_keys(node.value))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "update" and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id == "CONFIG_MAPPING_NAMES":
                for arg in node.args:
                    keys.update(_mapping_keys(arg))
            elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and \
                    any(a.name == "CONFIG_MAPPING_NAMES" for a in node.names):
                todo.append(node.module)
    return sorted(keys) if len(keys) >= 20 else None


def _config_defaults(model_type, given, section):
    """A config as transformers completes it: its config class for ``model_type`` built from
    ``given`` (a saved config leaves out what equals the class's defaults), as a dict; of it
    only ``section`` (text_config...) when given. (dict, None) or (None, error); the error
    "no-transformers" when transformers is not installed."""
    import importlib.util

    try:
        if importlib.util.find_spec("transformers") is None:
            return None, "no-transformers"
        from transformers import AutoConfig

        kwargs = dict((k, v) for k, v in given.items() if k != "model_type")
        cfg = AutoConfig.for_model(model_type, **kwargs).to_dict()
    except BaseException as exc:
        return None, "{}: {}".format(type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
    if section:
        cfg = cfg.get(section)
    if not isinstance(cfg, dict):
        return None, "no {} in the completed config".format(section)
    return {k: v for k, v in cfg.items() if isinstance(k, str) and isinstance(v, (str, int, float, bool, type(None)))}, \
        None


def model_env(request):
    """What a model's code and files need here: which top-level modules exist (found, not
    imported), whether transformers names and base-class members exist (transformers and
    torch are imported, never the model's code), the model types transformers knows, and
    configs completed with their config class's defaults (``configs``: [id, model_type,
    given, section]; the model's own code is never imported: an unknown model type is an error)."""
    import importlib.util

    out = {"modules": {}, "names": [], "members": [], "model_types": None, "model_types_error": None, "configs": []}
    for item in request.get("configs") or []:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[1], str) and isinstance(item[2], dict)):
            continue
        filled, error = _config_defaults(item[1], item[2], item[3] if isinstance(item[3], str) else None)
        out["configs"].append([item[0], filled, error])
    for name in request.get("modules") or []:
        if not isinstance(name, str) or not name or ("." in name and name != "google.protobuf"):
            continue
        try:
            out["modules"][name] = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is missing
            out["modules"][name] = False
        except BaseException:
            out["modules"][name] = None
    if request.get("model_types"):
        types = _model_types_read()
        if types is None:  # a layout the reader does not know: ask transformers itself
            try:
                from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

                types = sorted(str(k) for k in CONFIG_MAPPING_NAMES)
            except BaseException as exc:
                out["model_types_error"] = "{}: {}".format(type(exc).__name__, str(exc)[:300])
        out["model_types"] = types
    for module, name in request.get("names") or []:
        out["names"].append([module, name, _lookup(module, name)])
    for module, cls, attrs in request.get("members") or []:
        state = _lookup(module, cls)
        if state != "ok":
            out["members"].append([module, cls, state, []])
            continue
        import importlib

        klass = getattr(importlib.import_module(module), cls, None)
        if not isinstance(klass, type):
            out["members"].append([module, cls, "error: not a class", []])
            continue
        out["members"].append([module, cls, "ok", [a for a in attrs if not hasattr(klass, a)]])
    return out


def main(argv):
    mode = argv[1] if len(argv) > 1 else "env"
    if mode == "env":
        _emit(env())
    elif mode == "imports":
        imports(argv[2:])
    elif mode == "extensions":
        extensions(argv[2:])
    elif mode == "torch":
        _emit(torch_static())
    elif mode == "torch-live":
        _emit(torch_live())
    elif mode == "download":
        _emit(hub_download(argv[2], argv[3], argv[4]))
    elif mode == "netenv":
        _emit(_net_env())
    elif mode == "hub":
        _emit(hub_call(argv[2], argv[3], float(argv[4])))
    elif mode == "model-env":
        _emit(model_env(json.loads(argv[2])))
    elif mode == "reach":
        _emit(hub_reach(argv[2], argv[3], float(argv[4])))
    else:
        sys.stderr.write("unknown mode {!r}\n".format(mode))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
