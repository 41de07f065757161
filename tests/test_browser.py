"""The web app in a real browser: Playwright driving Debian's Chromium (`make test` installs it).

An analyst logs in, runs a report, downloads its CSV and finds it identical to the command line's,
opens a Conversation Link from it and reads the messages, and sees the dashboard's charts drawn with
the summary's numbers. No page asks anything of another host.

With `CONVOSCOPE_SCREENSHOTS=DIR` the tests also save a screenshot of each page there
(`make screenshots` writes those the README shows).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from cli_helpers import Convoscope
from web_helpers import PASSWORD, LiveServer, add_user, cli_ok, generate_brand, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RANGE = {"from": "2026-05-02", "to": "2026-05-06", "tz": "America/New_York"}
SHOTS = Path(os.environ["CONVOSCOPE_SCREENSHOTS"]) if os.environ.get("CONVOSCOPE_SCREENSHOTS") else None


ADMIN = "admin"


def brand_site(directory: Path, *, customers: int, days: int, seed: int) -> Iterator[LiveServer]:
    """A generated brand from 2026-05-01, with the administrator ADMIN, served."""
    store = Convoscope(directory)
    generate_brand(store, customers=customers, days=days, seed=seed, start="2026-05-01")
    add_user(store, ADMIN, "administrator")
    with serving(store) as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from brand_site(tmp_path_factory.mktemp("browser"), customers=150, days=7, seed=5)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run 'make test', which installs it"
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def outside() -> list[str]:
    """Requests the pages tried to make to any other host."""
    return []


@pytest.fixture
def page(browser: Browser, site: LiveServer, outside: list[str]) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    local = urlparse(site.url).netloc

    def guard(route, request) -> None:  # type: ignore[no-untyped-def]
        if urlparse(request.url).netloc != local:
            outside.append(request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    page.goto(site.url + "/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shot(page, "login")
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    yield page
    context.close()


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def cli_csv(site: LiveServer, name: str, *options: str) -> bytes:
    result = site.store("report", name, *options)
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def range_options() -> list[str]:
    return ["--from", RANGE["from"], "--to", RANGE["to"], "--tz", RANGE["tz"]]


def test_run_a_report_download_it_and_open_a_conversation_link(page: Page, site: LiveServer,
                                                               outside: list[str]) -> None:
    page.goto(site.url + "/reports")
    for group in ("AI", "Team", "Conversations", "Data quality"):
        expect(page.get_by_role("heading", name=group, exact=True)).to_be_visible()
    shot(page, "reports")
    page.get_by_role("link", name="sessions-detail", exact=True).click()
    page.locator("input[name=from]").fill(RANGE["from"])
    page.locator("input[name=to]").fill(RANGE["to"])
    page.locator("input[name=tz]").fill(RANGE["tz"])
    page.get_by_role("button", name="Run").click()
    table = page.locator("#report-rows")
    expect(table).to_be_visible()
    shot(page, "report-run")

    expected = cli_csv(site, "sessions-detail", *range_options())
    rows = list(csv.reader(io.StringIO(expected.decode())))
    assert len(rows) > 10, "the generated brand should have sessions in the range"
    expect(page.locator("#row-count")).to_contain_text(f"{len(rows) - 1:,}")
    shown = table.locator("tbody tr")
    expect(shown).to_have_count(min(100, len(rows) - 1))
    first_cells = shown.first.locator("td").all_inner_texts()
    assert first_cells[0] == rows[1][0]  # Session ID of the first row, as in the CSV

    with page.expect_download() as download:
        page.locator("#download-csv").click()
    assert Path(download.value.path()).read_bytes() == expected

    link = shown.first.locator("a[href*='/conversations/']")
    conversation_id = rows[1][2]
    assert conversation_id in (link.get_attribute("href") or "")
    link.click()
    expect(page.get_by_text(conversation_id).first).to_be_visible()
    messages = page.locator(".message")
    assert messages.count() > 0
    speakers = {messages.nth(i).get_attribute("data-speaker") for i in range(messages.count())}
    assert "customer" in speakers
    expect(messages.first).not_to_be_empty()
    shot(page, "conversation")
    assert outside == []


def test_dashboard_charts_show_the_summary_numbers(page: Page, site: LiveServer, outside: list[str]) -> None:
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page.goto(f"{site.url}/dashboard?{query}&period=day")
    for figure in ("sessions", "resolution_rate", "handoff_rate", "recontact_rate"):
        expect(page.locator(f"#chart-{figure}")).to_have_attribute("data-rendered", "true")
    shot(page, "dashboard")

    summary = list(csv.DictReader(io.StringIO(
        cli_csv(site, "sessions-summary", *range_options(), "--period", "day", "--headers", "snake").decode())))
    assert summary, "the range should have sessions"
    for row in summary:
        for figure in ("sessions", "resolution_rate", "handoff_rate", "recontact_rate"):
            cell = page.locator(f"[data-period='{row['period']}'][data-figure='{figure}']")
            expect(cell).to_have_attribute("data-value", row[figure])  # the exact cell; shown formatted
    by_category = list(csv.DictReader(io.StringIO(cli_csv(
        site, "sessions-summary", *range_options(), "--by", "handoff_category", "--headers", "snake").decode())))
    handed_off: dict[str, int] = {}
    for row in by_category:
        if row["handoff_category"]:
            handed_off[row["handoff_category"]] = handed_off.get(row["handoff_category"], 0) + int(row["handed_off"])
    top = max(handed_off, key=lambda category: handed_off[category])
    expect(page.get_by_text(top).first).to_be_visible()

    # The range lies in one year, so the year's summary row is the whole range: tiles and the channel
    # and AI agent tables must show its cells.
    for dimension, table in (("channel", "#top-channels"), ("ai_agent", "#top-ai-agents")):
        whole = csv.DictReader(io.StringIO(cli_csv(site, "sessions-summary", *range_options(), "--period", "year",
                                                   "--by", dimension, "--headers", "snake").decode()))
        for row in whole:
            shown = page.locator(f"{table} tr[data-dimension='{row[dimension] or '(none)'}']")
            expect(shown.locator("td[data-figure='sessions']")).to_have_text(f"{int(row['sessions']):,}")
            for figure in ("resolution_rate", "handoff_rate", "recontact_rate"):  # as percentages, as the tiles
                cell = shown.locator(f"td[data-figure='{figure}']")
                expect(cell).to_have_attribute("data-value", row[figure])
                one_decimal = (Decimal(row[figure] or 0) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
                expect(cell).to_have_text(f"{one_decimal}%" if row[figure] else "–")
    year = next(csv.DictReader(io.StringIO(cli_csv(site, "sessions-summary", *range_options(), "--period", "year",
                                                   "--headers", "snake").decode())))
    for figure in ("sessions", "resolution_rate", "handoff_rate", "recontact_rate"):
        expect(page.locator(f"#headline .value[data-figure='{figure}']")).to_have_attribute("data-value", year[figure])

    # A channel opens its sessions: sessions-detail over the same range, filtered by it.
    channel = page.locator("#top-channels tbody th a").first
    name = channel.inner_text()
    channel.click()
    expected = cli_csv(site, "sessions-detail", *range_options(), "--where", f"channel={name}")
    rows = len(list(csv.reader(io.StringIO(expected.decode())))) - 1
    assert rows > 0
    expect(page.locator("#row-count")).to_contain_text(f"{rows:,}")
    assert outside == []


def test_a_figure_opens_the_rows_behind_it(page: Page, site: LiveServer, outside: list[str]) -> None:
    """Issue 28 point 2: a dashboard headline figure and a summary page's cell each open the detail page of the rows
    that make them, as many as the figure says; a rate's page counts its numerator among them."""
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page.goto(f"{site.url}/dashboard?{query}&period=day")
    tile = page.locator("#headline .value[data-figure='sessions']")
    sessions = tile.get_attribute("data-value")
    assert sessions and int(sessions) > 0
    tile.get_by_role("link").click()
    page.wait_for_load_state("networkidle")
    assert "/reports/sessions-detail" in page.url
    expect(page.locator("#row-count")).to_have_attribute("data-count", sessions)
    shot(page, "drill-sessions")

    page.goto(f"{site.url}/reports/sessions-summary?{query}&period=day&run=1")
    first = page.locator("#report-rows tbody tr").first
    handed = first.locator("td").nth(4)  # Period, Sessions, Responded, Resolved, Handed Off
    count = handed.get_attribute("data-value") or ""
    handed.get_by_role("link").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#row-count")).to_have_attribute("data-count", count)
    expect(page.locator("input[name='where.handed_off'], select[name='where.handed_off']")).to_have_value("true")

    page.goto(f"{site.url}/reports/sessions-summary?{query}&period=day&run=1")
    rate = page.locator("#report-totals td").nth(9)  # Handoff Rate
    shown = rate.get_attribute("data-value")  # the exact rate; the cell shows it as 17.8%
    rate.get_by_role("link").click()
    page.wait_for_load_state("networkidle")
    closed = int(page.locator("#row-count").get_attribute("data-count") or 0)
    handed_off = int(page.locator("#numerator-link").get_attribute("data-count") or 0)
    assert str((Decimal(handed_off) / closed).quantize(Decimal("0.0001"), ROUND_HALF_UP)) == shown
    page.locator("#numerator-link").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#row-count")).to_have_attribute("data-count", str(handed_off))
    assert outside == []


