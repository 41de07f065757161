"""Gladly's reports as definitions (issue 25 point 1), without a server: the header rows are the public lists,
channels take Gladly's spellings through one CASE whose inverse the channel filter uses, the reports run
from the command line by Gladly's exact name, and docs/gladly.md lists every column as filled or empty
exactly as the code fills it."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from cli_helpers import Convoscope, ev, header, parse
from convoscope import reports
from convoscope.reports import gladly_columns as columns
from convoscope.reports.gladly import (
    FILLED,
    GLADLY_REPORTS,
    REQUEST_CHANNELS,
    UNSUPPORTED,
    channels_spelled,
    gladly_channel,
)
from web_helpers import WORKED_CONTACT, ingest_worked_example

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gladly.md"
# How many columns each public list has (docs/gladly.md names the sources): RC's schemas and logs, TAP's.
PUBLIC_LENGTHS = {"ContactExportReportV3": 63, "ConversationExportReport": 55, "ContactSummaryReport": 49,
                  "ContactSummaryReportV2": 51, "ConversationSummaryReport": 26, "GladlyAISessionsDetailReport": 16,
                  "GladlyAISessionsDetailWithMessagesReport": 17, "ConversationTimestampsReport": 21}


def test_every_gladly_name_is_a_report_by_its_lower_cased_name_and_none_is_also_unsupported() -> None:
    assert sorted(GLADLY_REPORTS) == sorted(name.lower() for name in (
        "ContactExportReport", "ContactExportReportV2", "ContactExportReportV3", "ConversationExportReport",
        "ContactSummaryReport", "ContactSummaryReportV2", "ConversationSummaryReport",
        "GladlyAISessionsDetailReport", "GladlyAISessionsDetailWithMessagesReport", "ConversationTimestampsReport"))
    assert all(key == report.name.lower() for key, report in GLADLY_REPORTS.items())
    assert not set(GLADLY_REPORTS) & set(UNSUPPORTED)
    assert all(key == key.lower() and phrase for key, phrase in UNSUPPORTED.items())
    assert {"agenttimestampsreport", "worksessionsreport", "paymentssummaryreport", "ivrendstatesreportv2",
            "taskexportreport"} <= set(UNSUPPORTED)
    assert [name for name, r in GLADLY_REPORTS.items() if r.personal_data] == ["gladlyaisessionsdetailwithmessagesreport"]


@pytest.mark.parametrize("name", sorted(PUBLIC_LENGTHS))
def test_the_header_rows_are_the_public_lists(name: str) -> None:
    headers = [c.display for c in GLADLY_REPORTS[name.lower()].columns]
    assert len(headers) == PUBLIC_LENGTHS[name]
    assert len(set(headers)) == len(headers)  # a client keys rows by header: none may repeat


def test_contact_export_v1_and_v2_answer_v3s_columns_and_the_ai_reports_spec_4_2s() -> None:
    for name in ("contactexportreport", "contactexportreportv2"):
        assert GLADLY_REPORTS[name].columns == GLADLY_REPORTS["contactexportreportv3"].columns
    spec = [c.display for c in reports.REPORTS["sessions-detail-with-messages"].columns]
    assert list(columns.AI_SESSIONS_DETAIL_WITH_MESSAGES) == spec
    assert columns.AI_SESSIONS_DETAIL_WITH_MESSAGES[-1] == "Message History"


def test_gladlys_reports_are_not_listed_with_spec_4s_but_run_by_their_name_in_any_case() -> None:
    assert not set(reports.REPORTS) & {r.name for r in GLADLY_REPORTS.values()}
    assert reports.get_report("ContactExportReportV3") is GLADLY_REPORTS["contactexportreportv3"]
    assert reports.get_report("contactExportReportV3") is GLADLY_REPORTS["contactexportreportv3"]
    with pytest.raises(Exception, match="unknown report"):
        reports.get_report("Sessions-Detail")  # convoscope's own names are exact, as SPEC 4 writes them


NAMES = ("voice", "phone", "phone_call", "call", "facebook", "messenger", "fb_messenger", "instagram",
         "instagram_direct", "email", "chat", "sms", "whatsapp", "voicemail", "twitter", "web-chat", "line")


def spelled(names: tuple[str, ...]) -> dict[str, str]:
    values = ", ".join(f"('{n}')" for n in names)
    rows = duckdb.sql(f"SELECT c, {gladly_channel('c')} FROM (VALUES {values}) t(c)").fetchall()
    return dict(rows)


def test_channels_take_gladlys_spellings() -> None:
    found = spelled(NAMES)
    for names, spelling in ((("voice", "phone", "phone_call", "call"), "PHONE_CALL"),
                            (("facebook", "messenger", "fb_messenger"), "FB_MESSENGER"),
                            (("instagram", "instagram_direct"), "INSTAGRAM_DIRECT"), (("email",), "EMAIL"),
                            (("chat",), "CHAT"), (("sms",), "SMS"), (("whatsapp",), "WHATSAPP"),
                            (("voicemail",), "VOICEMAIL"), (("web-chat",), "WEB-CHAT")):
        assert {name: found[name] for name in names} == dict.fromkeys(names, spelling)
    assert duckdb.sql(f"SELECT {gladly_channel('NULL::VARCHAR')}").fetchall() == [(None,)]


def test_the_channel_filter_selects_exactly_the_channels_spelled_so() -> None:
    found = spelled(NAMES)
    for spelling in set(found.values()):
        assert {n for n in NAMES if found[n] == spelling} == set(channels_spelled([spelling])) & set(NAMES)
    assert REQUEST_CHANNELS["voice"][1] == ("PHONE_CALL", "VOICEMAIL")
    assert [name for name, _ in REQUEST_CHANNELS.values()] == ["chat", "email", "fbMessenger", "sms", "twitter",
                                                                "voice", "whatsapp", "instagramDirect"]


def test_the_command_line_runs_a_gladly_report_by_its_name(tmp_path: Path) -> None:
    store = Convoscope(tmp_path)
    ingest_worked_example(store)
    result = store("report", "ContactExportReportV3", "--from", "2026-05-21", "--to", "2026-05-21",
                   "--tz", "Europe/Paris", "--as-of", "2026-06-01T00:00:00Z")
    assert result.exit_code == 0, result.stderr
    assert header(result) == list(columns.CONTACT_EXPORT_V3)
    (row,) = parse(result)
    assert (row["Contact ID"], row["Queued At"], row["Timezone Filter"]) == (
        WORKED_CONTACT, "2026-05-21 19:10:00", "Europe/Paris")  # 17:10 UTC is 19:10 in Paris in May
    summary = store("report", "ConversationSummaryReport", "--period", "week", "--as-of", "2026-06-01T00:00:00Z")
    assert summary.exit_code == 0, summary.stderr
    assert [r["Last Closed At"] for r in parse(summary)] == ["2026-05-18 00:00:00"]
    # In any case, as the API takes it (the Airbyte connector's lower camel case).
    camel = store("report", "contactExportReportV3", "--from", "2026-05-21", "--to", "2026-05-21",
                  "--tz", "Europe/Paris", "--as-of", "2026-06-01T00:00:00Z")
    assert camel.exit_code == 0, camel.stderr
    assert camel.stdout == result.stdout


# --- docs/gladly.md keeps up with the code ---------------------------------------------------------------------

# The section of docs/gladly.md that lists each report's columns.
SECTIONS = {"ContactExportReport": "ContactExportReportV3", "ContactExportReportV2": "ContactExportReportV3",
            "ContactSummaryReport": "ContactSummaryReportV2",
            "GladlyAISessionsDetailReport": "GladlyAISessionsDetailWithMessagesReport"}


def documented(section: str) -> dict[str, str]:
    """The column table under `### <section>`: each column and whether it is `filled` or `empty`."""
    text = DOCS.read_text()
    start = text.index(f"\n### {section}\n")
    end = text.find("\n### ", start + 1)
    rows = re.findall(r"^\| \d+ \| (.+?) \| [^|]+ \| (filled|empty) \|", text[start:end if end > 0 else None], re.M)
    return {column.replace("\\|", "|"): state for column, state in rows}


@pytest.mark.parametrize("name", [r.name for r in GLADLY_REPORTS.values()])
def test_every_gladly_column_is_documented_as_filled_or_empty(name: str) -> None:
    table = documented(SECTIONS.get(name, name))
    headers = [c.display for c in GLADLY_REPORTS[name.lower()].columns]
    assert [h for h in table if h in headers] == headers, f"{name}: docs/gladly.md lists other columns"
    filled = {h for h in headers if table[h] == "filled"}
    assert filled == FILLED[name], f"{name}: filled in the code but not the docs, or the other way round"


def test_free_text_from_the_log_is_guarded_in_gladlys_shape_too(tmp_path: Path) -> None:
    """SPEC 4.1's spreadsheet safety: a team member's or an inbox's name that a spreadsheet would run."""
    store = Convoscope(tmp_path)
    store.ingest([
        ev("g1", "customer_message", "2026-05-21T09:00:00Z", "g", route="team", inbox="+31 inbox"),
        ev("g2", "agent_message", "2026-05-21T09:01:00Z", "g", agent="=HYPERLINK(1)"),
        ev("g3", "contact_end", "2026-05-21T09:02:00Z", "g", agent="=HYPERLINK(1)"),
        ev("g4", "conversation_close", "2026-05-21T09:02:00Z", "g", agent="@sam"),
    ])
    (contact,) = parse(store("report", "ContactExportReportV3", "--as-of", "2026-06-01T00:00:00Z"))
    assert (contact["Agent When Ended"], contact["Inbox When Queued"]) == ("'=HYPERLINK(1)", "'+31 inbox")
    (conversation,) = parse(store("report", "ConversationExportReport", "--as-of", "2026-06-01T00:00:00Z"))
    # The contact_end (ranked before the close at 09:02) ended the last interaction: its team member closed it.
    assert (conversation["Inbox Name - Created"], conversation["Initiator Agent Name - Last Closed"]) == (
        "'+31 inbox", "'=HYPERLINK(1)")
    # An ID column is an identifier: never altered (SPEC 4.1), so it still equals what filters.inboxes takes.
    assert (conversation["Inbox ID - Created"], conversation["Initiator Agent ID - Last Closed"]) == (
        "+31 inbox", "=HYPERLINK(1)")


