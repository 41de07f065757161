"""Existing Gladly clients work unchanged against convoscope (issue 25 point 5): three public clients of
Gladly's report API, replayed request for request (`gladly_clients`) against a live `convoscope serve`,
computing what each client computes; each figure is compared with convoscope's own answer, read apart
through its own report API (GET /api/v1/reports/NAME) by another user. Where a client calls what
convoscope does not have, the clear 404 or 400 is checked, and the client is replayed as a user would run
it after deselecting that part.

The served store holds two generated brands: `acme` in the week Gladly's example script hard-codes
(2021-09-28), so the script runs with its own dates, and `default` a week ago, for the clients that read up
to today. Each client signs in as its own user with its own token, as the rate limit counts per token.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from cli_helpers import Convoscope
from convoscope import reports
from convoscope.config import Config
from convoscope.reports.gladly_timestamps import CONVERSATION_TIMESTAMPS
from convoscope.store import Store
from gladly_clients import (
    AIRBYTE_URL_BASE,
    TAP_TIMESTAMPS_PROPERTIES,
    AirbyteGladly,
    GetReports,
    Sent,
    Slice,
    TapGladly,
    airbyte_snake,
    basic,
    csvtojson,
    requests_text,
)
from web_helpers import LiveServer, add_user, bearer, csv_dicts, generate_brand, serving

TODAY = datetime.now(UTC).date()
RECENT = TODAY - timedelta(days=6)  # the `default` brand's first day; its last is RECENT + 2
CLIENTS = ("script@acme.example", "tap@acme.example", "airbyte@acme.example", "burst@acme.example", "oracle")


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("gladly-clients"))
    assert store.config is not None  # the clients meet Gladly's limit, convoscope's default (the suite turns it off)
    store.config.write_text("")
    generate_brand(store, brand="acme", customers=400, days=3, seed=5, start="2021-09-27")
    generate_brand(store, brand="default", customers=80, days=3, seed=3, start=RECENT.isoformat())
    tokens = {name: add_user(store, name, "analyst") for name in CLIENTS}
    with serving(store) as server:
        yield Site(store, server, tokens)


def own_report(site: Site, name: str, **query: str) -> list[dict[str, str]]:
    """convoscope's own report over its own API, as the user `oracle` reads it (waiting when told to)."""
    with site.server.client() as client:
        for _ in range(20):
            answer = client.get(f"/api/v1/reports/{name}", params=query,
                                headers=bearer(site.tokens["oracle"]) | {"Accept": "text/csv"})
            if answer.status_code == 429:
                time.sleep(int(answer.headers["Retry-After"]))
                continue
            assert answer.status_code == 200, answer.text
            return csv_dicts(answer.text)
    raise AssertionError(f"{name} stayed rate-limited")


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def assert_clear_error(answer: httpx.Response, status: int, *, attr: str | None = None,
                       mentions: str | None = None) -> dict[str, str]:
    """Gladly's error body (`{"errors": [{"attr", "code", "detail"}]}`) with `status`: never 405 or 5xx."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    [error] = answer.json()["errors"][:1]
    assert {"attr", "code", "detail"} <= set(error), error
    assert error["code"] and error["detail"], error
    if attr is not None:
        assert error["attr"] == attr, error
    if mentions is not None:
        assert re.search(mentions, error["detail"], re.IGNORECASE), error
    return error


def path_of(sent: Sent) -> str:
    return httpx.URL(sent.url).raw_path.decode()


# --- Gladly's example script: gladly/rest-api-examples get-reports ----------------------------------------

def test_example_script_as_published_stops_at_the_clear_404_on_work_sessions(site: Site) -> None:
    """Replays gladly/rest-api-examples@840ab516dae6c291be7f119e83995dddc5ab4c03 `get-reports/index.js` (with
    `util/api-request.js`) as published: its first request asks for agent work sessions, which convoscope
    does not have; the 404 says so, and the script's catch prints its error and sends nothing more."""
    run = GetReports(site.url, "script@acme.example", site.tokens["script@acme.example"]).run()
    [sent] = run.sent
    assert (sent.method, path_of(sent)) == ("POST", "/api/v1/reports/work-session-events")
    assert sent.body == b'{"startAtTime":"2021-09-28T00:00-07:00","endAtTime":"2021-09-29T00:00-07:00"}'
    assert sent.headers["Accept"] == "application/json"
    assert run.failure is not None and run.failure.response is sent.answer
    assert_clear_error(sent.answer, 404, mentions=r"work.?session")
    assert run.printed == [run.failure.printed] and run.printed[0].startswith("ERROR - could not download reports")


