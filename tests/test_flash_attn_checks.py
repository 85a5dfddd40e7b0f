"""FlashAttention checks by situation."""

from checks_under_test import flash_attn as fa
from factories import dist, facts, findings_of, gpu, gpus, target, torch_facts
from llmdoctor.model import Status
from llmdoctor.report.shells import fix_text

T4 = gpu(name="Tesla T4", memory_total_bytes=15360 * 1024**2, cc_major=7, cc_minor=5)
H100 = gpu(name="NVIDIA H100 80GB HBM3", cc_major=9, cc_minor=0)


def run(g, t=None, dists=()):
    return findings_of(fa.flash_attn_check, facts(gpu=g, torch=t or torch_facts(), target=target(distributions=dists)))


def test_t4_cannot_use_flash_attention_2_and_is_told_sdpa():
    (f,) = run(gpus(T4))
    assert f.id == "build.flash-attn-unsupported-gpu" and f.status is Status.INFO
    assert "use PyTorch SDPA" in f.title and 'attn_implementation="sdpa"' in fix_text(f)


def test_flash_attn_installed_on_a_t4_is_a_warning():
    (f,) = run(gpus(T4), dists=(dist("flash_attn", "2.7.4.post1"),))
    assert f.status is Status.WARN and f.title.startswith("flash-attn 2.7.4.post1 is installed, but")


def test_old_torch_and_cuda_11_on_an_ampere_card():
    (f,) = run(gpus(gpu(cc_major=8, cc_minor=6)), t=torch_facts(version="2.1.2+cu118", cuda="11.8"))
    assert f.id == "build.flash-attn-old-stack" and "torch 2.1.2+cu118 and CUDA 11.8" in f.title
    # the nearest torch with a CUDA 12 build this driver (550) runs, then the flash-attn wheel made for it
    assert fix_text(f) == ("/home/u/.venvs/llm/bin/python -m pip install --force-reinstall torch==2.2.2 --index-url "
                     "https://download.pytorch.org/whl/cu121, then: /home/u/.venvs/llm/bin/python -m pip install "
                     "flash-attn==2.7.4.post1 --no-build-isolation")


def test_h100_with_cuda_13_gets_fa2_and_fa3():
    got = run(gpus(H100), t=torch_facts(version="2.11.0+cu130", cuda="13.0"))
    assert [(f.id, f.status) for f in got] == [("build.flash-attn", Status.OK), ("build.flash-attn-3", Status.INFO)]


def test_no_gpu_skips():
    (f,) = run(gpus(source="none", reason="no driver"))
    assert f.status is Status.SKIP


def test_eight_gpus_on_a_cpu_torch_hear_about_the_stack_once():
    """What the environment lacks (a CPU-only torch) does not depend on the GPU: one warning for
    an 8-GPU node, not eight copies of it."""
    from dataclasses import replace

    eight = gpus(*(replace(H100, index=i, uuid=f"GPU-{i}") for i in range(8)))
    found = run(eight, t=torch_facts(version="2.4.1+cpu", build="cpu", cuda=None))
    assert [f.id for f in found] == ["build.flash-attn-old-stack"]
    assert found[0].title.endswith("this environment has a CPU-only torch")
