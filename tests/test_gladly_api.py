"""Gladly's dialect of `POST /api/v1/reports` through a real `convoscope serve` (issue 25 points 1 and 2; SPEC
Appendix B): Gladly's report names answered in Gladly's shape — its header rows, spellings and formats — and
with Gladly's validation, while convoscope's own names keep SPEC 6.2's answer.

One server over one store: the worked example of SPEC 3.7 (2026-05-21), a handful of customers written
here on 2026-05-22 across every channel spelling and two inboxes, and a generated brand `gen` in the past.
Expected values are worked out by hand from those events, never read back from an answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from cli_helpers import Convoscope, ev
from convoscope.reports import gladly_columns as columns
from convoscope.reports.gladly import GLADLY_REPORTS
from web_helpers import (
    WORKED_CONTACT,
    WORKED_CONVERSATION,
    LiveServer,
    add_user,
    bearer,
    csv_dicts,
    csv_table,
    generate_brand,
    ingest_worked_example,
    past_start,
    serving,
)

DAY = "2026-05-22"  # the crafted customers' day
GEN_START = date.fromisoformat(past_start())
GEN_FROM, GEN_TO = GEN_START.isoformat(), (GEN_START + timedelta(days=4)).isoformat()
HEADERS = {
    "ContactExportReport": columns.CONTACT_EXPORT_V3, "ContactExportReportV2": columns.CONTACT_EXPORT_V3,
    "ContactExportReportV3": columns.CONTACT_EXPORT_V3, "ConversationExportReport": columns.CONVERSATION_EXPORT,
    "ContactSummaryReport": columns.CONTACT_SUMMARY, "ContactSummaryReportV2": columns.CONTACT_SUMMARY_V2,
    "ConversationSummaryReport": columns.CONVERSATION_SUMMARY,
    "GladlyAISessionsDetailReport": columns.AI_SESSIONS_DETAIL,
    "GladlyAISessionsDetailWithMessagesReport": columns.AI_SESSIONS_DETAIL_WITH_MESSAGES,
}


def t(clock: str) -> str:
    return f"{DAY}T{clock}Z"


def team(event_id: str, clock: str, customer: str, channel: str, **fields: Any) -> dict:
    return ev(event_id, "customer_message", t(clock), customer, channel=channel, route="team", **fields)


CRAFTED = [
    # c2: a call to the support inbox, answered after 90 s and ended by alex after 10 min.
    team("v1", "09:00:00", "c2", "voice", inbox="support"),
    ev("v2", "agent_message", t("09:01:30"), "c2", channel="voice", agent="alex", inbox="support"),
    ev("v3", "contact_end", t("09:10:00"), "c2", agent="alex"),
    # c3: an e-mail to sales, answered an hour later, then chat in the same contact; ended by bo at 11:40.
    team("m1", "10:00:00", "c3", "email", inbox="sales"),
    ev("m2", "agent_message", t("11:00:00"), "c3", channel="email", agent="bo"),
    team("m3", "11:30:00", "c3", "chat"),
    ev("m4", "agent_message", t("11:31:00"), "c3", channel="chat", agent="bo"),
    ev("m5", "contact_end", t("11:40:00"), "c3", agent="bo"),
    # c4: alex texts first (outbound), the customer answers, an end naming nobody.
    ev("o1", "agent_message", t("12:00:00"), "c4", channel="sms", agent="alex", inbox="sales"),
    team("o2", "12:05:00", "c4", "sms"),
    ev("o3", "contact_end", t("12:10:00"), "c4"),
    # c5: an AI session on Messenger, never handed off.
    ev("f1", "customer_message", t("13:00:00"), "c5", channel="facebook", route="ai"),
    ev("f2", "ai_message", t("13:00:05"), "c5", channel="facebook", ai_agent="Care Agent"),
    # c6: Instagram, never answered nor ended (ends by inactivity, 24 h later).
    team("i1", "14:00:00", "c6", "instagram"),
    # c7: WhatsApp answered after 2 min, ended after 5.
    team("w1", "15:00:00", "c7", "whatsapp"),
    ev("w2", "agent_message", t("15:02:00"), "c7", channel="whatsapp", agent="alex"),
    ev("w3", "contact_end", t("15:05:00"), "c7", agent="alex"),
    # c8: a phone call ended by bo after 20 min without an answer; c9: a voicemail, never ended.
    team("p1", "16:00:00", "c8", "phone"),
    ev("p2", "contact_end", t("16:20:00"), "c8", agent="bo"),
    team("vm1", "17:00:00", "c9", "voicemail"),
]
CHANNELS = {"c2": "PHONE_CALL", "c3": "EMAIL", "c4": "SMS", "c6": "INSTAGRAM_DIRECT", "c7": "WHATSAPP",
            "c8": "PHONE_CALL", "c9": "VOICEMAIL"}


@dataclass
class Api:
    server: LiveServer
    store: Convoscope
    token: str
    client: httpx.Client

    def post(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.client.post("/api/v1/reports", json=body, headers={**bearer(self.token), **headers})

    def rows(self, body: dict[str, Any]) -> list[dict[str, str]]:
        response = self.post(body)
        assert response.status_code == 200, response.text
        return csv_dicts(response.text)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = Convoscope(tmp_path_factory.mktemp("gladly"))
    ingest_worked_example(store)
    store.ingest(CRAFTED, "crafted.jsonl")
    generate_brand(store, brand="gen", customers=60, days=3)
    token = add_user(store, "ana", "analyst")
    with serving(store) as server, server.client() as client:
        yield Api(server, store, token, client)


def day(name: str, when: str = DAY, **more: Any) -> dict[str, Any]:
    """A request for one day of brand `default`, in UTC."""
    return {"metricSet": name, "startAt": when, "endAt": when, "timezone": "UTC", "filters": {"brand": "default"},
            **more}


def by(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    return {row[column]: row for row in rows}


# --- the shape ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(HEADERS))
def test_each_gladly_report_answers_its_header_row_exactly(api: Api, name: str) -> None:
    assert name.lower() in GLADLY_REPORTS
    response = api.post(day(name, "2026-05-21"))
    assert response.status_code == 200, response.text
    table = csv_table(response.text)
    assert table[0] == list(HEADERS[name])
    assert len(table) > 1 and all(len(row) == len(HEADERS[name]) for row in table)


def test_the_worked_example_contact_in_gladlys_shape(api: Api) -> None:
    """SPEC 3.7's contact: from the handoff at 17:10, answered at 17:12, ended by sam at 17:25 (UTC), seen
    from Los Angeles (UTC-7 in May)."""
    (row,) = [r for r in api.rows({"metricSet": "ContactExportReportV3", "startAt": "2026-05-21",
                                   "endAt": "2026-05-21", "timezone": "America/Los_Angeles"})
              if r["Customer ID"] == "c1"]
    assert row["Contact ID"] == WORKED_CONTACT and row["Conversation ID"] == WORKED_CONVERSATION
    assert (row["Timezone Filter"], row["Channel Filter"], row["Inboxes Filter"]) == (
        "America/Los_Angeles", "All Channels", "All Inboxes")
    assert (row["Queued At"], row["Fulfilled At"], row["Ended At"]) == (
        "2026-05-21 10:10:00", "2026-05-21 10:12:00", "2026-05-21 10:25:00")
    assert (row["Channel"], row["Direction"], row["Contact Initiator"], row["Status"]) == (
        "CHAT", "INBOUND", "CUSTOMER", "ENDED")
    assert (row["Queued-to-Fulfilled (sec)"], row["Queued-to-Ended (sec)"], row["Fulfilled-to-Ended (sec)"]) == (
        "120", "900", "780")
    assert (row["Messages Total"], row["Messages from Customer"], row["Messages from Agent"]) == ("1", "0", "1")
    assert row["Agent When Ended"] == "sam"
    assert row["Conversation Link"].endswith(f"/conversations/{WORKED_CONVERSATION}")
    for empty in ("Entry Point", "SLA Target (sec)", "Hold Time Total (sec)", "Payment Requests - Completed",
                  "Times Transferred", "Inbox When Queued"):
        assert row[empty] == ""


def test_the_worked_example_conversation_in_gladlys_shape(api: Api) -> None:
    """SPEC 3.7: created 10:00, closed at 12:15, reopened at 17:00, closed again at 17:25 by sam."""
    row = by(api.rows(day("ConversationExportReport", "2026-05-21")), "Conversation ID")[WORKED_CONVERSATION]
    assert (row["Created At"], row["First Closed At"], row["Last Closed At"], row["Status"]) == (
        "2026-05-21 10:00:00", "2026-05-21 12:15:00", "2026-05-21 17:25:00", "CLOSED")
    assert (row["Times Closed"], row["Times Reopened"], row["Count of Contacts"], row["Count of Channels"]) == (
        "2", "1", "1", "1")
    assert (row["Created-to-First Closed Time in seconds"], row["Created-to-Last Closed Time in seconds"]) == (
        str(2 * 3600 + 15 * 60), str(7 * 3600 + 25 * 60))
    assert (row["First Channel"], row["Second Channel"], row["Last Channel"]) == ("CHAT", "", "CHAT")
    assert row["First Contact ID"] == WORKED_CONTACT
    assert row["Initiator Type - Created"] == "CUSTOMER"
    assert (row["Initiator Type - Last Closed"], row["Initiator Agent ID - Last Closed"],
            row["Initiator Agent Name - Last Closed"]) == ("AGENT", "sam", "sam")
    assert (row["Timezone Filter"], row["Inboxes Filter"]) == ("UTC", "All Inboxes")


def test_the_summaries_name_their_period_after_the_anchor_with_the_bucket_start(api: Api) -> None:
    contacts = api.rows(day("ContactSummaryReport", "2026-05-21"))
    assert [(r["Ended At Date"], r["Contacts Ended"], r["Contacts Fulfilled"]) for r in contacts] == [
        ("2026-05-21 00:00:00", "1", "1")]
    half_hours = api.rows(day("ContactSummaryReportV2", "2026-05-21", aggregationLevel="halfHourly"))
    assert [r["Ended At Date"] for r in half_hours] == ["2026-05-21 17:00:00"]  # ended 17:25
    conversations = api.rows(day("ConversationSummaryReport", "2026-05-21", aggregationLevel="monthly"))
    assert [(r["Last Closed At"], r["Conversations Closed"], r["Avg Times Closed"], r["Avg Times Reopened"],
             r["Teams Filter"]) for r in conversations] == [("2026-05-01 00:00:00", "1", "2", "1", "All Teams")]


def test_the_ai_reports_are_spec_4_2_with_gladlys_channel_and_created_moment(api: Api) -> None:
    rows = api.rows(day("GladlyAISessionsDetailWithMessagesReport", "2026-05-21"))
    assert [(r["Channel"], r["Created Date"]) for r in rows] == [("CHAT", "2026-05-21 10:00:00"),
                                                                 ("CHAT", "2026-05-21 17:00:00")]
    assert rows[0]["Message History"].startswith("[2026-05-21 10:00:00] Customer: Hi, where is my order #1234?")
    (messenger,) = api.rows(day("gladlyAISessionsDetailReport"))
    assert (messenger["Customer ID"], messenger["Channel"]) == ("c5", "FB_MESSENGER")


def test_channels_are_gladlys_spellings(api: Api) -> None:
    rows = api.rows(day("ContactExportReportV3"))
    assert {r["Customer ID"]: r["Channel"] for r in rows} == CHANNELS


def test_crafted_contacts_by_hand(api: Api) -> None:
    rows = by(api.rows(day("ContactExportReportV3")), "Customer ID")
    call, mail, text = rows["c2"], rows["c3"], rows["c4"]
    assert (call["Queued At"], call["Queued-to-Fulfilled (sec)"], call["Queued-to-Ended (sec)"],
            call["Fulfilled-to-Ended (sec)"], call["Inbox When Queued"], call["Agent When Ended"]) == (
        f"{DAY} 09:00:00", "90", "600", "510", "support", "alex")
    assert (mail["Messages from Customer"], mail["Messages from Agent"], mail["Messages Total"]) == ("2", "2", "4")
    assert (text["Direction"], text["Contact Initiator"], text["Queued At"], text["Fulfilled At"],
            text["Inbox When Queued"], text["Agent When Ended"], text["Ended At"]) == (
        "OUTBOUND", "AGENT", "", "", "", "", f"{DAY} 12:10:00")
    # c6 ends by inactivity (SPEC 5's C, 24 h) after its one message; judged now, long after.
    assert (rows["c6"]["Status"], rows["c6"]["Ended At"], rows["c6"]["Queued-to-Ended (sec)"]) == (
        "ENDED", "2026-05-23 14:00:00", str(24 * 3600))
    assert rows["c8"]["Fulfilled At"] == "" and rows["c8"]["Queued-to-Ended (sec)"] == str(20 * 60)


def test_crafted_conversations_by_hand(api: Api) -> None:
    rows = by(api.rows(day("ConversationExportReport")), "Customer ID")
    mail = rows["c3"]
    assert (mail["First Channel"], mail["Second Channel"], mail["Third Channel"], mail["Last Channel"],
            mail["Count of Channels"]) == ("EMAIL", "CHAT", "", "CHAT", "2")
    assert (mail["Inbox ID - Created"], mail["Inbox Name - Created"], mail["Inbox ID - Last Closed"]) == (
        "sales", "sales", "sales")
    # bo's contact_end ended its last interaction: a team member closed it (decision 99)
    assert (mail["Initiator Type - Last Closed"], mail["Initiator Agent ID - Last Closed"]) == ("AGENT", "bo")
    assert mail["Created-to-Last Closed Time in seconds"] == str(100 * 60)
    assert (rows["c4"]["Initiator Type - Created"], rows["c4"]["Initiator Agent ID - Created"]) == ("AGENT", "alex")
    assert (rows["c5"]["Count of Contacts"], rows["c5"]["First Contact ID"]) == ("0", "")


def test_crafted_summaries_by_hand(api: Api) -> None:
    """Ended on 2026-05-22: c2, c3, c7, c8 inbound and c4 outbound (c6 and c9 end by inactivity the next day);
    answered: c2 after 90 s, c3 after 3600 s, c7 after 120 s."""
    (row,) = api.rows(day("ContactSummaryReportV2"))
    assert (row["Contacts Ended"], row["Contacts Inbound"], row["Contacts Outbound"], row["Contacts Fulfilled"],
            row["Contacts Fulfilled by Response"]) == ("5", "4", "1", "3", "3")
    assert row["Avg. Queued-to-Fulfilled Time (sec)"] == str((90 + 3600 + 120) // 3)
    assert row["Max. Queued-to-Fulfilled Time (sec)"] == "3600"
    assert row["Avg. Queued-to-Ended Time (sec)"] == str((600 + 6000 + 300 + 1200) // 4)
    assert row["Avg. Fulfilled-to-Ended Time (sec)"] == str((510 + 2400 + 180) // 3)
    assert (row["Avg. Messages Total"], row["Avg. Messages from Customer"], row["Avg. Messages from Agent"]) == (
        "2.2", "1.2", "1")
    assert (row["Unique Customers with Contact Ended"], row["Unique Customers with Contact Fulfilled"],
            row["Unique Customers with an Inbound Contact Ended"],
            row["Unique Customers with an Outbound Contact Ended"]) == ("5", "3", "4", "1")
    assert row["Service Level %"] == row["Contacts Abandoned"] == ""
    (closed,) = api.rows(day("ConversationSummaryReport"))  # c2, c3, c4, c5 (AI, 15:00:05), c7, c8
    assert (closed["Conversations Closed"], closed["Unique Customers"], closed["% Multichannel"],
            closed["Avg Count of Contacts"], closed["Avg Count of Channels"]) == ("6", "6", "0.166667", "0.833333",
                                                                                 "1.166667")


def test_the_email_count_equals_convoscopes_own(api: Api) -> None:
    """Gladly's example script counts the contact-export rows whose Channel is EMAIL (issue 25)."""
    gladly = api.rows({"metricSet": "ContactExportReport", "startAt": GEN_FROM, "endAt": GEN_TO, "timezone": "UTC",
                       "filters": {"brand": "gen"}})
    own = api.rows({"metricSet": "contact-export", "startAt": GEN_FROM, "endAt": GEN_TO, "timezone": "UTC",
                    "filters": {"brand": "gen", "channel": ["email"]}})
    assert own and sum(row["Channel"] == "EMAIL" for row in gladly) == len(own)
    assert len(gladly) == len(api.rows({"metricSet": "contact-export", "startAt": GEN_FROM, "endAt": GEN_TO,
                                        "timezone": "UTC", "filters": {"brand": "gen"}}))


