"""A generated Chatwoot account (issue 23 point 7): the webhook deliveries Chatwoot would post, the same
account as REST backfill records, and the SPEC 2 events that SOURCES.md 1 says they map to.

The account ("Acme Outdoor") has three inboxes: a web widget and a WhatsApp number, each answered first by
a bot while the conversation is `pending` (the widget by the Captain assistant "Ava", WhatsApp by the agent
bot "Parcel Bot"), and a support email address that only the team reads (its conversations start `open`).
Contacts write about synth.py's topics, in its words and daily rhythm. A bot answers one to three turns,
then resolves the conversation (`pending → resolved`), hands it off (`pending → open`: a public goodbye,
Captain also leaves a private note with the reason) or is left without an answer (the conversation stays
`pending`). The team (`user`s) picks handed-off and email conversations up, sometimes after a private
note, replies, sometimes snoozes until the customer's next reply (`open → snoozed → open`), and resolves
(`open → resolved`). The widget greets each new conversation and asks for a rating after a resolve
(templates); customers read some replies (`message_updated`); some come back after a resolve and reopen
the conversation (`resolved → pending` where a bot answers, `resolved → open` by email), and some start a
second conversation days later. Everything after the last day is cut off, as a capture ending then would be.

Every body and record is built from the shapes of `../shared/samples/sources/chatwoot/` (the sample's keys,
in its order; only values change), except the agent bot's sender, which the samples do not show: it is
Chatwoot's own `AgentBot#webhook_data` (`id`, `name`, `type`) and `push_event_data` (with `avatar_url`)
[cw:app/models/agent_bot.rb], keys the sample's Captain sender has too. Where Chatwoot adds keys the samples
do not have (an email conversation's `additional_attributes`), they are left out. Message content is
stored raw (the dashboard editor's `\\` + line break, an email's trailing line break); webhook bodies carry
it normalised as Chatwoot's `WebhookContentNormalizer` does, REST records raw.

The expected events are computed here from the generator's own model, applying SOURCES.md 1.2-1.3's rules
to it; `convoscope.sources.chatwoot` is not used, so the tests compare two independent readings. The same
arguments always give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The customers' words and the daily and weekly rhythm are synth.py's, so both brands read alike.
from convoscope.synth import _HOUR_WEIGHTS, _TOPICS, _WEEKDAY_WEIGHTS, _Topic

__all__ = [
    "ACCOUNT_ID",
    "AGENTS",
    "AI_CHANNELS",
    "INBOXES",
    "WEBHOOK_PATH",
    "ChatwootAccount",
    "Delivery",
    "backfill_records",
    "generate",
    "post_deliveries",
    "signed_headers",
    "write",
]

ACCOUNT_ID = 3  # the samples' account, and the replay server's default
ACCOUNT_NAME = "Acme Outdoor"
WEBHOOK_PATH = "/api/v1/sources/chatwoot/webhook"
FIRST_CONVERSATION = 301  # display ids, per account, in order of creation
FIRST_CONTACT = 1301
FIRST_MESSAGE = 20001
FIRST_CONTACT_INBOX = 9001

# --- who is in the account --------------------------------------------------------------------


@dataclass(frozen=True)
class Bot:
    """Who answers first while a conversation is `pending`: a Captain assistant or an agent bot."""

    id: int
    name: str
    type: str  # `captain_assistant` or `agent_bot`, as `sender.type` says it (SOURCES.md 1.2)
    avatar_url: str
    description: str = ""
    created_at: str = ""

    @property
    def sender_type(self) -> str:
        return "Captain::Assistant" if self.type == "captain_assistant" else "AgentBot"


@dataclass(frozen=True)
class Agent:
    """A team member: a Chatwoot `user`."""

    id: int
    name: str
    email: str


@dataclass(frozen=True)
class Inbox:
    id: int
    name: str
    channel_type: str  # Chatwoot's `Channel::…`
    channel: str  # SPEC 2.2's channel for it (SOURCES.md 1.5)
    bot: Bot | None  # None: the team answers from the start and conversations start `open`
    greeting: bool  # a greeting template on each new conversation
    csat: bool  # a rating template after each resolve


AVA = Bot(1, "Ava", "captain_assistant", "https://chat.acme.example/assets/images/dashboard/captain/logo.svg",
          "Answers order and shipping questions", "2025-11-03T09:12:44.318Z")
PARCEL_BOT = Bot(4, "Parcel Bot", "agent_bot", "")
INBOXES = (
    Inbox(11, "Website", "Channel::WebWidget", "chat", AVA, greeting=True, csat=True),
    Inbox(12, "Support email", "Channel::Email", "email", None, greeting=False, csat=False),
    Inbox(13, "WhatsApp", "Channel::Whatsapp", "whatsapp", PARCEL_BOT, greeting=False, csat=False),
)
_INBOX_WEIGHTS = (0.6, 0.15, 0.25)
AI_CHANNELS = ("chat", "whatsapp")  # the bot inboxes' channels: `ai_channels` for this brand (SOURCES.md 1.6)
AGENTS = (
    Agent(7, "Sam Rivera", "sam@acme.example"),
    Agent(8, "Priya Nair", "priya@acme.example"),
    Agent(9, "Lucas Moreau", "lucas@acme.example"),
    Agent(10, "Aisha Bello", "aisha@acme.example"),
)

# --- what they say -----------------------------------------------------------------------------

GREETING = "Hi there! We typically reply in a few minutes."
CSAT = "Please rate the conversation"
_FIRST_NAMES = ("Maya", "Jonas", "Lena", "Omar", "Sofia", "Noah", "Emily", "Mateo", "Hana", "Lucas", "Amara",
                "Felix", "Zoe", "Ravi", "Clara", "Diego", "Ingrid", "Kofi", "Yuki", "Elena")
_LAST_NAMES = ("Okafor", "Lindqvist", "Schmidt", "Haddad", "Rossi", "Nguyen", "Walsh", "Garcia", "Tanaka",
               "Dubois", "Mensah", "Novak", "Kowalski", "Silva", "Andersen", "Costa", "Fischer", "Byrne")
_CITIES = ("Berlin", "Hamburg", "Munich", "Vienna", "Zurich", "Amsterdam", "Lisbon", "Dublin")
_BROWSERS = (("Firefox", "139.0", "Linux"), ("Chrome", "137.0.0.0", "Windows"), ("Safari", "18.4", "macOS"),
             ("Chrome", "137.0.0.0", "Android"), ("Safari", "18.4", "iOS"))
_REFERERS = ("https://shop.acme.example/orders", "https://shop.acme.example/returns", "https://shop.acme.example/")
_ASK_HUMAN = ("I'd like to talk to a person", "Can I talk to a real person please?", "human please", "agent")
_HANDOVER = ("I'm connecting you with a member of our team.", "Let me get a teammate to take a look.",
             "I've passed this to our support team; someone will reply shortly.")
_HANDOFF_NOTES = ("Customer asks for a refund for a damaged item", "Customer asked to speak to a person",
                  "Order needs a carrier investigation", "Return outside the 30-day window")
_BOT_THANKS = ("You're welcome! Anything else I can help with?", "Happy to help. Have a great day!")
_CUSTOMER_THANKS = ("ok thanks", "Great, thank you!", "Perfect, thanks", "thx")
_CUSTOMER_MID = ("Sure, it's the one from last week", "How long will that take?", "Yes that's right", "ok")
_TEAM_ACK = ("Thanks for your patience, I'm looking into this now.", "Thanks for the details, give me a moment.",
             "Could you confirm the email address on your order?")
_TEAM_NOTES = ("Checked with the warehouse, replacement approved", "Carrier claim opened",
               "Refund approved by finance", "Second contact about this order")
_AGAIN = ("Hi again, I still have the same problem", "Sorry, one more question about my order",
          "Me again, that didn't work", "The replacement arrived but it's the wrong colour")

# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    id: int
    name: str
    email: str
    phone_number: str
    identifier: str | None
    city: str | None


@dataclass
class ContactInbox:
    id: int
    contact: Contact
    inbox: Inbox
    source_id: str
    pubsub_token: str
    created_ms: int


@dataclass
class Message:
    """One row of Chatwoot's messages: `kind` incoming, outgoing, activity or template; `content` raw, as
    stored; times in epoch milliseconds."""

    seq: int
    conversation: Conversation
    at: int
    kind: str
    content: str
    private: bool = False
    sender: Contact | Agent | Bot | None = None
    content_type: str = "text"
    read_at: int | None = None  # when the customer read it (a `message_updated`)
    status_after: str | None = None  # the status it leaves the conversation in (a customer writing again)
    id: int = 0  # given in order of creation, over the whole account


@dataclass
class StatusChange:
    """A change of the conversation's status, at `at` epoch microseconds (Chatwoot's `updated_at`)."""

    seq: int
    conversation: Conversation
    at: int
    previous: str
    current: str


@dataclass
class Conversation:
    contact_inbox: ContactInbox
    created_ms: int
    uuid: str
    additional_attributes: dict[str, Any]
    initial_status: str
    actions: list[Message | StatusChange] = field(default_factory=list)
    display_id: int = 0

    @property
    def inbox(self) -> Inbox:
        return self.contact_inbox.inbox

    @property
    def contact(self) -> Contact:
        return self.contact_inbox.contact


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: the body's bytes as Chatwoot posts them, and when it posts them."""

    at: datetime
    event: str
    body: bytes


