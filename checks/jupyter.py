"""Jupyter kernels against the target environment: a notebook whose kernel runs another
Python does not see what was installed here."""

from __future__ import annotations

from llmdoctor.command import run
from llmdoctor.model import Status, check
from llmdoctor.platforms.paths import flavor, is_under, same_path

from llmdoctor.checks.requirements import installed_versions

DOCS = "https://ipython.readthedocs.io/en/stable/install/kernel_install.html#kernels-for-different-environments"


def runs_target(spec, target) -> bool:
    """Whether the kernel starts the target's interpreter, comparing paths as the target's OS
    does (``C:\\Users\\Jane\\envs\\llm\\python.exe`` and ``c:/users/jane/envs/llm/python.exe`` are
    one file on Windows)."""
    if not spec.argv0:
        return False
    pathmod = flavor(target.platform)
    if not pathmod.isabs(spec.argv0):  # "python": the Python of the Jupyter that launches it
        return is_under(spec.path, target.prefix, pathmod)
    return same_path(spec.argv0, target.executable, pathmod) or is_under(spec.argv0, target.prefix, pathmod)


@check("python.jupyter-kernel", needs=["target"])
def jupyter_kernel_check(facts, c):
    """Jupyter kernels that run a Python that no longer exists, or not this environment's."""
    t = facts.value("target")
    has_ipykernel = "ipykernel" in installed_versions(t)
    specs = [k for k in t.kernelspecs if (k.language or "python").lower() == "python"]
    if not specs and not has_ipykernel:
        yield c.finding(Status.SKIP, "No Jupyter kernels and no ipykernel in this environment")
        return
    pathmod = flavor(t.platform)
    name = pathmod.basename(pathmod.normpath(t.prefix)) or "llm"
    register = run(t.executable, "-m", "ipykernel", "install", "--user", "--name", name, "--display-name",
                   f"Python ({name})")
    problems = 0
    for k in specs:
        if k.error:
            problems += 1
            yield c.finding(Status.WARN, f"Jupyter kernel '{k.name}' has an unreadable kernel.json", id="python.kernel-broken",
                            detail=f"{k.path}: {k.error}", fix=run("jupyter", "kernelspec", "remove", k.name),
                            docs=DOCS)
        elif k.argv0_exists is False:
            problems += 1
            yield c.finding(Status.WARN, f"Jupyter kernel '{k.name}' starts {k.argv0}, which no longer exists: "
                            "notebooks using it fail to start", id="python.kernel-missing-python",
                            detail=f"kernel spec: {k.path}",
                            fix=(run("jupyter", "kernelspec", "remove", k.name),
                                 *(("   (then: ", register, ")") if has_ipykernel else ())),
                            docs=DOCS)
        elif k.name == "python3" and flavor(t.platform).isabs(k.argv0 or "") and not runs_target(k, t) \
                and has_ipykernel:
            problems += 1
            yield c.finding(Status.WARN, f"Jupyter's default 'python3' kernel runs {k.argv0}, not this environment's "
                            "Python: packages installed here are invisible in notebooks", id="python.kernel-other-python",
                            detail=f"kernel spec: {k.path}; this environment: {t.executable}. A kernel spec in the "
                                   "user's data directory shadows the environment's own.",
                            fix=register, docs=DOCS)
    if has_ipykernel and not any(runs_target(k, t) for k in specs) and not problems:
        yield c.finding(Status.INFO, "ipykernel is installed here, but no Jupyter kernel is registered for this "
                        "environment: a Jupyter started elsewhere cannot select it", id="python.kernel-unregistered",
                        fix=register, docs=DOCS)
    elif not problems:
        yield c.finding(Status.OK, f"{len(specs)} Jupyter kernel(s), each with a Python that exists"
                        + ("; one runs this environment" if any(runs_target(k, t) for k in specs) else ""))
