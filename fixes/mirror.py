"""`llmdoctor fix --mirror [URL]`: where huggingface.co is unreachable or slow and a mirror
answers as the hub, point the target environment at the mirror (HF_ENDPOINT), and switch
xet off (HF_HUB_DISABLE_XET=1) when the mirror serves no xet, through the start-up hook."""

from __future__ import annotations

from dataclasses import dataclass

from llmdoctor.fix import envhook
from llmdoctor import net
from llmdoctor.fix.model import FileChange, Fix, FixContext, FixError, Param, Plan, Verdict, writable_target
from llmdoctor.fix.journal import read_bytes
from llmdoctor.probes import Probe, ProbeContext
from llmdoctor.probes.network import MIRROR, PROBE_REPO, target_net_env

from llmdoctor.fixes import hubcall


def _repo(ctx: FixContext) -> str:
    return ctx.environ.get("LLMDOCTOR_PROBE_REPO") or PROBE_REPO


@dataclass(frozen=True)
class MirrorFacts:
    """The mirror asked for, as the target's network settings reach it."""

    url: str
    result: net.EndpointResult | None = None  #: None when the URL is not one to ask


def probe_mirror(ctx: ProbeContext) -> MirrorFacts:
    url = (ctx.options.get("url") or MIRROR).rstrip("/")
    if not url.startswith(("https://", "http://")):
        return MirrorFacts(url)
    env, _ = target_net_env(ctx)
    repo = ctx.environ.get("LLMDOCTOR_PROBE_REPO") or PROBE_REPO
    return MirrorFacts(url, net.probe_endpoint(net.Endpoint("mirror", url, f"/{repo}/resolve/main/config.json",
                                                            expect_hub=True), env))


def plan(ctx: FixContext) -> Plan:
    target = writable_target(ctx)
    asked = ctx.facts.value("fix.mirror")
    if asked is None:
        raise FixError(f"the mirror could not be asked: {ctx.facts.reason('fix.mirror')}")
    url, r = asked.url, asked.result
    if r is None:
        raise FixError(f"{url!r} is not an http(s) URL; e.g. llmdoctor fix --mirror https://hf-mirror.com")
    if not r.ok:
        from llmdoctor.checks.network import describe_failure

        _, title, detail, fix, _ = describe_failure(r, ctx.facts, "mirror")
        raise FixError(f"the mirror does not answer as a hub, so nothing was changed: {title}"
                       + (f"\n{detail}" if detail else "") + (f"\nfix: {fix}" if fix else ""))
    hook = envhook.hook_path(target.purelib)
    current = envhook.parse(read_bytes(hook))
    wanted = {**current, "HF_ENDPOINT": url}
    notes = [f"{url} answered HEAD {r.url}/{_repo(ctx)}/resolve/main/config.json as a hub (commit "
             f"{r.headers.get('x-repo-commit', '?')[:12]}) in {sum(p.seconds for p in r.phases):.2f} s."]
    if "x-xet-hash" not in r.headers:
        wanted["HF_HUB_DISABLE_XET"] = "1"
        notes.append("The mirror sends no xet headers and xet storage does not follow HF_ENDPOINT: "
                     "HF_HUB_DISABLE_XET=1 keeps large files on plain HTTP through the mirror.")
    replace = {}
    if ctx.environ.get("HF_ENDPOINT") and ctx.environ["HF_ENDPOINT"].rstrip("/") != url:
        replace["HF_ENDPOINT"] = [ctx.environ["HF_ENDPOINT"]]
        notes.append(f"HF_ENDPOINT={ctx.environ['HF_ENDPOINT']} is set in this shell and would win over the hook: the "
                     f"hook replaces exactly that value with {url} (another value you set later still wins); "
                     "remove it from your shell start-up files to keep things plain.")
    title = f"Download from the mirror {url} in every Python process of {target.prefix}"
    content = envhook.merge(read_bytes(hook), wanted, replace=replace)
    if content == read_bytes(hook):
        return Plan("mirror", title, notes=tuple(notes), nothing_to_do=f"{hook} already points at {url}.")
    return Plan("mirror", title, changes=(FileChange(hook, content, f"Start-up hook in {target.purelib}", mode=envhook.MODE),),
                notes=tuple(notes))


def verify(ctx: FixContext, plan: Plan) -> Verdict:
    """A real download in a fresh process of the target, in this shell's environment."""
    return hubcall.download(ctx.target.python, ctx.environ, _repo(ctx))


FIX = Fix(
    id="mirror",
    description="Point the target env at a Hugging Face mirror (HF_ENDPOINT) when the hub is unreachable",
    plan=plan,
    verify=verify,
    needs=("target",),
    probes=(Probe("fix.mirror", probe_mirror, MirrorFacts, timeout_s=15.0, network=True,
                  description="the mirror asked for, through the target's proxy and CA settings"),),
    params=(Param("url", f"The mirror (default {MIRROR}).", argument=True, metavar="[URL]"),),
)
