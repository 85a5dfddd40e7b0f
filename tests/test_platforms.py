"""Windows, WSL 2 and macOS without those machines: the platform layer's pure functions over
facts (ntpath / posixpath), the recorded reports of tests/fixtures/platforms/ replayed through
the CLI, and the CLI's output under the code pages of a Windows console (PYTHONIOENCODING)."""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from llmdoctor.platforms import encoding, exitcodes, mounts, paths, pipconfig

from conftest import ROOT, pyenv_python
from test_cli import invoke

FIXTURES = ROOT / "tests" / "fixtures" / "platforms"


def replay(name: str, *more: str) -> dict:
    result = invoke("check", "--replay", str(FIXTURES / f"{name}.json"), "--json", *more)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def by_id(report: dict) -> dict:
    return {f["id"]: f for f in report["findings"]}


# --- paths: the home directory, one path under another, the mount of a path ------------------

def test_home_is_userprofile_on_windows_as_expanduser_finds_it_and_home_elsewhere():
    git_bash = {"HOME": "/c/Users/jane", "USERPROFILE": "C:\\Users\\Jane Doe"}
    assert paths.home(git_bash, "nt") == "C:\\Users\\Jane Doe"  # Python >= 3.8 ignores HOME on Windows
    assert paths.home({"HOMEDRIVE": "D:", "HOMEPATH": "\\Users\\jane"}, "nt") == "D:\\Users\\jane"
    assert paths.home(git_bash, "posix") == "/c/Users/jane"
    assert paths.expand_user("~\\.cache\\huggingface", git_bash, "nt") == "C:\\Users\\Jane Doe\\.cache\\huggingface"
    assert paths.expand_user("~/x", {"HOME": "/home/u"}, "posix") == "/home/u/x"
    if os.name == "posix":  # the running OS: the same answer as expanduser for the same environment
        assert paths.home({"HOME": "/home/u"}) == "/home/u"


