"""flash-attn wheel prediction, source-build readiness, extension import failures,
bitsandbytes' native library, DeepSpeed's extras, NumPy 2, Jupyter kernels and remote code:
one test per real-world situation, each asserting the check id and its fix."""

from dataclasses import replace

from checks_under_test import build, flash_attn, jupyter, packages, remote_code, stack, python
from factories import GiB, dist, facts, findings_of, gpu, gpus, imports, live_torch, system, target, toolkit, torch_facts
from llmdoctor.model import Status
from llmdoctor.probes.python_env import ImportResult, KernelSpec
from llmdoctor.probes.remote_code import RemoteCodeFacts, RemoteCodeRepo
from llmdoctor.probes.system import Disk
from llmdoctor.report.shells import fix_text

A100 = gpus(gpu(name="NVIDIA A100-SXM4-80GB", cc_major=8, cc_minor=0))
NVCC_128 = ("12.8.93", "/usr/local/cuda-12.8/bin/nvcc", "PATH")
NVCC_130 = ("13.0.48", "/usr/local/cuda-13.0/bin/nvcc", "PATH")


def install_findings(torch=None, tk=None, sys_=None, tgt=None, g=A100):
    return findings_of(flash_attn.flash_attn_install_check,
                       facts(torch=torch or torch_facts(), cuda=tk or toolkit(NVCC_128), system=sys_ or system(),
                             target=tgt or target(), gpu=g))


def by_id(findings):
    return {f.id: f for f in findings}


# --- flash-attn: will pip find a wheel? ---

def test_torch_26_cu124_gets_the_prebuilt_old_abi_wheel():
    (f,) = install_findings(torch_facts(version="2.6.0+cu124", cuda="12.4"))
    assert f.status is Status.OK
    assert "flash_attn-2.8.3+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl" in f.title


def test_torch_27_wheels_use_the_cxx11_abi_and_a_live_torch_says_so_too():
    (f,) = install_findings(torch_facts(version="2.7.1+cu128", cuda="12.8"))
    assert "cxx11abiTRUE" in f.title
    ngc = torch_facts(version="2.6.0a0+ecf3bae40a.nv25.01", cuda="12.8", live=live_torch(cxx11_abi=True))
    (f,) = install_findings(ngc)
    assert "cu12torch2.6cxx11abiTRUE" in f.title


def test_torch_23_has_a_wheel_only_in_an_older_release():
    (f,) = install_findings(torch_facts(version="2.3.1+cu121", cuda="12.1"))
    assert f.id == "build.flash-attn-older-wheel" and fix_text(f).endswith("install flash-attn==2.7.4.post1 --no-build-isolation")


def test_python_314_has_no_wheel_and_compiles_with_a_ram_sized_max_jobs():
    t = target(version_info=(3, 14, 0), python_version="3.14.0")
    (f,) = install_findings(torch_facts(version="2.8.0+cu128", cuda="12.8"), tgt=t,
                            sys_=system(cpu_usable=32, ram_available_bytes=128 * GiB))
    assert f.id == "build.flash-attn-source-build" and "cp314" in f.detail
    # one nvcc job = 4 threads at up to 5 GiB (flash-attn PR #2079): 128 GiB holds 6 of them
    assert fix_text(f).startswith("MAX_JOBS=6 ") and fix_text(f).endswith("-m pip install flash-attn==2.8.3 --no-build-isolation")


def test_cuda_13_torch_without_a_toolkit_cannot_compile():
    (f,) = install_findings(torch_facts(version="2.9.0+cu130", cuda="13.0"), tk=toolkit())
    assert f.id == "build.flash-attn-source-build-blocked" and "no nvcc" in f.title
    assert fix_text(f) == "install the CUDA 13.0 toolkit, then: export CUDA_HOME=/usr/local/cuda-13.0"


def test_cu130_torch_with_a_cuda_12_nvcc_no_ninja_and_a_small_tmp():
    small_tmp = system(disks=(Disk("tmp", "/tmp", "/tmp", 8 * GiB, 3 * GiB, "tmpfs", "/tmp"),))
    (f,) = install_findings(torch_facts(version="2.9.0+cu130", cuda="13.0"), tk=toolkit(NVCC_128, ninja=None),
                            sys_=small_tmp)
    assert f.id == "build.flash-attn-source-build-blocked" and "(+2 more)" in f.title
    assert "nvcc 12.8 is not CUDA 13.x" in f.title and fix_text(f) == "point CUDA_HOME at a CUDA 13.x toolkit"
    assert "ninja is missing" in f.detail and "3.0 GiB free in /tmp" in f.detail


