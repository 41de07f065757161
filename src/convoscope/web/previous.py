"""The dashboard's headline beside the period before (issue 28 point 3): for a range of N days, the same figures over
the N days just before its first, with the same brands, zone and as-of time, and how each changed — a count in per
cent of the one before, a rate in percentage points.

The figures before are the sessions-summary's totals row (`web.reports.totals`) with only the dates replaced: the
very numbers that period's own dashboard shows as its headline, which the comparison links to. A range without a
first or a last day has no period of equal length before it, and a period before without sessions nothing to
compare with: the page says so instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from convoscope.store import Store
from convoscope.web.reports import Prepared, totals
from convoscope.web.server import ReportForm, Server

COUNT = "sessions"
RATES = ("resolution_rate", "handoff_rate", "recontact_rate")
TENTH = Decimal("0.1")


@dataclass(frozen=True)
class Change:
    """One headline figure against the period before: that period's cell (`previous`, the CSV's) and the change
    as the page writes it (`+12.3%`, `-4.1 pts`), or why there is none (`shown` then says it, `delta` is None)."""

    figure: str
    previous: str | None
    delta: str | None
    shown: str


@dataclass(frozen=True)
class Previous:
    """The period before the dashboard's range, with its dashboard's address; `changes` by figure, empty when
    `note` says why there is nothing to compare with."""

    date_from: date | None
    date_to: date | None
    url: str | None
    changes: dict[str, Change]
    note: str | None

    @property
    def label(self) -> str:
        return f"{self.date_from} – {self.date_to}" if self.date_from and self.date_to else ""


def previous_range(first: date, last: date) -> tuple[date, date]:
    """The N days just before `first`, N being the days first…last."""
    days = (last - first).days + 1
    return first - timedelta(days=days), first - timedelta(days=1)


def compare(server: Server, store: Store, prepared: Prepared, form: ReportForm,
            now: dict[str, str | None] | None) -> Previous:
    """The headline (`now`, the totals by snake header; None without sessions) beside the period before the
    dashboard's range (`prepared`: its sessions-summary, parameters checked)."""
    params = prepared.params
    if params.date_from is None or params.date_to is None:
        return Previous(None, None, None, {}, "Set a From and a To date to compare with the period before.")
    first, last = previous_range(params.date_from, params.date_to)
    url = "/dashboard?" + urlencode(replace(form, date_from=first.isoformat(), date_to=last.isoformat()).query())
    before = totals(server, store, replace(prepared, params=replace(params, date_from=first, date_to=last)))
    if before is None:
        return Previous(first, last, url, {}, f"No sessions the period before ({first} – {last}).")
    names = [c.snake for c in prepared.report.output_columns(replace(params, by=None))[1:]]
    cells = dict(zip(names, before[1:], strict=True))
    current = now or {}
    changes = {COUNT: _count_change(current.get(COUNT), cells[COUNT])}
    changes |= {rate: _rate_change(rate, current.get(rate), cells[rate]) for rate in RATES}
    return Previous(first, last, url, changes, None)


def _count_change(now: str | None, before: str | None) -> Change:
    """Sessions now against before (never zero: a period without sessions has no totals), in per cent of before,
    one decimal, with the number before: `+12.3% (1,234)`."""
    was = int(before or 0)
    if not was:
        return Change(COUNT, before, None, "no sessions the period before")
    delta = _signed((Decimal(int(now or 0) - was) * 100 / was).quantize(TENTH, rounding=ROUND_HALF_UP)) + "%"
    return Change(COUNT, before, delta, f"{delta} ({was:,})")


def _rate_change(figure: str, now: str | None, before: str | None) -> Change:
    """A rate now against before in percentage points, one decimal, with the rate before: `+4.1 pts (62.3%)`; none
    when either has no denominator."""
    if not before:
        return Change(figure, before, None, "no rate the period before")
    if not now:
        return Change(figure, before, None, "no rate in this range")
    delta = _signed(((Decimal(now) - Decimal(before)) * 100).quantize(TENTH, rounding=ROUND_HALF_UP)) + " pts"
    return Change(figure, before, delta, f"{delta} ({(Decimal(before) * 100).quantize(TENTH, rounding=ROUND_HALF_UP)}%)")


def _signed(value: Decimal) -> str:
    return f"+{value}" if value > 0 else f"{value}" if value < 0 else "±0.0"
