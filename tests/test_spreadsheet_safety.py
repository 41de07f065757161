"""Spreadsheet safety (SPEC 4.1) over every report: the classic formula-injection payloads, placed in
every free-text field of the events and in the identifiers, come out of every *text* column with a
leading `'` exactly when they begin with `=`, `+`, `-`, `@`, a tab or a carriage return, and untouched
otherwise; identifier, link, number and time columns are never altered, so ids such as phone numbers
still join. The CSV of the command line is checked cell by cell, and the API's JSON rows are the same
cells.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

import pytest
from click.testing import Result

from cli_helpers import AS_OF, Convoscope, ev, make_id
from convoscope.reports import REPORTS
from convoscope.reports.base import GUARDED_PREFIXES, Params
from convoscope.store import connect as connect_waiting

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")  # SPEC 4.1, written out again rather than imported
# Free text: the payloads of the OWASP CSV-injection advice, then leading-white-space variants that
# SPEC 4.1 does not guard (a space, a line feed, a no-break space), then a plain value.
TEXT_PAYLOADS = (
    "=1+1", "+1", "-1", "@SUM(A1)", '=HYPERLINK("http://x","y")', "\t=1", "\r=1", "=cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0", "@\t=1", "\t\t=1", "\r\n=1",
    " =1", "  +1", "\n=1", "\u00a0=1", " \t=1", "plain text",
)
# Identifiers cannot hold control characters (SPEC 2.2), so no tab or carriage return here.
ID_PAYLOADS = ("=1+1", "+1", "-1", "@SUM(A1)", '=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0", " =1",
               "+15551234567")
PUBLIC_URL = "http://127.0.0.1:8000"
PLAIN_GUIDE = "Plain Guide"
DAY = "2026-05-21"

# SPEC 4.2–4.8: the columns each report lists as *text*; a summary's --by dimension is free text too.
# Appendix B's `inbox` is free text too (any string of up to 200 characters), in the --extra columns.
TEXT_COLUMNS = {
    "sessions-detail": {"Channel", "Gladly Agent", "Guides Used", "Handoff Category", "Handoff Subcategory",
                        "Handoff Reason", "Transfer Rationale", "Inbox"},
    "sessions-detail-with-messages": {"Channel", "Gladly Agent", "Guides Used", "Handoff Category",
                                      "Handoff Subcategory", "Handoff Reason", "Transfer Rationale",
                                      "Message History", "Inbox"},
    # issue 28: --by handoff_subcategory and --by inbox, as the detail's columns
    "sessions-summary": {"Channel", "AI Agent", "Guide", "Handoff Category", "Handoff Subcategory", "Inbox"},
    "contact-export": {"Channel", "Handoff Category", "Agents", "Inbox"},
    "contact-summary": set(),
    "conversation-export": {"First Channel", "Last Channel", "Inbox At Created", "Inbox At Last Closed"},
    "conversation-summary": set(),
    "data-quality": {"Reason", "Source"},
    "sources": {"Reason"},  # issue 23: the reason codes, free text like data-quality's Reason
    # issue 26: the dimensions and lists of what the events spelled
    "outcomes-summary": {"Channel", "AI Agent", "Guide", "Handoff Category", "Handoff Subcategory", "Inbox"},
    "automation-summary": {"Channel", "AI Agent"},
    "handoff-funnel": {"Handoff Category"},
    "guide-effectiveness": {"Guide", "Top Handoff Categories"},
    # issue 27: a theme's label is words of the texts; its lists name what the events spelled
    "handoff-themes": {"Label", "Top Categories", "Top Subcategories", "Guides"},
    "handoff-themes-with-examples": {"Label", "Top Categories", "Top Subcategories", "Guides", "Example 1 Text",
                                     "Example 2 Text", "Example 3 Text"},
    "handoff-theme-sessions": {"Label", "Handoff Category", "Handoff Subcategory", "Handoff Reason",
                               "Transfer Rationale", "Guides Used"},
}
# The runs: every report, with --extra where it takes it, and sessions-summary by every dimension. The
# sources report is left out: its cells are convoscope's own reason codes and counts, never what was sent.
RUNS: list[tuple[str, tuple[str, ...]]] = [
    (name, ("--extra",) if report.extra_columns else ()) for name, report in REPORTS.items() if name != "sources"
] + [("sessions-summary", ("--by", by)) for by in REPORTS["sessions-summary"].by_columns]


def guarded(value: str) -> str:
    """What SPEC 4.1 makes of a free-text value."""
    return "'" + value if value[:1] in TRIGGERS else value


def customer_of(i: int) -> str:
    return f"{ID_PAYLOADS[i % len(ID_PAYLOADS)]}#{i}"


def event_id_of(i: int, k: int) -> str:
    return f"{ID_PAYLOADS[(i + k) % len(ID_PAYLOADS)]}#{i}.{k}"


def at(i: int, minute: int) -> str:
    return f"{DAY}T{i:02}:{minute:02}:00Z"


def customer_events(i: int, text: str) -> list[dict]:
    """One customer per payload: an AI session handed off to a contact that a team member ends, and
    a second contact end with no contact open (an anomaly: a data-quality row with the ids). The
    session's inbox is the payload, the contact's the payload with ` c` after it."""
    who, eid = customer_of(i), lambda k: event_id_of(i, k)
    return [
        ev(eid(0), "customer_message", at(i, 0), customer=who, text=text, inbox=text),
        ev(eid(1), "ai_message", at(i, 1), customer=who, text=text, ai_agent=text, guides=[text, PLAIN_GUIDE]),
        ev(eid(2), "handoff", at(i, 2), customer=who, ai_agent=text, category=text, subcategory=text, reason=text,
           transfer_rationale=text, inbox=f"{text} c"),
        ev(eid(3), "agent_message", at(i, 3), customer=who, text=text, agent=text),
        ev(eid(4), "contact_end", at(i, 4), customer=who, agent=text),
        ev(eid(5), "contact_end", at(i, 5), customer=who, agent=text),
    ]


def later_events() -> list[dict]:
    """A second file: every first message again (duplicates), one changed (a conflict), and records
    rejected with the payloads in their ids (a control character in one: the record is rejected, and
    the data-quality report still shows its ids as sent)."""
    again = [customer_events(i, text)[0] for i, text in enumerate(TEXT_PAYLOADS)]
    changed = customer_events(0, TEXT_PAYLOADS[0])[1] | {"text": "changed"}
    rejected = [ev(f"{p}#rejected", TEXT_PAYLOADS[j], at(1, 30), customer=f"{p}#r")
                for j, p in enumerate(ID_PAYLOADS)]
    rejected.append(ev("\t=1#control", "customer_message", at(1, 31), customer="\r=1#control"))
    return [*again, changed, *rejected]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    cs = Convoscope(tmp_path_factory.mktemp("safety"))
    events = [e for i, text in enumerate(TEXT_PAYLOADS) for e in customer_events(i, text)]
    cs.ingest(events, "first.jsonl")
    result = cs("ingest", str(cs.write_events(later_events(), "later.jsonl")))
    assert result.exit_code == 3, result.stderr  # 3: some records were rejected
    yield cs


def table(result: Result) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a report's CSV, read from its bytes (a cell may hold CR or LF)."""
    rows = list(csv.reader(io.StringIO(result.stdout_bytes.decode("utf-8"), newline="")))
    return rows[0], rows[1:]


