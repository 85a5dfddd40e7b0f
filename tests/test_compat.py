"""The compatibility model's tables and rules (llmdoctor/compat). The table tests are what keeps
an update for a new PyTorch release honest: every row complete, every CUDA variant with its
architectures, every row with a source."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from packaging.version import Version

from llmdoctor import compat
from llmdoctor.compat import tls
from llmdoctor.compat.cuda import Driver
from llmdoctor.compat.torchbuilds import Machine
from llmdoctor.data import table

PKG = "llmdoctor.compat"
SOURCE = re.compile(r"^(https://\S+|tests/fixtures/\S+|benchmark/results/\S+)")


def machine(driver="535.129.03", cuda="12.2", ccs=((8, 6),), python=(3, 11), arch="x86_64", platform="linux"):
    return Machine(Driver(Version(driver), Version(cuda) if cuda else None, platform, driver), tuple(ccs),
                   tuple(f"GPU {i}" for i in range(len(ccs))), python, platform, arch)


# --- the tables ------------------------------------------------------------------

def test_every_torch_release_from_2_0_to_the_newest_is_on_record_with_a_source():
    rows = table(PKG, "torch_releases")["rows"]
    minors = [Version(r["minor"]) for r in rows]
    assert minors == sorted(minors) and minors[0] == Version("2.0")
    assert [m.minor for m in minors] == list(range(0, minors[-1].minor + 1))  # no release skipped
    for r in rows:
        assert r["versions"] and all(v.startswith(r["minor"] + ".") for v in r["versions"]), r
        assert "cpu" in r["variants"] and any(v.startswith("cu") for v in r["variants"]), r
        assert len(r["python"]) == 2 and Version(r["python"][0]) <= Version(r["python"][1])
        assert SOURCE.match(r["source"]), r


def test_every_cuda_build_has_its_gpu_architectures():
    missing = [b.label for b in compat.builds() if b.variant.startswith("cu") and not b.archs]
    assert missing == []
    for r in table(PKG, "torch_archs")["rows"]:
        assert SOURCE.match(r["source"]) and all(re.fullmatch(r"(sm|compute)_\d+a?", a) for a in r["archs"]), r


def test_cuda_builds_end_where_pytorch_ended_them():
    """cu121 ends with torch 2.5, cu118 with 2.7, cu128 with 2.11; cu132 starts with 2.12."""
    def last(variant):
        return max(b.key for b in compat.builds() if b.variant == variant)

    def first(variant):
        return min(b.key for b in compat.builds() if b.variant == variant)

    assert last("cu121") < Version("2.6") and last("cu118") < Version("2.8") and last("cu128") < Version("2.12")
    assert first("cu132") == Version("2.12.0")
    assert compat.find("2.13.0", "cu121") is None and compat.find("2.13.0", "cu126") is not None


def test_driver_tables_have_sources_and_no_gaps_in_the_families():
    data = table(PKG, "cuda_drivers")
    assert {r["cuda_major"] for r in data["families"]} == {11, 12, 13}
    for r in data["families"] + data["toolkits"]:
        assert SOURCE.match(r["source"]), r
    natives = [Version(r["cuda"]) for r in data["toolkits"]]
    assert natives == sorted(natives, reverse=True)


def test_compile_memory_rows_say_where_they_come_from():
    for r in table(PKG, "compile_memory")["rows"]:
        assert SOURCE.match(r["source"]) and r["why"] and r["per_job_words"], r


# --- the rules -------------------------------------------------------------------

def test_minor_version_compatibility_runs_cuda_12_x_cubins_on_driver_525_and_newer():
    d = Driver(Version("535.129.03"), Version("12.2"))
    assert compat.runs_cuda(Version("12.8"), d) is True  # minor-version compatibility
    assert compat.runs_cuda(Version("12.8"), d, ptx_jit=True) is False  # PTX needs a 12.8 driver
    assert compat.runs_cuda(Version("13.0"), d) is False
    assert compat.runs_cuda(Version("11.8"), Driver(Version("470.256.02"), Version("11.4"))) is True
    assert compat.runs_cuda(Version("12.1"), Driver(Version("520.61.05"), Version("11.8"))) is False
    assert compat.runs_cuda(Version("12.4"), Driver(None, None)) is None


def test_the_drivers_own_cuda_is_read_from_the_table_when_nvml_does_not_say():
    assert compat.native_cuda(Version("535.129.03")) == Version("12.2")
    assert compat.native_cuda(Version("580.95.05")) == Version("13.0")
    assert compat.native_cuda(Version("440.33")) is None


def test_a_windows_driver_is_read_by_nvidias_windows_column_and_never_by_the_linux_one():
    """Windows and WSL 2 run NVIDIA's Windows driver, numbered apart from the Linux one:
    570.30 is past CUDA 12.8's Linux minimum (570.26) but short of its Windows one (570.65)."""
    assert compat.native_cuda(Version("570.30"), "win32") == Version("12.6")
    assert compat.native_cuda(Version("570.30")) == Version("12.8")
    assert compat.native_cuda(Version("576.02"), "wsl") == Version("12.9")
    # CUDA 13.0 has no Windows minimum on record (Table 3 reads N/A): an R580 driver cannot be told
    assert compat.native_cuda(Version("580.88"), "win32") is None
    assert compat.native_cuda(Version("460.89"), "win32") == Version("11.2")
    # code JIT-compiled from PTX needs that CUDA's own driver: the Windows one on Windows
    assert compat.min_driver(Version("12.8"), ptx_jit=True, platform="win32")[0] == "570.65"
    assert compat.min_driver(Version("12.8"), ptx_jit=True)[0] == "570.26"
    assert compat.min_driver(Version("13.0"), ptx_jit=True, platform="wsl")[0] is None
    assert compat.runs_cuda(Version("12.8"), compat.driver_of(_Gpu("570.30"), "win32"), ptx_jit=True) is False
    assert compat.runs_cuda(Version("12.8"), compat.driver_of(_Gpu("570.30"), "linux"), ptx_jit=True) is True


