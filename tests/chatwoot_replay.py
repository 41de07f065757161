"""A stand-in for a Chatwoot installation's REST API, for `pull chatwoot` tests: a real HTTP server on a
free loopback port (http.server in a thread: real sockets, keep-alive, a socket closed mid-answer) that
serves a dataset of backfill records (SOURCES.md 1.1: `{"conversation": ..., "messages": [...]}`) exactly
as Chatwoot's API pages them, and fails on purpose when told to.

Each shape comes from chatwoot/chatwoot (read, not copied):
- `api_access_token` header, 401 `{"error": "Invalid Access Token"}`: app/controllers/concerns/
  access_token_auth_helper.rb, request_exception_handler.rb; an account the user is not a member of:
  ensure_current_account_helper.rb (401), one that does not exist: `Account.find` (404).
- `GET /api/v1/profile`: app/controllers/api/v1/profiles_controller.rb, app/views/api/v1/models/
  _user.json.jbuilder (the user, its `access_token`, and `accounts[]` with `id` and `role`).
- `GET /api/v1/accounts/{a}/conversations`: app/finders/conversation_finder.rb (`status` open unless
  given, `all` for every status; `page` from 1, 25 a page, `CONVERSATION_RESULTS_PER_PAGE`; `sort_by`
  default `last_activity_at_desc`; an agent sees only the inboxes they belong to), app/views/api/v1/
  accounts/conversations/index.json.jbuilder (`data.meta` with the four counts, `data.payload`).
- `GET .../conversations/{id}/messages[?before=ID]`: app/finders/message_finder.rb (the 20 latest by
  `created_at`, or the 20 before message ID, oldest first), app/views/api/v1/accounts/conversations/
  messages/index.json.jbuilder (`meta`: labels, additional_attributes, contact; `payload`); a conversation
  that does not exist is a 404 `{"error": "Resource could not be found"}`.
- 429 `Retry later` as text/plain, `Retry-After` only when configured: config/initializers/
  rack_attack.rb and rack/rack-attack lib/rack/attack/configuration.rb.

Conversations and messages are served as the dataset holds them, so a dataset in the sample's shapes is
answered in Chatwoot's.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SAMPLE = Path(__file__).parent / "fixtures" / "sources" / "chatwoot" / "backfill.jsonl"
TOKEN = "cw-admin-token-4f9c2d7e1b"  # what a Chatwoot access token looks like: letters and digits
ACCOUNT = 3  # the sample's account
PER_PAGE = 25  # CONVERSATION_RESULTS_PER_PAGE's default
MESSAGES_PER_PAGE = 20  # MessageFinder's


def sample_records() -> list[dict[str, Any]]:
    """The sample's two backfill records, in the exact REST shapes."""
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def make_records(count: int, *, messages: Callable[[int], int], first_id: int = 1000,
                 first_activity: int = 1_779_000_000, inbox: int = 11) -> list[dict[str, Any]]:
    """`count` backfill records made from the sample's second conversation (its contact, Captain and agent
    messages, notes and activities, in turn): conversation `first_id + i` of contact `9000 + i` holds
    `messages(i)` messages with ids and times rising, and its last activity is its last message's. No
    field is added that the sample does not have; the listed conversation's own `messages` (its last
    message, in another shape) is left empty."""
    template = sample_records()[1]
    kinds = template["messages"]
    records = []
    message_id = first_id * 1_000
    for i in range(count):
        conversation = copy.deepcopy(template["conversation"])
        number = first_id + i
        start = first_activity + i * 3_600
        conversation.update(id=number, inbox_id=inbox, created_at=start, messages=[],
                            uuid=f"00000000-0000-4000-8000-{number:012d}")
        conversation["meta"]["sender"].update(id=9000 + i, name=f"Customer {i}", email=f"c{i}@mail.example",
                                              identifier=None)
        items = []
        for n in range(messages(i)):
            item = copy.deepcopy(kinds[n % len(kinds)])
            message_id += 1
            item.update(id=message_id, conversation_id=number, inbox_id=inbox, created_at=start + 7 * n,
                        content=f"message {n} of conversation {number}")
            items.append(item)
        last = items[-1]["created_at"] if items else start
        conversation.update(last_activity_at=last, timestamp=last, contact_last_seen_at=last)
        records.append({"conversation": conversation, "messages": items})
    return records


@dataclass
class Fault:
    """A failure served instead of an answer: `kind` 429, 500 or drop (the socket closed half-way through
    the answer), on requests whose path contains `path`, after letting `after` of them through, `times`
    times (None: from then on, for good)."""

    kind: str
    path: str = ""
    after: int = 0
    times: int | None = 1
    retry_after: str | None = None
    matched: int = 0


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    answer: int | str  # the status sent, or "drop"