# --- the answer -----------------------------------------------------------------------------------------------

def test_csv_whatever_accept_says_named_as_gladly_names_it(api: Api) -> None:
    response = api.post({"metricSet": "contactExportReportV3", "startAt": "2026-05-21", "endAt": DAY},
                        Accept="application/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="ContactExportReportV3-20260521-20260522.csv"'
    assert "ContactExportReportV3" in response.headers["x-convoscope-definitions"]


# --- Gladly's validation --------------------------------------------------------------------------------------

def error(response: httpx.Response) -> tuple[str | None, str, str]:
    assert response.status_code == 400, response.text
    (only,) = response.json()["errors"]
    return only["attr"], only["code"], only["detail"]


@pytest.mark.parametrize(("body", "attr", "code"), [
    ({"metricSet": "ContactExportReport", "endAt": DAY}, "startAt", "blank"),
    ({"metricSet": "conversationSummaryReport", "startAt": DAY}, "endAt", "blank"),
    ({"metricSet": "GladlyAISessionsDetailReport"}, "startAt", "blank"),
    # Gladly's own answer to a request without a report: "metricSet must be specified", code blank.
    ({"startAt": DAY, "endAt": DAY}, "metricSet", "blank"),
    ({"metricSet": None, "startAt": DAY, "endAt": DAY}, "metricSet", "blank"),
    # A value of no allowed type is one error naming the field, not one per member of the union it may be.
    ({"metricSet": "ContactExportReportV3", "startAt": DAY, "endAt": DAY, "filters": {"channel": 5}},
     "filters.channel", "invalid"),
    ({"metricSet": "ContactSummaryReport", "startAt": DAY, "endAt": DAY, "aggregationLevel": "hourly"},
     "aggregationLevel", "invalid"),
    ({"metricSet": "ContactExportReportV3", "startAtTime": f"{DAY}T09:00Z"}, "endAtTime", "blank"),
    ({"metricSet": "ContactExportReportV3", "startAt": DAY, "startAtTime": f"{DAY}T09:00Z",
      "endAtTime": f"{DAY}T10:00Z"}, "startAt", "present"),
    ({"metricSet": "ConversationExportReport", "startAtTime": f"{DAY}T09:00Z", "endAtTime": f"{DAY}T10:00Z"},
     "startAtTime", "invalid"),
    ({"metricSet": "ContactExportReportV3", "startAt": DAY, "endAt": DAY, "filters": {"channel": "pigeon"}},
     "filters.channel", "invalid"),
    ({"metricSet": "ConversationExportReport", "startAt": DAY, "endAt": DAY, "filters": {"channel": "email"}},
     "filters.channel", "invalid"),
    ({"metricSet": "ContactSummaryReport", "startAt": DAY, "endAt": DAY, "filters": {"inboxes": ["nowhere"]}},
     "filters.inboxes", "present"),
    ({"metricSet": "ContactSummaryReport", "startAt": DAY, "endAt": DAY, "filters": {"teams": ["t1"]}},
     "filters.teams", "present"),
    ({"metricSet": "ContactExportReportV3", "startAt": "May 22", "endAt": DAY}, "startAt", "invalid"),
])
def test_gladlys_validation(api: Api, body: dict[str, Any], attr: str, code: str) -> None:
    assert error(api.post(body))[:2] == (attr, code)


@pytest.mark.parametrize("body", [b'{"metricSet": "ContactExportReportV3",', b'{"metricSet": "\xff"}'])
def test_a_body_that_is_not_json_is_one_error_on_the_body(api: Api, body: bytes) -> None:
    """Broken JSON and bytes that are not UTF-8 alike: `attr` body, code invalid_json (as events in answers)."""
    answer = api.client.post("/api/v1/reports", content=body,
                             headers={**bearer(api.token), "Content-Type": "application/json"})
    assert error(answer)[:2] == ("body", "invalid_json")


def test_an_inbox_on_another_brands_events_only_is_unknown_to_this_one(api: Api) -> None:
    body = {"metricSet": "ContactExportReportV3", "startAt": DAY, "endAt": DAY, "filters": {"inboxes": ["sales"]}}
    assert api.post(body).status_code == 200
    attr, code, detail = error(api.post({**body, "filters": {"inboxes": ["sales"], "brand": "gen"}}))
    assert (attr, code) == ("filters.inboxes", "present") and "'sales'" in detail


def test_start_and_end_at_time_alone_range_contact_export_v3(api: Api) -> None:
    body = {"metricSet": "ContactExportReportV3", "startAtTime": f"{DAY}T08:59Z", "endAtTime": "2026-05-22T12:00-00:00",
            "filters": {"brand": "default"}}
    response = api.post(body)
    assert response.status_code == 200, response.text
    assert [row["Customer ID"] for row in csv_dicts(response.text)] == ["c2", "c3", "c4"]  # queued 09:00, 10:00, 12:00
    assert response.headers["content-disposition"].endswith('ContactExportReportV3-20260522T0859Z-20260522T1200Z.csv"')


def test_unsupported_and_unknown_report_names_say_what_is_supported(api: Api) -> None:
    attr, _, detail = error(api.post({"metricSet": "agentTimestampsReport", "startAt": DAY, "endAt": DAY}))
    assert attr == "metricSet" and "agent status events" in detail
    assert "ContactExportReportV3" in detail and "sessions-detail" in detail
    attr, _, detail = error(api.post({"metricSet": "WorkSessionsReport", "startAt": DAY, "endAt": DAY}))
    assert "agent work sessions" in detail
    attr, _, detail = error(api.post({"metricSet": "EverythingReport", "startAt": DAY, "endAt": DAY}))
    assert attr == "metricSet" and "ConversationSummaryReport" in detail and "contact-export" in detail


def test_metric_set_and_aggregation_level_in_any_case(api: Api) -> None:
    plain = api.post(day("ContactSummaryReport", aggregationLevel="halfHourly"))
    for name, level in (("contactsummaryreport", "HALFHOURLY"), ("CONTACTSUMMARYREPORT", "halfhourly")):
        again = api.post(day(name, aggregationLevel=level))
        assert again.status_code == 200 and again.content == plain.content
    assert len(csv_dicts(plain.text)) == 5  # ended at 09:10, 11:40, 12:10, 15:05, 16:20: five half hours
    daily = api.post(day("ContactSummaryReport", aggregationLevel="Daily"))
    assert daily.content == api.post(day("ContactSummaryReport", aggregationLevel=None)).content
    assert daily.content == api.post(day("ContactSummaryReport")).content
    weekly = api.rows(day("ContactSummaryReport", aggregationLevel="weekly"))
    assert [r["Ended At Date"] for r in weekly] == ["2026-05-18 00:00:00"]  # the Monday of 2026-05-22
    export = api.post(day("ContactExportReportV3"))
    assert api.post(day("ContactExportReportV3", aggregationLevel="quarterly")).content == export.content


def test_filters_channel_one_string_a_list_or_all_channels(api: Api) -> None:
    every = api.post(day("ContactExportReportV3"))
    assert api.post(day("ContactExportReportV3", filters={"brand": "default", "channel": "allChannels"})).content == \
        every.content
    voice = api.rows(day("ContactExportReportV3", filters={"brand": "default", "channel": "VOICE"}))
    assert sorted(r["Customer ID"] for r in voice) == ["c2", "c8", "c9"]  # voice, phone, voicemail
    assert {r["Channel Filter"] for r in voice} == {"voice"}
    pair = api.rows(day("ContactExportReportV3", filters={"brand": "default", "channel": ["email", "instagramdirect"]}))
    assert {(r["Customer ID"], r["Channel"]) for r in pair} == {("c3", "EMAIL"), ("c6", "INSTAGRAM_DIRECT")}
    assert {r["Channel Filter"] for r in pair} == {"email, instagramDirect"}
    assert api.post(day("ConversationExportReport", filters={"brand": "default", "channel": "allChannels"})
                    ).status_code == 200
    ai = api.rows(day("GladlyAISessionsDetailReport", filters={"brand": "default", "channel": "fbMessenger"}))
    assert [r["Customer ID"] for r in ai] == ["c5"]


def test_filters_inboxes_and_teams(api: Api) -> None:
    every = api.post(day("ContactExportReportV3"))
    none = {"brand": "default", "inboxes": [], "teams": [], "phoneNumber": "+15555555555"}
    assert api.post(day("ContactExportReportV3", filters=none, phoneNumber="+15555555555")).content == every.content
    sales = api.rows(day("ContactExportReportV3", filters={"brand": "default", "inboxes": ["sales"]}))
    assert sorted(r["Customer ID"] for r in sales) == ["c3", "c4"]
    assert {r["Inboxes Filter"] for r in sales} == {"sales"}
    both = api.rows(day("ConversationExportReport", filters={"brand": "default", "inboxes": ["sales", "support"]}))
    assert sorted(r["Customer ID"] for r in both) == ["c2", "c3", "c4"]
    documented = {"metricSet": "ContactSummaryReport", "timezone": "UTC", "startAt": DAY, "endAt": DAY,
                  "aggregationLevel": "daily", "filters": {"channel": "allChannels", "inboxes": []}}
    assert api.post(documented).status_code == 200  # Gladly's own documented request (issue 25)


def test_own_names_keep_spec_6_2_and_refuse_gladlys_filters(api: Api) -> None:
    body = {"metricSet": "contact-export", "startAt": DAY, "endAt": DAY, "timezone": "UTC"}
    own = api.post(body)
    assert own.status_code == 200
    assert own.text.startswith("Contact ID,Conversation ID,Customer ID,Brand,Channel,")
    assert own.headers["content-disposition"] == 'attachment; filename="contact-export.csv"'
    assert {r["Channel"] for r in csv_dicts(own.text)} >= {"voice", "email", "phone"}
    attr, code, detail = error(api.post({**body, "filters": {"inboxes": []}}))
    assert (attr, code, detail) == ("filters.inboxes", "invalid", "Extra inputs are not permitted")
    assert error(api.post({**body, "phoneNumber": "+1"}))[0] == "phoneNumber"
    assert api.post({"metricSet": "contact-export"}).status_code == 200  # SPEC 4's optional range


def test_a_gladly_report_with_messages_is_audited_under_its_name(api: Api) -> None:
    assert api.post(day("GladlyAISessionsDetailWithMessagesReport", "2026-05-21")).status_code == 200
    audit = csv_dicts(api.store("audit").stdout)
    assert (audit[0]["user"], audit[0]["action"], audit[0]["target"]) == (
        "ana", "download", "GladlyAISessionsDetailWithMessagesReport")
