"""Search (issue 29 point 1): conversations by id and messages by their words, over the API and the page of a
real `convoscope serve`, with what each role may find, the audit, and the index following the store (new
events, an erased customer, the index file deleted).
"""

from __future__ import annotations

import csv
import html
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli_helpers import Convoscope, ev, make_id
from convoscope import search
from convoscope.search import index_path
from convoscope.store import Store
from web_helpers import LiveServer, add_user, bearer, cli_ok, log_in, serving

CONFIG = '[server]\nrate_limit = 0\n\n[brands.acme]\ntimezone = "Europe/Paris"\n'
ACME_CONVERSATION = make_id("cnv_", "acme", "cust-4521", "a1")
ACME_SESSION = make_id("ses_", "acme", "cust-4521", "a1")


def acme(event_id: str, type_: str, at: str, customer: str = "cust-4521", **fields: object) -> dict:
    return ev(event_id, type_, at, customer=customer, brand="acme", **fields)


EVENTS = [
    acme("a1", "customer_message", "2026-05-21T10:00:00Z", text="Where is my order 4521? It never arrived."),
    acme("a2", "ai_message", "2026-05-21T10:00:05Z", text="Your order 4521 ships tomorrow.", ai_agent="Ava"),
    acme("a3", "handoff", "2026-05-21T10:01:00Z", category="handoff_manual", reason="order 4521 lost"),
    acme("a4", "agent_message", "2026-05-21T10:05:00Z", text="I refunded the fee under the new returns policy.",
         agent="Maria"),
    ev("g1", "customer_message", "2026-05-21T11:00:00Z", customer="g-77", brand="globex",
       text="My order 4521 at globex is late"),
    # 45 messages of one word, a minute apart, for the pages
    *(acme(f"p{i:02}", "customer_message", f"2026-05-22T09:{i:02}:00Z", customer="cust-parcel",
           text=f"parcel question number {i}") for i in range(45)),
    acme("c1", "customer_message", "2026-05-21T12:00:00Z", customer="cust-cafe", text="Un Café crème au comptoir"),
    # 25 customers `many-NN` whose messages never say "many": 25 conversations by id, no message
    *(acme(f"m{i:02}", "customer_message", f"2026-05-24T09:{i:02}:00Z", customer=f"many-{i:02}", text=f"hello {i}")
      for i in range(25)),
    # 25 customers `mix-NN` whose messages say "mix": 25 conversations by id, then 25 messages
    *(acme(f"x{i:02}", "customer_message", f"2026-05-25T09:{i:02}:00Z", customer=f"mix-{i:02}", text=f"mix chat {i}")
      for i in range(25)),
]


class Site:
    def __init__(self, store: Convoscope, server: LiveServer, tokens: dict[str, str]) -> None:
        self.store, self.server, self.tokens = store, server, tokens

    def api(self, who: str, q: str, **params: object) -> httpx.Response:
        with self.server.client(headers=bearer(self.tokens[who])) as client:
            return client.get("/api/v1/search", params={"q": q, **params})

    def found(self, who: str, q: str, **params: object) -> dict:
        answer = self.api(who, q, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("search"))
    assert store.config is not None
    store.config.write_text(CONFIG)
    store.ingest(EVENTS)
    tokens = {"admin": add_user(store, "admin", "administrator"), "ana": add_user(store, "ana", "analyst", brands="acme"),
              "al": add_user(store, "al", "agent", brands="acme")}
    with serving(store) as server:
        yield Site(store, server, tokens)


def texts(found: dict) -> list[str]:
    return [m["text"] for m in found["messages"]]


def test_words_find_the_messages_newest_first_with_speaker_local_time_and_conversation(site: Site) -> None:
    found = site.found("ana", "order 4521")
    assert found["words_searched"] is True
    assert texts(found) == ["Your order 4521 ships tomorrow.", "Where is my order 4521? It never arrived."]
    ai, customer = found["messages"]
    assert (ai["speaker"], ai["ai_agent"], customer["speaker"]) == ("ai", "Ava", "customer")
    assert customer["occurred_local"] == "2026-05-21 12:00:00 +02:00"  # Paris in May, the brand's zone
    assert customer["conversation_id"] == ai["conversation_id"] == ACME_CONVERSATION
    assert found["conversations"] == []  # words, not an id
    # The analyst of acme never sees globex's message; an administrator of every brand does.
    assert "My order 4521 at globex is late" in texts(site.found("admin", "order 4521"))


