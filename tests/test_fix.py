"""The fix contract: plan, show, confirm, apply, verify, journal, undo byte for byte."""

import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from conftest import site_packages
from factories import GiB, facts, system, target
from llmdoctor.fix import envhook
from llmdoctor.cli import cli
from llmdoctor.fix.model import FixContext, FixError
from llmdoctor.fix.journal import Journal, JournalError
from llmdoctor.target import resolve_target
from llmdoctor.checks.sizing import safe_jobs
from llmdoctor.fixes import max_jobs


def invoke(*args):
    return CliRunner().invoke(cli, ["fix", *args], catch_exceptions=False)


def seen_by_target(py, name="MAX_JOBS"):
    env = {k: v for k, v in os.environ.items() if k != name}
    return subprocess.run([str(py), "-c", f"import os; print(os.environ.get({name!r}))"], env=env,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def test_undo_restores_an_edited_file_byte_for_byte_and_removes_a_created_one(tmp_path):
    edited, created = tmp_path / "a.conf", tmp_path / "sub" / "new.pth"
    original = b"line one\r\n\x00binary\xff tail without newline"
    edited.write_bytes(original)
    os.chmod(edited, 0o640)
    j = Journal(tmp_path / "cfg")
    rec = j.begin("demo")
    rec.write(str(edited), b"changed\n")
    rec.write(str(created), b"import os\n")
    assert edited.read_bytes() == b"changed\n" and created.exists()
    entry = j.find(None)
    assert entry.fix == "demo" and len(entry.files) == 2
    j.undo(entry)
    assert edited.read_bytes() == original and os.stat(edited).st_mode & 0o777 == 0o640
    assert not created.exists()
    with pytest.raises(JournalError, match="nothing to undo"):
        j.find(None)


def test_undo_refuses_to_lose_edits_made_after_the_fix(tmp_path):
    f = tmp_path / "a.conf"
    f.write_bytes(b"before")
    j = Journal(tmp_path / "cfg")
    j.begin("demo").write(str(f), b"after")
    f.write_bytes(b"the user edited this since")
    with pytest.raises(JournalError, match="changed since the fix"):
        j.undo(j.find(None))
    assert f.read_bytes() == b"the user edited this since"
    j.undo(j.find(None), force=True)
    assert f.read_bytes() == b"before"


def test_a_fix_killed_midway_can_still_be_undone(tmp_path, monkeypatch):
    import llmdoctor.fix.journal as journal_mod

    f = tmp_path / "a.conf"
    f.write_bytes(b"before")
    j = Journal(tmp_path / "cfg")
    rec = j.begin("demo")
    real = journal_mod.atomic_write

    def die_on_target(path, data, mode=None, tmp=None):
        if path == str(f):
            raise KeyboardInterrupt  # killed while writing the user's file
        real(path, data, mode, tmp)

    monkeypatch.setattr(journal_mod, "atomic_write", die_on_target)
    with pytest.raises(KeyboardInterrupt):
        rec.write(str(f), b"after")
    monkeypatch.setattr(journal_mod, "atomic_write", real)
    assert f.read_bytes() == b"before"  # atomic: the file was never half written
    entry = j.find(None)
    j.undo(entry)  # the file is as it was before: no --force needed
    assert f.read_bytes() == b"before"


def test_max_jobs_fits_the_ram_not_the_cpu_count():
    assert safe_jobs(available_bytes=30 * GiB, cpus=32, per_job_bytes=5 * GiB) == 6
    assert safe_jobs(available_bytes=2 * GiB, cpus=32, per_job_bytes=5 * GiB) == 1
    assert safe_jobs(available_bytes=500 * GiB, cpus=8, per_job_bytes=5 * GiB) == 8


def test_max_jobs_plan_from_facts(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    f = facts(system=system(ram_available_bytes=31 * GiB, cpu_usable=64, cgroup_memory_limit_bytes=None),
              target=target(purelib=str(site), prefix=str(tmp_path)))
    plan = max_jobs.plan(FixContext(target=resolve_target(), environ={}, facts=f))
    (change,) = plan.changes
    assert change.path == str(site / "llmdoctor-env.pth")
    # nothing says which builds happen here, so it is sized for flash-attn, the hungriest:
    # one nvcc of 4 threads at up to 5 GiB each per job (flash-attn PR #2079)
    assert envhook.parse(change.content) == {"MAX_JOBS": "1"}
    assert change.mode == 0o644
    assert not (site / "llmdoctor-env.pth").exists()  # planning writes nothing


def test_max_jobs_adds_ds_build_aio_0_only_where_ds_build_ops_would_fail(tmp_path):
    from factories import toolkit

    site = tmp_path / "site"
    site.mkdir()
    nvcc = ("12.8.93", "/usr/local/cuda-12.8/bin/nvcc", "PATH")

    def planned(tk, build_env):
        f = facts(system=system(ram_available_bytes=31 * GiB, cpu_usable=4), cuda=tk,
                  target=target(purelib=str(site), prefix=str(tmp_path), build_env=build_env))
        return envhook.parse(max_jobs.plan(FixContext(target=resolve_target(), environ={}, facts=f)).changes[0].content)

    assert planned(toolkit(nvcc), {"DS_BUILD_OPS": "1"}) == {"MAX_JOBS": "1", "DS_BUILD_AIO": "0"}
    assert planned(toolkit(nvcc, libaio="/usr/lib/libaio.so.1"), {"DS_BUILD_OPS": "1"}) == {"MAX_JOBS": "1"}
    assert planned(toolkit(nvcc), {}) == {"MAX_JOBS": "1"}


def test_max_jobs_on_windows_names_async_io_as_linux_only_not_a_package_to_install(tmp_path):
    """DeepSpeed's async_io needs Linux's libaio: on Windows there is no libaio-dev to install,
    so the note says the op cannot build there, and DS_BUILD_AIO=0 still leaves it out."""
    from factories import toolkit

    site = tmp_path / "site"
    site.mkdir()
    nvcc = ("12.8.93", "C:\\CUDA\\v12.8\\bin\\nvcc.exe", "CUDA_PATH")
    f = facts(system=system(os="Windows", ram_available_bytes=31 * GiB, cpu_usable=4), cuda=toolkit(nvcc),
              target=target(purelib=str(site), prefix=str(tmp_path), build_env={"DS_BUILD_OPS": "1"}))
    plan = max_jobs.plan(FixContext(target=resolve_target(), environ={}, facts=f))
    assert envhook.parse(plan.changes[0].content) == {"MAX_JOBS": "1", "DS_BUILD_AIO": "0"}
    (note,) = [n for n in plan.notes if "async_io" in n]
    assert "libaio-dev" not in note and "Linux's libaio" in note


def test_max_jobs_for_deepspeed_alone_uses_its_own_ram_per_job(tmp_path):
    """A CPU torch with DeepSpeed: no flash-attn build can happen, so MAX_JOBS is sized by
    DeepSpeed's measured 2 GiB per cc1plus, not by flash-attn's 20 GiB per nvcc."""
    from factories import dist, torch_facts

    site = tmp_path / "site"
    site.mkdir()
    f = facts(system=system(ram_available_bytes=31 * GiB, cpu_usable=64, cgroup_memory_limit_bytes=None),
              target=target(purelib=str(site), prefix=str(tmp_path), distributions=(dist("deepspeed", "0.19.8"),)),
              torch=torch_facts(version="2.13.0+cpu", build="cpu", cuda=None))
    plan = max_jobs.plan(FixContext(target=resolve_target(), environ={}, facts=f))
    assert envhook.parse(plan.changes[0].content) == {"MAX_JOBS": "15"}
    assert "DeepSpeed ops: 2.1 GiB per job" in plan.notes[0]


def test_max_jobs_without_a_site_packages_is_a_clear_error(tmp_path):
    f = facts(system=system(), target=target(purelib=str(tmp_path / "missing")))
    with pytest.raises(FixError, match="not writable"):
        max_jobs.plan(FixContext(target=resolve_target(), environ={}, facts=f))


def test_fix_max_jobs_end_to_end_in_a_real_venv(venv):
    py = venv()
    hook = site_packages(py) / "llmdoctor-env.pth"
    dry = invoke("--max-jobs", "--python", str(py), "--dry-run", "--jobs", "3")
    assert dry.exit_code == 0 and "MAX_JOBS=3" in dry.output and "Dry run" in dry.output
    assert not hook.exists()
    unasked = invoke("--max-jobs", "--python", str(py), "--jobs", "3")
    assert unasked.exit_code == 1 and "--yes" in unasked.output and not hook.exists()
    applied = invoke("--max-jobs", "--python", str(py), "--jobs", "3", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "Verified: a new" in applied.output
    assert seen_by_target(py) == "3"
    report = CliRunner().invoke(cli, ["check", "--json", "--python", str(py), "--only", "python.target"],
                                env={"MAX_JOBS": None}, catch_exceptions=False)
    assert json.loads(report.stdout)["facts"]["target"]["value"]["build_env"]["MAX_JOBS"] == "3"  # the check sees it
    again = invoke("--max-jobs", "--python", str(py), "--jobs", "3", "--yes")
    assert "already sets MAX_JOBS=3" in again.output
    assert "max-jobs" in invoke("--journal").output
    undone = invoke("--undo")
    assert undone.exit_code == 0 and str(hook) in undone.output
    assert not hook.exists() and seen_by_target(py) == "None"


def test_fix_keeps_what_another_fix_wrote_and_undo_restores_it_exactly(venv):
    py = venv()
    hook = site_packages(py) / "llmdoctor-env.pth"
    before = envhook.render({"SSL_CERT_FILE": "/home/u/.config/llmdoctor/ca-bundle.pem"})
    hook.write_bytes(before)
    assert invoke("--max-jobs", "--python", str(py), "--jobs", "2", "--yes").exit_code == 0
    assert envhook.parse(hook.read_bytes()) == {"MAX_JOBS": "2", "SSL_CERT_FILE": "/home/u/.config/llmdoctor/ca-bundle.pem"}
    assert invoke("--undo").exit_code == 0
    assert hook.read_bytes() == before


def test_the_users_own_setting_wins_over_the_hook(venv):
    py = venv()
    assert invoke("--max-jobs", "--python", str(py), "--jobs", "2", "--yes").exit_code == 0
    env = dict(os.environ, MAX_JOBS="1")
    out = subprocess.run([str(py), "-c", "import os; print(os.environ['MAX_JOBS'])"], env=env,
                         capture_output=True, text=True, timeout=60).stdout.strip()
    assert out == "1"


def test_usage_errors():
    assert invoke("--nope").exit_code == 2
    assert invoke("--max-jobs", "--jobs", "zero").exit_code == 2
    assert invoke().exit_code == 2
    assert invoke("--undo").exit_code == 1  # nothing to undo is not a crash


def test_list_shows_builtin_fixes():
    out = invoke("--list").output
    assert out.startswith("max-jobs") and "builtin" in out


PLUGIN_FIX = '''
from llmdoctor.fix.model import FileChange, Fix, Param, Plan

def plan(ctx):
    greeting = "hello " + (ctx.options.get("who") or "nobody") + (" x" + str(ctx.options["times"])
                                                                    if ctx.options.get("times") else "")
    return Plan("greet", "Write a greeting", changes=(FileChange(ctx.options["into"], greeting.encode(), "A file"),))

def fixes():
    return [Fix(id="greet", description="Write a greeting where asked (a demo plugin fix)", plan=plan,
                params=(Param("who", "Whom to greet."), Param("times", "How often.", kind="int", minimum=1),
                        Param("into", "The file.", kind="path", metavar="FILE")))]
'''


def test_a_plugin_fix_is_a_command_with_its_own_options(tmp_path):
    """A fix a plugin registers (entry point group llmdoctor.fixes) is listed by `fix --help`,
    shows its options in `fix greet --help`, and runs as `fix greet` and as `fix --greet`."""
    import sys

    site = tmp_path / "plugin-site"
    site.mkdir()
    (site / "greetfix.py").write_text(PLUGIN_FIX)
    info = site / "greetfix-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greetfix\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[llmdoctor.fixes]\ngreet = greetfix:fixes\n")
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "llmdoctor", "fix", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    listed = " ".join(run("--help").stdout.split())  # as one line, whatever the terminal's width wrapped
    assert "greet [--who TEXT] [--times N] [--into FILE]" in listed and "a demo plugin fix" in listed
    assert "(from greetfix)" in listed
    helped = run("greet", "--help").stdout
    assert "--who TEXT" in helped and "--times INTEGER RANGE" in helped and "--into FILE" in helped
    assert "(from greetfix)" in helped
    out = tmp_path / "greeting.txt"
    done = run("greet", "--who", "world", "--times", "2", "--into", str(out), "--yes")
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "hello world x2"
    dry = run("--greet", "--who", "again", "--into", str(tmp_path / "other.txt"), "--dry-run")
    assert dry.returncode == 0 and "hello again" in dry.stdout and not (tmp_path / "other.txt").exists()
    bad = run("greet", "--times", "0", "--into", str(out))
    assert bad.returncode == 2 and "--times" in bad.stderr