def test_one_helper_for_the_home_directory_and_for_a_path_under_a_folder():
    """Issue 17: the home lookup was written 6 times and the mount prefix 5 times; now each is
    one helper (llmdoctor/platforms/paths.py), and no module writes its own again."""
    offenders = []
    for folder in ("llmdoctor", "checks", "fixes", "benchmark"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            rel = path.relative_to(ROOT).as_posix()
            if rel in ("llmdoctor/platforms/paths.py", "llmdoctor/probes/target/llmdoctor_target_probe.py"):
                continue  # the helper itself; the target probe runs alone in the target interpreter
            if re.search(r'environ\.get\("HOME"\)|expanduser\("~"\)', text):
                offenders.append(f"{rel}: home directory")
            if re.search(r"startswith\([^)]*(os\.sep|\"/\")\)", text) and "mountpoint" in text:
                offenders.append(f"{rel}: mount prefix")
    assert offenders == []


def test_windows_paths_compare_case_insensitively_with_either_slash():
    assert paths.is_under("c:/users/jane doe/envs/glm/python.exe", "C:\\Users\\Jane Doe\\envs\\glm", ntpath)
    assert not paths.is_under("C:\\Users\\Jane Doe\\envs\\glm2", "C:\\Users\\Jane Doe\\envs\\glm", ntpath)
    assert paths.same_path("C:\\ENVS\\glm\\Scripts\\python.exe", "c:\\envs\\glm\\scripts\\python.exe", ntpath)
    assert not paths.same_path("/envs/GLM/bin/python", "/envs/glm/bin/python", posixpath)
    drives = [mounts.MountEntry("C:\\", "C:\\", "NTFS"), mounts.MountEntry("D:\\", "D:\\", "NTFS"),
              mounts.MountEntry("\\\\nas\\share\\", "\\\\nas\\share\\", "NTFS")]
    assert mounts.mount_of("d:\\models\\hub", drives).mountpoint == "D:\\"
    assert mounts.mount_of("\\\\nas\\share\\hf", drives).mountpoint == "\\\\nas\\share\\"
    assert ntpath.join("D:\\", "huggingface") == "D:\\huggingface"  # what cache.location now builds


#: WSL 2's mount table: microsoft/WSL#11931 (its `mount` output, WSL 2.3.17, kernel 5.15.153.1), with
#: /mnt/c as /proc/mounts writes it (https://github.com/lamyj/wsl-path-converter/pull/4: "C:\134" is "C:\")
WSL_MOUNTS = textwrap.dedent(r"""
    none /usr/lib/modules/5.15.153.1-microsoft-standard-WSL2 overlay rw,nosuid,nodev,noatime,lowerdir=/modules 0 0
    none /mnt/wsl tmpfs rw,relatime 0 0
    drivers /usr/lib/wsl/drivers 9p ro,nosuid,nodev,noatime,dirsync,aname=drivers;fmask=222;dmask=222 0 0
    /dev/sdc / ext4 rw,relatime,discard,errors=remount-ro,data=ordered 0 0
    none /mnt/wslg tmpfs rw,relatime 0 0
    /dev/sdc /mnt/wslg/distro ext4 ro,relatime,discard,errors=remount-ro,data=ordered 0 0
    none /usr/lib/wsl/lib overlay rw,nosuid,nodev,noatime,lowerdir=/gpu_lib_packaged:/gpu_lib_inbox 0 0
    rootfs /init rootfs ro,size=8167684k,nr_inodes=2041921 0 0
    none /dev devtmpfs rw,nosuid,relatime,size=8167684k,nr_inodes=2041921,mode=755 0 0
    sysfs /sys sysfs rw,nosuid,nodev,noexec,noatime 0 0
    proc /proc proc rw,nosuid,nodev,noexec,noatime 0 0
    C:\134 /mnt/c 9p rw,dirsync,noatime,aname=drvfs;path=C:\;uid=1000;gid=1000;symlinkroot=/mnt/,mmap 0 0
    //nas/team /mnt/my\040share cifs rw,relatime,vers=3.1.1 0 0
    """)


def test_a_cache_on_wsl_mnt_c_is_on_9p_not_on_the_root_disk():
    table = mounts.parse_proc_mounts(WSL_MOUNTS)
    kept = mounts.user_mounts(table)
    points = {m.mountpoint for m in kept}
    assert {"/", "/mnt/c", "/mnt/my share"} <= points  # 9p and cifs kept, the space unescaped
    assert not points & {"/proc", "/sys", "/dev", "/mnt/wsl", "/usr/lib/wsl/drivers", "/usr/lib/wsl/lib", "/init"}
    hit = mounts.mount_of("/mnt/c/Users/jane/hf/hub", kept, posixpath)
    assert (hit.mountpoint, hit.fstype, hit.device) == ("/mnt/c", "9p", "C:\\")
    # what psutil.disk_partitions(all=False) keeps on Linux: block devices only (no 9p, cifs): the old answer
    block_only = [m for m in kept if m.device.startswith("/dev/")]
    assert mounts.mount_of("/mnt/c/Users/jane/hf/hub", block_only, posixpath).mountpoint == "/"


def test_wsl_report_calls_the_mnt_c_cache_remote_and_compares_the_right_disk():
    found = by_id(replay("wsl"))
    remote = found["cache.network-fs"]
    assert remote["status"] == "warn" and "/mnt/c" in remote["title"] and "9p" in remote["title"]
    small = found["cache.small-disk"]
    assert "/mnt/c" in small["title"] and "HF_HOME=/home/jane/.cache/huggingface" in small["fix"]


# --- output in any code page, JSON as UTF-8 whatever the locale ---------------------------------

@pytest.mark.parametrize("codepage", ["cp437", "cp850", "cp932", "cp949", "cp1252"])
def test_degraded_text_fits_the_code_page(codepage):
    text = "llmdoctor 0.1.0 · 41 °C — fits… ✓ ✗ • – µs ━━ │ ┏ café 中"
    out = encoding.degrade(text, codepage)
    out.encode(codepage)  # never raises
    assert "fits..." in out or "fits…" in out
    assert "41 " in out and "caf" in out


def run_cli(args, codepage, env, cwd):
    return subprocess.run([sys.executable, "-m", "llmdoctor", *args], capture_output=True, timeout=120, cwd=cwd,
                          env={**env, "PYTHONIOENCODING": codepage, "PYTHONUTF8": "0"})


@pytest.fixture
def unicode_cache(tmp_path):
    """A hub cache with a repo whose name and file are not ASCII (a Japanese and a French user)."""
    from llmdoctor.benchmark.self.cachegen import make_cache

    hub = tmp_path / "hf" / "hub"
    make_cache(str(hub), repos=3, files_per_repo=4)
    repo = hub / "models--rinna--日本語-gpt"
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "snapshots" / ("a" * 40) / "café·config—…✓.json").write_text("{}")
    return tmp_path / "hf"


@pytest.mark.parametrize("codepage", ["cp437", "cp850", "cp932", "cp1252", "utf-8"])
def test_every_command_works_in_a_windows_console_code_page(codepage, tmp_path, unicode_cache):
    env = {**os.environ, "HF_HOME": str(unicode_cache), "LLMDOCTOR_CACHE_DIR": str(tmp_path / "ld")}
    windows = str(FIXTURES / "windows.json")
    for args in (["check", "--replay", windows], ["check", "--replay", str(FIXTURES / "wsl.json"), "-v"],
                 ["report", "--replay", windows], ["cache", "ls"], ["cache", "ls", "--revisions"]):
        done = run_cli(args, codepage, env, tmp_path)
        assert done.returncode in (0, 1), (args, done.stderr.decode(codepage, "replace"))
        text = done.stdout.decode(codepage)  # the console's code page can show every byte written
        assert b"Traceback" not in done.stderr and "internal error" not in text
    assert "C:\\Users\\Jane Doe" in run_cli(["check", "--replay", windows], codepage, env, tmp_path).stdout.decode(
        codepage)
    assert "gpt" in run_cli(["cache", "ls"], codepage, env, tmp_path).stdout.decode(codepage)
    # JSON is UTF-8 whatever the code page, so the send-the-JSON-and-replay workflow holds
    saved = tmp_path / "r.json"
    saved.write_bytes(run_cli(["check", "--replay", windows, "--json"], codepage, env, tmp_path).stdout)
    data = json.loads(saved.read_bytes().decode("utf-8"))
    assert data["target"]["executable"] == "C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe"
    again = run_cli(["check", "--replay", str(saved), "--json"], codepage, env, tmp_path)
    assert again.returncode in (0, 1) and {f["id"] for f in json.loads(again.stdout)["findings"]} == \
        {f["id"] for f in data["findings"]}
    listing = json.loads(run_cli(["cache", "ls", "--json"], codepage, env, tmp_path).stdout.decode("utf-8"))
    assert any(r["repo_id"] == "rinna/日本語-gpt" for root in listing["roots"] for r in root["repos"])
    out = tmp_path / "report.md"
    assert run_cli(["report", "--replay", windows, "-o", str(out)], codepage, env, tmp_path).returncode == 0
    assert "C:\\Users\\Jane Doe" in out.read_text(encoding="utf-8")


