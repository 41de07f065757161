"""Why handoffs happen (issue 27 points 2 and 3): handoff-themes and the sessions behind each theme.

The generator plants handoff causes worded many ways, across categories and subcategories, with noise
(`synth.CAUSES`, its ground truth `GeneratedLog.causes`, never written with the events); the themes must recover them
(adjusted Rand index at least 0.6) where grouping by subcategory does not. The counts must be counts of sessions, the
same input must give the same bytes, and no one customer's words may name a theme.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import adjusted_rand_score

from cli_helpers import Convoscope, ev
from convoscope import synth
from convoscope.reports import clusters, themes
from convoscope.store import connect as connect_waiting
from web_helpers import add_user, bearer, cli_ok, log_in, serving

CUSTOMERS, DAYS, SEED, START = 3000, 30, 4, "2026-05-01"
RANGE = ("--from", "2026-05-08", "--to", "2026-05-28")
BEFORE = ("--from", "2026-04-17", "--to", "2026-05-07")  # the 21 days before the range
AS_OF = ("--as-of", "2026-07-01T00:00:00Z")


def rows(store: Convoscope, name: str, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(cli_ok(store, "report", name, *args), newline="")))


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Convoscope, Path]:
    """A generated month, ingested as a user would (`generate`, then `ingest`)."""
    store = Convoscope(tmp_path_factory.mktemp("themes"))
    path = store.dir / "month.jsonl"
    cli_ok(store, "generate", "--customers", str(CUSTOMERS), "--days", str(DAYS), "--seed", str(SEED), "--start", START,
           "--out", str(path))
    cli_ok(store, "ingest", str(path))
    return store, path


def planted(store: Convoscope) -> dict[str, str]:
    """Each handed-off session's planted cause: the generator's ground truth for its handoff event (the event that
    ended the session; a team takeover has none)."""
    causes = synth.generate(customers=CUSTOMERS, days=DAYS, seed=SEED).causes
    with connect_waiting(store.db, read_only=True) as con:
        con.register("causes", causes)
        return dict(con.execute("""
            SELECT s.session_id, c.cause FROM sessions s
            JOIN events e ON e.brand = s.brand AND e.customer_id = s.customer_id AND e.type = 'handoff'
                         AND e.occurred_at = s.ended_at
            JOIN causes c USING (event_id)
        """).fetchall())


def test_the_themes_recover_the_planted_causes(month: tuple[Convoscope, Path]) -> None:
    store, _ = month
    sessions = rows(store, "handoff-theme-sessions", *RANGE, *AS_OF)
    truth = planted(store)
    known = [row for row in sessions if row["Session ID"] in truth]
    assert len(known) > 1500 and len(known) >= 0.95 * len(sessions)
    causes = [truth[row["Session ID"]] for row in known]
    themes = adjusted_rand_score(causes, [row["Theme"] for row in known])
    by_subcategory = adjusted_rand_score(causes, [row["Handoff Subcategory"] for row in known])
    assert themes >= 0.6, f"adjusted Rand index {themes:.3f}"
    assert by_subcategory < 0.3, "the planted causes should cut across subcategories"
    # Each cause has a theme where most of its handoffs went, and that theme is mostly this cause.
    for cause in synth.CAUSES:
        counts = Counter(row["Theme"] for row in known if truth[row["Session ID"]] == cause)
        theme, n = counts.most_common(1)[0]
        members = Counter(truth[row["Session ID"]] for row in known if row["Theme"] == theme)
        assert members.most_common(1)[0][0] == cause and n >= 0.4 * sum(counts.values()), (cause, counts)


def test_each_theme_counts_its_sessions(month: tuple[Convoscope, Path]) -> None:
    store, _ = month
    themes = rows(store, "handoff-themes", *RANGE, *AS_OF)
    sessions = rows(store, "handoff-theme-sessions", *RANGE, *AS_OF)
    summary = rows(store, "sessions-summary", "--period", "year", *RANGE, *AS_OF)[0]
    before = rows(store, "sessions-summary", "--period", "year", *BEFORE, *AS_OF)
    assert 5 <= len(themes) <= 20
    assert [int(t["Theme"]) for t in themes] == list(range(1, len(themes) + 1))
    assert sum(int(t["Handoffs"]) for t in themes) == int(summary["Handed Off"]) == len(sessions)
    assert sum(int(t["Previous Handoffs"]) for t in themes) == sum(int(r["Handed Off"]) for r in before)
    by_theme = Counter(row["Theme"] for row in sessions)
    sizes = [int(t["Handoffs"]) for t in themes]
    assert sizes == sorted(sizes, reverse=True)
    for theme in themes:
        n, previous = int(theme["Handoffs"]), int(theme["Previous Handoffs"])
        assert by_theme[theme["Theme"]] == n
        assert theme["Share"] == f"{n / len(sessions):.4f}"
        if previous:
            assert abs(float(theme["Trend"]) - (n - previous) / previous) < 0.00006
        members = [row for row in sessions if row["Theme"] == theme["Theme"]]
        assert {row["Label"] for row in members} == {theme["Label"]}
        links = {row["Conversation Link"] for row in members}
        assert all(theme[f"Example {i} Link"] in links for i in (1, 2, 3))
        top = Counter(row["Handoff Category"] for row in members).most_common(1)[0]
        assert theme["Top Categories"].startswith(f"{top[0]} ({top[1]})")
        assert theme["Sessions Link"].endswith(f"&run=1&where=theme%3D{theme['Theme']}")
        assert not any(ch.isdigit() for ch in theme["Label"])  # letters only: no order number names a theme
    one = rows(store, "handoff-theme-sessions", *RANGE, *AS_OF, "--where", "theme=2")
    assert len(one) == int(themes[1]["Handoffs"]) and {r["Theme"] for r in one} == {"2"}


def test_the_same_events_in_another_order_give_the_same_bytes(month: tuple[Convoscope, Path], tmp_path: Path) -> None:
    store, path = month
    first = cli_ok(store, "report", "handoff-themes", *RANGE, *AS_OF)
    themes._GROUPED.clear()  # grouped again from the texts, not taken from the grouping this process kept
    assert cli_ok(store, "report", "handoff-themes", *RANGE, *AS_OF) == first
    lines = path.read_text().splitlines(keepends=True)
    random.Random(7).shuffle(lines)
    (tmp_path / "again").mkdir()
    again = Convoscope(tmp_path / "again")
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(lines))
    cli_ok(again, "ingest", str(shuffled))
    themes._GROUPED.clear()
    assert cli_ok(again, "report", "handoff-themes", *RANGE, *AS_OF) == first


def test_the_same_handoffs_asked_again_are_grouped_once(month: tuple[Convoscope, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The grouping is kept by the texts and their writers (reports/themes.py `_grouped`): another as-of time after
    every handoff, and the other theme reports, reuse it; an as-of time that leaves some sessions open groups
    again."""
    store, _ = month
    grouped = []
    group = clusters.group
    monkeypatch.setattr(clusters, "group", lambda *args, **kwargs: grouped.append(1) or group(*args, **kwargs))
    themes._GROUPED.clear()

    def shown(*args: str) -> list[tuple[str, str, str]]:
        return [(r["Theme"], r["Label"], r["Handoffs"]) for r in rows(store, "handoff-themes", *RANGE, *args)]

    first = shown(*AS_OF)
    assert shown("--as-of", "2026-09-01T00:00:00Z") == first and len(grouped) == 1
    assert len(rows(store, "handoff-theme-sessions", *RANGE, *AS_OF)) == sum(int(n) for _, _, n in first)
    assert len(grouped) == 1
    during = shown("--as-of", "2026-05-20T00:00:00Z")  # the sessions after it are not handed off yet
    assert len(grouped) == 2 and sum(int(n) for _, _, n in during) < sum(int(n) for _, _, n in first)


