from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's own config, cache or plugins."""
    monkeypatch.setenv("LLMDOCTOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LLMDOCTOR_CACHE_DIR", str(tmp_path / "llmdoctor-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    # no test reaches beyond 127.0.0.1: the network tests switch this off and point every
    # endpoint (HF_ENDPOINT, LLMDOCTOR_NET_TARGETS) at servers they run themselves
    monkeypatch.setenv("LLMDOCTOR_OFFLINE", "1")
    for name in ("HF_ENDPOINT", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "HF_HUB_OFFLINE", "PIP_INDEX_URL", "PIP_CONFIG_FILE", "PIP_CERT", "HF_HUB_DISABLE_XET",
                 "LLMDOCTOR_SHELL"):
        monkeypatch.delenv(name, raising=False)


def pyenv_python(version: str) -> str | None:
    """A pyenv interpreter of the given minor version, if this machine has one."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))
    return found[-1] if found else None


def make_venv(path: Path, python: str = sys.executable, pip: bool = False) -> Path:
    """A real venv made by the given interpreter; returns its python."""
    base = getattr(sys, "_base_executable", None) if python == sys.executable else None
    args = [base or python, "-m", "venv", str(path)]
    if not pip:
        args.append("--without-pip")
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    return path / "bin" / "python"


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True, timeout=60)
    return Path(out.stdout.strip())


def outer_site_packages(python: Path) -> None:
    """Let a test venv import llmdoctor and its dependencies from the environment running
    the tests (site.addsitedir also runs that environment's .pth files, so an editable
    install works too)."""
    dirs = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]
    lines = [f"import site; site.addsitedir({d!r})" for d in dirs]
    (site_packages(python) / "zz_outer.pth").write_text("\n".join(lines) + "\n")


def install_fake_dist(site: Path, name: str, version: str, requires=(), module: str | None = None,
                      code: str = "", entry_points: str = "") -> None:
    """Write a distribution into site-packages as an installer would: a module plus a
    .dist-info folder with METADATA (and entry_points.txt)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(meta) + "\n")
    (info / "INSTALLER").write_text("pip\n")
    if entry_points:
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module:
        pkg = site / module
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").write_text(textwrap.dedent(code))
    (info / "RECORD").write_text("")


def build_demo_plugin_site(tmp_path: Path, name: str, code: str) -> Path:
    """A folder with a plugin module and its dist-info, as `pip install --target` leaves it;
    put it on PYTHONPATH to have llmdoctor discover the plugin's entry point."""
    site = tmp_path / f"{name}-site"
    install_fake_dist(site, name, "0.1", entry_points=f"[llmdoctor.checks]\n{name} = {name}:checks\n")
    (site / f"{name}.py").write_text(textwrap.dedent(code))
    return site


# --- servers and clients on 127.0.0.1 for the network tests -----------------------------------

@pytest.fixture
def online(monkeypatch, tmp_path):
    """Network probes on, every endpoint one of the test's own (LLMDOCTOR_NET_TARGETS empty:
    no mirror, xet, pip or PyTorch host beyond 127.0.0.1), HOME a fresh directory."""
    monkeypatch.delenv("LLMDOCTOR_OFFLINE", raising=False)
    monkeypatch.setenv("LLMDOCTOR_NET_TARGETS", "")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture(scope="module")
def ca():
    """A TLS-intercepting proxy's CA, made by trustme."""
    import trustme

    return trustme.CA(organization_name="Example Corp TLS Inspection")


@pytest.fixture
def hub_venv(venv):
    """A real venv whose Python sees this test environment's huggingface_hub."""
    py = venv()
    outer_site_packages(py)
    return py


@pytest.fixture
def venv(tmp_path):
    """Factory: a fresh real venv (no pip) under tmp_path."""
    made = []

    def factory(name="venv", python=sys.executable):
        py = make_venv(tmp_path / name, python)
        made.append(py)
        return py

    return factory


# --- a second OS user, for the tests where permissions matter --------------------------------

OTHER_USER = "llmdoctor-other"
_DROPPED_CAPS = "-dac_override,-dac_read_search,-fowner"


def other_user() -> tuple[int, int]:
    """(uid, gid) of a second, unprivileged OS user: ``llmdoctor-other``, created when the
    tests run as root and it does not exist yet. Skips the test when there is none."""
    import pwd
    import shutil as _shutil

    try:
        entry = pwd.getpwnam(OTHER_USER)
    except KeyError:
        if os.geteuid() != 0 or not _shutil.which("useradd"):
            pytest.skip("no second OS user can be created here (not root, or no useradd)")
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
                              capture_output=True, text=True, timeout=60)
        if made.returncode not in (0, 9):  # 9: it was created meanwhile
            pytest.skip(f"useradd failed: {made.stderr.strip()}")
        entry = pwd.getpwnam(OTHER_USER)
    return entry.pw_uid, entry.pw_gid


def drop_privileges_argv() -> list[str]:
    """A prefix that runs a command without the privileges that let root read and write any
    file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so that file permissions hold for
    it as for an ordinary user; nothing when the tests do not run as root. (Running the
    interpreter as the second user instead would need it to be executable by that user, which
    a pyenv Python under a private /root is not.)"""
    import shutil as _shutil

    if os.geteuid() != 0:
        return []
    if not _shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make permissions hold")
    return ["setpriv", f"--inh-caps={_DROPPED_CAPS}", f"--bounding-set={_DROPPED_CAPS}"]


def readable_by_other_user(path: str | os.PathLike) -> bool:
    """Whether the second OS user can open ``path`` for reading (checked in a forked child
    that becomes that user: only system calls run there, no import)."""
    uid, gid = other_user()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.close(os.open(os.fspath(path), os.O_RDONLY))
            code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