def test_a_report_saved_by_windows_powershell_as_utf16_replays(tmp_path):
    """Windows PowerShell 5.1's `>` writes UTF-16 LE with a byte-order mark."""
    text = (FIXTURES / "windows.json").read_text(encoding="utf-8")
    for codec, name in (("utf-16", "ps51.json"), ("utf-8-sig", "bom.json")):
        (tmp_path / name).write_bytes(text.encode(codec))
        result = invoke("check", "--replay", str(tmp_path / name), "--json")
        assert result.exit_code == 1 and json.loads(result.stdout)["target"]["python_version"] == "3.11.9"
    (tmp_path / "cp1252.json").write_bytes(text.replace("Jane Doe", "Zoë").encode("cp1252"))
    result = invoke("check", "--replay", str(tmp_path / "cp1252.json"))
    assert result.exit_code == 2 and "not UTF-8" in result.output  # a legacy code page is never guessed


# --- exit codes and process trees ------------------------------------------------------------

def test_windows_crash_codes_are_named_like_signals():
    av = exitcodes.crash_name(3221225477, "nt")
    assert (av.name, av.code) == ("STATUS_ACCESS_VIOLATION", "0xC0000005") and "access violation" in av.means
    assert exitcodes.crash_name(-1073741819, "nt").name == "STATUS_ACCESS_VIOLATION"  # the signed form
    assert exitcodes.crash_name(0xC0000409, "nt").name == "STATUS_STACK_BUFFER_OVERRUN"
    assert exitcodes.crash_name(0xC0001234, "nt").name == "NTSTATUS 0xC0001234"
    assert exitcodes.crash_name(1, "nt") is None and exitcodes.crash_name(-11, "posix").name == "SIGSEGV"
    assert exitcodes.exit_text(3221225477, "nt") == "crashed with STATUS_ACCESS_VIOLATION (0xC0000005)"
    assert exitcodes.exit_text(-9, "posix") == "was killed by SIGKILL" and exitcodes.exit_text(2, "nt") == \
        "exited with code 2"
    from llmdoctor.probes.python_env import describe_failure
    from llmdoctor.subproc import Completed

    class OnWindows(Completed):
        crash = property(lambda self: exitcodes.crash_name(self.returncode, "nt"))

    from checks_under_test import failures

    failure = describe_failure(OnWindows(("python",), 3221225477, "", ""), "start-up", 10)
    assert (failure.kind, failure.exit_code, failure.probe_kind) == ("ntstatus", 3221225477, "crash")
    assert failures.failure_text(failure).startswith("the target interpreter crashed with STATUS_ACCESS_VIOLATION "
                                                     "(0xC0000005: ")


def test_kill_tree_reaches_a_grandchild_that_left_the_process_group(tmp_path):
    """Windows has no process groups: the tree is killed by parent links (psutil), which also
    catches a grandchild that started its own session, out of killpg's reach."""
    from llmdoctor.subproc import kill_tree

    pidfile = tmp_path / "grandchild"
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(60)'], start_new_session=True); open({str(pidfile)!r}, 'w').write(str(p.pid)); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 20
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert kill_tree(child.pid) == 2
    child.wait(timeout=10)
    import psutil

    deadline = time.time() + 10
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE \
            and time.time() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


# --- locks ---------------------------------------------------------------------------------

HOLD = """
import fcntl, sys, time
fd = open(sys.argv[1], "r+b")
{lock}
print("held", flush=True)
time.sleep(30)
"""


def _holder(path, lock):
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(lock=lock), str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_download_lock_reads_as_held(tmp_path):
    """huggingface_hub locks `.locks/<repo>/<etag>.lock` with filelock: flock here, one byte at
    offset 0 on Windows. lock_held takes filelock's own primitive (lock_descriptor)."""
    from llmdoctor.cache.scan import lock_held

    lock = tmp_path / "etag.lock"
    lock.write_bytes(b"")
    assert not lock_held(str(lock))
    holder = _holder(lock, "fcntl.flock(fd, fcntl.LOCK_EX)")
    try:
        assert lock_held(str(lock))
    finally:
        holder.kill()
        holder.wait()
    assert not lock_held(str(lock))