def handoff(customer: str, at: str, said: str, reason: str) -> list[dict]:
    """An AI session: the customer writes `said`, the AI answers, the AI hands off with `reason`."""
    return [
        ev(f"{customer}-1", "customer_message", f"{at}:00Z", customer, text=said),
        ev(f"{customer}-2", "ai_message", f"{at}:05Z", customer, text="Let me check.", ai_agent="Bot"),
        ev(f"{customer}-3", "handoff", f"{at}:09Z", customer, ai_agent="Bot", category="handoff_manual",
           subcategory="customer_requested_human", reason=reason),
    ]


def test_one_customers_words_never_name_a_theme(cs: Convoscope) -> None:
    """A word only one or two handoffs use (a name, an address) is no term: no label shows it."""
    events = []
    for i in range(12):
        refund = i % 2 == 0
        said = ("my refund never arrived" if refund else "the parcel tracking is stuck") + (
            ", I am Zebediah Quarrington of Wolverhampton" if i == 0 else "")
        events += handoff(f"c{i:02d}", f"2026-05-10T1{i % 10}:0{i // 10}", said,
                          "Refund is late" if refund else "Parcel is late")
    cs.ingest(events)
    themes = rows(cs, "handoff-themes", "--as-of", "2026-06-01T00:00:00Z")
    assert sum(int(t["Handoffs"]) for t in themes) == 12
    shown = " ".join(t["Label"] for t in themes).lower()
    assert "refund" in shown and "parcel" in shown
    for word in ("zebediah", "quarrington", "wolverhampton"):
        assert word not in shown


