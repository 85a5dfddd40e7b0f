import json

from hypothesis import given, strategies as st

from factories import dist, system, target
from llmdoctor.facts import dump, load
from llmdoctor.probes.python_env import ImportFacts, ImportResult, TargetFacts
from llmdoctor.probes.system import SystemFacts


def roundtrip(tp, value):
    return load(tp, json.loads(json.dumps(dump(value))))


def test_system_facts_round_trip_through_json():
    s = system(unknown={"swap": "PermissionError"})
    assert roundtrip(SystemFacts, s) == s


def test_target_facts_round_trip_through_json():
    t = target(distributions=(dist("a", "1", "b>=2"), dist(None, None)))
    assert roundtrip(TargetFacts, t) == t


def test_import_facts_round_trip_through_json():
    i = ImportFacts((ImportResult("numpy", "crash", message="SIGSEGV"),))
    assert roundtrip(ImportFacts, i) == i


def test_old_reports_missing_new_fields_still_load():
    data = dump(system())
    del data["cgroup_memory_limit_bytes"]
    data["a_field_from_the_future"] = 1
    assert load(SystemFacts, data).cgroup_memory_limit_bytes is None


@given(st.text(max_size=40), st.integers(min_value=0, max_value=2**63))
def test_arbitrary_strings_and_sizes_survive(name, n):
    s = system(os_release=name, ram_total_bytes=n)
    assert roundtrip(SystemFacts, s) == s
