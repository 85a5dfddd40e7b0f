"""CUDA toolkit probe (real nvcc here: the CUDA 13.0 toolkit) and checks by situation."""

import os
import shutil

import pytest
from hypothesis import given, strategies as st

from checks_under_test import toolkit as tk
from factories import facts, findings_of, system, target, toolkit, torch_facts
from llmdoctor.model import Status
from llmdoctor.probes import ProbeContext
from llmdoctor.probes.toolkit import parse_cudnn_header, parse_gcc, parse_nvcc, probe_toolkit
from llmdoctor.target import resolve_target
from llmdoctor.report.shells import fix_text

NVCC_118 = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2022 NVIDIA Corporation
Built on Wed_Sep_21_10:33:58_PDT_2022
Cuda compilation tools, release 11.8, V11.8.89
Build cuda_11.8.r11.8/compiler.31833905_0
"""


@given(st.text())
def test_parsers_never_raise(text):
    parse_nvcc(text)
    parse_gcc(text)
    parse_cudnn_header(text)


def test_parsers_on_real_output():
    assert parse_nvcc(NVCC_118) == "11.8.89"
    assert parse_nvcc("Cuda compilation tools, release 13.0, V13.0.88") == "13.0.88"
    assert parse_gcc("gcc (Ubuntu 13.2.0-23ubuntu4) 13.2.0\nCopyright (C) 2023") == "13.2.0"
    assert parse_gcc("gcc (Debian 12.2.0-14+deb12u1) 12.2.0") == "12.2.0"
    header = "#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 1\n#define CUDNN_PATCHLEVEL 0\n"
    assert parse_cudnn_header(header) == "9.1.0"


def test_the_probe_reads_the_nvcc_and_gcc_this_machine_has():
    import subprocess

    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None:
        pytest.skip("no CUDA toolkit on this machine")
    said = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    facts_ = probe_toolkit(ProbeContext(target=resolve_target(), environ=dict(os.environ)))
    assert parse_nvcc(said) in {n.version for n in facts_.nvccs}  # whatever release this machine has
    if shutil.which("gcc"):
        said = subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=30).stdout
        assert facts_.gcc.version == parse_gcc(said)


def test_nvcc_118_with_torch_cu121_breaks_extension_builds():
    t = toolkit(("11.8.89", "/usr/local/cuda-11.8/bin/nvcc", "PATH"))
    (f,) = findings_of(tk.nvcc_check, facts(cuda=t, torch=torch_facts(), target=target()))
    assert f.id == "cuda.nvcc-torch-mismatch" and f.status is Status.WARN
    assert fix_text(f).startswith("install the CUDA 12.x toolkit")


def test_a_matching_toolkit_elsewhere_is_named_in_the_fix():
    t = toolkit(("11.8.89", "/usr/local/cuda-11.8/bin/nvcc", "PATH"),
                ("12.1.105", "/usr/local/cuda-12.1/bin/nvcc", "/usr/local/cuda*"))
    (f,) = findings_of(tk.nvcc_check, facts(cuda=t, torch=torch_facts(), target=target()))
    # two statements: `export A=x B="$A/bin"` would expand $A before A is set
    assert fix_text(f) == 'export CUDA_HOME=/usr/local/cuda-12.1 && export PATH="$CUDA_HOME/bin:$PATH"'


def test_cuda_home_elsewhere_than_the_nvcc_on_path():
    t = toolkit(("12.4.131", "/usr/local/cuda-12.4/bin/nvcc", "PATH"),
                ("12.1.105", "/opt/cuda-12.1/bin/nvcc", "CUDA_HOME"),
                on_path="/usr/local/cuda-12.4/bin/nvcc", cuda_home="/opt/cuda-12.1",
                cuda_home_nvcc="/opt/cuda-12.1/bin/nvcc")
    got = {f.id: f for f in findings_of(tk.nvcc_check, facts(cuda=t, torch=torch_facts(), target=target()))}
    assert got["cuda.home-mismatch"].status is Status.WARN
    assert fix_text(got["cuda.home-mismatch"]) == 'export PATH="$CUDA_HOME/bin:$PATH"'


def test_gcc_13_with_nvcc_12_1_is_too_new():
    t = toolkit(("12.1.105", "/usr/local/cuda-12.1/bin/nvcc", "PATH"), gcc="13.2.0")
    (f,) = findings_of(tk.host_compiler_check, facts(cuda=t, system=system()))
    assert f.id == "cuda.gcc-too-new" and "GCC 12 at most" in f.title
    assert fix_text(f).startswith("sudo apt install gcc-12 g++-12")
    assert f.docs == "https://gist.github.com/ax3l/9489132"


def test_no_nvcc_is_info_not_a_problem():
    (f,) = findings_of(tk.nvcc_check, facts(cuda=toolkit(), torch=torch_facts(), target=target()))
    assert f.id == "cuda.nvcc-missing" and f.status is Status.INFO and "CUDA 12.1 toolkit" in f.title


def test_matching_toolkit_and_compiler_are_ok():
    t = toolkit(("12.4.131", "/usr/local/cuda-12.4/bin/nvcc", "PATH"), gcc="13.2.0")
    f = facts(cuda=t, torch=torch_facts(version="2.6.0+cu124", cuda="12.4"), target=target())
    assert [x.status for x in findings_of(tk.nvcc_check, f)] == [Status.OK]
    assert [x.status for x in findings_of(tk.host_compiler_check, f)] == [Status.OK]


def test_nvcc_13_cannot_build_for_a_pascal_gpu_and_says_which_toolkit_can():
    from checks_under_test import toolkit as tk_checks
    from factories import facts, findings_of, gpu, gpus, toolkit, torch_facts

    p40 = gpus(gpu(name="Tesla P40", cc_major=6, cc_minor=1), driver_version="580.95.05", cuda_driver_version="13.0")
    f_ = facts(cuda=toolkit(("13.0.48", "/usr/local/cuda-13.0/bin/nvcc", "PATH")), gpu=p40,
               torch=torch_facts(version="2.9.1+cu130", cuda="13.0"))
    got = {f.id: f for f in findings_of(tk_checks.nvcc_check, f_)}
    f = got["cuda.nvcc-gpu-too-old"]
    assert "CUDA 12.9 is the last toolkit that targets it" in f.title and "CUDA 12.9 toolkit" in fix_text(f)
