"""Synthetic event logs of a believable brand, for demos, tests and benchmarks (SPEC 2, 3.1-3.4).

`generate` builds, without a per-event Python loop, the log a support operation with an AI agent in
front of its team would export: customers write on chat, email, sms and voice; the AI agent answers,
resolves about 63% of its sessions, hands about 29% off (`handoff_manual`, `handoff_qc`,
`handoff_transfer_detector`) and leaves about 7% without a reply; team members pick up handoffs, take
calls and direct emails, send outbound messages, end contacts, close and now and then reopen
conversations. About 10% of resolved customers come back within a day, about 10% more after that but
within a week (to the AI or to the team), and a customer's next question mostly comes more than a week
after the last, so that about two in three resolutions last 7 days (issue 26). About a quarter of the
resolved sessions, a tenth of the handed-off ones and a seventh of the team's contacts get a customer's
`feedback` (docs/outcomes.md), mostly within minutes, a few more than a day late. Activity follows a
daily rhythm (busiest 13:00-23:00 UTC) and a weekly one (quieter weekends). The same arguments always
give the same events, and `write` renders them byte for byte the same as JSON Lines, CSV or Parquet,
optionally with malformed records mixed in at fixed positions (`bad_rate`).

Handoff causes: every handoff is planted with one of 13 root causes (`CAUSES`: a lost parcel, a refund
delay, a locked account, ...), drawn from the session's topic, and `GeneratedLog.causes` records which (the
ground truth, never written out), so that a report grouping handoffs by their words can be measured against
it. A cause cuts across categories and subcategories, which are drawn as before: a transfer detector handoff
mostly (80%) has the cause that belongs to its subcategory, else another of its topic's; a manual or quality
check one any of its topic's. Its words vary: each cause has several phrasings of the customer's last
message before the handoff (some in lower case, with a typo, a "please" or "??"; from a customer asking for
a person, sometimes with the request in the same message), of the handoff's `reason` and of the transfer
detector's `transfer_rationale`; about 10% of handoffs have generic words instead ("agent", "Customer asked
to speak to a person"). Causes and their words come from a random stream of their own, so every other column
is what it was before there were causes.

Volume: about 20 events per customer per 30 days (`EVENTS_PER_CUSTOMER_PER_30_DAYS`), so
2,000 customers x 30 days is about 40,000 events and 50,000 customers x 30 days about 1,000,000.
Customers are generated in blocks (`generate_blocks`), so memory stays bounded however many there are;
each block is sorted by (`occurred_at`, `event_id`), and a file written from several blocks is the
blocks one after the other. Events after the last day are cut off, as in a real export, so a few
sessions and contacts are still open at the end of the window.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from convoscope.store import BRAND_PATTERN

__all__ = [
    "AI_AGENTS",
    "CATEGORIES",
    "CHANNELS",
    "COLUMNS",
    "DEFAULT_BLOCK_CUSTOMERS",
    "EVENTS_PER_CUSTOMER_PER_30_DAYS",
    "GUIDES",
    "RATINGS",
    "ROUTES",
    "SCHEMA",
    "SUBCATEGORIES",
    "TEAM_MEMBERS",
    "TYPES",
    "BadRecord",
    "GeneratedLog",
    "generate",
    "generate_blocks",
    "write",
]

EVENTS_PER_CUSTOMER_PER_30_DAYS = 20
"""Average number of events one customer produces in 30 days (before bad records)."""

DEFAULT_BLOCK_CUSTOMERS = 50_000
"""Customers per block: about a million events, a few hundred megabytes at most while generating."""

COLUMNS: tuple[str, ...] = (
    "event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route",
    "ai_agent", "guides", "category", "subcategory", "reason", "transfer_rationale", "agent",
    "rating", "score",
)

_COLUMN_TYPES = {
    "occurred_at": pa.timestamp("us", tz="UTC"), "guides": pa.list_(pa.string()), "score": pa.int8(),
}
SCHEMA = pa.schema([pa.field(name, _COLUMN_TYPES.get(name, pa.string())) for name in COLUMNS])

_BRAND_PATTERN = re.compile(BRAND_PATTERN)
_US = 1_000_000  # microseconds per second
_MAX_EVENTS_PER_CUSTOMER = 1 << 20  # event ids pack (customer, n-th event) into 64 bits

# ---------------------------------------------------------------------------------------------
# Vocabularies. Codes are indices into these tuples; -1 means absent.

# Event types in the SPEC 2.4 type rank, so that sorting by code breaks ties at one instant.
TYPES = (
    "conversation_reopen", "customer_message", "ai_message", "handoff",
    "agent_message", "contact_end", "conversation_close", "feedback",
)
_REOPEN, _CUSTOMER, _AI, _HANDOFF, _AGENT, _END, _CLOSE, _FEEDBACK = range(len(TYPES))

CHANNELS = ("chat", "email", "sms", "voice")
_CHAT, _EMAIL, _SMS, _VOICE = range(len(CHANNELS))
ROUTES = ("ai", "team")
_ROUTE_AI, _ROUTE_TEAM = range(len(ROUTES))
AI_AGENTS = ("Care Agent", "Orders Agent", "Returns Agent")
GUIDES = (
    "Order Status", "Shipping Times", "Order Changes", "Delivery Issues", "Refunds",
    "Returns Policy", "Exchanges", "Password Reset", "Account Access", "Subscription Changes",
    "Billing Questions", "Promo Codes", "Product Care", "Sizing Guide",
)
TEAM_MEMBERS = (
    "sam", "maria", "alex", "priya", "jordan", "chen", "fatima", "lucas",
    "emma", "diego", "aisha", "noah", "olivia", "kenji", "zoe",
)
_TEAM_MEMBER_WEIGHTS = np.array([9, 8, 8, 7, 7, 7, 6, 6, 6, 5, 5, 5, 4, 4, 3], dtype=float)
CATEGORIES = ("handoff_manual", "handoff_qc", "handoff_transfer_detector")
_MANUAL, _QC, _TRANSFER = range(len(CATEGORIES))
RATINGS = ("positive", "negative")
_POSITIVE, _NEGATIVE = range(len(RATINGS))


@dataclass(frozen=True)
class _Topic:
    """What a customer writes about, and everything that goes with it."""

    weight: float
    ai_agent: str
    guides: tuple[str, ...]  # the first is the topic's main guide
    handoff_share: float  # share of AI sessions on this topic that end in a handoff
    transfers: tuple[str, ...]  # handoff_transfer_detector subcategories
    causes: tuple[tuple[str, float], ...]  # why its handoffs happen (`CAUSES`), with weights
    openers: tuple[str, ...]
    follow_ups: tuple[str, ...]
    ai_replies: tuple[str, ...]
    resolutions: tuple[str, ...]  # a team member's answer


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        0.24, "Orders Agent", ("Order Status", "Shipping Times", "Delivery Issues"), 0.18,
        ("order_delayed", "missing_package"),
        (("carrier_delay", 0.6), ("lost_parcel", 0.4)),
        ("Hi, where is my order?", "Where is my order #48213?",
         "My tracking hasn't updated in 3 days", "When will my package arrive?"),
        ("It still says \"label created\"", "Can you check again?", "ok thanks",
         "Order #51874\nPlaced on Monday"),
        ("Let me check that for you.", "Your order shipped yesterday and should arrive Friday.",
         "Tracking can take up to 48 hours to update after the label is created.",
         "I can see your parcel is with the carrier and on its way."),
        ("I've contacted the carrier; your parcel will be delivered tomorrow.",
         "I've sent a replacement by express shipping, no charge."),
    ),
    _Topic(
        0.10, "Orders Agent", ("Order Changes", "Order Status", "Shipping Times"), 0.35,
        ("order_cancellation", "address_change"),
        (("cancel_in_fulfilment", 0.5), ("address_change", 0.4), ("size_exchange", 0.1)),
        ("I need to change the shipping address on my order", "Can I cancel my order?",
         "I ordered the wrong size, can I change it before it ships?"),
        ("It hasn't shipped yet", "The new address is 42 Elm Street, Apt 3", "Please cancel it"),
        ("Orders can be changed until they are packed.",
         "I can help with that. Which order would you like to change?",
         "Your order is already being packed, so I can't edit it myself."),
        ("Done, I've cancelled the order and refunded the full amount.",
         "I've updated the address; the confirmation is in your inbox."),
    ),
    _Topic(
        0.12, "Orders Agent", ("Delivery Issues", "Order Status", "Refunds"), 0.38,
        ("damaged_item", "missing_package"),
        (("damaged_item", 0.5), ("lost_parcel", 0.35), ("carrier_delay", 0.15)),
        ("My package arrived damaged", "It says \"delivered\" but nothing arrived",
         "Part of my order is missing"),
        ("The box was crushed, I have photos", "I checked with my neighbours", "What now?"),
        ("I'm sorry about that. Could you send a photo of the damage?",
         "Sometimes parcels show as delivered a day early. Let's give it until tomorrow.",
         "Let me look up the delivery details."),
        ("I've arranged a replacement; it ships today.",
         "I've opened a claim with the carrier and refunded the missing item."),
    ),
    _Topic(
        0.13, "Returns Agent", ("Returns Policy", "Exchanges", "Refunds"), 0.30,
        ("return_outside_window", "exchange_request"),
        (("return_window", 0.4), ("size_exchange", 0.4), ("refund_delay", 0.2)),
        ("How do I return an item?", "Can I exchange these shoes for a bigger size?",
         "I want to return my jacket, it doesn't fit"),
        ("I bought it 40 days ago", "Yes, a size 9 please", "Do I need the original box?"),
        ("You can return unworn items within 30 days for a full refund.",
         "Here's your prepaid return label. Drop it at any post office.",
         "Exchanges are free; I'll start one for you now."),
        ("I've made an exception and approved the return.",
         "The exchange is set up; the new pair ships once we scan your return."),
    ),
    _Topic(
        0.10, "Returns Agent", ("Refunds", "Returns Policy"), 0.42,
        ("refund_request", "refund_status"),
        (("refund_delay", 0.65), ("lost_parcel", 0.35)),
        ("Where is my refund?", "I returned my order two weeks ago and haven't been refunded",
         "It did not arrive and I want a refund"),
        ("It was sent back on the 3rd", "That's too long", "Can you speed it up?"),
        ("Refunds are issued within 5 business days of the return being scanned.",
         "I can see your return was received on Tuesday.",
         "Let me check the status of your refund."),
        ("I've issued your refund; you'll see it in 3-5 business days.",
         "Your refund went out this morning, here's the reference: RF-20931."),
    ),
    _Topic(
        0.08, "Care Agent", ("Password Reset", "Account Access"), 0.22,
        ("account_locked",),
        (("account_locked", 1.0),),
        ("I can't log in to my account", "How do I reset my password?", "My account is locked"),
        ("I didn't get the email", "Still doesn't work", "Got it, thanks"),
        ("I've sent a password reset link to the email on your account.",
         "Please check your spam folder for an email from us.",
         "After 5 failed attempts accounts lock for 30 minutes."),
        ("I've unlocked your account and sent a fresh reset link.",),
    ),
    _Topic(
        0.08, "Care Agent", ("Subscription Changes", "Billing Questions"), 0.30,
        ("subscription_cancellation",),
        (("subscription_cancel", 0.75), ("double_charge", 0.25)),
        ("I want to pause my subscription", "How do I cancel my subscription?",
         "Can I skip next month's box?"),
        ("Just for two months", "I'd like to cancel, not pause", "Danke schön!"),
        ("You can pause or skip any box from your account page.",
         "I've skipped next month's box for you.",
         "Before you go, would a 20% discount on your next box help?"),
        ("Your subscription is cancelled; you won't be charged again.",
         "I've paused your subscription until August."),
    ),
    _Topic(
        0.07, "Care Agent", ("Billing Questions", "Promo Codes"), 0.35,
        ("billing_dispute", "promo_code_issue"),
        (("double_charge", 0.55), ("promo_code", 0.45)),
        ("I was charged twice for my order", "My promo code isn't working",
         "Why was I charged $12.99?"),
        ("The code is SPRING20", "Both charges are on my statement", "That makes sense"),
        ("A pending authorisation can look like a second charge; it drops off in 3 days.",
         "That code expired on April 30th, but here's one that works: WELCOME10.",
         "That charge is your monthly membership fee."),
        ("I've refunded the duplicate charge.",
         "I've applied the discount to your order manually."),
    ),
    _Topic(
        0.08, "Care Agent", ("Product Care", "Sizing Guide"), 0.20,
        ("product_defect",),
        (("product_defect", 0.75), ("size_exchange", 0.25)),
        ("How do I wash this sweater?", "What size should I order? I'm usually a medium",
         "The zipper broke after one week"),
        ("It's 100% wool", "I'm 5'8\", 150 lbs", "ok"),
        ("Hand wash it cold and lay it flat to dry.",
         "Our sizes run small, so we recommend going one size up.",
         "I'm sorry to hear that. Could you send me a photo?"),
        ("I've sent a replacement; no need to return the broken one.",),
    ),
)
_TOPIC_WEIGHTS = np.array([topic.weight for topic in _TOPICS])
_TOPIC_AI_AGENT = np.array([AI_AGENTS.index(topic.ai_agent) for topic in _TOPICS], dtype=np.int8)
_TOPIC_HANDOFF_SHARE = np.array([topic.handoff_share for topic in _TOPICS])

# Pools list a subcategory once per share: most manual handoffs are customers asking for a person.
_MANUAL_SUBCATEGORIES = ("customer_requested_human",) * 3 + ("cancel_order_action", "repeated_question")
_QC_SUBCATEGORIES = ("qc_low_confidence",) * 2 + ("qc_policy_violation", "qc_sensitive_topic")

# Handoff causes: why a handoff really happened, whatever category and subcategory the AI platform gave it. A
# cause has its own words in each of the three texts a handoff comes with: the customer's last message before
# it, its reason, and (transfer detector handoffs only) its rationale.
@dataclass(frozen=True)
class _Cause:
    said: tuple[str, ...]  # the customer's last message before the handoff
    reasons: tuple[str, ...]
    rationales: tuple[str, ...]  # the transfer detector's


_CAUSES: dict[str, _Cause] = {
    "lost_parcel": _Cause(
        ("Tracking says delivered but there's no parcel here", "My package never showed up",
         "It says it was delivered yesterday, I never got it",
         "The courier claims they dropped it off but nothing arrived",
         "I think my parcel got lost, order #48213",
         "Nothing in the mailbox, nothing with the neighbours. Where is it?"),
        ("Customer says the parcel never arrived", "Parcel marked delivered but not received",
         "Package reported lost in transit", "Carrier shows a delivery the customer never got",
         "Possible lost shipment, customer wants it found or replaced"),
        ("Lost parcels need a team member to file a claim",
         "A missing delivery needs a carrier trace the AI cannot open",
         "Only the team can start a lost-package investigation",
         "Marked-delivered disputes go to a person to claim from the courier"),
    ),
    "carrier_delay": _Cause(
        ("My order is a week late", "Tracking hasn't moved since Monday",
         "It was supposed to arrive on Friday and it's still not here",
         "Why is my delivery taking so long?", "The shipment has been stuck in transit for days"),
        ("Order is more than 5 days late", "Shipment stuck at the carrier's depot",
         "Delivery past its estimated date", "No tracking update for several days",
         "Customer chasing an overdue delivery"),
        ("Late orders need a carrier investigation",
         "Overdue shipments are escalated to the carrier by the team",
         "Stalled tracking needs a person to contact the courier",
         "Delays beyond the delivery promise need a team member"),
    ),
    "damaged_item": _Cause(
        ("My package arrived damaged", "The box was crushed and the shoes inside are scuffed",
         "It came with a big tear down the side", "Half the order arrived dented and scratched",
         "Opened it today and it's broken, I have photos"),
        ("Customer received a damaged item", "Item arrived broken", "Goods damaged in transit",
         "Crushed box, contents unusable", "Customer sent photos of a torn product"),
        ("Damaged items need photos reviewed by a team member",
         "Transit damage claims are approved by the team",
         "A replacement for a broken delivery needs a person's sign-off",
         "Breakage reports go to a team member to assess"),
    ),
    "cancel_in_fulfilment": _Cause(
        ("Please cancel my order, I placed it by mistake", "I need to cancel order #51874 before it ships",
         "I don't want this order anymore, can you stop it?", "Can you stop the shipment, I ordered twice",
         "Cancel it please, it hasn't even left the warehouse"),
        ("Customer wants to cancel an order that is being packed",
         "Cancellation requested after fulfilment started",
         "Order needs stopping before dispatch", "Customer asks to void an order in the warehouse",
         "Cancel request on an order already picked"),
        ("Orders in fulfilment can only be cancelled by the team",
         "The warehouse must be asked to pull the order before it ships",
         "Stopping a packed order needs a team member",
         "Cancelling after picking has started is a manual action"),
    ),
    "address_change": _Cause(
        ("I need to change the shipping address on my order", "I put in my old address by mistake",
         "Can you send it to my work instead? 42 Elm Street, Apt 3",
         "I'm moving this week, can the delivery go somewhere else?",
         "Wrong postcode on my order, can you fix it"),
        ("Customer wants to change the address of a shipped order", "Delivery address needs correcting",
         "Redirect requested to a new address", "Wrong postcode entered at checkout",
         "Customer moved and wants the parcel rerouted"),
        ("Address changes after shipping need a carrier redirect",
         "Rerouting a parcel is done by the team with the courier",
         "Only a team member can edit the destination once it is labelled",
         "Shipping details on a dispatched order need manual correction"),
    ),
    "return_window": _Cause(
        ("I bought it 40 days ago, can I still return it?",
         "I missed the 30 days, is there anything you can do",
         "The return portal says my order is too old to send back",
         "I was travelling and couldn't send it back in time",
         "Can you make an exception? It's only a week past the deadline"),
        ("Return requested after the 30-day window", "Customer missed the return deadline",
         "Late return, outside policy", "Return portal refused an expired order",
         "Customer asks for an exception to the returns period"),
        ("Exceptions to the return policy need approval", "Returns past 30 days are a team member's call",
         "Out-of-window returns need a manager's sign-off", "Only the team can extend the return period"),
    ),
    "size_exchange": _Cause(
        ("Can I exchange these shoes for a bigger size?", "The jacket is too small, I need a large",
         "I'd like to swap it for a medium", "Wrong size, can I get a 9 instead of an 8",
         "These jeans don't fit, can you send the next size up"),
        ("Customer wants an exchange for a different size", "Size swap requested",
         "Item doesn't fit, customer wants another size", "Exchange for a larger size",
         "Customer asks to trade for a smaller size"),
        ("Exchanges with a price difference need a team member",
         "A size swap on an out-of-stock variant needs the team",
         "Exchanges must be set up by hand when the size is back-ordered",
         "Swapping a fitted item needs a person to check stock"),
    ),
    "refund_delay": _Cause(
        ("I returned my order two weeks ago and haven't been refunded", "Where is my refund?",
         "You got the return on the 3rd and I still don't have my money back", "My refund is way overdue",
         "It's been 10 days since you received it, still no refund"),
        ("Refund not received 10 days after the return", "Customer chasing a late refund",
         "Refund overdue for a scanned return", "Money back not showing on the customer's card",
         "Return received but no refund issued yet"),
        ("Refunds late by more than a week need a team member",
         "Stuck refunds are pushed through by the finance team",
         "A missing refund needs a payment trace by a person",
         "Overdue reimbursements need a team member to reissue"),
    ),
    "account_locked": _Cause(
        ("I can't log in to my account", "My account is locked",
         "It keeps saying my password is wrong even after resetting it",
         "The reset link never arrives and I'm locked out",
         "I'm stuck on the sign-in page, too many attempts"),
        ("Customer is locked out after resetting the password", "Account locked after failed logins",
         "Password reset email not arriving", "Customer cannot sign in",
         "Login blocked, identity needs checking"),
        ("Account unlocks need identity verification", "Only the team can lift a security lock",
         "Sign-in problems after a reset need a person to verify the customer",
         "Locked accounts are restored manually after ID checks"),
    ),
    "subscription_cancel": _Cause(
        ("How do I cancel my subscription?", "I'd like to cancel, not pause",
         "Please end my membership, I don't want any more boxes", "Stop the monthly box, I'm done",
         "I want to unsubscribe and close the plan"),
        ("Customer wants to cancel the subscription", "Membership cancellation request",
         "Customer asks to stop recurring boxes", "Plan termination requested",
         "Customer declined the retention offer and wants out"),
        ("Cancellations go to the retention team", "Ending a plan needs a retention specialist",
         "Subscription terminations are handled by a person",
         "Only the team can close a membership with an open box"),
    ),
    "double_charge": _Cause(
        ("I was charged twice for my order", "There are two identical payments on my card",
         "You took the money two times", "My bank statement shows a duplicate charge of $49.90",
         "Why did I get billed again for the same box?"),
        ("Customer disputes a charge", "Duplicate payment reported", "Customer billed twice for one order",
         "Double debit on the customer's card", "Same amount taken two times"),
        ("Billing disputes need a team member, per policy",
         "Duplicate charges are refunded by the payments team",
         "Reversing a payment needs a person",
         "Card disputes must be checked against the payment processor by the team"),
    ),
    "promo_code": _Cause(
        ("My promo code isn't working", "The code is SPRING20 and it says invalid",
         "The discount didn't apply at checkout", "I was promised 20% off but paid full price",
         "Your voucher from the newsletter gets rejected"),
        ("Promo code rejected at checkout", "Discount not applied to the order",
         "Customer's voucher shows as invalid", "Coupon from a campaign does not work",
         "Customer wants the promised discount honoured"),
        ("Manual discounts need a team member", "Honouring an expired coupon needs approval",
         "Price adjustments after purchase are done by the team",
         "Only a person can credit a failed voucher"),
    ),
    "product_defect": _Cause(
        ("The zipper broke after one week", "The sole came off my shoes after a month",
         "The seams are coming apart already", "The buckle snapped the second time I wore it",
         "The colour ran in the first wash and the stitching is loose"),
        ("Product broke within the warranty period", "Faulty item reported", "Manufacturing defect claim",
         "Customer reports poor quality after little use", "Item fell apart within weeks"),
        ("Warranty claims need a team member", "Defect reports are reviewed by the quality team",
         "A replacement for a faulty product needs a person's approval",
         "Quality complaints go to a team member to log with the supplier"),
    ),
}
CAUSES = tuple(_CAUSES)

# Each subcategory: the cause that naturally belongs to it (the transfer detector's), or how the reason of a
# manual or quality check handoff sometimes begins.
_SUBCATEGORY_WORDS: dict[str, tuple[str | None, str]] = {
    "customer_requested_human": (None, "Asked for a person: "),
    "cancel_order_action": (None, "Needs a team action: "),
    "repeated_question": (None, "Repeated question: "),
    "qc_low_confidence": (None, "Low confidence: "),
    "qc_policy_violation": (None, "Blocked by a policy check: "),
    "qc_sensitive_topic": (None, "Flagged as sensitive: "),
    "order_delayed": ("carrier_delay", ""),
    "missing_package": ("lost_parcel", ""),
    "order_cancellation": ("cancel_in_fulfilment", ""),
    "address_change": ("address_change", ""),
    "damaged_item": ("damaged_item", ""),
    "return_outside_window": ("return_window", ""),
    "exchange_request": ("size_exchange", ""),
    "refund_request": ("lost_parcel", ""),
    "refund_status": ("refund_delay", ""),
    "account_locked": ("account_locked", ""),
    "subscription_cancellation": ("subscription_cancel", ""),
    "billing_dispute": ("double_charge", ""),
    "promo_code_issue": ("promo_code", ""),
    "product_defect": ("product_defect", ""),
}
SUBCATEGORIES = tuple(_SUBCATEGORY_WORDS)

# Words that say nothing of the cause: what some handoffs come with instead of their cause's.
_GENERIC_REASONS = (
    "Customer asked to speak to a person", "Customer asked for a human agent twice",
    "Customer repeated the same question three times", "Reply confidence below threshold",
    "Quality check: answer not grounded in a guide", "Conversation needs a team member",
)
_GENERIC_SAID = (
    "agent", "human please", "this is useless", "I want to speak to someone", "representative",
    "you're not understanding me", "AGENT", "Can I talk to a real person please?",
)
# How a customer varies a phrase (as written, lower case, a typo, a "please", impatient), and how often.
_STYLE_WEIGHTS = np.array([0.70, 0.09, 0.07, 0.07, 0.07])
# A cause and a request for a person in one message (manual handoffs the customer asked for).
_ASKS_FOR_PERSON = (
    "{}, can I talk to someone", "{}. I want to speak to a person", "{} - get me a human please",
    "{}, is there a real person who can help?",
)
_GENERIC_SHARE = 0.10  # of handoffs: generic reason and last message, whatever the cause
_NATURAL_CAUSE_SHARE = 0.80  # of transfer detector handoffs: the cause that belongs to the subcategory
_CAUSE_SAID_SHARE = 0.50  # of customers asking for a person: they say why in the same message
_REASON_PREFIX_SHARE = 0.40  # of manual and quality check handoffs: the reason opens with the subcategory's


class _Vocabulary:
    """A flat list of strings made of named groups, so that a group can be picked from by offset."""

    def __init__(self) -> None:
        self.strings: list[str] = []

    def group(self, strings: Sequence[str]) -> tuple[int, int]:
        """Add strings (possibly already present) and return (offset, count) of the new group."""
        offset = len(self.strings)
        self.strings.extend(strings)
        return offset, len(strings)

    def groups(self, per_key: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """One group per key; returns the offsets and counts as arrays indexed by key."""
        pairs = [self.group(strings) for strings in per_key]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def table(
        self, per_key: Sequence[Sequence[str]], variants: Sequence[Callable[[str], str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every variant of every string of each key: codes[key, string, variant] (-1 past a key's
        strings), and each key's number of strings."""
        codes = np.full((len(per_key), max(map(len, per_key)), len(variants)), -1, dtype=np.int32)
        for key, strings in enumerate(per_key):
            for i, string in enumerate(strings):
                offset, count = self.group([variant(string) for variant in variants])
                codes[key, i] = offset + np.arange(count)
        return codes, np.array([len(strings) for strings in per_key])