def test_one_customer_writing_a_name_often_still_names_no_theme(cs: Convoscope) -> None:
    """Terms count customers, not handoffs: one customer's four handoffs do not make their name a term."""
    events = []
    for i in range(9):
        events += handoff(f"p{i}", f"2026-05-10T1{i}:00", "I cannot reset my password", "Password reset failed")
    for i in range(4):
        events += handoff("bart", f"2026-05-11T1{i}:00", "Bartholomew Quixley here again, the app crashes",
                          "App crash")
    for event in events:
        event["event_id"] = f"{event['customer_id']}-{event['occurred_at']}-{event['type']}"
    cs.ingest(events)
    labels = " ".join(t["Label"] for t in rows(cs, "handoff-themes", "--as-of", "2026-06-01T00:00:00Z")).lower()
    assert "password" in labels and "bartholomew" not in labels and "quixley" not in labels


def test_canned_reasons_are_themes_and_examples_tie_by_session_id(cs: Convoscope) -> None:
    """Only canned texts: each is a theme, however few they are; identical texts tie, broken by session id."""
    events = []
    for i, (said, reason) in enumerate([("help", "Password reset"), ("help", "Refund missing"),
                                        ("help", "Lost parcel")] * 6):
        events += handoff(f"k{i:02d}", f"2026-05-1{i % 9}T1{i // 9}:00", said, reason)
    cs.ingest(events)
    themes = rows(cs, "handoff-themes", "--as-of", "2026-06-01T00:00:00Z")
    assert sorted((t["Label"], t["Handoffs"]) for t in themes) == [
        ("lost · parcel", "6"), ("missing · refund", "6"), ("password · reset", "6")]
    sessions = rows(cs, "handoff-theme-sessions", "--as-of", "2026-06-01T00:00:00Z")
    for theme in themes:
        members = sorted((r["Session ID"], r["Conversation Link"]) for r in sessions if r["Theme"] == theme["Theme"])
        assert [theme[f"Example {i} Link"] for i in (1, 2, 3)] == [link for _, link in members[:3]]
    bad = cs("report", "handoff-theme-sessions", "--where", "theme=first")
    assert bad.exit_code == 2 and "theme='first' is not a theme's number" in bad.stderr


def test_no_handoff_or_too_few_words(cs: Convoscope) -> None:
    cs.ingest(handoff("a", "2026-05-10T10:00", "hello", "Asked") + handoff("b", "2026-05-11T10:00", "yo", "Other"))
    assert rows(cs, "handoff-themes", "--from", "2026-06-01", "--as-of", "2026-07-01T00:00:00Z") == []
    themes = rows(cs, "handoff-themes", "--as-of", "2026-07-01T00:00:00Z")
    assert [(t["Theme"], t["Label"], t["Handoffs"]) for t in themes] == [("1", "(no shared words)", "2")]


def test_example_texts_only_for_roles_that_may_read_messages(month: tuple[Convoscope, Path]) -> None:
    store, _ = month
    analyst = add_user(store, "th-analyst", "analyst")
    agent = add_user(store, "th-agent", "agent")
    with_examples = rows(store, "handoff-themes-with-examples", *RANGE, *AS_OF)
    plain = rows(store, "handoff-themes", *RANGE, *AS_OF)
    assert [{k: r[k] for k in plain[0]} for r in with_examples] == plain
    assert all(r["Example 1 Text"] and " | " in r["Example 1 Text"] for r in with_examples)
    query = {"from": "2026-05-08", "to": "2026-05-28", "as_of": "2026-07-01T00:00:00Z"}
    with serving(store) as server, server.client() as client:
        for name, who, status in (("handoff-themes", agent, 403), ("handoff-themes-with-examples", agent, 403),
                                  ("handoff-themes", analyst, 200), ("handoff-themes-with-examples", analyst, 200)):
            answer = client.get(f"/api/v1/reports/{name}", params=query, headers=bearer(who))
            assert answer.status_code == status, (name, answer.text)
        assert log_in(client, "th-analyst").status_code == 303
        # Judged at another instant, the link carries it: the page opens the sessions of that judgement.
        early = rows(store, "handoff-themes", "--from", "2026-05-08", "--to", "2026-05-28", "--as-of",
                     "2026-05-20T12:00:00Z")
        link = early[-1]["Sessions Link"]
        assert "as_of=2026-05-20T12%3A00%3A00Z" in link
        page = client.get(link[link.index("/reports/"):])
        assert f'data-count="{early[-1]["Handoffs"]}"' in page.text and early[-1]["Label"] in page.text
        link = plain[0]["Sessions Link"]
        page = client.get(link[link.index("/reports/"):])  # the link, on this server
        assert page.status_code == 200 and 'id="report-rows"' in page.text
        assert f'data-count="{plain[0]["Handoffs"]}"' in page.text  # the theme's sessions, and only those
        themes_page = client.get("/reports/handoff-themes", params=query | {"run": "1"})
        assert 'href="/reports/handoff-theme-sessions?' in themes_page.text  # the link is a link on the page