def test_a_phrase_a_prefix_and_a_team_member(site: Site) -> None:
    found = site.found("ana", '"returns policy"')
    assert [(m["speaker"], m["agent"]) for m in found["messages"]] == [("agent", "Maria")]
    assert site.found("ana", '"policy returns"')["messages"] == []
    assert texts(site.found("ana", "refund*")) == ["I refunded the fee under the new returns policy."]
    assert site.found("ana", "refund")["messages"] == []  # whole words unless asked for with *


def test_ids_find_their_conversation_exactly_or_by_their_start(site: Site) -> None:
    for q, matched in (("cust-4521", "customer_id"), ("cust-45", "customer_id"), (ACME_CONVERSATION, "conversation_id"),
                       (ACME_CONVERSATION[:9], "conversation_id"), (ACME_SESSION, "session_id")):
        found = site.found("ana", q)
        assert [(c["conversation_id"], c["matched"]) for c in found["conversations"]] == [(ACME_CONVERSATION, matched)], q
    assert site.found("ana", "g-77")["conversations"] == []  # globex's customer, outside ana's brands
    assert len(site.found("admin", "g-77")["conversations"]) == 1


def test_an_agent_finds_by_id_only_and_is_told_so(site: Site) -> None:
    found = site.found("al", "order 4521")
    assert (found["words_searched"], found["messages"]) == (False, [])
    assert [c["conversation_id"] for c in site.found("al", "cust-4521")["conversations"]] == [ACME_CONVERSATION]
    with site.server.client() as browser:
        assert log_in(browser, "al").status_code == 303
        page = browser.get("/search", params={"q": "order 4521"})
        empty = browser.get("/search")
    assert page.status_code == 200
    assert 'id="ids-only"' in page.text and "It never arrived" not in page.text
    for shown in (page.text, empty.text):  # the hints say only what an id search does
        assert 'id="search-hint"' in shown and "exact matches first" in shown
        assert "quoted words" not in shown and "refund*" not in shown and "order 4521," not in shown
        assert "audit log" not in shown
    with site.server.client() as browser:  # an analyst's say what words do too
        assert log_in(browser, "ana").status_code == 303
        shown = browser.get("/search").text
    assert "quoted words" in shown and "refund*" in shown and "audit log" in shown


def test_pages_of_twenty_newest_first_without_repeats(site: Site) -> None:
    pages = [site.found("ana", "parcel", page=n) for n in (1, 2, 3)]
    numbers = [int(t.rsplit(" ", 1)[1]) for found in pages for t in texts(found)]
    assert [len(found["messages"]) for found in pages] == [20, 20, 5]
    assert numbers == list(range(44, -1, -1))
    assert [found["next_page"] for found in pages] == [2, 3, None]


def test_pages_go_on_through_the_conversations_an_id_named_then_the_messages(site: Site) -> None:
    """Conversations and messages are one list of pages: the conversations past the first 20 have a next
    page (and the page its Older link) even when no message holds the words."""
    pages = [site.found("ana", "many-", page=n) for n in (1, 2)]
    assert [(len(f["conversations"]), len(f["messages"]), f["next_page"]) for f in pages] == [(20, 0, 2), (5, 0, None)]
    named = [c["customer_id"] for f in pages for c in f["conversations"]]
    assert named == [f"many-{i:02}" for i in range(24, -1, -1)]  # newest first, each once
    pages = [site.found("ana", "mix-", page=n) for n in (1, 2, 3)]
    assert [(len(f["conversations"]), len(f["messages"]), f["next_page"]) for f in pages] == [
        (20, 0, 2), (5, 15, 3), (0, 10, None)]
    assert sorted(m["text"] for f in pages for m in f["messages"]) == sorted(f"mix chat {i}" for i in range(25))
    with site.server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        first, last = (browser.get("/search", params={"q": "many-", "page": n}).text for n in (1, 2))
    assert 'id="next-page"' in first and "page=2" in first
    assert 'id="next-page"' not in last and 'id="previous-page"' in last


