"""Charts on the summary pages (issue 28 point 3): each summary report's page carries the chart of its own rows for
the page's parameters — every period of the range, a count 0 and a rate a gap (null) where a period has no rows, an
empty rate cell a gap, never 0 — with `--by` one series per value (the top 8 by the first count, the rest summed as
Other for counts only); guide-effectiveness and handoff-themes one bar per row.

The store is the worked example (2026-05-21, SPEC 3.7), a question nobody answered on 2026-05-24 (its day's rates
have no denominator), and on 2026-05-22 and 23 sessions on ten more channels, `ch01` with one customer up to `ch10`
with ten: with `chat`, eleven channels, three more than a chart draws.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope, ev
from convoscope.reports.meanings import meaning
from convoscope.reports.sessions import SESSIONS_SUMMARY
from web_helpers import Served, number, served_to_analyst

QUERY = {"from": "2026-05-20", "to": "2026-05-25", "tz": "UTC", "period": "day"}
DAYS = ["2026-05-20", "2026-05-21", "2026-05-22", "2026-05-23", "2026-05-24", "2026-05-25"]
SUMMARIES = ("sessions-summary", "outcomes-summary", "contact-summary", "conversation-summary", "automation-summary",
             "handoff-funnel", "sources")


def channel_sessions() -> list[dict]:
    """`chNN`'s NN customers, each asking once and answered by the AI, on 2026-05-22 (odd NN) or 23 (even)."""
    events = []
    for n in range(1, 11):
        day = "2026-05-22" if n % 2 else "2026-05-23"
        for k in range(n):
            customer = f"ch{n:02d}-{k}"
            events += [ev(f"{customer}-1", "customer_message", f"{day}T09:{k:02d}:00Z", customer=customer,
                          channel=f"ch{n:02d}"),
                       ev(f"{customer}-2", "ai_message", f"{day}T09:{k:02d}:30Z", customer=customer,
                          channel=f"ch{n:02d}", ai_agent="Care Agent", guides=[f"Guide {n % 3}"])]
    return events


EXTRA = [ev("nr-1", "customer_message", "2026-05-24T12:00:00Z", customer="nr"), *channel_sessions()]


Site = Served


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("chart-pages"))
    store.ingest([json.loads(line) for line in WORKED_EXAMPLE.read_text().splitlines()] + EXTRA)
    with served_to_analyst(store) as site:
        yield site


def chart_of(site: Site, name: str, **query: str) -> dict:
    page = site.browser.get(f"/reports/{name}", params={**query, "run": "1"})
    assert page.status_code == 200, page.text[:500]
    found = re.search(r'<script type="application/json" id="report-chart-data">(.*?)</script>', page.text, re.S)
    assert found is not None, f"{name}: no chart data on its page"
    assert '<canvas id="report-chart"' in page.text
    return json.loads(found.group(1))


@pytest.mark.parametrize("name", SUMMARIES)
def test_every_summary_page_draws_its_own_rows(site: Site, name: str) -> None:
    chart = chart_of(site, name, **QUERY)
    assert chart["kind"] == "periods" and chart["labels"] == DAYS  # every day, those without rows too
    assert chart["figures"], name
    first_count = next(f["snake"] for f in chart["figures"] if f["kind"] == "count")
    assert chart["default"] == first_count
    assert all(f["scale"] in ("fraction", "percent") for f in chart["figures"] if f["kind"] == "rate")
    rows = site.report_csv(name, **QUERY)
    assert chart["rows"] == chart["count"] == len(rows) and not chart["capped"]
    if len(chart["series"]) == 1:  # without naming columns, the series is the report's column, period by period
        by_day = {row["period"]: row for row in rows}
        for figure in chart["figures"]:
            snake = figure["snake"]
            expected = [number(by_day[day][snake]) if day in by_day else (0 if figure["kind"] == "count" else None)
                        for day in DAYS]
            assert chart["series"][0]["values"][snake] == expected, (name, snake)


def test_a_day_without_sessions_is_zero_for_counts_and_a_gap_for_rates(site: Site) -> None:
    """2026-05-20 has no rows; on 2026-05-24 the only session was never answered: a row whose rates are empty
    cells. Both are gaps (null) in the chart, never 0; the counts are 0 and 1."""
    rows = {row["period"]: row for row in site.report_csv("sessions-summary", **QUERY)}
    assert "2026-05-20" not in rows
    assert rows["2026-05-24"]["sessions"] == "1" and rows["2026-05-24"]["resolution_rate"] == ""
    values = chart_of(site, "sessions-summary", **QUERY)["series"][0]["values"]
    assert values["sessions"][0] == 0 and values["sessions"][DAYS.index("2026-05-24")] == 1
    for rate in ("resolution_rate", "handoff_rate", "recontact_rate"):
        assert values[rate][0] is None, rate
    assert values["resolution_rate"][DAYS.index("2026-05-24")] is None
    assert values["resolution_rate"][DAYS.index("2026-05-22")] is not None  # a day with a denominator has a value


