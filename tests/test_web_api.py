"""The HTTP API of SPEC 6.2 through a real `convoscope serve`: sending events, the reporting API of the
system the seeds describe (`POST /api/v1/reports`), the report endpoints with the common parameters of
SPEC 4 — the same bytes as `convoscope report` — the entity endpoints, and the OpenAPI document.

One server per module over one store: a generated brand `default` set in the past (so reports judged
now are stable) with a few bad records, and the worked example of SPEC 3.7. The typed JSON of every report
(issue 28) has a second, on which every report has rows (the sources report needs a helpdesk's records).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cli_helpers import AS_OF, Convoscope
from convoscope.reports import REPORTS
from convoscope.reports.base import KINDS, Params, Report
from source_helpers import CHATWOOT
from web_helpers import (
    WORKED_CONTACT,
    WORKED_CONVERSATION,
    WORKED_SESSION_1,
    WORKED_SESSION_2,
    LiveServer,
    add_user,
    assert_json_cell,
    bearer,
    cli_ok,
    csv_dicts,
    csv_table,
    generate_brand,
    ingest_worked_example,
    past_start,
    serving,
)

START = date.fromisoformat(past_start())
FROM, TO = (START + timedelta(days=1)).isoformat(), (START + timedelta(days=5)).isoformat()
MID = f"{(START + timedelta(days=3)).isoformat()}T12:00:00Z"  # some sessions and contacts are open then
API_DAY = "2026-05-10"  # the day of the events this module sends


@dataclass
class Api:
    store: Convoscope
    server: LiveServer
    token: str
    client: httpx.Client

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers={**bearer(self.token), **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers={**bearer(self.token), **kwargs.pop("headers", {})}, **kwargs)

    def cli_report(self, name: str, *args: str) -> bytes:
        result = self.store("report", name, *args)
        assert result.exit_code == 0, result.stderr
        return result.stdout_bytes


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = Convoscope(tmp_path_factory.mktemp("api"))
    generate_brand(store, bad_rate=0.02)
    ingest_worked_example(store)
    token = add_user(store, "admin", "administrator")
    with serving(store) as server, server.client() as client:
        yield Api(store, server, token, client)


def as_cli_args(query: dict[str, Any]) -> list[str]:
    """GET query parameters as the equivalent `convoscope report` options."""
    args: list[str] = []
    for key, value in query.items():
        option = "--" + key.replace("_", "-")
        if key == "extra":
            args.append("--extra")
        elif isinstance(value, list):
            for item in value:
                args += [option, item]
        else:
            args += [option, value]
    return args


# --- POST /api/v1/events ---------------------------------------------------------------------------------

def event(event_id: str, type_: str, at: str, customer: str, **fields: Any) -> dict[str, Any]:
    found = {"event_id": event_id, "type": type_, "occurred_at": at, "customer_id": customer}
    if type_ in ("customer_message", "ai_message", "agent_message"):
        found["channel"] = "chat"
    return found | fields


def sessions_of(api: Api, customer: str, day: str = API_DAY) -> list[dict[str, str]]:
    response = api.get("/api/v1/reports/sessions-detail", params={"from": day, "to": day, "tz": "UTC"})
    assert response.status_code == 200, response.text
    return [row for row in csv_dicts(response.text) if row["Customer ID"] == customer]


def test_a_json_array_is_stored_and_reported_right_after(api: Api) -> None:
    batch = [
        event("arr-1", "customer_message", f"{API_DAY}T09:00:00Z", "api-array", text="Where is my parcel?"),
        event("arr-2", "ai_message", f"{API_DAY}T09:00:05Z", "api-array", text="On its way.", ai_agent="Care"),
        event("arr-3", "telepathy", f"{API_DAY}T09:01:00Z", "api-array"),
        {"event_id": "arr-4", "type": "customer_message", "customer_id": "api-array", "channel": "chat"},
        event("arr-5", "customer_message", f"{API_DAY}T09:02:00Z", "api-array", route="sideways"),
    ]
    response = api.post("/api/v1/events", json=batch)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (2, 0, 3)
    reasons = {item["index"]: item["reason"] for item in answer["errors"]}
    assert sorted(reasons) == [2, 3, 4]
    assert "type" in reasons[2]
    assert "occurred_at" in reasons[3]
    assert "route" in reasons[4]

    (session,) = sessions_of(api, "api-array")
    assert session["Was Responded To"] == "true"
    assert session["Gladly Agent"] == "Care"
    rejects = cli_ok(api.store, "rejects")
    assert "telepathy" in rejects and "sideways" in rejects  # kept with their raw text (SPEC 2.4)


def test_ndjson_counts_duplicates_and_conflicts_by_index(api: Api) -> None:
    first = [event("nd-1", "customer_message", f"{API_DAY}T11:00:00Z", "api-ndjson", text="hello")]
    assert api.post("/api/v1/events", json=first).json()["accepted"] == 1
    lines = [
        event("nd-2", "ai_message", f"{API_DAY}T11:00:03Z", "api-ndjson", text="hi there"),
        event("nd-1", "customer_message", f"{API_DAY}T11:00:00Z", "api-ndjson", text="hello"),  # duplicate
        event("nd-1", "customer_message", f"{API_DAY}T11:00:00Z", "api-ndjson", text="HELLO"),  # conflict
        event("nd-3", "handoff", f"{API_DAY}T11:01:00Z", "api-ndjson", category="handoff_manual"),
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    response = api.post("/api/v1/events", content=body.encode(), headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (2, 1, 1)
    assert [item["index"] for item in answer["errors"]] == [2]
    assert "conflict" in answer["errors"][0]["reason"].lower() or "differ" in answer["errors"][0]["reason"].lower()

    (session,) = sessions_of(api, "api-ndjson")
    assert (session["Was Handed Off"], session["Handoff Category"]) == ("true", "handoff_manual")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"], ids=["U+2028", "U+2029", "U+0085"])
def test_ndjson_lines_are_split_at_newlines_only(api: Api, separator: str) -> None:
    """JSON allows these characters raw inside a string; they end no NDJSON line (SPEC 4.2 lists them
    among the line breaks a text may hold)."""
    customer = f"api-separator-{ord(separator)}"
    lines = [
        event(f"{customer}-1", "customer_message", f"{API_DAY}T16:00:00Z", customer, text=f"two{separator}lines"),
        event(f"{customer}-2", "ai_message", f"{API_DAY}T16:00:02Z", customer, text="ok"),
    ]
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    assert separator in body
    response = api.post("/api/v1/events", content=body.encode(), headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicate": 0, "rejected": 0, "errors": []}
    history = api.get("/api/v1/reports/sessions-detail-with-messages",
                      params={"from": API_DAY, "to": API_DAY, "tz": "UTC"})
    (row,) = [r for r in csv_dicts(history.text) if r["Customer ID"] == customer]
    assert "Customer: two lines" in row["Message History"]


def test_rejects_of_a_brand_with_no_accepted_event_are_in_data_quality(api: Api) -> None:
    """A new brand whose first batch is all wrong: the data-quality report must say why (SPEC 2.4, 4.8)."""
    bad = event("nb-1", "customer_message", f"{API_DAY}T17:00:00Z", "api-newbrand", brand="newbrand", route="x")
    answer = api.post("/api/v1/events", json=[bad]).json()
    assert (answer["accepted"], answer["rejected"]) == (0, 1)
    every = api.get("/api/v1/reports/data-quality", params={"from": API_DAY, "to": API_DAY})
    assert every.status_code == 200
    assert "nb-1" in {row["Event ID"] for row in csv_dicts(every.text)}
    assert b"nb-1" in api.cli_report("data-quality", "--from", API_DAY, "--to", API_DAY)
    named = api.get("/api/v1/reports/data-quality", params={"brand": "newbrand"})
    assert named.status_code == 200, named.text
    assert "nb-1" in named.text


@pytest.mark.parametrize(("body", "content_type"), [
    (b"", "application/json"),
    (b"[]", "application/json"),
    (b"[{\"event_id\": ", "application/json"),
])
def test_an_empty_or_broken_batch_is_400(api: Api, body: bytes, content_type: str) -> None:
    response = api.post("/api/v1/events", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["detail"]


def test_more_than_10000_events_is_413_naming_the_limit_and_stores_nothing(api: Api) -> None:
    batch = [event(f"big-{i}", "customer_message", f"{API_DAY}T13:00:00Z", f"api-big-{i}") for i in range(10_001)]
    response = api.post("/api/v1/events", json=batch)
    assert response.status_code == 413, response.text[:300]
    detail = response.json()["errors"][0]["detail"]
    assert "10,000" in detail or "10000" in detail
    assert sessions_of(api, "api-big-0") == []


def test_exactly_10000_events_are_accepted(api: Api) -> None:
    batch = [event(f"max-{i}", "customer_message", f"{API_DAY}T14:00:00Z", f"api-max-{i % 50}") for i in range(10_000)]
    response = api.post("/api/v1/events", json=batch)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["accepted"] == 10_000


# --- GET /api/v1/reports/{name}: the same bytes as the command line -------------------------------------

GET_CASES = [
    ("sessions-detail", {"from": FROM, "to": TO, "tz": "America/New_York", "as_of": MID}),
    ("sessions-detail", {"as_of": MID, "extra": "true", "where": ["outcome=resolved", "channel=chat"],
                         "headers": "snake"}),
    ("sessions-detail-with-messages", {"from": FROM, "to": TO, "tz": "Asia/Kolkata", "as_of": MID}),
    ("sessions-summary", {"from": FROM, "to": TO, "tz": "Europe/Berlin", "as_of": MID, "period": "week",
                          "by": "channel"}),
    ("contact-export", {"from": FROM, "to": TO, "tz": "America/Los_Angeles", "as_of": MID}),
    ("contact-summary", {"as_of": MID, "period": "half_hour", "tz": "Asia/Kathmandu"}),
    ("conversation-export", {"from": FROM, "tz": "Australia/Adelaide", "as_of": MID}),
    ("conversation-summary", {"as_of": MID, "period": "month", "to": TO}),
    ("data-quality", {"from": FROM, "to": TO, "tz": "UTC", "as_of": MID}),
]


@pytest.mark.parametrize(("name", "query"), GET_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GET_CASES)])
def test_get_report_is_byte_identical_to_the_cli(api: Api, name: str, query: dict[str, Any]) -> None:
    response = api.get(f"/api/v1/reports/{name}", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    expected = api.cli_report(name, *as_cli_args(query))
    assert len(csv_table(expected.decode())) > 1, "a comparison of empty reports proves little"
    assert response.content == expected


def assert_typed_like_the_csv(report: Report, query: dict[str, Any], as_csv: httpx.Response,
                              as_json: httpx.Response) -> set[str]:
    """The JSON answer of `report` has the CSV's header and rows, each value of its column's JSON type (issue 28:
    counts whole numbers, rates numbers, other numbers either, booleans booleans, identifiers, times and text
    strings, null for an empty cell) and equal to the cell (a number parses to the same value). Returns the kinds
    seen with a value."""
    assert as_csv.status_code == as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")
    header, *rows = csv_table(as_csv.text)
    body = as_json.json()
    assert (body["report"], body["columns"]) == (report.name, header)
    assert len(body["rows"]) == len(rows)
    columns = report.output_columns(Params(by=query.get("by"), extra="extra" in query))
    assert header == [c.snake if query.get("headers") == "snake" else c.display for c in columns]
    seen = set()
    for row, cells in zip(body["rows"], rows, strict=True):
        assert list(row) == header
        for column, name, cell in zip(columns, header, cells, strict=True):
            assert_json_cell(column.kind, row[name], cell, (report.name, name))
            seen |= {column.kind} if cell else set()
    return seen


@pytest.mark.parametrize(("name", "query"), [
    ("sessions-detail-with-messages", {"from": FROM, "to": TO, "tz": "Asia/Kolkata", "as_of": MID, "extra": "true"}),
    ("sessions-summary", {"as_of": MID, "by": "guide", "headers": "snake"}),
    ("contact-export", {"as_of": MID, "tz": "America/Los_Angeles", "extra": "true"}),
    ("conversation-summary", {"as_of": MID, "period": "week"}),
])
def test_json_rows_are_the_csv_cells_typed(api: Api, name: str, query: dict[str, Any]) -> None:
    """At an as-of time when some sessions and contacts are open, so that some cells are empty."""
    as_csv = api.get(f"/api/v1/reports/{name}", params=query)
    as_json = api.get(f"/api/v1/reports/{name}", params=query, headers={"Accept": "application/json"})
    assert assert_typed_like_the_csv(REPORTS[name], query, as_csv, as_json)
    assert csv_table(as_csv.text)[1:]


@pytest.fixture(scope="module")
def every_report_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """A store on which every report has rows: a generated brand with bad records (data-quality) and a Chatwoot
    capture with a record that is not JSON (sources)."""
    store = Convoscope(tmp_path_factory.mktemp("every-report"))
    generate_brand(store, customers=80, bad_rate=0.02)
    capture = store.dir / "capture.jsonl"
    capture.write_text((CHATWOOT / "webhooks.jsonl").read_text() + "not json at all\n")
    assert store("ingest", "--source", "chatwoot", str(capture), "--brand", "helpdesk").exit_code == 3
    token = add_user(store, "admin", "administrator")
    with serving(store) as server:
        yield server, token


def every_report_query(report: Report) -> dict[str, Any]:
    query: dict[str, Any] = {"as_of": f"{date.today().isoformat()}T00:00:00Z"}  # the same for the CSV and the JSON
    if report.extra_columns:
        query["extra"] = "true"
    if report.name.startswith("handoff-theme"):  # a range with one before it: Previous Handoffs and Trend
        query |= {"from": (START + timedelta(days=3)).isoformat(), "to": (START + timedelta(days=6)).isoformat()}
    return query


def test_every_report_answers_json_typed_by_its_columns_and_equal_to_its_csv(
        every_report_site: tuple[LiveServer, str]) -> None:
    """Issue 28 point 4, for every report of REPORTS (with its extra columns, and each --by dimension in snake
    headers): every JSON value is of its column's kind and is the CSV's cell; every kind is met with a value."""
    server, token = every_report_site
    seen: set[str] = set()
    with server.client(headers=bearer(token)) as client:
        for name, report in REPORTS.items():
            base = every_report_query(report)
            for query in [base, *({**base, "by": by, "headers": "snake"} for by in report.by_columns)]:
                as_csv = client.get(f"/api/v1/reports/{name}", params=query)
                as_json = client.get(f"/api/v1/reports/{name}", params=query, headers={"Accept": "application/json"})
                assert csv_table(as_csv.text)[1:], (name, query)
                seen |= assert_typed_like_the_csv(report, query, as_csv, as_json)
    assert seen == set(KINDS)


@pytest.mark.parametrize("accept", ["APPLICATION/JSON", "Application/Json; charset=utf-8"])
def test_json_is_asked_for_in_any_case(api: Api, accept: str) -> None:
    """Media types ignore case (RFC 9110)."""
    answer = api.get("/api/v1/reports/sessions-summary", params={"as_of": MID}, headers={"Accept": accept})
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["report"] == "sessions-summary"


def test_an_unknown_report_or_bad_parameter_is_an_error_not_a_csv(api: Api) -> None:
    assert api.get("/api/v1/reports/sessions-everything").status_code == 404
    for query in ({"from": "last tuesday"}, {"tz": "Mars/Olympus"}, {"tz": "posixrules"}, {"period": "fortnight"},
                  {"where": ["colour=blue"]}, {"as_of": "2026-06-01"}):
        response = api.get("/api/v1/reports/sessions-summary", params=query)
        assert response.status_code == 400, (query, response.text)
        assert response.json()["errors"][0]["detail"]
    assert api.get("/api/v1/reports/conversation-export", params={"period": "week"}).status_code == 400


def test_a_misspelled_parameter_is_an_error_not_a_report_without_it(api: Api) -> None:
    """SPEC 4: a parameter a report does not take is a usage error, as the command line's unknown option is."""
    for query, name in (({"perod": "year"}, "perod"), ({"timezone": "UTC"}, "timezone"), ({"By": "guide"}, "By")):
        response = api.get("/api/v1/reports/sessions-summary", params=query)
        assert response.status_code == 400, (query, response.text)
        error = response.json()["errors"][0]
        assert error["attr"] == name
        assert f"unknown parameter {name!r}" in error["detail"]