def test_cpu_torch_cannot_get_flash_attn_at_all():
    cpu = torch_facts(version="2.13.0+cpu", cuda=None, build="cpu", has_libtorch_cuda=False)
    (f,) = install_findings(cpu, g=gpus(source="none", reason="no driver"))
    assert f.id == "build.flash-attn-needs-cuda-torch" and 'attn_implementation="sdpa"' in fix_text(f)


def test_t4_is_left_to_the_gpu_check():
    t4 = gpus(gpu(name="Tesla T4", cc_major=7, cc_minor=5))
    (f,) = install_findings(g=t4)
    assert f.status is Status.SKIP


# --- import failures of installed extensions ---

def _ext(*results):
    return facts(target=target(), **{"target_extensions": imports(*results)})


def test_flash_attn_built_for_another_torch_is_an_undefined_symbol():
    msg = ("ImportError: /venv/lib/python3.11/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: "
           "undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE")
    fs = by_id(findings_of(build.extension_imports_check,
                           _ext(ImportResult("flash_attn", "error", error_type="ImportError", message=msg),
                                ImportResult("bitsandbytes", "absent"))))
    f = fs["build.extension-import-undefined-symbol"]
    assert f.status is Status.FAIL and "another torch version" in f.title
    assert fix_text(f).endswith("install --force-reinstall --no-deps --no-cache-dir --no-build-isolation flash-attn")


def test_bitsandbytes_cuda_setup_failed():
    msg = "RuntimeError: CUDA Setup failed despite GPU being available. Please run the following command ..."
    fs = by_id(findings_of(build.extension_imports_check,
                           _ext(ImportResult("bitsandbytes", "error", error_type="RuntimeError", message=msg))))
    assert "install --upgrade bitsandbytes" in fix_text(fs["build.extension-import-bnb-cuda-setup"])


def test_numpy_2_breaks_an_extension_built_for_numpy_1():
    msg = ("A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.1.0 as it may crash.\n"
           "ImportError: numpy.core.multiarray failed to import")
    (f,) = findings_of(python.imports_check, facts(target=target(), target_imports=imports(
        ImportResult("sentencepiece", "error", error_type="ImportError", message=msg))))
    assert f.id == "python.import-numpy-abi" and " 'numpy<2'" in fix_text(f)


# --- bitsandbytes' native library for torch's CUDA ---

def test_bitsandbytes_wheel_without_a_library_for_torchs_cuda():
    t = target(distributions=(dist("bitsandbytes", "0.42.0"),),
               native_libs={"bitsandbytes": ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda118.so",
                                             "libbitsandbytes_cuda121.so")})
    fs = by_id(findings_of(build.bitsandbytes_check, facts(gpu=A100, target=t,
                                                           torch=torch_facts(version="2.5.1+cu124", cuda="12.4"))))
    f = fs["build.bitsandbytes-no-cuda-lib"]
    assert "libbitsandbytes_cuda124" in f.title and fix_text(f).endswith("install --upgrade --no-deps bitsandbytes")


# the libraries of the real bitsandbytes 0.50.2 manylinux x86_64 wheel, as the target probe listed them
BNB_0502_LIBS = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda118.so", "libbitsandbytes_cuda121.so",
                 "libbitsandbytes_cuda124.so", "libbitsandbytes_cuda126.so", "libbitsandbytes_cuda128.so",
                 "libbitsandbytes_cuda130.so", "libbitsandbytes_cuda132.so", "libbitsandbytes_rocm64.so")


def test_bitsandbytes_0502_on_a_torch_older_than_every_library_in_its_wheel_moves_torch_not_bitsandbytes():
    """bitsandbytes 0.50.2 (the newest) next to torch 2.0.1+cu117 on driver 470: the wheel has no
    libbitsandbytes_cuda117 and no newer bitsandbytes will add one; `pip install --upgrade
    bitsandbytes` was prescribed and changed nothing. The torch to install is one whose CUDA the
    wheel has a library for, and that the driver runs (the same one python.dependencies names)."""
    t = target(distributions=(dist("bitsandbytes", "0.50.2", "torch<3,>=2.4"),
                              dist("torch", "2.0.1+cu117")),
               native_libs={"bitsandbytes": BNB_0502_LIBS})
    f_ = facts(gpu=gpus(gpu(name="NVIDIA GeForce RTX 3090", cc_major=8, cc_minor=6), driver_version="470.256.02",
                        cuda_driver_version="11.4"),
               target=t, torch=torch_facts(version="2.0.1+cu117", cuda="11.7"))
    f = by_id(findings_of(build.bitsandbytes_check, f_))["build.bitsandbytes-no-cuda-lib"]
    fix = fix_text(f)
    assert "upgrade" not in fix and "bitsandbytes" not in fix, fix
    assert fix.endswith("-m pip install --force-reinstall torch==2.4.1 --index-url https://download.pytorch.org/whl/cu118")
    dep = by_id(findings_of(packages.dependencies_check, f_))["python.dependency-conflict"]
    assert fix_text(dep) == fix