def test_by_gives_one_series_per_value_the_top_eight_and_other_for_counts(site: Site) -> None:
    rows = site.report_csv("sessions-summary", **QUERY, by="channel")
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["channel"]] = totals.get(row["channel"], 0) + int(row["sessions"])
    assert len(totals) == 11
    ranked = sorted(totals, key=lambda channel: -totals[channel])
    chart = chart_of(site, "sessions-summary", **QUERY, by="channel")
    labels = [series["label"] for series in chart["series"]]
    assert labels == [*ranked[:8], "Other (3)"] and chart["folded"] == 3
    cells = {(row["period"], row["channel"]): row for row in rows}
    for series in chart["series"][:8]:
        assert series["values"]["sessions"] == [int(cells[day, series["label"]]["sessions"])
                                                if (day, series["label"]) in cells else 0 for day in DAYS]
        assert series["values"]["resolution_rate"] == [number(cells[day, series["label"]]["resolution_rate"])
                                                       if (day, series["label"]) in cells else None for day in DAYS]
    other = chart["series"][8]["values"]
    assert other["sessions"] == [sum(int(cells[day, c]["sessions"]) for c in ranked[8:] if (day, c) in cells)
                                 for day in DAYS]
    assert "resolution_rate" not in other and "handoff_rate" not in other  # rates are never summed
    # Every session is drawn once: the stacked counts add up to the report's.
    assert sum(sum(series["values"]["sessions"]) for series in chart["series"]) == sum(totals.values())


@pytest.mark.parametrize(("name", "label"), [("guide-effectiveness", "guide"), ("handoff-themes", "label")])
def test_per_row_summaries_draw_a_bar_per_row(site: Site, name: str, label: str) -> None:
    rows = site.report_csv(name, **{k: v for k, v in QUERY.items() if k != "period"})
    chart = chart_of(site, name, **{k: v for k, v in QUERY.items() if k != "period"})
    assert chart["kind"] == "rows"
    assert chart["labels"] == [row[label] or "(none)" for row in rows]
    values = chart["series"][0]["values"]
    for figure in chart["figures"]:
        assert values[figure["snake"]] == [number(row[figure["snake"]]) for row in rows], figure["snake"]
    assert "theme" not in values  # a theme's number names it; it is not a figure


def test_a_detail_report_has_no_chart(site: Site) -> None:
    page = site.browser.get("/reports/sessions-detail", params={**QUERY, "run": "1"})
    assert page.status_code == 200
    assert 'id="report-chart-data"' not in page.text


HEADLINE = ("sessions", "resolution_rate", "handoff_rate", "recontact_rate")


def headline(page: str) -> dict[str, str]:
    """The dashboard's headline tiles: each figure's cell (`data-value`)."""
    return dict(re.findall(r'<p class="value" data-figure="([a-z_]+)" data-value="([^"]*)">', page))


def changes(page: str) -> dict[str, tuple[str, str, str, str]]:
    """Under each tile: the figure before, the change, what the page writes, and the link to the period before."""
    found = re.findall(r'<p class="change" data-figure="([a-z_]+)" data-previous="([^"]*)" data-delta="([^"]*)">'
                       r'<small>([^<]*) <span class="muted">vs <a href="([^"]+)"', page)
    return {figure: (before, delta, shown.strip(), html.unescape(url)) for figure, before, delta, shown, url in found}


def dashboard(site: Site, **query: str) -> str:
    page = site.browser.get("/dashboard", params=query)
    assert page.status_code == 200, page.text[:500]
    return page.text