def test_who_created_and_closed_a_conversation_agrees_with_the_conversation_timestamps(tmp_path: Path) -> None:
    """Decision 99 in both of Gladly's conversation reports. h: a lone handoff creates it (SYSTEM); its contact
    ends by inactivity 24h after the handoff, and a close naming yan at that very instant closes nothing (the
    conversation had closed as the contact ended): SYSTEM, no agent. k: a customer's message to the team
    (CUSTOMER); a contact_end naming nobody and a close naming zoe at one instant: the contact_end ended it,
    AGENT, with no name."""
    store = Convoscope(tmp_path)
    store.ingest([
        ev("h1", "handoff", "2026-05-21T10:00:00Z", "h", category="handoff_manual"),
        ev("h2", "conversation_close", "2026-05-22T10:00:00Z", "h", agent="yan"),
        ev("k1", "customer_message", "2026-05-21T09:00:00Z", "k", route="team"),
        ev("k2", "contact_end", "2026-05-21T09:05:00Z", "k"),
        ev("k3", "conversation_close", "2026-05-21T09:05:00Z", "k", agent="zoe"),
    ])
    as_of = ("--as-of", "2026-06-01T00:00:00Z")
    exported = {r["Customer ID"]: r for r in parse(store("report", "ConversationExportReport", *as_of))}
    assert [(exported[c]["Initiator Type - Created"], exported[c]["Initiator Type - Last Closed"],
             exported[c]["Initiator Agent ID - Last Closed"]) for c in ("h", "k")] == [
        ("SYSTEM", "SYSTEM", ""), ("CUSTOMER", "AGENT", "")]
    stamps = parse(store("report", "ConversationTimestampsReport", *as_of))
    assert sorted((r["Customer ID"], r["Event Type"], r["Initiator Type"]) for r in stamps) == [
        ("h", "CONVERSATION/CLOSED", "SYSTEM"), ("h", "CONVERSATION/CREATED", "SYSTEM"),
        ("k", "CONVERSATION/CLOSED", "AGENT"), ("k", "CONVERSATION/CREATED", "CUSTOMER")]
