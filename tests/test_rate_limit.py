"""Gladly's limits over a real server (issue 25 point 4, decision 97): `[server] rate_limit` requests a second
per API token (default 10, as Gladly's; 0 turns it off) on the report API and Gladly's organization, agents and
customer-profiles endpoints; every answer of those carries `Ratelimit-Limit-Second` and
`Ratelimit-Remaining-Second`, and one over the limit is 429 with an integer `Retry-After` and the `errors` body.
Events in and webhooks are never limited.

No assertion is on time. A burst starts after the caller's last window has closed (a pause of more than the
window's second), so its first `limit` requests are always let through; the next one is refused unless the
machine was so slow that the window closed before it, which its headers show (a fresh window's count) — then
the burst is sent again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import httpx
import pytest

from cli_helpers import Convoscope, ev
from web_helpers import LiveServer, add_user, bearer, ingest_worked_example, serving

LIMIT, REMAINING = "Ratelimit-Limit-Second", "Ratelimit-Remaining-Second"
PAUSE = 1.2  # longer than a window: the caller's last window has closed
TRIES = 5
REPORT_DAY = {"from": "2026-05-21", "to": "2026-05-21"}
POST_BODY = {"metricSet": "sessions-detail", "startAt": "2026-05-21", "endAt": "2026-05-21"}

Call = Callable[[httpx.Client, dict[str, str]], httpx.Response]
LIMITED: dict[str, Call] = {
    "organization": lambda c, h: c.get("/api/v1/organization", headers=h),
    "agents": lambda c, h: c.get("/api/v1/agents", headers=h),
    "customer profile": lambda c, h: c.get("/api/v1/customer-profiles/c1", headers=h),
    "GET report": lambda c, h: c.get("/api/v1/reports/sessions-summary", params=REPORT_DAY, headers=h),
    "POST report": lambda c, h: c.post("/api/v1/reports", json=POST_BODY, headers=h),
    "work sessions (404)": lambda c, h: c.post("/api/v1/reports/work-session-events", json={}, headers=h),
}


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    tokens: dict[str, str]

    def configure(self, text: str) -> None:
        """The configuration file; the running server follows it (issue 24)."""
        assert self.store.config is not None
        self.store.config.write_text(text)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("rate-limit"))
    ingest_worked_example(store)
    tokens = {"analyst": add_user(store, "ana", "analyst"), "admin": add_user(store, "root", "administrator")}
    tokens["analyst-2"] = add_user(store, "bob", "analyst")
    with serving(store) as server:
        yield Site(store, server, tokens)


@pytest.fixture
def limit(site: Site, request: pytest.FixtureRequest) -> Iterator[int]:
    """The configuration of the test's parameter: an empty file (the default, 10) or `rate_limit = N`."""
    value = getattr(request, "param", None)
    site.configure("" if value is None else f"[server]\nrate_limit = {value}\n")
    yield 10 if value is None else value
    site.configure("")


def burst(client: httpx.Client, headers: dict[str, str], calls: list[Call], limit: int) -> list[httpx.Response]:
    """`limit` + 1 requests back to back (cycling through `calls`), starting in a fresh window, until the last one
    was sent inside the window the first opened."""
    for _ in range(TRIES):
        time.sleep(PAUSE)
        answers = [calls[i % len(calls)](client, headers) for i in range(limit + 1)]
        refused = [i for i, a in enumerate(answers[:limit]) if a.status_code == 429]
        assert not refused, f"request {refused[0] + 1} of a fresh window was refused"
        # A window that closed during the burst (a slow moment of a busy machine) shows as a count that went
        # up again: try again. One that did not is for assert_limited to judge.
        left = [int(a.headers.get(REMAINING, "-1")) for a in answers]
        if all(later <= earlier for earlier, later in pairwise(left)):
            return answers
    pytest.fail(f"in {TRIES} tries no {limit + 1} requests fitted in one second: the machine is too slow")


def assert_limited(answers: list[httpx.Response], limit: int) -> None:
    """The first `limit` answered, counting down; the next refused with 429, Retry-After and the errors body."""
    for i, answer in enumerate(answers):
        assert answer.headers.get(LIMIT) == str(limit), (i, dict(answer.headers))
        assert answer.headers.get(REMAINING) == str(max(0, limit - 1 - i)), (i, dict(answer.headers))
    assert not [a for a in answers[:-1] if a.status_code == 429]
    refused = answers[-1]
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"].isdigit() and int(refused.headers["Retry-After"]) >= 1
    (error,) = refused.json()["errors"]
    assert error["code"] == "rate_limited" and str(limit) in error["detail"] and "Retry-After" in error["detail"]