def test_a_byte_range_lock_of_another_process_reads_as_held(tmp_path):
    """Windows' lock is a byte-range lock on byte 0: opening the file succeeds anyway, only
    locking that byte tells. msvcrt.locking is played by POSIX record locks (lockf), which are
    byte-range locks between processes too, to test the offset, length and unlock we use."""
    import fcntl

    from llmdoctor.cache.scan import byte_range_lock

    def locking(fd, mode, nbytes):  # msvcrt.locking's contract: from the current position
        fcntl.lockf(fd, mode, nbytes, 0, os.SEEK_CUR)

    nb, unlock = fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN
    lock = tmp_path / "etag.lock"
    lock.write_bytes(b"x" * 10)
    fd = os.open(str(lock), os.O_RDWR)
    try:
        os.lseek(fd, 5, os.SEEK_SET)  # a position left elsewhere must not move the byte tested
        assert byte_range_lock(fd, locking, nb, unlock)
        holder = _holder(lock, "fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)")
        try:
            assert not byte_range_lock(fd, locking, nb, unlock)
        finally:
            holder.kill()
            holder.wait()
        assert byte_range_lock(fd, locking, nb, unlock)
        other = _holder(lock, "fcntl.lockf(fd, fcntl.LOCK_EX, 1, 5)")  # another byte: not filelock's
        try:
            assert byte_range_lock(fd, locking, nb, unlock)
        finally:
            other.kill()
            other.wait()
    finally:
        os.close(fd)


# --- the cache scan: worker processes, never fork() -------------------------------------------

