"""What the source tests share: the sample payloads of SOURCES.md (copied from `../shared/samples/sources/`
into tests/fixtures/sources, so that the suite runs on a clone alone), the
events they must become, and Chatwoot's webhook signature, computed as Chatwoot computes it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from convoscope.store import connect as connect_waiting

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "sources"
CHATWOOT = SAMPLES / "chatwoot"
GLADLY = SAMPLES / "gladly"
SECRET = "sample-secret"  # the samples' own (signatures.txt)
EVENT_FIELDS = ("event_id", "type", "occurred_at", "customer_id", "channel", "text", "route", "ai_agent", "guides",
                "category", "subcategory", "reason", "transfer_rationale", "agent", "inbox")


def expected_events(system: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / system / "expected-events.jsonl").read_text().splitlines()]


def webhook_bodies() -> list[bytes]:
    """The sample's webhook bodies, byte for byte as Chatwoot posted them."""
    return [line for line in (CHATWOOT / "webhooks.jsonl").read_bytes().split(b"\n") if line.strip()]


def sign(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Chatwoot's headers for a delivery (SOURCES.md 1.7): timestamp, then `sha256=` + hex HMAC-SHA256 of
    `{timestamp}.{body}` with the webhook's secret."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Chatwoot-Timestamp": stamp, "X-Chatwoot-Signature": f"sha256={digest}",
            "Content-Type": "application/json"}


def normalised(event: dict[str, Any]) -> dict[str, Any]:
    """An event as SPEC 2.4 compares it: occurred_at as an instant, absent and empty alike."""
    out = {k: v for k, v in event.items() if v not in (None, "", []) and k != "brand"}
    out["occurred_at"] = datetime.fromisoformat(str(out["occurred_at"]).replace("Z", "+00:00")).isoformat()
    return out


def stored_events(db: Path, *, brand: str | None = None) -> list[dict[str, Any]]:
    """The events of a store, as SPEC 2 events (read with the store closed: no server may hold it)."""
    con = connect_waiting(db, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        found = con.execute(f"SELECT {', '.join(EVENT_FIELDS)}, brand FROM events ORDER BY event_id").fetchall()
    finally:
        con.close()
    events = []
    for row in found:
        event = dict(zip((*EVENT_FIELDS, "brand"), row, strict=True))
        if brand is not None and event["brand"] != brand:
            continue
        event["occurred_at"] = event["occurred_at"].isoformat() + "Z"
        event["type"] = str(event["type"])
        events.append(normalised(event))
    return events


def by_id(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["event_id"]: normalised(e) for e in events}
