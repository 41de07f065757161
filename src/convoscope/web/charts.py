"""What the charts draw (SPEC 4.1, Appendix B as revised by issue 28), and how the dashboard writes a rate: a
summary's cells as numbers on an axis of every period of the range. A period without rows is drawn as zero for a
count and as a gap for a rate (its denominator is zero) or another figure (an average of nothing), and an empty rate
cell (a zero denominator within a period) as a gap, never as zero.

The dashboard's sessions section (`web/dashboard.py`), its outcomes section (`web/outcomes_dashboard.py`) and the
chart above a summary report's table (`report_chart`, drawn by static/report_chart.js) all draw through here, so
their axes and gaps follow one rule.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from convoscope import reports
from convoscope.reports.base import Column, Params, Report
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


# --- a report page's chart (issue 28 point 3) -------------------------------------------------------------------

CHART_ROWS = 5_000  # a summary's rows a page draws at most (a summary by day over years and a dimension: ~10^4)
TOP_SERIES = 8  # dimension values drawn each as a series; the others fold into one "Other" for counts
FIGURE_KINDS = ("count", "rate", "percent", "number", "duration")
OTHER = "Other"
NONE_LABEL = "(none)"
# Reports without periods drawn as one bar per row, by the column naming the row.
PER_ROW = {"guide-effectiveness": "Guide", "handoff-themes": "Label"}


def draws(report: Report) -> bool:
    """Whether a report's page has a chart: every summary (a report with periods), and the per-row summaries."""
    return report.default_period is not None or report.name in PER_ROW


def _figures(columns: Sequence[Column]) -> tuple[list[int], list[int]]:
    """The positions of a report's figures (the numbers from its first count on: a theme's number is not one) and
    of the columns naming a row before them (a dimension, a category, a source), Period and numbers excepted."""
    first = next((i for i, c in enumerate(columns) if c.kind == "count"), len(columns))
    figures = [i for i in range(first, len(columns)) if columns[i].kind in FIGURE_KINDS]
    names = [i for i in range(first) if columns[i].kind not in FIGURE_KINDS and columns[i].display != "Period"]
    return figures, names


def _scale(column: Column) -> str | None:
    """How a figure is drawn: a rate (`0.5333`, a fraction) or a percentage (`% AI Only`: `53.33`) on a percent
    axis, a duration in seconds as `3m 05s`; other numbers as they are."""
    return {"rate": "fraction", "percent": "percent", "duration": "duration"}.get(column.kind)


def report_chart(store: Store, report: Report, params: Params, rows: Sequence[tuple[str | None, ...]],
                 count: int) -> dict[str, Any]:
    """What static/report_chart.js draws above a report's table: `rows` (the report's first CHART_ROWS rows for the
    page's parameters, of `count`) as one series per value of the columns naming a row (`--by`, handoff-funnel's
    category, the sources' source, way in and reason), over every period of the range; or, for a per-row summary,
    one bar per row. Every figure is there, for the page's select; the first count is drawn first."""
    columns = report.output_columns(params)
    figures, names = _figures(columns)
    described = [{"snake": columns[i].snake, "display": columns[i].display, "kind": columns[i].kind,
                  "scale": _scale(columns[i])} for i in figures]
    base = {"figures": described, "default": described[0]["snake"] if described else None, "rows": len(rows),
            "count": count, "capped": count > len(rows), "cap": CHART_ROWS}
    if report.default_period is None:
        return base | _per_row(columns, figures, rows, [c.display for c in columns].index(PER_ROW[report.name]))
    return base | _over_time(store, params, columns, figures, names, rows)


def _per_row(columns: Sequence[Column], figures: list[int], rows: Sequence[tuple[str | None, ...]],
             label: int) -> dict[str, Any]:
    """One bar per row, in the report's order; an empty cell is a gap (a rate without a denominator)."""
    labels = [row[label] if row[label] is not None else NONE_LABEL for row in rows]
    values = {columns[i].snake: [number(row[i]) for row in rows] for i in figures}
    return {"kind": "rows", "labels": labels, "series": [{"label": "", "values": values}], "folded": 0}


def _over_time(store: Store, params: Params, columns: Sequence[Column], figures: list[int], names: list[int],
               rows: Sequence[tuple[str | None, ...]]) -> dict[str, Any]:
    """One series per value of the naming columns (one series without them) over the axis of every period: the
    TOP_SERIES values with the most of the first count, then, for counts only, the rest summed as Other (rates and
    averages are never summed)."""
    labels = axis(store, params, list(dict.fromkeys(label for label, *_ in rows if label is not None)))
    snakes = [columns[i].snake for i in figures]
    gaps = {columns[i].snake for i in figures if columns[i].kind != "count"}
    groups: dict[str, list[tuple[str | None, ...]]] = {}
    for row in rows:
        key = " / ".join(NONE_LABEL if row[i] is None else str(row[i]) for i in names)
        groups.setdefault(key, []).append((row[0], *(row[i] for i in figures)))
    if not names:
        groups.setdefault("", [])  # no rows at all: still every period, zero counts and gaps
    drawn = {key: series(labels, snakes, found, gaps) for key, found in groups.items()}
    first = snakes[0] if snakes else None

    def weight(key: str) -> float:
        return sum(v or 0 for v in drawn[key][first]) if first else 0

    ranked = sorted(drawn, key=lambda key: -weight(key))  # stable: the report's order among equals
    shown = [{"label": key, "values": drawn[key]} for key in ranked[:TOP_SERIES]]
    rest = ranked[TOP_SERIES:]
    if rest:
        counts = [s for s in snakes if s not in gaps]
        shown.append({"label": f"{OTHER} ({len(rest)})", "values": {
            s: [sum(drawn[key][s][at] or 0 for key in rest) for at in range(len(labels))] for s in counts}})
    return {"kind": "periods", "labels": labels, "series": shown, "folded": len(rest), "period": params.period}