def test_the_cache_scan_from_a_probe_thread_forks_nothing(tmp_path):
    """fork() from a threaded process is unsafe on macOS and a DeprecationWarning from Python
    3.12: the scan runs from a probe thread, beside another thread, with os.fork() made to fail;
    its workers are fresh interpreters that answer, and their result is the serial scan's."""
    from llmdoctor.benchmark.self.cachegen import make_cache
    from llmdoctor.cache.scan import PARALLEL_FROM

    cache = tmp_path / "hub"
    make_cache(str(cache), repos=PARALLEL_FROM + 5, files_per_repo=4)
    python = pyenv_python("3.12") or sys.executable
    code = textwrap.dedent(f"""
        import os, sys, threading
        sys.path.insert(0, {str(ROOT)!r})
        def no_fork():
            raise AssertionError("os.fork() called")
        os.fork = no_fork
        from llmdoctor.cache import scan as hfcache
        seen = []
        real = hfcache.WorkerPool.send
        hfcache.WorkerPool.send = lambda self, *a: seen.append(real(self, *a)) or seen[-1]
        stop = threading.Event()
        busy = threading.Thread(target=stop.wait, daemon=True)
        busy.start()
        box = {{}}
        t = threading.Thread(target=lambda: box.update(r=hfcache.scan_root({str(cache)!r}, "x", workers=2)))
        t.start(); t.join(); stop.set()
        serial = hfcache.scan_root({str(cache)!r}, "x", workers=1)
        assert seen and all(p is not None and p.returncode == 0 for p in seen), seen
        assert box["r"] == serial and len(serial.repos) == {PARALLEL_FROM + 5}
        print("ok", sys.version_info[:2])
    """)
    done = subprocess.run([python, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr
    assert "fork()" not in done.stderr  # Python 3.12's "multi-threaded, use of fork() may lead to deadlocks"


# --- pip's configuration files -----------------------------------------------------------------

def test_pip_config_files_in_pips_own_order_on_each_platform(monkeypatch, tmp_path):
    win = {"APPDATA": "C:\\Users\\Jane Doe\\AppData\\Roaming", "ProgramData": "C:\\ProgramData",
           "USERPROFILE": "C:\\Users\\Jane Doe"}
    assert pipconfig.pip_config_files("win32", win, "C:\\envs\\glm") == [
        ("global", "C:\\ProgramData\\pip\\pip.ini"), ("user", "C:\\Users\\Jane Doe\\pip\\pip.ini"),
        ("user", "C:\\Users\\Jane Doe\\AppData\\Roaming\\pip\\pip.ini"), ("site", "C:\\envs\\glm\\pip.ini")]
    assert pipconfig.pip_config_files("win32", {"appdata": "X:\\r", "USERPROFILE": "X:\\u"}, None)[2] == \
        ("user", "X:\\r\\pip\\pip.ini")  # variable names are case-insensitive on Windows
    mac = {"HOME": "/Users/jane"}
    support = "/Users/jane/Library/Application Support/pip"
    assert pipconfig.pip_config_files("darwin", mac, "/env", isdir=lambda p: p == support) == [
        ("global", "/Library/Application Support/pip/pip.conf"), ("user", "/Users/jane/.pip/pip.conf"),
        ("user", support + "/pip.conf"), ("site", "/env/pip.conf")]
    assert pipconfig.pip_config_files("darwin", mac, None)[2] == ("user", "/Users/jane/.config/pip/pip.conf")
    assert pipconfig.pip_config_files("linux", {"PIP_CONFIG_FILE": "/dev/null"}, "/env") == []
    # on this machine: the same files, in the same order, as pip's own get_configuration_files()
    env = {"HOME": str(tmp_path), "XDG_CONFIG_DIRS": "/etc/xdg:/opt/xdg", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    code = ("import json; from pip._internal.configuration import get_configuration_files as g, kinds; f = g(); "
            "print(json.dumps(f[kinds.GLOBAL] + f[kinds.USER] + f[kinds.SITE]))")
    theirs = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                       env={**os.environ, **env}).stdout)
    ours = [p for _, p in pipconfig.pip_config_files(sys.platform, env, sys.prefix)]
    assert ours == theirs


# --- the Windows report ------------------------------------------------------------------------

def test_windows_report_names_each_windows_failure_with_its_remedy():
    found = by_id(replay("windows"))
    dll = found["system.windows-dll"]
    assert dll["status"] == "fail" and "fbgemm.dll" in dll["title"] and "libomp140.x86_64.dll" in dll["title"]
    assert "not a broken torch" in dll["title"] and "Visual C++ Redistributable" in dll["fix"]
    assert found["system.windows-triton"]["status"] == "fail" and "triton-windows<3.2" in \
        found["system.windows-triton"]["fix"]  # torch 2.4 pairs with triton-windows 3.1
    assert "bitsandbytes>=0.43.0" in found["system.windows-bitsandbytes"]["fix"]
    # the PyPI default torch is CPU-only on Windows: the same release's newest CUDA build that exists (2.4.0 was
    # published for cu118, cu121 and cu124; there is no cu126 build of it) and runs on this 12.6 driver
    assert "'torch==2.4.0' --index-url https://download.pytorch.org/whl/cu124" in found["torch.cpu-only"]["fix"]
    msvc = found["cuda.msvc-unsupported"]
    assert "_MSC_VER 1940" in msvc["title"] and "nvcc 12.1" in msvc["title"]
    copies = found["cache.no-symlinks"]
    assert copies["status"] == "warn" and "14.2 GiB" in copies["title"] and "Developer Mode" in copies["fix"]
    moved = found["cache.small-disk"]["fix"]
    assert "D:\\huggingface" in moved and "\\/" not in moved and "D:\\huggingface\\hub" in moved
    # the kernel.json names this env's python.exe in other letter case: the same file on Windows
    assert "python.kernel-unregistered" not in found and "one runs this environment" in \
        found["python.jupyter-kernel"]["title"]


def test_msvc_window_comes_from_the_nvcc_header_else_the_table():
    from llmdoctor.checks.toolkit import msc_ver
    from llmdoctor.probes.toolkit import nvcc_candidates, parse_host_config, parse_msvc

    assert parse_msvc("Microsoft (R) C/C++ Optimizing Compiler Version 19.39.33523 for x64") == "19.39.33523"
    assert msc_ver("19.39.33523") == 1939 and msc_ver(None) is None
    assert parse_host_config("#if _MSC_VER < 1910 || _MSC_VER >= 1950\n#error -- unsupported") == (1910, 1950)
    env = {"CUDA_PATH": "C:\\CUDA\\v12.4", "CUDA_PATH_V12_1": "C:\\CUDA\\v12.1", "ProgramFiles": "C:\\Program Files"}
    found = list(nvcc_candidates(env, "C:\\envs\\glm", "nt", glob_fn=lambda pattern: [pattern.replace("v*", "v12.6")]
                                 if "Program Files" in pattern else []))
    assert found[:2] == [("C:\\CUDA\\v12.4\\bin\\nvcc.exe", "CUDA_PATH"), ("C:\\CUDA\\v12.1\\bin\\nvcc.exe",
                                                                            "CUDA_PATH_V12_1")]
    assert ("C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\bin\\nvcc.exe", "Program Files") in found
    from llmdoctor.checks.toolkit import host_compiler_check
    from llmdoctor.probes.toolkit import Nvcc, Tool, ToolkitFacts

    from factories import facts

    def judge(nvcc_version, window, cl):
        nvcc = Nvcc("C:\\CUDA\\bin\\nvcc.exe", "C:\\CUDA\\bin\\nvcc.exe", "CUDA_PATH", nvcc_version, msvc_window=window)
        tk = ToolkitFacts(nvccs=(nvcc,), cuda_home="C:\\CUDA", cuda_home_nvcc=nvcc.real_path,
                          gcc=Tool("cl", "cl.exe", cl, None if cl else "cl.exe not on PATH"), host_os="nt")
        return list(host_compiler_check.run(facts(cuda=tk)))[0]

    assert judge("12.3.107", None, "19.39.33523").status.label == "ok"  # the table: 12.3 takes 1910..1939
    assert judge("12.3.107", None, "19.40.33811").id == "cuda.msvc-unsupported"
    assert judge("12.4.131", None, "19.40.33811").status.label == "ok"
    assert judge("12.3.107", (1910, 1950), "19.40.33811").status.label == "ok"  # its own header wins
    assert judge("12.4.131", None, None).id == "cuda.host-compiler-missing"


# --- WSL 2 --------------------------------------------------------------------------------------

def test_wsl_report_names_the_linux_driver_the_path_the_linker_cache_and_the_memory_cap():
    found = by_id(replay("wsl"))
    driver = found["system.wsl-linux-driver"]
    assert driver["status"] == "fail" and driver["fix"] == "sudo apt-get remove --purge libnvidia-compute-535 " \
                                                          "nvidia-utils-535"
    assert found["gpu.none-wsl"]["status"] == "info"
    assert "under sudo" in found["system.wsl-path"]["title"] and "/usr/lib/wsl/lib" in found["system.wsl-path"][
        "fix"]
    assert "TRITON_LIBCUDA_PATH=/usr/lib/wsl/lib" in found["system.wsl-triton"]["fix"]
    cap = found["system.wsl-memory-cap"]
    assert "Killed" in cap["title"] and ".wslconfig" in cap["fix"] and "wsl --shutdown" in cap["fix"]


def test_wsl_facts_from_the_files_wsl_and_dpkg_write():
    from llmdoctor.probes.platform import dpkg_driver_packages, ld_cache_libcuda, parse_wslconfig

    status = ("Package: nvidia-utils-535\nStatus: install ok installed\n\nPackage: nvidia-driver-535\n"
              "Status: deinstall ok config-files\n\nPackage: cuda-toolkit-12-4\nStatus: install ok installed\n")
    assert dpkg_driver_packages(status) == ("nvidia-utils-535",)
    assert parse_wslconfig("[wsl2]\nmemory=48GB # most of it\nswap = 0\n") == ("48GB", "0")
    assert parse_wslconfig("[experimental]\nsparseVhd=true\n") == (None, None)
    ldconfig = ("\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12\n"
                "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/wsl/lib/libcuda.so.1\n")
    assert ld_cache_libcuda(ldconfig) == ("/usr/lib/wsl/lib/libcuda.so.1",)


def test_wsl_plumbing_in_place_is_ok_and_triton_2_0_is_named():
    from llmdoctor.checks.platforms import wsl_check
    from llmdoctor.probes.platform import LibFile, PlatformFacts, WslFacts

    from factories import dist, facts, system, target

    lib = "/usr/lib/wsl/lib/"
    good = WslFacts(lib_dir_exists=True, lib_files=(LibFile(lib + "libcuda.so"), LibFile(lib + "libcuda.so.1"),
                                                      LibFile(lib + "nvidia-smi")), on_path=True,
                    ld_conf="/etc/ld.so.conf.d/ld.wsl.conf", ld_cache_libcuda=(lib + "libcuda.so.1",))
    f = facts(system=system(wsl=2), platform=PlatformFacts("Linux", wsl=good), target=target())
    assert [x.status.label for x in wsl_check.run(f)] == ["ok"]
    old = facts(system=system(wsl=2), platform=PlatformFacts("Linux", wsl=good),
                target=target(distributions=(dist("triton", "2.0.0"),)))
    (finding,) = wsl_check.run(old)
    assert finding.id == "system.wsl-triton" and "whereis" in finding.title


# --- macOS ------------------------------------------------------------------------------------

def test_macos_report_says_no_cuda_once_and_names_rosetta():
    report = replay("macos_rosetta")
    found = by_id(report)
    assert found["system.macos-rosetta"]["status"] == "warn" and "2.2.2" in found["system.macos-rosetta"]["title"]
    assert found["gpu.none-macos"]["title"].startswith("No CUDA on macOS") and "mps" in found["gpu.none-macos"]["title"]
    said = [f for f in report["findings"] if f["status"] != "skip" and "CUDA" in f["title"]]
    assert [f["id"] for f in said] == ["gpu.none-macos"]  # said once, with what works instead


def test_macos_native_arm64_with_mps_is_ok():
    from llmdoctor.checks.platforms import macos_check
    from llmdoctor.probes.platform import MacFacts, PlatformFacts
    from llmdoctor.probes.pytorch import LiveTorch, TorchFacts

    from factories import facts, system, target

    torch = TorchFacts(installed=True, version="2.5.1", build="cpu",
                       live=LiveTorch(mps_built=True, mps_available=True))
    f = facts(system=system(os="Darwin", machine="arm64"), target=target(platform="darwin", machine="arm64"),
              platform=PlatformFacts("Darwin", macos=MacFacts("14.5", True, False)), torch=torch)
    assert [(x.status.label, x.id) for x in macos_check.run(f)] == [("ok", "system.macos"),
                                                                       ("ok", "system.macos-mps")]


# --- a cache written without symlinks ------------------------------------------------------------

def test_a_cache_without_symlinks_reports_the_bytes_stored_twice(tmp_path):
    """What huggingface_hub leaves where it cannot link (Windows without Developer Mode): each
    revision's snapshot holds the files themselves, the same file once per revision."""
    hub = tmp_path / "hf" / "hub"
    repo = hub / "models--org--model"
    weights = b"w" * 300_000
    for commit, config in (("a" * 40, b'{"v": 1}'), ("b" * 40, b'{"v": 2}')):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "model.safetensors").write_bytes(weights)
        (snap / "config.json").write_bytes(config)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    result = invoke("check", "--only", "cache.symlinks", "--json", env={"HF_HOME": str(tmp_path / "hf")})
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["id"] == "cache.no-symlinks" and finding["status"] == "warn"
    assert "4 snapshot file(s)" in finding["title"] and "293.0 KiB of them are the same file" in finding["title"]