def test_example_script_without_work_sessions_counts_the_email_contacts(site: Site) -> None:
    """Replays gladly/rest-api-examples@840ab516dae6c291be7f119e83995dddc5ab4c03 `get-reports/index.js` after a
    user deleted its work-session step: its ContactExportReport for 2021-09-28 in Los Angeles, sent with
    `Accept: application/json`, comes back as CSV that csvtojson reads, and the count of rows whose Channel is
    `EMAIL` is convoscope's own count of e-mail contacts created that day there. Its AgentTimestampsReport
    then gets the clear 400 naming that report (convoscope has no agent statuses), and the script stops."""
    run = GetReports(site.url, "script@acme.example", site.tokens["script@acme.example"]).run(work_sessions=False)
    contacts, agents = run.sent
    assert contacts.body == (b'{"metricSet":"ContactExportReport","timezone":"America/Los_Angeles",'
                             b'"startAt":"2021-09-28","endAt":"2021-09-28"}')
    assert agents.body == (b'{"metricSet":"AgentTimestampsReport","timezone":"America/Los_Angeles",'
                           b'"startAt":"2021-09-28","endAt":"2021-09-28","filters":{}}')
    assert contacts.headers["Authorization"] == basic("script@acme.example", site.tokens["script@acme.example"])
    assert contacts.answer.headers["content-type"] == "text/csv; charset=utf-8"

    own = own_report(site, "contact-export", **{"from": "2021-09-28", "to": "2021-09-28", "tz": "America/Los_Angeles"})
    emails = sum(1 for row in own if row["Channel"] == "email")
    assert emails >= 3  # enough to tell a count from a coincidence
    assert run.email_contacts == emails
    assert run.printed[0] == (f"Detected {emails} EMAIL contact(s) created on 09/28/21 America/Los_Angeles timezone. "
                              f"Used payload {contacts.body.decode()}")

    assert run.agent_logins is None and run.failure is not None and run.failure.response is agents.answer
    error = assert_clear_error(agents.answer, 400, attr="metricSet", mentions="AgentTimestampsReport")
    assert "contactexportreport" in error["detail"].lower()  # it lists what is supported
    assert run.printed[1].startswith("ERROR - could not download reports") and len(run.printed) == 2


# --- tap-gladly -----------------------------------------------------------------------------------------

def tap(site: Site) -> TapGladly:
    return TapGladly(site.url + "/api/v1", "tap@acme.example", site.tokens["tap@acme.example"])


def test_tap_gladly_with_every_stream_stops_at_the_clear_404_on_export_jobs(site: Site) -> None:
    """Replays harrystech/tap-gladly@3cee1844c626ff17389e185a37e2c24578ecf4a9 (`tap_gladly/streams.py`,
    `client.py`) run without a catalog: its `jobs` stream goes first and asks for export jobs, which convoscope
    does not have; singer-sdk takes the 404 as fatal and the report stream is never requested."""
    run = tap(site).run(start_date=f"{RECENT}T00:00:00Z")
    [sent] = run.sent
    assert (sent.method, path_of(sent)) == ("GET", "/api/v1/export/jobs?status=COMPLETED")
    assert run.failure is not None and str(run.failure).startswith("404 Client Error")
    assert_clear_error(sent.answer, 404, mentions="export")
    assert run.records == {}


def test_tap_gladly_report_stream_gives_the_conversation_timestamps(site: Site) -> None:
    """Replays harrystech/tap-gladly@3cee1844c626ff17389e185a37e2c24578ecf4a9 (`tap_gladly/streams.py`) with a
    catalog selecting only `reports__conversation_timestamps_report`: one POST of ConversationTimestampsReport
    for the whole window in UTC; its records (raw CSV headers, only the schema's 21 kept) are convoscope's
    conversation timestamps, all 21 present; and read apart from that report, there is a creation per row of
    convoscope's conversation-export, at its Created At, and as many closes and reopens per conversation as
    its Times Closed and Times Reopened."""
    first, last = RECENT.isoformat(), (TODAY - timedelta(days=1)).isoformat()
    run = tap(site).run(start_date=f"{first}T00:00:00Z", end_date=f"{last}T00:00:00Z",
                        selected=("reports__conversation_timestamps_report",))
    assert run.failure is None
    [sent] = run.sent
    assert (sent.method, path_of(sent)) == ("POST", "/api/v1/reports")
    assert sent.body == (f'{{"metricSet": "ConversationTimestampsReport", "startAt": "{first}", '
                         f'"endAt": "{last}", "timezone": "UTC"}}').encode()
    records = run.records["reports__conversation_timestamps_report"]

    with Store(site.store.db, read_only=True) as store:  # the server opens the store per request: it is free now
        params = reports.build_params(CONVERSATION_TIMESTAMPS, Config(), store.brands(), date_from=first,
                                      date_to=last, tz="UTC")
        header, rows = reports.report_rows(store, Config(), CONVERSATION_TIMESTAMPS, params)
    assert header == list(TAP_TIMESTAMPS_PROPERTIES)
    assert records == [dict(zip(header, (cell or "" for cell in row), strict=True)) for row in rows]

    export = own_report(site, "conversation-export", **{"from": first, "to": last, "tz": "UTC"})
    assert len(export) > 10
    created = [(r["Conversation ID"], r["Timestamp"]) for r in records if r["Event Type"] == "CONVERSATION/CREATED"]
    assert created == [(r["Conversation ID"], r["Created At"][:19].replace("T", " ")) for r in export]
    counted = Counter((r["Conversation ID"], r["Event Type"]) for r in records)
    for row in export:
        assert counted[(row["Conversation ID"], "CONVERSATION/CLOSED")] == int(row["Times Closed"]), row
        assert counted[(row["Conversation ID"], "CONVERSATION/REOPENED")] == int(row["Times Reopened"]), row
    assert {r["Timezone Filter"] for r in records} == {"UTC"}


