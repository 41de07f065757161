"""Drill-down from every number (issue 28 point 2): each figure of the dashboard and each count, rate, share and
average of every summary page links to the detail rows behind it, and those rows — fetched as the API's CSV with
the link's own query — count (or average) to the figure; a rate's rows are its denominator, and its numerator is
the `of` filters among them. Also the filters and the `--anchor` this needs, on the command line.

The store is a generated brand, its days far enough in the past that every window has passed.
"""

from __future__ import annotations

import html
import re
import statistics
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from cli_helpers import Convoscope, assert_usage_error, ev, parse
from web_helpers import Served, csv_dicts, generate_brand, past_start, served_to_analyst

START = past_start(60)
AS_OF = "2026-11-01T00:00:00Z"  # after every generated day, before now


Site = Served


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("drill"))
    generate_brand(store, customers=150, days=5, seed=7, start=START)
    with served_to_analyst(store) as site:
        yield site


FETCHED: dict[tuple[int, str, tuple[str, ...]], list[dict[str, str]]] = {}


def behind(site: Site, href: str, *more: str) -> list[dict[str, str]]:
    """The rows a drill-down link leads to, as the API's CSV with the link's query (and `more` filters); fetched
    once per store and link (many figures share one: a tile and its Total cell, a rate's numerator and a count)."""
    key = (id(site), html.unescape(href), more)
    if key not in FETCHED:
        FETCHED[key] = _fetch(site, href, *more)
    return FETCHED[key]


def _fetch(site: Site, href: str, *more: str) -> list[dict[str, str]]:
    url = urlsplit(html.unescape(href))
    assert url.path.startswith("/reports/"), href
    query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k not in ("run", "of")]
    answer = site.api.get("/api/v1/reports/" + url.path.removeprefix("/reports/"),
                          params=[*query, *(("where", w) for w in more), ("headers", "snake")])
    assert answer.status_code == 200, (href, answer.text)
    return csv_dicts(answer.text)


def numerator(href: str) -> list[str]:
    return [v for k, v in parse_qsl(urlsplit(html.unescape(href)).query) if k == "of"]