# --- POST /api/v1/reports: the seeds' request shape ---------------------------------------------------------
# With convoscope's own report names (SPEC 6.2); Gladly's names are answered in Gladly's shape since issue 25
# (tests/test_gladly_api.py).

POST_CASES = [
    ({"metricSet": "sessions-detail", "startAt": FROM, "endAt": TO, "timezone": "America/Chicago"},
     ["sessions-detail", "--from", FROM, "--to", TO, "--tz", "America/Chicago"]),
    ({"metricSet": "sessions-detail-with-messages", "startAt": FROM, "endAt": FROM, "timezone": "UTC"},
     ["sessions-detail-with-messages", "--from", FROM, "--to", FROM, "--tz", "UTC"]),
    ({"metricSet": "Sessions-Detail", "aggregationLevel": "weekly", "timezone": "Asia/Tokyo"},
     ["sessions-detail", "--period", "week", "--tz", "Asia/Tokyo"]),
    ({"metricSet": "contact-summary", "startAt": FROM, "endAt": TO, "timezone": "Europe/Paris",
      "aggregationLevel": "daily"},
     ["contact-summary", "--from", FROM, "--to", TO, "--tz", "Europe/Paris", "--period", "day"]),
    ({"metricSet": "CONTACT-SUMMARY", "aggregationLevel": "monthly"}, ["contact-summary", "--period", "month"]),
    ({"metricSet": "contact-export", "startAt": FROM, "timezone": "America/Sao_Paulo"},
     ["contact-export", "--from", FROM, "--tz", "America/Sao_Paulo"]),
    ({"metricSet": "contact-export", "endAt": TO}, ["contact-export", "--to", TO]),
    ({"metricSet": "conversation-export", "startAt": FROM, "endAt": TO}, ["conversation-export", "--from", FROM,
                                                                         "--to", TO]),
    ({"metricSet": "Conversation-Export", "startAt": FROM, "endAt": TO}, ["conversation-export", "--from", FROM,
                                                                         "--to", TO]),
    ({"metricSet": "conversation-summary", "aggregationLevel": "quarterly"},
     ["conversation-summary", "--period", "quarter"]),
    ({"metricSet": "sessions-summary", "aggregationLevel": "halfHourly", "timezone": "Asia/Kolkata", "startAt": FROM,
      "endAt": FROM}, ["sessions-summary", "--period", "half_hour", "--tz", "Asia/Kolkata", "--from", FROM, "--to", FROM]),
    ({"metricSet": "sessions-summary", "aggregationLevel": "yearly", "aggregationLevel_": None},
     ["sessions-summary", "--period", "year"]),
    ({"metricSet": "sessions-summary", "aggregationLevel": None}, ["sessions-summary"]),
]