def run(store: Convoscope, name: str, args: tuple[str, ...]) -> tuple[list[str], list[dict[str, str]]]:
    result = store("report", name, "--as-of", AS_OF, "--tz", "UTC", *args)
    assert result.exit_code == 0, result.stderr
    header, rows = table(result)
    assert len(set(header)) == len(header)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def params_of(args: tuple[str, ...]) -> Params:
    by = args[args.index("--by") + 1] if "--by" in args else None
    return Params(extra="--extra" in args, by=by)


def test_the_definitions_flag_the_text_columns_of_the_spec() -> None:
    assert GUARDED_PREFIXES == TRIGGERS
    assert set(TEXT_COLUMNS) == set(REPORTS)
    for name, args in [*RUNS, ("sources", ())]:
        report = REPORTS[name]
        flagged = {c.display for c in report.output_columns(params_of(args)) if c.text}
        assert flagged == TEXT_COLUMNS[name] & {c.display for c in report.output_columns(params_of(args))}, name


@pytest.mark.parametrize(("name", "args"), RUNS, ids=[" ".join((n, *a)) for n, a in RUNS])
def test_every_text_cell_is_guarded_exactly_and_no_other_cell_is_touched(
    store: Convoscope, name: str, args: tuple[str, ...]
) -> None:
    header, rows = run(store, name, args)
    assert rows, f"{name} has no rows to check"
    text = {c.display for c in REPORTS[name].output_columns(params_of(args)) if c.text}
    for row in rows:
        for column, cell in row.items():
            if column in text:
                # Never a live trigger; a quote only where SPEC 4.1 put one (no payload begins with one).
                assert cell[:1] not in TRIGGERS, (name, column, cell)
                assert not cell.startswith("'") or cell[1:2] in TRIGGERS, (name, column, cell)
            else:
                assert not cell.startswith("'"), (name, column, cell)


