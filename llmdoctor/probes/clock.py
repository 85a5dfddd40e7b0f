"""The date and time a report was made: checks read "today" from here, never from the clock,
so that ``--replay`` of a saved report gives the same verdicts on any day."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from llmdoctor.probes.base import ProbeContext


@dataclass(frozen=True)
class ClockFacts:
    now_utc: str  #: ISO 8601, seconds, with the UTC offset
    today: str  #: the local date, ISO (what "end of life reached" is judged against)
    source: str = "clock"  #: "clock", or "report created" for a replayed report that predates this fact

    @property
    def date(self) -> datetime.date:
        return datetime.date.fromisoformat(self.today[:10])


def probe_clock(ctx: ProbeContext) -> ClockFacts:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return ClockFacts(now_utc=now.isoformat(), today=datetime.date.today().isoformat())


def from_created(created) -> ClockFacts | None:
    """A saved report's ``created`` stamp as the clock fact (reports made before the clock probe)."""
    try:
        when = datetime.datetime.fromisoformat(str(created))
    except (TypeError, ValueError):
        return None
    return ClockFacts(now_utc=when.isoformat(), today=when.date().isoformat(), source="report created")
