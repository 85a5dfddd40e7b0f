"""The cross-check harness: whole reports over a matrix of machines (drivers x torch builds x
GPUs x nvcc versions x Pythons x installed packages x TLS settings), each judged by every
built-in check, and four invariants over each report:

* no two findings answer the same question differently (their ``claims``);
* every fix that installs torch or flash-attn names a build the compatibility model has,
  runnable with the scenario's driver, GPU and Python once the fix's own earlier steps
  (a driver upgrade, another Python) are done; no fix installs an unpinned torch;
* every ``fail`` has a fix (or a fix line that says why there is none); no check crashes;
* no OK finding about TLS while the stack's verification is off.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scenarios as sc
from llmdoctor import compat
from llmdoctor.probes.network import HubCall

CUDA_BUILDS = [b.label for b in compat.builds() if b.variant.startswith("cu")]
CPU_BUILDS = [b.label for b in compat.builds() if b.variant == "cpu"]
#: builds the table does not list (patch releases left out on purpose) and a ROCm build
OFF_TABLE = ["2.10.1+cu128", "2.11.1+cu126", "2.5.1+rocm6.2"]

PACKAGE_SETS = st.sampled_from([
    (),
    (("bitsandbytes", "0.50.2"),),
    (("bitsandbytes", "0.42.0"),),
    (("deepspeed", "0.19.8"),),
    (("flash-attn", "2.8.3"),),
    (("transformers", "4.57.1"), ("accelerate", "1.10.1")),
    (("requests", "2.27.1"), ("urllib3", "1.25.11"), ("huggingface-hub", "0.36.0")),
    (("requests", "2.32.4"), ("huggingface-hub", "0.36.0")),
    (("xformers", "0.0.28.post1"),),  # pins torch==2.4.1: no Blackwell kernels, no Python 3.13 wheel
    (("vllm", "0.6.3"),),  # pins torch==2.4.0
])
REQUIRES = {"bitsandbytes": ("torch<3,>=2.4", "numpy>=1.17"),
            "transformers": ('torch>=2.2; extra == "torch"', 'accelerate>=0.26.0; extra == "torch"'),
            "deepspeed": ("torch",), "flash-attn": ("torch", "einops"), "xformers": ("torch==2.4.1", "numpy"),
            "vllm": ("torch==2.4.0", "xformers==0.0.27.post2; platform_system == 'Linux'")}
ENVS = st.sampled_from([{}, {"CURL_CA_BUNDLE": ""}, {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": "/etc/ssl/ca.pem"},
                        {"REQUESTS_CA_BUNDLE": "/etc/ssl/ca.pem"}, {"REQUESTS_CA_BUNDLE": ""},
                        {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""},
                        {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/etc/ssl/ca.pem"}])
CALLS = st.sampled_from([
    None,
    HubCall(ok=True, version="0.36.0", client="requests"),
    HubCall(ok=True, version="0.36.0", client="requests", verify="off"),
    HubCall(ok=True, version="2.4.0", client="httpx2", verify="on"),
    HubCall(ok=False, version="0.36.0", client="requests", timed_out=True, seconds=7.0,
            errors=("TimeoutError: the call did not finish within 7 s",
                    "'(MaxRetryError(\"HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded "
                    "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]')))\"))' "
                    "thrown while requesting HEAD https://huggingface.co/openai-community/gpt2/resolve/main/config.json")),
    HubCall(ok=False, version="0.36.0", client="requests",
            errors=("ConnectionError: Failed to resolve 'huggingface.co' ([Errno -2] Name or service not known)",)),
])


@st.composite
def scenario(draw) -> sc.Scenario:
    driver = draw(st.sampled_from(sc.DRIVERS))
    gpu = draw(st.sampled_from([g for g in sc.GPUS if sc.realistic(driver[0], driver[1], g[1])]))
    torch = draw(st.one_of(st.none(), st.sampled_from(CUDA_BUILDS), st.sampled_from(CPU_BUILDS),
                           st.sampled_from(OFF_TABLE)))
    packages = draw(PACKAGE_SETS)
    call = draw(CALLS)
    env = draw(ENVS)
    if call is not None and call.client == "requests" and call.verify is not None:
        # what requests itself answers for this environment (a recorded answer agrees with the world)
        from dataclasses import replace

        from llmdoctor.compat import tls
        from llmdoctor.versions import parse_version

        v = tls.requests_verification(env, parse_version(dict(packages).get("requests", "2.32.4")))
        call = replace(call, verify="off" if v.on is False else "on")
    return sc.Scenario(
        driver=driver, gpu=gpu, torch=torch, nvcc=draw(st.sampled_from(sc.NVCCS)),
        python=draw(st.sampled_from(sc.PYTHONS)), packages=packages,
        requires={n: REQUIRES[n] for n, _ in packages if n in REQUIRES}, net_env=env,
        intercepted=draw(st.booleans()), call=call,
        hub_state=draw(st.sampled_from(["ok", "ok", "dns", "tcp", "http", "portal", "expired"])),
        mirror_ok=draw(st.booleans()), ram_gib=draw(st.sampled_from([16, 32, 64, 128, 512])),
        cpus=draw(st.sampled_from([2, 8, 16, 64])), live=draw(st.booleans()),
        build_env=draw(st.sampled_from([{}, {"MAX_JOBS": "4"}, {"MAX_JOBS": "64"}])))


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_invariants_hold_over_the_matrix(s):
    assert sc.violations(s) == [], s


def test_every_published_cuda_build_is_judged_consistently_on_every_driver_and_gpu():
    """Exhaustively, not sampled: for every CUDA build on record, every driver and GPU pair,
    the CPU-only verdict's prescription and the driver verdict of that same build agree."""
    seen = 0
    for driver in sc.DRIVERS:
        for gpu in sc.GPUS:
            if not sc.realistic(driver[0], driver[1], gpu[1]):
                continue
            for label in CUDA_BUILDS[::7]:  # every 7th build keeps this under a few seconds
                got = sc.violations(sc.Scenario(driver=driver, gpu=gpu, torch=label, nvcc=None))
                assert got == [], (driver, gpu, label, got)
                seen += 1
    assert seen > 100