# --- Airbyte source-gladly ------------------------------------------------------------------------------

def airbyte(site: Site, user: str = "airbyte@acme.example") -> AirbyteGladly:
    """The connector with `GladlyStream.url_base` patched from its hard-coded Gladly host to convoscope's."""
    assert AIRBYTE_URL_BASE.endswith("/api/v1/")
    return AirbyteGladly(site.url + "/api/v1/", username=user, api_token=site.tokens[user],
                         start_date=RECENT.isoformat(), now=datetime.now(UTC))


def by_slice(records: list[tuple[Slice | None, dict[str, str]]]) -> dict[tuple[str, str], list[dict[str, str]]]:
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    for piece, record in records:
        assert piece is not None
        found.setdefault((piece.start, piece.end), []).append(record)
    return found


def test_airbyte_source_gladly_checks_and_syncs_its_four_streams(site: Site) -> None:
    """Replays rosecape/airbyte@54b25099189f30dbdb700840e91a016f648f75d2 (branch feature/source-gladly,
    `airbyte-integrations/connectors/source-gladly/source_gladly/source.py`, with airbyte-cdk 0.51's
    HttpStream) with its committed catalog: `check` on GET organization; then agents, customers (a
    conversation export per day, and a customer-profile GET per row), contactExportReportV3 and
    conversationExportReport, each sent with `"aggregationLevel": null` and no timezone, per daily slice
    from start_date to today. The slices share their boundary dates, so every day but the first comes
    twice, and so do its records: as the connector emits them. Snake-cased by its rule, each slice's
    records are keyed on contact_id / queued_at and conversation_id / created_at, and are exactly
    convoscope's own contact-export and conversation-export rows of those days."""
    client = airbyte(site)
    try:
        assert client.check() == (True, None)
        run = client.read()
    finally:
        client.close()
    assert run.failure is None and run.skipped == []
    slices = client.slices()
    assert slices[0] == Slice(RECENT.isoformat(), (RECENT + timedelta(days=1)).isoformat())
    assert slices[-1] == Slice(TODAY.isoformat(), TODAY.isoformat())
    assert all(a.end == b.start for a, b in zip(slices, slices[1:], strict=False))

    posts = [s for s in client.sent if s.method == "POST"]
    assert posts[0].body == (f'{{"metricSet": "conversationExportReport", "aggregationLevel": null, '
                             f'"startAt": "{slices[0].start}", "endAt": "{slices[0].end}"}}').encode()
    for post in posts:
        if post.status == 200:  # read as CSV because of a lower-case `csv`, decoded as UTF-8 as it says
            assert post.answer.headers["content-type"] == "text/csv; charset=utf-8"

    agents = [record for _, record in run.records["agents"]]
    assert agents and all(isinstance(agent, dict) for agent in agents)

    every_day = days(slices[0].start, slices[-1].end)
    own_contacts = {day: own_report(site, "contact-export", **{"from": day, "to": day}) for day in every_day}
    own_conversations = {day: own_report(site, "conversation-export", **{"from": day, "to": day})
                         for day in every_day}
    assert sum(map(len, own_contacts.values())) > 5 and sum(map(len, own_conversations.values())) > 5

    contacts = by_slice(run.records["contact_export_report_v3"])
    conversations = by_slice(run.records["conversation_export_report"])
    for piece in slices:
        window = days(piece.start, piece.end)
        got = contacts.get((piece.start, piece.end), [])
        assert all({"contact_id", "queued_at"} <= set(record) for record in got)
        assert [r["contact_id"] for r in got] == [r["Contact ID"] for day in window for r in own_contacts[day]]
        got = conversations.get((piece.start, piece.end), [])
        assert all({"conversation_id", "created_at"} <= set(record) for record in got)
        assert [r["conversation_id"] for r in got] == [r["Conversation ID"] for day in window
                                                       for r in own_conversations[day]]

    # Every day inside the range is fetched by two slices: its records are emitted twice, the first day's once.
    emitted = Counter(record["contact_id"] for _, record in run.records["contact_export_report_v3"])
    twice = {r["Contact ID"]: 1 if day == every_day[0] else 2 for day in every_day for r in own_contacts[day]}
    assert emitted == Counter(twice) and 2 in emitted.values()

    # customers: a customer-profile GET for every conversation row of each slice, each answered with a profile.
    profiles = [s for s in client.sent if "/customer-profiles/" in s.url and s.status == 200]
    wanted = [r["Customer ID"] for piece in slices for day in days(piece.start, piece.end)
              for r in own_conversations[day]]
    assert [path_of(s).rsplit("/", 1)[1] for s in profiles][1:] == wanted  # the first is the availability check
    assert len(run.records["customers"]) == len(wanted)
    assert all(isinstance(profile, dict) and profile for _, profile in run.records["customers"])
    assert [s for s in client.sent if s.status not in (200, 429)] == []
    assert run.states[-1] == ("conversation_export_report", {"created_at": TODAY.isoformat()})