# --- advice that names one OS's tools, replayed on the others -----------------------------------

def replay_with(tmp_path, name: str, *more: str, offline: bool | None = None, edit=None, **values) -> dict:
    """A recorded report with some facts replaced (dataclasses, dumped as a report holds them)
    and ``edit(facts)`` applied to the rest, replayed through the CLI."""
    from llmdoctor.facts import dump

    doc = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    for key, value in values.items():
        doc["facts"][key.replace("_", ".")] = {"value": dump(value), "reason": None, "kind": None, "duration_s": 0}
    if edit is not None:
        edit({k: v["value"] for k, v in doc["facts"].items()})
    if offline is not None:
        doc["offline"] = offline
    path = tmp_path / f"{name}-edited.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = invoke("check", "--replay", str(path), "--json", *more)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def _dns_failure(where: str):
    """The hub's name does not resolve (network.hub-dns), or only the target's endpoint does not
    (network.hub-client-dns: llmdoctor reaches the hub, the target's HF_ENDPOINT does not resolve)."""
    from llmdoctor.net import EndpointResult, Phase
    from llmdoctor.probes.network import HubCall, NetworkFacts

    failed = (Phase("dns", False, 0.01, "cannot resolve huggingface.co: [Errno 11001] getaddrinfo failed"),)
    ok = (Phase("dns", True, 0.01), Phase("tcp", True, 0.02), Phase("tls", True, 0.05), Phase("http", True, 0.1))
    hub = EndpointResult("hub", "https://huggingface.co", "huggingface.co", 443, failed if where == "hub" else ok,
                         status=None if where == "hub" else 200, hub_headers=None if where == "hub" else True)
    call = HubCall(ok=False, version="0.36.0", client="requests", endpoint="https://hub.internal.example",
                   errors=("ConnectionError: Failed to resolve 'hub.internal.example' ([Errno 11001] getaddrinfo "
                           "failed)",))
    return NetworkFacts(endpoint="https://huggingface.co", endpoint_from="default", repo="openai-community/gpt2",
                        results=(hub,), hub_call=call)


