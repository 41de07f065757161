"""Time made easy (issue 28, point 4): the date presets beside From and To, where the data is when a range holds
no rows, and the names of downloads.

The presets are tested as a function of a fixed today; the pages are tested over HTTP on a real server for what
needs no clock (the whole data's link, the sentence of an empty range, a download's name) and for the presets'
wiring: every preset is there, today's is one day near the clock's.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope
from convoscope.web.ranges import presets
from convoscope.web.reports import download_name
from web_helpers import LiveServer, add_user, cli_ok, generate_brand, log_in, serving

NEW_YORK = "America/New_York"
PRESETS = ("today", "last-7-days", "last-30-days", "this-month", "previous-month", "whole-data")


def test_presets_around_a_fixed_today() -> None:
    found = {p.key: (p.label, p.date_from.isoformat(), p.date_to.isoformat())
             for p in presets(date(2026, 3, 31), (date(2025, 11, 3), date(2026, 3, 30)))}
    assert found == {
        "today": ("Today", "2026-03-31", "2026-03-31"),
        "last-7-days": ("Last 7 days", "2026-03-25", "2026-03-31"),
        "last-30-days": ("Last 30 days", "2026-03-02", "2026-03-31"),
        "this-month": ("This month", "2026-03-01", "2026-03-31"),
        "previous-month": ("Previous month", "2026-02-01", "2026-02-28"),
        "whole-data": ("The whole data", "2025-11-03", "2026-03-30"),
    }


@pytest.mark.parametrize(("today", "month", "previous"), [
    (date(2026, 1, 1), ("2026-01-01", "2026-01-01"), ("2025-12-01", "2025-12-31")),  # across a year
    (date(2028, 3, 15), ("2028-03-01", "2028-03-15"), ("2028-02-01", "2028-02-29")),  # a leap February
    (date(2026, 7, 31), ("2026-07-01", "2026-07-31"), ("2026-06-01", "2026-06-30")),
])
def test_this_and_the_previous_month(today: date, month: tuple[str, str], previous: tuple[str, str]) -> None:
    found = {p.key: (p.date_from.isoformat(), p.date_to.isoformat()) for p in presets(today)}
    assert found["this-month"] == month and found["previous-month"] == previous
    assert "whole-data" not in found  # brands without events: nothing to go to


def test_download_names() -> None:
    assert download_name("sessions-detail", [], None, None) == "sessions-detail_all_start_end.csv"
    assert download_name("sessions-detail", ["acme"], date(2026, 5, 1), None) == \
        "sessions-detail_acme_2026-05-01_end.csv"
    assert download_name("compare", ["acme", "beta", "acme"], "2026-05-01", "2026-05-31") == \
        "compare_acme+beta_2026-05-01_2026-05-31.csv"
    many = [f"brand-{i:03d}" for i in range(20)]
    assert download_name("sessions-summary", many, None, None) == "sessions-summary_20-brands_start_end.csv"


@dataclass
class Site:
    """Two brands served: `default` (the worked example, 2026-05-21 in UTC) and `acme` (generated from 2026-05-01,
    read in New York), with the analyst `ana` logged in and `sam`, who sees only acme."""

    store: Convoscope
    server: LiveServer
    browser: httpx.Client
    acme: tuple[datetime, datetime]  # acme's first and last event, UTC


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("ranges"))
    assert store.config is not None
    store.config.write_text(store.config.read_text() + f'[brands.acme]\ntimezone = "{NEW_YORK}"\n')
    cli_ok(store, "ingest", str(WORKED_EXAMPLE))
    path = generate_brand(store, brand="acme", customers=40, days=3, seed=11, start="2026-05-01")
    instants = [datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in path.read_text().splitlines()]
    add_user(store, "ana", "analyst")
    add_user(store, "sam", "analyst", brands="acme")
    with serving(store) as server, server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        yield Site(store, server, browser, (min(instants).astimezone(UTC), max(instants).astimezone(UTC)))


def links(page: str) -> dict[str, list[tuple[str, str]]]:
    """The presets' links of a page: the query of each, by its `data-preset`."""
    found = {}
    for href, key in re.findall(r'<a href="([^"]*)" data-preset="([^"]*)"', page):
        parts = urlsplit(html.unescape(href))
        found[key] = [("path", parts.path), *parse_qsl(parts.query)]
    return found


def local_dates(instants: tuple[datetime, datetime], zone: str) -> list[tuple[str, str]]:
    first, last = (t.astimezone(ZoneInfo(zone)).date().isoformat() for t in instants)
    return [("from", first), ("to", last)]


def span_sentence(page: str) -> str:
    found = re.search(r'<span id="data-span">([^<]*)</span>', page)
    assert found is not None, page
    return html.unescape(found.group(1))