@dataclass(frozen=True)
class _Gpu:
    driver_version: str
    cuda_driver_version: str | None = None


def test_kernels_run_on_a_gpu_from_the_same_major_or_ptx():
    assert compat.kernel_for((8, 9), ("sm_80", "sm_86")) == "sass"
    assert compat.kernel_for((12, 0), ("sm_90", "compute_90")) == "ptx"
    assert compat.kernel_for((6, 1), ("sm_70", "sm_75")) is None


def test_a_build_for_another_python_or_platform_is_not_prescribed():
    b = compat.find("2.9.1", "cu128")
    assert [p.kind for p in compat.fit(b, machine(python=(3, 8))).problems] == ["python"]
    assert compat.fit(b, machine(python=(3, 8)), trust_python=True).ok
    old = compat.find("2.6.0", "cu124")
    assert [p.kind for p in compat.fit(old, machine(arch="aarch64")).problems] == ["platform"]
    assert compat.fit(compat.find("2.9.1", "cu128"), machine(arch="aarch64")).ok


def test_the_users_version_is_kept_where_a_build_of_it_runs():
    p = compat.prescribe(machine(), current="2.9.0+cpu")
    assert p.build.label == "2.9.0+cu128" and not p.blocked


def test_where_no_build_of_the_users_version_runs_the_driver_comes_first_and_a_runnable_version_is_named():
    p = compat.prescribe(machine("470.256.02", "11.4"), current="2.13.0+cpu")
    assert p.blocked and p.steps[0].kind == "driver" and p.steps[0].need == "525.60.13"
    assert p.build.label == "2.13.0+cu126"
    assert p.alternative.build.label == "2.7.1+cu118"


def test_a_requirement_on_torch_moves_the_version_to_the_nearest_that_meets_it_and_runs():
    p = compat.prescribe(machine("470.256.02", "11.4"), current="2.0.1+cu117", spec="<3,>=2.4")
    assert p.build.label == "2.4.1+cu118" and not p.blocked


def test_a_gpu_no_build_supports_gets_no_build():
    p = compat.prescribe(machine(ccs=((3, 0),)), current="2.9.0")
    assert p.build is None and "compute capability 3.0" in p.why


def test_a_python_no_release_has_wheels_for_is_the_step_named():
    p = compat.prescribe(machine(python=(3, 7)))
    assert p.blocked and p.steps[0].kind == "python" and p.steps[0].need == "3.10"  # the newest torch's oldest Python


@pytest.mark.parametrize("env, version, on", [
    ({}, "2.27.1", True),
    ({"CURL_CA_BUNDLE": ""}, "2.27.1", False),
    ({"CURL_CA_BUNDLE": ""}, "2.28.0", True),
    ({"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": "/etc/ssl/ca.pem"}, "2.27.1", True),
    ({"REQUESTS_CA_BUNDLE": ""}, "2.27.1", True),
    ({"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}, "2.27.1", False),
])
def test_requests_verification_follows_requests_own_rule(env, version, on):
    assert tls.requests_verification(env, Version(version)).on is on
