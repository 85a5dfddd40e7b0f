"""`llmdoctor fix --max-jobs`: size MAX_JOBS to the RAM, so that building flash-attn or
DeepSpeed ops is not killed for lack of memory, and persist it for the target env."""

from __future__ import annotations

from llmdoctor.fix import envhook
from llmdoctor import subproc
from llmdoctor.compat import compile as cm
from llmdoctor.fix.model import (FileChange, Fix, FixContext, FixError, Param, Plan, Verdict, env_without,
                                 writable_target)
from llmdoctor.fix.journal import read_bytes
from llmdoctor.checks.host import os_name
from llmdoctor.checks.sizing import kinds_here
from llmdoctor.checks.toolkit import effective_nvcc
from llmdoctor.units import gib


def plan(ctx: FixContext) -> Plan:
    system, target = ctx.facts.value("system"), writable_target(ctx)
    chosen = ctx.options.get("jobs")
    kinds = kinds_here(ctx.facts) or ["flash-attn", "deepspeed"]  # asked for anyway: size for any build
    if chosen:
        jobs, why = int(chosen), f"--jobs {chosen}"
        plans = []
    else:
        if system is None or system.ram_usable_bytes is None:
            raise FixError("RAM size unknown here; give the number with --jobs N")
        avail, cpus = system.ram_usable_bytes, system.cpus_for_jobs
        env = {k: v for k, v in target.build_env.items() if k != "MAX_JOBS"}
        jobs, plans = cm.safe_max_jobs(kinds, env, cpus, avail)
        why = (f"{gib(avail)} RAM available, {cpus} usable CPUs; "
               + "; ".join(f"{p.label}: {gib(p.per_job_bytes)} per job ({p.words}), so "
                           f"{p.safe_jobs} job{'s' * (p.safe_jobs != 1)}" for p in plans))
    path = envhook.hook_path(target.purelib)
    current = envhook.parse(read_bytes(path))
    notes = [f"Why {jobs}: {why}." + "".join(f"\n  {p.label}: {p.row['source']}" for p in plans)]
    if len(plans) > 1:
        notes.append("MAX_JOBS is shared by every build in this environment, so it is sized for the hungriest.")
    if any(p.kind == "flash-attn" for p in plans) and "MAX_JOBS" not in target.build_env:
        notes.append("flash-attn sizes MAX_JOBS itself when it is unset; this value keeps its builds within the RAM "
                     "with the same per-thread figure, and DeepSpeed's ninja builds within it too.")
    shell = ctx.environ.get("MAX_JOBS")
    replace = {}
    if shell and shell != str(jobs):
        replace["MAX_JOBS"] = [shell]
        notes.append(f"MAX_JOBS={shell} is set in this shell and would win over the hook: the hook replaces exactly "
                     f"that value with {jobs} (another value you set later still wins); remove it from your shell "
                     "start-up files to keep things plain.")
    title = f"Set MAX_JOBS={jobs} for every Python process of {target.prefix}"
    if current.get("MAX_JOBS") == str(jobs) and not _deepspeed_vars(ctx, target, []) and not replace:
        return Plan("max-jobs", title, notes=tuple(notes), nothing_to_do=f"{path} already sets MAX_JOBS={jobs}.")
    wanted = {**current, "MAX_JOBS": str(jobs)}
    wanted.update(_deepspeed_vars(ctx, target, notes))
    change = FileChange(path, envhook.merge(read_bytes(path), wanted, replace=replace), f"Start-up hook in {target.purelib}",
                        mode=envhook.MODE)
    return Plan("max-jobs", title, changes=(change,), notes=tuple(notes))


def _deepspeed_vars(ctx: FixContext, target, notes: list) -> dict[str, str]:
    """DS_BUILD_* only where the user's DS_BUILD_OPS=1 would make `pip install deepspeed` fail:
    pre-building every op includes async_io, which needs libaio."""
    tk = ctx.facts.value("cuda")
    if target.build_env.get("DS_BUILD_OPS") != "1" or tk is None or effective_nvcc(tk) is None:
        return {}
    if (tk.libaio is None or tk.libaio_header is None) and "DS_BUILD_AIO" not in target.build_env:
        needs = ("Linux's libaio, which this OS does not have" if os_name(ctx.facts) not in ("Linux", "")
                 else "libaio (libaio-dev)")
        notes.append(f"DS_BUILD_OPS=1 pre-builds every DeepSpeed op, and async_io cannot build without {needs}: "
                     "DS_BUILD_AIO=0 leaves that one op out.")
        return {"DS_BUILD_AIO": "0"}
    return {}


def verify(ctx: FixContext, plan: Plan) -> Verdict:
    """A fresh process of the target interpreter, in this shell's environment, sees it."""
    want = envhook.parse(plan.changes[0].content).get("MAX_JOBS") if plan.changes else None
    done = subproc.run([ctx.target.python, "-c", "import os; print(os.environ.get('MAX_JOBS'))"], timeout=30,
                       env=env_without(ctx.environ, "PYTHONPATH"))
    got = done.stdout.strip()
    if done.returncode == 0 and got == want:
        return Verdict(True, f"a new {ctx.target.python} process sees MAX_JOBS={got}")
    return Verdict(False, f"a new {ctx.target.python} process sees MAX_JOBS={got or 'unset'} "
                          f"(expected {want}); {done.stderr.strip()[-300:]}")


FIX = Fix(
    id="max-jobs",
    description="Size MAX_JOBS to the RAM for CUDA extension builds (flash-attn, DeepSpeed ops)",
    plan=plan,
    verify=verify,
    needs=("system", "target", "cuda"),
    params=(Param("jobs", "Use this MAX_JOBS instead of sizing it.", kind="int", metavar="N", minimum=1, maximum=1024),),
)
