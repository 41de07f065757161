"""Tables that answer questions (issue 28, point 3): a report page's rows sorted by any column and paged through
the whole result on the server, each cell's exact CSV value beside what it shows, and the column's meaning beside
its header; the CSV link is neither sorted nor paged.

Over HTTP on a real server holding a generated brand of a few hundred sessions: the pages read back together
must be the CSV, row for row.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from jinja2 import Undefined

from cli_helpers import Convoscope
from convoscope.reports import REPORTS
from convoscope.reports.meanings import meaning
from convoscope.web import formats
from web_helpers import LiveServer, add_user, csv_table, generate_brand, log_in, serving

START, LAST = "2026-05-01", "2026-05-07"
AS_OF = "2026-06-01T00:00:00Z"
RANGE = {"from": START, "to": LAST, "as_of": AS_OF}


@dataclass
class Site:
    server: LiveServer
    browser: httpx.Client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("tables"))
    generate_brand(store, customers=400, days=7, seed=3, start=START)
    add_user(store, "ana", "analyst")
    with serving(store) as server, server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        yield Site(server, browser)


class Rows(HTMLParser):
    """A page's report table: each header's `data-column` and title, each body row's cells' `data-value`s and
    shown texts, and the pager's links by id."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: list[str] = []
        self.titles: list[str | None] = []
        self.values: list[list[str]] = []
        self.shown: list[list[str]] = []
        self.links: dict[str, str] = {}
        self._in: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id") == "report-rows":
            self._in = "table"
        elif self._in == "table" and tag == "tbody":
            self._in = "body"
        elif self._in == "table" and tag == "th" and "data-column" in found:
            self.columns.append(found["data-column"] or "")
            self.titles.append(found.get("title"))
        elif self._in == "body" and tag == "tr":
            self.values.append([])
            self.shown.append([])
        elif self._in == "body" and tag == "td":
            self.values[-1].append(found.get("data-value") or "")
            self._cell = []
        elif tag == "a" and found.get("id", "").startswith("page-"):
            self.links[found["id"] or ""] = html.unescape(found.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._in == "body" and tag == "tbody":
            self._in = None
        elif tag == "td" and self._cell is not None:
            self.shown[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def read(site: Site, name: str, **query: str) -> tuple[httpx.Response, Rows]:
    page = site.browser.get(f"/reports/{name}", params=RANGE | {"run": "1"} | query)
    rows = Rows()
    rows.feed(page.text)
    return page, rows


def shown_text(page: httpx.Response) -> str:
    """The words a page shows, tags gone and white space as single spaces."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page.text)).split())


def csv_rows(site: Site, name: str) -> tuple[list[str], list[list[str]]]:
    page, _ = read(site, name)
    link = html.unescape(re.search(r'<a href="([^"]+)" id="csv-link">', page.text).group(1))  # type: ignore[union-attr]
    assert not {"sort", "desc", "page", "size"} & {k for k, _ in parse_qsl(urlsplit(link).query)}, link
    header, *rows = csv_table(site.browser.get(link).text)
    return header, rows


def test_the_pages_together_are_the_csv(site: Site) -> None:
    header, expected = csv_rows(site, "sessions-detail")
    assert len(expected) > 250, "the brand should fill three pages of 100"
    first, rows = read(site, "sessions-detail")
    assert len(rows.values) == 100 and rows.values == expected[:100]
    assert f"Rows 1–100 of {len(expected):,} rows." in shown_text(first)
    seen, link = list(rows.values), rows.links.get("page-next")
    while link:
        page = site.browser.get(link)
        assert page.status_code == 200
        rows = Rows()
        rows.feed(page.text)
        seen += rows.values
        link = rows.links.get("page-next")
    assert seen == expected
    second, rows = read(site, "sessions-detail", page="2")
    assert f"Rows 101–200 of {len(expected):,} rows." in shown_text(second) and rows.values == expected[100:200]
    last_page = -(-len(expected) // 50)
    _, rows = read(site, "sessions-detail", size="50", page=str(last_page))
    assert rows.values == expected[(last_page - 1) * 50:] and "page-next" not in rows.links


def test_a_result_run_as_of_now_is_paged_and_sorted_as_of_that_instant(site: Site) -> None:
    """The other pages and sorts of a result run without as_of are judged at the instant the first one was (decision
    161), so that its rows do not move between pages as the clock runs."""
    before = datetime.now(UTC)
    first = site.browser.get("/reports/sessions-detail", params={"from": START, "to": LAST, "run": "1"})
    after = datetime.now(UTC)
    rows = Rows()
    rows.feed(first.text)
    sort = html.unescape(re.search(r'data-column="channel"[^>]*><a class="sort" href="([^"]+)"',
                                   first.text).group(1))  # type: ignore[union-attr]
    pinned = {dict(parse_qsl(urlsplit(link).query)).get("as_of") for link in (rows.links["page-next"], sort)}
    assert len(pinned) == 1 and None not in pinned
    (instant,) = pinned
    assert before <= datetime.fromisoformat(instant or "") <= after
    assert f"as of {instant[:19]}Z" in shown_text(first)  # the definitions under the table name that instant
    page = site.browser.get(rows.links["page-next"])
    assert page.status_code == 200 and f'value="{instant}"' in page.text  # the form says which instant it shows


def expected_order(header: list[str], rows: list[list[str]], column: str, descending: bool,
                   numeric: bool) -> list[list[str]]:
    """`rows` (the report's order) sorted as a page sorts them: by the column, numbers as numbers and text without
    case, empty cells last both ways, ties in the report's order (Python's sort is stable, also reversed)."""
    i = header.index(column)
    filled = [row for row in rows if row[i] != ""]
    empty = [row for row in rows if row[i] == ""]
    key = (lambda row: float(row[i])) if numeric else (lambda row: row[i].lower())
    return sorted(filled, key=key, reverse=descending) + empty


@pytest.mark.parametrize(("name", "column", "snake", "numeric"), [
    ("guide-effectiveness", "Resolution Rate", "resolution_rate", True),
    ("guide-effectiveness", "Sessions", "sessions", True),
    ("sessions-detail", "Handoff Category", "handoff_category", False),
    ("sessions-summary", "Handed Off", "handed_off", True),
    ("contact-export", "Duration Seconds", "duration_seconds", True),
    ("conversation-export", "Last Closed At", "last_closed_at", False),
])
@pytest.mark.parametrize("descending", [False, True])
def test_a_column_sorts_the_whole_result(site: Site, name: str, column: str, snake: str, numeric: bool,
                                         descending: bool) -> None:
    header, expected = csv_rows(site, name)
    order = expected_order(header, expected, column, descending, numeric)
    query = {"sort": snake, "size": "500"} | ({"desc": "1"} if descending else {})
    page, rows = read(site, name, **query)
    assert page.status_code == 200
    assert rows.values == order[:500]
    i = header.index(column)
    if any(row[i] == "" for row in expected):
        assert rows.values[-1][i] == ""  # empty cells last, both ways
    assert 'aria-sort="{}"'.format("descending" if descending else "ascending") in page.text


def test_a_header_links_to_its_sort_then_the_other_way(site: Site) -> None:
    _, rows = read(site, "guide-effectiveness")
    page = site.browser.get("/reports/guide-effectiveness", params=RANGE | {"run": "1"})
    link = html.unescape(re.search(r'data-column="resolution_rate"[^>]*><a class="sort" href="([^"]+)"',
                                   page.text).group(1))  # type: ignore[union-attr]
    assert dict(parse_qsl(urlsplit(link).query))["sort"] == "resolution_rate" and "desc=" not in link
    sorted_page = site.browser.get(link)
    again = html.unescape(re.search(r'data-column="resolution_rate"[^>]*><a class="sort" href="([^"]+)"',
                                    sorted_page.text).group(1))  # type: ignore[union-attr]
    assert dict(parse_qsl(urlsplit(again).query)).get("desc") == "1"


@pytest.mark.parametrize(("query", "words"), [
    ({"sort": "nope"}, "sort 'nope' is not a column of this table; use one of session_id,"),
    ({"page": "0"}, "page '0' is not a page number; use 1 or more"),
    ({"page": "two"}, "page 'two' is not a page number"),
    ({"desc": "maybe"}, "desc 'maybe' is not 1 (descending) or 0 (ascending)"),
    ({"page": "999"}, "page 999 is past the last page,"),
    ({"size": "7"}, "size '7' is not a page size; use one of 50, 100, 500"),
])
def test_a_bad_sort_or_page_is_one_line_above_the_form(site: Site, query: dict[str, str], words: str) -> None:
    page, rows = read(site, "sessions-detail", **query)
    assert page.status_code == 400 and not rows.values
    message = re.search(r'<p class="error" role="alert" id="form-error">([^<]*)</p>', page.text)
    assert message is not None and words in html.unescape(message.group(1)), page.text[:3000]
    assert "\n" not in html.unescape(message.group(1))


def test_one_format_per_kind() -> None:
    assert [formats.rate(c) for c in ("0.6899", "0.6850", "1.0000", "0.0000", "-0.5000", "", None)] == [
        "69.0%", "68.5%", "100.0%", "0.0%", "-50.0%", "–", "–"]
    assert formats.rate("0.68949") == "68.9%" and formats.rate("0.00049") == "0.0%"  # half away from zero, no -0.0%
    assert [formats.percentage(c) for c in ("68.99", "3.13", "100.00", "")] == ["69.0%", "3.1%", "100.0%", "–"]
    assert [formats.number(c) for c in ("12345", "1234.50", "7", "", None)] == ["12,345", "1,234.50", "7", "", ""]
    assert [formats.duration(c) for c in ("185", "5", "60", "754.50", "3725", "97445", "0", "")] == [
        "3m 05s", "5s", "1m 00s", "12m 35s", "1h 02m 05s", "1d 03h 04m", "0s", ""]
    assert formats.share(1, 2) == "50.0%" and formats.share(1, 0) == "–"
    # A template's missing figure (an empty range's totals) is an empty cell, not an error.
    assert formats.rate(Undefined()) == "–" and formats.number(Undefined()) == "" and formats.number(0) == "0"


def test_cells_show_their_kind_and_keep_the_exact_value(site: Site) -> None:
    """A rate shows as a percentage with one decimal, a count with separators, a duration as `3m 05s`; the CSV's
    exact cell stays in data-value (the pages' rows are the CSV's, as the paging test reads them)."""
    header, expected = csv_rows(site, "guide-effectiveness")
    _, rows = read(site, "guide-effectiveness", size="500")
    assert rows.values == expected
    rate = header.index("Resolution Rate")
    for values, shown in zip(rows.values, rows.shown, strict=True):
        cell = values[rate]
        assert shown[rate] == (f"{(Decimal(cell) * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
                               if cell else "–")
        assert shown[header.index("Sessions")] == f"{int(values[header.index('Sessions')]):,}"
    header, expected = csv_rows(site, "contact-export")
    _, rows = read(site, "contact-export", size="500")
    seconds = header.index("Duration Seconds")
    durations = [(values[seconds], shown[seconds]) for values, shown in zip(rows.values, rows.shown, strict=True)]
    assert any(int(value) >= 60 for value, _ in durations if value)
    for value, shown in durations:
        if value:
            minutes, rest = divmod(int(value), 60)
            assert shown in (f"{rest}s", f"{minutes}m {rest:02d}s") or "h" in shown, (value, shown)
        else:
            assert shown == ""


def test_every_header_says_what_its_column_means(site: Site) -> None:
    for name in ("sessions-detail", "sessions-summary", "contact-export"):
        page, rows = read(site, name)
        assert rows.columns and all(rows.titles), (name, rows.columns, rows.titles)
        report = REPORTS[name]
        assert html.unescape(rows.titles[rows.columns.index(report.columns[1].snake)] or "") == \
            meaning(name, report.columns[1].display)
        assert 'id="column-definitions"' in page.text
