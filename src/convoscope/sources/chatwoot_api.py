"""Chatwoot's REST API read as backfill records (SOURCES.md 1.1): an account's conversation list, then each
conversation's messages, as Chatwoot pages them; for `convoscope pull chatwoot` (issue 23 point 4).

What the API does, read in chatwoot/chatwoot:
- app/controllers/concerns/access_token_auth_helper.rb: a token travels in the `api_access_token` header; an
  unknown one is answered 401 `{"error": "Invalid Access Token"}` (app/controllers/concerns/
  request_exception_handler.rb `render_unauthorized`); ensure_current_account_helper.rb: a user who is
  not a member of the account gets 401 too.
- app/controllers/api/v1/profiles_controller.rb and app/views/api/v1/models/_user.json.jbuilder:
  `GET /api/v1/profile` lists the user's `accounts[]`, each with its `id` and `role` (`agent` or
  `administrator`, app/models/account_user.rb). The profile also carries the user's own `access_token`:
  it is read for the role and nothing of it is kept or shown.
- app/controllers/api/v1/accounts/conversations_controller.rb `index` and app/finders/
  conversation_finder.rb: `GET /api/v1/accounts/{a}/conversations` gives open conversations unless
  `status=all`; `page` from 1, `CONVERSATION_RESULTS_PER_PAGE` (25 by default) per page, ordered by
  `sort_by` (default `last_activity_at_desc`: newest activity first, app/models/concerns/sort_handler.rb).
  An agent sees the conversations of the inboxes they belong to; an administrator sees every one
  (app/services/conversations/permission_filter_service.rb). app/views/api/v1/accounts/conversations/
  index.json.jbuilder: `{"data": {"meta": {..., "all_count": n}, "payload": [conversation, ...]}}`;
  app/views/api/v1/conversations/partials/_conversation.json.jbuilder: each with `id` (the display id
  the URLs use) and `last_activity_at` in epoch seconds.
- app/controllers/api/v1/accounts/conversations/messages_controller.rb and app/finders/
  message_finder.rb: `GET .../conversations/{id}/messages` gives the latest 20 messages by `created_at`,
  oldest first; `before=ID` the 20 before message ID. app/views/api/v1/accounts/conversations/messages/
  index.json.jbuilder: `{"meta": {...}, "payload": [message, ...]}` (app/views/api/v1/models/
  _message.json.jbuilder); no count, so a page shorter than 20 is the first one.
- config/initializers/rack_attack.rb: requests are throttled per IP (`RACK_ATTACK_LIMIT`, 3,000 a
  minute by default); rack-attack answers 429, with `Retry-After` only where configured
  (rack/rack-attack lib/rack/attack/configuration.rb), and a proxy in front may send one too.

The client retries what a network or a busy server does to a long pull, and nothing else: a 429 waits as
long as `Retry-After` says (seconds or an HTTP date) or, without one, a growing pause; a 5xx answer or a
dropped connection is tried again after a growing pause, RETRIES times, then the pull stops with one line
saying to run it again (it goes on where it stopped). The token is sent in its header only and never
appears in a message.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from convoscope.errors import ConvoscopeError, ParameterError, Wording, as_wording

PROFILE = "/api/v1/profile"
MESSAGES_PER_PAGE = 20  # MessageFinder's page with `before`
RETRIES = 5  # tries after the first, for a 5xx answer or a dropped connection
FIRST_PAUSE = 1.0  # seconds before the first of them, doubled each time: 1, 2, 4, 8, 16
THROTTLED_TRIES = 10  # 429 answers in a row before giving up
THROTTLED_PAUSE = 10.0  # seconds after a 429 without Retry-After, doubled up to a minute (rack-attack's period)
LONGEST_WAIT = 900.0  # a Retry-After longer than this stops the pull instead of waiting
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
AGAIN = "what was pulled is kept: run pull again later and it goes on where it stopped"

sleep = time.sleep  # the pause between tries (tests replace it to count the pauses instead of waiting)


class PullError(ConvoscopeError):
    """A pull that cannot go on: what Chatwoot answered and what to do."""


@dataclass
class ConversationPage:
    """One page of the conversation list: the conversations on it (those with activity since `--since`
    when it was given) and the list's `all_count` when Chatwoot sent it."""

    conversations: list[dict[str, Any]]
    all_count: int | None


