"""PyTorch checks, one test per real situation from the failure catalogue."""

from checks_under_test import pytorch as pt
from factories import facts, findings_of, gpu, gpus, live_torch, target, torch_facts
from llmdoctor.model import Status
from llmdoctor.probes import TargetFailure
from llmdoctor.probes.pytorch import TorchDevice
from llmdoctor.report.shells import fix_text

PY = "/home/u/.venvs/llm/bin/python"
T4 = gpu(name="Tesla T4", memory_total_bytes=15360 * 1024**2, cc_major=7, cc_minor=5)


def run(check, t, g):
    return findings_of(check, facts(torch=t, gpu=g, target=target()))


def test_cpu_torch_on_a_t4_gets_the_newest_cuda_build_its_driver_runs():
    """Driver 535 (CUDA 12.2) runs every CUDA 12.x build through minor-version compatibility."""
    (f,) = run(pt.cpu_only_check, torch_facts(version="2.5.1+cpu", build="cpu", cuda=None),
               gpus(T4, driver_version="535.183.01", cuda_driver_version="12.2"))
    assert f.status is Status.FAIL and f.id == "torch.cpu-only"
    assert "torch.cuda.is_available() is False" in f.title
    assert fix_text(f) == f"{PY} -m pip install --force-reinstall torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"
    assert f.docs == "https://pytorch.org/get-started/previous-versions/#v251"
    assert "minor-version compatibility" in f.detail


def test_cpu_torch_2_13_on_driver_580_gets_a_published_cuda_13_build():
    (f,) = run(pt.cpu_only_check, torch_facts(version="2.13.0+cpu", build="cpu", cuda=None),
               gpus(gpu(), driver_version="580.95.05", cuda_driver_version="13.0"))
    assert fix_text(f).endswith("torch==2.13.0 --index-url https://download.pytorch.org/whl/cu132")


def test_driver_470_with_torch_cu121_gets_the_cu118_build_of_the_same_torch():
    """A CUDA 12.1 build needs >= 525.60.13, but 470 runs CUDA 11.x builds (>= 450.80.02)."""
    (f,) = run(pt.driver_check, torch_facts(), gpus(T4, driver_version="470.256.02", cuda_driver_version="11.4"))
    assert f.status is Status.FAIL and "needs driver >= 525.60.13" in f.title
    assert fix_text(f).endswith("torch==2.5.1 --index-url https://download.pytorch.org/whl/cu118")
    assert f.docs.startswith("https://docs.nvidia.com/deploy/cuda-compatibility/")


def test_driver_too_old_for_every_build_of_the_torch_names_the_driver_first():
    (f,) = run(pt.driver_check, torch_facts(version="2.9.0+cu128", cuda="12.8"),
               gpus(T4, driver_version="470.256.02", cuda_driver_version="11.4"))
    assert f.status is Status.FAIL
    assert fix_text(f).startswith("upgrade the NVIDIA driver to 525.60.13 or newer, then: ")
    assert fix_text(f).endswith("torch==2.9.0 --index-url https://download.pytorch.org/whl/cu128")
    assert "Without changing the driver: torch 2.7.1+cu118" in f.detail


def test_driver_520_gets_the_cu118_build():
    (f,) = run(pt.driver_check, torch_facts(version="2.6.0+cu126", cuda="12.6"),
               gpus(T4, driver_version="520.61.05", cuda_driver_version="11.8"))
    assert f.status is Status.FAIL and fix_text(f).endswith("torch==2.6.0 --index-url https://download.pytorch.org/whl/cu118")


def test_new_enough_driver_is_ok():
    (f,) = run(pt.driver_check, torch_facts(version="2.5.1+cu124", cuda="12.4"), gpus(gpu()))
    assert f.status is Status.OK


def test_rtx_5090_on_torch_2_4_cu121_has_no_kernel_image():
    rtx5090 = gpu(name="NVIDIA GeForce RTX 5090", cc_major=12, cc_minor=0, memory_total_bytes=32 * 1024**3)
    (f,) = run(pt.arch_check, torch_facts(version="2.4.0+cu121", live=live_torch()),
               gpus(rtx5090, driver_version="570.86.10", cuda_driver_version="12.8"))
    assert f.id == "torch.arch-missing" and f.status is Status.FAIL
    assert "no kernel image is available" in f.title
    # no 2.4 build has sm_120: the nearest release that has (2.7, newest patch, cu128) and runs on this driver
    assert fix_text(f).endswith("torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128")


def test_p40_is_missing_from_a_cu128_build():
    p40 = gpu(name="Tesla P40", cc_major=6, cc_minor=1)
    arch = ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120")
    (f,) = run(pt.arch_check, torch_facts(version="2.8.0+cu128", cuda="12.8", live=live_torch(arch_list=arch)),
               gpus(p40))
    assert f.id == "torch.arch-missing" and "6.1" in f.title


def test_arch_list_rules():
    assert pt.runs_on("8.9", ("sm_80", "sm_86"))  # same major, lower minor cubin
    assert not pt.runs_on("9.0", ("sm_80", "sm_86"))
    assert pt.runs_on("12.0", ("sm_90", "compute_90"))  # PTX JIT
    assert pt.runs_on("9.0", ("sm_90a",))


