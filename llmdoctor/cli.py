"""Command line: wires commands to functions, nothing more. Heavy modules are imported
inside commands so that ``llmdoctor --help`` stays instant."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys

import click

from llmdoctor import __version__

EXIT_CODES = """\b
Exit codes:
  0  no failures (warnings allowed unless --strict)
  1  at least one fail or error finding (or a warning with --strict)
  2  usage error (bad option, unreadable --replay file, no such --python)
  3  internal error in llmdoctor itself
"""


def echo_json(text: str, newline: bool = True) -> None:
    """JSON to stdout as UTF-8 bytes, whatever the console's code page (``--replay`` reads UTF-8)."""
    from llmdoctor.platforms.encoding import write_json

    write_json(text, sys.stdout, newline)


def _split(values) -> tuple[str, ...]:
    return tuple(v.strip() for raw in values for v in raw.split(",") if v.strip())


def _color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _unicode() -> bool:
    return (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "").startswith("utf")


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 140))


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="llmdoctor")
def cli():
    """Find what is wrong with a local LLM fine-tuning / inference setup before a long
    job fails: say why in one line, and give the exact fix."""


def _target(python):
    from llmdoctor.target import TargetError, resolve_target

    try:
        return resolve_target(python)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="--python") from None


REPLAY_LIMIT = 64 * 2**20  #: a report is a few hundred kB; anything this big is not one


def _load_replay(path):
    try:
        with open(path, "rb") as fh:
            raw = fh.read(REPLAY_LIMIT + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="--replay") from None
    if len(raw) > REPLAY_LIMIT:
        raise click.BadParameter(f"{path} is larger than {REPLAY_LIMIT // 2**20} MB: not an llmdoctor report",
                                 param_hint="--replay")
    from llmdoctor.platforms.encoding import decode_document

    try:
        return json.loads(decode_document(raw))
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{path} is not UTF-8 (or UTF-16 with a byte-order mark) text: {exc}",
                                 param_hint="--replay") from None
    except RecursionError:
        raise click.BadParameter(f"{path} is nested too deeply to be an llmdoctor report",
                                 param_hint="--replay") from None
    except ValueError as exc:
        raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="--replay") from None


def _selection(only, skip):
    """The checks --only / --skip pick; a pattern that matches no check (of a node's or of a
    cluster's) is a usage error (exit 2) naming the categories."""
    from llmdoctor.check.flow import selected_checks
    from llmdoctor.plugins import SelectionError, load_checks, validate

    if only or skip:
        every = list(load_checks().checks)
        try:
            from llmdoctor.checks.distributed import cluster_checks

            every += list(cluster_checks())
        except ImportError:
            pass
        try:
            validate(every, only, skip)
        except SelectionError as exc:
            raise click.UsageError(f"--only / --skip: {exc}") from None
    return selected_checks(only, skip)


def _build_report(python, offline, only, skip, replay_file, model=None):
    from llmdoctor.check.flow import diagnose, replay
    from llmdoctor.report.envelope import ReplayError

    _selection(only, skip)  # before any probing: a selection that matches nothing is a usage error
    if replay_file:
        data = _load_replay(replay_file)
        from llmdoctor.distributed.cluster import is_cluster_document, replay as cluster_replay

        try:
            if is_cluster_document(data):
                return cluster_replay(data, only=only, skip=skip)[0]
            return replay(data, only=only, skip=skip)
        except ReplayError as exc:
            raise click.BadParameter(f"{replay_file}: {exc}", param_hint="--replay") from None
    return diagnose(_target(python), offline=offline, only=only, skip=skip, model=model)


