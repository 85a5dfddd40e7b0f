"""Fix commands written for the user's shell (llmdoctor/command.py, llmdoctor/report/shells.py).

"Runs as printed" is proven per shell as far as this machine allows: POSIX lines are run by
sh (dash) and by an interactive bash (history expansion on), against a stub program at a path with a space
and a quote; PowerShell and cmd lines (no Windows, no pwsh here) are read back by
tests/shell_parsers.py, which follows those shells' quoting rules, and must give back the
structured argv and variables. Then the issue's end-to-end case: the recorded Windows report,
whose environment is under C:\\Users\\Jane Doe\\, replayed through the CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from llmdoctor.cli import cli
from llmdoctor.command import Command, FixLine, Ref, line, run, setvar, unset
from llmdoctor.model import Finding, Status
from llmdoctor.report.shells import argv_line, choose, render
from shell_parsers import Unparsed, cmd_steps, expected_steps, flatten_env, posix_steps, ps_steps

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"
JANE = "C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe"
WIN_ENV = {"PATH": "C:\\Windows\\system32", "CUDA_HOME": "C:\\CUDA\\v12.4", "USER": "jane"}


def read_back(text: str, shell: str, env: dict) -> list[tuple]:
    if shell == "powershell":
        return ps_steps(text, env)
    if shell == "cmd":
        return cmd_steps(text, env)
    return posix_steps(text, env)


def want(command: Command, shell: str, env: dict) -> list[tuple]:
    steps = expected_steps(command, env)
    return steps if shell == "sh" else flatten_env(steps)


# --- the issue's own line -------------------------------------------------------------

def test_the_issue_pip_line_in_each_shell():
    cmd = run(JANE, "-m", "pip", "install", "tokenizers<0.19,>=0.14")
    assert render(cmd, "bash") == "'C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe' -m pip install " \
                                  "'tokenizers<0.19,>=0.14'"
    assert render(cmd, "powershell") == "& 'C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe' -m pip install " \
                                        "'tokenizers<0.19,>=0.14'"
    assert render(cmd, "cmd") == '"C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe" -m pip install ' \
                                 '"tokenizers<0.19,>=0.14"'
    for shell in ("sh", "powershell", "cmd"):
        assert read_back(render(cmd, shell), shell, {}) == want(cmd, shell, {})
    # what shlex.quote gave before: cmd reads "<" and ">" as redirections, PowerShell a string, not a command
    with pytest.raises(Unparsed):
        cmd_steps("'C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe' -m pip install 'tokenizers<0.19,>=0.14'", {})
    with pytest.raises(Unparsed):
        ps_steps("'C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe' -m pip install 'tokenizers<0.19,>=0.14'", {})


def test_variables_in_each_shell():
    cmd = unset("TRANSFORMERS_CACHE") + setvar("HF_HOME", "D:\\hf cache") + setvar(
        "PATH", Ref("CUDA_HOME"), "\\bin;", Ref("PATH"))
    assert render(cmd, "sh") == "unset TRANSFORMERS_CACHE && export HF_HOME='D:\\hf cache' " \
                                'PATH="$CUDA_HOME\\\\bin;$PATH"'
    assert render(cmd, "powershell") == "Remove-Item Env:TRANSFORMERS_CACHE; $env:HF_HOME = 'D:\\hf cache'; " \
                                        '$env:PATH = "${env:CUDA_HOME}\\bin;${env:PATH}"'
    assert render(cmd, "cmd") == 'set "TRANSFORMERS_CACHE=" && set "HF_HOME=D:\\hf cache" && ' \
                                 'set "PATH=%CUDA_HOME%\\bin;%PATH%"'
    for shell in ("sh", "powershell", "cmd"):
        assert read_back(render(cmd, shell), shell, WIN_ENV) == want(cmd, shell, WIN_ENV), shell
    # a value that refers to a variable set in the same line: two statements, so the new value is used
    two = setvar("CUDA_HOME", "/usr/local/cuda-12.4") + setvar("PATH", Ref("CUDA_HOME"), "/bin:", Ref("PATH"))
    out = subprocess.run(["sh", "-c", render(two, "sh") + ' && printf %s "$PATH"'], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=10).stdout
    assert out == "/usr/local/cuda-12.4/bin:/usr/bin:/bin"


# --- POSIX: run for real ------------------------------------------------------------------

STUB = """#!/bin/sh
for a in "$@"; do printf '%s\\0' "$a"; done > "$ARGV_OUT"
printf '%s' "${MAX_JOBS-unset}" > "$ARGV_OUT.env"
"""
NASTY = ["tokenizers<0.19,>=0.14", "a b", "$HOME", "`id`", "$(id)", "!!", "x!y", "%PATH%", "é ü 中", "it's",
         '"q"', "back\\slash", "a|b&c;d", "*", "~", "#x", "", "-m", "--index-url=https://x/y?z=1&w=2"]


@pytest.fixture
def stub(tmp_path):
    folder = tmp_path / "Jane Doe's env" / "bin"
    folder.mkdir(parents=True)
    program = folder / "python"
    program.write_text(STUB)
    program.chmod(0o755)
    return program


def _run_sh(shell: list[str], text: str, tmp_path) -> tuple[list[str], str]:
    """Run ``text`` as a user would: sh -c, or an interactive bash reading it as a typed line
    (history expansion on: an unquoted or double-quoted ! would be replaced)."""
    out = tmp_path / "argv"
    if out.exists():
        out.unlink()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/home/jane", "ARGV_OUT": str(out), "HISTFILE": "/dev/null",
           "LC_ALL": "C.UTF-8"}
    if shell[-1] == "-i":  # the first line gives !! something to expand to
        done = subprocess.run(shell, input=("true\n" + text + "\n").encode(), capture_output=True, timeout=10,
                              env=env)
    else:
        done = subprocess.run([*shell, text.encode()], capture_output=True, timeout=10, env=env)
    assert done.returncode == 0, (text, done.stderr.decode(errors="replace"))
    raw = out.read_bytes().decode()
    return raw.split("\0")[:-1], (tmp_path / "argv.env").read_bytes().decode()


SHELLS_HERE = [s for s in (["sh", "-c"], ["bash", "--norc", "--noprofile", "-i"]) if shutil.which(s[0])]


@pytest.mark.parametrize("shell", SHELLS_HERE, ids=lambda s: s[0])
def test_posix_lines_run_as_printed(stub, tmp_path, shell):
    cmd = run(str(stub), *NASTY, env={"MAX_JOBS": "6"})
    text = render(cmd, "bash")
    assert subprocess.run([shell[0], "-n", "-c", text], timeout=10).returncode == 0  # the syntax alone
    argv, jobs = _run_sh(shell, text, tmp_path)
    assert argv == NASTY and jobs == "6"
    # a set, then the program: the variable reaches it
    argv, jobs = _run_sh(shell, render(setvar("MAX_JOBS", "it's 4") + run(str(stub), "x"), "sh"), tmp_path)
    assert argv == ["x"] and jobs == "it's 4"


# --- the three shells over any argv ---------------------------------------------------------

#: printable text with everything the shells treat specially, unicode and typographic quotes
WORD = st.text(st.sampled_from(list("aZ09 _-./\\:=+,;'\"`$%!^&|<>()[]{}*?~#@") +
                               ["é", "中", "🙂", "\u2018", "\u2019", "\u201c", "\u201d", "\u201e", "\u00a0"]),
               max_size=12)
PROGRAM = st.sampled_from([JANE, "C:\\Program Files\\NVIDIA Corporation\\nvidia-smi.exe", "hf", "/opt/x y/bin/python",
                           "llmdoctor", "for", "7z"])
NUMBERS = st.sampled_from(["30d", "1kb", "007", "0x10", "1e3", "2", "1.50", "12345678901", "-1", "--", "-", ".5"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=PROGRAM, args=st.lists(WORD | NUMBERS, max_size=5))
def test_powershell_and_cmd_read_back_any_argv(program, args):
    cmd = run(program, *args)
    for shell in ("powershell", "cmd"):
        assert read_back(render(cmd, shell), shell, WIN_ENV) == [("run", [program, *args], {})], shell


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["HF_HOME", "NCCL_DEBUG", "X1"]), value=WORD.filter(bool), refs=st.booleans())
def test_powershell_and_cmd_read_back_any_variable(name, value, refs):
    parts = (value, Ref("PATH"), value) if refs else (value,)
    cmd = setvar(name, *parts) + run("hf", "env") + unset(name)
    for shell in ("powershell", "cmd"):
        if shell == "cmd" and refs and re.search(r'["%]', value):
            continue  # cmd cannot quote a literal % or " next to a %REFERENCE% (llmdoctor emits none)
        assert read_back(render(cmd, shell), shell, WIN_ENV) == want(cmd, shell, WIN_ENV), shell


@pytest.mark.skipif(not SHELLS_HERE, reason="no sh")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(args=st.lists(WORD, max_size=5), value=WORD)
def test_posix_runs_any_argv_and_value(stub, tmp_path, args, value):
    text = render(setvar("MAX_JOBS", value) + run(str(stub), *args), "sh")
    for shell in SHELLS_HERE:
        assert _run_sh(shell, text, tmp_path) == (args, value)
    assert posix_steps(text, {}) == [("set", "MAX_JOBS", value), ("run", [str(stub), *args], {})]


# --- which shell ----------------------------------------------------------------------------

def test_the_shell_comes_from_the_report_facts():
    from llmdoctor.platforms.shell import from_facts
    from llmdoctor.probes.platform import ShellFacts

    assert from_facts(ShellFacts(parents=("python.exe", "llmdoctor.exe", "pwsh.exe")), "Windows") == "pwsh"
    assert from_facts(ShellFacts(parents=("python.exe", "cmd.exe", "explorer.exe")), "Windows") == "cmd"
    assert from_facts(ShellFacts(parents=("python3", "-bash", "sshd")), "Linux") == "bash"
    assert from_facts(ShellFacts(parents=("Code.exe",), variables={"MSYSTEM": "MINGW64"}), "Windows") == "bash"
    assert from_facts(ShellFacts(parents=("Code.exe",), variables={"PROMPT": "$P$G"}), "Windows") == "cmd"
    assert from_facts(ShellFacts(parents=("Code.exe",)), "Windows") == "powershell"
    assert from_facts(ShellFacts(variables={"SHELL": "/usr/bin/zsh"}), "Darwin") == "zsh"
    assert from_facts(ShellFacts(detected="pwsh", parents=("bash",)), "Linux") == "pwsh"  # the probe's own answer
    assert from_facts(None, "Windows") == "powershell" and from_facts(None, "Linux") is None
    # --shell wins, then the facts, then this machine
    assert choose("cmd", None, lambda: "zsh") == "cmd" and choose(None, None, lambda: "zsh") == "zsh"
    assert choose(None, None, lambda: None) == "sh"


def _replay(name: str, *args: str, env: dict | None = None) -> dict:
    result = CliRunner().invoke(cli, ["check", "--replay", str(FIXTURES / f"{name}.json"), "--json", *args],
                                env={"LLMDOCTOR_SHELL": None, **(env or {})})
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("name,args,env,shell", [
    ("windows", (), None, "powershell"),  # the report's parents: powershell.exe under Windows Terminal
    ("windows", ("--shell", "cmd"), None, "cmd"),
    ("windows", (), {"LLMDOCTOR_SHELL": "pwsh"}, "pwsh"),
    ("wsl", (), None, "bash"),
    ("macos_rosetta", (), None, "zsh"),
])
def test_a_replay_writes_fixes_for_the_senders_shell(name, args, env, shell):
    assert _replay(name, *args, env=env)["shell"] == shell


# --- the issue's end to end: a Windows report replayed ---------------------------------------

def _segments(fix: FixLine, text: str) -> list[tuple[Command, str]]:
    """Each command of a fix line with the text it was printed as (the words are known)."""
    out, pos = [], 0
    parts = fix.parts
    for i, part in enumerate(parts):
        if isinstance(part, str):
            assert text.startswith(part, pos), (text, part)
            pos += len(part)
            continue
        nxt = next((p for p in parts[i + 1:] if isinstance(p, str)), None)
        end = text.index(nxt, pos) if nxt else len(text)
        out.append((part, text[pos:end]))
        pos = end
    return out


def _every_command_reads_back(doc: dict, shell: str, env: dict) -> int:
    n = 0
    for f in doc["findings"]:
        if "command" not in f:
            continue
        fix = FixLine.from_json(f["command"])
        for command, text in _segments(fix, f["fix"]):
            dialect = command.shell or ("sh" if shell in ("sh", "bash", "zsh") else
                                        "powershell" if shell in ("powershell", "pwsh") else shell)
            assert read_back(text, dialect, env) == want(command, dialect, env), (f["id"], text)
            n += 1
    return n


@pytest.mark.parametrize("shell", ["powershell", None, "cmd"])
def test_every_fix_of_the_windows_report_runs_in_its_shell_as_printed(shell):
    doc = _replay("windows", *(("--shell", shell) if shell else ()))
    read_as = shell or "powershell"
    assert _every_command_reads_back(doc, read_as, WIN_ENV) >= 6
    lines = [f["fix"] for f in doc["findings"] if f.get("fix")]
    assert any("C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe" in x for x in lines)
    # nothing of a POSIX shell, and no Linux package manager, for a Windows user
    for text in lines:
        assert not re.search(r"\bsudo\b|\bapt(-get)? |\bdnf |(^|&& |; |: )(export|unset) |\bchown\b|mkdir -p|\$\(|~/",
                             text), text
    # what Windows PowerShell 5.1 passes wrongly to a program (before 7.3's Standard argument passing):
    # an empty word, a word with a double quote, a word with a space that ends in a backslash
    for f in doc["findings"]:
        for command in FixLine.from_json(f["command"]).commands if "command" in f else ():
            for step in command.steps:
                for word in getattr(step, "argv", ()):
                    assert word and '"' not in word and not (" " in word and word.endswith("\\")), (f["id"], word)
    # no program that PowerShell would run as one of its own aliases instead
    aliases = {"curl", "wget", "ls", "rm", "mv", "cp", "cat", "kill", "sort", "diff", "tee", "sc", "echo", "ps",
               "mount", "man", "set", "where", "move", "del", "copy"}
    programs = {FixLine.from_json(f["command"]).commands[0].steps[0].argv[0] for f in doc["findings"]
                if "command" in f and hasattr(FixLine.from_json(f["command"]).commands[0].steps[0], "argv")}
    assert not programs & aliases


def test_the_terminal_prints_the_same_windows_lines():
    doc = _replay("windows")
    result = CliRunner().invoke(cli, ["check", "--replay", str(FIXTURES / "windows.json")],
                                env={"LLMDOCTOR_SHELL": None})
    printed = [line.strip()[len("fix: "):] for line in result.stdout.splitlines() if line.strip().startswith("fix: ")]
    shown = {f["fix"] for f in doc["findings"] if f.get("fix") and Status.parse(f["status"]) >= Status.WARN}
    assert printed and set(printed) == shown
    assert "& 'C:\\Users\\Jane Doe\\envs\\glm\\Scripts\\python.exe' -m pip install" in result.stdout


@pytest.mark.parametrize("name", ["wsl", "macos_rosetta"])
def test_every_fix_of_a_posix_report_runs_in_sh(name, tmp_path):
    doc = _replay(name)
    env = {"PATH": "/usr/bin:/bin", "LIBRARY_PATH": "", "HOME": "/home/jane", "USER": "jane"}
    assert _every_command_reads_back(doc, "sh", env) >= (1 if name == "wsl" else 0)
    for f in doc["findings"]:
        for command, text in _segments(FixLine.from_json(f["command"]), f["fix"]) if "command" in f else ():
            if command.shell is None:
                assert subprocess.run(["sh", "-n", "-c", text], timeout=10).returncode == 0, text
    if name == "macos_rosetta":
        assert not any(re.search(r"\b(sudo apt|apt-get)\b", f.get("fix") or "") for f in doc["findings"])


def test_a_report_of_this_machine_reads_back_in_every_shell():
    """The recorded Linux reports: every fix command reads back in all three shells."""
    real = sorted((Path(__file__).parent / "fixtures" / "real").rglob("*.json"))[:6]
    assert real
    total = 0
    for path in real:
        for shell, env in (("sh", {"PATH": "/usr/bin", "HOME": "/home/u", "USER": "u", "CUDA_HOME": "/usr/local/cuda",
                                   "LIBRARY_PATH": ""}), ("powershell", WIN_ENV), ("cmd", WIN_ENV)):
            result = CliRunner().invoke(cli, ["check", "--replay", str(path), "--json", "--shell", shell])
            if result.exit_code not in (0, 1):
                continue
            total += _every_command_reads_back(json.loads(result.stdout), shell, env)
    assert total > 0


# --- no apt where it does not run ----------------------------------------------------------

def test_no_apt_line_outside_a_debian_linux():
    from factories import facts, findings_of, system, target, toolkit
    from llmdoctor.checks import python as py, toolkit as tk
    from llmdoctor.probes.toolkit import Tool

    t = target(has_python_h=False)
    gcc = toolkit(("12.1.105", "/usr/local/cuda-12.1/bin/nvcc", "PATH"), gcc="13.2.0")
    nocc = toolkit(("12.1.105", "/usr/local/cuda-12.1/bin/nvcc", "PATH"))
    from dataclasses import replace

    nocc = replace(nocc, gcc=Tool("gcc", None, None, "not found"))
    cases = {"ubuntu": system(), "fedora": system(os_release="Fedora Linux 40", os_like=("fedora",)),
             "arch": system(os_release="Arch Linux", os_like=("arch",)),
             "windows": system(os="Windows", os_release="Windows-10-10.0.22631-SP0"),
             "macos": system(os="Darwin", os_release="macOS-14.5-arm64-arm-64bit")}
    for where, s in cases.items():
        found = [*findings_of(py.headers_check, facts(target=t, system=s)),
                 *findings_of(tk.host_compiler_check, facts(cuda=gcc, system=s)),
                 *findings_of(tk.host_compiler_check, facts(cuda=nocc, system=s))]
        from llmdoctor.report.shells import fix_text

        texts = [fix_text(f) or "" for f in found]
        assert all(("apt " in x) == (where == "ubuntu") for x in texts if "install" in x), (where, texts)
        assert any("dnf " in x for x in texts) == (where == "fedora"), (where, texts)
        assert (where in ("ubuntu", "fedora")) or not any("sudo" in x for x in texts), (where, texts)


# --- old reports, other readers, fix plans -------------------------------------------------

def test_an_old_reports_fix_string_is_shown_as_it_is():
    old = {"id": "python.dependency-conflict", "status": "fail", "title": "t", "fix": "pip install 'x<2'"}
    f = Finding.from_dict(old)
    assert f.command is None and f.fix == "pip install 'x<2'" and f.has_fix
    new = Finding(id="a.b", category="a", status=Status.FAIL, title="t",
                  command=line(run(JANE, "-m", "pip", "install", "x<2"), "   (then: ", unset("X"), ")"))
    data = new.to_dict()
    assert data["fix"] is None and Finding.from_dict(json.loads(json.dumps(data))) == new
    damaged = {**data, "fix": "shown instead", "command": [{"steps": [{"run": []}]}]}
    back = Finding.from_dict(damaged)
    assert back.command is None and back.fix == "shown instead"


def test_a_fix_plan_shows_its_commands_for_the_shell():
    from llmdoctor.fix.model import Plan, show

    plan = Plan(fix="torch", title="Install torch", commands=((JANE, "-m", "pip", "install", "torch==2.4.0+cu124",
                                                               "--index-url", "https://download.pytorch.org/whl/cu124"),))
    for shell in ("powershell", "cmd", "sh"):
        text = show(plan, shell)
        shown = text.split("Will run:\n  ", 1)[1].splitlines()[0]
        assert shown == argv_line(plan.commands[0], shell)
        assert read_back(shown, shell, {}) == [("run", list(plan.commands[0]), {})]


def test_fix_takes_shell_and_the_check_help_names_it():
    result = CliRunner().invoke(cli, ["check", "--help"])
    assert "--shell [sh|bash|zsh|powershell|pwsh|cmd]" in result.output
    result = CliRunner().invoke(cli, ["fix", "max-jobs", "--help"])
    assert "--shell" in result.output


def test_every_fix_template_in_the_data_files_is_words_and_commands():
    """checks/data and compat/data hold fixes as data too: each becomes a fix line that every
    shell reads back."""
    from llmdoctor.command import template
    from scenarios import unreadable_commands

    fields = {"pip": ("/env/bin/python", "-m", "pip"), "dist": "numpy", "jobs": "4", "version": "2.8.3",
              "tmp": "/home/u/tmp"}
    found = []
    for path in [*Path(__file__).parent.parent.joinpath("checks", "data").glob("*.json"),
                 *Path(__file__).parent.parent.joinpath("llmdoctor", "compat", "data").glob("*.json")]:
        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in ("fix", "also_run", "build_cmd") and value is not None:
                        found.append((path.name, template(value, fields)))
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)
        walk(json.loads(path.read_text()))
    assert len(found) >= 15
    fake = [Finding(id=name, category="x", status=Status.FAIL, title="t", command=fix) for name, fix in found
            if fix.commands]
    assert len(fake) >= 10 and unreadable_commands(fake) == []


@pytest.mark.parametrize("other", ["fish", "nu", "tcsh"])
def test_a_shell_llmdoctor_does_not_write_for_is_told_its_lines_are_posix(tmp_path, other):
    """fish, nushell, tcsh users get POSIX lines (fish has no `unset`, nushell no `export`):
    the report says so instead of claiming the lines are written for that shell."""
    doc = json.loads((FIXTURES / "wsl.json").read_text(encoding="utf-8"))
    doc["facts"]["platform"]["value"]["shell"]["detected"] = other
    path = tmp_path / "report.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    env = {"LLMDOCTOR_SHELL": None}
    as_json = json.loads(CliRunner().invoke(cli, ["check", "--replay", str(path), "--json"], env=env).stdout)
    assert as_json["shell"] == "sh"
    assert any(f.get("fix", "") and "export " in f["fix"] for f in as_json["findings"])
    verbose = CliRunner().invoke(cli, ["check", "--replay", str(path), "-v"], env=env).stdout
    said = " ".join(verbose.split())
    assert f"Fix commands are written for POSIX sh ({other} is not a shell llmdoctor writes for" in said, said[-400:]
    markdown = CliRunner().invoke(cli, ["report", "--replay", str(path)], env=env).stdout
    assert f"fix commands written for POSIX sh ({other} is not a shell llmdoctor writes for" in markdown