def test_a_date_preset_fills_the_range_and_the_table_follows(page: Page, site: LiveServer, outside: list[str]) -> None:
    """Issue 28: beside From and To, "The whole data" sets them to the first and last local date of the brand's
    events in the form's zone, keeps the other fields and the shown rows, and the table shows the range's rows."""
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page.goto(f"{site.url}/reports/sessions-detail?{query}&where.channel=chat&run=1")
    before = page.locator("#row-count").get_attribute("data-count")
    whole = page.locator("#date-presets a[data-preset='whole-data']")
    first, _, last = (whole.get_attribute("title") or "").partition(" to ")
    assert first <= RANGE["from"] and RANGE["to"] <= last and (first, last) != (RANGE["from"], RANGE["to"])
    whole.click()
    expect(page.locator("input[name=from]")).to_have_value(first)
    expect(page.locator("input[name=to]")).to_have_value(last)
    expect(page.locator("input[name=tz]")).to_have_value(RANGE["tz"])
    expect(page.locator("input[name='where.channel']")).to_have_value("chat")
    expected = cli_csv(site, "sessions-detail", "--from", first, "--to", last, "--tz", RANGE["tz"],
                       "--where", "channel=chat")
    count = len(list(csv.reader(io.StringIO(expected.decode())))) - 1
    expect(page.locator("#row-count")).to_have_attribute("data-count", str(count))
    assert str(count) != before, "the whole data should hold more sessions than five of its days"
    expect(whole).to_have_attribute("aria-current", "true")
    shot(page, "date-presets", full_page=False)
    assert outside == []


