"""The dashboard's Outcomes section (issue 26 points 2-5): what became of the resolved sessions and how much of all
demand the AI resolved alone, per period; the handoff funnel over the range; and the guides with the most sessions.

Every figure is a cell of a report run through `web.reports`' data path with the dashboard's filters — the
outcomes-summary, the automation-summary, the handoff-funnel's totals row (one row over every category, as its
report page shows it) and the guide-effectiveness — judged at the as-of time of the sessions section, so that the
whole page shows one instant. The charts draw those cells and nothing else (`web/charts.py`: a rate without a
denominator is a gap, a count is zero). None of these reports holds messages: running them audits nothing.

A module of its own beside `web/dashboard.py`, which routes the page and builds its sessions section: together
they would come to some 350 lines of the ring's 450 with no room for the next section, and this one reads on its
own — four reports, each with its links and its definitions line. What both sections draw with is `web/charts.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from convoscope.reports.automation import AUTOMATION_SUMMARY
from convoscope.reports.base import Report
from convoscope.reports.dashboard import NONE_LABEL  # the sessions that used no guide, as the top lists say
from convoscope.reports.funnel import HANDOFF_FUNNEL
from convoscope.reports.outcomes import GUIDE_EFFECTIVENESS, OUTCOMES_SUMMARY
from convoscope.store import Store
from convoscope.web import charts, formats
from convoscope.web.reports import Prepared, prepare, run, totals
from convoscope.web.server import Caller, ReportForm, Server

OUTCOME_RATES = ("durable_resolution_rate", "negative_feedback_rate")
OUTCOME_CLASSES = ("confirmed", "disputed", "came_back", "durable", "pending")  # Resolution Class, stacked
AUTOMATION_RATES = ("automation_rate", "ai_coverage")
OVER_TIME = (("outcomes-summary", OUTCOME_RATES), ("automation-summary", AUTOMATION_RATES))  # charted per period
FUNNEL_STEPS = ("handed_off", "contacts", "first_responses", "resolved_first_time", "came_back")
FUNNEL_MEDIAN = "median_first_response_seconds"
GUIDE_RATES = frozenset({"resolution_rate", "durable_resolution_rate", "handoff_rate", "negative_feedback_rate",
                         "recontact_rate"})
TOP_GUIDES = 10


@dataclass(frozen=True)
class Source:
    """A report the section runs, where a user finds it with the same filters (its page, run, and its CSV), and
    the definitions it ran with."""

    name: str
    page_url: str
    csv_url: str
    definitions: str


@dataclass(frozen=True)
class Figure:
    """One cell shown as a number: the report's cell (`value`, kept in `data-value`) and how the page writes it."""

    snake: str
    display: str
    value: str | None
    shown: str
    numeric: bool = True


@dataclass(frozen=True)
class Step:
    """A step of the handoff funnel over the range: its count, and its share of the first step."""

    snake: str
    display: str
    count: int
    share: str  # a percentage with 2 decimals; '–' when the first step is zero


@dataclass(frozen=True)
class Guide:
    """A row of guide-effectiveness: its Guide cell (None for the sessions without one) and its figures."""

    guide: str | None
    label: str
    figures: list[Figure]


@dataclass
class Outcomes:
    """Everything the section shows; `chart` is what dashboard.js draws, by canvas."""

    sources: dict[str, Source]
    steps: list[Step]
    median: Figure
    guide_headers: list[tuple[str, str, bool]]  # guide-effectiveness's columns: snake, display, whether numeric
    guides: list[Guide]
    guide_count: int
    chart: dict[str, Any]


