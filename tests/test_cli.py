import json
import subprocess
import sys

from click.testing import CliRunner

from llmdoctor.cli import cli

HEAVY = ("torch", "transformers", "huggingface_hub", "rich", "psutil", "requests", "pynvml", "packaging")


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_help_documents_exit_codes_and_imports_nothing_heavy():
    code = ("import sys\nfrom llmdoctor.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out
    assert "Exit codes:" in out and "3  internal error" in out


def test_check_json_is_one_document_with_the_envelope():
    result = invoke("check", "--json", "--offline")
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1
    assert set(data) >= {"target", "facts", "findings", "timing", "summary"}
    assert data["target"]["executable"]
    assert {"system", "target", "target.imports"} <= set(data["facts"])
    for f in data["findings"]:
        assert set(f) >= {"id", "category", "status", "title", "detail", "fix", "docs"}
    assert result.exit_code in (0, 1)


def test_replay_gives_the_same_findings(tmp_path):
    first = invoke("check", "--json", "--offline")
    saved = tmp_path / "report.json"
    saved.write_text(first.stdout)
    again = invoke("check", "--json", "--replay", str(saved))
    strip = lambda d: [(f["id"], f["status"], f["title"], f["fix"]) for f in d["findings"]]
    assert strip(json.loads(again.stdout)) == strip(json.loads(first.stdout))
    assert json.loads(again.stdout)["replayed_from"]["created"] == json.loads(first.stdout)["created"]
    assert again.exit_code == first.exit_code


def test_replay_of_a_report_with_a_crashed_probe_keeps_the_finding(tmp_path):
    data = json.loads(invoke("check", "--json", "--offline").stdout)
    data["facts"]["target"] = {"value": None, "reason": "the target interpreter was killed by SIGSEGV during start-up",
                               "kind": "crash", "duration_s": 0.1}
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(data))
    out = json.loads(invoke("check", "--json", "--replay", str(saved)).stdout)
    ids = {f["id"]: f["status"] for f in out["findings"]}
    assert ids["probe.target.crash"] == "fail" and ids["python.dependencies"] == "skip"


def test_bad_replay_files_are_usage_errors(tmp_path):
    missing = invoke("check", "--replay", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert invoke("check", "--replay", str(garbage)).exit_code == 2
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    result = invoke("check", "--replay", str(other))
    assert result.exit_code == 2 and "not an llmdoctor report" in result.output
    newer = tmp_path / "newer.json"
    newer.write_text('{"schema_version": 99, "facts": {}}')
    assert "upgrade llmdoctor" in invoke("check", "--replay", str(newer)).output


def test_replay_survives_garbage_inside_the_facts(tmp_path):
    data = json.loads(invoke("check", "--json", "--offline").stdout)
    data["facts"]["system"]["value"] = {"os": "Linux", "disks": "not a list of disks", "bogus": 1}
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(data))
    result = invoke("check", "--json", "--replay", str(saved))
    assert result.exit_code in (0, 1)
    json.loads(result.stdout)


def test_list_shows_every_check_with_source_and_description():
    out = invoke("check", "--list").stdout
    line = next(l for l in out.splitlines() if l.startswith("python.dependencies"))
    assert "builtin" in line and "pip check" in line


def test_only_and_skip_select_checks():
    data = json.loads(invoke("check", "--json", "--only", "system.*", "--skip", "system.cpu").stdout)
    ids = {f["check"] for f in data["findings"]}
    assert ids and all(i.startswith("system.") for i in ids) and "system.cpu" not in ids
    from llmdoctor.check.flow import selected_checks

    needed = {n for c in selected_checks(["system.*"], ["system.cpu"]).checks for n in c.needs}
    assert set(data["facts"]) == needed and "gpu" not in needed  # only the probes the chosen checks need ran


def test_output_without_a_tty_has_no_colour_codes():
    out = invoke("check", "--offline").stdout
    assert "\x1b[" not in out
    assert out.rstrip().splitlines()[-1].startswith(("No problems found", "1 problem", "2 problems", "3 problems",
                                                     "4 problems", "5 problems"))


def test_report_is_markdown_for_a_github_issue(tmp_path):
    out = invoke("report", "--offline").stdout
    assert out.startswith("## llmdoctor report")
    assert "| status | check | finding | fix |" in out and "<details>" in out
    target = tmp_path / "r.md"
    assert invoke("report", "--offline", "-o", str(target)).exit_code == 0
    assert target.read_text().startswith("## llmdoctor report")


def test_internal_error_exits_3(monkeypatch):
    import llmdoctor.check.flow as doctor
    from llmdoctor.cli import main

    def explode(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(doctor, "diagnose", explode)
    try:
        main(["check"])
    except SystemExit as exc:
        assert exc.code == 3
    else:  # pragma: no cover
        raise AssertionError("expected SystemExit")


def test_python_m_llmdoctor_works():
    out = subprocess.run([sys.executable, "-m", "llmdoctor", "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "llmdoctor, version 0.1.0"


def test_no_color_and_pipes_turn_colour_off(monkeypatch):
    from llmdoctor import cli as cli_mod

    class TTY:
        def isatty(self):
            return True

    monkeypatch.setattr(cli_mod.sys, "stdout", TTY())
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert cli_mod._color() is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli_mod._color() is False


def test_markdown_lists_distributions_compactly():
    out = invoke("report", "--offline").stdout
    assert '"distributions": [' in out and "==" in out and '"requires"' not in out