def test_a_search_of_words_is_audited_with_its_words_and_brands(site: Site) -> None:
    site.found("ana", "ships tomorrow")
    log = cli_ok(site.store, "audit", "--limit", "50")
    line = next(row for row in csv.reader(log.splitlines()) if row[2] == "search" and "ships tomorrow" in row[4])
    assert line[1:4] == ["ana", "search", "messages"]
    assert json.loads(line[4]) == {"q": "ships tomorrow", "page": 1, "via": "api", "messages": 1, "brands": ["acme"]}
    with site.server.client() as browser:  # the Audit page shows the same parameters
        assert log_in(browser, "admin").status_code == 303
        page = html.unescape(browser.get("/audit").text)
    assert line[4] in page and 'data-action="search"' in page
    site.found("al", "cust-4521")  # an agent's search reads ids only, no message: not audited
    assert not [r for r in cli_ok(site.store, "audit").splitlines() if ",search," in r and r.split(",")[1] == "al"]


def test_bad_requests_get_one_line_saying_what_to_do(site: Site) -> None:
    answer = site.api("ana", " ")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["attr"] == "q"
    with site.server.client() as anonymous:
        assert anonymous.get("/api/v1/search", params={"q": "x"}).status_code == 401


def test_the_page_refuses_a_page_number_the_api_refuses_in_one_line(site: Site) -> None:
    with site.server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        for page in ("0", "abc", "99999", "-1", "2.5"):
            assert site.api("ana", "parcel", page=page).status_code == 400, page
            shown = browser.get("/search", params={"q": "parcel", "page": page})
            assert shown.status_code == 400, page
            assert 'id="form-error"' in shown.text, page
            assert f"page {page!r} is not a page number; use 1 to 10,000" in html.unescape(shown.text), page
            assert "parcel question number" not in shown.text  # nothing searched, not page 1 instead
        assert browser.get("/search", params={"q": "parcel", "page": "10000"}).status_code == 200  # the last allowed
        assert site.api("ana", "parcel", page="10000").status_code == 200


def test_an_event_sent_is_found_at_once(site: Site) -> None:
    batch = [acme("n1", "customer_message", "2026-05-23T08:00:00Z", customer="cust-new", text="zebracorn sighting")]
    with site.server.client(headers=bearer(site.tokens["admin"])) as client:
        assert client.post("/api/v1/events", json=batch).status_code == 200
    assert texts(site.found("ana", "zebracorn")) == ["zebracorn sighting"]


def words_in_index(db: Path) -> set[str]:
    with sqlite3.connect(index_path(db)) as con:
        con.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, words, row)")
        return {row[0] for row in con.execute("SELECT term FROM temp.vocab")}


def test_a_forgotten_customer_is_found_no_more_and_their_words_leave_the_index(site: Site) -> None:
    site.store.ingest([acme("f1", "customer_message", "2026-05-23T09:00:00Z", customer="cust-gone",
                            text="quokkaberry complaint")], name="gone.jsonl")
    assert texts(site.found("ana", "quokkaberry")) == ["quokkaberry complaint"]
    assert "quokkaberry" in words_in_index(site.store.db)
    cli_ok(site.store, "forget", "--brand", "acme", "--customer", "cust-gone")
    assert site.found("ana", "quokkaberry")["messages"] == []
    assert "quokkaberry" not in words_in_index(site.store.db)
    assert site.found("admin", "cust-gone")["conversations"] == []


def test_a_deleted_index_is_built_again(site: Site) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(index_path(site.store.db)) + suffix).unlink(missing_ok=True)
    assert texts(site.found("ana", '"never arrived"')) == ["Where is my order 4521? It never arrived."]
    assert index_path(site.store.db).exists()
    index_path(site.store.db).write_bytes(b"not an index at all" * 100)  # damaged: replaced, as if deleted
    assert texts(site.found("ana", '"never arrived"')) == ["Where is my order 4521? It never arrived."]


def test_the_page_marks_the_words_and_links_to_the_message_in_its_conversation(site: Site) -> None:
    with site.server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        page = browser.get("/search", params={"q": "never arrived"})
        assert page.status_code == 200
        assert "<mark>never</mark> <mark>arrived</mark>" in page.text
        found = site.found("ana", "never arrived")["messages"][0]
        link = f'/conversations/{found["conversation_id"]}#{found["anchor"]}'
        assert f'href="{link}"' in page.text
        conversation = browser.get(link.split("#")[0])
        assert f'id="{found["anchor"]}"' in conversation.text
        assert 'id="nav-search"' in conversation.text  # the box is on every page