@pytest.mark.parametrize(("request_body", "cli_args"), POST_CASES,
                         ids=[f"{b['metricSet']}-{i}" for i, (b, _) in enumerate(POST_CASES)])
def test_post_report_is_byte_identical_to_the_cli(api: Api, request_body: dict[str, Any], cli_args: list[str]) -> None:
    body = {k: v for k, v in request_body.items() if not k.endswith("_")}
    response = api.post("/api/v1/reports", json=body)
    assert response.status_code == 200, response.text
    expected = api.cli_report(*cli_args)
    assert len(csv_table(expected.decode())) > 1
    assert response.content == expected


def test_post_report_answers_a_csv_attachment_even_to_accept_json(api: Api) -> None:
    response = api.post("/api/v1/reports", json={"metricSet": "conversation-export"},
                        headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.text.startswith("Created At,Conversation ID,")


def test_weekly_labels_are_iso_weeks_of_the_session_days(api: Api) -> None:
    weekly = api.post("/api/v1/reports", json={"metricSet": "sessions-summary", "aggregationLevel": "weekly",
                                               "timezone": "UTC"})
    detail = api.post("/api/v1/reports", json={"metricSet": "sessions-detail", "timezone": "UTC"})
    assert weekly.status_code == detail.status_code == 200
    labels = [row["Period"] for row in csv_dicts(weekly.text)]
    assert labels and all(re.fullmatch(r"\d{4}-W\d{2}", label) for label in labels), labels
    days = {date.fromisoformat(row["Created Date"]) for row in csv_dicts(detail.text)}
    assert set(labels) == {f"{d.isocalendar().year}-W{d.isocalendar().week:02d}" for d in days}
    assert labels == sorted(labels)


def test_weeks_at_a_year_boundary_are_iso_week_years(api: Api) -> None:
    """SPEC 4.1: the ISO week-year, so the first days of January can belong to the year before."""
    days = ("2020-12-31", "2021-01-03", "2021-01-04")  # Thursday and Sunday of 2020-W53; Monday of 2021-W01
    batch = [event(f"iso-{day}", "customer_message", f"{day}T12:00:00Z", f"api-isoweek-{day}") for day in days]
    assert api.post("/api/v1/events", json=batch).json()["accepted"] == 3
    by_get = api.get("/api/v1/reports/sessions-summary", params={"from": "2020-12-28", "to": "2021-01-10",
                                                                 "period": "week", "tz": "UTC", "as_of": AS_OF})
    by_post = api.post("/api/v1/reports", json={"metricSet": "sessions-summary", "startAt": "2020-12-28",
                                                "endAt": "2021-01-10", "timezone": "UTC", "aggregationLevel": "weekly"})
    for response in (by_get, by_post):
        assert response.status_code == 200, response.text
        rows = csv_dicts(response.text)
        assert [(row["Period"], row["Sessions"]) for row in rows] == [("2020-W53", "2"), ("2021-W01", "1")]


@pytest.mark.parametrize("metric_set", ["ConversationExportReport", "ContactExportReport", "data-quality"])
def test_a_level_on_a_report_without_periods_is_ignored(api: Api, metric_set: str) -> None:
    plain = api.post("/api/v1/reports", json={"metricSet": metric_set, "startAt": FROM, "endAt": TO})
    assert plain.status_code == 200
    for level in ("weekly", "halfHourly", "daily"):
        levelled = api.post("/api/v1/reports", json={"metricSet": metric_set, "startAt": FROM, "endAt": TO,
                                                     "aggregationLevel": level})
        assert levelled.status_code == 200, levelled.text
        assert levelled.content == plain.content


def test_filters_channel_as_a_list_or_all_channels(api: Api) -> None:
    every = api.post("/api/v1/reports", json={"metricSet": "sessions-detail"})
    assert every.status_code == 200
    rows = csv_dicts(every.text)
    by_channel: dict[str, set[str]] = {}
    for row in rows:
        by_channel.setdefault(row["Channel"], set()).add(row["Session ID"])
    assert {"sms", "email", "chat"} <= set(by_channel)

    def ids(channel: Any) -> set[str]:
        response = api.post("/api/v1/reports", json={"metricSet": "sessions-detail", "filters": {"channel": channel}})
        assert response.status_code == 200, response.text
        return {row["Session ID"] for row in csv_dicts(response.text)}

    assert ids(["sms"]) == by_channel["sms"]
    assert ids(["sms", "email"]) == by_channel["sms"] | by_channel["email"]
    all_channels = api.post("/api/v1/reports", json={"metricSet": "sessions-detail",
                                                     "filters": {"channel": "allChannels"}})
    assert all_channels.content == every.content


def assert_errors_body(response: httpx.Response, attr_part: str | None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"errors"}
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"attr", "code", "detail"}
        assert error["code"] and error["detail"]
    if attr_part is not None:
        assert any(attr_part in (error["attr"] or "") for error in body["errors"]), body
    return body