@pytest.mark.parametrize("name,tools,foreign", [
    ("windows", ("ipconfig /all", "nslookup "), ("resolvectl", "/etc/resolv.conf", "scutil")),
    ("macos_rosetta", ("scutil --dns",), ("resolvectl", "/etc/resolv.conf", "ipconfig")),
    ("wsl", ("/etc/resolv.conf",), ("ipconfig", "scutil")),
])
def test_a_dns_failure_names_the_dns_tools_of_the_os_the_report_comes_from(tmp_path, name, tools, foreign):
    for where, fid in (("hub", "network.hub-dns"), ("client", "network.hub-client-dns")):
        found = by_id(replay_with(tmp_path, name, offline=False, network=_dns_failure(where)))
        fix = found[fid]["fix"]
        assert all(t in fix for t in tools) and not any(t in fix for t in foreign), (fid, fix)


def _nvcc_facts(where: str, nvcc_version: str | None):
    from llmdoctor.probes.toolkit import Nvcc, Tool, ToolkitFacts

    if where == "windows":
        path = f"C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v{nvcc_version}\\bin\\nvcc.exe"
        nvccs = (Nvcc(path, path, "CUDA_PATH", nvcc_version + ".0", msvc_window=(1910, 1950)),) if nvcc_version else ()
        return ToolkitFacts(nvccs=nvccs, on_path=path if nvcc_version else None, host_os="nt",
                            gcc=Tool("cl", "C:\\VS\\cl.exe", "19.40.33811"))
    path = f"/usr/local/cuda-{nvcc_version}/bin/nvcc"
    nvccs = (Nvcc(path, path, "PATH", nvcc_version + ".0"),) if nvcc_version else ()
    return ToolkitFacts(nvccs=nvccs, on_path=path if nvcc_version else None, gcc=Tool("gcc", "/usr/bin/gcc", "11.4.0"))


def _cuda_torch():
    from factories import torch_facts

    return torch_facts(version="2.6.0+cu126", build="cuda", cuda="12.6", live=None)


@pytest.mark.parametrize("name,guide,not_guide", [
    ("windows", "cuda-installation-guide-microsoft-windows", "cuda-installation-guide-linux"),
    # inside WSL the Linux guide's `cuda` package installs a Linux driver, which breaks WSL's GPU access
    ("wsl", "wsl-user-guide", "cuda-installation-guide-linux"),
])
def test_the_cuda_toolkit_advice_points_at_the_installer_for_the_os(tmp_path, name, guide, not_guide):
    missing = by_id(replay_with(tmp_path, name, cuda=_nvcc_facts(name, None), torch=_cuda_torch()))
    assert guide in missing["cuda.nvcc-missing"]["docs"]
    other = by_id(replay_with(tmp_path, name, cuda=_nvcc_facts(name, "13.0"), torch=_cuda_torch()))
    mismatch = other["cuda.nvcc-torch-mismatch"]
    assert guide in mismatch["fix"] and not_guide not in mismatch["fix"]