def test_the_harness_catches_two_rules_for_one_question(monkeypatch):
    """Observed situation 1's class of bug, put back on purpose: torch.driver judging the driver
    by its native CUDA alone while the prescription uses minor-version compatibility. The
    harness must see the two answers to "does this build run here?"."""
    from llmdoctor.checks import pytorch

    def native_only(cuda, driver, ptx_jit=False):
        return driver.cuda is not None and (driver.cuda.major, driver.cuda.minor) >= (cuda.major, cuda.minor)

    monkeypatch.setattr(pytorch.compat, "runs_cuda", native_only)
    got = sc.violations(sc.Scenario(driver=("535.129.03", "12.2"), gpu=sc.GPUS[4], torch="2.9.0+cu128"))
    assert any(v.startswith("torch-build-runs:2.9.0+cu128: no (torch.driver); yes (") for v in got), got


def test_the_harness_catches_a_prescribed_build_that_was_never_published(monkeypatch):
    """Observed situation 1's other half: a fix naming torch 2.13.0 for cu121 (cu121 ends with 2.5)."""
    from llmdoctor.checks import pytorch

    fake = compat.TorchBuild("2.13.0", "cu121", ("3.10", "3.14"), ("sm_86",))
    monkeypatch.setattr(pytorch, "prescribe", lambda facts, **kw: compat.Prescription(
        fake, (compat.Step("torch", "", build=fake),)))
    got = sc.violations(sc.Scenario(driver=("535.129.03", "12.2"), gpu=sc.GPUS[4], torch="2.13.0+cpu"))
    assert any("torch 2.13.0+cu121 is not a published build" in v for v in got), got


