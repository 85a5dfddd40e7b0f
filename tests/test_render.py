"""Golden output: the terminal renderer's exact text for a fixed report."""

import os
from pathlib import Path

from llmdoctor.check.flow import selected_checks
from llmdoctor.facts import Facts
from llmdoctor.model import Finding, Status
from llmdoctor.report.render import footer, terminal
from llmdoctor.report.envelope import Report

GOLDEN = Path(__file__).parent / "golden"

REPORT = Report(
    target={"executable": "/home/u/.venvs/llm/bin/python", "python_version": "3.11.7", "kind": "venv"},
    facts=Facts(),
    findings=(
        Finding("python.version", "python", Status.OK, "Python 3.11.7 (supported until 2027-10)",
                docs="https://devguide.python.org/versions/", duration_s=0.001),
        Finding("python.dependency-conflict", "python", Status.FAIL,
                "tokenizers 0.21.0 is installed, but transformers 4.40.0 needs <0.20,>=0.19",
                detail="All requirements on tokenizers together: <0.20,>=0.19.",
                fix="/home/u/.venvs/llm/bin/python -m pip install 'tokenizers<0.20,>=0.19'",
                docs="https://pip.pypa.io/en/stable/topics/dependency-resolution/", duration_s=0.002),
        Finding("system.shm", "system", Status.WARN,
                "/dev/shm is only 64.0 MiB inside this docker container: DataLoader workers die with 'Bus error' "
                "and NCCL cannot allocate", fix="docker run --shm-size=1g ... (or --ipc=host)",
                docs="https://github.com/pytorch/pytorch/issues/5040", duration_s=0.0),
        Finding("system.swap", "system", Status.INFO, "No swap", duration_s=0.0),
        Finding("gpu.presence", "gpu", Status.SKIP, "No NVIDIA GPU", duration_s=0.0),
    ),
    timing={"total_s": 0.25},
    created="2026-11-22T12:00:00+00:00",
    tool_version="0.1.0",
    categories=selected_checks().titles,  # the titles the built-in checks give their categories
)


def check_golden(name: str, text: str) -> None:
    """The rendered text equals the committed golden file. A missing golden file fails: with
    LLMDOCTOR_WRITE_GOLDEN=1 the test writes it instead, to be reviewed and committed."""
    path = GOLDEN / name
    if os.environ.get("LLMDOCTOR_WRITE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with LLMDOCTOR_WRITE_GOLDEN=1, review it, commit it"
    assert text == path.read_text()


def test_terminal_output_at_80_columns():
    check_golden("terminal_80.txt", terminal(REPORT, width=80, color=False, environ={}))


def test_terminal_verbose_output():
    check_golden("terminal_verbose.txt", terminal(REPORT, width=100, verbose=True, color=False, environ={}))


def test_ascii_symbols_when_the_terminal_is_not_utf8():
    check_golden("terminal_ascii.txt", terminal(REPORT, width=80, color=False, unicode=False, environ={}))


def test_colour_only_when_asked():
    assert "\x1b[" in terminal(REPORT, width=80, color=True, environ={})
    assert "\x1b[" not in terminal(REPORT, width=80, color=False, environ={})


def test_footer_counts_problems_and_categories():
    assert footer(list(REPORT.findings)) == "2 problems in 2 categories (1 failure, 1 warning)."
    assert footer([REPORT.findings[0]]) == "No problems found."


def test_category_symbol_is_the_worst_problem_else_ok_else_info():
    from llmdoctor.report.render import category_status

    f = lambda s: Finding("x", "c", s, "t")  # noqa: E731
    assert category_status([f(Status.OK), f(Status.SKIP), f(Status.INFO)]) is Status.OK
    assert category_status([f(Status.INFO), f(Status.SKIP)]) is Status.INFO
    assert category_status([f(Status.SKIP)]) is Status.SKIP
    assert category_status([f(Status.OK), f(Status.WARN)]) is Status.WARN


def test_a_plugin_category_is_headed_by_the_title_its_checks_declare():
    from llmdoctor.model import category_titles, check

    @check("vllm.python", category_title="vLLM serving")
    def demo(facts, c):
        """Demo."""
        yield c.finding(Status.WARN, "demo")

    report = Report(target={}, facts=Facts(), findings=tuple(demo.run(Facts())), categories=category_titles([demo]))
    assert "] vLLM serving" in terminal(report, width=80, color=False, environ={})
    untitled = Report(target={}, facts=Facts(), findings=tuple(demo.run(Facts())))
    assert "] Vllm" in terminal(untitled, width=80, color=False, environ={})