def _pick(rng: np.random.Generator, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A uniformly chosen member of each row's group (vectorised)."""
    return (offsets + (rng.random(offsets.size) * counts).astype(np.int64)).astype(np.int32)


def _pick_from(rng: np.random.Generator, group: tuple[int, int], n: int) -> np.ndarray:
    """`n` uniformly chosen members of one group."""
    return _pick(rng, np.full(n, group[0]), np.full(n, group[1]))


def _pick_variant(
    rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], key: np.ndarray, variant: np.ndarray | int
) -> np.ndarray:
    """A uniformly chosen string of each row's key in `table`, in the row's variant (vectorised)."""
    codes, counts = table
    return codes[key, (rng.random(key.size) * counts[key]).astype(np.int64), variant]


def _typo(text: str) -> str:
    """`text` with two letters of its longest word swapped (or a double letter made single)."""
    word = max(re.findall(r"[A-Za-z]+", text), key=len)
    i = len(word) // 2
    if word[i - 1] == word[i]:
        return text.replace(word, word[:i] + word[i + 1 :], 1)
    return text.replace(word, word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :], 1)


def _bare(text: str) -> str:
    return text.rstrip(".?!")


# The ways a customer writes a phrase (`_STYLE_WEIGHTS`), then the ways of asking for a person with it.
_STYLES: tuple[Callable[[str], str], ...] = (
    str, str.lower, _typo, lambda text: _bare(text) + " please", lambda text: _bare(text) + "??"
)
_WITH_PERSON = tuple(
    (lambda text, form=form: form.format(_bare(text[0].lower() + text[1:]))) for form in _ASKS_FOR_PERSON
)


