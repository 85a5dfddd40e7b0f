"""The evidence recorded on a real GPU machine (tests/fixtures/real/h100, made by record.sh)
checked against itself: what NVML gave the probe must be what `nvidia-smi -q` printed on the
same machine at the same time, and the fix planned from the recorded facts must be the one
that was printed there."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from llmdoctor.fix.model import FixContext, show
from llmdoctor.probes import builtin_probes
from llmdoctor.probes.nvidia import parse_proc_version
from llmdoctor.report.envelope import facts_from_json
from llmdoctor.target import Target

H100 = Path(__file__).resolve().parent / "fixtures" / "real" / "h100"
REPORT = json.loads((H100 / "check.json").read_text(encoding="utf-8"))
RAW = (H100 / "raw.txt").read_text(encoding="utf-8")


def sections(raw: str) -> dict[str, str]:
    """record.sh's output: '## name' headers, each followed by that command's output."""
    out, name = {}, None
    for line in raw.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            out[name] = ""
        elif name is not None:
            out[name] += line + "\n"
    return out


def smi_q(text: str) -> dict[str, str]:
    """`nvidia-smi -q` as {"FB Memory Usage/Total": "81559 MiB", ...} (nesting by indentation)."""
    out, stack = {}, []
    for line in text.splitlines():
        if not line.strip() or line.startswith("="):
            continue
        indent = len(line) - len(line.lstrip())
        m = re.match(r"^(.*?)\s+:\s?(.*)$", line.strip())  # "Key      : value"; a bare "GPU 0000:00:06.0" heads a block
        key, sep, value = (m.group(1), ":", m.group(2)) if m else (line.strip(), "", "")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "/".join([k for _, k in stack] + [key.strip()])
        if sep and value.strip():
            out[path] = value.strip()
        else:
            stack.append((indent, key.strip()))
    return out


def test_nvml_facts_agree_with_nvidia_smi_on_the_same_machine():
    raw = sections(RAW)
    q = smi_q(raw["nvidia-smi -q"])
    gpu_facts = REPORT["facts"]["gpu"]["value"]
    (gpu,) = gpu_facts["gpus"]
    prefix = next(k.split("/")[0] for k in q if k.startswith("GPU 0000"))
    at = lambda key: q[f"{prefix}/{key}"]  # noqa: E731
    assert gpu_facts["driver_version"] == q["Driver Version"]
    assert gpu_facts["cuda_driver_version"] == q["CUDA Version"]
    assert gpu_facts["proc_driver_version"] == parse_proc_version(raw["/proc/driver/nvidia/version"])
    assert gpu["name"] == at("Product Name") and gpu["uuid"] == at("GPU UUID")
    assert gpu["memory_total_bytes"] == int(at("FB Memory Usage/Total").split()[0]) * 2**20
    assert (gpu["pcie_gen"], gpu["pcie_gen_max"]) == (int(at("PCI/GPU Link Info/PCIe Generation/Current")),
                                                      int(at("PCI/GPU Link Info/PCIe Generation/Max")))
    assert (gpu["pcie_width"], gpu["pcie_width_max"]) == (int(at("PCI/GPU Link Info/Link Width/Current")[:-1]),
                                                          int(at("PCI/GPU Link Info/Link Width/Max")[:-1]))
    assert gpu["persistence_mode"] is (at("Persistence Mode") == "Enabled")
    assert gpu["mig_mode"] is (at("MIG Mode/Current") == "Enabled")
    assert gpu["power_limit_w"] == float(at("GPU Power Readings/Current Power Limit").split()[0])
    assert gpu["ecc_uncorrected_volatile"] == int(at("ECC Errors/Volatile/DRAM Uncorrectable"))
    assert gpu["ecc_uncorrected_aggregate"] == int(at("ECC Errors/Aggregate/DRAM Uncorrectable"))
    csv = raw["nvidia-smi csv"].strip().split(", ")
    assert f"{gpu['cc_major']}.{gpu['cc_minor']}" == csv[-1]  # compute capability, as nvidia-smi gives it


def test_the_max_jobs_fix_planned_from_the_recorded_facts_reads_the_machine_as_printed_there(tmp_path):
    """record.sh ran `fix --max-jobs --dry-run` on the H100 (with the code of 2026-11-22, which
    counted 5 GB per compile job; the per-job figure now comes from the compatibility model,
    so the job count differs). Planned today from that machine's recorded facts, the fix must
    read the machine as the printed one did: the same RAM, the same CPUs, the same hook file."""
    from llmdoctor.fixes import max_jobs

    facts = facts_from_json(REPORT, builtin_probes())
    t = facts.value("target")
    site = tmp_path / "site-packages"
    site.mkdir()
    facts = type(facts)({**facts, "target": replace(facts["target"], value=replace(t, purelib=str(site)))})
    ctx = FixContext(target=Target(python=t.python, kind=t.kind, prefix=t.prefix), environ={}, facts=facts)
    shown = show(max_jobs.plan(ctx)).replace(str(site), t.purelib)
    printed = (H100 / "fix_max_jobs.txt").read_text(encoding="utf-8")
    ram, cpus = re.search(r"(\d+ GiB) RAM available.*?(\d+) usable CPUs", printed).groups()
    assert re.search(rf"{ram} RAM available.*{cpus} usable CPUs", shown), shown
    hook = re.search(r"\+\+\+ (\S+llmdoctor-env\.pth)", printed).group(1)
    assert f"+++ {hook}" in shown


def test_the_readme_gives_the_h100_start_up_figures_that_were_recorded():
    recorded = json.loads((H100 / "startup.json").read_text(encoding="utf-8"))["results"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("The same script on the lent GPU machine", 1)[1].split("\n\n", 2)[1]
    for command, row in recorded.items():
        line = next(l for l in section.splitlines() if l.startswith(f"| `{command}`"))
        assert f"{row['median_s']:.3f} s" in line and f"{row['ratio_to_collect_env']:.2f}x" in line, line
