"""`convoscope ingest --source chatwoot|gladly PATH… [--brand B]` (issue 23 point 2), through the real
command line: the sample captures and export give exactly their expected events (SOURCES.md samples), the
four counts are printed, exit 3 when anything was rejected, a progress bar on a terminal, and usage errors
in one line before any store is made."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import Convoscope
from source_helpers import CHATWOOT, GLADLY, by_id, expected_events, stored_events
from web_helpers import csv_dicts


@pytest.fixture
def cs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Convoscope:
    monkeypatch.chdir(tmp_path)
    return Convoscope(tmp_path)


def counts(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


def test_chatwoot_webhook_captures_give_the_samples_events(cs: Convoscope) -> None:
    result = cs("ingest", "--source", "chatwoot", str(CHATWOOT / "webhooks.jsonl"))
    assert result.exit_code == 0, result.stderr
    assert counts(result.stdout) == "accepted 14, duplicate 0, ignored 9, rejected 0"
    assert "ignored: conversation_created 2, conversation_updated 3, message_updated 1, private_note 2, " \
           "template 1" in result.stderr
    assert by_id(stored_events(cs.db, brand="default")) == by_id(expected_events("chatwoot"))


def test_a_backfill_after_the_webhooks_is_all_duplicates(cs: Convoscope) -> None:
    assert cs("ingest", "--source", "chatwoot", str(CHATWOOT / "webhooks.jsonl")).exit_code == 0
    result = cs("ingest", "--source", "chatwoot", str(CHATWOOT / "backfill.jsonl"))
    assert result.exit_code == 0, result.stderr
    assert counts(result.stdout).startswith("accepted 0, duplicate 11, ")
    assert by_id(stored_events(cs.db)) == by_id(expected_events("chatwoot"))
    report = csv_dicts(cs("report", "sources").stdout)
    totals = {(r["Reason"]): (r["Accepted"], r["Duplicate"]) for r in report if r["Reason"] == ""}
    assert totals == {"": ("14", "11")}


def test_the_gladly_export_gives_the_samples_events(cs: Convoscope) -> None:
    result = cs("ingest", "--source", "gladly", str(GLADLY / "export"), "--brand", "acme")
    assert result.exit_code == 0, result.stderr
    assert counts(result.stdout) == "accepted 13, duplicate 0, ignored 3, rejected 0"
    assert by_id(stored_events(cs.db, brand="acme")) == by_id(expected_events("gladly"))
    # Ingested as plain events, the same events give one resolved session and one handed off (README of the samples).
    detail = csv_dicts(cs("report", "sessions-detail", "--as-of", "2026-06-01T00:00:00Z").stdout)
    assert sorted((r["Was Resolved"], r["Was Handed Off"], r["Handoff Category"]) for r in detail) == [
        ("false", "true", "handoff_transfer_detector"), ("true", "false", "")]


def test_the_same_export_ingested_again_changes_nothing(cs: Convoscope) -> None:
    assert cs("ingest", "--source", "gladly", str(GLADLY / "export")).exit_code == 0
    before = cs("report", "sources").stdout
    again = cs("ingest", "--source", "gladly", str(GLADLY / "export"))
    assert counts(again.stdout) == "accepted 0, duplicate 13, ignored 3, rejected 0"
    assert cs("report", "sources").stdout == before
    assert by_id(stored_events(cs.db)) == by_id(expected_events("gladly"))


def test_a_rejected_record_is_kept_and_exits_3(cs: Convoscope, tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    lines = (CHATWOOT / "webhooks.jsonl").read_text().splitlines()[:3]
    capture.write_text("\n".join([*lines, '{"event": "contact_merged"}', "not json at all"]) + "\n")
    result = cs("ingest", "--source", "chatwoot", str(capture), "--brand", "acme")
    assert result.exit_code == 3, result.stderr
    assert counts(result.stdout) == "accepted 1, duplicate 0, ignored 2, rejected 2"
    assert "rejected: not_json 1, unknown_event 1" in result.stderr
    rejects = cs("rejects")
    listed = csv_dicts(rejects.stdout)
    assert [(r["line"], r["raw"]) for r in listed] == [("4", '{"event": "contact_merged"}'), ("5", "not json at all")]
    quality = csv_dicts(cs("report", "data-quality", "--brand", "acme").stdout)
    assert len(quality) == 2 and all(r["Brand"] == "acme" for r in quality)


def test_the_brand_comes_from_the_flag_then_the_configuration(cs: Convoscope) -> None:
    assert cs.config is not None
    cs.config.write_text('[sources.chatwoot]\nbrand = "outdoor"\n')
    assert cs("ingest", "--source", "chatwoot", str(CHATWOOT / "webhooks.jsonl")).exit_code == 0
    assert cs("ingest", "--source", "chatwoot", str(CHATWOOT / "webhooks.jsonl"), "--brand", "other").exit_code == 0
    assert {e["event_id"] for e in stored_events(cs.db, brand="outdoor")} == {e["event_id"] for e in
                                                                             expected_events("chatwoot")}
    assert len(stored_events(cs.db, brand="other")) == 14


def test_a_folder_of_captures_is_read_file_by_file(cs: Convoscope, tmp_path: Path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    shutil.copy(CHATWOOT / "webhooks.jsonl", folder / "a.jsonl")
    shutil.copy(CHATWOOT / "backfill.jsonl", folder / "b.jsonl")
    result = cs("ingest", "--source", "chatwoot", str(folder))
    assert result.exit_code == 0, result.stderr
    assert counts(result.stdout).startswith("accepted 14, duplicate 11, ")


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--source", "intercom", "x.jsonl"], 2, "unknown source 'intercom'; use one of chatwoot, gladly"),
    (["--brand", "acme", "x.jsonl"], 2, "--brand goes with --source"),
    (["--source", "chatwoot", "--format", "csv", "x.jsonl"], 2, "--format does not go with --source"),
    (["--source", "chatwoot", "--brand", "Acme Corp", "x.jsonl"], 2, "--brand 'Acme Corp' is not a brand name"),
    (["--source", "chatwoot", "missing.jsonl"], 1, "missing.jsonl: no such file or folder"),
    (["--source", "gladly", "missing"], 1, "missing does not exist"),
])
def test_a_wrong_invocation_is_one_line_and_makes_no_store(cs: Convoscope, args: list[str], code: int,
                                                            says: str) -> None:
    result = cs("ingest", *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not cs.db.exists()


def test_a_file_given_for_a_gladly_export_says_to_give_its_folder(cs: Convoscope) -> None:
    result = cs("ingest", "--source", "gladly", str(GLADLY / "export" / "conversation_items.jsonl"))
    assert result.exit_code == 1
    assert "give the directory of the Gladly export job" in result.stderr


def test_the_progress_bar_shows_on_a_terminal(tmp_path: Path) -> None:
    terminal, its_end = pty.openpty()
    subprocess.run([str(Path(sys.executable).with_name("convoscope")), "--db", str(tmp_path / "s.duckdb"),
                    "ingest", "--source", "chatwoot", str(CHATWOOT / "webhooks.jsonl")],
                   stdout=subprocess.DEVNULL, stderr=its_end, check=True, timeout=300, cwd=tmp_path)
    os.close(its_end)
    drawn = b""
    while True:
        try:
            piece = os.read(terminal, 65536)
        except OSError:
            break
        if not piece:
            break
        drawn += piece
    os.close(terminal)
    assert b"Reading records" in drawn, drawn[:300]


def test_the_sources_report_counts_every_record_by_day_and_reason(cs: Convoscope) -> None:
    assert cs("ingest", "--source", "chatwoot", str(CHATWOOT / "webhooks.jsonl")).exit_code == 0
    rows = csv_dicts(cs("report", "sources", "--from", "2026-05-21", "--to", "2026-05-21").stdout)
    by_reason = {r["Reason"]: r for r in rows}
    assert by_reason[""]["Accepted"] == "14"
    assert sum(int(r["Ignored"]) for r in rows) == 9
    assert by_reason["template"]["Ignored"] == "1"
    assert all(r["Period"] == "2026-05-21" and r["Source"] == "chatwoot" and r["Via"] == "file" for r in rows)
    assert json.loads(json.dumps(rows))  # plain strings only
    snake = cs("report", "sources", "--headers", "snake").stdout.splitlines()[0]
    assert snake == "period,source,via,reason,accepted,duplicate,ignored,rejected,truncated"


def test_forget_erases_the_rejected_records_of_the_customer_too(cs: Convoscope, tmp_path: Path) -> None:
    """SPEC 6.5: a customer's rejected records hold their words as much as their events do."""
    bodies = [json.loads(line) for line in (CHATWOOT / "webhooks.jsonl").read_text().splitlines()]
    message = next(b for b in bodies if b["event"] == "message_created" and b["message_type"] == "incoming")
    broken = {**message, "id": 99001, "content": "my card is 4111 1111 1111 1111", "message_type": "telepathy"}
    capture = tmp_path / "capture.jsonl"
    capture.write_text(json.dumps(message) + "\n" + json.dumps(broken) + "\n")
    assert cs("ingest", "--source", "chatwoot", str(capture)).exit_code == 3
    assert "4111" in cs("rejects", "--raw").stdout
    customer = str(message["conversation"]["meta"]["sender"]["id"])
    result = cs("forget", "--brand", "default", "--customer", customer)
    assert result.exit_code == 0, result.stderr
    assert "4111" not in cs("rejects", "--all", "--raw").stdout
    assert stored_events(cs.db) == []