def test_airbyte_waits_as_retry_after_says_when_a_burst_passes_the_rate_limit(site: Site) -> None:
    """The 429 handling of rosecape/airbyte@54b25099189f30dbdb700840e91a016f648f75d2 (`source_gladly/source.py`
    `backoff_time`, with airbyte-cdk 0.51's retries): 25 requests at once on one token pass Gladly's 10 a
    second; each 429 carries an integer Retry-After, which the connector reads with int() and waits that
    plus a second; every request then succeeds, within its 6 attempts."""
    client = airbyte(site, "burst@acme.example")
    try:
        with ThreadPoolExecutor(25) as pool:
            answers = list(pool.map(lambda _: client.request("GET", "organization"), range(25)))
    finally:
        client.close()
    assert all(answer.status_code == 200 for answer in answers)
    refused = [s.answer for s in client.sent if s.status == 429]
    assert refused, "25 requests at once stayed under the rate limit"
    for answer in refused:
        assert re.fullmatch(r"[0-9]+", answer.headers["Retry-After"]), answer.headers
        assert_clear_error(answer, 429)
    assert sorted(client.sleeps) == sorted(int(a.headers["Retry-After"]) + 1 for a in refused)
    for answer in answers:
        limit, remaining = answer.headers["Ratelimit-Limit-Second"], answer.headers["Ratelimit-Remaining-Second"]
        assert int(limit) == 10 and 0 <= int(remaining) < 10


# --- the replays' own reading of their clients (no server) ----------------------------------------------

@pytest.mark.parametrize(("header", "key"), [
    ("Contact ID", "contact_id"), ("Queued At", "queued_at"),
    ("Avg Queued-to-Fulfilled Time (sec)", "avg_queuedtofulfilled_time_sec"),
    ("Contact Accepted - Chat", "contact_accepted__chat"), ("% FCR Success", "percentage_fcr_success"),
    ("Service Level %", "service_level_percentage"), ("FCR-Eligible Conversations", "fcreligible_conversations"),
    ("Payment Amount - Completed (USD)", "payment_amount__completed_usd"), ("\ufeffContact ID", "contact_id"),
    (" Channel ", "_channel_"), ("Customer\tID", "customerid"), ("Café Name", "caf_name"),
])
def test_airbyte_snake_casing(header: str, key: str) -> None:
    """The research notes' table of source-gladly's snake-casing, to check the replay's reading of it."""
    assert airbyte_snake(header) == key


def test_csvtojson_trims_nests_and_names_as_the_example_script_reads() -> None:
    text = '\ufeff Channel ,a.b,a..b,,Channel\r\n EMAIL ,1," 2 ",x,later\r\n\r\n'
    assert csvtojson(text) == [{"Channel": "later", "a": {"b": "1"}, "a..b": "2", "field4": "x"}]
    assert csvtojson("") == []


def test_requests_decodes_csv_without_a_charset_as_latin_1() -> None:
    """Why convoscope must say `charset=utf-8`: requests reads a text/csv answer without one as ISO-8859-1."""
    body = "Inbox\r\nCafé\r\n".encode()
    plain = httpx.Response(200, headers={"content-type": "text/csv"}, content=body)
    assert requests_text(plain) == body.decode("latin-1")
    labelled = httpx.Response(200, headers={"content-type": "text/csv; charset=utf-8"}, content=body)
    assert list(AirbyteGladly.parse(labelled)) == [{"inbox": "Café"}]
