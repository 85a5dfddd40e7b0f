"""GPU checks over the NVML facts: presence, CUDA_VISIBLE_DEVICES, memory class, bf16, health."""

from __future__ import annotations

from llmdoctor.command import run, setvar, unset
from llmdoctor.data import row, rows
from llmdoctor.model import Status, check
from llmdoctor.units import gib, size

from llmdoctor.checks.host import windows

CVD_DOCS = "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#env-vars"
NVML_DOCS = "https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html"
OTHER_PROCESS_SHARE = 0.10  #: memory held by other processes worth a warning


def no_gpu(g) -> bool:
    return g.source in ("none", "proc") or not g.gpus


def with_gpus(fn):
    """Run ``fn(gpu_facts, c, facts)`` where there are NVIDIA GPUs; elsewhere one SKIP finding
    (gpu.presence says once why)."""
    def run(facts, c):
        g = facts.value("gpu")
        if no_gpu(g):
            yield c.finding(Status.SKIP, "No NVIDIA GPU")
            return
        yield from fn(g, c, facts)

    run.__doc__ = fn.__doc__
    return run


def _cc(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def memory_class(total_bytes: int) -> dict:
    mib = total_bytes / (1024 * 1024)
    chosen = rows("llmdoctor.checks", "gpu_memory_classes")[0]
    for item in rows("llmdoctor.checks", "gpu_memory_classes"):
        if mib >= item["min_mib"]:
            chosen = item
    return chosen


MEMORY_DOCS = "https://pytorch.org/docs/stable/notes/cuda.html#memory-management"
WORKLOAD_WORDS = {"train-qlora": "QLoRA", "train-lora16": "16-bit LoRA", "generate-16bit": "16-bit inference",
                  "generate-int8": "int8 inference", "generate-nf4": "nf4 inference"}


def what_fits(total_bytes: int) -> tuple[str, str]:
    """(title, detail): which bench workloads of the 6-8B presets llmdoctor's one memory model
    (llmdoctor.benchmark.estimate, the bench's estimator, calibrated on measured runs) predicts
    to fit this much GPU memory, at the bench's defaults."""
    from llmdoctor.benchmark import estimate, presets

    archs = [a for a in (presets.preset(n) for n in presets.preset_names()) if 6e9 <= a.params() < 8.5e9]
    yes, some, none, lines = [], [], [], []
    for wl, word in WORKLOAD_WORDS.items():
        got = [(a.raw.get("label", a.name), estimate.predict(a, wl).bytes) for a in archs]
        fit = [name for name, b in got if b <= total_bytes]
        if len(fit) == len(got):
            yes.append(word)
        elif fit:
            some.append(f"{word} ({', '.join(fit)})")
        else:
            none.append(f"{word} (from {gib(min(b for _, b in got))})")
        lines.append(f"{word}: " + ", ".join(f"{name} {gib(b)}" for name, b in got))
    if not some and not none:
        title = "every 6-8B preset fits every bench workload (LoRA, QLoRA, 16/8/4-bit inference)"
    else:
        title = "6-8B models at batch 1 x 1024 tokens: " + "; ".join(
            f"{head} {', '.join(items)}" for head, items in (("fit for", yes), ("only some for", some),
                                                             ("none for", none)) if items)
    detail = (f"Predicted peak per process (CUDA context included) against {gib(total_bytes)}, by the memory model "
              "that llmdoctor bench uses and measures (`llmdoctor bench --estimate-only --model ID` for any model): "
              + "; ".join(lines))
    return title, detail


CONTAINER_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
WSL_DOCS = "https://docs.nvidia.com/cuda/wsl-user-guide/index.html"


def no_gpu_detail(g) -> str:
    """Why there are no GPU facts: what NVML and nvidia-smi answered (a report from before the
    check worded it: its sentence)."""
    if g.reason or g.source not in ("none", "proc"):
        return g.reason or ""
    return (f"no NVIDIA GPU found (NVML: {g.nvml_error}; nvidia-smi: {g.smi_error}"
            + (f"; the kernel module {g.proc_driver_version} is loaded" if g.proc_driver_version else "") + ")")


def _no_gpu_finding(g, system, c):
    """Why there is no GPU, in the words that fit where llmdoctor runs."""
    if g.source == "proc" and g.nvml_error and "mismatch" in g.nvml_error.lower():
        return c.finding(Status.FAIL, f"NVIDIA kernel module {g.proc_driver_version} is loaded but NVML fails: "
                         "driver/library version mismatch (the driver was upgraded without a reboot)",
                         id="gpu.driver-mismatch", detail=no_gpu_detail(g),
                         fix=(run("sudo", "reboot"), "   (or unload and reload the nvidia kernel modules)"),
                         docs="https://docs.nvidia.com/deploy/driver-persistence/index.html")
    if system is not None and system.os == "Darwin":  # said once here; system.macos says what runs instead
        from llmdoctor.checks.platforms import macos_no_cuda_title, spec

        return c.finding(Status.INFO, macos_no_cuda_title(), id="gpu.none-macos", detail=spec("macos_no_cuda")["why"],
                         docs=spec("macos_mps")["source"])
    if system is not None and system.wsl == 2:
        return c.finding(Status.INFO, "No NVIDIA GPU visible in WSL 2: the GPU comes from the Windows NVIDIA "
                         "driver (do not install a Linux driver inside WSL)", id="gpu.none-wsl",
                         detail=no_gpu_detail(g),
                         fix=("install or update the NVIDIA driver on Windows, then in Windows PowerShell: ",
                              run("wsl", "--shutdown", shell="powershell")),
                         docs=WSL_DOCS)
    if system is not None and system.container:
        return c.finding(Status.INFO, f"No NVIDIA GPU visible inside this {system.container} container: was it "
                         "started with the GPU passed through?", id="gpu.none-container", detail=no_gpu_detail(g),
                         fix=(run("docker", "run", "--gpus", "all", "..."),
                              "   (needs the NVIDIA Container Toolkit on the host)"),
                         docs=CONTAINER_DOCS)
    return c.finding(Status.INFO, "No NVIDIA GPU or driver found: GPU checks skipped", detail=no_gpu_detail(g))


@check("gpu.presence", needs=["gpu"])
def presence_check(facts, c):
    """NVIDIA driver and GPUs: said once, clearly, when there are none."""
    g = facts.value("gpu")
    if no_gpu(g):
        yield _no_gpu_finding(g, facts.value("system"), c)
        return
    driver = f"driver {g.driver_version or '?'}" + (f" (CUDA {g.cuda_driver_version})" if g.cuda_driver_version else "")
    for gpu in g.gpus:
        hidden = "" if gpu.visible else " — hidden by CUDA_VISIBLE_DEVICES"
        yield c.finding(Status.OK, f"GPU {gpu.index}: {gpu.name or 'unknown'}, {gib(gpu.memory_total_bytes)}, "
                        f"compute capability {gpu.compute_capability or '?'}, {driver}{hidden}",
                        detail=f"read with {g.source}")


@check("gpu.visible-devices", needs=["gpu"])
@with_gpus
def visible_devices_check(g, c, facts):
    """CUDA_VISIBLE_DEVICES: empty or naming GPUs that do not exist."""
    if g.visible_problem == "empty":
        title = "CUDA_VISIBLE_DEVICES is set but empty: it hides every GPU"
    elif g.visible_problem == "no-match":
        shown = [x.index for x in g.visible_gpus]
        title = (f"CUDA_VISIBLE_DEVICES={g.cuda_visible_devices!r}: {g.visible_unmatched!r} matches no GPU (there are "
                 f"{len(g.gpus)})" + (f"; CUDA uses only {shown} and ignores the rest" if shown else ""))
    else:
        title = g.visible_error  # a report from before visible_problem
    if title:
        yield c.finding(Status.FAIL, title, fix=(setvar("CUDA_VISIBLE_DEVICES", "0"), "   (or: ",
                                                 unset("CUDA_VISIBLE_DEVICES"), ")"), docs=CVD_DOCS)
    elif g.cuda_visible_devices is not None:
        yield c.finding(Status.OK, f"CUDA_VISIBLE_DEVICES={g.cuda_visible_devices} selects GPU "
                        + ", ".join(str(x.index) for x in g.visible_gpus))


def _kill(facts, pids):
    """Ends these processes: taskkill on Windows (cmd and PowerShell alike), kill elsewhere."""
    if windows(facts):
        return run("taskkill", *(w for pid in pids for w in ("/PID", str(pid))))
    return run("kill", *(str(pid) for pid in pids))


@check("gpu.memory", needs=["gpu"])
@with_gpus
def memory_check(g, c, facts):
    """GPU memory class (what the bench's memory model says fits) and memory held by other processes."""
    for gpu in g.visible_gpus:
        if gpu.memory_total_bytes is None:
            yield c.finding(Status.SKIP, f"GPU {gpu.index}: memory size unknown", detail=str(gpu.unknown))
            continue
        cls = memory_class(gpu.memory_total_bytes)
        title, detail = what_fits(gpu.memory_total_bytes)
        yield c.finding(Status.INFO, f"GPU {gpu.index} {gpu.name}: {cls['label']}: {title}", id="gpu.memory-class",
                        detail=detail, docs=MEMORY_DOCS)
        others = [p for p in (gpu.processes or ()) if p.used_memory_bytes]
        held = sum(p.used_memory_bytes for p in others)
        if others and held > OTHER_PROCESS_SHARE * gpu.memory_total_bytes:
            who = ", ".join(f"PID {p.pid} {p.name or '?'} ({size(p.used_memory_bytes)})" for p in others)
            yield c.finding(Status.WARN, f"GPU {gpu.index}: {size(held)} of {size(gpu.memory_total_bytes)} is "
                            f"already used by other processes: {who}", id="gpu.memory-in-use",
                            fix=(_kill(facts, [p.pid for p in others]), "   (after checking what they are)"))


@check("gpu.bf16", needs=["gpu"])
@with_gpus
def bf16_check(g, c, facts):
    """bf16 by compute capability >= 8.0, never by torch.cuda.is_bf16_supported() alone."""
    feature = row("llmdoctor.checks", "gpu_features", "feature", "bf16")
    need = _cc(feature["min_cc"])
    for gpu in g.visible_gpus:
        if gpu.cc_major is None:
            continue
        if (gpu.cc_major, gpu.cc_minor or 0) >= need:
            yield c.finding(Status.OK, f"GPU {gpu.index}: bf16 native (compute capability {gpu.compute_capability})",
                            docs=feature["source"])
        else:
            yield c.finding(Status.INFO, f"GPU {gpu.index} {gpu.name}: no native bf16 (compute capability "
                            f"{gpu.compute_capability} < {feature['min_cc']}): train and run in fp16",
                            id="gpu.bf16-unsupported", detail=feature["why"],
                            fix="TrainingArguments(fp16=True, bf16=False); torch_dtype=torch.float16",
                            docs=feature["source"])


@check("gpu.health", needs=["gpu"])
@with_gpus
def health_check(g, c, facts):
    """ECC errors, thermal/power throttling, PCIe link below its maximum, MIG, persistence mode."""
    for gpu in g.visible_gpus:
        n = f"GPU {gpu.index}"
        problems = 0
        if gpu.ecc_uncorrected_volatile or gpu.ecc_uncorrected_aggregate:
            problems += 1
            yield c.finding(Status.WARN, f"{n}: uncorrected ECC errors (volatile {gpu.ecc_uncorrected_volatile}, "
                            f"aggregate {gpu.ecc_uncorrected_aggregate}): results and jobs may fail",
                            id="gpu.ecc-errors", fix=run("nvidia-smi", "-i", str(gpu.index), "-q", "-d",
                                                         "ECC,PAGE_RETIREMENT"),
                            docs="https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/index.html")
        active = [r for r in (gpu.throttle_reasons or ()) if r in
                  ("hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown",
                   "sw_power_cap")]
        idle = "gpu_idle" in (gpu.throttle_reasons or ())
        if active and not idle:
            problems += 1
            yield c.finding(Status.WARN, f"{n}: clocks held back by {', '.join(active)} "
                            f"({gpu.temperature_c} °C, {gpu.power_draw_w} of {gpu.power_limit_w} W)",
                            id="gpu.throttling", fix=run("nvidia-smi", "-i", str(gpu.index), "-q", "-d",
                                                         "PERFORMANCE,TEMPERATURE,POWER"),
                            docs=NVML_DOCS)
        if (gpu.pcie_width and gpu.pcie_width_max and gpu.pcie_width < gpu.pcie_width_max and not idle):
            problems += 1
            yield c.finding(Status.WARN, f"{n}: PCIe link x{gpu.pcie_width} of x{gpu.pcie_width_max} "
                            f"(gen {gpu.pcie_gen} of {gpu.pcie_gen_max}): host-GPU copies are slower",
                            id="gpu.pcie-degraded", fix="reseat the card or move it to a full x16 slot",
                            docs="https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html")
        if gpu.mig_mode:
            yield c.finding(Status.INFO, f"{n}: MIG mode is on: CUDA sees MIG instances, not the whole GPU",
                            id="gpu.mig-on", docs="https://docs.nvidia.com/datacenter/tesla/mig-user-guide/")
        if gpu.persistence_mode is False:
            yield c.finding(Status.INFO, f"{n}: persistence mode off: each new CUDA process pays the driver "
                            "start-up", id="gpu.persistence-off",
                            fix=None if windows(facts) else run("sudo", "nvidia-smi", "-i", str(gpu.index), "-pm", "1"),
                            docs="https://docs.nvidia.com/deploy/driver-persistence/index.html")
        if not problems:
            yield c.finding(Status.OK, f"{n}: no ECC errors, throttling or degraded PCIe link"
                            + (f" ({gpu.temperature_c} °C)" if gpu.temperature_c is not None else ""))
