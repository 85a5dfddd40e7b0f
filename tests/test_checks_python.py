from checks_under_test import packages, python  # noqa: F401  (see tests/checks_under_test.py)
from factories import clock, dist, facts, findings_of, imports, system, target
from llmdoctor.facts import load
from llmdoctor.model import Status
from llmdoctor.probes import TargetFailure
from llmdoctor.probes.python_env import ImportResult
from llmdoctor.report.shells import fix_text


def by_id(findings):
    return {f.id: f for f in findings}


def test_all_requirements_met_is_ok():
    t = target(distributions=(dist("transformers", "4.40.0", "tokenizers<0.20,>=0.19"), dist("tokenizers", "0.19.1")))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.status is Status.OK and f.id == "python.dependencies"
    assert "2 distributions" in f.title


def test_transformers_with_too_new_tokenizers_is_a_conflict_with_the_pip_fix():
    t = target(distributions=(dist("transformers", "4.40.0", "tokenizers<0.20,>=0.19"), dist("tokenizers", "0.21.0")))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.id == "python.dependency-conflict" and f.status is Status.FAIL
    assert f.title == "tokenizers 0.21.0 is installed, but transformers 4.40.0 needs <0.20,>=0.19"
    assert fix_text(f) == "/home/u/.venvs/llm/bin/python -m pip install 'tokenizers<0.20,>=0.19'"


def test_missing_dependency_names_who_needs_it():
    t = target(distributions=(dist("peft", "0.11.0", "accelerate>=0.21.0", "torch>=1.13.0"), dist("torch", "2.3.0")))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.id == "python.dependency-missing"
    assert f.title == "accelerate is missing: peft 0.11.0 needs >=0.21.0"
    assert fix_text(f).endswith("-m pip install 'accelerate>=0.21.0'")


def test_markers_are_evaluated_for_the_target_python_not_ours():
    t = target(distributions=(dist("foo", "1.0", 'tomli>=1; python_version < "3.11"', 'bar; extra == "dev"'),))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.status is Status.OK
    t38 = target(version_info=(3, 8, 18), markers={**t.markers, "python_version": "3.8", "python_full_version": "3.8.18"},
                 distributions=t.distributions)
    (f,) = findings_of(packages.dependencies_check, facts(target=t38))
    assert f.id == "python.dependency-missing" and "tomli" in f.title


def test_requirements_of_an_extra_asked_for_by_another_package_are_checked():
    t = target(distributions=(
        dist("trl", "0.9.0", "transformers[torch]>=4.31"),
        dist("transformers", "4.40.0", 'accelerate>=0.21.0; extra == "torch"'),
        dist("accelerate", "0.20.0"),
    ))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.id == "python.dependency-conflict"
    assert "accelerate 0.20.0 is installed, but transformers 4.40.0 needs >=0.21.0" == f.title


def test_garbage_version_string_is_a_warning_not_a_crash():
    t = target(distributions=(dist("a", "1.0", "b>=1"), dist("b", "not a version!")))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.id == "python.dependency-bad-version" and f.status is Status.WARN
    assert "'not a version!'" in f.title


def test_malformed_requirement_and_unreadable_metadata_are_reported():
    t = target(distributions=(dist("a", "1.0", "b >>> 1"),
                              dist(None, None, location="/site")))
    got = by_id(findings_of(packages.dependencies_check, facts(target=t)))
    assert set(got) == {"python.dependency-malformed", "python.dependency-broken-metadata"}


def test_two_copies_of_one_distribution():
    t = target(distributions=(dist("numpy", "1.26.4", location="/home/u/.local/lib/python3.11/site-packages"),
                              dist("numpy", "2.0.1")))
    (f,) = findings_of(packages.dependencies_check, facts(target=t))
    assert f.id == "python.dependency-duplicate" and "installed 2 times" in f.title


def test_end_of_life_python_warns_with_source():
    t = target(python_version="3.8.18", version_info=(3, 8, 18))
    (f,) = findings_of(python.version_check, facts(target=t, clock=clock()))
    assert f.status is Status.WARN and "2024-10-07" in f.title
    assert f.docs == "https://devguide.python.org/versions/"


def test_supported_python_is_ok():
    (f,) = findings_of(python.version_check, facts(target=target(python_version="3.13.0", version_info=(3, 13, 0)),
                                                   clock=clock()))
    assert f.status is Status.OK


def test_python_end_of_life_is_judged_as_of_the_reports_date_not_today():
    """The check is pure: the date comes from the clock fact, so a report judged again on another
    day gets the same verdict (3.10's end of life is 2026-10)."""
    t = target(python_version="3.10.14", version_info=(3, 10, 14))
    (before,) = findings_of(python.version_check, facts(target=t, clock=clock("2026-06-01")))
    (after,) = findings_of(python.version_check, facts(target=t, clock=clock("2026-11-26")))
    assert before.status is Status.OK and after.status is Status.WARN


def test_unknown_python_minor_is_info():
    (f,) = findings_of(python.version_check, facts(target=target(python_version="3.99.0", version_info=(3, 99, 0))))
    assert f.status is Status.INFO


def test_missing_headers_suggest_dev_package():
    (f,) = findings_of(python.headers_check, facts(target=target(has_python_h=False), system=system()))
    assert f.status is Status.INFO and fix_text(f) == "sudo apt install python3.11-dev"
    fedora = system(os_release="Fedora Linux 40 (Workstation Edition)", os_like=("fedora",))
    (f,) = findings_of(python.headers_check, facts(target=target(has_python_h=False), system=fedora))
    assert fix_text(f) == "sudo dnf install python3.11-devel"


