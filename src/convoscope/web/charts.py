"""What the dashboard's charts draw over time (SPEC 4.1, Appendix B), and how it writes a rate: a summary's cells
as numbers on an axis of every period of the range. A period without rows is drawn as zero for a count and as a gap for a rate (its
denominator is zero), and an empty rate cell (a zero denominator within a period) as a gap, never as zero.

The dashboard's sessions section (`web/dashboard.py`) and its outcomes section (`web/outcomes_dashboard.py`) both
draw through here, so their axes and gaps follow one rule.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date

from convoscope import reports
from convoscope.reports.base import Params
from convoscope.store import Store
from convoscope.web import formats

MAX_FILLED_DAYS = {"half_hour": 93}  # beyond this a chart shows only the periods with rows
MAX_DAYS = 36_600

Number = int | float | None


def number(cell: str | None) -> Number:
    """A report cell as a number; an empty cell is None (drawn as a gap)."""
    if cell is None or cell == "":
        return None
    return int(cell) if cell.lstrip("-").isdigit() else float(cell)


def series(labels: Sequence[str], names: Sequence[str], rows: Sequence[tuple[str | None, ...]],
           rates: Collection[str]) -> dict[str, list[Number]]:
    """Per column of `names` (the cells after Period), its value in each period of `labels`: the row's cell as a
    number, and for a period without a row zero for a count and None for a rate (Appendix B: a rate whose
    denominator is zero is a gap; counts stay zero)."""
    found = {row[0]: row for row in rows if row[0] is not None}
    return {name: [number(found[label][i]) if label in found else (None if name in rates else 0)
                   for label in labels]
            for i, name in enumerate(names, start=1)}


def first_day(label: str, period: str) -> date | None:
    """The first local day of the period labelled `label` (SPEC 4.1 labels)."""
    try:
        match period:
            case "half_hour" | "day":
                return date.fromisoformat(label[:10])
            case "week":
                year, week = label.split("-W")
                return date.fromisocalendar(int(year), int(week), 1)
            case "month":
                return date(int(label[:4]), int(label[5:7]), 1)
            case "quarter":
                year, quarter = label.split("-Q")
                return date(int(year), 3 * int(quarter) - 2, 1)
            case "year":
                return date(int(label), 1, 1)
    except ValueError:
        return None
    return None


def axis(store: Store, params: Params, found: list[str]) -> list[str]:
    """Every period label of the range (from its first to its last day, or the rows' when the range is open),
    so that a chart shows the periods without rows; just the labels `found` when the range is too long to draw
    every period. The labels come from the summaries' own `period_label`."""
    period = params.period or "day"
    first = params.date_from or (first_day(found[0], period) if found else None)
    last = params.date_to or (first_day(found[-1], period) if found else None)
    if first is None or last is None or first > last:
        return found
    if (last - first).days + 1 > MAX_FILLED_DAYS.get(period, MAX_DAYS):
        return found
    labels = reports.period_labels(store, params, first, last)
    return labels if set(found) <= set(labels) else found  # never hide a period that has rows


def percent(cell: str | None) -> str:
    """A rate cell (`0.5333`) as a page shows a rate (`53.3%`, one decimal: `formats.rate`); an empty cell (a zero
    denominator) as `–`."""
    return formats.rate(cell)