@pytest.mark.parametrize(("request_body", "attr_part"), [
    ({"metricSet": "sessions-detail", "filters": {"agent": "sam"}}, "agent"),
    ({"metricSet": "sessions-detail", "filters": {"channel": ["chat"], "guide": "Refunds"}}, "guide"),
    ({"metricSet": "GladlyEverythingReport"}, "metricSet"),
    ({"metricSet": "sessions-summary", "aggregationLevel": "hourly"}, "aggregationLevel"),
    ({"metricSet": "sessions-detail", "startAtTime": "2026-05-21T10:00:00"}, "startAtTime"),
    ({"metricSet": "sessions-detail", "startAt": "21/05/2026"}, "startAt"),  # the request's names, not the query's
    ({"metricSet": "sessions-detail", "timezone": "Mars/Olympus"}, "timezone"),
    ({"metricSet": "sessions-detail", "format": "csv"}, "format"),
    ({"metricSet": "data-quality", "filters": {"channel": ["chat"]}}, "channel"),  # would be silently ignored
    ({"startAt": "2026-05-21"}, "metricSet"),
    ({"metricSet": "sessions-detail", "startAt": "2026-05-22", "endAt": "2026-05-21"}, "startAt"),
    ({"metricSet": "sessions-detail", "filters": {"brand": "no-such-brand"}}, "filters.brand"),
    ({"metricSet": "sessions-detail", "startAtTime": "2026-05-21T12:00:00Z", "endAtTime": "2026-05-21T11:00:00Z"},
     "startAtTime"),
])
def test_bad_report_requests_are_400_with_errors(api: Api, request_body: dict[str, Any], attr_part: str | None) -> None:
    assert_errors_body(api.post("/api/v1/reports", json=request_body), attr_part)