def test_a_summary_page_draws_the_chosen_column_of_its_rows(page: Page, site: LiveServer, outside: list[str]) -> None:
    """Issue 28: above a summary's table, a chart of the report's own rows — every day of the range, the first count
    by default; choosing a rate draws it in percent with the days without a denominator as gaps — and with a
    dimension one series per value."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page.goto(f"{site.url}/reports/sessions-summary?{query}&period=day&run=1")
    canvas = page.locator("#report-chart")
    expect(canvas).to_have_attribute("data-rendered", "true")
    expect(canvas).to_have_attribute("data-figure", "sessions")
    shot(page, "report-chart")
    rows = {row["period"]: row for row in csv.DictReader(io.StringIO(cli_csv(
        site, "sessions-summary", *range_options(), "--period", "day", "--headers", "snake").decode()))}
    days = ["2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05", "2026-05-06"]
    drawn = "() => { const c = Chart.getChart(document.getElementById('report-chart')); " \
            "return {labels: c.data.labels, sets: c.data.datasets.map(d => ({label: d.label, data: d.data}))}; }"
    chart = page.evaluate(drawn)
    assert chart["labels"] == days
    assert chart["sets"][0]["data"] == [int(rows[d]["sessions"]) if d in rows else 0 for d in days]

    page.locator("#chart-figure").select_option("resolution_rate")
    expect(canvas).to_have_attribute("data-figure", "resolution_rate")
    expect(canvas).to_have_attribute("data-rendered", "true")
    chart = page.evaluate(drawn)
    expected = [float(rows[d]["resolution_rate"]) * 100 if d in rows and rows[d]["resolution_rate"] else None
                for d in days]
    assert [None if v is None else round(v, 6) for v in chart["sets"][0]["data"]] == \
        [None if v is None else round(v, 6) for v in expected]

    page.goto(f"{site.url}/reports/sessions-summary?{query}&period=day&by=channel&run=1")
    expect(canvas).to_have_attribute("data-rendered", "true")
    channels = {row["channel"] for row in csv.DictReader(io.StringIO(cli_csv(
        site, "sessions-summary", *range_options(), "--by", "channel", "--headers", "snake").decode()))}
    labels = [s["label"] for s in page.evaluate(drawn)["sets"]]
    if len(channels) <= 8:
        assert sorted(labels) == sorted(channel or "(none)" for channel in channels)
    else:
        assert len(labels) == 9 and labels[-1].startswith("Other")
    assert errors == []
    assert outside == []


def test_the_dashboard_compares_its_headline_with_the_period_before(page: Page, site: LiveServer,
                                                                    outside: list[str]) -> None:
    """Issue 28: under each tile the change since the three days before the range, whose link opens that period's
    dashboard, where the headline is the number the comparison used; and each tile says what it counts."""
    page.goto(f"{site.url}/dashboard?from=2026-05-04&to=2026-05-06&tz={RANGE['tz']}&period=day")
    tile = page.locator("#headline .change[data-figure='sessions']")
    expect(tile).to_be_visible()
    expect(tile).to_contain_text("vs 2026-05-01 – 2026-05-03")
    expect(page.locator("#headline .meaning[data-figure='sessions']")).to_contain_text("sessions created")
    expect(page.locator("#headline-definitions")).to_be_visible()
    before = {figure: page.locator(f"#headline .change[data-figure='{figure}']").get_attribute("data-previous")
              for figure in ("sessions", "resolution_rate", "handoff_rate", "recontact_rate")}
    assert int(before["sessions"] or 0) > 0
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#headline").screenshot(path=str(SHOTS / "dashboard-headline.png"))
    tile.get_by_role("link").click()
    expect(page.locator("input[name=from]")).to_have_value("2026-05-01")
    expect(page.locator("input[name=to]")).to_have_value("2026-05-03")
    for figure, cell in before.items():
        expect(page.locator(f"#headline .value[data-figure='{figure}']")).to_have_attribute("data-value", cell or "")
    assert outside == []


def test_a_table_sorts_pages_and_hides_columns(page: Page, site: LiveServer, outside: list[str]) -> None:
    """Issue 28: a header sorts the whole result on the server (again for the other way), the pager walks it, and a
    column hidden with the chooser stays hidden after a reload, until "Show all columns"."""
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page.goto(f"{site.url}/reports/sessions-detail?{query}&run=1&size=50")
    expected = list(csv.DictReader(io.StringIO(cli_csv(site, "sessions-detail", *range_options()).decode())))
    assert len(expected) > 50, "the range should fill two pages of 50"
    table = page.locator("#report-rows")
    table.locator("th[data-column='channel'] a.sort").click()
    expect(table.locator("th[data-column='channel']")).to_have_attribute("aria-sort", "ascending")
    channels = sorted((row["Channel"] for row in expected if row["Channel"]), key=str.lower)
    channels += [""] * (len(expected) - len(channels))
    column = [h.get_attribute("data-column") for h in table.locator("thead th").all()].index("channel")
    shown = [c.get_attribute("data-value") for c in table.locator(f"tbody td:nth-child({column + 1})").all()]
    assert shown == channels[:50]
    table.locator("th[data-column='channel'] a.sort").click()
    expect(table.locator("th[data-column='channel']")).to_have_attribute("aria-sort", "descending")
    page.locator("#page-next").click()
    expect(page.locator("#row-range")).to_have_attribute("data-first", "51")
    expect(page.locator("#page-of")).to_contain_text("Page 2 of")
    expect(table.locator("th[data-column='channel']")).to_have_attribute("aria-sort", "descending")
    shot(page, "report-sorted")

    page.locator("#column-chooser summary").click()
    page.locator("#column-chooser input[data-column='customer_id']").uncheck()
    expect(table.locator("th[data-column='customer_id']")).to_be_hidden()
    page.reload()
    expect(page.locator("#report-rows th[data-column='customer_id']")).to_be_hidden()
    expect(page.locator("#report-rows tbody tr").first.locator("td").nth(1)).to_be_hidden()
    expect(page.locator("#report-rows th[data-column='session_id']")).to_be_visible()
    page.locator("#column-chooser summary").click()
    page.locator("#show-all-columns").click()
    expect(page.locator("#report-rows th[data-column='customer_id']")).to_be_visible()
    assert outside == []


OUTCOME_CHARTS = ("outcomes-summary-rates", "outcomes-summary-classes", "automation-summary-rates", "handoff-funnel")
FUNNEL_STEPS = ("handed_off", "contacts", "first_responses", "resolved_first_time", "came_back")


def test_the_outcomes_section_draws_its_charts_and_the_funnel_in_order(page: Page, site: LiveServer,
                                                                       outside: list[str]) -> None:
    """Issue 26 on the dashboard: every chart of the Outcomes section drawn without a console error, the handoff
    funnel's steps in order with the handoff-funnel's counts over the range and bars that narrow, and the guides'
    table sorting by a column."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page.goto(f"{site.url}/dashboard?{query}&period=day")
    for chart in OUTCOME_CHARTS:
        expect(page.locator(f"#chart-{chart}")).to_have_attribute("data-rendered", "true")
    section = page.locator("#outcomes")
    section.scroll_into_view_if_needed()
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        section.screenshot(path=str(SHOTS / "dashboard-outcomes.png"))

    steps = page.locator("#funnel-steps tbody tr")
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == list(FUNNEL_STEPS)
    # The range lies in one year: the year's rows (one per category) add up to the funnel over the range.
    by_category = list(csv.DictReader(io.StringIO(cli_csv(
        site, "handoff-funnel", *range_options(), "--period", "year", "--headers", "snake").decode())))
    counts = [sum(int(row[step]) for row in by_category) for step in FUNNEL_STEPS]
    assert counts[0] > 0, "the generated brand should hand sessions off in the range"
    for step, count in zip(FUNNEL_STEPS, counts, strict=True):
        expect(page.locator(f"#funnel-steps td[data-figure='{step}']")).to_have_text(str(count))
    drawn = page.evaluate("""() => {
        const chart = Chart.getChart(document.getElementById("chart-handoff-funnel"));
        return {labels: chart.data.labels.map(label => label[0]),
                widths: chart.data.datasets[0].data.map(bar => bar[1] - bar[0])};
    }""")
    assert drawn["labels"] == [steps.nth(i).locator("th").inner_text() for i in range(steps.count())]
    assert drawn["widths"] == counts and drawn["widths"] == sorted(drawn["widths"], reverse=True)

    guides = page.locator("#top-guides tbody tr")
    assert guides.count() > 1
    page.locator("#top-guides thead button.sort", has_text="Sessions").click()
    shown = [int(guides.nth(i).locator("td[data-figure='sessions']").get_attribute("data-value") or 0)
             for i in range(guides.count())]
    assert shown == sorted(shown)
    page.locator("#top-guides thead button.sort", has_text="Handoff Rate").click()
    rates = [guides.nth(i).locator("td[data-figure='handoff_rate']").get_attribute("data-value")
             for i in range(guides.count())]
    known = [float(rate) for rate in rates if rate]
    assert known == sorted(known) and rates[len(known):] == [""] * (len(rates) - len(known))  # empty cells last
    assert errors == []
    assert outside == []


