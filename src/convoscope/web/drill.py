"""Drill-down (issue 28 point 2): every count and rate a summary page or the dashboard shows links to the detail rows
behind it — the detail report's page, run, with the summary's brands, time zone, as-of time and filters, the cell's
period turned into its dates, the anchor the summary places its rows by, and the filters of the cell's column and
row. The page's Download CSV gives the same rows; each of them links to its conversation.

The mapping is data (`DRILLS`): per summary report and column, the detail rows its cells count (`Rows`). A rate, a
share or an average links to the rows it is computed over — its denominator — and names its numerator's filters,
which the detail page counts among them ("Of these, 412 have resolved=true", `part`), so that both numbers of the
fraction are a click away (decision 141). The links pin the summary's as-of time: a session that closes between
the two page loads would otherwise move between the figure and its rows.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from convoscope import reports
from convoscope.errors import ParameterError
from convoscope.reports.base import GUARDED_PREFIXES, Params, period_of_label
from convoscope.store import Store

if TYPE_CHECKING:
    from convoscope.web.reports import Prepared


@dataclass(frozen=True)
class Rows:
    """The detail rows a summary column's cells count: the detail report, the anchor that places them as the summary
    places its rows, the filters that select them (beyond the cell's period and dimension) and, for a fraction, the
    filters of its numerator among them."""

    detail: str
    anchor: str = "created"
    filters: tuple[str, ...] = ()
    numerator: tuple[str, ...] = ()


SESSIONS, CONTACTS, CONVERSATIONS = "sessions-detail", "contact-export", "conversation-export"
# SPEC 4.3's rates over the sessions: Resolution Rate over the closed sessions that were responded to (Resolved +
# responded and handed off), Handoff Rate over the closed ones, Recontact Rate over those whose value is known.
SESSION_RATES = {
    "resolution_rate": Rows(SESSIONS, filters=("closed=true", "responded=true"), numerator=("resolved=true",)),
    "handoff_rate": Rows(SESSIONS, filters=("closed=true",), numerator=("handed_off=true",)),
    "recontact_rate": Rows(SESSIONS, filters=("recontacted=known",), numerator=("recontacted=true",)),
    "durable_resolution_rate": Rows(SESSIONS, filters=("durable_resolution=known",),
                                    numerator=("durable_resolution=true",)),
    "negative_feedback_rate": Rows(SESSIONS, filters=("feedback=given",), numerator=("feedback=negative",)),
}
CLOSED = ("status=CLOSED",)  # automation-summary counts the closed conversations, placed by their creation
KNOWN = (*CLOSED, "automated_resolution=known")
DRILLS: dict[str, dict[str, Rows]] = {
    "sessions-summary": {
        "sessions": Rows(SESSIONS), "responded": Rows(SESSIONS, filters=("responded=true",)),
        "resolved": Rows(SESSIONS, filters=("resolved=true",)),
        "handed_off": Rows(SESSIONS, filters=("handed_off=true",)),
        "no_response": Rows(SESSIONS, filters=("outcome=no_response",)),
        "open": Rows(SESSIONS, filters=("outcome=open",)),
        **{k: SESSION_RATES[k] for k in ("resolution_rate", "handoff_rate", "recontact_rate")},
    },
    "outcomes-summary": {
        "resolved": Rows(SESSIONS, filters=("resolved=true",)),
        **{name: Rows(SESSIONS, filters=(f"resolution_class={name}",))
           for name in ("confirmed", "disputed", "came_back", "durable", "pending")},
        "feedback_given": Rows(SESSIONS, filters=("feedback=given",)),
        **{k: SESSION_RATES[k] for k in ("durable_resolution_rate", "negative_feedback_rate")},
    },
    "guide-effectiveness": {"sessions": Rows(SESSIONS), **SESSION_RATES},
    "handoff-funnel": {
        "handed_off": Rows(SESSIONS, filters=("handed_off=true",)),
        "contacts": Rows(SESSIONS, filters=("handed_off=true", "handoff_step=contact")),
        "first_responses": Rows(SESSIONS, filters=("handed_off=true", "handoff_step=first_response")),
        "median_first_response_seconds": Rows(SESSIONS, filters=("handed_off=true", "handoff_step=first_response")),
        "resolved_first_time": Rows(SESSIONS, filters=("handed_off=true", "handoff_step=resolved_first_time")),
        "came_back": Rows(SESSIONS, filters=("handed_off=true", "handoff_step=came_back")),
    },
    "contact-summary": {
        "contacts_ended": Rows(CONTACTS, "ended"), "inbound": Rows(CONTACTS, "ended", ("direction=INBOUND",)),
        "outbound": Rows(CONTACTS, "ended", ("direction=OUTBOUND",)),
        "from_handoff": Rows(CONTACTS, "ended", ("source=handoff",)),
        "avg_first_response_seconds": Rows(CONTACTS, "ended", ("responded=true",)),
        "median_first_response_seconds": Rows(CONTACTS, "ended", ("responded=true",)),
        "avg_duration_seconds": Rows(CONTACTS, "ended"), "avg_agent_messages": Rows(CONTACTS, "ended"),
    },
    "conversation-summary": {
        "conversations_closed": Rows(CONVERSATIONS, "last_closed"),
        "unique_customers": Rows(CONVERSATIONS, "last_closed"),
        "pct_multichannel": Rows(CONVERSATIONS, "last_closed", numerator=("multichannel=true",)),
        "pct_ai_only": Rows(CONVERSATIONS, "last_closed", numerator=("handled_by=ai_only",)),
        "pct_handed_off": Rows(CONVERSATIONS, "last_closed", numerator=("handed_off=true",)),
        **{name: Rows(CONVERSATIONS, "last_closed") for name in (
            "avg_count_of_sessions", "avg_count_of_contacts", "avg_count_of_channels", "avg_times_closed",
            "avg_created_to_last_closed_time_in_seconds")},
    },
    "automation-summary": {
        "conversations": Rows(CONVERSATIONS, filters=CLOSED),
        "with_ai": Rows(CONVERSATIONS, filters=(*CLOSED, "with_ai=true")),
        "team_only": Rows(CONVERSATIONS, filters=(*CLOSED, "handled_by=team_only")),
        "handed_off": Rows(CONVERSATIONS, filters=(*CLOSED, "handled_by=ai_then_team")),
        "ai_only_resolved": Rows(CONVERSATIONS, filters=(*CLOSED, "automated_resolution=true")),
        "pending": Rows(CONVERSATIONS, filters=(*CLOSED, "automated_resolution=unknown")),
        "automation_rate": Rows(CONVERSATIONS, filters=KNOWN, numerator=("automated_resolution=true",)),
        "ai_coverage": Rows(CONVERSATIONS, filters=KNOWN, numerator=("with_ai=true",)),
    },
}
# A summary's dimension (its `--by`, or a column of its own) as the detail's filter; None: the brand parameter.
BY_FILTER: dict[str, dict[str, str | None]] = {
    "automation-summary": {"channel": "first_channel", "ai_agent": "ai_agent", "brand": None},
}
# Summaries whose rows are per value of a column of their own, not of `--by`: its index, and its `--by` name.
OWN_DIMENSION = {"guide-effectiveness": (0, "guide"), "handoff-funnel": (1, "handoff_category")}
TOTAL = "Total"  # the label of a summary's totals row (reports.totals)


def unguarded(cell: str) -> str:
    """A dimension cell as the value it shows, without the quote SPEC 4.1 puts before a formula's first character in
    a CSV: a filter compares stored values."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in GUARDED_PREFIXES else cell


def period_dates(label: str) -> tuple[date, date]:
    """The first and last local day of the period `label` names (SPEC 4.1's labels)."""
    period = period_of_label(label)
    year = int(label[:4])
    match period:
        case "half_hour" | "day":
            day = date.fromisoformat(label[:10])
            return day, day
        case "week":
            first = date.fromisocalendar(year, int(label[6:8]), 1)
            return first, first + timedelta(days=6)
        case "month":
            month = int(label[5:7])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        case "quarter":
            last = 3 * int(label[6])
            return date(year, last - 2, 1), date(year, last, calendar.monthrange(year, last)[1])
        case "year":
            return date(year, 1, 1), date(year, 12, 31)
    raise ValueError(f"{label!r} is not a period's label")


def href(summary: str, params: Params, column: str, *, period: str | None = None,
         dimension: Sequence[tuple[str, str | None]] = ()) -> str | None:
    """The detail page of the rows behind `summary`'s `column` over `params`, in the row of `period` (a label; None or
    Total: the whole range) and of `dimension` (pairs of a `--by` key and the row's cell, None for an empty one);
    None when the column is not a figure with rows behind it."""
    rows = DRILLS.get(summary, {}).get(column)
    if rows is None:
        return None
    first, last = params.date_from, params.date_to
    where = [f"{key}={value}" for key, value in params.where]
    if period not in (None, TOTAL):
        assert period is not None
        start, end = period_dates(period)
        first, last = max(start, first) if first else start, min(end, last) if last else end
        if period_of_label(period) == "half_hour":  # part of a day: the label itself, read on the anchor
            where.append(f"period={period}")
    brands = [] if params.every_brand else list(params.brands)
    for key, cell in dimension:
        value = unguarded(cell) if cell is not None else ""
        name = BY_FILTER.get(summary, {}).get(key, key)
        if name is None:
            brands = [value]
        else:
            where.append(f"{name}={value}")
    query = [("from", first.isoformat()) if first else None, ("to", last.isoformat()) if last else None,
             ("tz", params.tz), ("as_of", params.as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
             ("anchor", rows.anchor) if rows.anchor != "created" else None,
             # The detail's --extra columns hold what many figures filter on (Outcome, Ended At, Durable Resolution,
             # Resolution Class, Feedback): the rows behind a figure show them.
             ("extra", "true") if reports.REPORTS[rows.detail].extra_columns else None]
    pairs = [pair for pair in query if pair is not None]
    pairs += [("where", item) for item in [*where, *rows.filters]] + [("brand", brand) for brand in brands]
    pairs += [("of", item) for item in rows.numerator]
    return f"/reports/{rows.detail}?" + urlencode([*pairs, ("run", "1")])


def linker(prepared: Prepared) -> Callable[[Sequence[str | None]], list[str | None]]:
    """For a summary's page: the href of each cell of a row (exactly as its CSV cells; the totals row with its label
    Total), None for a cell that is not a figure with rows behind it."""
    report, params = prepared.report, prepared.params
    snakes = [c.snake for c in report.output_columns(params)]
    if report.name not in DRILLS:
        return lambda row: [None] * len(snakes)
    own = OWN_DIMENSION.get(report.name)

    def links(row: Sequence[str | None]) -> list[str | None]:
        total = row[0] == TOTAL if report.takes_period else False
        period = row[0] if report.takes_period else None
        dimension: list[tuple[str, str | None]] = []
        if own is not None and not total:
            dimension.append((own[1], row[own[0]]))
        elif params.by and not total:
            dimension.append((params.by, row[1]))
        return [href(report.name, params, snake, period=period, dimension=dimension) if cell is not None else None
                for snake, cell in zip(snakes, row, strict=True)]

    return links


@dataclass(frozen=True)
class Part:
    """The rows of a detail page that are a fraction's numerator: how many, their share, and their page."""

    count: int
    label: str
    share: str
    href: str


def part(store: Store, prepared: Prepared, of: list[str], query: list[tuple[str, str]], total: int) -> Part | None:
    """With a drill-down link's `of` filters: how many of the page's `total` rows they keep, and the link to those
    rows (the page's query with them added). None without `of`, or with a filter the report does not take. Run after
    the page's table, whose run brought the derived tables up to date."""
    if not of:
        return None
    try:
        narrowed = reports.build_params(prepared.report, prepared.config, list(prepared.params.brands),
                                        where=[f"{k}={v}" for k, v in prepared.params.where] + of)
    except ParameterError:
        return None
    params = replace(prepared.params, where=narrowed.where)
    count = reports.count_rows(store, prepared.config, prepared.report, params)
    share = "" if not total else f"{(Decimal(100 * count) / total).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"
    kept = [("where", item) for item in of]
    return Part(count, "have " + " and ".join(of), share,
                f"/reports/{prepared.report.name}?" + urlencode([*query, *kept, ("run", "1")]))