def outcomes(server: Server, store: Store, caller: Caller, form: ReportForm, base: Prepared) -> Outcomes:
    """The section for the dashboard's `form`, whose sessions-summary `base` is already prepared (its parameters
    checked: the same ones serve every report here, guide-effectiveness without a period, with the configuration
    and the as-of time `base` was prepared with)."""

    def prepared(report: Report) -> Prepared:
        found = prepare(server, store, caller, report.name, "page", brands=list(form.brands),
                        date_from=form.date_from, date_to=form.date_to, tz=form.tz,
                        period=form.period if report.takes_period else None, config=base.config)
        return replace(found, params=replace(found.params, as_of=base.params.as_of))

    runs = {report.name: prepared(report)
            for report in (OUTCOMES_SUMMARY, AUTOMATION_SUMMARY, HANDOFF_FUNNEL, GUIDE_EFFECTIVENESS)}
    sources = {name: _source(form, p) for name, p in runs.items()}
    chart: dict[str, Any] = {}
    for name, rates in OVER_TIME:
        p = runs[name]
        names = dict(_headers(p))
        rows = run(server, store, p, given={}).rows
        labels = charts.axis(store, p.params, [row[0] for row in rows if row[0] is not None])
        values = charts.series(labels, list(names)[1:], rows, rates)
        chart[f"{name}-rates"] = _chart("rates", labels, names, values, rates)
        if name == OUTCOMES_SUMMARY.name:
            chart[f"{name}-classes"] = _chart("stacked", labels, names, values, OUTCOME_CLASSES)
    steps, median = _funnel(server, store, runs[HANDOFF_FUNNEL.name])
    chart["handoff-funnel"] = {"kind": "funnel", "labels": [step.display for step in steps],
                               "datasets": [{"figure": "steps", "label": "Handoff funnel",
                                             "values": [step.count for step in steps]}],
                               "shares": [step.share for step in steps]}
    guide_headers, guides = _guides(server, store, runs[GUIDE_EFFECTIVENESS.name])
    return Outcomes(sources=sources, steps=steps, median=median, guide_headers=guide_headers,
                    guides=guides[:TOP_GUIDES], guide_count=len(guides), chart=chart)


def _headers(prepared: Prepared) -> list[tuple[str, str]]:
    return [(c.snake, c.display) for c in prepared.report.output_columns(prepared.params)]


def _source(form: ReportForm, prepared: Prepared) -> Source:
    """Links to the report with the dashboard's filters: a report without periods gets none."""
    name = prepared.report.name
    query = urlencode((form if prepared.report.takes_period else replace(form, period=None)).query())
    return Source(name, f"/reports/{name}?{query}&run=1", f"/api/v1/reports/{name}?{query}", prepared.definitions)


def _chart(kind: str, labels: list[str], names: dict[str, str], values: dict[str, list[charts.Number]],
           shown: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": kind, "labels": labels,
            "datasets": [{"figure": snake, "label": names[snake], "values": values[snake]} for snake in shown]}


def _funnel(server: Server, store: Store, prepared: Prepared) -> tuple[list[Step], Figure]:
    """The handoff-funnel over the whole range: its totals row, the one its report page shows under the rows
    (every category, SPEC-style nested steps: decision 118). No handed-off session: every step zero."""
    headers = _headers(prepared)
    whole = dict(zip([snake for snake, _ in headers], totals(server, store, prepared) or (), strict=False))
    names = dict(headers)
    counts = [int(whole.get(snake) or 0) for snake in FUNNEL_STEPS]
    steps = [Step(snake, names[snake], count, _share(count, counts[0])) for snake, count in zip(FUNNEL_STEPS, counts,
                                                                                               strict=True)]
    cell = whole.get(FUNNEL_MEDIAN)
    median = Figure(FUNNEL_MEDIAN, names[FUNNEL_MEDIAN], cell, _duration(cell))
    return steps, median


def _guides(server: Server, store: Store, prepared: Prepared) -> tuple[list[tuple[str, str, bool]], list[Guide]]:
    """Every row of guide-effectiveness, most sessions first (then the report's own order, by guide)."""
    headers = _headers(prepared)
    texts = [c.text for c in prepared.report.output_columns(prepared.params)]
    rows = run(server, store, prepared, given={}).rows
    guides = []
    for row in sorted(rows, key=lambda r: -int(r[1] or 0)):
        figures = []
        for (snake, display), text, cell in zip(headers[1:], texts[1:], row[1:], strict=True):
            if snake in GUIDE_RATES:
                figures.append(Figure(snake, display, cell, charts.percent(cell)))
            else:
                figures.append(Figure(snake, display, cell, cell or "", numeric=not text))
        guides.append(Guide(row[0], row[0] if row[0] is not None else NONE_LABEL, figures))
    return [(snake, display, not text) for (snake, display), text in zip(headers, texts, strict=True)], guides


def _share(count: int, first: int) -> str:
    """`count` as a percentage of `first`, as a page shows a rate (one decimal); `–` when `first` is zero."""
    return formats.share(count, first)


def _duration(cell: str | None) -> str:
    """Seconds (`754.50`) as a page shows a duration (`12m 35s`); `–` when there is none."""
    return formats.duration(cell) or "–"