def test_what_if_fills_sets_and_draws_the_rates_of_each(page: Page, site: LiveServer, outside: list[str]) -> None:
    """Issue 27: two definition sets typed in the form give one bar per set and figure, and the table the command
    line prints as CSV."""
    page.get_by_role("link", name="What-if").click()
    page.get_by_label("Definition set 1").fill("session_inactivity=30m")
    page.get_by_label("Definition set 2").fill("recontact_window=72h,durable_window=14d")
    page.locator("input[name=from]").fill(RANGE["from"])
    page.locator("input[name=to]").fill(RANGE["to"])
    page.locator("input[name=tz]").fill(RANGE["tz"])
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#compare-chart")).to_have_attribute("data-rendered", "true")
    expected = site.store("compare", "--set", "session_inactivity=30m", "--set", "recontact_window=72h,durable_window=14d",
                          *range_options(), "--out", "-")
    assert expected.exit_code == 0, expected.stderr
    rows = list(csv.reader(io.StringIO(expected.stdout_bytes.decode())))
    table = page.locator("#compare-table")
    assert table.locator("thead th").all_inner_texts() == rows[0]
    for i, row in enumerate(rows[1:]):  # each figure's exact cell (data-value); the page shows 1,234 and 68.9%
        line = table.locator("tbody tr").nth(i)
        assert [line.locator("th").inner_text()] + [cell.get_attribute("data-value") for cell in
                                                    line.locator("td").all()] == row
    bars = page.evaluate("Chart.getChart(document.getElementById('compare-chart')).data.datasets.map(d => d.data.length)")
    assert bars == [5, 5, 5]  # the stored definitions and the two sets, each over the five rates
    shot(page, "compare")
    assert outside == []


