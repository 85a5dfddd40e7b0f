"""The command-line side of `llmdoctor check --distributed` and of replaying a cluster report."""

from __future__ import annotations

import json
import os
import sys

import click


def _echo_report(report, doc, as_json: bool, verbose: bool, width, color, unicode, wrap, shell=None) -> None:
    from llmdoctor.report.printable import json_text
    from llmdoctor.report.redact import redact
    from llmdoctor.report.render import terminal

    if as_json:
        from llmdoctor.platforms.encoding import write_json

        write_json(json_text(redact(json.dumps(doc, indent=2, ensure_ascii=False, default=str), dict(os.environ))))
    else:
        click.echo(terminal(report, verbose=verbose, width=width, color=color, unicode=unicode, wrap=wrap,
                            shell=shell), nl=False)
    sys.stdout.flush()


def check(distributed: bool, replay_file, load_replay, python, offline, only, skip, as_json, verbose, strict,
          rank_timeout: float, *, width=None, color=False, unicode=True, wrap=True, shell=None) -> int | None:
    """Run the distributed check (or replay a cluster report); None when ``replay_file`` is an
    ordinary report, which the plain path handles. ``shell(facts)``: the shell fix commands are
    written for."""
    from llmdoctor.report.envelope import ReplayError, exit_code
    from llmdoctor.distributed.cluster import is_cluster_document, replay, to_document

    if not distributed:
        data = load_replay(replay_file)
        if not is_cluster_document(data):
            return None
        try:
            report, envelopes, states = replay(data, only=only, skip=skip)
        except ReplayError as exc:
            raise click.BadParameter(f"{replay_file}: {exc}", param_hint="--replay") from None
        chosen = shell(report.facts) if shell else None
        _echo_report(report, to_document(report, envelopes, states, chosen), as_json, verbose, width, color,
                     unicode, wrap, chosen)
        return int(exit_code(report.findings, strict))
    if replay_file:
        raise click.UsageError("--distributed probes the nodes of a running job; --replay reads a saved report: "
                               "use one of them")
    from llmdoctor.distributed.run import Usage, catch_sigterm, run

    catch_sigterm()
    try:
        out = run(python, offline, only, skip, timeout_s=rank_timeout)
    except Usage as exc:
        click.echo(str(exc), err=True)
        return 2
    code = out.code
    if out.report is not None:
        chosen = shell(out.report.facts) if shell else None
        _echo_report(out.report, to_document(out.report, out.envelopes, out.states, chosen), as_json, verbose,
                     width, color, unicode, wrap, chosen)
        code = int(exit_code(out.report.findings, strict))
    if out.info.world_size > 1:
        # a process group whose peers died can hang in its destructor: leave without one
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