def session_row_expected(i: int, text: str) -> dict[str, str]:
    who = customer_of(i)
    conversation = make_id("cnv_", "default", who, event_id_of(i, 0))
    return {
        "Session ID": make_id("ses_", "default", who, event_id_of(i, 0)),
        "Customer ID": who,
        "Conversation ID": conversation,
        "Channel": "chat",
        "Gladly Agent": guarded(text),
        "Guides Used": guarded(f"{text}, {PLAIN_GUIDE}"),
        "Handoff Category": guarded(text),
        "Handoff Subcategory": guarded(text),
        "Handoff Reason": guarded(text),
        "Transfer Rationale": guarded(text),
        "Conversation Link": f"{PUBLIC_URL}/conversations/{conversation}",
        "Inbox": guarded(text),
    }


def one_line(text: str) -> str:
    """SPEC 4.2: every line break inside a message becomes one space."""
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


@pytest.mark.parametrize("name", ["sessions-detail", "sessions-detail-with-messages"])
def test_session_cells(store: Convoscope, name: str) -> None:
    rows = {row["Customer ID"]: row for row in run(store, name, ("--extra",))[1]}
    assert set(rows) == {customer_of(i) for i in range(len(TEXT_PAYLOADS))}  # ids byte-equal to the input
    for i, text in enumerate(TEXT_PAYLOADS):
        row = rows[customer_of(i)]
        expected = session_row_expected(i, text)
        assert {k: row[k] for k in expected} == expected, repr(text)
        if name == "sessions-detail-with-messages":
            # A whole history begins with "[": it is never guarded, and the payloads inside are left as sent.
            assert row["Message History"] == (f"[{DAY} {i:02}:00:00] Customer: {one_line(text)}\n"
                                              f"[{DAY} {i:02}:01:00] AI: {one_line(text)}"), repr(text)


@pytest.mark.parametrize("by", ["ai_agent", "guide", "handoff_category", "channel"])
def test_summary_dimension_cells(store: Convoscope, by: str) -> None:
    header, rows = run(store, "sessions-summary", ("--by", by))
    dimension = header[1]
    found = {row[dimension] for row in rows}
    values = {"channel": {"chat"}, "guide": {guarded(t) for t in TEXT_PAYLOADS} | {PLAIN_GUIDE}}
    assert found == values.get(by, {guarded(t) for t in TEXT_PAYLOADS})


def test_contact_cells(store: Convoscope) -> None:
    rows = {row["Customer ID"]: row for row in run(store, "contact-export", ("--extra",))[1]}
    assert set(rows) == {customer_of(i) for i in range(len(TEXT_PAYLOADS))}
    for i, text in enumerate(TEXT_PAYLOADS):
        who = customer_of(i)
        conversation = make_id("cnv_", "default", who, event_id_of(i, 0))
        expected = {
            "Contact ID": make_id("ctc_", "default", who, event_id_of(i, 2)),
            "Conversation ID": conversation,
            "Session ID": make_id("ses_", "default", who, event_id_of(i, 0)),
            "Channel": "chat",
            "Handoff Category": guarded(text),
            "Agents": guarded(text),
            "Conversation Link": f"{PUBLIC_URL}/conversations/{conversation}",
            "Inbox": guarded(f"{text} c"),
        }
        assert {k: rows[who][k] for k in expected} == expected, repr(text)


def test_conversation_cells(store: Convoscope) -> None:
    rows = {row["Customer ID"]: row for row in run(store, "conversation-export", ("--extra",))[1]}
    assert set(rows) == {customer_of(i) for i in range(len(TEXT_PAYLOADS))}
    for i, text in enumerate(TEXT_PAYLOADS):
        who = customer_of(i)
        conversation = make_id("cnv_", "default", who, event_id_of(i, 0))
        assert (rows[who]["Conversation ID"], rows[who]["Conversation Link"], rows[who]["First Channel"],
                rows[who]["Last Channel"]) == (conversation, f"{PUBLIC_URL}/conversations/{conversation}", "chat", "chat")
        # Created with the session, closed after the contact: the two inboxes.
        assert (rows[who]["Inbox At Created"], rows[who]["Inbox At Last Closed"]) == (guarded(text),
                                                                                       guarded(f"{text} c"))