def test_a_wsl_driver_too_old_is_upgraded_on_windows_by_windows_driver_numbers(tmp_path):
    """WSL runs the Windows driver: its version is a Windows one (522.06), judged by the Windows
    column of NVIDIA's table, and it is upgraded on Windows, never by a Linux driver inside WSL."""
    from llmdoctor.probes.nvidia import GpuFacts

    from factories import gpu

    from factories import dist

    g = GpuFacts(source="nvml", gpus=(gpu(name="NVIDIA GeForce RTX 4090", cc_major=8, cc_minor=9),),
                 driver_version="522.06", cuda_driver_version="11.8")

    def needs_torch_2_8(facts):  # no CUDA 11 build of torch 2.8: the driver must move
        facts["target"]["distributions"].append({"name": "mypkg", "version": "1.0", "requires": ["torch>=2.8"],
                                                 "location": dist("x", "1").location})

    found = by_id(replay_with(tmp_path, "wsl", gpu=g, torch=_cuda_torch(), edit=needs_torch_2_8))
    driver = found["torch.driver"]
    assert driver["status"] == "fail" and ">= 528.33" in driver["title"], driver["title"]
    assert "on Windows" in driver["fix"] and "528.33" in driver["fix"] and "525.60.13" not in driver["fix"]
    assert "apt" not in driver["fix"]


def test_wsl_without_a_gpu_shows_the_windows_step_as_a_powershell_command():
    found = by_id(replay("wsl"))["gpu.none-wsl"]
    assert found["fix"].endswith("in Windows PowerShell: wsl --shutdown")
    (shutdown,) = [p for p in found["command"] if isinstance(p, dict)]
    assert shutdown == {"steps": [{"run": ["wsl", "--shutdown"]}], "shell": "powershell"}


@pytest.mark.parametrize("name", ["macos_rosetta", "windows"])
def test_deepspeed_off_linux_prescribes_no_cuda_torch_reinstall_and_no_libaio(tmp_path, name):
    """DeepSpeed's CUDA ops need an NVIDIA GPU and its async_io op Linux's libaio: on a Mac no torch
    reinstall brings the CUDA ops, and neither apt's nor conda-forge's libaio exists off Linux."""
    from factories import dist

    def with_deepspeed(facts):
        facts["target"]["distributions"].append({"name": "deepspeed", "version": "0.16.0", "requires": ["torch"],
                                                 "location": dist("x", "1").location})

    found = by_id(replay_with(tmp_path, name, edit=with_deepspeed))
    if name == "macos_rosetta":
        cpu = found["build.deepspeed-cpu-torch"]
        assert not cpu.get("fix") and "macOS" in cpu["title"], cpu
    libaio = found["build.deepspeed-libaio"]
    assert not libaio.get("fix") and "Linux" in libaio["title"], libaio


@pytest.mark.parametrize("codepage", ["cp437", "cp850", "cp1252"])
def test_a_fix_line_shown_in_a_code_page_keeps_its_quoting(tmp_path, codepage):
    """A character the code page lacks is shown as a fallback; in a fix line that fallback must
    not be one the shell acts on: a path with typographic quotes (“ & calc & ”), a fullwidth
    ampersand or ≥ must not come out as an unquoted & or > in cmd, or a stray ' in sh."""
    from shell_parsers import cmd_steps, posix_steps, ps_steps

    nasty = "C:\\Users\\x\u201c & calc & \u201d \uff06 \u2265 \u2019 \u00b0 \u00a0y\\envs\\glm"
    doc = json.loads((FIXTURES / "windows.json").read_text(encoding="utf-8"))
    path = tmp_path / "nasty.json"
    path.write_text(json.dumps(doc).replace("C:\\\\Users\\\\Jane Doe\\\\envs\\\\glm",
                                            json.dumps(nasty)[1:-1]), encoding="utf-8")
    want = len(("x", "-m", "pip", "install", "-U", "triton-windows<3.2"))
    for shell, parse in (("cmd", cmd_steps), ("powershell", ps_steps), ("sh", posix_steps)):
        done = run_cli(["check", "--replay", str(path), "--shell", shell], codepage, os.environ, tmp_path)
        lines = [x.strip()[5:] for x in done.stdout.decode(codepage).splitlines() if "triton-windows" in x
                 and x.strip().startswith("fix: ")]
        assert lines, done.stdout.decode(codepage, "replace")
        (step,) = parse(lines[0], {})
        assert step[0] == "run" and len(step[1]) == want and "calc" in step[1][0], (shell, lines[0], step)


def test_macos_torch_is_not_called_cpu_only_when_it_has_mps_built_in():
    """PyPI's macOS torch has no CUDA but carries MPS: torch.build names it for what it is, and
    system.macos-mps says whether this Python can use it (not under Rosetta)."""
    found = by_id(replay("macos_rosetta"))
    assert found["torch.build"]["title"] == "torch 2.2.2, macOS build with MPS (Apple GPUs) built in"
    assert "Rosetta" in found["system.macos-mps"]["title"]
