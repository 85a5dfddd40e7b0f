import json
import subprocess
import zipfile
from importlib.metadata import EntryPoint

from conftest import make_venv, outer_site_packages
from llmdoctor.model import Status
from llmdoctor.plugins import CHECK_GROUP, discover, load_checks, select


def ep(name, value):
    return EntryPoint(name, value, CHECK_GROUP)


def test_builtins_register_through_the_entry_point():
    loaded = load_checks()
    ids = {c.id for c in loaded.checks}
    assert {"python.dependencies", "system.shm"} <= ids
    assert all(c.source == "builtin" for c in loaded.checks if c.id.startswith(("python.", "system.")))
    assert loaded.problems == ()


def test_a_plugin_that_fails_to_import_is_an_error_finding_and_the_rest_load():
    loaded = load_checks([ep("broken", "no_such_module_xyz:checks"), ep("builtin", "llmdoctor.checks:builtin_checks")])
    (problem,) = loaded.problems
    assert problem.status is Status.ERROR and problem.id == "plugin.broken.load-failed"
    assert "ModuleNotFoundError" in problem.title
    assert any(c.id == "system.shm" for c in loaded.checks)


def test_a_plugin_returning_the_wrong_type_is_an_error():
    loaded = load_checks([ep("weird", "os:getcwd")])
    assert loaded.problems[0].id == "plugin.weird.load-failed" and "Check" in loaded.problems[0].title


def test_autoload_off_keeps_only_builtins():
    names = [e.name for e in discover(environ={"LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD": "1"})]
    assert names == ["builtin"]


def test_only_and_skip_take_ids_and_globs():
    checks = load_checks().checks
    assert {c.id for c in select(checks, only=["system.*"])} == {c.id for c in checks if c.id.startswith("system.")}
    assert {c.id for c in select(checks, only=["python"], skip=["python.imports"])} == {
        c.id for c in checks if c.id.startswith("python.")} - {"python.imports"}


PLUGIN_CODE = '''
from llmdoctor.model import Status, check

@check("vllm.demo", needs=["target"])
def demo(facts, c):
    """Demo third-party check: says which Python it saw."""
    yield c.finding(Status.WARN, "demo plugin saw Python " + facts.value("target").python_version)

def checks():
    return [demo]
'''


def build_wheel(path, name="llmdoctor_demo_plugin", version="0.1"):
    whl = path / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{name}.py", PLUGIN_CODE)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/entry_points.txt", f"[{CHECK_GROUP}]\ndemo = {name}:checks\n")
        z.writestr(f"{info}/RECORD", "")
    return whl


def test_a_plugin_distribution_installed_with_pip_runs_its_check(tmp_path):
    """The real path: pip installs a plugin wheel into a venv that has llmdoctor, and
    `llmdoctor check` there lists and runs its check."""
    py = make_venv(tmp_path / "v")
    # llmdoctor and its dependencies come from the test's own environment
    outer_site_packages(py)
    whl = build_wheel(tmp_path)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(whl)],
                   check=True, capture_output=True, timeout=300)
    listed = subprocess.run([str(py), "-m", "llmdoctor", "check", "--list", "--json"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    rows = {r["id"]: r for r in json.loads(listed.stdout)["checks"]}
    assert rows["vllm.demo"]["source"] == "llmdoctor_demo_plugin"
    assert rows["vllm.demo"]["description"] == "Demo third-party check: says which Python it saw."
    run = subprocess.run([str(py), "-m", "llmdoctor", "check", "--only", "vllm.*", "--json", "--python", str(py)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    report = json.loads(run.stdout)
    (finding,) = report["findings"]
    assert finding["id"] == "vllm.demo" and finding["status"] == "warn"
    assert run.returncode == 0
    strict = subprocess.run([str(py), "-m", "llmdoctor", "check", "--only", "vllm.*", "--strict", "--python", str(py)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert strict.returncode == 1
    # autoload off: the plugin is not loaded
    off = subprocess.run([str(py), "-m", "llmdoctor", "check", "--list", "--json"], capture_output=True, text=True,
                         timeout=60, env={"LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert "vllm.demo" not in {r["id"] for r in json.loads(off.stdout)["checks"]}