@pytest.fixture(scope="module")
def demo_month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo's brand (`make demo`: 2,000 customers over 30 days from 2026-05-01, seed 7), for a page that needs a
    month of it."""
    yield from brand_site(tmp_path_factory.mktemp("demo-month"), customers=2000, days=30, seed=7)


def test_handoff_themes_read_as_causes_and_open_their_sessions(browser: Browser, demo_month: LiveServer) -> None:
    """Issue 27: on the demo's month the themes page is a list of causes, largest first, each with its examples and
    a link to the sessions behind it, which opens that many sessions."""
    context = browser.new_context(viewport={"width": 1280, "height": 1700})
    page = log_in_at(context.new_page(), f"{demo_month.url}/reports/handoff-themes")
    page.locator("input[name=from]").fill("2026-05-16")
    page.locator("input[name=to]").fill("2026-05-30")  # the 15 days before are in the month too: a trend
    page.get_by_role("button", name="Run").click()
    table = page.locator("#report-rows")
    expect(table).to_be_visible()
    page.locator("#results").scroll_into_view_if_needed()
    shot(page, "handoff-themes", full_page=False)  # the first themes, as the README shows them
    header = table.locator("thead th").all_inner_texts()
    first = dict(zip(header, table.locator("tbody tr").first.locator("td").all_inner_texts(), strict=True))
    assert first["Theme"] == "1" and " · " in first["Label"]
    assert table.locator("tbody tr").count() >= 8
    themes = page.locator("#themes li.theme")
    expect(themes.first.locator("h3")).to_have_text(first["Label"])
    assert themes.count() == table.locator("tbody tr").count()
    themes.first.locator("a.sessions-link").click()
    expect(page.locator("#row-count")).to_have_attribute("data-count", first["Handoffs"].replace(",", ""))
    assert page.locator("#report-rows tbody td").first.inner_text() == "1"
    context.close()


def test_administrators_read_the_audit_log_and_the_users(page: Page, site: LiveServer, outside: list[str]) -> None:
    conversation = site.store("report", "conversation-export", "--headers", "snake").stdout.splitlines()[1].split(",")[1]
    page.goto(f"{site.url}/conversations/{conversation}")
    expect(page.locator("#conversation-id")).to_contain_text(conversation)
    page.goto(site.url + "/audit")
    expect(page.locator("#audit-entries tr[data-action='view']").filter(has_text=conversation).first).to_be_visible()
    shot(page, "audit")
    page.goto(site.url + "/users")
    expect(page.locator(f"#users tr[data-user='{ADMIN}']")).to_contain_text("Administrator")
    shot(page, "users")
    assert outside == []


def test_an_administrator_uploads_a_file_of_events_and_reads_the_answer(page: Page, site: LiveServer,
                                                                       tmp_path: Path, outside: list[str]) -> None:
    """Issue 28: the Events page takes a JSON Lines file through its form and shows the API's answer: the counts
    and each rejected line's reason; the ingest history then lists the upload first. The events are of a brand of
    their own, before the range the other tests read."""
    lines = [{"event_id": "up-1", "type": "customer_message", "occurred_at": "2026-04-10T09:00:00Z",
              "customer_id": "uploader", "brand": "uploaded", "channel": "chat", "text": "Where is my parcel?"},
             {"event_id": "up-2", "type": "ai_message", "occurred_at": "2026-04-10T09:00:05Z",
              "customer_id": "uploader", "brand": "uploaded", "channel": "chat", "text": "On its way."},
             {"event_id": "up-3", "type": "telepathy", "occurred_at": "2026-04-10T09:01:00Z",
              "customer_id": "uploader", "brand": "uploaded"}]
    path = tmp_path / "support-events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    page.goto(site.url + "/reports")
    page.get_by_role("link", name="Events", exact=True).click()
    expect(page.get_by_role("heading", name="Upload events")).to_be_visible()
    # A file over the limit is refused before it is sent (here a limit of 100 bytes stands in for 50 MB).
    page.locator("#upload-form").evaluate("form => { form.dataset.maxBytes = '100'; }")
    page.get_by_label("File of events").set_input_files(str(path))
    expect(page.locator("#upload-error")).to_contain_text("upload at most 100 at a time; split the file")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-result")).to_have_count(0)
    page.locator("#upload-form").evaluate("form => { form.dataset.maxBytes = '50000000'; }")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#count-accepted")).to_have_text("2")
    expect(page.locator("#count-duplicate")).to_have_text("0")
    expect(page.locator("#count-rejected")).to_have_text("1")
    expect(page.locator("#upload-error")).to_be_hidden()
    rejected = page.locator("#rejected-lines tbody tr")
    expect(rejected).to_have_count(1)
    expect(rejected.locator("td").first).to_have_text("3")
    expect(rejected.locator("td").nth(1)).to_contain_text("type")
    shot(page, "upload")
    source = page.locator("#upload-source").inner_text()
    assert source.endswith(":support-events.jsonl")
    page.get_by_role("link", name="Ingest history").first.click()
    newest = page.locator("#ingest-history tbody tr").first
    expect(newest).to_have_attribute("data-source", source)
    expect(newest.locator("[data-figure='accepted']")).to_have_text("2")
    shot(page, "ingest-history")
    assert outside == []


@pytest.fixture
def settings_site(tmp_path: Path) -> Iterator[LiveServer]:
    """A brand of its own: saving a window here leaves the other tests' figures alone."""
    yield from brand_site(tmp_path, customers=150, days=3, seed=9)