def test_virtual_env_without_python_warns():
    t = target(note="VIRTUAL_ENV=/gone holds no Python interpreter", kind="interpreter")
    (f,) = findings_of(python.target_check, facts(target=t))
    assert f.status is Status.WARN and "/gone" in f.title


def test_import_crash_is_a_failure_naming_the_module():
    crash = TargetFailure("signal", step="import", module="numpy", exit_code=-11, tail="Fatal Python error: Segfault")
    i = imports(ImportResult("numpy", "crash", failure=crash), ImportResult("yaml", "ok", version="6.0.1"))
    (f,) = findings_of(python.imports_check, facts(target=target(), target_imports=i))
    assert f.id == "python.import-crash" and f.status is Status.FAIL
    assert f.title == ("`import numpy` kills the interpreter: the target interpreter was killed by SIGSEGV during "
                       "`import numpy`")
    assert f.detail.endswith("`import numpy`\nFatal Python error: Segfault")
    assert fix_text(f).endswith("-m pip install --force-reinstall --no-deps numpy")


def test_an_import_the_probe_had_no_time_left_for_is_named_as_not_tried():
    i = imports(ImportResult("regex", "timeout", failure=TargetFailure("not-tried", step="import", module="regex")))
    (f,) = findings_of(python.imports_check, facts(target=target(), target_imports=i))
    # nothing is known of it: not called a hang, and no reinstall prescribed
    assert f.id == "python.import-not-tried" and f.status is Status.WARN and f.command is None and not f.fix
    assert f.title == "`import regex` was not tried: the imports before it took the probe's whole time"


def test_an_import_crash_in_a_report_from_before_failure_shows_its_sentence():
    old = {"module": "numpy", "status": "crash",
           "message": "the target interpreter was killed by SIGSEGV during `import numpy`"}
    i = imports(load(ImportResult, old))
    (f,) = findings_of(python.imports_check, facts(target=target(), target_imports=i))
    assert f.id == "python.import-crash" and f.title == ("`import numpy` kills the interpreter: the target interpreter "
                                                        "was killed by SIGSEGV during `import numpy`")


def test_import_error_shows_the_last_line():
    i = imports(ImportResult("yaml", "error", error_type="ImportError",
                             message="ImportError: libyaml-0.so.2: cannot open shared object file"))
    (f,) = findings_of(python.imports_check, facts(target=target(), target_imports=i))
    assert f.id == "python.import-failed" and "libyaml" in f.title
    assert fix_text(f).endswith("--no-deps PyYAML")


def test_clean_imports_are_ok():
    i = imports(ImportResult("numpy", "ok", version="1.26.4"), ImportResult("regex", "absent"))
    (f,) = findings_of(python.imports_check, facts(target=target(), target_imports=i))
    assert f.status is Status.OK and "numpy 1.26.4" in f.title


def test_the_curl_ca_bundle_workaround_pins_are_named():
    from checks_under_test import stack

    t = target(distributions=(dist("requests", "2.27.1"), dist("urllib3", "1.25.11")))
    got = {f.id: f for f in findings_of(stack.known_bad_check, facts(target=t))}
    req, url = got["python.requests-insecure-pin"], got["python.urllib3-proxy-pin"]
    assert req.status is Status.WARN and "CVE-2024-47081" in req.title
    assert fix_text(req).startswith("/home/u/.venvs/llm/bin/python -m pip install 'requests>=2.32.4'")
    assert "llmdoctor fix --ssl" in fix_text(req)
    # no proxy variable here: the pin came with the SSL recipe, and no proxy step is prescribed
    assert fix_text(url) == "/home/u/.venvs/llm/bin/python -m pip install 'urllib3>=1.26.18'" and "HTTPS_PROXY" not in fix_text(url)
    assert "works around nothing on this machine" in url.detail
    proxied = target(distributions=t.distributions, net_env={"HTTPS_PROXY": "https://proxy.corp:3128"})
    url = {f.id: f for f in findings_of(stack.known_bad_check, facts(target=proxied))}["python.urllib3-proxy-pin"]
    assert fix_text(url).endswith("(then: export HTTPS_PROXY='http://<proxy-host>:<port>')")
    assert req.docs == "https://github.com/psf/requests/blob/main/HISTORY.md"


def test_current_requests_is_fine():
    from checks_under_test import stack

    t = target(distributions=(dist("requests", "2.32.4"), dist("urllib3", "2.2.3")))
    (f,) = findings_of(stack.known_bad_check, facts(target=t))
    assert f.status is Status.OK


def test_jupyter_and_tqdm_without_ipywidgets():
    from checks_under_test import stack

    t = target(distributions=(dist("ipykernel", "6.29.5"), dist("tqdm", "4.66.4"), dist("transformers", "4.44.0")))
    (f,) = findings_of(stack.known_bad_check, facts(target=t))
    assert f.id == "python.ipywidgets-missing" and "IProgress not found" in f.title
    assert fix_text(f).endswith("-m pip install ipywidgets") and f.docs == "https://github.com/tqdm/tqdm/issues/1072"
    t2 = target(distributions=t.distributions + (dist("ipywidgets", "8.1.3"),))
    assert findings_of(stack.known_bad_check, facts(target=t2))[0].status is Status.OK