_TEXTS = _Vocabulary()
_OPENERS = _TEXTS.groups([t.openers for t in _TOPICS])
_FOLLOW_UPS = _TEXTS.groups([t.follow_ups for t in _TOPICS])
_AI_REPLIES = _TEXTS.groups([t.ai_replies for t in _TOPICS])
_RESOLUTIONS = _TEXTS.groups([t.resolutions for t in _TOPICS])
_ASK_HUMAN = _TEXTS.group(
    ["Can I talk to a real person please?", "I want to speak to someone", "agent", "human please"]
)
_HANDOVER = _TEXTS.group(
    [
        "I'm connecting you with a teammate who can help with this.",
        "Let me get a member of our team to take a look.",
        "I'm sorry to hear that. Let me get a teammate.",
        "I've passed this to our support team; someone will reply shortly.",
    ]
)
_RECONTACT = _TEXTS.group(
    [
        "Hi again, I still have the same problem",
        "Following up on my chat from earlier",
        "Me again — that didn't work",
        "Sorry, one more question about my order",
    ]
)
_TEAM_ACK = _TEXTS.group(
    [
        "Hi there, thanks for your patience. I'm looking into this now.",
        "Thanks for the details, give me a moment to check.",
        "Hi, I'm taking over from our assistant. Let me look into it.",
        "Could you confirm the email address on your order?",
    ]
)
_CUSTOMER_MID = _TEXTS.group(
    ["Sure, it's the one from last week", "How long will that take?", "Yes that's right", "ok"]
)
_CUSTOMER_THANKS = _TEXTS.group(
    ["Thank you!", "Great, thanks for sorting it out", "Perfect, thanks", "thx"]
)
_OUTBOUND_TEXTS = _TEXTS.group(
    [
        "Hi, following up on your recent return: we've received it and issued your refund.",
        "Hi, your replacement order has shipped. Reply here if you need anything else.",
        "Hi, we noticed your delivery was delayed, so we've refunded the shipping fee.",
        "Hi, just checking in: did your exchange arrive safely?",
    ]
)
_AFTER_REOPEN = _TEXTS.group(
    [
        "Thanks for checking in, the replacement arrived but it's the wrong colour",
        "Yes, it arrived today, thank you",
        "Actually I still haven't received the refund",
    ]
)
# What a customer writes beside a rating (a feedback's optional text), by rating.
_FEEDBACK_TEXTS = _TEXTS.groups(
    [
        ["Quick and helpful, thanks!", "Solved my problem", "Easy, thank you", "Super rapide, merci !"],
        ["Didn't answer my question", "I had to ask for a person twice", "Still waiting for my refund",
         "Too slow"],
    ]
)

_SUBCATEGORY_INDEX = {name: i for i, name in enumerate(SUBCATEGORIES)}
_REASONS = _Vocabulary()
_RATIONALES = _Vocabulary()

# Causes' words as tables of codes: [cause, phrase, variant].
_CAUSE_SAID = _TEXTS.table([cause.said for cause in _CAUSES.values()], _STYLES + _WITH_PERSON)
_GENERIC_SAID_GROUP = _TEXTS.group(_GENERIC_SAID)
_PREFIXES = [prefix for _, prefix in _SUBCATEGORY_WORDS.values() if prefix]
_REASON_FORMS: tuple[Callable[[str], str], ...] = (
    str, *((lambda text, prefix=prefix: prefix + text[0].lower() + text[1:]) for prefix in _PREFIXES)
)
_CAUSE_REASONS = _REASONS.table([cause.reasons for cause in _CAUSES.values()], _REASON_FORMS)
_GENERIC_REASON_GROUP = _REASONS.group(_GENERIC_REASONS)
_CAUSE_RATIONALES = _RATIONALES.table([cause.rationales for cause in _CAUSES.values()], [str])
# By subcategory: its natural cause (-1 for none), the variant of reason that begins with its words (0: none).
_SUBCATEGORY_CAUSE = np.array([CAUSES.index(c) if c else -1 for c, _ in _SUBCATEGORY_WORDS.values()])
_SUBCATEGORY_PREFIX = np.array([_PREFIXES.index(p) + 1 if p else 0 for _, p in _SUBCATEGORY_WORDS.values()])
# By topic: its causes (-1 past the last) and their weights.
_MOST_CAUSES = max(len(t.causes) for t in _TOPICS)
_TOPIC_CAUSES = np.array(
    [[CAUSES.index(c) for c, _ in t.causes] + [-1] * (_MOST_CAUSES - len(t.causes)) for t in _TOPICS]
)
_TOPIC_CAUSE_WEIGHTS = np.array(
    [[w for _, w in t.causes] + [0.0] * (_MOST_CAUSES - len(t.causes)) for t in _TOPICS]
)

# Subcategory pools: one per topic (the transfer detector's), then manual, then quality check.
_POOLS = _Vocabulary()
_POOL_GROUPS = _POOLS.groups(
    [topic.transfers for topic in _TOPICS] + [_MANUAL_SUBCATEGORIES, _QC_SUBCATEGORIES]
)
_POOL_SUBCATEGORY = np.array([_SUBCATEGORY_INDEX[s] for s in _POOLS.strings], dtype=np.int16)
_MANUAL_POOL, _QC_POOL = len(_TOPICS), len(_TOPICS) + 1

_TOPIC_GUIDE_OFFSETS, _TOPIC_GUIDE_COUNTS = (
    np.cumsum([0] + [len(t.guides) for t in _TOPICS[:-1]]),
    np.array([len(t.guides) for t in _TOPICS]),
)
_TOPIC_GUIDES = np.array([GUIDES.index(g) for t in _TOPICS for g in t.guides], dtype=np.int8)

# Activity rhythm: UTC hour of day (the brand's customers are mostly in the Americas) and weekday.
_HOUR_WEIGHTS = np.array(
    [8, 6, 4, 3, 2, 1.5, 1, 1, 1, 1.5, 2, 3, 5, 8, 10, 11, 12, 12, 12, 11, 11, 10, 10, 9]
)
_WEEKDAY_WEIGHTS = np.array([1.0, 1.0, 0.97, 0.95, 0.9, 0.6, 0.5])  # Monday first

