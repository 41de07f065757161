"""One report path, one audit row (issue 24, SPEC 6.5): a download of the report with messages through any
interface — the command line's `report`, the API's GET (CSV and JSON) and POST, a report page's Run and its
Download — writes exactly one audit row, with the caller and the parameters as that interface was given
them, and the brands it covered; a report without messages writes none, whichever interface runs it.

A real `convoscope serve` answers the HTTP interfaces; the command line runs on the same store meanwhile.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import AS_OF
from convoscope.store import connect as connect_waiting
from web_helpers import AnalystSite, bearer, cli_ok

DAY = "2026-05-21"  # the worked example's day
MESSAGES = "sessions-detail-with-messages"
PLAIN = "sessions-detail"

def audit_log(db: Path) -> list[tuple[Any, ...]]:
    """Every audit row, oldest first: (user, action, target, parameters, brands), read as a command reads
    the store: the server lets go of it once no request uses it (`store.wanted`)."""
    with connect_waiting(db, read_only=True) as con:
        rows = con.execute("SELECT user_name, action, target, parameters, brands FROM audit_log "
                           "ORDER BY logged_at, rowid").fetchall()
    return [(user, action, target, json.loads(parameters), brands) for user, action, target, parameters, brands in rows]


# Each interface downloads `name` (of the worked example's day, for brand `default` when `brand`), and says
# who the audit row must name, with which action and parameters.
Download = Callable[[AnalystSite, str, bool], tuple[str, str, dict[str, Any]]]


def by_cli(served: AnalystSite, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    cli_ok(served.store, "report", name, "--from", DAY, "--to", DAY, "--as-of", AS_OF,
           *(["--brand", "default"] if brand else []))
    given: dict[str, Any] = {"from": DAY, "to": DAY, "as_of": AS_OF, "out": "-"}
    return f"cli:{getpass.getuser()}", "download", given | ({"brand": ["default"]} if brand else {})


def _get(served: AnalystSite, name: str, brand: bool, accept: str) -> tuple[str, str, dict[str, Any]]:
    query = {"from": DAY, "to": DAY, "as_of": AS_OF} | ({"brand": "default"} if brand else {})
    with served.server.client() as client:
        answer = client.get(f"/api/v1/reports/{name}", params=query, headers=bearer(served.token) | {"Accept": accept})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(accept)
    return "ana", "download", query


def by_get_csv(served: AnalystSite, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    return _get(served, name, brand, "text/csv")


def by_get_json(served: AnalystSite, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    return _get(served, name, brand, "application/json")


def by_post(served: AnalystSite, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    body: dict[str, Any] = {"metricSet": name, "startAt": DAY, "endAt": DAY}
    if brand:
        body["filters"] = {"brand": "default"}
    with served.server.client() as client:
        answer = client.post("/api/v1/reports", json=body, headers=bearer(served.token))
    assert answer.status_code == 200, answer.text
    return "ana", "download", body


def by_page_run(served: AnalystSite, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    query = {"from": DAY, "to": DAY, "run": "1"} | ({"brand": "default"} if brand else {})
    page = served.browser.get(f"/reports/{name}", params=query)
    assert page.status_code == 200, page.text
    assert 'id="report-rows"' in page.text
    return "ana", "view", {"from": DAY, "to": DAY, "via": "page"} | ({"brand": ["default"]} if brand else {})


def by_page_download(served: AnalystSite, name: str, brand: bool) -> tuple[str, str, dict[str, Any]]:
    query = {"from": DAY, "to": DAY, "download": "1"} | ({"brand": "default"} if brand else {})
    answer = served.browser.get(f"/reports/{name}", params=query, follow_redirects=True)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert len(answer.history) == 1  # the page hands over to the API's CSV
    return "ana", "download", {"from": DAY, "to": DAY} | ({"brand": "default"} if brand else {})


INTERFACES: dict[str, Download] = {
    "cli": by_cli, "api-get-csv": by_get_csv, "api-get-json": by_get_json, "api-post": by_post,
    "page-run": by_page_run, "page-download": by_page_download,
}


@pytest.mark.parametrize("name", [MESSAGES, "handoff-themes-with-examples"])
@pytest.mark.parametrize("brand", [False, True], ids=["every-brand", "brand"])
@pytest.mark.parametrize("interface", list(INTERFACES))
def test_a_download_with_messages_writes_one_audit_row(served: AnalystSite, interface: str, brand: bool,
                                                       name: str) -> None:
    before = audit_log(served.store.db)
    user, action, parameters = INTERFACES[interface](served, name, brand)
    written = audit_log(served.store.db)[len(before):]
    assert written == [(user, action, name, parameters, ["default"] if brand else None)]


@pytest.mark.parametrize("name", [PLAIN, "handoff-themes"])
@pytest.mark.parametrize("interface", list(INTERFACES))
def test_a_report_without_messages_writes_no_audit_row(served: AnalystSite, interface: str, name: str) -> None:
    before = audit_log(served.store.db)
    INTERFACES[interface](served, name, True)
    assert audit_log(served.store.db) == before