def test_a_report_pages_presets_keep_its_parameters_and_the_whole_data_is_the_brands(site: Site) -> None:
    query = {"brand": "acme", "by": "channel", "period": "week", "from": "2026-05-02", "to": "2026-05-02", "run": "1"}
    page = site.browser.get("/reports/sessions-summary", params=query)
    assert page.status_code == 200
    found = links(page.text)
    assert tuple(found) == PRESETS
    kept = [("path", "/reports/sessions-summary"), ("period", "week"), ("by", "channel"), ("brand", "acme"),
            ("run", "1")]
    assert sorted(found["whole-data"]) == sorted(local_dates(site.acme, NEW_YORK) + kept)
    today = dict(found["today"])
    assert today["from"] == today["to"]
    near = datetime.now(ZoneInfo(NEW_YORK)).date()  # the acme's zone; the page's clock may have turned a day since
    assert date.fromisoformat(today["from"]) in (near - timedelta(days=1), near, near + timedelta(days=1))
    assert 'Dates in America/New_York:' in page.text


def test_the_whole_data_is_in_the_pages_zone(site: Site) -> None:
    """The worked example lies on 2026-05-21 in UTC, from 10:00 to 17:25: in Auckland it runs into the 22nd."""
    page = site.browser.get("/reports/sessions-detail", params={"brand": "default", "tz": "Pacific/Auckland"})
    whole = dict(links(page.text)["whole-data"])
    assert (whole["from"], whole["to"], whole["tz"]) == ("2026-05-21", "2026-05-22", "Pacific/Auckland")
    assert "run" not in whole  # a page not yet run stays so
    board = site.browser.get("/dashboard", params={"brand": "default"})
    whole = dict(links(board.text)["whole-data"])
    assert (whole["from"], whole["to"], whole["period"]) == ("2026-05-21", "2026-05-21", "day")


def test_an_empty_range_says_where_the_data_is(site: Site) -> None:
    empty = {"from": "2025-01-01", "to": "2025-01-31", "run": "1"}
    page = site.browser.get("/reports/sessions-detail", params={**empty, "brand": "acme"})
    assert page.status_code == 200
    assert 'id="no-rows">No rows for these parameters.' in page.text
    first, last = (d for _, d in local_dates(site.acme, NEW_YORK))
    assert span_sentence(page.text) == f"Brand acme has events from {first} to {last} ({NEW_YORK})."
    every = site.browser.get("/reports/sessions-detail", params=empty)  # two brands: read in UTC
    first = site.acme[0].date().isoformat()
    assert span_sentence(every.text) == f"Your brands have events from {first} to 2026-05-21 (UTC)."
    board = site.browser.get("/dashboard", params={"from": "2025-01-01", "to": "2025-01-31", "brand": "default"})
    assert 'id="no-rows">No sessions in this range.' in board.text
    assert span_sentence(board.text) == "Brand default has events from 2026-05-21 to 2026-05-21 (UTC)."
    full = site.browser.get("/dashboard", params={"brand": "default"})
    assert 'id="data-span"' not in full.text and 'id="dashboard-series"' in full.text


def test_a_user_limited_to_a_brand_learns_nothing_of_another(site: Site) -> None:
    with site.server.client() as sam:
        assert log_in(sam, "sam").status_code == 303
        board = sam.get("/dashboard", params={"from": "2025-01-01", "to": "2025-01-31"})
        first, last = (d for _, d in local_dates(site.acme, NEW_YORK))  # acme alone, so in its zone
        assert span_sentence(board.text) == f"Brand acme has events from {first} to {last} ({NEW_YORK})."
        refused = sam.get("/reports/sessions-detail", params={"brand": "default", "run": "1"})
        assert refused.status_code == 400
        assert "whole-data" not in links(refused.text)  # the brand they may not see has no span for them
        assert "2026-05-21" not in refused.text


def test_downloads_are_named_after_report_brand_and_range(site: Site) -> None:
    get = site.browser.get

    def named(answer: httpx.Response) -> str:
        assert answer.status_code == 200, answer.text
        return answer.headers["content-disposition"]

    assert named(get("/api/v1/reports/sessions-detail", params={"brand": "acme", "from": "2026-05-01",
                                                                 "to": "2026-05-03"})) == \
        'attachment; filename="sessions-detail_acme_2026-05-01_2026-05-03.csv"'
    assert named(get("/api/v1/reports/sessions-summary")) == 'attachment; filename="sessions-summary_all_start_end.csv"'
    assert named(get("/api/v1/reports/contact-export", params=[("brand", "default"), ("brand", "acme"),
                                                               ("to", "2026-05-21")])) == \
        'attachment; filename="contact-export_default+acme_start_2026-05-21.csv"'
    # A page's Download hands over to the API's CSV, and so to its name.
    assert named(get("/reports/sessions-detail", params={"brand": "acme", "from": "2026-05-02", "download": "1"},
                     follow_redirects=True)) == 'attachment; filename="sessions-detail_acme_2026-05-02_end.csv"'
    assert named(get("/api/v1/compare", params={"set": "session_inactivity=30m", "brand": "default"})) == \
        'attachment; filename="compare_default_start_end.csv"'


def test_the_what_if_page_has_the_presets(site: Site) -> None:
    page = site.browser.get("/compare", params={"brand": "acme", "set": "session_inactivity=30m"})
    found = links(page.text)
    assert tuple(found) == PRESETS
    assert sorted(found["whole-data"]) == sorted(
        local_dates(site.acme, NEW_YORK) + [("path", "/compare"), ("brand", "acme"), ("set", "session_inactivity=30m")])
