"""The crafted `feedback` cases of tests/fixtures/feedback/*.jsonl (issue 26 point 1): loading them, and
turning their events into the normalised form the reference derives from. Pure Python.

One case per line: `name`; `feedback_window` (F of the default brand, a SPEC 5 duration); optional
`settings` (other default-brand keys: `session_inactivity`, `contact_inactivity`,
`conversation_window`, `recontact_window`) and `brands` (`{brand: {key: duration}}`, a
`[brands.NAME]` table); `events`, as a user would write them in a JSON Lines file; `expected`, derived
by hand from the issue's text: `sessions` and `contacts`, each keyed by the interaction's first event id
and listing every interaction of the case with its `feedback`, `feedback_score` and `conversation` (the
first event id of its conversation), and `anomalies` (every anomaly: `event_id`, `kind`); `why`, that
derivation in words.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reference import Settings

CASES_DIR = Path(__file__).parent / "fixtures" / "feedback"
DURATION_KEYS = ("session_inactivity", "contact_inactivity", "conversation_window", "recontact_window",
                 "feedback_window")
FIELDS = ("event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route", "ai_agent",
          "guides", "category", "subcategory", "reason", "transfer_rationale", "agent", "inbox", "rating", "score")


def load_cases() -> list[dict]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                case = json.loads(line)
                case["source"] = f"{path.name}:{number}"
                cases.append(case)
    return cases


def duration(text: str) -> timedelta:
    """SPEC 5: one or more <integer><unit>, units s, m, h, d."""
    parts = re.findall(r"(\d+)([smhd])", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    return sum((timedelta(**{unit[u]: int(n)}) for n, u in parts), timedelta())


def settings_for(case: dict) -> dict[str, Settings]:
    """The reference settings of every brand the case names (others take the default brand's)."""
    default = replace(Settings(), feedback_window=duration(case["feedback_window"]),
                      **{k: duration(v) for k, v in case.get("settings", {}).items()})
    brands = {"default": default}
    for brand, keys in case.get("brands", {}).items():
        brands[brand] = replace(default, **{k: duration(v) for k, v in keys.items()})
    return brands


def normalised(event: dict) -> dict:
    """SPEC 2.4's normal form as the reference reads it: every field present, brand defaulted,
    occurred_at a naive UTC datetime."""
    out = dict.fromkeys(FIELDS)
    out.update(event)
    out["brand"] = event.get("brand", "default")
    at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    out["occurred_at"] = at.astimezone(UTC).replace(tzinfo=None)
    return out


def customer_of(case: dict, event_id: str) -> tuple[str, str]:
    (event,) = [e for e in case["events"] if e["event_id"] == event_id]
    return event.get("brand", "default"), event["customer_id"]


def toml_for(case: dict) -> str:
    """The configuration file of a case (keys before tables, as TOML wants)."""
    lines = [f'feedback_window = "{case["feedback_window"]}"']
    lines += [f'{key} = "{value}"' for key, value in case.get("settings", {}).items()]
    for brand, keys in case.get("brands", {}).items():
        lines += ["", f"[brands.{brand}]", *(f'{key} = "{value}"' for key, value in keys.items())]
    return "\n".join(lines) + "\n"