@dataclass
class Replay:
    """The dataset and what the server does; `requests` lists every request it saw, in order."""

    records: list[dict[str, Any]]
    token: str = TOKEN
    account: int = ACCOUNT
    role: str = "administrator"
    inboxes: set[int] | None = None  # an agent's inboxes; None: every inbox (an administrator)
    per_page: int = PER_PAGE
    faults: list[Fault] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    delay: float = 0.0  # seconds before each answer, for a pull slow enough to interrupt
    on_request: Callable[[Seen], None] | None = None  # called after each answer, to change the data meanwhile
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, kind: str, *, path: str = "", after: int = 0, times: int | None = 1,
             retry_after: str | None = None) -> None:
        assert kind in ("429", "500", "drop"), kind
        with self.lock:
            self.faults.append(Fault(kind, path, after, times, retry_after))

    def heal(self) -> None:
        """Forget every fault still to come: the installation works again."""
        with self.lock:
            self.faults.clear()

    def conversation(self, number: int) -> dict[str, Any]:
        return next(r for r in self.records if r["conversation"]["id"] == number)

    def message_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/messages")]

    def list_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/conversations")]

    # --- answers -----------------------------------------------------------------------------------

    def fault_for(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path in path:
                    fault.matched += 1
                    if fault.matched <= fault.after:
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def answer(self, path: str, query: dict[str, str], token: str | None) -> tuple[int, Any]:
        if token != self.token:
            return 401, {"error": "Invalid Access Token"}
        parts = path.strip("/").split("/")
        if parts == ["api", "v1", "profile"]:
            return 200, self.profile()
        if parts[:3] != ["api", "v1", "accounts"] or len(parts) < 5 or parts[4] != "conversations":
            return 404, {"error": "Resource could not be found"}
        if not parts[3].isdigit() or int(parts[3]) != self.account:
            return 404, {"error": "Resource could not be found"}
        if len(parts) == 5:
            return 200, self.conversations(query)
        if len(parts) == 7 and parts[6] == "messages" and parts[5].isdigit():
            return self.messages(int(parts[5]), query)
        return 404, {"error": "Resource could not be found"}

    def profile(self) -> dict[str, Any]:
        name = "Alex Admin" if self.role == "administrator" else "Andy Agent"
        return {
            "access_token": self.token, "account_id": self.account, "available_name": name, "avatar_url": "",
            "confirmed": True, "display_name": None, "message_signature": None, "email": "alex@acme.example",
            "id": 7, "inviter_id": None, "name": name, "provider": "email", "pubsub_token": "Zx8qLm3kTp9sVw2aRb6c",
            "role": self.role, "ui_settings": {}, "uid": "alex@acme.example", "type": "User",
            "accounts": [{"id": self.account, "name": "Acme Outdoor", "status": "active",
                          "active_at": "2026-05-21T09:00:00.000Z", "role": self.role, "permissions": [self.role],
                          "availability": "online", "availability_status": "online", "auto_offline": True}],
        }

    def visible(self) -> list[dict[str, Any]]:
        return [r["conversation"] for r in self.records
                if self.inboxes is None or r["conversation"].get("inbox_id") in self.inboxes]

    def conversations(self, query: dict[str, str]) -> dict[str, Any]:
        listed = self.visible()
        status = query.get("status", "open")
        if status != "all":
            listed = [c for c in listed if c.get("status") == status]
        ascending = query.get("sort_by") == "last_activity_at_asc"
        listed = sorted(listed, key=lambda c: (c.get("last_activity_at") or 0, c["id"]), reverse=not ascending)
        page = int(query["page"]) if query.get("page", "").isdigit() and int(query["page"]) > 0 else 1
        unassigned = sum(1 for c in listed if not c.get("meta", {}).get("assignee"))
        return {"data": {
            "meta": {"mine_count": 0, "assigned_count": len(listed) - unassigned, "unassigned_count": unassigned,
                     "all_count": len(listed)},
            "payload": copy.deepcopy(listed[(page - 1) * self.per_page:page * self.per_page]),
        }}

    def messages(self, number: int, query: dict[str, str]) -> tuple[int, Any]:
        found = [r for r in self.records if r["conversation"]["id"] == number
                 and (self.inboxes is None or r["conversation"].get("inbox_id") in self.inboxes)]
        if not found:
            return 404, {"error": "Resource could not be found"}
        conversation, items = found[0]["conversation"], found[0]["messages"]
        if query.get("before", "").isdigit():
            items = [m for m in items if m["id"] < int(query["before"])]
        latest = sorted(items, key=lambda m: (m["created_at"], m["id"]), reverse=True)[:MESSAGES_PER_PAGE]
        return 200, {
            "meta": {"labels": conversation.get("labels", []),
                     "additional_attributes": conversation.get("additional_attributes", {}),
                     "contact": conversation.get("meta", {}).get("sender")},
            "payload": copy.deepcopy(latest[::-1]),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Chatwoot's Puma serves
    disable_nagle_algorithm = True  # headers and body go in two writes: without it, each answer waits 40 ms
    replay: Replay

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's own name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's own name
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        replay = self.replay
        if replay.delay:
            time.sleep(replay.delay)
        fault = replay.fault_for(parts.path)
        if fault is None:
            status, body = replay.answer(parts.path, query, self.headers.get("api_access_token"))
            replay.requests.append(Seen(parts.path, query, status))
            self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")
        elif fault.kind == "429":
            replay.requests.append(Seen(parts.path, query, 429))
            self._send(429, b"Retry later\n", "text/plain",
                       {"Retry-After": fault.retry_after} if fault.retry_after is not None else {})
        elif fault.kind == "500":
            replay.requests.append(Seen(parts.path, query, 500))
            self._send(500, b'{"error":"Internal Server Error"}', "application/json; charset=utf-8")
        else:  # drop: the headers and half of a whole answer, then the socket closes
            replay.requests.append(Seen(parts.path, query, "drop"))
            status, body = replay.answer(parts.path, query, self.headers.get("api_access_token"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        if replay.on_request is not None:
            replay.on_request(replay.requests[-1])

    def _send(self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serving(replay: Replay) -> Iterator[Replay]:
    """Serve `replay` on a free loopback port until the block ends; `replay.url` is its address."""
    handler = type("Handler", (_Handler,), {"replay": replay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="chatwoot-replay", daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