def test_the_headline_beside_the_period_before_is_that_periods_own_headline(site: Site) -> None:
    """2026-05-22 to 25 is four days: the period before is 2026-05-18 to 21 (the worked example's day). Every
    figure under a tile is the headline of that period's dashboard, which it links to, and the change is now
    against it: a count in per cent, a rate in percentage points."""
    page = dashboard(site, **{**QUERY, "from": "2026-05-22"})
    now, found = headline(page), changes(page)
    assert set(found) == set(HEADLINE)
    urls = {url for *_, url in found.values()}
    assert len(urls) == 1
    url = urls.pop()
    assert dict(parse_qsl(urlsplit(url).query)) == {**QUERY, "from": "2026-05-18", "to": "2026-05-21"}
    assert "vs <a href=" in page and "2026-05-18 – 2026-05-21" in page
    before = headline(site.browser.get(url).text)
    assert int(before["sessions"]) > 0
    for figure in HEADLINE:
        assert found[figure][0] == before[figure], figure
    sessions_before, sessions_now = int(before["sessions"]), int(now["sessions"])
    change = round((sessions_now - sessions_before) * 100 / sessions_before, 1)
    assert found["sessions"][1] == (f"+{change}%" if change > 0 else f"{change}%")
    assert found["sessions"][2] == f"{found['sessions'][1]} ({sessions_before:,})"
    for rate in HEADLINE[1:]:
        if before[rate] and now[rate]:
            points = round((float(now[rate]) - float(before[rate])) * 100, 1)
            assert float(found[rate][1].removesuffix(" pts").replace("±", "")) == pytest.approx(points), rate
        else:
            assert found[rate][1] == "" and found[rate][2].startswith("no rate"), rate
    assert found["resolution_rate"][1].endswith(" pts")  # both periods resolved sessions


def test_no_comparison_without_a_range_or_without_sessions_before(site: Site) -> None:
    empty_before = dashboard(site, **{**QUERY, "from": "2026-05-18", "to": "2026-05-21"})  # before: 05-14 to 17
    assert headline(empty_before)["sessions"] != "0" and changes(empty_before) == {}
    assert "No sessions the period before (2026-05-14 – 2026-05-17)." in empty_before
    open_range = dashboard(site, **{k: v for k, v in QUERY.items() if k != "from"})
    assert changes(open_range) == {}
    assert "Set a From and a To date to compare with the period before." in open_range


def test_the_definitions_stand_beside_the_headline(site: Site) -> None:
    page = dashboard(site, **QUERY)
    near = page.index('id="headline"')
    definitions = re.search(r'<p class="definitions" id="headline-definitions"><small>Definitions: <span>([^<]+)</span>',
                            page)
    assert definitions is not None and near < definitions.start() < page.index('aria-label="Over time"')
    bottom = re.search(r'<small id="definitions">([^<]+)</small>', page)
    assert bottom is not None and definitions.group(1) == bottom.group(1)


def test_every_headline_number_has_its_definition_from_the_docs(site: Site) -> None:
    """Under each tile the column's meaning as docs/reports.md gives it (`reports/meanings.py`: one source), and
    beside each figure the Outcomes section draws, the meaning in its report."""
    page = dashboard(site, **QUERY)
    shown = {figure: html.unescape(text) for figure, text in
             re.findall(r'<p class="meaning" data-figure="([a-z_]+)"><small>([^<]*)</small></p>', page)}
    displays = {"sessions": "Sessions", "resolution_rate": "Resolution Rate", "handoff_rate": "Handoff Rate",
                "recontact_rate": "Recontact Rate"}
    assert set(shown) == set(displays)
    for figure, display in displays.items():
        assert shown[figure] and shown[figure] == meaning("sessions-summary", display), figure
    assert shown["sessions"].startswith("Counts the sessions created")
    lists = dict(re.findall(r'<details class="meanings" data-report="([a-z-]+)">(.*?)</details>', page, re.S))
    assert set(lists) == {"outcomes-summary", "automation-summary", "handoff-funnel"}
    for report, block in lists.items():
        defined = {html.unescape(d): html.unescape(m) for d, m in
                   re.findall(r'<dt>([^<]+)</dt><dd data-column="[^"]*">([^<]*)</dd>', block)}
        assert defined, report
        for display, text in defined.items():
            assert text and text == meaning(report, display), (report, display)
    assert "Came Back" in dict(re.findall(r'<dt>([^<]+)</dt><dd data-column="[^"]*">([^<]*)</dd>',
                                          lists["handoff-funnel"]))
    # The per-period table: each column's meaning as its header's title and in the list under it.
    block = page.split('id="per-period-meanings"')[1].split("</details>")[0]
    listed = {html.unescape(d): html.unescape(m) for d, m in
              re.findall(r'<dt>([^<]+)</dt><dd data-column="[^"]*">([^<]*)</dd>', block)}
    columns = [c.display for c in SESSIONS_SUMMARY.columns[1:]]
    assert list(listed) == columns and all(listed[c] == meaning("sessions-summary", c) for c in columns)
    head = page.split('id="dashboard-series"')[1].split("</thead>")[0]
    titles = [html.unescape(t) for t in re.findall(r'<th scope="col" class="num" title="([^"]*)">', head)]
    assert titles == [meaning("sessions-summary", c) for c in columns]