def model_options(fn):
    """--model and what goes with it (check, report)."""
    options = [
        click.option("--model", "models", multiple=True, metavar="ID|PATH",
                     help="Will this model download, load, fit and run here? A hub id or a folder; repeatable."),
        click.option("--dir", "model_dirs", multiple=True, type=click.Path(file_okay=False), metavar="FOLDER",
                     help="With --model: a cache_dir= folder to look in first; repeatable."),
        click.option("--task", type=click.Choice(["infer", "lora", "qlora"]), default="infer", show_default=True,
                     help="With --model: what the memory must fit."),
        click.option("--dtype", type=click.Choice(["bf16", "fp16", "fp32"]),
                     help="With --model: the dtype you load with (default: what from_pretrained does without one)."),
        click.option("--quant", type=click.Choice(["nf4", "int8"]), help="With --model: bitsandbytes quantization."),
        click.option("--seq", type=click.IntRange(8), default=1024, show_default=True,
                     help="With --model: sequence length (training) or context (inference)."),
        click.option("--project", type=click.Path(file_okay=False), metavar="DIR",
                     help="Scan this folder's scripts and notebooks (never run) for known traps."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _model_request(models, dirs, task, dtype, quant, seq, project):
    if not models and not project:
        if dirs or dtype or quant or task != "infer" or seq != 1024:
            raise click.UsageError("--dir, --task, --dtype, --quant and --seq go with --model")
        return None
    from llmdoctor.probes.model import ModelRequest

    return ModelRequest(models=tuple(models), dirs=tuple(os.path.abspath(os.path.expanduser(d)) for d in dirs),
                        task=task, dtype=dtype, quant=quant, seq=seq,
                        project=os.path.abspath(os.path.expanduser(project)) if project else None)


def _list_checks(as_json: bool, only, skip) -> None:
    from llmdoctor.report.render import check_list_json, check_list_text

    sel = _selection(only, skip)
    if as_json:
        echo_json(check_list_json(sel))
        return
    text, errors = check_list_text(sel)
    click.echo(text, nl=False)
    if errors:
        click.echo(errors, err=True, nl=False)


PYTHON_HELP = ("Interpreter (or environment folder) to inspect. Default: the active VIRTUAL_ENV, else CONDA_PREFIX, "
               "else this interpreter.")
python_option = click.option("--python", "python", metavar="PATH", help=PYTHON_HELP)
offline_option = click.option("--offline", is_flag=True, envvar="LLMDOCTOR_OFFLINE",
                              help="Run no network probe; network checks are skipped (env: LLMDOCTOR_OFFLINE=1).")
only_option = click.option("--only", multiple=True, metavar="IDS",
                           help="Run only these categories, check ids or globs (network, network.hub, 'network.*'); "
                                "comma-separated or repeated.")
skip_option = click.option("--skip", "skip", multiple=True, metavar="IDS",
                           help="Skip these categories, check ids or globs.")
SHELL_CHOICES = ("sh", "bash", "zsh", "powershell", "pwsh", "cmd")
SHELL_HELP = ("Write fix commands for this shell. Default: the shell the report's facts name (for --replay, the "
              "sender's), else the one llmdoctor runs in (env: LLMDOCTOR_SHELL).")
shell_option = click.option("--shell", "shell", type=click.Choice(SHELL_CHOICES, case_sensitive=False),
                            envvar="LLMDOCTOR_SHELL", help=SHELL_HELP)


def _local_shell() -> str | None:
    from llmdoctor.probes.platform import detect_shell

    return detect_shell(os.environ)


def _shell_for(override, facts) -> str:
    """--shell, else the shell the facts name, else this machine's."""
    from llmdoctor.report.shells import choose

    return choose(override, facts, _local_shell)


@cli.command(epilog=EXIT_CODES)
@python_option
@offline_option
@only_option
@skip_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (the report envelope).")
@click.option("--replay", "replay_file", metavar="FILE", help="Judge a saved --json report with today's checks.")
@click.option("--list", "list_checks", is_flag=True, help="List every check with id, category, plugin and description.")
@click.option("--strict", is_flag=True, help="Warnings count as failures for the exit code.")
@click.option("-v", "--verbose", is_flag=True, help="Show details, ids, docs links and timings.")
@click.option("--distributed", is_flag=True,
              help="One rank per node under torchrun / srun / mpirun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): "
                   "each probes its node, rank 0 prints one cluster report. Needs torch.")
@click.option("--rank-timeout", type=click.FloatRange(5), default=120.0, show_default=True, metavar="S",
              help="With --distributed: how long rank 0 waits for every rank to join and report.")
@shell_option
@model_options
def check(python, offline, only, skip, as_json, replay_file, list_checks, strict, verbose, distributed, rank_timeout,
          shell, models, model_dirs, task, dtype, quant, seq, project):
    """Probe this machine and the target Python environment, and judge what it finds."""
    from llmdoctor.report.render import json_text, terminal
    from llmdoctor.report.envelope import exit_code

    only, skip = _split(only), _split(skip)
    if list_checks:
        _list_checks(as_json, only, skip)
        return
    if not distributed:  # (a rank joins its cluster before loading plugins: one that hangs must not stop that)
        _selection(only, skip)  # before any probing: a selection that matches nothing is a usage error, exit 2
    if distributed or replay_file:  # a cluster run, or a cluster report to replay
        from llmdoctor.distributed.cli import check as cluster_check

        code = cluster_check(distributed, replay_file, _load_replay, python, offline, only, skip, as_json, verbose,
                             strict, rank_timeout, width=_width(), color=_color(), unicode=_unicode(),
                             wrap=sys.stdout.isatty(), shell=lambda facts: _shell_for(shell, facts))
        if code is not None:
            sys.exit(code)
    report = _build_report(python, offline, only, skip, replay_file,
                           _model_request(models, model_dirs, task, dtype, quant, seq, project))
    shell = _shell_for(shell, report.facts)
    if as_json:
        echo_json(json_text(report, shell=shell))
    else:
        click.echo(terminal(report, verbose=verbose, width=_width(), color=_color(), unicode=_unicode(),
                            wrap=sys.stdout.isatty(), shell=shell), nl=False)
    sys.exit(int(exit_code(report.findings, strict)))


@cli.command(epilog=EXIT_CODES)
@python_option
@offline_option
@only_option
@skip_option
@click.option("--replay", "replay_file", metavar="FILE", help="Render a saved --json report instead of probing.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout.")
@shell_option
@model_options
def report(python, offline, only, skip, replay_file, output, shell, models, model_dirs, task, dtype, quant, seq,
           project):
    """Print a Markdown report to paste into a GitHub issue (secrets removed)."""
    from llmdoctor.report.render import markdown

    rep = _build_report(python, offline, _split(only), _split(skip), replay_file,
                        _model_request(models, model_dirs, task, dtype, quant, seq, project))
    text = markdown(rep, shell=_shell_for(shell, rep.facts))
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@cli.group()
def cache():
    """Hugging Face caches: list what is there (ls) and reclaim disk (prune)."""


dir_option = click.option("--dir", "dirs", multiple=True, type=click.Path(file_okay=False),
                          help="Another cache folder (a cache_dir= you passed to from_pretrained); repeatable.")


@cache.command("ls")
@dir_option
@click.option("--sort", type=click.Choice(["size", "accessed", "modified", "name"]), default="size",
              show_default=True)
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help="size>1GB, accessed>30d (older than), modified<7d, type=dataset, refs=main, or a glob on the id; "
                   "repeatable (all must hold).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (sizes in bytes).")
@click.option("--hub-only", is_flag=True, help="Skip the datasets, xet, torch hub and pip caches.")
@click.option("--revisions", is_flag=True, help="One line per revision under each repo.")
@click.option("--fresh", is_flag=True, help="Read every snapshot link again instead of reusing what the last listing "
                                            "read from folders unchanged since.")
def cache_ls(dirs, sort, filters, as_json, hub_only, revisions, fresh):
    """Repos in every hub cache root: size on disk, revisions and refs, last access."""
    from llmdoctor.cache import view as cacheview
    from llmdoctor.cache import scan as hfcache
    from llmdoctor.report.printable import json_text as safe_json

    report = hfcache.scan(os.environ, dirs, others=not hub_only, blobs=False, remember=not fresh)
    try:
        if as_json:
            echo_json(safe_json(json.dumps(cacheview.ls_json(report, filters, sort),
                                            indent=2 if sys.stdout.isatty() else None)))
        else:
            click.echo(cacheview.ls_text(report, filters, sort, width=_width(), color=_color(), revisions=revisions),
                       nl=False)
    except cacheview.FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from None


def _parse(fn, value, hint):
    try:
        return fn(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


@cache.command("prune")
@dir_option
@click.option("--detached", is_flag=True, help="Revisions no ref (branch, tag) points to.")
@click.option("--incomplete", is_flag=True, help="Partial downloads, unless a download holds their lock.")
@click.option("--orphans", is_flag=True, help="Blobs no snapshot links to.")
@click.option("--older-than", metavar="AGE", help="Revisions last accessed longer ago than AGE (30d, 12w, 1y).")
@click.option("--keep", type=click.IntRange(0), metavar="N", help="Keep the newest N revisions of each repo.")
@click.option("--max-size", metavar="SIZE", help="Delete least recently used revisions until the cache is under SIZE.")
@click.option("--repo", "repos", multiple=True, metavar="GLOB", help="Only repos matching GLOB (e.g. 'meta-llama/*').")
@click.option("--yes", "-y", is_flag=True, help="Delete; without it this is a dry run.")
@click.option("--json", "as_json", is_flag=True)
def cache_prune(dirs, detached, incomplete, orphans, older_than, keep, max_size, repos, yes, as_json):
    """Reclaim disk from the hub caches. A dry run unless --yes; with no policy it takes
    --detached --incomplete, as `hf cache prune` does."""
    from llmdoctor.cache import view as cacheview
    from llmdoctor.cache import scan as hfcache
    from llmdoctor.cache import prune
    from llmdoctor.report.printable import json_text as safe_json, printable
    from llmdoctor.units import parse_duration, parse_size

    asked = prune.Policy(detached, incomplete, orphans, _parse(parse_duration, older_than, "--older-than"),
                         keep, _parse(parse_size, max_size, "--max-size"), tuple(repos))
    policy = asked.or_default()
    report = hfcache.scan(os.environ, dirs, others=False)
    try:
        plan = prune.make_plan(report.roots, policy, os.environ)
    except prune.PruneError as exc:
        raise click.UsageError(str(exc)) from None
    execute = yes and bool(plan.items)
    if not as_json:  # the plan is shown before anything is deleted
        click.echo(cacheview.plan_text(plan, width=_width(), color=_color(), defaulted=policy is not asked,
                                       dry_run=not execute), nl=False)
    outcome = _run_prune(plan, quiet=as_json) if execute else None
    if as_json:
        executed = None if outcome is None else {"deleted": outcome.deleted, "freed": outcome.freed,
                                                 "errors": list(outcome.errors)}
        echo_json(safe_json(json.dumps(cacheview.plan_json(plan, executed), indent=2)))
    elif outcome is not None:
        click.echo(cacheview.outcome_text(outcome), nl=False)
        for e in outcome.errors:
            click.echo(f"  ! {printable(e)}", err=True)
    sys.exit(prune.exit_code(plan, outcome))


def _run_prune(plan, quiet: bool):
    from llmdoctor.cache import prune

    if quiet or not sys.stderr.isatty():
        return prune.execute(plan)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("Pruning", total=plan.steps)
        return prune.execute(plan, lambda label, _: bar.update(task, advance=1, description=f"Pruning {label}"))


class _Batch(click.ParamType):
    name = "N|fill"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "fill":
            return value
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither a positive integer nor 'fill'", param, ctx)
        return n


class _Finite(click.FloatRange):
    """A FloatRange that also refuses nan and inf (which every range test lets through or past)."""

    def convert(self, value, param, ctx):
        got = super().convert(value, param, ctx)
        if not math.isfinite(got):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return got


@cli.command(epilog="Exit codes: 0 every judged class passes (or no GPU: nothing judged) and every fine-tune "
                    "learned, 1 a class fails or a fine-tune did not learn, 2 usage error, 4 inconclusive (the host "
                    "may have limited a measurement, or learning is not proven).")
@click.option("--model", default="yi-6b", show_default=True,
              help="A preset (yi-6b, llama-2-7b, mistral-7b, qwen2.5-7b, llama-3.1-8b, qwen2.5-3b, qwen2.5-1.5b, "
                   "qwen2.5-0.5b, tiny), a hub id, or a local folder (or, with --estimate-only, a config.json).")
@click.option("--profile", "profiles", type=click.Choice(["t4", "24gb", "all"]), default="all", show_default=True)
@click.option("--workload", "workload_names", multiple=True,
              type=click.Choice(["train-qlora", "train-lora16", "generate-nf4", "generate-int8", "generate-16bit"]),
              help="Run only these (repeatable); all by default.")
@click.option("--estimate-only", is_flag=True,
              help="Print the memory model's predicted peak of every workload against every class, without torch "
                   "or a GPU (the config alone: a preset, a local folder or config.json, the HF cache, or the hub).")
@click.option("--offline", is_flag=True, help="With --estimate-only: never ask the hub for a config.json.")
@click.option("--batch", type=_Batch(), default=1, show_default=True,
              help="Training batch, or 'fill': per class, the largest batch the memory model fits in 90% of it.")
@click.option("--seq", type=click.IntRange(8), default=1024, show_default=True, help="Training sequence length.")
@click.option("--steps", type=click.IntRange(3), default=10, show_default=True, help="Timed training steps.")
@click.option("--rank", type=click.IntRange(1), default=16, show_default=True, help="LoRA rank.")
@click.option("--lr", type=_Finite(0, min_open=True), default=2e-4, show_default=True,
              help="Learning rate of the LoRA run.")
@click.option("--prompt", type=click.IntRange(1), default=256, show_default=True, help="Prompt tokens.")
@click.option("--new", "new_tokens", type=click.IntRange(2), default=64, show_default=True, help="New tokens.")
@click.option("--decode", type=click.Choice(["both", "eager", "compiled"]), default="both", show_default=True,
              help="eager: HF generate as users run it; compiled: static KV cache + torch.compile (CUDA graphs), "
                   "what the GPU can do; both: each, judged on the compiled one.")
@click.option("--reps", type=click.IntRange(1), default=10, show_default=True, help="Timed generation runs, at least.")
@click.option("--warmups", type=click.IntRange(0), default=10, show_default=True, help="Generation warm-up runs.")
@click.option("--min-seconds", type=_Finite(0), default=10.0, show_default=True,
              help="Timed generation runs last at least this long.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--download", is_flag=True, help="Download the model's weights if they are not cached.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of throughput and memory (matplotlib).")
def bench(model, profiles, workload_names, estimate_only, offline, batch, seq, steps, rank, lr, prompt, new_tokens,
          decode, reps, warmups, min_seconds, device, download, as_json, plot):
    """Reference LoRA fine-tune and quantized generation: does it fit, and does this GPU reach
    the T4 (16 GB) and 24 GB classes' floors? Measures; random weights when no real ones are here."""
    from llmdoctor.benchmark import presets as bench_presets

    settings = dict(model=model, profiles=("t4", "24gb") if profiles == "all" else (profiles,),
                    workloads=tuple(workload_names) or ("train-qlora", "train-lora16", "generate-nf4",
                                                        "generate-16bit", "generate-int8"),
                    batch=batch, seq=seq, steps=steps, rank=rank, lr=lr, prompt=prompt, new=new_tokens, reps=reps,
                    gen_warmup=warmups, min_seconds=min_seconds, decode=decode, device=device, download=download)
    if estimate_only:
        from llmdoctor.benchmark import run as bench_run

        try:
            result = bench_run.estimate_only(model, bench_run.Settings(**settings), fetch=not offline)
        except bench_presets.ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        click.echo(json.dumps(result, indent=2) if as_json else bench_run.estimate_text(result, width=_width()),
                   nl=not as_json)
        sys.exit(0)
    try:
        from llmdoctor.benchmark import run as bench_run, weights as bench_weights

        import torch  # noqa: F401  - the bench extra, checked before anything starts
    except ImportError as exc:
        raise click.UsageError(f"llmdoctor bench needs the bench extra: pip install 'llmdoctor[bench]' ({exc})")
    s = bench_run.Settings(**settings)
    if plot:  # written after a run of minutes: refuse what cannot be written before it
        folder = os.path.dirname(os.path.abspath(plot))
        if not os.path.isdir(folder) or os.path.isdir(plot):
            raise click.BadParameter(f"{plot}: " + ("is a folder" if os.path.isdir(plot) else
                                                    f"the folder {folder} does not exist"), param_hint="--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.UsageError("--plot needs matplotlib: pip install 'llmdoctor[plot]'") from None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bars = sys.stderr.isatty()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not bars) as bar:
        def progress(label, total):
            if not bars:  # no terminal (a log, CI): one line per workload instead of a bar
                console.print(f"{label}...")
            task = bar.add_task(label, total=total)
            return lambda: bar.update(task, advance=1)

        try:
            result = bench_run.run(s, say=lambda m: console.print(m), progress=progress)
        except (bench_weights.WeightsError, bench_presets.ConfigError) as exc:
            raise click.UsageError(str(exc)) from None
        except RuntimeError as exc:
            raise click.UsageError(str(exc)) from None
    if plot:
        try:
            bench_run.plot(result, plot)
        except (ImportError, OSError, ValueError) as exc:  # the results are printed all the same
            click.echo(f"llmdoctor bench: --plot {plot} not written: {exc}", err=True)
    if as_json:
        echo_json(json.dumps(result, indent=2), newline=False)
    else:
        click.echo(bench_run.text(result, width=_width()), nl=True)
    sys.exit(bench_run.exit_code(result))


def main(argv=None) -> None:
    from llmdoctor.platforms.encoding import adapt_streams

    adapt_streams(sys.stdout, sys.stderr)  # a console code page that lacks "·" or "✓" gets "-" and "+"
    try:
        code = cli.main(args=argv, prog_name="llmdoctor", standalone_mode=False)
    except SystemExit:
        raise
    except click.ClickException as exc:  # a usage error names what was typed: a path, an option, a model id
        from llmdoctor.report.printable import printable

        help_text = isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ()))  # Click >= 8.2
        exc.message = printable(exc.message, multiline=help_text)  # control characters escaped, as in reports
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the documented exit code 3
        import traceback

        from llmdoctor.report.printable import printable

        click.echo(printable(f"llmdoctor: internal error: {type(exc).__name__}: {exc}"), err=True)
        if os.environ.get("LLMDOCTOR_DEBUG"):
            traceback.print_exc()
        else:
            click.echo("Run again with LLMDOCTOR_DEBUG=1 for the traceback, and please report it.", err=True)
        sys.exit(3)
    sys.exit(code if isinstance(code, int) else 0)  # a command's ctx.exit(n), else success


FIX_HELP = """Apply a documented fix: plan, show, confirm, apply, verify. Every file it
touches is journaled, and `llmdoctor fix --undo` restores it byte for byte.

\b
  llmdoctor fix NAME [OPTIONS]         plan, show, confirm, apply, verify (also: fix --NAME)
  llmdoctor fix NAME --help            what the fix does and its options
  llmdoctor fix --list                 the fixes there are, plugins' included
  llmdoctor fix --undo [ENTRY]         undo the last fix (or ENTRY)
  llmdoctor fix --journal              what was applied, newest last
"""

FIX_EXIT_CODES = """\b
Exit codes:
  0  applied and verified, nothing to do, or a dry run
  1  no plan can be made here, the change was refused, failed, or did not verify
  2  usage error (bad option, no such fix, no such --python)
  3  internal error in llmdoctor itself
"""


def _common_fix_params() -> list:
    """What every fix sub-command takes besides its own Params."""
    return [click.Option(["--yes", "-y", "yes"], is_flag=True, help="Do not ask for confirmation."),
            click.Option(["--dry-run", "dry_run"], is_flag=True, help="Show the plan and stop."),
            click.Option(["--python", "python"], metavar="PATH", help=PYTHON_HELP),
            click.Option(["--shell", "shell"], type=click.Choice(SHELL_CHOICES, case_sensitive=False),
                         envvar="LLMDOCTOR_SHELL",
                         help="Write the commands it shows for this shell (default: the one llmdoctor runs in).")]


def _fix_io():
    from llmdoctor.fix.flow import Io
    from llmdoctor.report.printable import printable
    from llmdoctor.report.redact import redact

    def out(err):
        return lambda text: click.echo(printable(redact(text, os.environ), multiline=True), err=err, nl=False)

    ask = (lambda question: click.confirm(question, default=False)) if sys.stdin and sys.stdin.isatty() else None
    return Io(say=out(False), warn=out(True), confirm=ask)


def _synopsis(p) -> str:
    """A fix's Param as the usage line shows it: [URL], [--jobs N], [--force]."""
    if p.argument:
        return p.metavar if (p.metavar or "").startswith("[") else f"[{(p.metavar or p.key).upper()}]"
    if p.kind == "flag":
        return f"[--{p.name}]"
    return f"[--{p.name} {p.metavar or {'int': 'N', 'path': 'FILE'}.get(p.kind, 'TEXT')}]"


def _click_param(p):
    """A fix's declared Param (llmdoctor.fix.model.Param) as a click parameter."""
    kind = {"int": click.IntRange(p.minimum, p.maximum), "path": click.Path(dir_okay=False)}.get(p.kind, str)
    if p.argument:
        return click.Argument([p.key], required=False, type=kind, metavar=p.metavar)
    if p.kind == "flag":
        return click.Option([f"--{p.name}", p.key], is_flag=True, help=p.help)
    return click.Option([f"--{p.name}", p.key], type=kind, metavar=p.metavar, help=p.help)


class FixGroup(click.Group):
    """`llmdoctor fix`: one sub-command per registered fix, built on demand from what the fix
    declares (its description, its Params), plugin fixes alike; `fix --NAME` is `fix NAME`."""

    def _registry(self, ctx) -> dict:
        root = ctx.find_root()
        if not hasattr(root, "_llmdoctor_fixes"):
            from llmdoctor.fix.flow import registered

            root._llmdoctor_fixes = registered(warn=_fix_io().warn)
        return root._llmdoctor_fixes

    def list_commands(self, ctx):
        return sorted(self._registry(ctx))

    def get_command(self, ctx, name):
        fx = self._registry(ctx).get(name)
        if fx is None:
            return None
        return click.Command(name, help=fx.description + (f" (from {fx.source})" if fx.source != "builtin" else ""),
                             short_help=fx.description, epilog=FIX_EXIT_CODES,
                             params=[_click_param(p) for p in fx.params] + _common_fix_params(),
                             callback=lambda **kw: _run_fix(fx, kw))

    def format_commands(self, ctx, formatter):
        """Each fix with the options it declares (`fix NAME --help` says more about each)."""
        rows = []
        for name in self.list_commands(ctx):
            fx = self._registry(ctx)[name]
            usage = " ".join(_synopsis(p) for p in fx.params)
            rows.append((f"{name} {usage}".rstrip(), fx.description + (f" (from {fx.source})"
                                                                      if fx.source != "builtin" else "")))
        if rows:
            with formatter.section("Fixes"):
                formatter.write_dl(rows)

    def parse_args(self, ctx, args):
        known = set(self._registry(ctx))
        args = [a[2:] if a.startswith("--") and a[2:] in known else a for a in args]
        return super().parse_args(ctx, args)


def _run_fix(fx, kw):
    from llmdoctor.fix.flow import run

    parent = click.get_current_context().parent.params
    python = kw.pop("python", None) or parent.get("python")
    yes, dry_run = kw.pop("yes") or parent.get("yes"), kw.pop("dry_run") or parent.get("dry_run")
    shell = (kw.pop("shell", None) or "").lower() or _local_shell() or "sh"
    sys.exit(run(fx, kw, _target(python), _fix_io(), yes=yes, dry_run=dry_run, shell=shell))


@cli.group(cls=FixGroup, help=FIX_HELP, epilog=FIX_EXIT_CODES, invoke_without_command=True,
           subcommand_metavar="NAME [OPTIONS]")
@click.option("--list", "list_fixes", is_flag=True, help="List the fixes.")
@click.option("--journal", "show_journal", is_flag=True, help="List applied fixes.")
@click.option("--undo", "undo", is_flag=False, flag_value="", default=None, metavar="[ENTRY]",
              help="Restore the files of the last fix (or of ENTRY).")
@click.option("--force", is_flag=True, help="With --undo: restore even files changed since the fix.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show the plan and stop.")
@python_option
@click.pass_context
def fix(ctx, list_fixes, show_journal, undo, force, yes, dry_run, python):
    from llmdoctor.fix import flow as fixflow
    from llmdoctor.report.printable import printable

    if ctx.invoked_subcommand is not None:
        return
    if list_fixes:
        fixes = ctx.command._registry(ctx)
        width = max((len(i) for i in fixes), default=8) + 2
        for fix_id, f in sorted(fixes.items()):
            click.echo(printable(f"{fix_id:<{width}} {f.source:<10} {f.description}"))
    elif show_journal:
        entries = fixflow.entries()
        if not entries:
            click.echo("No fix has been applied.")
        for e in entries:
            click.echo(printable(e.describe()))
    elif undo is not None:
        sys.exit(fixflow.undo(undo or None, force, _fix_io()))
    else:
        names = ", ".join(ctx.command.list_commands(ctx))
        raise click.UsageError(f"name a fix ({names}), or --list, --journal, --undo")
