"""Cases written from SOURCES.md alone by a reader who never saw this code (tests/fixtures/sources/crafted):
every row of the mapping tables and their boundaries, for both helpdesks. Where convoscope took another
reading of an ambiguous sentence, the case is listed in DECIDED_OTHERWISE with the decision, and its
test holds convoscope's reading instead."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from convoscope.sources import Outcome, chatwoot, gladly

CRAFTED = Path(__file__).parent / "fixtures" / "sources" / "crafted"
CHATWOOT_CASES = [json.loads(line) for line in (CRAFTED / "chatwoot-cases.jsonl").read_text().splitlines()]
GLADLY_CASES = sorted(p for p in (CRAFTED / "gladly-cases").iterdir() if p.is_dir())

# Cases whose ambiguous sentence convoscope reads otherwise: the case, and what convoscope does instead.
DECIDED_OTHERWISE = {
    "g23-rows-differ-only-in-outcome-column": "decision 79: rows that differ only in columns convoscope does not "
                                              "read (outcomes, Created Date) are the same row, not a conflict",
}


def instant(event: dict[str, Any]) -> dict[str, Any]:
    """An event as SPEC 2.4 compares it: absent and empty alike, occurred_at as an instant."""
    out = {k: v for k, v in event.items() if v not in (None, "", [])}
    out["occurred_at"] = datetime.fromisoformat(out["occurred_at"].replace("Z", "+00:00"))
    return out


def outcome_of(record: Outcome) -> dict[str, Any]:
    if record.events:
        return {"events": [instant(e) for e in record.events]}
    return {"ignored": True} if record.ignored else {"rejected": True}


@pytest.mark.parametrize("case", CHATWOOT_CASES, ids=[c["name"] for c in CHATWOOT_CASES])
def test_chatwoot_case(case: dict[str, Any]) -> None:
    given = case["input"]
    if given["kind"] == "webhook":
        records = [chatwoot.map_webhook(json.dumps(given["body"]).encode(), source="crafted")]
    else:
        record = given["record"]
        records = chatwoot.map_backfill(record["conversation"], record["messages"], source="crafted", line=1)
    expected = [{"events": [instant(e) for e in x["events"]]} if "events" in x else x for x in case["expect"]]
    assert [outcome_of(r) for r in records] == expected, case["rule"]
    for record in records:
        if record.rejected:
            assert record.message and len(record.message.splitlines()) == 1


@pytest.mark.parametrize("folder", GLADLY_CASES, ids=[p.name for p in GLADLY_CASES])
def test_gladly_case(folder: Path) -> None:
    expect = json.loads((folder / "expect.json").read_text())
    users = expect.get("config", {}).get("ai_api_users")
    records = list(gladly.read_export(folder, ai_api_users=tuple(users) if users is not None else None))
    # What the store keeps: each event once (a repeated row's handoff is a duplicate of the first).
    events = {e["event_id"]: instant(e) for r in records for e in r.events}
    counts = (sum(1 for r in records if r.ignored), sum(1 for r in records if r.rejected))
    if folder.name in DECIDED_OTHERWISE:
        assert counts == (2, 0), DECIDED_OTHERWISE[folder.name]
        assert any("guides" in e for e in events.values())
        return
    assert events == {e["event_id"]: instant(e) for e in expect["events"]}, expect["rule"]
    assert counts == (expect["ignored"], expect["rejected"]), expect["rule"]
