"""Situations `check` used to call fine: a cache it cannot read, a cache path that is a file, a
full temporary directory, a Python long past its end of life."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from checks_under_test import python as python_checks, system as system_checks
from conftest import drop_privileges_argv, other_user
from factories import GiB, facts, findings_of, system, target
from llmdoctor.probes.system import Disk
from llmdoctor.report.shells import fix_text


def check_json(*args, env=None, unprivileged=False) -> dict:
    argv = (drop_privileges_argv() if unprivileged else []) + [sys.executable, "-m", "llmdoctor", "check", "--json",
                                                                "--offline", *args]
    done = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def by_id(report) -> dict:
    return {f["id"]: f for f in report["findings"]}


def test_an_unreadable_hub_cache_is_a_failure_not_an_empty_cache(tmp_path):
    cache = tmp_path / "hub"
    (cache / "models--org--m" / "snapshots").mkdir(parents=True)
    os.chmod(cache, 0o700)
    if os.geteuid() == 0:
        os.chown(cache, *other_user())  # a cache made by another user (or by root, with sudo)
    else:
        os.chmod(cache, 0)
    report = check_json("--only", "cache.*", env={"HF_HUB_CACHE": str(cache)}, unprivileged=True)
    found = by_id(report)
    assert "cache.unreadable" in found, found.keys()
    f = found["cache.unreadable"]
    assert f["status"] == "fail" and str(cache) in f["title"] and "chown" in f["fix"]
    assert not any("No Hugging Face cache yet" in x["title"] for x in report["findings"])


def test_hf_home_pointing_at_a_file(tmp_path):
    home = tmp_path / "hf-home-is-a-file"
    home.write_text("oops")
    report = check_json("--only", "cache.*", env={"HF_HOME": str(home)})
    f = by_id(report)["cache.unreadable"]
    assert f["status"] == "fail" and "is a file" in f["title"] and f["fix"].startswith("unset HF_HOME")
    assert report["summary"]["worst"] == "fail"


def test_a_full_temporary_directory_is_named():
    tmp = Disk("tmp", "/tmp", "/tmp", 2 * GiB, 200 * 1024**2, "tmpfs", "/tmp")
    disks = (Disk("home", "/home/u", "/home/u", 500 * GiB, 200 * GiB, "ext4", "/"), tmp)
    (home, tmp_finding) = findings_of(system_checks.disk_check, facts(system=system(disks=disks)))
    assert home.status.label == "ok"
    assert tmp_finding.status.label == "fail" and "temporary directory" in tmp_finding.title
    assert "TMPDIR" in fix_text(tmp_finding) and tmp_finding.docs.startswith("https://")


def test_a_low_temporary_directory_with_no_better_disk_says_so():
    disks = (Disk("home", "/home/u", "/home/u", 50 * GiB, 2 * GiB, "ext4", "/"),
             Disk("tmp", "/tmp", "/tmp", 4 * GiB, 3 * GiB, "tmpfs", "/tmp"))
    findings = findings_of(system_checks.disk_check, facts(system=system(disks=disks)))
    tmp = next(f for f in findings if f.id == "system.disk-tmp")
    assert tmp.status.label == "warn" and "~/tmp" not in fix_text(tmp)  # the home disk has no room either


def test_python_36_is_named_as_long_past_its_end_of_life():
    old = target(python_version="3.6.15", version_info=(3, 6, 15))
    (f,) = findings_of(python_checks.version_check, facts(target=old))
    assert f.status.is_problem and "2021-12-23" in f.title and fix_text(f)