def test_a_stale_bnb_cuda_version_override():
    t = target(distributions=(dist("bitsandbytes", "0.48.1"),), build_env={"BNB_CUDA_VERSION": "117"},
               native_libs={"bitsandbytes": ("libbitsandbytes_cuda121.so", "libbitsandbytes_cuda124.so")})
    fs = by_id(findings_of(build.bitsandbytes_check, facts(gpu=A100, target=t, torch=torch_facts(cuda="12.4"))))
    assert fix_text(fs["build.bitsandbytes-no-cuda-lib"]).startswith("unset BNB_CUDA_VERSION")
    ok = replace(t, build_env={})
    assert "build.bitsandbytes-no-cuda-lib" not in by_id(findings_of(
        build.bitsandbytes_check, facts(gpu=A100, target=ok, torch=torch_facts(cuda="12.4"))))


# --- DeepSpeed ---

def _ds(**kw):
    base = dict(cuda=toolkit(NVCC_128), torch=torch_facts(version="2.7.1+cu128", cuda="12.8"),
                target=target(distributions=(dist("deepspeed", "0.17.2"),)), system=system())
    return by_id(findings_of(build.deepspeed_check, facts(**{**base, **kw})))


def test_deepspeed_zero_offload_of_6b_needs_more_ram_than_64gb():
    fs = _ds(system=system(ram_total_bytes=64 * GiB, ram_available_bytes=60 * GiB, cpu_usable=16))
    f = fs["build.deepspeed-offload-ram"]
    assert f.status is Status.WARN and "needs about 134 GiB" in f.title and "up to about 2.7B" in f.title
    assert "MAX_JOBS=16" in f.detail  # cpu_adam's cc1plus: about 2 GiB a job, so 16 CPUs' worth fit


def test_deepspeed_with_libaio_and_a_big_host():
    fs = _ds(cuda=toolkit(NVCC_128, libaio="/usr/lib/x86_64-linux-gnu/libaio.so.1t64"),
             system=system(ram_total_bytes=512 * GiB, ram_available_bytes=500 * GiB))
    assert "build.deepspeed-libaio" not in fs and fs["build.deepspeed-offload-ram"].status is Status.INFO
    assert fs["build.deepspeed"].status is Status.OK


def test_deepspeed_on_a_cpu_torch():
    fs = _ds(torch=torch_facts(version="2.13.0+cpu", build="cpu", cuda=None))
    assert fix_text(fs["build.deepspeed-cpu-torch"]) == "llmdoctor fix --torch"


# --- the Python stack ---

def test_numpy_2_next_to_torch_2_2():
    t = target(distributions=(dist("numpy", "2.1.3"), dist("torch", "2.2.2"), dist("pandas", "2.2.3")))
    fs = findings_of(stack.known_bad_check, facts(target=t))
    (f,) = [f for f in fs if f.id == "python.numpy2-abi"]
    assert f.title.startswith("torch 2.2.2 was built against NumPy 1") and "'numpy<2'" in fix_text(f)
    assert "'torch>=2.3.0'" in fix_text(f)


def test_a_user_kernel_spec_shadowing_the_envs_python():
    t = target(distributions=(dist("ipykernel", "6.29.5"),), kernelspecs=(
        KernelSpec("python3", "/home/u/.local/share/jupyter/kernels/python3/kernel.json", "python", "/usr/bin/python3",
                   True),))
    (f,) = findings_of(jupyter.jupyter_kernel_check, facts(target=t))
    assert f.id == "python.kernel-other-python"
    assert fix_text(f) == "/home/u/.venvs/llm/bin/python -m ipykernel install --user --name llm --display-name 'Python (llm)'"


def test_a_kernel_whose_env_was_deleted():
    t = target(kernelspecs=(KernelSpec("old-env", "/home/u/.local/share/jupyter/kernels/old-env/kernel.json",
                                       "python", "/home/u/.venvs/old/bin/python", False),))
    (f,) = findings_of(jupyter.jupyter_kernel_check, facts(target=t))
    assert f.id == "python.kernel-missing-python" and fix_text(f) == "jupyter kernelspec remove old-env"


