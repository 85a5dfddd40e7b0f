"""ninja, DeepSpeed and bitsandbytes checks by situation."""

from checks_under_test import build
from factories import GiB, dist, facts, findings_of, gpu, gpus, system, target, toolkit, torch_facts
from llmdoctor.model import Status
from llmdoctor.probes.toolkit import Tool
from llmdoctor.report.shells import fix_text

NVCC_121 = ("12.1.105", "/usr/local/cuda-12.1/bin/nvcc", "PATH")


def test_missing_ninja_next_to_a_toolkit():
    from dataclasses import replace

    tk = replace(toolkit(NVCC_121), ninja=Tool("ninja", None, None, "not found"))
    (f,) = findings_of(build.ninja_check, facts(cuda=tk, target=target()))
    assert f.id == "build.ninja-missing" and fix_text(f).endswith("-m pip install ninja")


def test_deepspeed_with_nvcc_11_8_and_torch_cu121():
    tk = toolkit(("11.8.89", "/usr/local/cuda-11.8/bin/nvcc", "PATH"))
    f_ = facts(cuda=tk, torch=torch_facts(), target=target(distributions=(dist("deepspeed", "0.16.4"),)),
               system=system())
    f, libaio = [x for x in findings_of(build.deepspeed_check, f_) if x.id != "build.deepspeed-offload-ram"]
    assert f.id == "build.deepspeed-cuda-mismatch" and f.status is Status.FAIL and "CUDAMismatchException" in f.title
    assert libaio.id == "build.deepspeed-libaio" and "apt install libaio-dev" in fix_text(libaio)


def test_deepspeed_without_any_nvcc():
    f_ = facts(cuda=toolkit(), torch=torch_facts(), target=target(distributions=(dist("deepspeed", "0.16.4"),)))
    f = findings_of(build.deepspeed_check, f_)[0]
    assert f.id == "build.deepspeed-no-nvcc" and "MissingCUDAException" in f.title


def test_bitsandbytes_on_a_t4_does_4bit_not_int8():
    t4 = gpu(name="Tesla T4", cc_major=7, cc_minor=0)
    f_ = facts(gpu=gpus(t4), target=target(distributions=(dist("bitsandbytes", "0.48.1"),)))
    (f,) = findings_of(build.bitsandbytes_check, f_)
    assert f.id == "build.bitsandbytes-no-int8"


def test_bitsandbytes_048_on_maxwell_has_no_kernels():
    m40 = gpu(name="Tesla M40", cc_major=5, cc_minor=2)
    f_ = facts(gpu=gpus(m40), target=target(distributions=(dist("bitsandbytes", "0.48.1"),)))
    (f,) = findings_of(build.bitsandbytes_check, f_)
    assert f.status is Status.FAIL and fix_text(f).endswith("-m pip install --no-deps 'bitsandbytes<0.48'")


def test_bitsandbytes_without_a_gpu_uses_the_cpu_since_046():
    none = gpus(source="none", reason="no driver")
    (f,) = findings_of(build.bitsandbytes_check, facts(gpu=none, target=target(distributions=(dist("bitsandbytes", "0.47.0"),))))
    assert f.status is Status.INFO and "CPU" in f.title
    (f,) = findings_of(build.bitsandbytes_check, facts(gpu=none, target=target(distributions=(dist("bitsandbytes", "0.42.0"),))))
    assert f.id == "build.bitsandbytes-no-device" and fix_text(f).endswith("install --no-deps 'bitsandbytes>=0.46'")


def _ram(**kw):
    from factories import GiB, system

    return system(**{"ram_available_bytes": 30 * GiB, "cpu_usable": 32, "cgroup_memory_limit_bytes": None, **kw})


def test_deepspeeds_ninja_default_on_many_cpus_and_little_ram_gets_killed():
    """DeepSpeed's ops build with ninja's default of CPUs + 2 jobs at about 2 GiB each (measured)."""
    ds = target(distributions=(dist("deepspeed", "0.19.8"),))
    f_ = facts(cuda=toolkit(NVCC_121), system=_ram(ram_available_bytes=30 * GiB, cpu_usable=32), target=ds,
               torch=torch_facts(version="2.13.0+cpu", build="cpu", cuda=None))
    (f,) = findings_of(build.compile_ram_check, f_)
    assert f.id == "build.compile-ram" and f.status is Status.WARN
    assert "DeepSpeed ops: a build would run 34 compile jobs at once (ninja's default: 32 CPUs + 2)" in f.title
    assert "up to 2.1 GiB each" in f.title and "holds about 14" in f.title
    assert fix_text(f) == "llmdoctor fix --max-jobs"


def test_flash_attn_sizes_its_own_jobs_but_a_max_jobs_set_by_hand_overrides_it():
    """flash-attn's nvcc runs 4 threads at up to 5 GB each: MAX_JOBS=4 wants about 80 GB."""
    f_ = facts(cuda=toolkit(NVCC_121), system=_ram(), target=target())
    (f,) = findings_of(build.compile_ram_check, f_)
    assert f.status is Status.OK and "its setup.py sizes MAX_JOBS from free RAM" in f.title
    f_ = facts(cuda=toolkit(NVCC_121), system=_ram(), target=target(build_env={"MAX_JOBS": "4"}))
    (f,) = findings_of(build.compile_ram_check, f_)
    assert f.status is Status.WARN and "flash-attn: a build would run 4 compile jobs at once (MAX_JOBS=4)" in f.title
    assert "up to 20.0 GiB each (4 nvcc threads x 5.0 GiB)" in f.title and "holds about 1" in f.title


def test_max_jobs_set_by_the_hook_is_what_counts():
    f_ = facts(cuda=toolkit(NVCC_121), system=_ram(), target=target(build_env={"MAX_JOBS": "1"}))
    (f,) = findings_of(build.compile_ram_check, f_)
    assert f.status is Status.OK and "MAX_JOBS=1" in f.title


def test_garbage_max_jobs_is_a_finding():
    f_ = facts(cuda=toolkit(NVCC_121), system=_ram(), target=target(build_env={"MAX_JOBS": "lots"}))
    (f,) = findings_of(build.compile_ram_check, f_)
    assert f.id == "build.max-jobs-invalid"


def test_few_cpus_and_plenty_of_ram_is_fine():
    from factories import GiB

    ds = target(distributions=(dist("deepspeed", "0.19.8"),))
    f_ = facts(cuda=toolkit(NVCC_121), system=_ram(ram_available_bytes=23 * GiB, cpu_usable=2), target=ds,
               torch=torch_facts(version="2.13.0+cpu", build="cpu", cuda=None))
    (f,) = findings_of(build.compile_ram_check, f_)
    assert f.status is Status.OK
    assert f.title == ("DeepSpeed ops: 4 compile jobs at once (ninja's default: 2 CPUs + 2), up to 2.1 GiB each (one "
                       "cc1plus; cpu_adam measured at 2.05 GiB), fit in 23.0 GiB of free RAM")
