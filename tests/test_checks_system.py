from checks_under_test import system as sc
from factories import GiB, facts, findings_of, system
from llmdoctor.model import Status
from llmdoctor.probes.system import Disk, detect_container, detect_wsl
from llmdoctor.report.shells import fix_text


def one(check, **kw):
    (f,) = findings_of(check, facts(system=system(**kw)))
    return f


def test_wsl1_cannot_use_the_gpu():
    f = one(sc.platform_check, wsl=1)
    assert f.status is Status.FAIL and "WSL 1" in f.title and fix_text(f).startswith("in Windows PowerShell: wsl --set-version")


def test_wsl2_and_container_are_named():
    f = one(sc.platform_check, wsl=2, container="docker")
    assert f.status is Status.INFO and "WSL 2" in f.title and "docker container" in f.title


def test_docker_default_shm_warns_with_shm_size_fix():
    f = one(sc.shm_check, container="docker", shm_total_bytes=64 * 1024**2)
    assert f.status is Status.WARN and "64.0 MiB" in f.title
    assert fix_text(f).startswith("docker run --shm-size=1g")
    assert f.docs == "https://github.com/pytorch/pytorch/issues/5040"


def test_small_shm_on_a_host_suggests_remount():
    f = one(sc.shm_check, shm_total_bytes=256 * 1024**2)
    assert fix_text(f) == "sudo mount -o remount,size=8G /dev/shm"


def test_disk_nearly_full_fails_and_names_cache_prune():
    disks = (Disk("home", "/home/u", "/home/u", 500 * GiB, 2 * GiB, "ext4", "/"),
             Disk("hf-cache", "/data/hf/hub", "/data/hf", 2000 * GiB, 1500 * GiB, "xfs", "/data"))
    got = {f.id: f for f in findings_of(sc.disk_check, facts(system=system(disks=disks)))}
    assert got["system.disk-home"].status is Status.FAIL
    assert fix_text(got["system.disk-home"]).startswith("llmdoctor cache prune")
    assert got["system.disk-hf-cache"].status is Status.OK


def test_low_disk_on_shared_filesystem_is_one_warning():
    disks = (Disk("home", "/home/u", "/home/u", 500 * GiB, 20 * GiB, "ext4", "/"),
             Disk("hf-cache", "/home/u/.cache/huggingface/hub", "/home/u", 500 * GiB, 20 * GiB, "ext4", "/"))
    (f,) = findings_of(sc.disk_check, facts(system=system(disks=disks)))
    assert f.id == "system.disk-home-hf-cache" and f.status is Status.WARN


def test_unreadable_disk_is_a_warning_with_the_error():
    disks = (Disk("home", "/home/u", None, error="PermissionError: [Errno 13] Permission denied"),)
    (f,) = findings_of(sc.disk_check, facts(system=system(disks=disks)))
    assert f.status is Status.WARN and "Permission denied" in f.detail


def test_twelve_gib_ram_cannot_load_7b_fp16():
    f = one(sc.memory_check, ram_total_bytes=12 * GiB, ram_available_bytes=10 * GiB)
    assert f.status is Status.WARN and "7B" in f.title


def test_cgroup_cap_counts_not_the_host_ram():
    f = one(sc.memory_check, ram_total_bytes=256 * GiB, ram_available_bytes=200 * GiB,
            cgroup_memory_limit_bytes=8 * GiB)
    assert f.status is Status.WARN and "cgroup limit" in f.title


def test_busy_ram_warns():
    f = one(sc.memory_check, ram_available_bytes=3 * GiB)
    assert f.status is Status.WARN and "available now" in f.title


def test_no_swap_is_info():
    assert one(sc.swap_check, swap_total_bytes=0).status is Status.INFO


def test_cpu_quota_is_reported():
    f = one(sc.cpu_check, cpu_usable=4)
    assert "4 of 16 CPUs" in f.title


def test_wsl_and_container_detection_from_raw_text():
    assert detect_wsl("5.15.153.1-microsoft-standard-WSL2", {}) == 2
    assert detect_wsl("4.4.0-19041-Microsoft", {}) == 1
    assert detect_wsl("6.8.0-40-generic", {}) is None
    assert detect_container("0::/kubepods/burstable/pod1", {}, exists=lambda p: False) == "kubernetes"
    assert detect_container("0::/", {"container": "podman"}, exists=lambda p: False) == "podman"
    assert detect_container("0::/init.scope", {}, exists=lambda p: False) is None
