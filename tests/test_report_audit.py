"""One report path, one audit row (issue 24, SPEC 6.5): a download of the report with messages through any
interface — the command line's `report`, the API's GET (CSV and JSON) and POST, a report page's Run and its
Download — writes exactly one audit row, with the caller and the parameters as that interface was given
them, and the brands it covered; a report without messages writes none, whichever interface runs it.

A real `convoscope serve` answers the HTTP interfaces; the command line runs on the same store meanwhile.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from cli_helpers import AS_OF, Convoscope
from web_helpers import LiveServer, add_user, bearer, cli_ok, ingest_worked_example, log_in, serving

DAY = "2026-05-21"  # the worked example's day
MESSAGES = "sessions-detail-with-messages"
PLAIN = "sessions-detail"


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    token: str
    browser: httpx.Client  # logged in as the same analyst, through the login form


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("report-audit"))
    ingest_worked_example(store)
    token = add_user(store, "ana", "analyst")
    with serving(store) as server, server.client() as browser:
        assert log_in(browser, "ana").status_code == 303  # the login's own audit row comes before any count
        yield Site(store, server, token, browser)


def audit_log(db: Path) -> list[tuple[Any, ...]]:
    """Every audit row, oldest first: (user, action, target, parameters, brands). The server holds the store
    only while it answers, so the file is free between two requests."""
    for _ in range(100):
        try:
            with duckdb.connect(str(db), read_only=True) as con:
                rows = con.execute("SELECT user_name, action, target, parameters, brands FROM audit_log "
                                   "ORDER BY logged_at, rowid").fetchall()
            return [(user, action, target, json.loads(parameters), brands)
                    for user, action, target, parameters, brands in rows]
        except duckdb.IOException:  # held for a moment by the server's spool worker
            time.sleep(0.1)
    raise AssertionError("the store stayed locked")


# Each interface downloads `name` (of the worked example's day, for brand `default` when `brand`), and says
# who the audit row must name, with which action and parameters.
Download = Callable[[Site, str, bool], tuple[str, str, dict[str, Any]]]


def by_cli(site: Site, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    cli_ok(site.store, "report", name, "--from", DAY, "--to", DAY, "--as-of", AS_OF,
           *(["--brand", "default"] if brand else []))
    given: dict[str, Any] = {"from": DAY, "to": DAY, "as_of": AS_OF, "out": "-"}
    return f"cli:{getpass.getuser()}", "download", given | ({"brand": ["default"]} if brand else {})


def _get(site: Site, name: str, brand: bool, accept: str) -> tuple[str, str, dict[str, Any]]:
    query = {"from": DAY, "to": DAY, "as_of": AS_OF} | ({"brand": "default"} if brand else {})
    with site.server.client() as client:
        answer = client.get(f"/api/v1/reports/{name}", params=query, headers=bearer(site.token) | {"Accept": accept})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(accept)
    return "ana", "download", query


def by_get_csv(site: Site, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    return _get(site, name, brand, "text/csv")


def by_get_json(site: Site, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    return _get(site, name, brand, "application/json")


def by_post(site: Site, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    body: dict[str, Any] = {"metricSet": name, "startAt": DAY, "endAt": DAY}
    if brand:
        body["filters"] = {"brand": "default"}
    with site.server.client() as client:
        answer = client.post("/api/v1/reports", json=body, headers=bearer(site.token))
    assert answer.status_code == 200, answer.text
    return "ana", "download", body


def by_page_run(site: Site, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    query = {"from": DAY, "to": DAY, "run": "1"} | ({"brand": "default"} if brand else {})
    page = site.browser.get(f"/reports/{name}", params=query)
    assert page.status_code == 200, page.text
    assert 'id="report-rows"' in page.text
    return "ana", "view", {"from": DAY, "to": DAY, "via": "page"} | ({"brand": ["default"]} if brand else {})


def by_page_download(site: Site, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    query = {"from": DAY, "to": DAY, "download": "1"} | ({"brand": "default"} if brand else {})
    answer = site.browser.get(f"/reports/{name}", params=query, follow_redirects=True)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert len(answer.history) == 1  # the page hands over to the API's CSV
    return "ana", "download", {"from": DAY, "to": DAY} | ({"brand": "default"} if brand else {})


INTERFACES: dict[str, Download] = {
    "cli": by_cli, "api-get-csv": by_get_csv, "api-get-json": by_get_json, "api-post": by_post,
    "page-run": by_page_run, "page-download": by_page_download,
}


@pytest.mark.parametrize("brand", [False, True], ids=["every-brand", "brand"])
@pytest.mark.parametrize("interface", list(INTERFACES))
def test_a_download_with_messages_writes_one_audit_row(site: Site, interface: str, brand: bool) -> None:
    before = audit_log(site.store.db)
    user, action, parameters = INTERFACES[interface](site, MESSAGES, brand)
    written = audit_log(site.store.db)[len(before):]
    assert written == [(user, action, MESSAGES, parameters, ["default"] if brand else None)]


@pytest.mark.parametrize("interface", list(INTERFACES))
def test_a_report_without_messages_writes_no_audit_row(site: Site, interface: str) -> None:
    before = audit_log(site.store.db)
    INTERFACES[interface](site, PLAIN, True)
    assert audit_log(site.store.db) == before