@dataclass(frozen=True)
class ChatwootAccount:
    """A generated account over [start, end): `deliveries` in the order Chatwoot posts them, `records` the
    REST backfill records a pull at `end` would read (one per conversation, by display id), `events` the
    SPEC 2 events the deliveries map to (SOURCES.md 1.2-1.4), ordered by (occurred_at, event_id)."""

    start: datetime
    end: datetime
    deliveries: list[Delivery]
    records: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def backfill_events(self) -> list[dict[str, Any]]:
        """The events the backfill records map to: the message events only (SOURCES.md 1.4)."""
        return [e for e in self.events if e["type"] in ("customer_message", "ai_message", "agent_message")]


# --- generating --------------------------------------------------------------------------------


def generate(*, contacts: int = 60, days: int = 2, seed: int = 1, start: date = date(2026, 5, 1),
             account_id: int = ACCOUNT_ID) -> ChatwootAccount:
    """A Chatwoot account of `contacts` contacts writing over `days` days from `start` (UTC): its webhook
    deliveries, REST backfill records and expected events. Deterministic: the same arguments give the same
    bytes."""
    if contacts < 1 or days < 1:
        raise ValueError("contacts and days must be at least 1")
    rng = random.Random(seed)
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end = begin + timedelta(days=days)
    end_ms = _ms(end)
    model = _Model(rng, end_ms)
    plans = []
    for _ in range(contacts):
        inbox = rng.choices(INBOXES, weights=_INBOX_WEIGHTS)[0]
        first = _ms(begin) + _rhythmic_ms(rng, days)
        starts = [first]
        if rng.random() < 0.12:  # a second conversation some days later
            starts.append(first + rng.randint(1, 5) * 86_400_000 + rng.randint(-6, 6) * 3_600_000)
        plans.append((first, inbox.id, starts))
    # Contact ids rise in the order contacts first write, as Chatwoot gives them.
    for number, (_, inbox_id, starts) in enumerate(sorted(plans)):
        contact = _contact(rng, number)
        inbox = next(i for i in INBOXES if i.id == inbox_id)
        for at in starts:
            if at < end_ms:
                model.play(contact, inbox, at)
    conversations = model.finish()
    deliveries = _render_webhooks(conversations, account_id)
    records = [_backfill_record(c, account_id, end_ms) for c in conversations]
    events = sorted(_expected_events(conversations, account_id), key=lambda e: (_instant(e["occurred_at"]),
                                                                                 e["event_id"]))
    return ChatwootAccount(start=begin, end=end, deliveries=deliveries, records=records, events=events)


