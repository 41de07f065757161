"""The dashboard's Outcomes section (issue 26): every figure it shows or draws is the cell the report's CSV holds for
the same filters — outcomes-summary and automation-summary per period, the handoff-funnel over the range, the
guide-effectiveness rows — a rate without a denominator is a gap (null) in the chart data and a count is zero
(Appendix B), and each chart links to its report with the same filters.

The store is the worked example (SPEC 3.7) with crafted feedback, a second handoff whose customer comes back, and a
session nobody answered, over a range with a day before and after the data.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope, ev
from web_helpers import Served, number, served_to_analyst

QUERY = {"from": "2026-05-20", "to": "2026-05-25", "tz": "UTC", "period": "day"}
DAYS = ["2026-05-20", "2026-05-21", "2026-05-22", "2026-05-23", "2026-05-24", "2026-05-25"]

EXTRA = [
    # c1 of the worked example: pleased with session 1 (open at 10:20), not with session 2 (open at 17:05).
    ev("fb1", "feedback", "2026-05-21T10:20:00Z", rating="positive", score=5),
    ev("fb2", "feedback", "2026-05-21T17:05:00Z", rating="negative", score=2),
    # fb-d: resolved by the AI (it ends 11:00), then displeased at 11:30.
    ev("fb-d-1", "customer_message", "2026-05-22T09:00:00Z", customer="fb-d"),
    ev("fb-d-2", "ai_message", "2026-05-22T09:00:00Z", customer="fb-d", ai_agent="Care Agent", guides=["Delivery Dates"]),
    ev("fb-d-3", "feedback", "2026-05-22T11:30:00Z", customer="fb-d", rating="negative"),
    # h2: handed off in the worked example's category, answered after 4 minutes, closed; back three days later.
    ev("h2-1", "customer_message", "2026-05-23T08:00:00Z", customer="h2"),
    ev("h2-2", "ai_message", "2026-05-23T08:00:00Z", customer="h2", ai_agent="Care Agent", guides=["Refunds"]),
    ev("h2-3", "handoff", "2026-05-23T08:05:00Z", customer="h2", category="handoff_transfer_detector"),
    ev("h2-4", "agent_message", "2026-05-23T08:09:00Z", customer="h2", agent="sam"),
    ev("h2-5", "contact_end", "2026-05-23T08:20:00Z", customer="h2", agent="sam"),
    ev("h2-6", "conversation_close", "2026-05-23T08:20:00Z", customer="h2", agent="sam"),
    ev("h2-7", "customer_message", "2026-05-26T09:00:00Z", customer="h2"),
    # nr: a question nobody answered: a session, nothing resolved, no feedback (both outcome rates without a
    # denominator on its day).
    ev("nr-1", "customer_message", "2026-05-24T12:00:00Z", customer="nr"),
]


Site = Served


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("dashboard-outcomes"))
    store.ingest([json.loads(line) for line in WORKED_EXAMPLE.read_text().splitlines()] + EXTRA)
    with served_to_analyst(store) as site:
        yield site


@pytest.fixture(scope="module")
def board(site: Site) -> str:
    page = site.browser.get("/dashboard", params=QUERY)
    assert page.status_code == 200, page.text[:500]
    return page.text


def embedded(page: str, name: str) -> dict:
    found = re.search(rf'<script type="application/json" id="{name}">(.*?)</script>', page, re.S)
    assert found is not None, name
    return json.loads(found.group(1))


@pytest.mark.parametrize(("name", "charts"), [
    ("outcomes-summary", {"outcomes-summary-rates": ("durable_resolution_rate", "negative_feedback_rate"),
                          "outcomes-summary-classes": ("confirmed", "disputed", "came_back", "durable", "pending")}),
    ("automation-summary", {"automation-summary-rates": ("automation_rate", "ai_coverage")}),
])
def test_the_charts_draw_the_reports_cells_per_period(site: Site, board: str, name: str,
                                                      charts: dict[str, tuple[str, ...]]) -> None:
    rows = {row["period"]: row for row in site.report_csv(name, **QUERY)}
    assert rows, "the range should have rows"
    data = embedded(board, "outcomes-data")
    for chart, figures in charts.items():
        assert data[chart]["labels"] == DAYS  # every day of the range, those without rows too
        assert [dataset["figure"] for dataset in data[chart]["datasets"]] == list(figures)
        for dataset in data[chart]["datasets"]:
            rate = dataset["figure"].endswith(("_rate", "_coverage"))
            expected = [number(rows[day][dataset["figure"]]) if day in rows else (None if rate else 0) for day in DAYS]
            assert dataset["values"] == expected, (chart, dataset["figure"])


def test_a_rate_without_a_denominator_is_a_gap_and_a_count_is_zero(site: Site, board: str) -> None:
    """Appendix B: on 2026-05-24 nothing was resolved and no one gave feedback (a row with empty rates), and on
    2026-05-20 there are no rows at all: both rates are null there, never 0, and the counts 0."""
    rows = {row["period"]: row for row in site.report_csv("outcomes-summary", **QUERY)}
    assert rows["2026-05-24"]["resolved"] == "0"
    assert rows["2026-05-24"]["durable_resolution_rate"] == rows["2026-05-24"]["negative_feedback_rate"] == ""
    data = embedded(board, "outcomes-data")
    rates = {d["figure"]: d["values"] for d in data["outcomes-summary-rates"]["datasets"]}
    classes = {d["figure"]: d["values"] for d in data["outcomes-summary-classes"]["datasets"]}
    for day in ("2026-05-20", "2026-05-24", "2026-05-25"):
        at = DAYS.index(day)
        assert rates["durable_resolution_rate"][at] is None
        assert rates["negative_feedback_rate"][at] is None
        assert all(values[at] == 0 for values in classes.values())
    assert rates["negative_feedback_rate"][DAYS.index("2026-05-21")] == 0.5
    # The sessions section draws by the same rule: a day without sessions is a gap in its rates, not 0%.
    sessions = embedded(board, "dashboard-data")
    assert sessions["series"]["sessions"][0] == 0
    assert sessions["series"]["resolution_rate"][0] is None


def test_the_funnel_is_the_handoff_funnel_over_the_range(site: Site, board: str) -> None:
    rows = site.report_csv("handoff-funnel", **{**QUERY, "period": "year"})
    assert len(rows) == 1, "one category in one year: the year's row is the whole range"
    whole = rows[0]
    board = re.sub(r'<a href="[^"]*" class="drill">|</a>', "", board)  # each figure is a link (issue 28)
    steps = re.findall(r'<tr data-step="([^"]+)"><th scope="row">([^<]+)</th><td class="num" data-figure="[^"]+" '
                       r'data-value="(\d+)">\d+</td><td class="num" data-share="[^"]+">([^<]+)</td>', board)
    assert [(snake, count) for snake, _, count, _ in steps] == [
        (snake, whole[snake]) for snake in ("handed_off", "contacts", "first_responses", "resolved_first_time",
                                            "came_back")]
    assert [count for _, _, count, _ in steps] == ["2", "2", "2", "2", "1"]
    assert [share for *_, share in steps] == ["100.0%", "100.0%", "100.0%", "100.0%", "50.0%"]
    median = re.search(r'data-figure="median_first_response_seconds" data-value="([^"]*)">([^<]*)<', board)
    assert median is not None and median.group(1) == whole["median_first_response_seconds"] == "180.00"
    assert median.group(2) == "3m 00s"  # a duration as every page shows one (issue 28)
    # Per day and category, the CSV's rows add up to the steps (the median is not a sum).
    daily = site.report_csv("handoff-funnel", **QUERY)
    for snake, _, count, _ in steps:
        assert sum(int(row[snake]) for row in daily) == int(count)
    chart = embedded(board, "outcomes-data")["handoff-funnel"]
    assert chart["labels"] == [label for _, label, _, _ in steps]
    assert chart["datasets"][0]["values"] == [int(count) for _, _, count, _ in steps]


def test_the_guides_table_holds_the_reports_rows_most_sessions_first(site: Site, board: str) -> None:
    rows = site.report_csv("guide-effectiveness", **{k: v for k, v in QUERY.items() if k != "period"})
    table = board[board.index('id="top-guides"'):]
    table = table[:table.index("</table>")]
    shown = re.findall(r'<tr data-guide="([^"]*)">(.*?)</tr>', table, re.S)
    by_guide = {row["guide"] or "(none)": row for row in rows}
    assert sorted(label for label, _ in shown) == sorted(by_guide)
    sessions = [int(by_guide[html.unescape(label)]["sessions"]) for label, _ in shown]
    assert sessions == sorted(sessions, reverse=True)
    for label, cells in shown:
        values = dict(re.findall(r'data-figure="([^"]+)" data-value="([^"]*)"', cells))
        row = by_guide[html.unescape(label)]
        assert values == {k: v for k, v in row.items() if k != "guide"}, label
    assert "data-sortable" in board[board.index('id="top-guides"') - 100:board.index('id="top-guides"') + 100]


def test_each_chart_links_to_its_report_with_the_same_filters(site: Site, board: str) -> None:
    for name in ("outcomes-summary", "automation-summary", "handoff-funnel", "guide-effectiveness"):
        links = [html.unescape(href) for href in re.findall(rf'href="(/reports/{name}\?[^"]*)" data-report', board)]
        assert links, name
        expected = {**QUERY, "run": "1"} if name != "guide-effectiveness" else {
            k: v for k, v in {**QUERY, "run": "1"}.items() if k != "period"}
        for link in links:
            assert dict(parse_qsl(urlsplit(link).query)) == expected, link
            assert site.browser.get(link).status_code == 200
        csv_link = html.unescape(re.findall(rf'href="(/api/v1/reports/{name}\?[^"]*)"', board)[0])
        assert site.browser.get(csv_link).status_code == 200


def test_each_report_has_its_definitions_line(board: str) -> None:
    for name in ("outcomes-summary", "automation-summary", "handoff-funnel", "guide-effectiveness"):
        line = re.search(rf'<small id="definitions-{name}">([^<]*)</small>', board)
        assert line is not None, name
        assert line.group(1).startswith(f"{name} as of ")
        assert "time zone UTC" in line.group(1) and "durable_window=" in line.group(1)


def test_a_bad_parameter_shows_no_outcomes(site: Site) -> None:
    page = site.browser.get("/dashboard", params={**QUERY, "from": "2026-05-26"})
    assert page.status_code == 400
    assert 'id="outcomes"' not in page.text


def test_every_figure_is_judged_at_one_instant(board: str) -> None:
    """The section's reports run at the sessions section's as-of time: one instant for the whole page."""
    instants = set(re.findall(r'<small id="definitions[^"]*">[^<]* as of ([0-9T:Z-]+),', board))
    assert len(instants) == 1, instants