# Episodes: what starts a customer's piece of activity.
_EPISODE_AI, _EPISODE_VOICE, _EPISODE_EMAIL_TEAM, _EPISODE_OUTBOUND = range(4)
_EPISODE_WEIGHTS = np.array([0.85, 0.08, 0.04, 0.03])
_AI_CHANNEL_WEIGHTS = np.array([0.70, 0.18, 0.12])  # chat, email, sms
# When customers write (decision 122): questions come at random, busy customers' more often, but one that
# comes in the quiet days after a customer's episode is never asked. Only 15% have another question soon; the
# others' next episode starts after D (7 days) has passed since the end of the one before. So a resolution
# fails to last where that is generated on purpose (a recontact, a late return, a contact after resolution) or
# for those 15%, as in a real inbox, and not because every customer writes every week. Questions are drawn
# from 16 days before the window on, so that its first days are no busier than the rest.
_EPISODES_PER_CUSTOMER_DAY = 1.0  # questions; tuned so that the events per customer match the docstring
_SOON_SHARE, _QUIET_DAYS = 0.15, (8.0, 10.0)  # days from an episode's start
_WARM_UP_DAYS = 16

# AI session outcomes as generated (SPEC 3.6 names them from the events).
_RESOLVED, _HANDED_OFF, _ABANDONED, _HANDOFF_UNANSWERED = range(4)
_NO_RESPONSE_SHARE, _UNANSWERED_HANDOFF_SHARE = 0.07, 0.025
_RECONTACT_SHARE, _LATE_CLOSE_SHARE = 0.10, 0.04  # of resolved sessions
_CLOSE_AFTER_CONTACT_SHARE, _REOPEN_SHARE = 0.30, 0.08  # of contacts; of closed handoff contacts
_FOLLOW_UP_SHARE = 0.08  # of handoff contacts: the customer writes to the team again within hours
# Resolved customers coming back after R but within D (issue 26's durable resolution): to the AI again
# (a late return) or to the team (a contact after resolution), between these many seconds after the
# session's last event.
_LATE_RETURN_SHARE, _CONTACT_AFTER_SHARE = 0.06, 0.04  # of resolved sessions
_RETURN_AFTER = (30 * 3600, 6.5 * 86400)

# Feedback (docs/outcomes.md): the share of each kind of interaction its customer rates, and of those ratings
# the negative ones. Handed-off sessions are rated before the handoff (a thumbs down, then "a person please").
_RESOLVED_FEEDBACK, _HANDOFF_FEEDBACK, _CONTACT_FEEDBACK = 0.25, 0.10, 0.15
_RESOLVED_NEGATIVE, _HANDOFF_NEGATIVE, _CONTACT_NEGATIVE = 0.12, 0.70, 0.22
_SCORE_WEIGHTS = np.array([[0, 0, 0.05, 0.30, 0.65], [0.50, 0.35, 0.15, 0, 0]])  # scores 1-5, by rating
_SCORED_SHARE, _FEEDBACK_TEXT_SHARE = 0.70, 0.20
_LATE_FEEDBACK_SHARE = 0.02  # rated more than F (24h) after the end: the anomaly feedback_without_interaction

# Contact sources.
_FROM_HANDOFF, _INBOUND, _OUTBOUND = range(3)


# ---------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class BadRecord:
    """One malformed record and where it goes among all records of its log.

    `line` is its JSON Lines form (`kind` says what is wrong with it, possibly its syntax); `row` is
    its form for CSV and Parquet (`row_kind`, always a value-level problem), columns as in `COLUMNS`
    with `occurred_at` as a string.
    """

    position: int
    kind: str
    line: str
    row_kind: str
    row: dict[str, str | list[str] | None]


_CAUSE_SCHEMA = pa.schema([pa.field("event_id", pa.string()), pa.field("cause", pa.string())])


@dataclass(frozen=True)
class GeneratedLog:
    """Valid events (columns and types of `SCHEMA`) and the malformed records to mix in.

    `causes` is the ground truth of the handoffs: one row per handoff event, its `event_id` and the `cause`
    (one of `CAUSES`) it was generated with. It is not part of the log: `write` leaves it out.
    """

    events: pa.Table
    bad_records: list[BadRecord] = field(default_factory=list)
    bad_rate: float = 0.0
    causes: pa.Table = field(default_factory=_CAUSE_SCHEMA.empty_table)

    @property
    def bad_lines(self) -> list[str]:
        """The malformed records as JSON Lines, in position order."""
        return [record.line for record in self.bad_records]

    @property
    def record_count(self) -> int:
        """Valid events plus malformed records."""
        return self.events.num_rows + len(self.bad_records)


def generate(
    *,
    customers: int,
    days: int,
    seed: int,
    start: dt.date = dt.date(2026, 5, 1),
    brand: str = "default",
    bad_rate: float = 0.0,
    block_customers: int = DEFAULT_BLOCK_CUSTOMERS,
) -> GeneratedLog:
    """The whole log of `customers` customers over `days` days from `start` (UTC), in memory.

    Equal to the blocks of `generate_blocks` with the same arguments, concatenated.
    """
    blocks = list(
        generate_blocks(
            customers=customers, days=days, seed=seed, start=start, brand=brand,
            bad_rate=bad_rate, block_customers=block_customers,
        )
    )
    events = pa.concat_tables([block.events for block in blocks]).combine_chunks()
    bad_records: list[BadRecord] = []
    offset = 0
    for block in blocks:
        bad_records.extend(
            BadRecord(r.position + offset, r.kind, r.line, r.row_kind, r.row)
            for r in block.bad_records
        )
        offset += block.record_count
    causes = pa.concat_tables([block.causes for block in blocks]).combine_chunks()
    return GeneratedLog(events=events, bad_records=bad_records, bad_rate=bad_rate, causes=causes)


def generate_blocks(
    *,
    customers: int,
    days: int,
    seed: int,
    start: dt.date = dt.date(2026, 5, 1),
    brand: str = "default",
    bad_rate: float = 0.0,
    block_customers: int = DEFAULT_BLOCK_CUSTOMERS,
) -> Iterator[GeneratedLog]:
    """The log as consecutive blocks of `block_customers` customers, each its own GeneratedLog.

    A block depends only on (seed, its first customer, the other arguments), so output differs
    with `block_customers`; keep the default for comparable runs. Positions of bad records are
    relative to their block.
    """
    if customers < 0:
        raise ValueError(f"customers must be 0 or more, got {customers}")
    if days < 1:
        raise ValueError(f"days must be 1 or more, got {days}")
    if not 0.0 <= bad_rate < 1.0:
        raise ValueError(f"bad_rate must be at least 0 and below 1, got {bad_rate}")
    if not _BRAND_PATTERN.fullmatch(brand):
        raise ValueError(f"brand must match [a-z0-9][a-z0-9_-]{{0,63}}, got {brand!r}")
    if block_customers < 1:
        raise ValueError(f"block_customers must be 1 or more, got {block_customers}")
    id_width = max(6, len(str(max(customers - 1, 0))))
    yielded = False
    for first in range(0, customers, block_customers):
        yielded = True
        yield _generate_block(
            first_customer=first,
            n_customers=min(block_customers, customers - first),
            id_width=id_width,
            days=days, seed=seed, start=start, brand=brand, bad_rate=bad_rate,
        )
    if not yielded:
        yield GeneratedLog(events=SCHEMA.empty_table(), bad_rate=bad_rate)


def write(log: GeneratedLog | Iterable[GeneratedLog], path: Path) -> int:
    """Write a log (or a stream of blocks) to `path` as `.jsonl`, `.csv` or `.parquet`.

    Returns the number of records written, malformed ones included. JSON Lines omit absent fields
    and give `occurred_at` as RFC 3339 in UTC with `Z` (fraction only when not zero); CSV has a header
    row, RFC 4180 quoting and CRLF line ends, `guides` joined by `|`, an empty cell for an absent
    field; Parquet keeps `occurred_at` a UTC timestamp unless the log has malformed records, whose
    times may not parse, in which case it is an RFC 3339 string column.
    """
    path = Path(path)
    blocks = [log] if isinstance(log, GeneratedLog) else log
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _write_jsonl(blocks, path)
    if suffix == ".csv":
        return _write_csv(blocks, path)
    if suffix == ".parquet":
        return _write_parquet(blocks, path)
    raise ValueError(f"cannot tell the format of {path}: use .jsonl, .csv or .parquet")


# ---------------------------------------------------------------------------------------------
# Generation


class _Parts:
    """Events under construction, as columns of codes; an episode index and a time relative to it."""

    _COLUMNS = (
        "episode", "at", "type", "channel", "text", "route", "ai_agent", "guide1", "guide2",
        "category", "subcategory", "reason", "rationale", "agent", "rating", "score", "cause",
    )

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {name: [] for name in self._COLUMNS}

    def add(self, episode: np.ndarray, at: np.ndarray, type_: int, **codes: np.ndarray | int) -> None:
        """Append events of one type; columns not given are absent (-1)."""
        n = episode.size
        self.chunks["episode"].append(episode.astype(np.int64))
        self.chunks["at"].append(at.astype(np.int64))
        self.chunks["type"].append(np.full(n, type_, dtype=np.int8))
        for name in self._COLUMNS[3:]:
            value = codes.pop(name, -1)
            self.chunks[name].append(np.broadcast_to(np.asarray(value, dtype=np.int32), (n,)))
        if codes:
            raise TypeError(f"unknown event columns {sorted(codes)}")

    def columns(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(chunks) for name, chunks in self.chunks.items()}


def _seconds(
    rng: np.random.Generator, n: int, median: float, spread: float, low: float, high: float
) -> np.ndarray:
    """Log-normal durations in seconds, clipped to [low, high]."""
    return np.clip(median * np.exp(spread * rng.standard_normal(n)), low, high)


def _whole_us(seconds: np.ndarray) -> np.ndarray:
    """Seconds as whole-second microseconds (people's clocks in most logs tick in seconds)."""
    return np.ceil(seconds).astype(np.int64) * _US


def _milli_us(seconds: np.ndarray) -> np.ndarray:
    """Seconds as millisecond-precision microseconds (the AI platform logs milliseconds)."""
    return np.ceil(seconds * 1000).astype(np.int64) * 1000