def worked_sessions(api: Api, **narrow: str) -> list[str]:
    body = {"metricSet": "sessions-detail", "startAt": "2026-05-21", "endAt": "2026-05-21", "timezone": "UTC", **narrow}
    response = api.post("/api/v1/reports", json=body)
    assert response.status_code == 200, response.text
    return [row["Session ID"] for row in csv_dicts(response.text) if row["Customer ID"] == "c1"]


def test_start_and_end_at_time_narrow_the_range_to_instants_inclusive(api: Api) -> None:
    both = [WORKED_SESSION_1, WORKED_SESSION_2]  # created 10:00 and 17:00 UTC
    assert worked_sessions(api) == both
    assert worked_sessions(api, startAtTime="2026-05-21T17:00:00Z") == [WORKED_SESSION_2]
    assert worked_sessions(api, startAtTime="2026-05-21T17:00:00.000001Z") == []
    assert worked_sessions(api, endAtTime="2026-05-21T10:00:00Z") == [WORKED_SESSION_1]
    assert worked_sessions(api, endAtTime="2026-05-21T09:59:59Z") == []
    assert worked_sessions(api, startAtTime="2026-05-21T10:00:00Z", endAtTime="2026-05-21T17:00:00Z") == both
    assert worked_sessions(api, startAtTime="2026-05-21T19:00:00+02:00") == [WORKED_SESSION_2]  # 17:00 UTC
    assert worked_sessions(api, startAtTime="2026-05-21T10:00:01Z", endAtTime="2026-05-21T16:59:59Z") == []