def backfill_records(*, contacts: int = 60, days: int = 2, seed: int = 1, start: date = date(2026, 5, 1),
                     account_id: int = ACCOUNT_ID) -> list[dict[str, Any]]:
    """The generated account as REST backfill records (SOURCES.md 1.1), the dataset the replay server of
    `pull chatwoot`'s tests serves: `{"conversation": <list item>, "messages": [<message items>]}` per
    conversation, in display-id order, as a pull at the end of the last day would read them."""
    return generate(contacts=contacts, days=days, seed=seed, start=start, account_id=account_id).records


class _Model:
    """The conversations being generated. Times are epoch milliseconds (status changes: microseconds)."""

    def __init__(self, rng: random.Random, end_ms: int) -> None:
        self.rng = rng
        self.end_ms = end_ms
        self.seq = 0
        self.conversations: list[Conversation] = []
        self.contact_inboxes: dict[tuple[int, int], ContactInbox] = {}

    # A conversation, from its first message to where the customer stops writing (SOURCES.md 1.3's statuses).
    def play(self, contact: Contact, inbox: Inbox, at: int) -> None:
        rng = self.rng
        key = (contact.id, inbox.id)
        if key not in self.contact_inboxes:
            self.contact_inboxes[key] = ContactInbox(0, contact, inbox, _source_id(rng, contact, inbox),
                                                     _token(rng), at)
        conversation = Conversation(self.contact_inboxes[key], at, str(uuid.UUID(int=rng.getrandbits(128),
                                                                                 version=4)),
                                    _additional_attributes(rng, inbox, at),
                                    "pending" if inbox.bot else "open")
        self.conversations.append(conversation)
        topic = rng.choices(_TOPICS, weights=[t.weight for t in _TOPICS])[0]
        if inbox.greeting:
            self.message(conversation, at, "template", GREETING)
            at += rng.randint(2_000, 20_000)
        status = conversation.initial_status
        opener = rng.choice(topic.openers)
        self.message(conversation, at, "incoming", self.customer_text(conversation, opener),
                     sender=contact)
        for _ in range(3):  # the first episode, and up to two comebacks
            if status == "pending":
                at, status = self.bot_episode(conversation, topic, at)
            if status == "open":
                at, status = self.team_episode(conversation, topic, at)
            if status != "resolved" or rng.random() >= 0.2:
                return
            at += rng.randint(3_600_000, 20 * 3_600_000)  # the customer writes again
            status = "pending" if inbox.bot else "open"
            written = self.message(conversation, at, "incoming", self.customer_text(conversation, rng.choice(_AGAIN)),
                                   sender=contact)
            written.status_after = status
            changed = at * 1000 + rng.randint(3_000, 40_000)
            self.change(conversation, changed, "resolved", status)
            self.activity(conversation, changed // 1000,
                          "System reopened the conversation due to a new incoming message.")

    def bot_episode(self, conversation: Conversation, topic: _Topic, at: int) -> tuple[int, str]:
        """The bot answers one to three turns, then resolves, hands off or is left without an answer."""
        rng, bot = self.rng, conversation.inbox.bot
        assert bot is not None
        contact = conversation.contact
        roll = rng.random()
        outcome = "abandoned" if roll < 0.08 else "handoff" if roll < 0.08 + topic.handoff_share else "resolved"
        turns = rng.choice((1, 1, 2, 2, 3))
        answers = rng.sample(topic.ai_replies, len(topic.ai_replies))  # no answer twice in a row
        for turn in range(turns):
            at += rng.randint(3_000, 12_000)
            self.reply(conversation, at, answers[turn % len(answers)], bot)
            if turn == turns - 1 and outcome == "abandoned":
                return at, "pending"
            at += rng.randint(20_000, 300_000)
            last = turn == turns - 1
            text = rng.choice(_ASK_HUMAN) if last and outcome == "handoff" and rng.random() < 0.6 else \
                rng.choice(topic.follow_ups)
            self.message(conversation, at, "incoming", text, sender=contact)
        at += rng.randint(3_000, 10_000)
        if outcome == "handoff":
            self.reply(conversation, at, rng.choice(_HANDOVER), bot)
            if bot.type == "captain_assistant":  # Captain puts its reason in a private note
                self.message(conversation, at + rng.randint(100, 400), "outgoing", rng.choice(_HANDOFF_NOTES),
                             private=True, sender=bot)
            changed = at * 1000 + rng.randint(500_000, 1_500_000)
            self.change(conversation, changed, "pending", "open")
            self.activity(conversation, changed // 1000, "Conversation was handed off to the team")
            return changed // 1000 + rng.randint(120_000, 1_500_000), "open"
        self.reply(conversation, at, answers[turns % len(answers)], bot)
        if rng.random() < 0.5:
            at += rng.randint(20_000, 120_000)
            self.message(conversation, at, "incoming", rng.choice(_CUSTOMER_THANKS), sender=contact)
            at += rng.randint(3_000, 8_000)
            self.reply(conversation, at, rng.choice(_BOT_THANKS), bot)
        return self.resolve(conversation, at + rng.randint(300_000, 900_000), "pending", None), "resolved"

    def team_episode(self, conversation: Conversation, topic: _Topic, at: int) -> tuple[int, str]:
        """A team member replies one to three times, the customer in between, and resolves."""
        rng, contact = self.rng, conversation.contact
        agent = rng.choice(AGENTS)
        email = conversation.inbox.channel == "email"
        if email:
            at += rng.randint(1_200_000, 6 * 3_600_000)
        if rng.random() < 0.25:
            self.message(conversation, at - rng.randint(30_000, 120_000), "outgoing", rng.choice(_TEAM_NOTES),
                         private=True, sender=agent)
        replies = rng.choice((1, 2, 2, 3))
        for n in range(replies):
            last = n == replies - 1
            text = rng.choice(topic.resolutions) if last else rng.choice(_TEAM_ACK)
            if rng.random() < 0.4:  # written in the dashboard's editor: a hard line break
                text = f"Hi {contact.name.split()[0]},\\\n{text}"
            self.reply(conversation, at, text, agent)
            if last and rng.random() < 0.5:
                break
            status_after = None
            if not last and rng.random() < 0.15:  # snoozed until the customer's next reply
                snoozed = at * 1000 + rng.randint(30_000_000, 120_000_000)
                self.change(conversation, snoozed, "open", "snoozed")
                self.activity(conversation, snoozed // 1000, f"Conversation was snoozed by {agent.name}")
                at = snoozed // 1000
                status_after = "open"
            at += rng.randint(1_800_000, 8 * 3_600_000) if email else rng.randint(30_000, 600_000)
            text = rng.choice(_CUSTOMER_THANKS if last else _CUSTOMER_MID)
            written = self.message(conversation, at, "incoming", self.customer_text(conversation, text),
                                   sender=contact)
            if status_after:
                written.status_after = status_after
                self.change(conversation, at * 1000 + rng.randint(3_000, 40_000), "snoozed", "open")
            at += rng.randint(60_000, 900_000) if not email else rng.randint(1_800_000, 4 * 3_600_000)
        return self.resolve(conversation, at + rng.randint(60_000, 1_200_000), "open", agent), "resolved"

    def resolve(self, conversation: Conversation, at: int, previous: str, agent: Agent | None) -> int:
        changed = at * 1000 + self.rng.randint(0, 999_999)
        self.change(conversation, changed, previous, "resolved")
        by = f" by {agent.name}" if agent else ""
        self.activity(conversation, changed // 1000, f"Conversation was marked resolved{by}")
        if conversation.inbox.csat:
            self.message(conversation, changed // 1000 + self.rng.randint(300, 1_500), "template", CSAT,
                         content_type="input_csat")
        return changed // 1000

    def reply(self, conversation: Conversation, at: int, text: str, sender: Agent | Bot) -> Message:
        """A public reply; on the widget and WhatsApp the customer often reads it (`message_updated`)."""
        written = self.message(conversation, at, "outgoing", text, sender=sender)
        if conversation.inbox.channel != "email" and self.rng.random() < 0.5:
            written.read_at = at + self.rng.randint(2_000, 20_000)
        return written

    def customer_text(self, conversation: Conversation, text: str) -> str:
        if conversation.inbox.channel != "email":
            return text
        # An email's body as Chatwoot stores it: a greeting, the text, a signature, a trailing line break.
        return f"Hello,\n\n{text}\n\nThanks,\n{conversation.contact.name.split()[0]}\n"

    def message(self, conversation: Conversation, at: int, kind: str, content: str, *, private: bool = False,
                sender: Contact | Agent | Bot | None = None, content_type: str = "text") -> Message:
        self.seq += 1
        written = Message(self.seq, conversation, at, kind, content, private, sender, content_type)
        conversation.actions.append(written)
        return written

    def activity(self, conversation: Conversation, at: int, content: str) -> None:
        self.message(conversation, at, "activity", content)

    def change(self, conversation: Conversation, at: int, previous: str, current: str) -> None:
        self.seq += 1
        conversation.actions.append(StatusChange(self.seq, conversation, at, previous, current))

    def finish(self) -> list[Conversation]:
        """Cut everything at the end of the window, then give ids in order of creation, as Chatwoot does."""
        kept = []
        for conversation in self.conversations:
            actions = sorted(conversation.actions, key=_action_key)
            actions = [a for a in actions if _action_key(a)[0] < self.end_ms * 1000]
            # A customer's message and the status change it causes (made next) are one step: keep both or
            # neither, and nothing made after them.
            kept_seqs = {a.seq for a in actions}
            for action in actions:
                if isinstance(action, Message) and action.status_after and action.seq + 1 not in kept_seqs:
                    actions = [a for a in actions if a.seq < action.seq]
                    break
            for action in actions:
                if isinstance(action, Message) and action.read_at is not None:
                    following = [_action_key(a)[0] for a in actions if _action_key(a) > _action_key(action)]
                    if action.read_at >= self.end_ms or (following and following[0] <= action.read_at * 1000):
                        action.read_at = None  # read after the next step: its `message_updated` is left out
            conversation.actions = actions
            if actions:
                kept.append(conversation)
        kept.sort(key=lambda c: (c.created_ms, _action_key(c.actions[0])))
        for number, conversation in enumerate(kept):
            conversation.display_id = FIRST_CONVERSATION + number
        contact_inboxes = sorted({id(c.contact_inbox): c.contact_inbox for c in kept}.values(),
                                 key=lambda ci: (ci.created_ms, ci.contact.id, ci.inbox.id))
        next_id = FIRST_CONTACT_INBOX
        for contact_inbox in contact_inboxes:
            contact_inbox.id = next_id
            next_id += self.rng.randint(1, 40)  # other accounts' rows in between
        messages = sorted((a for c in kept for a in c.actions if isinstance(a, Message)), key=_action_key)
        next_id = FIRST_MESSAGE
        for written in messages:
            written.id = next_id
            next_id += self.rng.choice((1, 1, 1, 2, 3))
        return kept


def _action_key(action: Message | StatusChange) -> tuple[int, int]:
    """Time in microseconds, then order of creation."""
    return (action.at * 1000 if isinstance(action, Message) else action.at), action.seq


def _contact(rng: random.Random, number: int) -> Contact:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    return Contact(
        id=FIRST_CONTACT + number,
        name=f"{first} {last}",
        email=f"{first.lower()}.{last.lower()}{number}@mail.example",
        phone_number=f"+4915{rng.randint(10_000_000, 99_999_999)}",
        identifier=f"crm-{rng.randint(1000, 9999)}" if rng.random() < 0.3 else None,
        city=rng.choice(_CITIES) if rng.random() < 0.5 else None,
    )


def _rhythmic_ms(rng: random.Random, days: int) -> int:
    """An offset into the window, busier in the afternoon (UTC) and on weekdays, as synth.py's brand."""
    day = rng.choices(range(days), weights=[float(_WEEKDAY_WEIGHTS[d % 7]) for d in range(days)])[0]
    hour = rng.choices(range(24), weights=[float(w) for w in _HOUR_WEIGHTS])[0]
    return ((day * 24 + hour) * 3600 + rng.randrange(3600)) * 1000 + rng.randrange(1000)


def _source_id(rng: random.Random, contact: Contact, inbox: Inbox) -> str:
    """A contact's id within an inbox: a browser's uuid, the email address, the WhatsApp number."""
    if inbox.channel == "email":
        return contact.email
    if inbox.channel == "whatsapp":
        return contact.phone_number.lstrip("+")
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _token(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode().rstrip("=")


def _additional_attributes(rng: random.Random, inbox: Inbox, at: int) -> dict[str, Any]:
    """The widget's browser details, as in the sample; other inboxes' keys are not in the samples: none."""
    if inbox.channel_type != "Channel::WebWidget":
        return {}
    browser, version, platform = rng.choice(_BROWSERS)
    started = datetime.fromtimestamp(at // 1000, UTC)
    return {
        "browser": {"device_name": "Unknown", "browser_name": browser, "platform_name": platform,
                    "browser_version": version, "platform_version": ""},
        "referer": rng.choice(_REFERERS),
        "initiated_at": {"timestamp": started.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")},
        "browser_language": rng.choice(("en", "en", "de")),
    }


# --- webhook bodies (the sample's shapes) ------------------------------------------------------


@dataclass
class _State:
    """What a conversation's bodies show at one moment."""

    status: str
    updated_us: int
    last_public: Message | None = None
    first_reply_ms: int | None = None


def _render_webhooks(conversations: list[Conversation], account_id: int) -> list[Delivery]:
    """Every delivery Chatwoot posts for these conversations, in time order: `conversation_created`,
    `message_created` for every message but activities, `message_updated` when a reply is read, and
    `conversation_status_changed` then `conversation_updated` for every status change."""
    steps: list[tuple[tuple[int, int, int], Any]] = []
    for conversation in conversations:
        steps.append(((conversation.created_ms * 1000, -1, 0), conversation))
        for action in conversation.actions:
            key = _action_key(action)
            steps.append(((key[0], key[1], 0), action))
            if isinstance(action, Message) and action.read_at is not None:
                steps.append(((action.read_at * 1000, action.seq, 1), ("read", action)))
    steps.sort(key=lambda step: step[0])
    states: dict[int, _State] = {}
    deliveries = []
    for (at_us, _, _), step in steps:
        if isinstance(step, Conversation):
            state = states[id(step)] = _State(step.initial_status, step.created_ms * 1000)
            body = {**_conversation_body(step, state, account_id, now_ms=at_us // 1000), "event": "conversation_created"}
            deliveries.append(_delivery(at_us, body))
            continue
        if isinstance(step, tuple):  # a reply read
            written = step[1]
            state = states[id(written.conversation)]
            deliveries.append(_delivery(at_us, _message_body(written, state, account_id, "message_updated",
                                                             now_ms=at_us // 1000)))
            continue
        state = states[id(step.conversation)]
        if isinstance(step, StatusChange):
            state.status = step.current
            state.updated_us = step.at
            body = _conversation_body(step.conversation, state, account_id, now_ms=step.at // 1000)
            changed = [{"status": {"previous_value": step.previous, "current_value": step.current}}]
            for event in ("conversation_status_changed", "conversation_updated"):
                deliveries.append(_delivery(at_us, {**body, "event": event, "changed_attributes": changed}))
            continue
        if step.kind == "activity":
            continue  # never in webhooks (SOURCES.md 1.2)
        if not step.private:
            state.last_public = step
            if step.kind == "outgoing" and isinstance(step.sender, Agent) and state.first_reply_ms is None:
                state.first_reply_ms = step.at
        if step.status_after:
            state.status = step.status_after
        state.updated_us = step.at * 1000
        deliveries.append(_delivery(at_us, _message_body(step, state, account_id, "message_created", now_ms=step.at)))
    return deliveries


def _delivery(at_us: int, body: dict[str, Any]) -> Delivery:
    return Delivery(at=datetime.fromtimestamp(0, UTC) + timedelta(microseconds=at_us), event=body["event"],
                    body=_json(body))


def _message_body(message: Message, state: _State, account_id: int, event: str, *, now_ms: int) -> dict[str, Any]:
    """A `message_created` / `message_updated` body (sample lines 2-6, 10-14, 17-21)."""
    conversation = message.conversation
    return {
        "account": {"id": account_id, "name": ACCOUNT_NAME},
        "additional_attributes": {},
        "content_attributes": {},
        "content_type": message.content_type,
        "content": _normalised_by_chatwoot(message.content),
        "conversation": _conversation_body(conversation, state, account_id, now_ms=now_ms),
        "created_at": _iso(message.at),
        "id": message.id,
        "inbox": {"id": conversation.inbox.id, "name": conversation.inbox.name},
        "message_type": message.kind,
        "private": message.private,
        "sender": _webhook_sender(message.sender, account_id),
        "source_id": None,
        "event": event,
    }


def _conversation_body(conversation: Conversation, state: _State, account_id: int, *,
                       now_ms: int) -> dict[str, Any]:
    """A conversation's `webhook_data` (sample line 1; inside every message body)."""
    contact_inbox = conversation.contact_inbox
    last = state.last_public
    activity = conversation.created_ms // 1000 if last is None else last.at // 1000
    return {
        "additional_attributes": conversation.additional_attributes,
        "can_reply": True,
        "channel": conversation.inbox.channel_type,
        "contact_inbox": {
            "id": contact_inbox.id,
            "contact_id": contact_inbox.contact.id,
            "inbox_id": contact_inbox.inbox.id,
            "source_id": contact_inbox.source_id,
            "created_at": _iso(contact_inbox.created_ms),
            "updated_at": _iso(contact_inbox.created_ms),
            "hmac_verified": False,
            "pubsub_token": contact_inbox.pubsub_token,
        },
        "id": conversation.display_id,
        "inbox_id": conversation.inbox.id,
        "messages": [] if last is None else [_push_message(last, account_id, now_ms=now_ms, webhook=True,
                                                           last_activity=activity)],
        "labels": [],
        "meta": {"sender": _contact_data(conversation.contact), "assignee": None, "assignee_type": None,
                 "team": None, "hmac_verified": False},
        "status": state.status,
        "custom_attributes": {},
        "snoozed_until": None,  # snoozed until the customer's next reply: no date
        "unread_count": 0,
        "first_reply_created_at": None if state.first_reply_ms is None else _iso(state.first_reply_ms),
        "priority": None,
        "waiting_since": conversation.created_ms // 1000,
        "agent_last_seen_at": 0,
        "contact_last_seen_at": activity,
        "last_activity_at": activity,
        "timestamp": activity,
        "created_at": conversation.created_ms // 1000,
        "updated_at": _epoch(state.updated_us),
    }


def _push_message(message: Message, account_id: int, *, now_ms: int, webhook: bool,
                  last_activity: int) -> dict[str, Any]:
    """A message's `push_event_data`: a conversation's last message, in webhook bodies and REST list items
    (webhooks normalise its content, the REST API does not)."""
    conversation = message.conversation
    read = message.read_at is not None and message.read_at <= now_ms
    content = _normalised_by_chatwoot(message.content) if webhook else message.content
    sender = message.sender
    return {
        "id": message.id,
        "content": content,
        "account_id": account_id,
        "inbox_id": conversation.inbox.id,
        "conversation_id": conversation.display_id,
        "message_type": _KINDS.index(message.kind),
        "created_at": message.at // 1000,
        "updated_at": _iso(message.read_at if read and message.read_at is not None else message.at),
        "private": message.private,
        "status": "read" if read else "sent",
        "source_id": None,
        "content_type": message.content_type,
        "content_attributes": {},
        "sender_type": _sender_type(sender),
        "sender_id": None if sender is None else sender.id,
        "external_source_ids": {},
        "additional_attributes": {},
        "processed_message_content": content,
        "sentiment": {},
        "conversation": {
            "assignee_id": None,
            "unread_count": 0,
            "last_activity_at": last_activity,
            "contact_inbox": {"source_id": conversation.contact_inbox.source_id},
        },
        "sender": _push_sender(sender),
    }


_KINDS = ("incoming", "outgoing", "activity", "template")  # the REST API's 0-3 [cw:app/models/message.rb]


def _contact_data(contact: Contact) -> dict[str, Any]:
    """A contact as `meta.sender` and a message's push sender show it."""
    return {
        "additional_attributes": {"city": contact.city} if contact.city else {},
        "custom_attributes": {},
        "email": contact.email,
        "id": contact.id,
        "identifier": contact.identifier,
        "name": contact.name,
        "phone_number": contact.phone_number,
        "thumbnail": "",
        "blocked": False,
        "type": "contact",
    }


def _webhook_sender(sender: Contact | Agent | Bot | None, account_id: int) -> dict[str, Any] | None:
    """A message body's top-level `sender` (its `webhook_data`)."""
    if sender is None:
        return None
    if isinstance(sender, Contact):
        return {**_contact_data(sender), "avatar": "", "account": {"id": account_id, "name": ACCOUNT_NAME}}
    if isinstance(sender, Agent):
        return {"id": sender.id, "name": sender.name, "email": sender.email, "type": "user"}
    if sender.type == "agent_bot":
        return {"id": sender.id, "name": sender.name, "type": "agent_bot"}
    return _captain(sender)


def _push_sender(sender: Contact | Agent | Bot | None) -> dict[str, Any] | None:
    """A message's `sender` in push data and in the REST API."""
    if sender is None:
        return None
    if isinstance(sender, Contact):
        return _contact_data(sender)
    if isinstance(sender, Agent):
        return {"id": sender.id, "name": sender.name, "available_name": sender.name, "avatar_url": "",
                "type": "user", "availability_status": "online", "thumbnail": ""}
    if sender.type == "agent_bot":
        return {"id": sender.id, "name": sender.name, "avatar_url": sender.avatar_url, "type": "agent_bot"}
    return _captain(sender)


def _captain(bot: Bot) -> dict[str, Any]:
    return {"id": bot.id, "name": bot.name, "avatar_url": bot.avatar_url, "description": bot.description,
            "created_at": bot.created_at, "type": "captain_assistant"}


def _sender_type(sender: Contact | Agent | Bot | None) -> str | None:
    if sender is None:
        return None
    if isinstance(sender, Contact):
        return "Contact"
    if isinstance(sender, Agent):
        return "User"
    return sender.sender_type


# --- REST backfill records (backfill.jsonl's shapes) -------------------------------------------


def _backfill_record(conversation: Conversation, account_id: int, end_ms: int) -> dict[str, Any]:
    """The conversation as a pull at `end_ms` reads it: its list item and every message, oldest first."""
    status, updated_us = conversation.initial_status, conversation.created_ms * 1000
    last: Message | None = None
    first_reply: int | None = None
    messages = []
    for action in conversation.actions:
        if isinstance(action, StatusChange):
            status, updated_us = action.current, action.at
            continue
        messages.append(_rest_message(action, end_ms))
        if action.kind == "activity":
            continue
        updated_us = action.at * 1000
        if action.status_after:
            status = action.status_after
        if not action.private:
            last = action
            if action.kind == "outgoing" and isinstance(action.sender, Agent) and first_reply is None:
                first_reply = action.at
    activity = conversation.created_ms // 1000 if last is None else last.at // 1000
    item = {
        "additional_attributes": conversation.additional_attributes,
        "can_reply": True,
        "id": conversation.display_id,
        "inbox_id": conversation.inbox.id,
        "messages": [] if last is None else [_push_message(last, account_id, now_ms=end_ms, webhook=False,
                                                           last_activity=activity)],
        "labels": [],
        "meta": {"sender": _contact_data(conversation.contact), "channel": conversation.inbox.channel_type,
                 "hmac_verified": False},
        "status": status,
        "custom_attributes": {},
        "snoozed_until": None,
        "unread_count": 0,
        "first_reply_created_at": None if first_reply is None else _iso(first_reply),
        "priority": None,
        "waiting_since": conversation.created_ms // 1000,
        "agent_last_seen_at": 0,
        "contact_last_seen_at": activity,
        "last_activity_at": activity,
        "timestamp": activity,
        "created_at": conversation.created_ms // 1000,
        "updated_at": _epoch(updated_us),
        "account_id": account_id,
        "uuid": conversation.uuid,
        "muted": False,
    }
    return {"conversation": item, "messages": messages}


def _rest_message(message: Message, end_ms: int) -> dict[str, Any]:
    """A message as `GET …/conversations/{id}/messages` lists it: raw content, kind as 0-3, epoch seconds."""
    read = message.read_at is not None and message.read_at <= end_ms
    item: dict[str, Any] = {
        "id": message.id,
        "content": message.content,
        "inbox_id": message.conversation.inbox.id,
        "conversation_id": message.conversation.display_id,
        "message_type": _KINDS.index(message.kind),
        "content_type": message.content_type,
        "status": "read" if read else "sent",
        "content_attributes": {},
        "created_at": message.at // 1000,
        "private": message.private,
        "source_id": None,
    }
    if message.sender is not None:
        item["sender"] = _push_sender(message.sender)
    return item


# --- the events SOURCES.md says they map to ----------------------------------------------------


def _expected_events(conversations: list[Conversation], account_id: int) -> Iterable[dict[str, Any]]:
    """SOURCES.md 1.2 (messages) and 1.3 (status changes) applied to the model, not to the bodies."""
    for conversation in conversations:
        inbox, customer = conversation.inbox, str(conversation.contact.id)
        for action in conversation.actions:
            if isinstance(action, StatusChange):
                yield from _status_event(action, account_id, customer, inbox)
                continue
            # 1.2: activity and template ignored, then private notes, then the three event rows.
            if action.kind in ("activity", "template") or action.private:
                continue
            event: dict[str, Any] = {
                "event_id": f"chatwoot:{account_id}:message:{action.id}",
                "occurred_at": _seconds(action.at),  # truncated to whole seconds, UTC
                "customer_id": customer,
                "channel": inbox.channel,
            }
            sender = action.sender
            if action.kind == "incoming":
                event["type"] = "customer_message"
            elif isinstance(sender, Agent):
                event.update(type="agent_message", agent=sender.name)
            elif isinstance(sender, Bot):
                event.update(type="ai_message", ai_agent=sender.name)
            else:
                raise AssertionError(f"the model wrote message {action.id} with no event row")
            event["inbox"] = str(inbox.id)
            text = _text(action.content)
            if text:
                event["text"] = text
            yield event


def _status_event(change: StatusChange, account_id: int, customer: str, inbox: Inbox) -> Iterable[dict[str, Any]]:
    """SOURCES.md 1.3: `pending → open` a handoff, any → `resolved` a close, `resolved → open|pending` a
    reopen; other pairs none. Ids and times at the millisecond of `updated_at`."""
    if (change.previous, change.current) == ("pending", "open"):
        kind, type_ = "handoff", "handoff"
    elif change.current == "resolved":
        kind, type_ = "close", "conversation_close"
    elif change.previous == "resolved" and change.current in ("open", "pending"):
        kind, type_ = "reopen", "conversation_reopen"
    else:
        return
    milliseconds = change.at // 1000
    event: dict[str, Any] = {
        "event_id": f"chatwoot:{account_id}:conversation:{change.conversation.display_id}:{kind}:{milliseconds}",
        "type": type_,
        "occurred_at": _iso(milliseconds),
        "customer_id": customer,
    }
    if kind == "handoff":
        event["category"] = "bot_handoff"
    event["inbox"] = str(inbox.id)
    yield event


def _text(content: str) -> str:
    """SOURCES.md 1.2's `text`: each backslash followed by a line break becomes the line break, trailing
    line breaks are removed."""
    return re.sub(r"(?:\r?\n)+\Z", "", re.sub(r"\\(\r?\n)", r"\1", content))


def _normalised_by_chatwoot(content: str) -> str:
    """What Chatwoot's `Messages::WebhookContentNormalizer.normalize` makes of stored content in a webhook:
    hard line breaks (`\\` + break) become LF, trailing breaks go."""
    return re.sub(r"(\r?\n)+\Z", "", re.sub(r"\\\r?\n", "\n", content))


# --- writing and posting -----------------------------------------------------------------------


def write(account: ChatwootAccount, folder: Path) -> dict[str, Path]:
    """The account as files named like the samples': `webhooks.jsonl` (one body a line, in delivery order),
    `backfill.jsonl` (one record a line) and `expected-events.jsonl`. Both captures can be ingested with
    `convoscope ingest --source chatwoot`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.jsonl" for name in ("webhooks", "backfill", "expected-events")}
    paths["webhooks"].write_bytes(b"".join(d.body + b"\n" for d in account.deliveries))
    paths["backfill"].write_bytes(b"".join(_json(r) + b"\n" for r in account.records))
    paths["expected-events"].write_bytes(b"".join(_json(e) + b"\n" for e in account.events))
    return paths


def signed_headers(body: bytes, *, secret: str, timestamp: int, delivery: str) -> dict[str, str]:
    """Chatwoot's headers for a delivery (SOURCES.md 1.7): `X-Chatwoot-Timestamp`, `X-Chatwoot-Signature:
    sha256=` + hex HMAC-SHA256(secret, `{timestamp}.{body}`), and a delivery id."""
    stamp = str(timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Chatwoot-Timestamp": stamp,
            "X-Chatwoot-Signature": f"sha256={digest}", "X-Chatwoot-Delivery": delivery}


def post_deliveries(deliveries: list[Delivery], *, url: str, secret: str,
                    progress: Callable[[int, int], None] | None = None,
                    until: Callable[[], bool] | None = None) -> dict[str, int]:
    """Post every delivery to a convoscope webhook URL as Chatwoot would, one after the other over one
    connection, each signed at the current time and with a delivery id of its own; returns how many were
    `posted` and the answers' counts summed. Stops early once `until()` is true; raises RuntimeError on an
    answer other than 200."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"not a URL: {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    totals = {"posted": 0, "accepted": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
    try:
        for done, delivery in enumerate(deliveries, start=1):
            if until is not None and until():
                break
            headers = signed_headers(delivery.body, secret=secret, timestamp=int(time.time()),
                                     delivery=str(uuid.uuid4()))
            try:
                connection.request("POST", parts.path, body=delivery.body, headers=headers)
                answer = connection.getresponse()
            except (ConnectionError, http.client.HTTPException):  # a kept-alive connection closed: once more
                connection.close()
                connection.request("POST", parts.path, body=delivery.body, headers=headers)
                answer = connection.getresponse()
            text = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"delivery {done} ({delivery.event}) was answered {answer.status}: "
                                   f"{text.decode('utf-8', 'replace')[:200]}")
            totals["posted"] += 1
            for key, value in json.loads(text).items():
                totals[key] = totals.get(key, 0) + int(value)
            if progress is not None:
                progress(done, len(deliveries))
    finally:
        connection.close()
    return totals


# --- values ------------------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    """Compact JSON in UTF-8, as Rails' `to_json` writes it (and the samples are)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _ms(moment: datetime) -> int:
    return int((moment - datetime.fromtimestamp(0, UTC)) // timedelta(milliseconds=1))


def _iso(ms: int) -> str:
    """Rails' ISO 8601 with milliseconds: `2026-05-21T10:00:05.412Z`."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _seconds(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%dT%H:%M:%S}Z"


def _epoch(us: int) -> float:
    """Epoch seconds with their fraction, as Chatwoot's `updated_at`: the float whose shortest form is the
    decimal of `us`, so that it reads back to the microsecond."""
    return float(f"{us // 1_000_000}.{us % 1_000_000:06d}")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