def _next_second(at: np.ndarray) -> np.ndarray:
    """Times rounded up to a whole second, for what a person does after something the AI did."""
    return -(-at // _US) * _US


def _positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows repeated `counts` times: the source row of each copy and its position in the run."""
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - starts[owner]


def _exclusive_cumsum(steps: np.ndarray, owner: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Running sum of `steps` within each run, not counting the row itself."""
    total = np.cumsum(steps) - steps
    run_start = (np.cumsum(counts) - counts)[owner]
    return total - total[run_start]


def _generate_block(
    *,
    first_customer: int,
    n_customers: int,
    id_width: int,
    days: int,
    seed: int,
    start: dt.date,
    brand: str,
    bad_rate: float,
) -> GeneratedLog:
    # NumPy seeds are non-negative: fold any integer seed onto them one to one. Handoff causes and their words
    # have a stream of their own, so that everything else is generated as it was before there were causes.
    rng = np.random.default_rng([2 * abs(seed) + (seed < 0), first_customer])
    cause_rng = np.random.default_rng([2 * abs(seed) + (seed < 0), first_customer, 1])
    # Each customer's questions; busy customers have far more than quiet ones. Those asked become episodes:
    # not one in the quiet days after an episode, nor before the window (each customer's first question is
    # at a random point of a quiet time, so that customers do not all start at once).
    span = _WARM_UP_DAYS + days
    rate = rng.gamma(2.0, 0.5, n_customers) * _EPISODES_PER_CUSTOMER_DAY * span
    customer = np.repeat(np.arange(n_customers), rng.poisson(rate))
    wanted = _rhythmic_seconds(rng, customer.size, start - dt.timedelta(days=_WARM_UP_DAYS), span)
    by_customer = customer.astype(np.int64) * (span * 86400)  # customer is sorted: sort times within each
    wanted = np.sort(by_customer + wanted) - by_customer
    quiet = (rng.uniform(*_QUIET_DAYS, customer.size) * 86400).astype(np.int64)
    quiet[rng.random(customer.size) < _SOON_SHARE] = 0
    ready = (rng.uniform(0, _QUIET_DAYS[1], n_customers) * 86400).astype(np.int64)
    asked = _asked(wanted, quiet, customer, ready) & (wanted >= _WARM_UP_DAYS * 86400)
    customer, wanted = customer[asked], wanted[asked] - _WARM_UP_DAYS * 86400
    per_customer = np.bincount(customer, minlength=n_customers)

    parts = _Parts()
    n = customer.size
    kind = rng.choice(4, n, p=_EPISODE_WEIGHTS)
    topic = rng.choice(len(_TOPICS), n, p=_TOPIC_WEIGHTS / _TOPIC_WEIGHTS.sum())
    _generate_episodes(rng, cause_rng, parts, kind, topic)
    columns = parts.columns()

    # Place episodes at their wanted time, or 30 hours after the customer's previous one ends, so
    # that coming back within a day (SPEC 3.6) happens only where it is generated on purpose.
    length = np.zeros(n, dtype=np.int64)
    np.maximum.at(length, columns["episode"], columns["at"])
    starts = _schedule(wanted, -(-length // _US) + 30 * 3600, per_customer)

    at = (starts[columns["episode"]] * _US) + columns["at"]
    keep = at < days * 86400 * _US
    columns = {name: values[keep] for name, values in columns.items()}
    at = at[keep] + _epoch_us(start)
    owner = customer[columns["episode"]] + first_customer

    # Event ids depend on (customer, n-th event of the customer), so they never collide.
    order = np.lexsort((columns["type"], at, owner))
    at, owner = at[order], owner[order]
    columns = {name: values[order] for name, values in columns.items()}
    runs = np.diff(np.flatnonzero(np.r_[True, owner[1:] != owner[:-1], True]))
    _, nth = _positions(runs)
    if nth.size and nth.max() >= _MAX_EVENTS_PER_CUSTOMER:
        raise ValueError("too many events per customer; generate fewer days")
    ids = _mix64(
        (owner.astype(np.uint64) << np.uint64(20)) | nth.astype(np.uint64), seed
    )
    order = np.lexsort((ids, at))
    columns = {name: values[order] for name, values in columns.items()}
    events = _events_table(
        columns, ids=ids[order], at=at[order], owner=owner[order], id_width=id_width, brand=brand
    )
    handoff = columns["cause"] >= 0
    causes = pa.table(
        [events["event_id"].filter(pa.array(handoff)), _decoded(columns["cause"][handoff], CAUSES)],
        schema=_CAUSE_SCHEMA,
    )
    bad_records = _bad_records(rng, events, bad_rate, seed=seed, first_customer=first_customer)
    return GeneratedLog(events=events, bad_records=bad_records, bad_rate=bad_rate, causes=causes)


def _epoch_us(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * 86400 * _US


def _rhythmic_seconds(rng: np.random.Generator, n: int, start: dt.date, days: int) -> np.ndarray:
    """Seconds since `start` following the daily and weekly rhythm of a support inbox."""
    day_weights = _WEEKDAY_WEIGHTS[(start.weekday() + np.arange(days)) % 7]
    day = rng.choice(days, n, p=day_weights / day_weights.sum())
    hour = rng.choice(24, n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    return day * 86400 + hour * 3600 + rng.integers(0, 3600, n)


def _asked(wanted: np.ndarray, quiet: np.ndarray, customer: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """Which questions are asked: per customer (rows sorted by customer, then `wanted`), the first at or after
    `ready[customer]`, then each next one at least its `quiet` seconds after the one asked before it. One
    vectorised step per question asked by the busiest customer."""
    asked = np.zeros(wanted.size, dtype=bool)
    if wanted.size == 0:
        return asked
    span = int(max(wanted.max(), ready.max()) + quiet.max()) + 1
    keys = customer.astype(np.int64) * span + wanted  # ascending
    owner = np.arange(ready.size, dtype=np.int64)
    current = np.searchsorted(keys, owner * span + ready)
    while current.size:
        inside = current < wanted.size
        inside[inside] = customer[current[inside]] == owner[inside]  # a question of the same customer
        current, owner = current[inside], owner[inside]
        asked[current] = True
        current = np.maximum(np.searchsorted(keys, keys[current] + quiet[current]), current + 1)
    return asked


def _schedule(wanted: np.ndarray, gap: np.ndarray, per_customer: np.ndarray) -> np.ndarray:
    """Start times s_i = max(wanted_i, s_(i-1) + gap_(i-1)) within each customer, vectorised.

    With D_i the running sum of earlier gaps, s_i = D_i + max over j <= i of (wanted_j - D_j); a
    per-customer offset larger than any such value keeps the running maximum within a customer.
    """
    if wanted.size == 0:
        return wanted
    owner, _ = _positions(per_customer)
    before = _exclusive_cumsum(gap, owner, per_customer)
    slack = wanted - before
    lowest = int(slack.min())
    span = int(slack.max()) - lowest + 1
    if span * per_customer.size >= 1 << 62:
        raise ValueError("too many customers in one block; lower block_customers")
    base = owner.astype(np.int64) * span
    running = np.maximum.accumulate(base + (slack - lowest)) - base + lowest
    return running + before


def _generate_episodes(
    rng: np.random.Generator,
    cause_rng: np.random.Generator,
    parts: _Parts,
    kind: np.ndarray,
    topic: np.ndarray,
) -> None:
    """Every event of every episode, with times relative to the episode's start (handoffs' causes and their
    words drawn from `cause_rng`)."""
    ai = np.flatnonzero(kind == _EPISODE_AI)
    outcome = _ai_outcomes(rng, topic[ai], recontact=False)
    channel = rng.choice(3, ai.size, p=_AI_CHANNEL_WEIGHTS)
    sessions = _add_sessions(
        rng, cause_rng, parts, episode=ai, at=np.zeros(ai.size, dtype=np.int64), channel=channel,
        topic=topic[ai], outcome=outcome, recontact=False,
    )

    _rate_sessions(rng, parts, episode=ai, channel=channel, outcome=outcome, sessions=sessions)

    # Resolved customers: some come back within a day, some conversations get a late close; some come back
    # after R but within D, to the AI or to the team.
    resolved = np.flatnonzero(outcome == _RESOLVED)
    shares = [_RECONTACT_SHARE, _LATE_CLOSE_SHARE, _LATE_RETURN_SHARE, _CONTACT_AFTER_SHARE]
    fate = np.searchsorted(np.cumsum(shares), rng.random(resolved.size), side="right")
    back, closed, late, after = (resolved[fate == k] for k in range(len(shares)))
    returns = np.concatenate([back, late])
    wait = np.r_[rng.uniform(2.5 * 3600, 20 * 3600, back.size), rng.uniform(*_RETURN_AFTER, late.size)]
    back_at = _next_second(sessions.last[returns]) + _whole_us(wait)
    returned = _ai_outcomes(rng, topic[ai][returns], recontact=True)
    return_channel = np.where(rng.random(returns.size) < 0.9, channel[returns], rng.choice(3, returns.size))
    recontacts = _add_sessions(
        rng, cause_rng, parts, episode=ai[returns], at=back_at, channel=return_channel,
        topic=topic[ai][returns], outcome=returned, recontact=True,
    )
    _rate_sessions(
        rng, parts, episode=ai[returns], channel=return_channel, outcome=returned, sessions=recontacts
    )
    parts.add(
        ai[closed],
        _next_second(sessions.last[closed]) + _whole_us(rng.uniform(2.5 * 3600, 20 * 3600, closed.size)),
        _CLOSE,
    )
    # A contact after resolution: the customer writes or calls the team, often saying it did not last.
    after_opener = _pick(rng, *(g[topic[ai][after]] for g in _OPENERS))
    contacts_after = _Contacts(
        episode=ai[after],
        at=_next_second(sessions.last[after]) + _whole_us(rng.uniform(*_RETURN_AFTER, after.size)),
        channel=np.where(rng.random(after.size) < 0.6, _EMAIL, _VOICE),
        topic=topic[ai][after],
        source=np.full(after.size, _INBOUND),
        agent=_team_members(rng, after.size),
        first_text=np.where(
            rng.random(after.size) < 0.6, _pick_from(rng, _RECONTACT, after.size), after_opener
        ),
    )

    # Contacts: handoffs, calls, emails straight to the team, outbound messages.
    voice = np.flatnonzero(kind == _EPISODE_VOICE)
    email = np.flatnonzero(kind == _EPISODE_EMAIL_TEAM)
    outbound = np.flatnonzero(kind == _EPISODE_OUTBOUND)
    handoffs = [sessions.handoffs, recontacts.handoffs]
    team = np.concatenate([voice, email, outbound])
    contacts = _Contacts.concat(
        [
            *handoffs,
            _Contacts(
                episode=team,
                at=np.zeros(team.size, dtype=np.int64),
                channel=np.concatenate(
                    [
                        np.full(voice.size, _VOICE),
                        np.full(email.size, _EMAIL),
                        np.where(rng.random(outbound.size) < 0.6, _EMAIL, _SMS),
                    ]
                ),
                topic=topic[team],
                source=np.repeat(
                    [_INBOUND, _INBOUND, _OUTBOUND], [voice.size, email.size, outbound.size]
                ),
                agent=_team_members(rng, team.size),
                first_text=_pick(rng, *(g[topic[team]] for g in _OPENERS)),
            ),
            contacts_after,
        ]
    )
    ended = _add_contacts(rng, parts, contacts)
    _rate_contacts(rng, parts, contacts, ended)

    # A team member reopens a few closed handoff conversations a day or two later; the customer
    # answers the team directly. Other customers write to the team again within hours after a handoff's
    # contact ended and its conversation closed: not resolved first time (issue 26's handoff funnel).
    handed = np.flatnonzero(contacts.source == _FROM_HANDOFF)
    roll = rng.random(handed.size)
    chosen = handed[(roll < _REOPEN_SHARE) & (ended.close[handed] >= 0)]
    again = handed[(roll >= _REOPEN_SHARE) & (roll < _REOPEN_SHARE + _FOLLOW_UP_SHARE)]
    follow_ups = _Contacts(
        episode=contacts.episode[again],
        at=np.maximum(ended.end, ended.close)[again] + _whole_us(rng.uniform(3600, 12 * 3600, again.size)),
        channel=np.where(rng.random(again.size) < 0.7, _EMAIL, _VOICE),
        topic=contacts.topic[again],
        source=np.full(again.size, _INBOUND),
        agent=_team_members(rng, again.size),
        first_text=_pick_from(rng, _RECONTACT, again.size),
    )
    _rate_contacts(rng, parts, follow_ups, _add_contacts(rng, parts, follow_ups))
    reopen_at = ended.close[chosen] + _whole_us(rng.uniform(26 * 3600, 46 * 3600, chosen.size))
    parts.add(contacts.episode[chosen], reopen_at, _REOPEN, agent=contacts.agent[chosen])
    answers = _Contacts(
        episode=contacts.episode[chosen],
        at=reopen_at + _whole_us(rng.uniform(600, 3 * 3600, chosen.size)),
        channel=contacts.channel[chosen],
        topic=contacts.topic[chosen],
        source=np.full(chosen.size, _INBOUND),
        agent=contacts.agent[chosen],
        first_text=_pick_from(rng, _AFTER_REOPEN, chosen.size),
    )
    _rate_contacts(rng, parts, answers, _add_contacts(rng, parts, answers, closes=False))


def _team_members(rng: np.random.Generator, n: int) -> np.ndarray:
    """Who takes each contact; some team members work more hours than others."""
    return rng.choice(len(TEAM_MEMBERS), n, p=_TEAM_MEMBER_WEIGHTS / _TEAM_MEMBER_WEIGHTS.sum())


def _ai_outcomes(rng: np.random.Generator, topic: np.ndarray, *, recontact: bool) -> np.ndarray:
    """Each session's outcome; customers coming back are handed off more often."""
    handoff = _TOPIC_HANDOFF_SHARE[topic] * (1.6 if recontact else 1.0)
    roll = rng.random(topic.size)
    return np.select(
        [
            roll < _NO_RESPONSE_SHARE - _UNANSWERED_HANDOFF_SHARE,
            roll < _NO_RESPONSE_SHARE,
            roll < _NO_RESPONSE_SHARE + handoff,
        ],
        [_ABANDONED, _HANDOFF_UNANSWERED, _HANDED_OFF],
        _RESOLVED,
    )


@dataclass(frozen=True)
class _Contacts:
    """Contacts to generate: where each starts (relative time) and what it is about."""

    episode: np.ndarray
    at: np.ndarray  # the handoff, the inbound message, or the first outbound message
    channel: np.ndarray
    topic: np.ndarray
    source: np.ndarray
    agent: np.ndarray
    first_text: np.ndarray  # the inbound customer message (inbound contacts only)

    @staticmethod
    def concat(items: Sequence[_Contacts]) -> _Contacts:
        names = _Contacts.__dataclass_fields__
        return _Contacts(**{n: np.concatenate([getattr(c, n) for c in items]) for n in names})


@dataclass(frozen=True)
class _Sessions:
    last: np.ndarray  # relative time of each session's last event
    answered: np.ndarray  # relative time of its last event before a handoff (its last message)
    handoffs: _Contacts


def _add_sessions(
    rng: np.random.Generator,
    cause_rng: np.random.Generator,
    parts: _Parts,
    *,
    episode: np.ndarray,
    at: np.ndarray,
    channel: np.ndarray,
    topic: np.ndarray,
    outcome: np.ndarray,
    recontact: bool,
) -> _Sessions:
    """AI sessions (SPEC 3.1): 1-4 turns of customer message and AI reply, then maybe a handoff."""
    n = episode.size
    answered = (outcome == _RESOLVED) | (outcome == _HANDED_OFF)
    handed = (outcome == _HANDED_OFF) | (outcome == _HANDOFF_UNANSWERED)
    turns = np.select(
        [answered, outcome == _ABANDONED],
        [rng.choice([1, 2, 3, 4], n, p=[0.35, 0.35, 0.2, 0.1]), rng.choice([1, 2], n, p=[0.75, 0.25])],
        1,
    )
    category = np.where(
        outcome == _HANDED_OFF,
        rng.choice(3, n, p=[0.3, 0.2, 0.5]),
        np.where(outcome == _HANDOFF_UNANSWERED, rng.choice([_MANUAL, _QC], n), -1),
    )
    pool = np.where(category == _TRANSFER, topic, np.where(category == _MANUAL, _MANUAL_POOL, _QC_POOL))
    subcategory = _POOL_SUBCATEGORY[_pick(rng, _POOL_GROUPS[0][pool], _POOL_GROUPS[1][pool])]
    asks_human = category == _MANUAL
    asks_human &= subcategory == _SUBCATEGORY_INDEX["customer_requested_human"]
    h = np.flatnonzero(handed)
    cause, said, reason, rationale = _handoff_words(cause_rng, topic[h], category[h], subcategory[h])
    last_said = np.full(n, -1, dtype=np.int32)  # what the customer writes last instead, or -1
    last_said[h] = said

    # Turns: the customer writes, the AI answers within seconds, the customer writes again.
    owner, turn = _positions(turns)
    m = owner.size
    email = channel[owner] == _EMAIL
    reply = np.where(answered[owner], _milli_us(_seconds(rng, m, 6, 0.7, 1.5, 60)), 0)
    pause = np.where(
        email, _seconds(rng, m, 1200, 0.7, 120, 5400), _seconds(rng, m, 90, 0.9, 15, 900)
    )
    step = _whole_us(reply / _US) + _whole_us(pause)
    customer_at = at[owner] + _exclusive_cumsum(step, owner, turns)
    ai_at = customer_at + reply
    last_turn = turn == turns[owner] - 1

    t = topic[owner]
    text = _pick(rng, _FOLLOW_UPS[0][t], _FOLLOW_UPS[1][t])
    first = turn == 0
    opener = _pick(rng, _OPENERS[0][t], _OPENERS[1][t])
    if recontact:
        opener = np.where(rng.random(m) < 0.6, _pick_from(rng, _RECONTACT, m), opener)
    text = np.where(first, opener, text)
    text = np.where(last_turn & asks_human[owner], _pick_from(rng, _ASK_HUMAN, m), text)
    text = np.where(last_turn & (last_said[owner] >= 0), last_said[owner], text)
    parts.add(
        episode[owner], customer_at, _CUSTOMER, channel=channel[owner], text=text,
        route=np.where(email, _ROUTE_AI, -1),
    )

    replied = answered[owner]
    o, tt = owner[replied], t[replied]
    hand_over = (last_turn & handed[owner])[replied]
    ai_text = np.where(
        hand_over,
        _pick_from(rng, _HANDOVER, o.size),
        _pick(rng, _AI_REPLIES[0][tt], _AI_REPLIES[1][tt]),
    )
    # Guides: mostly the topic's main one, sometimes a second one of the topic's.
    count = _TOPIC_GUIDE_COUNTS[tt]
    first_guide = (rng.random(o.size) * count).astype(np.int64)
    first_guide = np.where(rng.random(o.size) < 0.6, 0, first_guide)
    second_guide = (first_guide + 1 + (rng.random(o.size) * (count - 1)).astype(np.int64)) % count
    second_guide = _TOPIC_GUIDES[_TOPIC_GUIDE_OFFSETS[tt] + second_guide]
    parts.add(
        episode[o], ai_at[replied], _AI, channel=channel[o], text=ai_text,
        ai_agent=_TOPIC_AI_AGENT[tt],
        guide1=_TOPIC_GUIDES[_TOPIC_GUIDE_OFFSETS[tt] + first_guide],
        guide2=np.where(rng.random(o.size) < 0.35, second_guide, -1),
    )

    last = np.where(answered[owner], ai_at, customer_at)[last_turn]  # one per session, in order
    handoff_at = last[h] + _milli_us(_seconds(rng, h.size, 20, 1.5, 1, 900))
    # The draws that picked a reason and a rationale from the subcategory before there were causes: kept, so
    # that every later draw is as it was.
    rng.random(2 * h.size)
    parts.add(
        episode[h], handoff_at, _HANDOFF, ai_agent=_TOPIC_AI_AGENT[topic[h]],
        category=category[h], subcategory=subcategory[h], reason=reason, rationale=rationale, cause=cause,
    )
    answered = last
    last = last.copy()
    last[h] = handoff_at
    handoffs = _Contacts(
        episode=episode[h],
        at=handoff_at,
        channel=channel[h],
        topic=topic[h],
        source=np.full(h.size, _FROM_HANDOFF),
        agent=_team_members(rng, h.size),
        first_text=np.full(h.size, -1),
    )
    return _Sessions(last=last, answered=answered, handoffs=handoffs)


def _handoff_words(
    rng: np.random.Generator, topic: np.ndarray, category: np.ndarray, subcategory: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each handoff's cause, the customer's last message before it (-1: keep the one written), its reason
    and its rationale (-1 but for the transfer detector's).

    A transfer detector handoff mostly has the cause of its subcategory, else another of its topic's; other
    handoffs one of their topic's. Some handoffs come with generic words whatever their cause; a customer
    asking for a person sometimes says why in the same message.
    """
    n = topic.size
    transfer = category == _TRANSFER
    natural = _SUBCATEGORY_CAUSE[subcategory]
    choices = _TOPIC_CAUSES[topic]
    weights = np.where(transfer[:, None] & (choices == natural[:, None]), 0.0, _TOPIC_CAUSE_WEIGHTS[topic])
    cumulative = np.cumsum(weights, axis=1)
    column = ((rng.random(n) * cumulative[:, -1])[:, None] >= cumulative).sum(axis=1)
    other = choices[np.arange(n), np.minimum(column, choices.shape[1] - 1)]
    keeps = (rng.random(n) < _NATURAL_CAUSE_SHARE) | (cumulative[:, -1] == 0)  # or the topic has no other
    cause = np.where(transfer & keeps, natural, other)

    generic = rng.random(n) < _GENERIC_SHARE
    asks_human = (category == _MANUAL) & (subcategory == _SUBCATEGORY_INDEX["customer_requested_human"])
    says_why = rng.random(n) < _CAUSE_SAID_SHARE
    style = np.where(
        asks_human,
        len(_STYLES) + rng.integers(0, len(_WITH_PERSON), n),
        rng.choice(len(_STYLES), n, p=_STYLE_WEIGHTS),
    )
    said = np.select(
        [generic, asks_human & ~says_why],
        [_pick_from(rng, _GENERIC_SAID_GROUP, n), -1],
        _pick_variant(rng, _CAUSE_SAID, cause, style),
    )
    prefixed = rng.random(n) < _REASON_PREFIX_SHARE
    reason = np.where(
        generic,
        _pick_from(rng, _GENERIC_REASON_GROUP, n),
        _pick_variant(rng, _CAUSE_REASONS, cause, np.where(prefixed, _SUBCATEGORY_PREFIX[subcategory], 0)),
    )
    rationale = np.where(transfer, _pick_variant(rng, _CAUSE_RATIONALES, cause, 0), -1)
    return cause, said, reason, rationale


def _feedback_delay(rng: np.random.Generator, n: int, median: float, spread: float) -> np.ndarray:
    """Seconds from an interaction's last event to its rating: minutes to hours, a few after F has passed."""
    late = rng.random(n) < _LATE_FEEDBACK_SHARE
    return np.where(
        late, rng.uniform(27 * 3600, 60 * 3600, n), _seconds(rng, n, median, spread, 5, 20 * 3600)
    )


def _rate_sessions(
    rng: np.random.Generator,
    parts: _Parts,
    *,
    episode: np.ndarray,
    channel: np.ndarray,
    outcome: np.ndarray,
    sessions: _Sessions,
) -> None:
    """Feedback on AI sessions: after a resolved one, mostly while it is still open (within S of its last
    message); during a handed-off one, between the AI's last reply and the handoff, mostly negative."""
    n = episode.size
    roll = rng.random(n)
    resolved = np.flatnonzero((outcome == _RESOLVED) & (roll < _RESOLVED_FEEDBACK))
    handed = np.flatnonzero((outcome == _HANDED_OFF) & (roll < _HANDOFF_FEEDBACK))
    after = _next_second(sessions.answered[resolved]) + _whole_us(
        _feedback_delay(rng, resolved.size, 600, 1.6)
    )
    # Milliseconds, as the AI platform logs them: strictly between the reply and the handoff (at least
    # a second apart).
    wait = (sessions.last[handed] - sessions.answered[handed]) * rng.uniform(0.2, 0.9, handed.size)
    before = sessions.answered[handed] + wait.astype(np.int64) // 1000 * 1000
    rated = np.r_[resolved, handed]
    _add_feedback(
        rng, parts, episode=episode[rated], at=np.r_[after, before], channel=channel[rated],
        negative=np.repeat([_RESOLVED_NEGATIVE, _HANDOFF_NEGATIVE], [resolved.size, handed.size]),
    )


def _rate_contacts(rng: np.random.Generator, parts: _Parts, contacts: _Contacts, ended: _Ended) -> None:
    """Feedback on team contacts, the survey after a contact_end: a minute after a call, else minutes
    to hours."""
    rated = np.flatnonzero(rng.random(contacts.episode.size) < _CONTACT_FEEDBACK)
    voice = contacts.channel[rated] == _VOICE
    delay = np.where(
        voice, _seconds(rng, rated.size, 60, 0.5, 10, 600), _feedback_delay(rng, rated.size, 900, 1.3)
    )
    _add_feedback(
        rng, parts, episode=contacts.episode[rated], at=ended.end[rated] + _whole_us(delay),
        channel=contacts.channel[rated], negative=np.full(rated.size, _CONTACT_NEGATIVE),
    )


def _add_feedback(
    rng: np.random.Generator,
    parts: _Parts,
    *,
    episode: np.ndarray,
    at: np.ndarray,
    channel: np.ndarray,
    negative: np.ndarray,
) -> None:
    """`feedback` events: a rating (negative with the given chance), mostly a score that goes with it (4-5
    when positive, 1-3 when negative), now and then a few words."""
    n = episode.size
    rating = np.where(rng.random(n) < negative, _NEGATIVE, _POSITIVE)
    cumulative = np.cumsum(_SCORE_WEIGHTS, axis=1)[rating]
    score = 1 + (rng.random(n)[:, None] >= cumulative[:, :-1]).sum(axis=1)
    score = np.where(rng.random(n) < _SCORED_SHARE, score, -1)
    text = _pick(rng, _FEEDBACK_TEXTS[0][rating], _FEEDBACK_TEXTS[1][rating])
    text = np.where(rng.random(n) < _FEEDBACK_TEXT_SHARE, text, -1)
    parts.add(episode, at, _FEEDBACK, channel=channel, rating=rating, score=score, text=text)


@dataclass(frozen=True)
class _Ended:
    end: np.ndarray  # relative time of each contact's contact_end
    close: np.ndarray  # relative time of the conversation_close after it, or -1


def _add_contacts(
    rng: np.random.Generator, parts: _Parts, contacts: _Contacts, *, closes: bool = True
) -> _Ended:
    """Team contacts (SPEC 3.2): agent and customer messages, a contact_end, maybe a close."""
    n = contacts.episode.size
    c = contacts
    inbound = c.source == _INBOUND
    voice, email = c.channel == _VOICE, c.channel == _EMAIL
    routed = np.where(voice | email, _ROUTE_TEAM, -1)
    parts.add(c.episode[inbound], c.at[inbound], _CUSTOMER, channel=c.channel[inbound],
              text=c.first_text[inbound], route=routed[inbound])

    # Waiting for a team member: minutes after a handoff, a ring or two on the phone, hours by email.
    wait = np.select(
        [c.source == _OUTBOUND, voice, email & inbound],
        [np.zeros(n), _seconds(rng, n, 40, 0.6, 8, 180), _seconds(rng, n, 5400, 0.9, 600, 8 * 3600)],
        _seconds(rng, n, 300, 0.8, 60, 1800),
    )
    agent_messages = 1 + rng.choice(3, n, p=[0.5, 0.35, 0.15])
    thanks = rng.random(n) < np.where(c.source == _OUTBOUND, 0.55, 0.45)
    messages = 2 * agent_messages - 1 + thanks
    owner, k = _positions(messages)
    m = owner.size
    gap = np.select(
        [voice[owner], email[owner]],
        [_seconds(rng, m, 60, 0.6, 10, 300), _seconds(rng, m, 5400, 0.8, 600, 10 * 3600)],
        _seconds(rng, m, 150, 0.8, 20, 1200),
    )
    step = np.where(k == 0, _whole_us(wait[owner]), _whole_us(gap))
    message_at = _next_second(c.at[owner]) + _exclusive_cumsum(step, owner, messages) + step
    from_agent = k % 2 == 0
    last_agent = k == 2 * agent_messages[owner] - 2
    t = c.topic[owner]
    agent_text = np.where(
        last_agent,
        _pick(rng, _RESOLUTIONS[0][t], _RESOLUTIONS[1][t]),
        np.where(
            (k == 0) & (c.source[owner] == _OUTBOUND),
            _pick_from(rng, _OUTBOUND_TEXTS, m),
            _pick_from(rng, _TEAM_ACK, m),
        ),
    )
    customer_text = np.where(
        k == messages[owner] - 1,
        _pick_from(rng, _CUSTOMER_THANKS, m),
        _pick_from(rng, _CUSTOMER_MID, m),
    )
    a, u = from_agent, ~from_agent
    parts.add(c.episode[owner[a]], message_at[a], _AGENT, channel=c.channel[owner[a]],
              text=agent_text[a], agent=c.agent[owner[a]])
    parts.add(c.episode[owner[u]], message_at[u], _CUSTOMER, channel=c.channel[owner[u]],
              text=customer_text[u], route=routed[owner[u]])

    last = message_at[k == messages[owner] - 1]  # one per contact, in order
    wrap_up = np.where(voice, _seconds(rng, n, 20, 0.6, 3, 60), _seconds(rng, n, 120, 0.8, 10, 1200))
    end = last + _whole_us(wrap_up)
    parts.add(c.episode, end, _END, agent=c.agent)
    roll = rng.random(n)
    closing = roll < (_CLOSE_AFTER_CONTACT_SHARE if closes else 0.0)
    # Mostly closed with the contact's end, sometimes a while later.
    later = end + _whole_us(rng.uniform(60, 5400, n))
    close = np.where(closing, np.where(roll < 0.75 * _CLOSE_AFTER_CONTACT_SHARE, end, later), -1)
    parts.add(c.episode[closing], close[closing], _CLOSE, agent=c.agent[closing])
    return _Ended(end=end, close=close)


# ---------------------------------------------------------------------------------------------
# From codes to an Arrow table


def _mix64(values: np.ndarray, seed: int) -> np.ndarray:
    """A seeded bijection of 64-bit integers (SplitMix64's finaliser), so distinct in, distinct out."""
    key = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64))
    z = values.astype(np.uint64) ^ key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _fixed_width(prefix: str, digits: np.ndarray) -> pa.Array:
    """A string array of `prefix` followed by the ASCII codes in each row of `digits` (n x width)."""
    n, width = digits.shape
    size = len(prefix) + width
    data = np.empty((n, size), dtype=np.uint8)
    data[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    data[:, len(prefix) :] = digits
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _hex_ids(prefix: str, ids: np.ndarray) -> pa.Array:
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = ((ids[:, None] >> shifts) & np.uint64(0xF)).astype(np.uint8)
    return _fixed_width(prefix, np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles])


def _decimal_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return _fixed_width(prefix, (numbers[:, None] // powers % 10 + ord("0")).astype(np.uint8))


def _decoded(codes: np.ndarray, dictionary: Sequence[str]) -> pa.Array:
    """Codes into `dictionary` as a plain string array; -1 becomes null."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(dictionary, pa.string())).dictionary_decode()


def _events_table(
    columns: dict[str, np.ndarray],
    *,
    ids: np.ndarray,
    at: np.ndarray,
    owner: np.ndarray,
    id_width: int,
    brand: str,
) -> pa.Table:
    n = ids.size
    g1, g2 = columns["guide1"], columns["guide2"]
    count = (g1 >= 0).astype(np.int32) + (g2 >= 0)
    values = np.stack([g1, g2], axis=1).ravel()
    values = values[values >= 0]
    guides = pa.ListArray.from_arrays(
        pa.array(np.r_[0, np.cumsum(count)].astype(np.int32)),
        _decoded(values, GUIDES),
        mask=pa.array(count == 0),
    )
    arrays = {
        "event_id": _hex_ids("evt_", ids),
        "type": _decoded(columns["type"], TYPES),
        "occurred_at": pa.array(at, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "customer_id": _decimal_ids("cus_", owner, id_width),
        "brand": _decoded(np.zeros(n, dtype=np.int32), [brand]),
        "channel": _decoded(columns["channel"], CHANNELS),
        "text": _decoded(columns["text"], _TEXTS.strings),
        "route": _decoded(columns["route"], ROUTES),
        "ai_agent": _decoded(columns["ai_agent"], AI_AGENTS),
        "guides": guides,
        "category": _decoded(columns["category"], CATEGORIES),
        "subcategory": _decoded(columns["subcategory"], SUBCATEGORIES),
        "reason": _decoded(columns["reason"], _REASONS.strings),
        "transfer_rationale": _decoded(columns["rationale"], _RATIONALES.strings),
        "agent": _decoded(columns["agent"], TEAM_MEMBERS),
        "rating": _decoded(columns["rating"], RATINGS),
        "score": pa.array(columns["score"].astype(np.int8), mask=columns["score"] < 0),
    }
    return pa.table(arrays, schema=SCHEMA)


# ---------------------------------------------------------------------------------------------
# Malformed records

_LINE_KINDS = ("invalid_json", "truncated_line")
_VALUE_KINDS = (
    "missing_customer_id",
    "unparseable_occurred_at",
    "occurred_at_without_offset",
    "unknown_type",
    "route_on_ai_message",
    "channel_with_spaces",
    "bad_rating",
)
_BAD_TIMES = ("yesterday", "21/05/2026 10:00", "not a date", "2026-13-45T25:61:00Z")
_BAD_TYPES = ("customer_msg", "note", "chat_transfer", "survey_response")
_BAD_CHANNELS = ("web chat", "Live Chat", "facebook messenger")
_BAD_RATINGS = ("Positive", "thumbs_up", "5 stars", "neutral")


def _bad_records(
    rng: np.random.Generator, events: pa.Table, bad_rate: float, *, seed: int, first_customer: int
) -> list[BadRecord]:
    """About `bad_rate` of all records, each a copy of a valid event broken in one way."""
    n_valid = events.num_rows
    n_bad = round(bad_rate * n_valid / (1 - bad_rate)) if n_valid else 0
    if n_bad == 0:
        return []
    positions = np.sort(rng.choice(n_valid + n_bad, n_bad, replace=False))
    kinds = rng.choice(len(_LINE_KINDS) + len(_VALUE_KINDS), n_bad)
    # A syntax problem has no row form: CSV and Parquet get a value-level problem in its place.
    substitutes = rng.choice(len(_VALUE_KINDS), n_bad)
    row_kinds = np.where(kinds < len(_LINE_KINDS), substitutes, kinds - len(_LINE_KINDS))
    base = rng.integers(0, n_valid, n_bad)
    types = events["type"].to_numpy(zero_copy_only=False)
    # A route on an AI reply is best shown on a real AI reply, a bad rating on a real feedback.
    for kind, type_ in (("route_on_ai_message", "ai_message"), ("bad_rating", "feedback")):
        rows_of_type = np.flatnonzero(types == type_)
        if rows_of_type.size:
            is_kind = row_kinds == _VALUE_KINDS.index(kind)
            base = np.where(is_kind, rows_of_type[rng.integers(0, rows_of_type.size, n_bad)], base)
    # Ids from another domain than valid ones (top bit set), so they never collide.
    block = np.uint64(1 << 63) | (np.uint64(first_customer) << np.uint64(24))
    serial = block | np.arange(n_bad, dtype=np.uint64)
    ids = _hex_ids("evt_", _mix64(serial, seed)).to_pylist()
    rows = _string_table(events.take(pa.array(base))).to_pylist()
    picks = rng.integers(0, 1 << 30, (n_bad, 2))
    records = []
    for i in range(n_bad):
        row: dict[str, str | list[str] | None] = dict(rows[i], event_id=ids[i])
        guides = row["guides"]
        row["guides"] = guides.split("|") if isinstance(guides, str) else None
        row_kind = _VALUE_KINDS[row_kinds[i]]
        broken = _break_value(row, row_kind, int(picks[i, 0]))
        if kinds[i] < len(_LINE_KINDS):
            kind = _LINE_KINDS[kinds[i]]
            line = _break_line(_json_object(row), kind, int(picks[i, 1]))
        else:
            kind, line = row_kind, _json_object(broken)
        records.append(BadRecord(int(positions[i]), kind, line, row_kind, broken))
    return records


def _break_value(
    row: dict[str, str | list[str] | None], kind: str, pick: int
) -> dict[str, str | list[str] | None]:
    broken = dict(row)
    if kind == "missing_customer_id":
        broken["customer_id"] = None
    elif kind == "unparseable_occurred_at":
        broken["occurred_at"] = _BAD_TIMES[pick % len(_BAD_TIMES)]
    elif kind == "occurred_at_without_offset":
        broken["occurred_at"] = str(row["occurred_at"]).removesuffix("Z")
    elif kind == "unknown_type":
        broken["type"] = _BAD_TYPES[pick % len(_BAD_TYPES)]
    elif kind == "route_on_ai_message":
        broken.update(type="ai_message", route="ai", channel=row["channel"] or "chat",
                      ai_agent=row["ai_agent"] or AI_AGENTS[0], agent=None,
                      category=None, subcategory=None, reason=None, transfer_rationale=None)
    elif kind == "channel_with_spaces":
        broken["channel"] = _BAD_CHANNELS[pick % len(_BAD_CHANNELS)]
    elif kind == "bad_rating":  # a feedback, whatever the row was, with a rating that is neither
        broken.update({name: None for name in COLUMNS[COLUMNS.index("text") :]})
        broken.update(type="feedback", channel=row["channel"], rating=_BAD_RATINGS[pick % len(_BAD_RATINGS)],
                      score=row["score"] if row["type"] == "feedback" else None)
    return broken


def _json_object(row: dict[str, str | list[str] | None]) -> str:
    """A row as a JSON object: absent fields left out, `score` a number as the contract wants it."""
    values: dict[str, str | list[str] | int] = {k: v for k, v in row.items() if v is not None}
    score = row.get("score")
    if isinstance(score, str):
        values["score"] = int(score)
    return json.dumps(values, ensure_ascii=False)


def _break_line(line: str, kind: str, pick: int) -> str:
    if kind == "truncated_line":
        return line[: 10 + pick % max(len(line) - 15, 1)]
    variants = (
        line[:-1] + ",}",  # trailing comma
        line.replace('"', "'"),  # single quotes
        line.replace('", "', '" "', 1),  # missing comma
    )
    return variants[pick % len(variants)]


# ---------------------------------------------------------------------------------------------
# Writers

_SLICE_ROWS = 200_000  # rows rendered at once, so that no string array nears Arrow's 2 GB limit


def _ascii_matrix(strings: Sequence[str], width: int) -> np.ndarray:
    return np.array(strings, dtype=f"S{width}").view(np.uint8).reshape(-1, width)


def _string_array(matrix: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Rows of an ASCII byte matrix, each cut to its length, as a string array."""
    data = matrix[np.arange(matrix.shape[1]) < lengths[:, None]]
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.Array.from_buffers(pa.string(), lengths.size, buffers)


def _rfc3339(timestamps: pa.Array | pa.ChunkedArray) -> pa.Array:
    """UTC instants as RFC 3339 with `Z`: `2026-05-21T10:00:00Z`, with `.123` or `.123456` only
    when the fraction is not zero."""
    micros = pc.cast(timestamps, pa.int64()).to_numpy(zero_copy_only=False)
    seconds, fraction = np.divmod(micros, _US)
    days, second_of_day = np.divmod(seconds, 86400)
    distinct, day_index = np.unique(days, return_inverse=True)
    dates = _ascii_matrix(np.datetime_as_string(distinct.astype("datetime64[D]")).tolist(), 10)
    matrix = np.empty((micros.size, 27), dtype=np.uint8)
    matrix[:, :10] = dates[day_index]
    matrix[:, 10:19] = np.frombuffer(b"T00:00:00", dtype=np.uint8)
    for column, (unit, modulo) in zip((11, 14, 17), ((3600, 24), (60, 60), (1, 60)), strict=True):
        value = second_of_day // unit % modulo
        matrix[:, column] += (value // 10).astype(np.uint8)
        matrix[:, column + 1] += (value % 10).astype(np.uint8)
    matrix[:, 19] = ord(".")
    powers = 10 ** np.arange(5, -1, -1, dtype=np.int64)
    matrix[:, 20:26] = (fraction[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    matrix[:, 26] = ord("Z")
    milli = fraction % 1000 == 0
    matrix[milli, 23] = ord("Z")
    matrix[fraction == 0, 19] = ord("Z")
    lengths = np.where(fraction == 0, 20, np.where(milli, 24, 27))
    return _string_array(matrix, lengths)


def _string_table(events: pa.Table) -> pa.Table:
    """Events with `occurred_at` in RFC 3339 and `guides` joined by `|`, every column a string."""
    arrays = []
    for name in COLUMNS:
        column = events[name].combine_chunks()
        if name == "occurred_at":
            column = _rfc3339(column)
        elif name == "guides":
            column = pc.binary_join(column, "|")
        elif name == "score":
            column = pc.cast(column, pa.string())
        arrays.append(column)
    return pa.table(arrays, schema=pa.schema([pa.field(name, pa.string()) for name in COLUMNS]))


def _json_string(values: pa.Array) -> pa.Array:
    """Strings as JSON string literals; only the characters that occur are looked for again."""
    data = values.buffers()[2]
    if data is not None and data.size:
        counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
        for byte in [ord("\\"), ord('"'), *range(32)]:
            if counts[byte]:
                escaped = json.dumps(chr(byte))[1:-1]
                values = pc.replace_substring(values, chr(byte), escaped)
    return pc.binary_join_element_wise('"', values, '"', "")


def _json_lines(events: pa.Table) -> pa.Array:
    """One JSON object per event, absent fields left out, each line ending in a newline."""
    fragments = []
    for name in COLUMNS:
        column = events[name].combine_chunks()
        if name == "occurred_at":
            literal = pc.binary_join_element_wise('"', _rfc3339(column), '"', "")
        elif name == "guides":
            items = _json_string(pc.list_flatten(column))
            lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy()
            offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
            joined = pc.binary_join(
                pa.ListArray.from_arrays(offsets, items, mask=column.is_null()), ", "
            )
            literal = pc.binary_join_element_wise("[", joined, "]", "")
        elif name == "score":
            literal = pc.cast(column, pa.string())  # a JSON number
        else:
            literal = _json_string(column)
        fragments.append(pc.binary_join_element_wise(f'"{name}": ', literal, ""))
    body = pc.binary_join_element_wise(*fragments, ", ", null_handling="skip")
    return pc.binary_join_element_wise("{", body, "}\n", "")


def _write_jsonl(blocks: Iterable[GeneratedLog], path: Path) -> int:
    written = 0
    with path.open("wb") as out:
        for block in blocks:
            # Bad record k goes right before valid event (its position - k).
            cuts = [record.position - k for k, record in enumerate(block.bad_records)]
            k = 0
            for begin in range(0, block.events.num_rows, _SLICE_ROWS):
                lines = _json_lines(block.events.slice(begin, _SLICE_ROWS))
                # The lines lie one after another in the array's data buffer.
                _, offsets_buffer, data = lines.buffers()
                offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[lines.offset :]
                view, done = memoryview(data), 0
                while k < len(cuts) and cuts[k] < begin + len(lines):
                    cut = cuts[k] - begin
                    out.write(view[offsets[done] : offsets[cut]])
                    out.write(block.bad_records[k].line.encode() + b"\n")
                    done, k = cut, k + 1
                out.write(view[offsets[done] : offsets[len(lines)]])
            for record in block.bad_records[k:]:
                out.write(record.line.encode() + b"\n")
            written += block.record_count
    return written


def _row_slices(block: GeneratedLog, *, guides_as_list: bool) -> Iterator[pa.Table]:
    """A block's events with its bad rows mixed in, in slices; every column a string, except
    `guides` when it stays a list."""
    bad = block.bad_records
    cuts = np.array([record.position - k for k, record in enumerate(bad)], dtype=np.int64)
    k = 0
    for begin in range(0, max(block.events.num_rows, 1), _SLICE_ROWS):
        events = block.events.slice(begin, _SLICE_ROWS)
        table = _string_table(events)
        if guides_as_list:
            table = table.set_column(
                COLUMNS.index("guides"), "guides", events["guides"].combine_chunks()
            )
        last = begin + _SLICE_ROWS >= block.events.num_rows
        stop = len(bad) if last else int(np.searchsorted(cuts, begin + events.num_rows))
        if stop > k:
            table = _with_bad_rows(table, bad[k:stop], cuts[k:stop] - begin, guides_as_list)
        k = stop
        yield table


def _with_bad_rows(
    table: pa.Table, bad: Sequence[BadRecord], cuts: np.ndarray, guides_as_list: bool
) -> pa.Table:
    """`table` with each bad row inserted before the row at its cut."""
    columns = {name: [record.row[name] for record in bad] for name in COLUMNS}
    if not guides_as_list:
        columns["guides"] = [
            "|".join(g) if isinstance(g, list) else g for g in columns["guides"]
        ]
    rows = pa.table(
        {name: pa.array(values, table.schema.field(name).type) for name, values in columns.items()}
    )
    order = np.arange(table.num_rows + len(bad))
    is_bad = np.zeros(order.size, dtype=bool)
    is_bad[cuts + np.arange(len(bad))] = True
    order[~is_bad] = np.arange(table.num_rows)
    order[is_bad] = table.num_rows + np.arange(len(bad))
    return pa.concat_tables([table, rows]).take(pa.array(order))


_TEXT_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in COLUMNS])


def _write_csv(blocks: Iterable[GeneratedLog], path: Path) -> int:
    import duckdb

    written = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal written
        for block in blocks:
            for table in _row_slices(block, guides_as_list=False):
                written += table.num_rows
                yield from table.to_batches()

    reader = pa.RecordBatchReader.from_batches(_TEXT_SCHEMA, batches())
    connection = duckdb.connect()
    try:
        connection.register("events", reader)
        target = str(path).replace("'", "''")
        connection.execute(
            f"COPY (SELECT * FROM events) TO '{target}' (FORMAT CSV, HEADER, NEW_LINE '\r\n')"
        )
    finally:
        connection.close()
    return written


def _write_parquet(blocks: Iterable[GeneratedLog], path: Path) -> int:
    written = 0
    writer: pq.ParquetWriter | None = None
    try:
        for block in blocks:
            # Malformed times cannot live in a timestamp column: then every time is a string.
            tables = (
                _row_slices(block, guides_as_list=True) if block.bad_rate > 0 else [block.events]
            )
            for table in tables:
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
                written += table.num_rows
        if writer is None:
            writer = pq.ParquetWriter(path, SCHEMA)
    finally:
        if writer is not None:
            writer.close()
    return written
