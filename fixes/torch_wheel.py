"""`llmdoctor fix --torch`: the torch wheel that fits this driver and GPU, installed into
the target environment only (its own interpreter's pip), then the torch checks re-run."""

from __future__ import annotations

from llmdoctor.fix.model import Fix, FixContext, FixError, Plan, Verdict
from llmdoctor.model import Status

PREVIOUS = "https://pytorch.org/get-started/previous-versions/"


def _torch_findings(facts):
    """What the torch checks say of ``facts``, judged by the runner (deadlines, crashes as findings)."""
    from llmdoctor.checks import pytorch
    from llmdoctor.check.runner import judge

    return judge((pytorch.cpu_only_check, pytorch.driver_check, pytorch.live_check, pytorch.arch_check), facts)


def plan(ctx: FixContext) -> Plan:
    from llmdoctor.checks.nvidia import no_gpu
    from llmdoctor.checks.pytorch import prescribe, prescription_fix, torch_requirements
    from llmdoctor.versions import parse_version

    t, g = ctx.facts.value("torch"), ctx.facts.value("gpu")
    if g is None or no_gpu(g):
        raise FixError("no NVIDIA GPU here: a CPU build of torch is the right one")
    if t is None:
        raise FixError(f"cannot read torch in the target: {ctx.facts.reason('torch')}")
    problems = [f.title for f in _torch_findings(ctx.facts) if f.status >= Status.FAIL]
    spec = torch_requirements(ctx.facts) if ctx.facts.value("target") is not None else None
    v = parse_version(t.version) if t.installed else None
    if spec and v is not None and not spec.contains(parse_version(v.base_version), prereleases=True):
        problems.append(f"torch {t.version} does not meet what the installed packages require of it (torch{spec})")
    title = f"Install the torch build for driver {g.driver_version} into {ctx.target.python}"
    if t.installed and not problems:
        return Plan("torch", title, nothing_to_do=f"torch {t.version} already fits this driver and GPU.")
    p = prescribe(ctx.facts)
    if p.build is None:
        raise FixError(f"{p.why}; nothing to install")
    if p.blocked:
        steps = [s.text for s in p.steps if s.kind != "torch"]
        alt = (f"\nOr, keeping this driver: {prescription_fix(ctx.facts, p.alternative)}"
               if p.alternative and p.alternative.build else "")
        raise FixError(f"no build of torch {t.version or ''} runs here as the machine is ({p.why}). First: "
                       + "; then ".join(steps) + f"; then run `llmdoctor fix --torch` again (it will install torch "
                       f"{p.build.label}).{alt}")
    b = p.build
    py = ctx.target.python
    commands = ((py, "-m", "pip", "uninstall", "-y", "torch"),
                (py, "-m", "pip", "install", f"torch=={b.version}", "--index-url", b.index_url))
    undo = ()
    if t.installed and t.version:
        old = t.version.split("+")[0]
        old_flavour = "cpu" if t.build == "cpu" else (f"cu{t.cuda.replace('.', '')}" if t.cuda else "cpu")
        undo = ((py, "-m", "pip", "uninstall", "-y", "torch"),
                (py, "-m", "pip", "install", f"torch=={old}", "--index-url",
                 f"https://download.pytorch.org/whl/{old_flavour}"))
    notes = [f"Why: {why}" for why in problems]
    notes.append(f"torch {b.label} is published ({b.source}) and runs on driver {g.driver_version} with "
                 f"{', '.join(x.name or '?' for x in g.visible_gpus)}.")
    notes.append("torchvision / torchaudio, if installed, must be reinstalled from the same index to match "
                 f"({PREVIOUS}).")
    return Plan("torch", title, commands=commands, undo_commands=undo, notes=tuple(notes))


def verify(ctx: FixContext, plan: Plan) -> Verdict:
    """Probe torch again in a fresh process of the target and re-judge it."""
    from llmdoctor.facts import Facts
    from llmdoctor.probes import ProbeContext, builtin_probes
    from llmdoctor.check.runner import gather

    probes = [p for p in builtin_probes() if p.name == "torch"]
    fresh = gather(probes, ProbeContext(target=ctx.target, environ=ctx.environ))
    facts = Facts({**ctx.facts, **fresh})
    bad = [f for f in _torch_findings(facts) if f.status >= Status.FAIL]
    t = facts.value("torch")
    if bad:
        return Verdict(False, "; ".join(f.title for f in bad))
    return Verdict(True, f"torch {t.version if t else '?'} now passes the torch checks")


FIX = Fix(
    id="torch",
    description="Install the torch wheel that fits this NVIDIA driver and GPU into the target environment",
    plan=plan,
    verify=verify,
    needs=("target", "gpu", "torch"),
)