def read_token(path: Path) -> str:
    """The access token in `path`: the file's one line (a token on the command line would show in `ps`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise ParameterError("token_file", lambda n: f"{n('token_file')} {path}: cannot read it ({reason}); give a file "
                                                     "holding the access token") from None
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise ParameterError("token_file", lambda n: f"{n('token_file')} {path}: it must hold the access token alone, "
                                                     "on one line (Chatwoot: Profile settings, Access Token)")
    return token


def site_of(url: str) -> str:
    """The installation `url` names, written one way (lower-case scheme and host, no trailing slash), as
    the store keys what was pulled from it."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ParameterError("url", lambda n: f"{n('url')} {url!r} is not the address of a Chatwoot installation; "
                                              "give one such as https://chat.example.com")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ParameterError("url", lambda n: f"{n('url')} {url!r}: give the installation's address alone, without a "
                                              f"name, password, query or fragment (the token goes in {n('token_file')})")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_since(text: str) -> int:
    """`--since`: a day (YYYY-MM-DD, from its start in UTC) or an RFC 3339 time with an offset, as epoch
    seconds, the unit of Chatwoot's `last_activity_at`."""
    try:
        if _DAY.fullmatch(text):
            return int(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp())
        value = datetime.fromisoformat(text.replace("z", "Z"))
        if value.tzinfo is not None and "T" in text.upper():
            return int(value.timestamp())
    except ValueError:
        pass
    raise ParameterError("since", lambda n: f"{n('since')} {text!r} is not a date; use YYYY-MM-DD (UTC) or a time "
                                            "such as 2026-05-01T00:00:00Z")


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait that a `Retry-After` header asks for (RFC 9110 10.2.3: seconds, or an HTTP date);
    None when there is none or it cannot be read."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def activity_of(conversation: dict[str, Any]) -> int | None:
    """A listed conversation's `last_activity_at` (epoch seconds), None when it has none."""
    value = conversation.get("last_activity_at")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Chatwoot:
    """One account of a Chatwoot installation, read over HTTP with an access token."""

    def __init__(self, url: str, token: str, account: int) -> None:
        self.site = site_of(url)
        self.account = account
        self._token = token
        self._answered = False  # whether the installation ever answered: a wrong address fails at once
        self._http = httpx.Client(base_url=self.site, headers={"api_access_token": token, "Accept": "application/json"},
                                  timeout=TIMEOUT, follow_redirects=False)

    def __enter__(self) -> Chatwoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def _conversations(self) -> str:
        return f"/api/v1/accounts/{self.account}/conversations"

    def role(self) -> str:
        """The token's role in the account (`administrator`, `agent`), from its user's profile."""
        profile = self._get(PROFILE, {})
        accounts = profile.get("accounts") if isinstance(profile, dict) else None
        if not isinstance(accounts, list):
            raise self._check(f"{self.site}{PROFILE} did not answer with a Chatwoot profile", "url")
        ids = []
        for item in accounts:
            if isinstance(item, dict):
                ids.append(str(item.get("id")))
                if item.get("id") == self.account:
                    return str(item.get("role"))
        raise PullError(lambda n: f"the access token's user is not a member of account {self.account} at {self.site} "
                                  f"(its accounts: {', '.join(ids) or 'none'}); check {n('account')}", param="account")

    def conversation_pages(self, *, since: int | None = None) -> Iterator[ConversationPage]:
        """Every page of the account's conversation list, every status, newest activity first; with
        `since`, only the conversations active since then, and no page after the first older one."""
        page, size = 1, 0
        while True:
            data = self._get(self._conversations, {"status": "all", "sort_by": "last_activity_at_desc", "page": page})
            body = data.get("data") if isinstance(data, dict) else None
            payload = body.get("payload") if isinstance(body, dict) else None
            if not isinstance(payload, list):
                raise self._check(f"{self.site}{self._conversations} did not answer with Chatwoot's conversation "
                                  "list (no data.payload)", "url")
            meta = body.get("meta") if isinstance(body, dict) else None
            count = meta.get("all_count") if isinstance(meta, dict) else None
            count = count if isinstance(count, int) and not isinstance(count, bool) else None
            for item in payload:
                if not isinstance(item, dict) or not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool):
                    raise self._check(f"{self.site}{self._conversations}?page={page} listed a conversation without a "
                                      "whole-number id", "url")
            kept = payload
            older = False
            if since is not None:
                kept = [c for c in payload if (activity := activity_of(c)) is None or activity >= since]
                older = len(kept) < len(payload)
            yield ConversationPage(kept, count)
            size = size or len(payload)
            # Pages are full but the last (Kaminari); all_count, counted at each request, spares asking for
            # an empty page after a full last one.
            if older or len(payload) < size or not payload or (count is not None and page * size >= count):
                return
            page += 1

    def messages(self, conversation: int) -> list[dict[str, Any]] | None:
        """Every message of a conversation, oldest first, as its pages give them (each message once);
        None when the conversation is gone (deleted since it was listed)."""
        pages: list[list[Any]] = []
        before: int | None = None
        path = f"{self._conversations}/{conversation}/messages"
        while True:
            data = self._get(path, {} if before is None else {"before": before}, missing_ok=True)
            if data is None:
                return None
            payload = data.get("payload") if isinstance(data, dict) else None
            if not isinstance(payload, list):
                raise self._check(f"{self.site}{path} did not answer with Chatwoot's messages (no payload)", "url")
            pages.append(payload)
            ids = [m["id"] for m in payload if isinstance(m, dict) and type(m.get("id")) is int]
            if len(payload) < MESSAGES_PER_PAGE or not ids or (before is not None and min(ids) >= before):
                break
            before = min(ids)
        found: list[dict[str, Any]] = []
        seen: set[int] = set()
        for page_items in reversed(pages):
            for item in page_items:
                key = item.get("id") if isinstance(item, dict) else None
                if type(key) is int:
                    if key in seen:
                        continue
                    seen.add(key)
                found.append(item)
        return found

    def _get(self, path: str, params: dict[str, Any], *, missing_ok: bool = False) -> Any:
        """One GET, tried again after a 429, a 5xx answer or a dropped connection; its JSON, or None for a
        404 when `missing_ok`."""
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        failures = throttled = 0
        while True:
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as error:
                reason = _reason(error)
                if not self._answered and isinstance(error, httpx.ConnectError | httpx.UnsupportedProtocol):
                    raise self._check(f"cannot reach Chatwoot at {self.site} ({reason})", "url") from None
                failures += 1
                if failures > RETRIES:
                    raise self._error(f"Chatwoot at {self.site} did not answer GET {shown} {failures} times in a row "
                                      f"(last: {reason}); {AGAIN}") from None
                sleep(FIRST_PAUSE * 2 ** (failures - 1))
                continue
            self._answered = True
            status = response.status_code
            if status == 429:
                throttled += 1
                wait = retry_after(response.headers.get("retry-after"))
                if throttled > THROTTLED_TRIES:
                    raise self._error(f"Chatwoot at {self.site} kept answering 429 Too Many Requests; {AGAIN}")
                if wait is not None and wait > LONGEST_WAIT:
                    raise self._error(f"Chatwoot at {self.site} asks to wait {wait:.0f} s before the next request "
                                      f"(429 Too Many Requests); {AGAIN}")
                sleep(wait if wait is not None else min(THROTTLED_PAUSE * 2 ** (throttled - 1), 60.0))
                continue
            if status >= 500:
                failures += 1
                if failures > RETRIES:
                    raise self._error(f"Chatwoot at {self.site} answered GET {shown} with {status} "
                                      f"{response.reason_phrase} {failures} times in a row; {AGAIN}")
                sleep(FIRST_PAUSE * 2 ** (failures - 1))
                continue
            failures = throttled = 0
            return self._answer(response, path, shown, missing_ok=missing_ok)

    def _answer(self, response: httpx.Response, path: str, shown: str, *, missing_ok: bool) -> Any:
        """The JSON of an answer to GET `path` (`shown` with its query) that is not to be tried again, or the
        PullError it calls for."""
        status = response.status_code
        if status == 401:
            said = _said(response)
            raise self._error(lambda n: f"Chatwoot at {self.site} refused the access token for GET {shown} "
                                        f"({said or '401 Unauthorized'}); put the access token of an administrator "
                                        f"of account {self.account} in {n('token_file')} (Chatwoot: Profile "
                                        "settings, Access Token)", param="token_file")
        if status == 404 and missing_ok:
            return None
        if status == 404:
            wrong, what = (("account", f"no account {self.account}") if path.startswith("/api/v1/accounts/")
                           else ("url", f"no {path}"))
            raise self._error(lambda n: f"Chatwoot at {self.site} has {what}; check {n(wrong)} (GET {shown}: "
                                        "404 Not Found)", param=wrong)
        if 300 <= status < 400 and response.headers.get("location"):
            # Not followed: the token header would go wherever the redirect points.
            location = response.headers["location"][:200]
            raise self._error(lambda n: f"Chatwoot at {self.site} redirects GET {shown} to {location}; give that "
                                        f"installation's address as {n('url')}", param="url")
        if status != 200:
            said = _said(response)
            raise self._check(f"Chatwoot at {self.site} answered GET {shown} with {status} {response.reason_phrase}"
                              f"{': ' + said if said else ''}", "url", "account")
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise self._error(lambda n: f"{self.site} answered GET {shown} with {kind}, not Chatwoot's JSON; check "
                                        f"{n('url')} (the address of the Chatwoot installation, such as "
                                        "https://chat.example.com)", param="url") from None

    def _check(self, message: str, *params: str) -> PullError:
        """A PullError saying to check the parameters, each named as the interface names it: `; check --url`."""
        return self._error(lambda n: f"{message}; check {' and '.join(map(n, params))}", param=params[0])

    def _error(self, message: str | Wording, *, param: str | None = None) -> PullError:
        """A PullError whose message cannot carry the token, whatever an answer quoted."""
        say = as_wording(message)
        return PullError(lambda name: say(name).replace(self._token, "[token]"), param=param)


def _said(response: httpx.Response) -> str:
    """What an error answer says (Chatwoot's `{"error": ...}`), short, on one line."""
    try:
        body = response.json()
    except ValueError:
        return ""
    said = body.get("error") or body.get("message") if isinstance(body, dict) else None
    return " ".join(str(said).split())[:120] if said else ""


def _reason(error: httpx.TransportError) -> str:
    text = " ".join(str(error).split())[:160]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