# --- sessions, contacts, conversations -----------------------------------------------------------------------

def test_the_worked_example_conversation_has_its_timeline(api: Api) -> None:
    response = api.get(f"/api/v1/conversations/{WORKED_CONVERSATION}")
    assert response.status_code == 200, response.text
    found = response.json()
    assert (found["conversation_id"], found["brand"], found["customer_id"]) == (WORKED_CONVERSATION, "default", "c1")
    assert found["status"] == "CLOSED"
    assert (found["times_closed"], found["times_reopened"]) == (2, 1)
    assert found["created_at"].startswith("2026-05-21T10:00:00")

    first, second = found["sessions"]
    assert (first["session_id"], second["session_id"]) == (WORKED_SESSION_1, WORKED_SESSION_2)
    assert (first["outcome"], first["end_reason"], first["resolved"], first["recontacted"]) == (
        "resolved", "inactivity", True, True)
    assert first["handoff_category"] is None
    assert second["outcome"] == "handed_off"
    assert second["handoff_category"] == "handoff_transfer_detector"

    (contact,) = found["contacts"]
    assert contact["contact_id"] == WORKED_CONTACT
    assert (contact["source"], contact["end_reason"]) == ("handoff", "contact_end")
    assert contact["session_id"] == WORKED_SESSION_2  # linked to the session it ended
    assert second["contact_id"] == WORKED_CONTACT

    events = found["events"]
    assert [e["event_id"] for e in events] == [f"e{i:02d}" for i in range(1, 11)]
    speakers = {e["event_id"]: e["speaker"] for e in events}
    assert (speakers["e01"], speakers["e02"], speakers["e08"]) == ("customer", "ai", "agent")
    handoff = next(e for e in events if e["type"] == "handoff")
    assert handoff["category"] == "handoff_transfer_detector"
    by_id = {e["event_id"]: e for e in events}
    assert {by_id[e]["session_id"] for e in ("e01", "e02", "e03", "e04")} == {WORKED_SESSION_1}
    assert {by_id[e]["session_id"] for e in ("e05", "e06")} == {WORKED_SESSION_2}
    assert by_id["e08"]["contact_id"] == WORKED_CONTACT
    assert by_id["e01"]["text"] == "Hi, where is my order #1234?"