def fraction(part: int, whole: int, places: int, scale: int = 1) -> str:
    return str((Decimal(part * scale) / whole).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


# What an average or a median of a summary is computed from: the detail's column.
AVERAGED = {
    "avg_first_response_seconds": "first_response_seconds", "avg_duration_seconds": "duration_seconds",
    "avg_agent_messages": "agent_messages", "avg_count_of_sessions": "count_of_sessions",
    "avg_count_of_contacts": "count_of_contacts", "avg_count_of_channels": "count_of_channels",
    "avg_times_closed": "times_closed",
    "avg_created_to_last_closed_time_in_seconds": "created_to_last_closed_time_in_seconds",
}
MEDIANS = {"median_first_response_seconds": "first_response_seconds"}


def check(site: Site, where: str, column: str, value: str, href: str) -> None:
    """The rows behind `href` make `value`, the figure of `column` shown at `where`."""
    rows = behind(site, href)
    parts = numerator(href)
    if parts:  # a rate or a share: the rows are its denominator, `of` its numerator among them
        assert rows, (where, column, href)
        part = len(behind(site, href, *parts))
        percent = column.startswith("pct_")
        assert value == fraction(part, len(rows), 2 if percent else 4, 100 if percent else 1), (where, column, href)
    elif column == "unique_customers":
        assert int(value) == len({(r["brand"], r["customer_id"]) for r in rows}), (where, column)
    elif column in AVERAGED:
        cells = [int(r[AVERAGED[column]]) for r in rows if r[AVERAGED[column]] != ""]
        assert value == fraction(sum(cells), len(cells), 2), (where, column, href)
    elif column in MEDIANS and rows and MEDIANS[column] in rows[0]:
        cells = [int(r[MEDIANS[column]]) for r in rows]
        assert value == fraction(int(2 * statistics.median(cells)), 2, 2), (where, column, href)
    elif column in MEDIANS:  # the funnel's median: over its sessions with a first team reply
        assert rows, (where, column, href)
    else:
        assert int(value) == len(rows), (where, column, href)


# A cell's exact value is its data-value (the text shows it formatted: 1,234, 68.9%, 3m 05s), its link the <a>'s.
CELL = re.compile(r'<td[^>]*? data-value="([^"]*)"[^>]*>(?:<a href="([^"]+)">[^<]*</a>|<div[^>]*>[^<]*</div>|[^<]*)</td>')


def table(page: str) -> tuple[list[str], list[list[tuple[str, str | None]]], list[tuple[str, str | None]]]:
    """A report page's snake header, its rows and its totals row, each cell as (text, href)."""
    head = page.split('<table id="report-rows"')[1].split("</thead>")[0]
    header = re.findall(r'<th scope="col" data-column="([^"]+)"', head)
    body = page.split("<tbody>")[1].split("</tbody>")[0]

    def cells(row: str) -> list[tuple[str, str | None]]:
        return [(html.unescape(value), html.unescape(href) or None) for value, href in CELL.findall(row)]

    rows = [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    total = re.search(r'<tr id="report-totals">(.*?)</tr>', page, re.S)
    return header, rows, cells(total.group(1)) if total else []


SNAKE = re.compile(r"[^a-z0-9]+")


def snake(display: str) -> str:
    return SNAKE.sub("_", display.lower().replace("%", "pct")).strip("_")


# Each summary with the columns that are not figures (they link nowhere), and a dimension to try.
SUMMARIES = {
    "sessions-summary": ({"period"}, "handoff_subcategory"),
    "outcomes-summary": ({"period"}, "guide"),
    "guide-effectiveness": ({"guide", "top_handoff_categories"}, None),
    "handoff-funnel": ({"period", "handoff_category"}, None),
    "contact-summary": ({"period"}, None),
    "conversation-summary": ({"period"}, None),
    "automation-summary": ({"period"}, "channel"),
}


@pytest.mark.parametrize(("name", "period"), [
    *((name, "day") for name in SUMMARIES),
    # A half hour is part of a day (its label is a filter too); a week may start before the range.
    ("sessions-summary", "half_hour"), ("contact-summary", "half_hour"), ("handoff-funnel", "week"),
    ("conversation-summary", "week"), ("automation-summary", "month"),
])
def test_every_summary_cell_links_to_the_rows_that_make_it(site: Site, name: str, period: str) -> None:
    fixed, dimension = SUMMARIES[name]
    query = {"as_of": AS_OF, "run": "1", "tz": "America/New_York", "from": START}
    if name != "guide-effectiveness":
        query["period"] = period
    pages = [site.browser.get(f"/reports/{name}", params=query)]
    if dimension and period == "day":
        pages.append(site.browser.get(f"/reports/{name}", params={**query, "by": dimension}))
    for page in pages:
        assert page.status_code == 200, page.text[:300]
        header, rows, total = table(page.text)
        columns = [snake(h) for h in header]
        figures = [c for c in columns if c not in fixed and c not in {"handoff_subcategory", "guide", "channel"}]
        assert figures and rows, name
        tried = [("Total", total), ("first row", rows[0]), ("last row", rows[-1])]
        if dimension and "by=" in str(page.url):  # a row of a value, and the row of no value when there is one
            tried += [("a valued row", next(r for r in rows if r[1][0]))]
        for where, row in tried:
            if not row:
                continue
            for column, (text, href) in zip(columns, row, strict=True):
                if column in figures and text:
                    assert href, (name, where, column)
                    check(site, f"{name} {where}", column, text, href)
                elif column not in figures:
                    assert href is None, (name, where, column)


FIGURE = re.compile(r'data-figure="([^"]+)"(?: data-value="([^"]*)")?>\s*<a href="([^"]+)" class="drill">([^<]*)</a>')


def test_every_dashboard_figure_links_to_the_rows_that_make_it(site: Site) -> None:
    page = site.browser.get("/dashboard", params={"period": "day", "tz": "UTC"})
    assert page.status_code == 200
    board = page.text
    found = FIGURE.findall(board)
    figures = {figure for figure, *_ in found}
    # The headline tiles, the per-period table, the top lists, the funnel's steps and median, the guides' figures.
    assert {"sessions", "resolution_rate", "handoff_rate", "recontact_rate", "no_response", "open", "handed_off",
            "contacts", "first_responses", "resolved_first_time", "median_first_response_seconds",
            "durable_resolution_rate", "negative_feedback_rate"} <= figures
    headline = board.split('id="headline"')[1].split("</section>")[0]
    assert headline.count('class="drill"') == 4
    top = board.split('id="top-handoff-subcategories"')[1].split("</table>")[0]
    assert top.count('class="drill"') >= 1
    for figure, value, href, text in found:  # a cell's value: the report's cell (data-value), else its text
        check(site, "dashboard", figure, value or text, href)


def test_a_rates_page_counts_its_numerator_among_the_rows(site: Site) -> None:
    page = site.browser.get("/reports/sessions-summary", params={"as_of": AS_OF, "run": "1"}).text
    total = table(page)[2]
    header = [snake(h) for h in table(page)[0]]
    text, href = total[header.index("resolution_rate")]
    assert href is not None
    detail = site.browser.get(html.unescape(href)).text
    shown = re.search(r'id="numerator-link" data-count="(\d+)"', detail)
    assert shown is not None
    rows = int(re.search(r'data-count="(\d+)"', detail.split('id="row-count"')[1]).group(1))  # type: ignore[union-attr]
    assert fraction(int(shown.group(1)), rows, 4) == text
    # The numerator's own link lists exactly those rows.
    link = re.search(r'<a href="([^"]+)" id="numerator-link"', detail)
    assert link is not None and len(behind(site, link.group(1))) == int(shown.group(1))


def test_the_rows_behind_a_figure_show_the_columns_it_filters_on(site: Site) -> None:
    """A figure counted on an --extra column (a resolution class) opens the detail with those columns shown, each row's
    Resolution Class the one counted; the report form can ask for them too, and its CSV link carries them."""
    page = site.browser.get("/reports/outcomes-summary", params={"as_of": AS_OF, "run": "1", "from": START, "tz": "UTC"})
    totals = page.text.split('id="report-totals"')[1].split("</tr>")[0]
    href = html.unescape(next(h for h in re.findall(r'<a href="([^"]+)"', totals) if "resolution_class%3Dconfirmed" in h
                              or "resolution_class=confirmed" in html.unescape(h)))
    assert "extra=true" in href
    detail = site.browser.get(href).text
    header = re.findall(r'<th scope="col" data-column="([^"]+)"', detail)
    assert "resolution_class" in header and "durable_resolution" in header
    assert 'id="extra" checked' in detail and "extra=true" in html.unescape(detail.split('id="csv-link"')[0][-600:])
    at = header.index("resolution_class")
    rows = [CELL.findall(row) for row in re.findall(r"<tr>(.*?)</tr>", detail.split("<tbody>")[1], re.S)]
    assert rows and {row[at][0] for row in rows} == {"confirmed"}


def test_every_detail_page_links_each_row_to_its_conversation(site: Site) -> None:
    for name in ("sessions-detail", "contact-export", "conversation-export"):
        page = site.browser.get(f"/reports/{name}", params={"as_of": AS_OF, "run": "1"}).text
        rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1], re.S)
        assert rows and all('href="/conversations/cnv_' in row for row in rows), name