def test_the_words_are_marked_without_regard_to_accents_or_case_as_they_are_found(site: Site) -> None:
    with site.server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        for q in ("cafe creme", "CAFÉ Crème", "caf* creme"):
            page = browser.get("/search", params={"q": q})
            assert "<mark>Café</mark> <mark>crème</mark>" in page.text, q


def marked(text: str, q: str) -> list[str]:
    return [text[start:end] for start, end in search.marks(text, q)]


def test_marks_fold_accents_and_case_and_map_back_to_the_text() -> None:
    assert marked("Un Café crème", "cafe CREME") == ["Café", "crème"]
    assert marked("Cafe\u0301 noir", "café") == ["Cafe\u0301"]  # a decomposed accent stays inside the mark
    assert marked("ÉCOLE, école, Ecole", "ecole") == ["ÉCOLE", "école", "Ecole"]
    # What the index keeps as it is (NFD, not NFKD), the marks do too; `_` separates words, as in the index.
    assert (marked("ﬁne ﬁnish", "fine"), marked("ﬁne fine", "ﬁne")) == ([], ["ﬁne"])
    assert marked("ref cus_0004 and cus 0004", "cus_0004") == ["cus", "0004", "cus", "0004"]
    # Whole words, as the index matches them, unless asked for by their start.
    assert marked("the border of my order", "order") == ["order"]
    assert marked("refunded, refund, unrefunded", "refund*") == ["refunded", "refund"]
    assert marked('a "returns policy" here', '"returns policy"') == ["returns", "policy"]
    assert marked("nothing here", "cafe") == []


class Cut(Exception):
    """A build or catch-up stopped after its first transaction, as a kill would stop it."""


def cut_after_first(done: int, total: int) -> None:
    raise Cut


def every_hit(db: Path, q: str) -> list[str]:
    with Store(db) as store:
        search.catch_up(store)  # as the server does before each search
        found = search.search(store, q, store.brands(), every_brand=True, words=True, per_page=1000)
    return sorted(m["event_id"] for m in found.messages)


def test_an_index_cut_short_goes_on_where_it_stopped_and_holds_each_message_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "BATCH", 10)  # transactions of 10 messages
    store = Convoscope(tmp_path)
    store.ingest([ev(f"m{i:02}", "customer_message", f"2026-05-21T10:{i:02}:00Z", text=f"wombat {i}")
                  for i in range(30)])
    with Store(store.db) as opened, pytest.raises(Cut):
        search.catch_up(opened, progress=cut_after_first)  # a first build cut after 10 messages
    assert every_hit(store.db, "wombat") == [f"m{i:02}" for i in range(30)]
    # One ingest of 30 more (one `ingested_at` for all), its catch-up cut after 10 of them.
    store.ingest([ev(f"n{i:02}", "customer_message", f"2026-05-22T10:{i:02}:00Z", customer="c2",
                     text=f"wombat {i}") for i in range(30)], name="more.jsonl")
    with Store(store.db) as opened, pytest.raises(Cut):
        search.catch_up(opened, progress=cut_after_first)
    assert every_hit(store.db, "wombat") == [f"m{i:02}" for i in range(30)] + [f"n{i:02}" for i in range(30)]


def test_an_erasure_cut_short_leaves_the_index_as_the_store_is(tmp_path: Path) -> None:
    """`forget` takes the words out first and marks the customer; a crash before the store's erasure commits
    leaves their events, whose words the next catch-up puts back; a crash after it, before the mark is cleared,
    leaves nothing to put back."""
    store = Convoscope(tmp_path)
    store.ingest([ev("k1", "customer_message", "2026-05-21T10:00:00Z", customer="kept", text="platypus kept"),
                  ev("g1", "customer_message", "2026-05-21T10:01:00Z", customer="gone", text="platypus gone")])
    with Store(store.db) as opened:
        search.catch_up(opened)
        search.forget(opened, "default", "kept")  # then the store's erasure failed: its events are still there
    assert "kept" not in words_in_index(store.db)
    assert every_hit(store.db, "platypus") == ["g1", "k1"]
    with Store(store.db) as opened:
        search.forget(opened, "default", "gone")
        with opened.transaction() as con:  # the store's erasure, then a crash before `forgotten`
            con.execute("DELETE FROM events WHERE customer_id = 'gone'")
    assert every_hit(store.db, "platypus") == ["k1"]
    assert "gone" not in words_in_index(store.db)