def test_the_handoff_event_belongs_to_the_session_it_ended(api: Api) -> None:
    """A handoff is session activity (SPEC 3.1): on the timeline it sits in Session 2, not between blocks."""
    found = api.get(f"/api/v1/conversations/{WORKED_CONVERSATION}").json()
    (handoff,) = [e for e in found["events"] if e["type"] == "handoff"]
    assert handoff["session_id"] == WORKED_SESSION_2


def test_the_timeline_marks_the_closes_and_reopens_derivation_inferred(api: Api) -> None:
    """SPEC 3.7: closed at 12:15 when Session 1 ended, reopened at 17:00 by Session 2, closed again at 17:25
    (where the conversation_close event already shows it)."""
    found = api.get(f"/api/v1/conversations/{WORKED_CONVERSATION}").json()
    assert found["closes"] == ["2026-05-21T12:15:00Z", "2026-05-21T17:25:00Z"]
    assert found["reopens"] == ["2026-05-21T17:00:00Z"]
    page = api.get(f"/conversations/{WORKED_CONVERSATION}", params={"tz": "UTC"}).text
    marks = re.findall(r'data-mark="(\w+)">\s*<time datetime="([^"]+)"', page)
    assert marks == [("closed", "2026-05-21T12:15:00Z"), ("reopened", "2026-05-21T17:00:00Z")]
    order = [page.index(f'id="session-{WORKED_SESSION_1}"'), page.index('data-mark="closed"'),
             page.index('data-mark="reopened"'), page.index(f'id="session-{WORKED_SESSION_2}"')]
    assert order == sorted(order)
    assert "Anomaly:" not in page


def test_an_anomalous_event_is_flagged_on_its_timeline(api: Api) -> None:
    """A contact_end with no contact open changes nothing (SPEC 3.3); the page says so instead of showing
    it as the end of a contact."""
    day = "2026-01-12"
    batch = [event("anom-1", "customer_message", f"{day}T09:00:00Z", "api-anomaly", text="hello"),
             event("anom-2", "ai_message", f"{day}T09:00:05Z", "api-anomaly", text="hi"),
             event("anom-3", "contact_end", f"{day}T09:01:00Z", "api-anomaly", agent="sam")]
    assert api.post("/api/v1/events", json=batch).json()["accepted"] == 3
    page = api.get("/conversations", params={"id": "api-anomaly"}, follow_redirects=True)
    assert page.status_code == 200
    (flagged,) = re.findall(r'data-event-id="(anom-\d)"(?:(?!</li>).)*Anomaly:', page.text, re.S)
    assert flagged == "anom-3"
    assert "contact_end_without_open_contact" in page.text
    conversation = str(page.url).rsplit("/", 1)[1]
    events = api.get(f"/api/v1/conversations/{conversation}").json()["events"]
    assert [(e["event_id"], e["anomaly"]) for e in events] == [
        ("anom-1", None), ("anom-2", None), ("anom-3", "contact_end_without_open_contact")]


def test_a_very_long_message_is_folded_on_the_timeline(api: Api) -> None:
    """A pasted log of 100,000 characters made the page 40,000 pixels tall; it shows its start, the rest on demand."""
    text = "".join(f"line {i:05d} of a pasted log\n" for i in range(4_000))[:100_000]
    batch = [event("long-1", "customer_message", "2026-01-14T09:00:00Z", "api-long", text=text),
             event("long-2", "customer_message", "2026-01-14T09:01:00Z", "api-long", text="short one")]
    assert api.post("/api/v1/events", json=batch).json()["accepted"] == 2
    page = api.get("/conversations", params={"id": "api-long"}, follow_redirects=True).text
    assert "Show all 100,000 characters" in page
    assert page.count("line 00010 of a pasted log") == 2  # in the preview and in the folded whole
    assert page.count("line 03000 of a pasted log") == 1  # only in the folded whole
    assert '<div class="text">short one</div>' in page


def test_the_session_and_contact_endpoints_agree_with_the_conversation(api: Api) -> None:
    session = api.get(f"/api/v1/sessions/{WORKED_SESSION_2}")
    contact = api.get(f"/api/v1/contacts/{WORKED_CONTACT}")
    assert session.status_code == contact.status_code == 200
    s, c = session.json(), contact.json()
    assert (s["conversation_id"], s["handoff_category"], s["handed_off"], s["resolved"]) == (
        WORKED_CONVERSATION, "handoff_transfer_detector", True, False)
    assert s["contact_id"] == WORKED_CONTACT
    assert (c["conversation_id"], c["session_id"], c["source"]) == (WORKED_CONVERSATION, WORKED_SESSION_2, "handoff")
    assert c["first_response_at"].startswith("2026-05-21T17:12:00")