def test_the_eleventh_request_in_a_second_of_one_token_is_429(site: Site, limit: int) -> None:
    """The default is Gladly's 10 a second, shared by every limited endpoint of the token."""
    assert limit == 10
    with site.server.client() as client:
        answers = burst(client, bearer(site.tokens["analyst"]), list(LIMITED.values()), limit)
        assert_limited(answers, limit)
        assert [a.status_code for a in answers[:6]] == [200, 200, 200, 200, 200, 404]
        # Another token is not limited by the first: its own window, full.
        other = LIMITED["organization"](client, bearer(site.tokens["analyst-2"]))
    assert other.status_code == 200
    assert other.headers[REMAINING] == str(limit - 1)


@pytest.mark.parametrize("limit", [2], indirect=True)
@pytest.mark.parametrize("name", list(LIMITED))
def test_every_limited_endpoint_counts_and_refuses(site: Site, limit: int, name: str) -> None:
    with site.server.client() as client:
        assert_limited(burst(client, bearer(site.tokens["analyst"]), [LIMITED[name]], limit), limit)


@pytest.mark.parametrize("limit", [2], indirect=True)
def test_http_basic_and_bearer_with_one_token_share_its_count(site: Site, limit: int) -> None:
    """Gladly's clients send HTTP Basic (name and token); the count is the token's however it is sent."""
    token = site.tokens["analyst"]
    with site.server.client() as client:
        for _ in range(TRIES):
            time.sleep(PAUSE)
            answers = [client.get("/api/v1/organization", headers=bearer(token)),
                       client.get("/api/v1/organization", auth=("ana", token)),
                       client.get("/api/v1/organization", auth=("ana", token))]
            if answers[-1].status_code == 429 or answers[-1].headers[REMAINING] != "1":
                break
    assert_limited(answers, limit)


@pytest.mark.parametrize("limit", [2], indirect=True)
def test_callers_without_a_token_are_counted_by_address(site: Site, limit: int) -> None:
    """Refusals (401) are limited answers too, with the headers; anonymous callers share their address's count."""
    with site.server.client() as client:
        answers = burst(client, {}, [LIMITED["agents"]], limit)
    assert [a.status_code for a in answers[:-1]] == [401, 401]
    assert_limited(answers, limit)


@pytest.mark.parametrize("limit", [2], indirect=True)
def test_events_in_and_webhooks_are_never_limited(site: Site, limit: int) -> None:
    """The administrator's token used up on a limited endpoint still sends events, and those answers and the
    webhook's carry no rate-limit header."""
    events = [ev(f"rl{i}", "customer_message", "2026-05-25T08:00:00Z", customer=f"rl-{i}") for i in range(3)]
    headers = bearer(site.tokens["admin"])
    with site.server.client() as client:
        assert burst(client, headers, [LIMITED["organization"]], limit)[-1].status_code == 429
        sent = [client.post("/api/v1/events", json=[e], headers=headers) for e in events * 4]
        hook = client.post("/api/v1/sources/chatwoot/webhook", json={"event": "message_created"})
    assert [a.status_code for a in sent] == [200] * len(sent)
    assert [a.json()["accepted"] for a in sent[:3]] == [1, 1, 1]
    for answer in [*sent, hook]:
        assert not [h for h in (LIMIT, REMAINING, "Retry-After") if h in answer.headers], dict(answer.headers)
    assert hook.status_code != 429


@pytest.mark.parametrize("limit", [0], indirect=True)
def test_a_limit_of_0_turns_it_off(site: Site, limit: int) -> None:
    time.sleep(PAUSE)
    with site.server.client() as client:
        answers = [LIMITED["organization"](client, bearer(site.tokens["analyst"])) for _ in range(25)]
    assert [a.status_code for a in answers] == [200] * 25
    assert not [a for a in answers if LIMIT in a.headers or REMAINING in a.headers]


def test_a_change_of_the_setting_applies_without_a_restart(site: Site) -> None:
    headers = bearer(site.tokens["analyst-2"])
    with site.server.client() as client:
        site.configure("[server]\nrate_limit = 7\n")
        assert client.get("/api/v1/agents", headers=headers).headers[LIMIT] == "7"
        site.configure("[server]\nrate_limit = 0\n")
        assert LIMIT not in client.get("/api/v1/agents", headers=headers).headers
        site.configure("")
        assert client.get("/api/v1/agents", headers=headers).headers[LIMIT] == "10"