def test_the_sources_report_is_refused_over_a_lake(cs: Convoscope, tmp_path: Path) -> None:
    """spark-derive reads events, not a helpdesk's records: a lake cannot say what became of them."""
    result = cs("report", "sources", "--lake", str(tmp_path))
    assert result.exit_code == 2
    assert "only a store holds" in result.stderr


def test_a_rejected_record_shows_its_event_id_and_time_and_is_resolved_once_fixed(cs: Convoscope,
                                                                                 tmp_path: Path) -> None:
    """A helpdesk record rejected for one bad value still names its message and its time in data-quality
    (SPEC 4.8 places it by its time), and the reject is resolved when the fixed record is stored."""
    bodies = [json.loads(line) for line in (CHATWOOT / "webhooks.jsonl").read_text().splitlines()]
    message = next(b for b in bodies if b["event"] == "message_created" and b["message_type"] == "incoming")
    broken = json.loads(json.dumps(message))
    broken["conversation"]["channel"] = "WebWidget"  # no Channel:: prefix (SOURCES.md 1.5)
    (tmp_path / "broken.jsonl").write_text(json.dumps(broken) + "\n")
    assert cs("ingest", "--source", "chatwoot", str(tmp_path / "broken.jsonl")).exit_code == 3
    quality = csv_dicts(cs("report", "data-quality", "--from", "2026-05-21", "--to", "2026-05-21",
                           "--tz", "UTC").stdout)
    assert [(r["Kind"], r["Event ID"], r["Time"]) for r in quality] == [
        ("rejected", f"chatwoot:3:message:{message['id']}", "2026-05-21T10:00:05+00:00")]
    (tmp_path / "fixed.jsonl").write_text(json.dumps(message) + "\n")
    assert cs("ingest", "--source", "chatwoot", str(tmp_path / "fixed.jsonl")).exit_code == 0
    assert csv_dicts(cs("rejects").stdout) == []
    assert csv_dicts(cs("report", "data-quality").stdout) == []


def test_forget_erases_a_gladly_customers_rejected_report_rows(cs: Convoscope, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(GLADLY / "export", export)
    report = export / "gladly-ai-sessions-detail.csv"
    rows = report.read_text().splitlines()
    handed_off = next(r for r in rows if ",true,false," in r)
    report.write_text("\n".join([*rows, handed_off.replace("refund_request", "refund_denied")]) + "\n")
    assert cs("ingest", "--source", "gladly", str(export)).exit_code == 3
    assert "refund_denied" in cs("rejects", "--raw").stdout
    assert cs("forget", "--brand", "default", "--customer", "KgnVOMc2TbiA3zad6iVlWA").exit_code == 0
    assert "refund" not in cs("rejects", "--all", "--raw").stdout