def test_data_quality_ids_are_as_sent(store: Convoscope) -> None:
    rows = run(store, "data-quality", ())[1]
    kinds: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        kinds.setdefault(row["Kind"], set()).add((row["Event ID"], row["Customer ID"]))
    n = len(TEXT_PAYLOADS)
    assert kinds["anomaly"] == {(event_id_of(i, 5), customer_of(i)) for i in range(n)}
    assert kinds["duplicate"] == {(event_id_of(i, 0), customer_of(i)) for i in range(n)}
    assert kinds["conflict"] == {(event_id_of(0, 1), customer_of(0))}
    assert kinds["rejected"] == {(f"{p}#rejected", f"{p}#r") for p in ID_PAYLOADS} | {("\t=1#control", "\r=1#control")}


def test_the_api_json_has_the_same_cells(store: Convoscope) -> None:
    from web_helpers import add_user, assert_json_cell, bearer, serving

    token = add_user(store, "analyst1", "analyst")
    with serving(store) as server, server.client(headers=bearer(token)) as client:
        for name, args in RUNS:
            query: dict[str, str | list[str]] = {"as_of": AS_OF, "tz": "UTC"}
            if "--extra" in args:
                query["extra"] = "true"
            if "--by" in args:
                query["by"] = args[args.index("--by") + 1]
            answer = client.get(f"/api/v1/reports/{name}", params=query, headers={"Accept": "application/json"})
            assert answer.status_code == 200, answer.text
            body = json.loads(answer.content)
            header, rows = run(store, name, args)
            assert body["columns"] == header
            columns = REPORTS[name].output_columns(params_of(args))
            assert len(body["rows"]) == len(rows), name
            for got, row in zip(body["rows"], rows, strict=True):  # text the very cell, numbers typed (issue 28)
                for column, key in zip(columns, header, strict=True):
                    assert_json_cell(column.kind, got[key], row[key], (name, key))


def test_payloads_reach_the_store_as_sent(store: Convoscope) -> None:
    """The guard is a rendering step: what is stored, and what a timeline shows, is the value sent."""

    con = connect_waiting(store.db, read_only=True)
    stored = {row[0] for row in con.execute("SELECT DISTINCT ai_agent FROM events WHERE ai_agent IS NOT NULL").fetchall()}
    inboxes = {row[0] for row in con.execute("SELECT DISTINCT inbox FROM events WHERE inbox IS NOT NULL").fetchall()}
    con.close()
    assert stored == set(TEXT_PAYLOADS)
    assert inboxes == set(TEXT_PAYLOADS) | {f"{t} c" for t in TEXT_PAYLOADS}


def test_the_dashboards_links_filter_on_the_values_themselves(store: Convoscope) -> None:
    """The dashboard shows the summaries' cells, guarded; a value's link opens its sessions, so it filters
    on the stored value (a guarded one would find nothing)."""
    from urllib.parse import parse_qs, urlsplit

    from web_helpers import add_user, log_in, serving

    add_user(store, "manager1", "team_manager")
    with serving(store) as server, server.client() as client:
        assert log_in(client, "manager1").status_code == 303
        page = client.get("/dashboard", params={"from": DAY, "to": DAY, "tz": "UTC"})
        assert page.status_code == 200, page.text[:300]
        links = [href.replace("&amp;", "&") for href in
                 re.findall(r'href="(/reports/sessions-detail\?[^"]*)" title="These sessions', page.text)]
        filters = [parse_qs(urlsplit(link).query)["where"][0].partition("=") for link in links]
        assert [value for key, _, value in filters
                if key != "channel" and value not in (*TEXT_PAYLOADS, PLAIN_GUIDE)] == []
        guarded_values = [value for key, _, value in filters if key in ("handoff_category", "ai_agent")
                          and value[:1] in GUARDED_PREFIXES]
        assert guarded_values, "no value needing the guard has a link; the test proves nothing"
        # The Outcomes section's guides (guide-effectiveness's cells, guarded) link the same way.
        assert [value for key, _, value in filters if key == "guide" and value[:1] in GUARDED_PREFIXES]
        for link in links[:3]:
            opened = client.get(link)
            assert opened.status_code == 200
            assert "0 rows" not in opened.text