def test_an_administrator_previews_a_window_and_saves_it(browser: Browser, settings_site: LiveServer) -> None:
    """Issue 28 point 1: from a report's definitions line to the Definitions page, then the brand's form: a shorter
    session window previewed as the stored and the proposed figures side by side, then saved; the Definitions page
    then shows the brand's own value."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = log_in_at(context.new_page(), f"{settings_site.url}/reports/sessions-summary?run=1")
    page.locator("#definitions-link").click()
    expect(page.get_by_role("heading", name="Definitions")).to_be_visible()
    row = page.locator("#brand-default tr[data-key='session_inactivity']")
    expect(row.locator("td.value")).to_have_text("2h")
    shot(page, "settings")
    page.locator("#brand-default a.edit-link").click()
    expect(page.get_by_role("heading", name="Settings of brand default")).to_be_visible()
    page.locator("input[name=session_inactivity]").fill("30m")
    page.get_by_role("button", name="Preview").click()
    table = page.locator("table.preview-table")
    expect(table).to_be_visible()
    assert table.locator("thead th").all_inner_texts() == ["Figure", "stored (session_inactivity=2h)",
                                                           "session_inactivity=30m"]
    sessions = table.locator("tbody tr").filter(has_text="Sessions").first.locator("td").all_inner_texts()
    assert int(sessions[1].replace(",", "")) > int(sessions[0].replace(",", ""))  # a shorter window: more sessions
    expect(page.locator("input[name=session_inactivity]")).to_have_value("30m")
    shot(page, "settings-preview")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#saved")).to_contain_text("session_inactivity (default) → 30m")
    expect(page.locator("#saved")).to_contain_text("derived again")
    page.get_by_role("link", name="All definitions").click()
    expect(row.locator("td.value")).to_have_text("30m")
    expect(row).to_have_attribute("data-origin", "brand")
    context.close()


def log_in_at(page: Page, url: str) -> Page:
    """Open `url`, which asks for a login, and log in as the administrator."""
    page.goto(url)
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    return page


def test_on_a_phone_nothing_is_wider_than_the_screen(browser: Browser, site: LiveServer) -> None:
    """At 390 pixels the navigation wraps and every table scrolls in its own box: Log out stays on screen."""
    context = browser.new_context(viewport={"width": 390, "height": 800})
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    page = log_in_at(context.new_page(), f"{site.url}/dashboard?{query}")
    for path in (f"/dashboard?{query}", "/reports", f"/reports/sessions-detail?{query}&run=1", "/conversations",
                 f"/compare?{query}&set=session_inactivity%3D30m&set=recontact_window%3D72h&run=1", "/events/upload",
                 "/events/history", "/settings", "/settings/edit?brand=default"):
        page.goto(site.url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        box = page.get_by_role("button", name="Log out").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, path
    context.close()


def test_after_logging_out_the_back_button_shows_the_login_not_the_messages(browser: Browser, site: LiveServer) -> None:
    """Conversation pages hold personal data (SPEC 6.5): none of it may come back from the browser's cache.
    A context of its own: the other tests' request routing turns the browser's cache off."""
    expected = cli_csv(site, "sessions-detail", *range_options())
    conversation_id = list(csv.reader(io.StringIO(expected.decode())))[1][2]
    context = browser.new_context()
    page = log_in_at(context.new_page(), f"{site.url}/conversations/{conversation_id}")
    expect(page.locator(".message").first).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator(".message")).to_have_count(0)
    context.close()


def test_the_api_documentation_renders_from_this_server_alone(page: Page, site: LiveServer, outside: list[str]) -> None:
    """Swagger UI is served from the installed package: the page works offline and calls no CDN."""
    page.goto(f"{site.url}/api/docs")
    expect(page.get_by_text("/api/v1/reports/{name}").first).to_be_visible()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("convoscope")
    assert outside == []


def test_the_api_documentation_authorizes_with_an_api_token(browser: Browser, site: LiveServer) -> None:
    """Issue 28 point 3: the document declares the API's credentials, so Swagger's page has an Authorize button
    offering the bearer token and HTTP Basic; with a token given there, Try it out answers 200, where it answers
    401 without (in a browser that has not logged in: the login's cookie would do as well)."""
    token = cli_ok(site.store, "users", "token", ADMIN).strip()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{site.url}/api/docs")
    operation = page.locator(".opblock").filter(has=page.locator(".opblock-summary-path", has_text="/api/v1/agents"))
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()

    def executed() -> str:
        operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table tbody .response-col_status").first
        expect(status).to_be_visible()
        return status.inner_text().strip()

    assert executed() == "401"
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    expect(dialog).to_contain_text("apiToken")
    expect(dialog).to_contain_text("userAndToken")
    bearer_form = dialog.locator(".auth-container").filter(has_text="apiToken")
    bearer_form.locator("input").fill(token)
    bearer_form.locator("button", has_text="Authorize").click()
    expect(bearer_form.locator("button", has_text="Logout")).to_be_visible()
    dialog.locator("button.close-modal").click()
    operation.get_by_role("button", name="Clear").click()
    assert executed() == "200"
    context.close()


def test_the_menus_search_box_finds_a_message_and_opens_its_conversation_there(page: Page, site: LiveServer,
                                                                               outside: list[str]) -> None:
    """Issue 29: a number a customer wrote, typed in the menu's box on any page, lists their message with
    the number marked, who wrote it and when; the hit opens the conversation at that message."""
    import re

    from convoscope.store import Store

    with Store(site.store.db, read_only=True) as store:
        (text,) = store.con.execute("SELECT text FROM events WHERE type = 'customer_message' "
                                    "AND regexp_matches(text, '[0-9]{4,}') LIMIT 1").fetchall()[0]
    number = re.findall(r"[0-9]{4,}", text)[0]
    page.goto(site.url + "/reports")
    box = page.locator("#nav-search")
    box.fill(number)
    box.press("Enter")
    hit = page.locator("#found-messages li").first
    expect(hit.locator("mark").first).to_have_text(number)
    speaker = (hit.get_attribute("class") or "").split("speaker-")[1].split()[0]  # who wrote this hit's message
    expect(hit.locator(".speaker").first).to_have_text(re.compile({"customer": "^Customer$", "ai": "^AI"}.get(speaker, ".")))
    expect(hit.locator("time.local-time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$"))
    shot(page, "search")
    said = hit.locator(".hit-link").inner_text()
    hit.locator(".hit-link").click()
    expect(page).to_have_url(re.compile(r"/conversations/cnv_[0-9a-f]{16}#event-[0-9a-f]{16}$"))
    target = page.locator("li.event:target")
    expect(target).to_contain_text(number)
    expect(target).to_be_in_viewport()
    assert said.strip("…").strip() in target.inner_text()
    shot(page, "search-opened", full_page=False)
    assert outside == []