def test_an_rtx_5090_on_a_torch_built_before_cu128_is_not_called_a_faulty_gpu():
    """torch 2.6.0+cu124 has no sm_120 kernels: the live test's matmul fails with 'no kernel
    image'. That is the wheel, not the GPU: torch.live-device must not blame the hardware while
    torch.arch prescribes another torch, and both must name the same runnable build."""
    from llmdoctor.report.shells import fix_text

    s = sc.Scenario(driver=("570.86.10", "12.8"), gpu=sc.GPUS[11], torch="2.6.0+cu124", nvcc=None, live=True)
    assert sc.violations(s) == []
    got = {f.id: f for f in sc.report(sc.facts_of(s))}
    device = got["torch.live-device"]
    assert "faulty" not in fix_text(device) and "nvidia-smi" not in fix_text(device)
    assert fix_text(device) == fix_text(got["torch.arch-missing"])
    assert "--index-url https://download.pytorch.org/whl/cu128" in fix_text(device)


def test_a_pascal_gpu_on_torch_cu128_builds_that_dropped_it():
    """torch 2.8.0+cu128 has kernels from sm_70 on: a Tesla P40 (6.1) gets 'no kernel image',
    and the prescription keeps the driver and moves to a variant that still has sm_60."""
    from llmdoctor.report.shells import fix_text

    s = sc.Scenario(driver=("570.86.10", "12.8"), gpu=sc.GPUS[1], torch="2.8.0+cu128", nvcc=None, live=True)
    assert sc.violations(s) == []
    got = {f.id: f for f in sc.report(sc.facts_of(s))}
    assert "nvidia-smi" not in fix_text(got["torch.live-device"])
    assert "torch==2.8.0 --index-url https://download.pytorch.org/whl/cu126" in fix_text(got["torch.arch-missing"])


def test_a_cpu_torch_on_a_b200_pinned_by_xformers_to_a_torch_without_blackwell_kernels():
    """xformers 0.0.28.post1 requires torch==2.4.1, and no 2.4.1 build has sm_100 kernels. The
    cpu-only verdict must still say why no build fits (the pin, and who holds it) instead of a
    FAIL with no fix, and no finding may say that no torch at all runs on a B200."""
    from llmdoctor.report.shells import fix_text

    s = sc.Scenario(driver=("570.86.10", "12.8"), gpu=sc.GPUS[10], torch="2.4.1+cpu", nvcc=None, python=(3, 10),
                    packages=(("xformers", "0.0.28.post1"),), requires={"xformers": ("torch==2.4.1",)})
    assert sc.violations(s) == []
    got = {f.id: f for f in sc.report(sc.facts_of(s))}
    fix = fix_text(got["torch.cpu-only"])
    assert "torch==2.4.1" in fix and "xformers 0.0.28.post1" in fix, fix


def test_a_kepler_with_a_cpu_torch_is_not_offered_flash_attn_nor_told_no_torch_runs_on_it():
    """A Tesla K80 (3.7) on driver 470: torch 2.7.1+cu118 still has sm_37 kernels (the cpu-only
    prescription), and FlashAttention-2 needs compute capability 8.0: the flash-attn checks say
    only that (SDPA), without a torch for flash-attn or 'no PyTorch build runs on 3.7'."""
    s = sc.Scenario(driver=("470.256.02", "11.4"), gpu=sc.GPUS[0], torch="2.7.1+cpu", nvcc=None)
    assert sc.violations(s) == []
    got = {f.id: f for f in sc.report(sc.facts_of(s))}
    assert got["build.flash-attn-install"].status.name == "SKIP"
    assert "build.flash-attn-needs-cuda-torch" not in got


def test_a_t4_with_a_cpu_torch_is_not_told_to_install_flash_attn():
    """FlashAttention-2 does not run on a T4 (7.5): build.flash-attn says use SDPA, and no other
    finding's fix installs flash-attn (it would compile or download a wheel that cannot run)."""
    s = sc.Scenario(driver=("535.129.03", "12.2"), gpu=sc.GPUS[3], torch="2.7.1+cpu", nvcc=None)
    assert sc.violations(s) == []