@pytest.mark.parametrize("path", ["/api/v1/conversations/cnv_0000000000000000", "/api/v1/sessions/ses_nope",
                                  "/api/v1/contacts/ctc_nope"])
def test_an_unknown_id_is_404_with_errors(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["errors"][0]["detail"]


# --- OpenAPI ---------------------------------------------------------------------------------------------------

DOC_URI = "urn:convoscope:openapi"
API_PATHS = {
    ("post", "/api/v1/events"),
    ("post", "/api/v1/reports"),
    ("get", "/api/v1/reports/{}"),
    ("get", "/api/v1/sessions/{}"),
    ("get", "/api/v1/contacts/{}"),
    ("get", "/api/v1/conversations/{}"),
}


@pytest.fixture(scope="module")
def openapi(api: Api) -> dict[str, Any]:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, re.sub(r"\{[^}]+\}", "{}", path)): operation
            for path, item in document["paths"].items() for method, operation in item.items()}


def pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def validate(document: dict[str, Any], method: str, path: str, status: int, media: str, value: Any) -> None:
    """`value` against the response schema the document gives, its $refs resolved in the document."""
    (raw_path,) = [p for p in document["paths"] if re.sub(r"\{[^}]+\}", "{}", p) == path]
    assert str(status) in document["paths"][raw_path][method]["responses"], (method, path, status)
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012))
    schema = {"$ref": f"{DOC_URI}#/" + pointer("paths", raw_path, method, "responses", str(status), "content", media,
                                                "schema")}
    Draft202012Validator(schema, registry=registry).validate(value)


def test_openapi_documents_every_api_path(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1")
    documented = set(operations(openapi))
    assert not API_PATHS - documented, API_PATHS - documented
    for key in API_PATHS:
        responses = operations(openapi)[key]["responses"]
        assert {"200", "401", "403"} <= set(responses), (key, sorted(responses))


def test_openapi_documents_the_400_the_server_answers_not_a_422(openapi: dict[str, Any]) -> None:
    """Invalid requests are answered 400 with `{"errors": [...]}` (SPEC 6.2); a client generated from
    the document must not expect FastAPI's 422 and its other body."""
    wrong = sorted(key for key, operation in operations(openapi).items()
                   if key in API_PATHS and "422" in operation["responses"])
    assert wrong == []


def test_openapi_describes_the_conversation_timeline(openapi: dict[str, Any]) -> None:
    """The conversation's answer is described, not just `object`: its sessions, contacts and events."""
    (path,) = [p for p in openapi["paths"] if p.startswith("/api/v1/conversations/")]
    schema = openapi["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert {"sessions", "contacts", "events"} <= set(schema.get("properties", {})), schema


def test_real_answers_match_the_openapi_schemas(api: Api, openapi: dict[str, Any]) -> None:
    ingest = api.post("/api/v1/events", json=[
        event("oa-1", "customer_message", f"{API_DAY}T15:00:00Z", "api-openapi", text="hi"),
        event("oa-2", "nonsense", f"{API_DAY}T15:00:01Z", "api-openapi"),
    ])
    assert ingest.status_code == 200
    assert ingest.json()["errors"]
    validate(openapi, "post", "/api/v1/events", 200, "application/json", ingest.json())

    report = api.get("/api/v1/reports/sessions-summary", params={"as_of": AS_OF, "by": "channel"},
                     headers={"Accept": "application/json"})
    assert report.status_code == 200
    validate(openapi, "get", "/api/v1/reports/{}", 200, "application/json", report.json())

    for kind, entity in (("conversations", WORKED_CONVERSATION), ("sessions", WORKED_SESSION_1),
                         ("contacts", WORKED_CONTACT)):
        answer = api.get(f"/api/v1/{kind}/{entity}")
        assert answer.status_code == 200
        validate(openapi, "get", f"/api/v1/{kind}/{{}}", 200, "application/json", answer.json())

    errors = [
        ("post", "/api/v1/reports", 400, api.post("/api/v1/reports", json={"metricSet": "Nope"})),
        ("post", "/api/v1/reports", 400, api.post("/api/v1/reports", json={"metricSet": "sessions-detail",
                                                                           "filters": {"agent": "x"}})),
        ("get", "/api/v1/reports/{}", 400, api.get("/api/v1/reports/sessions-detail", params={"tz": "Nowhere/Zone"})),
        ("get", "/api/v1/reports/{}", 401, api.client.get("/api/v1/reports/sessions-detail")),
        ("get", "/api/v1/conversations/{}", 404, api.get("/api/v1/conversations/cnv_missing")),
        ("post", "/api/v1/events", 400, api.post("/api/v1/events", content=b"[]",
                                                 headers={"Content-Type": "application/json"})),
    ]
    for method, path, status, response in errors:
        assert response.status_code == status, (path, response.status_code, response.text)
        validate(openapi, method, path, status, "application/json", response.json())