def test_the_envs_own_kernel_is_fine():
    t = target(distributions=(dist("ipykernel", "6.29.5"),), kernelspecs=(
        KernelSpec("python3", "/home/u/.venvs/llm/share/jupyter/kernels/python3/kernel.json", "python", "python", None),))
    (f,) = findings_of(jupyter.jupyter_kernel_check, facts(target=t))
    assert f.status is Status.OK and "runs this environment" in f.title


def _code(name):
    """A fixture repo's code read as the probe reads it, with a target where every name resolves."""
    from pathlib import Path

    from llmdoctor.probes import modelcode
    from llmdoctor.probes.model import code_facts

    folder = Path(__file__).parent / "fixtures" / "remote_code" / name
    scan = modelcode.scan({p.name: p.read_text() for p in folder.glob("*.py")})
    answer = {"names": [[i.module, i.name, "ok"] for i in scan.tf_imports],
              "members": [[m, c, "ok", []] for u in scan.member_uses for m, c in u.bases], "modules": {}}
    return code_facts(scan, str(folder), answer)


def test_chatglm_remote_code_saved_with_427_under_transformers_445():
    """ChatGLM-6B's tokenizer breaks from 4.34 (it sets sp_tokenizer after super().__init__());
    Qwen-7B-Chat's code, saved with 4.32.0, uses nothing 4.45.2 lacks: judged by what the
    code does, not by how far apart the versions are."""
    rc = RemoteCodeFacts("/home/u/.cache/huggingface/hub", repos=(
        RemoteCodeRepo("THUDM/chatglm-6b", "8b7d33596d18c5e83e2da052d05ca4db02e60620", "4.27.1",
                       ("modeling_chatglm.ChatGLMForConditionalGeneration",), "/home/u/.cache/huggingface/hub",
                       _code("chatglm-6b")),
        RemoteCodeRepo("Qwen/Qwen-7B-Chat", "93a65d34827a3cc269b727e67004743b723e2f83", "4.32.0",
                       ("modeling_qwen.QWenLMHeadModel",), "/home/u/.cache/huggingface/hub",
                       _code("qwen-7b-chat"))), scanned=2)
    t = target(distributions=(dist("transformers", "4.45.2"),))
    fs = findings_of(remote_code.remote_code_check, facts(target=t, **{"hub_remote-code": rc}))
    assert [(f.id, f.status) for f in fs] == [("cache.remote-code-version", Status.FAIL), ("cache.remote-code", Status.OK)]
    assert "THUDM/chatglm-6b" in fs[0].title and "'ChatGLMTokenizer' object has no attribute 'sp_tokenizer'" in \
        fs[0].title and "install transformers==4.27.1" in fix_text(fs[0])
    assert "Qwen/Qwen-7B-Chat (saved with 4.32.0)" in fs[1].detail


def test_transformers_floor_on_torch_read_from_its_own_metadata():
    tf = dist("transformers", "4.57.1", "huggingface-hub<1.0,>=0.34.0", 'torch>=2.2; extra == "torch"',
              'accelerate>=0.26.0; extra == "torch"', 'black~=23.1; extra == "quality"')
    t = target(distributions=(tf, dist("torch", "2.1.2"), dist("accelerate", "1.10.1"), dist("black", "22.1.0")))
    fs = findings_of(stack.implied_extras_check, facts(target=t))
    (f,) = [f for f in fs if f.id == "python.stack-floor"]
    assert f.title == "transformers 4.57.1 needs torch>=2.2 (its [torch] extra); torch 2.1.2 is installed"
    assert fix_text(f) == "llmdoctor fix --torch"  # the GPU was not probed: fix --torch probes it
    fs = findings_of(stack.implied_extras_check, facts(target=t, gpu=gpus(gpu())))
    (f,) = [f for f in fs if f.id == "python.stack-floor"]
    # not a bare `pip install 'torch>=2.2'` (PyPI's default CUDA build): a published build the driver runs
    assert fix_text(f).endswith("install --force-reinstall torch==2.2.2 --index-url https://download.pytorch.org/whl/cu121")
    ok = target(distributions=(tf, dist("torch", "2.6.0"), dist("accelerate", "1.10.1")))
    assert [f.status for f in findings_of(stack.implied_extras_check, facts(target=ok))] == [Status.OK]


def test_deepspeed_inference_kernels_on_a_maxwell_gpu_are_named_from_the_compat_table():
    m40 = gpus(gpu(name="Tesla M40", cc_major=5, cc_minor=2))
    fs = _ds(gpu=m40)
    f = fs["build.deepspeed-gpu-arch"]
    assert f.status is Status.INFO and "transformer_inference" in f.title and "5.2 < 6.0" in f.title
