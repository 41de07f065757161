"""The date range of a report's form (issue 28), shared by the report pages, the dashboard and the What-if page: the
presets beside From and To, and where the selected brands' events are, for a range that holds no rows. Both are
local dates in the zone the page reads its report in: the form's `tz`, else the brand's (`reports.zone_for`).

A preset is a plain link, the page's own query with `from` and `to` set: it works without JavaScript, and its
dates can be read before it is followed. It carries the parameters the page was shown with, not a field changed
since (that takes the form's button).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from convoscope.config import Config
from convoscope.errors import ParameterError
from convoscope.reports import zone_for
from convoscope.reports.filters import event_span
from convoscope.store import Store


@dataclass(frozen=True)
class Preset:
    """A named range of local dates, both ends inclusive (SPEC 4's `from` and `to`)."""

    key: str  # the link's `data-preset`
    label: str
    date_from: date
    date_to: date


def presets(today: date, span: tuple[date, date] | None = None) -> list[Preset]:
    """The presets around `today`, a local date: today; the last 7 and the last 30 days, today the last of them;
    this month, from its first day to today (a later day has no data yet, and a chart would draw it as zero);
    the previous month, whole. Then the whole data, `span`'s first to last date, when the brands have events."""
    month = today.replace(day=1)
    previous_end = month - timedelta(days=1)
    found = [
        Preset("today", "Today", today, today),
        Preset("last-7-days", "Last 7 days", today - timedelta(days=6), today),
        Preset("last-30-days", "Last 30 days", today - timedelta(days=29), today),
        Preset("this-month", "This month", month, today),
        Preset("previous-month", "Previous month", previous_end.replace(day=1), previous_end),
    ]
    if span is not None:
        found.append(Preset("whole-data", "The whole data", *span))
    return found


@dataclass
class Ranges:
    """What a page shows about its range: its zone, each preset with its link, and the first and last local date of
    the selected brands' events (None: they have none)."""

    zone: str
    links: list[tuple[Preset, str, bool]]  # the preset, its link, whether the form's range is that preset's
    span: tuple[date, date] | None
    brands: list[str]
    every_brand: bool

    def where(self) -> str:
        """Where the data is, in a sentence: `Brand acme has events from 2026-05-01 to 2026-05-30 (UTC).`"""
        if not self.brands:
            return "There are no events you may see yet."
        if len(self.brands) == 1:
            subject, has = f"Brand {self.brands[0]}", "has"
        elif self.every_brand:
            subject, has = "Your brands", "have"
        else:
            subject, has = f"Brands {', '.join(self.brands)}", "have"
        if self.span is None:
            return f"{subject} {has} no events yet."
        return f"{subject} {has} events from {self.span[0]} to {self.span[1]} ({self.zone})."


def page_zone(config: Config, brands: list[str], tz: str | None) -> str:
    """The zone of the page's dates: its report's (`reports.zone_for`); while the form's `tz` is no zone (the page
    says so beside the field), the one it would be without it."""
    try:
        return zone_for(config, brands, tz)
    except ParameterError:
        return zone_for(config, brands)


def ranges(store: Store, config: Config, *, path: str, query: list[tuple[str, str]], tz: str | None,
           chosen: list[str], visible: list[str], now: datetime | None = None) -> Ranges:
    """The presets of the page at `path`, each a link of its `query` (the API's names, as the page was asked) with
    `from` and `to` set, and where the events are: of the `chosen` brands that are `visible` to the caller, or of
    every visible brand when none is chosen. `now`: the instant whose local date is today."""
    brands = [b for b in dict.fromkeys(chosen) if b in visible] if chosen else list(visible)
    zone = page_zone(config, brands, tz)
    instants = event_span(store, brands) if brands else None
    span = None
    if instants is not None:
        first, last = (instant.astimezone(ZoneInfo(zone)).date() for instant in instants)
        span = (first, last)
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).date()
    given = dict(query)
    kept = [(key, value) for key, value in query if key not in ("from", "to")]
    links = []
    for preset in presets(today, span):
        dates = [("from", preset.date_from.isoformat()), ("to", preset.date_to.isoformat())]
        current = given.get("from") == dates[0][1] and given.get("to") == dates[1][1]
        links.append((preset, f"{path}?{urlencode([*dates, *kept])}", current))
    return Ranges(zone, links, span, brands, not chosen)
