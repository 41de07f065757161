"""The generated Chatwoot account (issue 23 point 7, `convoscope.synth_chatwoot`): deterministic, in the
samples' shapes key for key, and mapped by `convoscope.sources.chatwoot` to exactly the events the generator
computed on its own from SOURCES.md (two independent readings of SOURCES.md 1 that meet here); and
`demo --source chatwoot`, whose signed deliveries reach the store over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli_helpers import Convoscope
from convoscope import synth_chatwoot
from convoscope.cli import cli
from convoscope.reports import REPORTS
from convoscope.sources import chatwoot
from source_helpers import CHATWOOT, by_id, stored_events, webhook_bodies

MESSAGE_TYPES = ("customer_message", "ai_message", "agent_message")


@pytest.fixture(scope="module")
def account() -> synth_chatwoot.ChatwootAccount:
    return synth_chatwoot.generate(contacts=150, days=4, seed=11, start=date(2026, 5, 18))


def bodies(account: synth_chatwoot.ChatwootAccount) -> list[dict[str, Any]]:
    return [json.loads(d.body) for d in account.deliveries]


# --- determinism ---------------------------------------------------------------------------------


def test_the_same_arguments_give_the_same_account_byte_for_byte(tmp_path: Path) -> None:
    def files(seed: int, name: str) -> dict[str, bytes]:
        written = synth_chatwoot.write(synth_chatwoot.generate(contacts=40, days=2, seed=seed), tmp_path / name)
        return {key: path.read_bytes() for key, path in written.items()}

    a, b, c = files(5, "a"), files(5, "b"), files(6, "c")
    assert a == b
    assert all(a[key] != c[key] for key in a)
    first = synth_chatwoot.generate(contacts=40, days=2, seed=5)
    second = synth_chatwoot.generate(contacts=40, days=2, seed=5)
    assert [(d.at, d.body) for d in first.deliveries] == [(d.at, d.body) for d in second.deliveries]
    assert synth_chatwoot.backfill_records(contacts=40, days=2, seed=5) == first.records


# --- the samples' shapes -------------------------------------------------------------------------

# Subtrees whose keys depend on who or what: checked by `senders` and `attributes` below.
FREE = {"sender", "additional_attributes"}


def skeleton(value: Any) -> Any:
    """The keys of a value, in order, all the way down (a list by its first item); values left out."""
    if isinstance(value, dict):
        return [(key, "…" if key in FREE else skeleton(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [skeleton(value[0])] if value else []
    return None


def senders(value: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every non-null sender in a body or record, with where it sits: `webhook` (a message body's own),
    `push` (a message inside a conversation, or a REST message) or `meta` (the conversation's contact)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "sender" and isinstance(item, dict):
                found.append((where or ("webhook" if "event" in value else "push"), item))
            else:
                found += senders(item, "meta" if key == "meta" else "push" if key == "messages" else where)
    elif isinstance(value, list):
        for item in value:
            found += senders(item, where)
    return found


def sample_bodies() -> list[dict[str, Any]]:
    return [json.loads(body) for body in webhook_bodies()]


def sample_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CHATWOOT / "backfill.jsonl").read_text().splitlines() if line.strip()]


def body_kind(body: dict[str, Any]) -> tuple[str, str | None, bool | None]:
    """A body's kind: its event, and for a message its sender's type (or kind, for a template) and whether
    it is private."""
    if body["event"].startswith("message_"):
        sender = body["sender"]["type"] if body["sender"] else body["message_type"]
        return body["event"], sender, body["private"]
    return body["event"], None, None


def sender_key_orders() -> dict[tuple[str, str], list[str]]:
    """The keys of every kind of sender in every place, from the samples; the agent bot's, which the
    samples do not have, from Chatwoot's AgentBot#webhook_data and #push_event_data
    [cw:app/models/agent_bot.rb]."""
    known: dict[tuple[str, str], list[str]] = {}
    for where, sender in [s for b in sample_bodies() for s in senders(b)] + \
                         [s for r in sample_records() for s in senders(r)]:
        keys = list(sender)
        assert known.setdefault((where, sender["type"]), keys) == keys, (where, sender["type"])
    known[("webhook", "agent_bot")] = ["id", "name", "type"]
    known[("push", "agent_bot")] = ["id", "name", "avatar_url", "type"]
    return known


def test_every_kind_of_webhook_body_has_the_sample_keys_in_the_sample_order(account) -> None:
    samples: dict[str, Any] = {}
    for body in sample_bodies():
        assert samples.setdefault(body["event"], skeleton(body)) == skeleton(body)  # senders aside, one per event
    for body in bodies(account):
        assert body["event"] in samples, f"an event the samples do not have: {body['event']}"
        assert skeleton(body) == samples[body["event"]], body["event"]
    # Every kind of body the samples show, by event, sender and privacy, is generated, and the agent bot's.
    kinds = {body_kind(b) for b in bodies(account)}
    assert {body_kind(b) for b in sample_bodies()} <= kinds
    assert ("message_created", "agent_bot", False) in kinds


def test_every_backfill_record_has_the_sample_keys_in_the_sample_order(account) -> None:
    sample = sample_records()[1]
    item_keys = {("sender" in m): list(m) for m in sample["messages"]}
    for record in account.records:
        assert list(record) == ["conversation", "messages"]
        assert skeleton(record["conversation"]) == skeleton(sample["conversation"])
        for message in record["messages"]:
            assert list(message) == item_keys["sender" in message], message
            assert ("sender" in message) == (message["message_type"] in (0, 1))


def test_every_sender_and_every_additional_attributes_has_the_sample_keys(account) -> None:
    known = sender_key_orders()
    seen = set()
    for where, sender in [s for b in bodies(account) for s in senders(b)] + \
                         [s for r in account.records for s in senders(r)]:
        assert list(sender) == known[(where, sender["type"])], (where, sender)
        seen.add((where, sender["type"]))
        if sender["type"] == "contact":  # a city, or nothing, as the sample's two contacts
            assert list(sender["additional_attributes"]) in ([], ["city"]), sender
    assert seen == set(known)  # every kind of sender, in every place
    widget = skeleton(sample_bodies()[0]["additional_attributes"])
    conversations = [b.get("conversation", b) for b in bodies(account)] + [r["conversation"] for r in account.records]
    for conversation in conversations:
        # The widget's browser details as in the sample; the other inboxes' keys are not in the samples.
        if conversation["inbox_id"] == 11:
            assert skeleton(conversation["additional_attributes"]) == widget
        else:
            assert conversation["additional_attributes"] == {}
        assert all(m["additional_attributes"] == {} for m in conversation["messages"])
    assert all(b["additional_attributes"] == {} for b in bodies(account) if "conversation" in b)


def test_bodies_are_compact_json_in_time_order_with_the_times_chatwoot_posts_them(account) -> None:
    times = [d.at for d in account.deliveries]
    assert times == sorted(times)
    assert account.start <= times[0] and times[-1] < account.end
    for delivery, body in zip(account.deliveries, bodies(account), strict=True):
        assert delivery.body == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        assert delivery.event == body["event"]
        if body["event"] == "message_created":
            assert body["created_at"] == f"{delivery.at:%Y-%m-%dT%H:%M:%S}.{delivery.at.microsecond // 1000:03d}Z"
        if body["event"] == "conversation_status_changed":
            assert body["updated_at"] == delivery.at.timestamp()


def test_statuses_follow_on_from_each_other_and_the_backfill_shows_the_last(account) -> None:
    status: dict[int, str] = {}
    reopening: dict[int, str] = {}
    for body in bodies(account):
        conversation = body.get("conversation", body)
        if body["event"] == "conversation_created":
            status[body["id"]] = body["status"]
        elif body["event"] == "conversation_status_changed":
            change = body["changed_attributes"][0]["status"]
            assert change["previous_value"] == status[body["id"]], body["id"]
            status[body["id"]] = change["current_value"]
        elif body["event"] == "message_created" and conversation["status"] != status[conversation["id"]]:
            # A customer writing to a resolved or snoozed conversation: the body shows it reopened, and the
            # change follows (Chatwoot reopens before it dispatches the message).
            reopening[conversation["id"]] = conversation["status"]
            continue
        if body["event"] == "conversation_status_changed" and body["id"] in reopening:
            assert reopening.pop(body["id"]) == body["status"]
        assert conversation["status"] == status[conversation["id"]], body["event"]
    assert not reopening
    assert {r["conversation"]["id"]: r["conversation"]["status"] for r in account.records} == status


def test_message_ids_rise_with_time_over_the_whole_account(account) -> None:
    messages = sorted((m["created_at"], m["id"]) for r in account.records for m in r["messages"])
    assert [i for _, i in messages] == sorted(i for _, i in messages)
    assert len({i for _, i in messages}) == len(messages)


def test_signed_as_chatwoot_signs_the_sample() -> None:
    # signatures.txt: line, X-Chatwoot-Timestamp, X-Chatwoot-Signature with webhook_secret sample-secret.
    rows = [line.split() for line in (CHATWOOT / "signatures.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    for (line, stamp, signature), body in zip(rows, webhook_bodies(), strict=True):
        headers = synth_chatwoot.signed_headers(body, secret="sample-secret", timestamp=int(stamp), delivery="d")
        assert headers["X-Chatwoot-Signature"] == signature, line
        assert headers["X-Chatwoot-Timestamp"] == stamp


# --- the two readings meet -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_delivery_maps_to_exactly_the_generators_events(seed: int) -> None:
    account = synth_chatwoot.generate(contacts=200, days=3, seed=seed)
    mapped, ignored = [], Counter()
    for delivery in account.deliveries:
        outcome = chatwoot.map_webhook(delivery.body, source="webhook:chatwoot")
        assert outcome.rejected is None, (outcome.rejected, outcome.message, delivery.body[:300])
        mapped += outcome.events
        ignored[outcome.ignored] += outcome.ignored is not None
    assert len(mapped) == len(by_id(mapped))
    assert by_id(mapped) == by_id(account.events)
    assert mapped == [e for e in mapped if e in account.events]  # field for field, formats included
    # Every ignored row of SOURCES.md 1.2-1.4 that Chatwoot sends is in the account.
    assert {"template", "private_note", "message_updated", "conversation_created", "conversation_updated",
            "status_other"} <= {reason for reason, n in ignored.items() if n}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_backfill_record_maps_to_exactly_the_generators_message_events(seed: int) -> None:
    account = synth_chatwoot.generate(contacts=200, days=3, seed=seed)
    mapped = []
    for record in account.records:
        for outcome in chatwoot.map_backfill(record["conversation"], record["messages"], source="b", line=None):
            assert outcome.rejected is None, (outcome.rejected, outcome.message)
            mapped += outcome.events
    assert by_id(mapped) == by_id(account.backfill_events)
    assert mapped == [e for e in mapped if e in account.events]


def test_the_account_has_every_event_and_every_turn_sources_md_describes(account) -> None:
    types = Counter(e["type"] for e in account.events)
    assert set(types) == {*MESSAGE_TYPES, "handoff", "conversation_close", "conversation_reopen"}
    assert {e["ai_agent"] for e in account.events if e["type"] == "ai_message"} == {"Ava", "Parcel Bot"}
    assert {e["channel"] for e in account.events if "channel" in e} == {"chat", "email", "whatsapp"}
    changes = Counter(tuple(b["changed_attributes"][0]["status"].values()) for b in bodies(account)
                      if b["event"] == "conversation_status_changed")
    assert {("pending", "open"), ("pending", "resolved"), ("open", "resolved"), ("resolved", "open"),
            ("resolved", "pending"), ("open", "snoozed"), ("snoozed", "open")} <= set(changes)
    # Content as stored (REST) and as Chatwoot's webhooks normalise it: hard line breaks, trailing breaks.
    raw = [m["content"] for r in account.records for m in r["messages"]]
    assert any("\\\n" in text for text in raw) and any(text.endswith("\n") for text in raw)
    posted = {b["id"]: b["content"] for b in bodies(account) if b["event"] == "message_created"}
    assert not any("\\\n" in text or text.endswith("\n") for text in posted.values())


def test_the_expected_events_are_valid_plain_events(tmp_path: Path, account) -> None:
    """What the whole-flow test will compare against: the events ingested as plain SPEC 2 events."""
    store = Convoscope(tmp_path)
    path = synth_chatwoot.write(account, tmp_path / "cw")["expected-events"]
    result = store("ingest", str(path))
    assert result.exit_code == 0, result.stderr
    assert f"accepted {len(account.events):,}, duplicate 0, rejected 0" in result.stdout


# --- the demo --------------------------------------------------------------------------------------


def test_demo_source_chatwoot_posts_signed_webhooks_whose_events_reach_the_store(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--source", "chatwoot", "--out", str(out), "--customers", "40",
                                      "--days", "2", "--no-serve"])
    assert result.exit_code == 0, (result.output, result.stderr)
    expected = [json.loads(line) for line in (out / "chatwoot" / "expected-events.jsonl").read_text().splitlines()]
    deliveries = (out / "chatwoot" / "webhooks.jsonl").read_text().count("\n")
    # Every delivery went over HTTP, signed, to the demo's own server, and its events are in the store.
    stored = stored_events(out / "chatwoot.duckdb", brand="demo")
    assert by_id(stored) == by_id(expected)
    assert f"posted {deliveries:,} signed webhook deliveries: events accepted {len(expected):,}" in result.stdout
    assert "rejected 0" in result.stdout
    assert not list((out / "chatwoot.duckdb.spool").glob("*.delivery"))
    for name in REPORTS:
        assert (out / f"{name}.csv").is_file(), name
    assert "AI sessions" in result.stdout
    # The configuration it wrote reads the store as its server did: the command line derives nothing anew.
    config = (out / "chatwoot.toml").read_text()
    assert 'ai_channels = ["chat", "whatsapp"]' in config and "webhook_secret" in config
    report = CliRunner().invoke(cli, ["--db", str(out / "chatwoot.duckdb"), "--config", str(out / "chatwoot.toml"),
                                      "report", "sessions-summary"])
    assert report.exit_code == 0, report.stderr