def test_live_test_crash_on_import_is_a_failure():
    t = torch_facts(live_failure=TargetFailure("signal", step="torch-live", exit_code=-11, tail="Fatal Python error"))
    (f,) = run(pt.live_check, t, gpus(gpu()))
    assert f.status is Status.FAIL
    assert f.title == "`import torch` in the target failed: the target interpreter was killed by SIGSEGV during the " \
        "torch live test"
    assert f.detail.startswith("the target interpreter was killed by SIGSEGV during the torch live test\n"
                               "Fatal Python error\n")


def test_a_report_from_before_live_failure_shows_its_sentence():
    t = torch_facts(live_error="the target interpreter was killed by SIGSEGV during the torch live test")
    (f,) = run(pt.live_check, t, gpus(gpu()))
    assert f.status is Status.FAIL and f.title == ("`import torch` in the target failed: the target interpreter "
                                                   "was killed by SIGSEGV during the torch live test")


def test_cuda_not_available_with_its_exception_text():
    err = "RuntimeError: The NVIDIA driver on your system is too old (found version 11040)."
    (f,) = run(pt.live_check, torch_facts(live=live_torch(cuda_available=False, device_count=0, devices=(), error=err)),
               gpus(gpu()))
    assert f.status is Status.FAIL and "found version 11040" in f.title


def test_a_wrong_matmul_fails_that_gpu():
    bad = TorchDevice(0, "NVIDIA GeForce RTX 4090", "8.9", 24 * 1024**3, False, 17.5)
    (f,) = run(pt.live_check, torch_facts(live=live_torch(devices=(bad,))), gpus(gpu()))
    assert f.id == "torch.live-device" and "differs from the CPU by 17.5" in f.title


def test_healthy_live_test_is_ok():
    (f,) = run(pt.live_check, torch_facts(live=live_torch()), gpus(gpu()))
    assert f.status is Status.OK


def test_no_gpu_means_no_torch_gpu_verdicts():
    none = gpus(source="none", reason="no driver")
    for check in (pt.cpu_only_check, pt.driver_check, pt.live_check, pt.arch_check):
        (f,) = run(check, torch_facts(version="2.13.0+cpu", build="cpu", cuda=None), none)
        assert f.status is Status.SKIP and f.title == "No NVIDIA GPU"


def test_a_newer_cuda_build_that_fits_the_driver_is_mentioned():
    got = run(pt.driver_check, torch_facts(version="2.9.1+cu126", cuda="12.6"),
              gpus(gpu(), driver_version="580.95.05", cuda_driver_version="13.0"))
    assert [f.id for f in got] == ["torch.driver", "torch.newer-build-fits"]
    assert fix_text(got[1]).endswith("torch==2.9.1 --index-url https://download.pytorch.org/whl/cu130")


def test_rtx_5090_needs_a_cu128_or_newer_build_and_a_driver_for_it():
    rtx5090 = gpu(name="NVIDIA GeForce RTX 5090", cc_major=12, cc_minor=0)
    cpu = torch_facts(version="2.9.1+cpu", build="cpu", cuda=None)
    (f,) = run(pt.cpu_only_check, cpu, gpus(rtx5090, driver_version="570.86.10", cuda_driver_version="12.8"))
    assert fix_text(f).endswith("--index-url https://download.pytorch.org/whl/cu128")  # cu126 has no sm_120


def test_p40_is_offered_the_cu126_build_the_only_one_with_pascal_kernels():
    p40 = gpu(name="Tesla P40", cc_major=6, cc_minor=1)
    cpu = torch_facts(version="2.9.1+cpu", build="cpu", cuda=None)
    (f,) = run(pt.cpu_only_check, cpu, gpus(p40, driver_version="580.95.05", cuda_driver_version="13.0"))
    assert fix_text(f).endswith("--index-url https://download.pytorch.org/whl/cu126")


def test_a_rocm_torch_on_an_nvidia_machine_is_not_called_fine():
    (f,) = run(pt.cpu_only_check, torch_facts(version="2.5.1+rocm6.2", build="rocm", cuda=None, hip="6.2"),
               gpus(gpu(), driver_version="550.54.15", cuda_driver_version="12.4"))
    assert f.status is Status.FAIL and "a ROCm (AMD GPU) build on a machine with 1 NVIDIA GPU" in f.title
    assert fix_text(f).endswith("torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124")


def test_without_a_driver_the_live_test_is_skipped_in_the_checks_words():
    """The probe records a kind ("no-driver"), the check says what it means."""
    (f,) = run(pt.live_check, torch_facts(live_skip_kind="no-driver"), gpus(T4))
    assert f.status is Status.SKIP and f.title == "no NVIDIA driver on this machine: torch was not imported"


def test_a_report_from_before_live_skip_still_says_why_the_live_test_did_not_run():
    from llmdoctor.facts import dump, load
    from llmdoctor.probes.pytorch import TorchFacts

    old = {k: v for k, v in dump(torch_facts()).items() if k != "live_skip_kind"}
    old["live_skipped"] = "no NVIDIA driver on this machine: torch was not imported"
    (f,) = run(pt.live_check, load(TorchFacts, old), gpus(T4))
    assert f.status is Status.SKIP and f.title == old["live_skipped"]