# --- the filters and the anchor, on the command line ---------------------------------------------------------------

LATE = [  # a contact created on 2026-05-21 (the handoff at 23:55 UTC) that ends on 2026-05-22
    ev("l1", "customer_message", "2026-05-21T23:50:00Z", customer="late"),
    ev("l2", "ai_message", "2026-05-21T23:51:00Z", customer="late", ai_agent="Care Agent"),
    ev("l3", "handoff", "2026-05-21T23:55:00Z", customer="late", category="billing", subcategory="refund"),
    ev("l4", "agent_message", "2026-05-22T00:10:00Z", customer="late", agent="sam"),
    ev("l5", "contact_end", "2026-05-22T00:20:00Z", customer="late", agent="sam"),
    ev("l6", "conversation_close", "2026-05-22T00:20:00Z", customer="late", agent="sam"),
]


@pytest.fixture(scope="module")
def late(tmp_path_factory: pytest.TempPathFactory) -> Convoscope:
    store = Convoscope(tmp_path_factory.mktemp("late"))
    store.ingest(LATE)
    return store


def test_an_anchor_places_a_row_by_its_end(late: Convoscope) -> None:
    second = ("--from", "2026-05-22", "--to", "2026-05-22", "--tz", "UTC")
    assert late.rows(*second, name="contact-export") == []
    ended = late.rows(*second, "--anchor", "ended", name="contact-export")
    assert [r["Ended At"] for r in ended] == ["2026-05-22T00:20:00+00:00"]
    closed = late.rows(*second, "--anchor", "last_closed", name="conversation-export")
    assert len(closed) == 1 and closed[0]["Status"] == "CLOSED"
    # The summaries place them so too, and the link's filters select the same one.
    assert late.rows(*second, name="contact-summary")[0]["Contacts Ended"] == "1"
    assert late.rows(*second, "--anchor", "ended", "--where", "period=2026-05-22", name="contact-export") == ended


@pytest.mark.parametrize(("args", "wording"), [
    (("--anchor", "ended"), "report sessions-summary does not take --anchor"),
    (("--anchor", "last_closed"), "--anchor 'last_closed' is not one of created, ended"),
    (("--where", "period=May"), "period 'May' is not a period's label"),
    (("--where", "handed_off=yes"), "handed_off 'yes' is not one of true, false, known, unknown"),
])
def test_a_wrong_anchor_or_filter_is_a_one_line_usage_error(late: Convoscope, args: tuple[str, ...],
                                                             wording: str) -> None:
    name = "sessions-summary" if "ended" in args else "sessions-detail"
    result = late("report", name, *args)
    assert_usage_error(result)
    assert wording in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_handoff_subcategory_is_a_filter_and_a_dimension(late: Convoscope) -> None:
    by = parse(late.report("--by", "handoff_subcategory", "--period", "year", name="sessions-summary"))
    assert [(r["Handoff Subcategory"], r["Handed Off"]) for r in by] == [("refund", "1")]
    assert len(late.rows("--where", "handoff_subcategory=refund")) == 1
    assert late.rows("--where", "handoff_subcategory=other") == []
    assert len(late.rows("--where", "handed_off=true", "--where", "handoff_step=first_response")) == 1
    assert late.rows("--where", "handed_off=false") == []


def test_report_help_lists_the_new_filters_and_anchor(late: Convoscope) -> None:
    shown = late("report", "--help").stdout
    assert "--anchor" in shown and "handoff_subcategory" in shown and "handoff_step=" in shown
