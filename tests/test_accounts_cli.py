"""Users, tokens, the audit log and erasure from the command line (SPEC 6.1, 6.4, 6.5), and the command
line working on a store while `convoscope serve` serves it.

The user commands run on a fresh store each; the rest share one running server per module.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from cli_helpers import AS_OF, WORKED_EXAMPLE, Convoscope, ev
from convoscope.cli import cli
from convoscope.store import DERIVED_TABLES, stored
from convoscope.store import connect as connect_waiting
from web_helpers import (
    CONVOSCOPE,
    PASSWORD,
    WORKED_CONVERSATION,
    LiveServer,
    add_user,
    bearer,
    csv_dicts,
    generate_brand,
    ingest_worked_example,
    log_in,
    serving,
)


def run(store: Convoscope, *args: str, input: str | None = None) -> Result:
    config = ["--config", str(store.config)] if store.config is not None else []
    return store.runner.invoke(cli, ["--db", str(store.db), *config, *args], input=input)


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convoscope: error: ")
    return lines[0]


def add(store: Convoscope, name: str, role: str, *extra: str, password: str = PASSWORD) -> Result:
    return run(store, "users", "add", name, "--role", role, *extra, "--password-stdin", input=password + "\n")


def listed(store: Convoscope) -> dict[str, tuple[str, str]]:
    """`users list` as {name: (role, brands)}."""
    result = run(store, "users", "list")
    assert result.exit_code == 0, result.stderr
    users = {}
    for line in result.stdout.splitlines():
        name, role, brands, created, _email = line.split("\t")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created), line
        users[name] = (role, brands)
    return users


# --- users add | list | set-role | remove | token ------------------------------------------------------------

def test_users_add_then_list_shows_role_and_brands(cs: Convoscope) -> None:
    result = add(cs, "ann", "analyst", "--brands", "acme,globex")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "added ann (Analyst; brands acme, globex)"
    assert add(cs, "root", "administrator").exit_code == 0
    assert add(cs, "tess", "team_manager").exit_code == 0
    assert add(cs, "al", "agent", "--brands", "acme").exit_code == 0
    assert listed(cs) == {"al": ("agent", "acme"), "ann": ("analyst", "acme,globex"),
                          "root": ("administrator", "*"), "tess": ("team_manager", "*")}
    names = [line.split("\t")[0] for line in run(cs, "users", "list").stdout.splitlines()]
    assert names == sorted(names)


def test_a_brand_no_event_names_is_accepted_with_a_note(cs: Convoscope) -> None:
    """Users may be set up before their brand's events arrive, but a typo would leave them seeing nothing."""
    cs.ingest([ev("e1", "customer_message", "2026-05-21T10:00:00Z", brand="acme", channel="chat")])
    known = add(cs, "ann", "analyst", "--brands", "acme")
    assert (known.exit_code, known.stderr) == (0, "")
    typo = add(cs, "bob", "analyst", "--brands", "acme,acmee")
    assert typo.exit_code == 0
    assert "no events of brand 'acmee'" in typo.stderr and "acme'" not in typo.stderr.replace("'acmee'", "")
    assert listed(cs)["bob"] == ("analyst", "acme,acmee")


def test_users_list_without_users_says_how_to_add_one(cs: Convoscope) -> None:
    assert add(cs, "someone", "agent").exit_code == 0
    assert run(cs, "users", "remove", "someone").exit_code == 0
    result = run(cs, "users", "list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "users add" in result.stderr


@pytest.mark.parametrize(("args", "password", "exit_code", "words"), [
    (["--role", "boss"], PASSWORD, 2, "administrator"),
    (["--role", "analyst"], "short", 2, "8 characters"),
    (["--role", "analyst"], "", 2, "8 characters"),
    (["--role", "analyst", "--brands", " , "], PASSWORD, 2, "--brands"),
], ids=["bad-role", "short-password", "empty-password", "empty-brands"])
def test_users_add_rejects_bad_input_in_one_line(cs: Convoscope, args: list[str], password: str, exit_code: int,
                                                 words: str) -> None:
    result = run(cs, "users", "add", "bob", *args, "--password-stdin", input=password + "\n")
    assert words in one_line_error(result, exit_code)
    assert result.stdout == ""
    if cs.db.exists():
        assert "bob" not in listed(cs)


def test_a_user_name_with_a_space_is_a_usage_error(cs: Convoscope) -> None:
    assert "user name" in one_line_error(add(cs, "bad name", "analyst"), 2)


def test_adding_an_existing_user_fails_and_keeps_the_first(cs: Convoscope) -> None:
    assert add(cs, "bob", "agent").exit_code == 0
    message = one_line_error(add(cs, "bob", "administrator"), 1)
    assert "exists" in message and "set-role" in message
    assert listed(cs)["bob"] == ("agent", "*")


@pytest.mark.parametrize("args", [["set-role", "ghost", "analyst"], ["remove", "ghost"], ["token", "ghost"]])
def test_an_unknown_user_is_a_one_line_error(cs: Convoscope, args: list[str]) -> None:
    assert add(cs, "bob", "agent").exit_code == 0
    result = run(cs, "users", *args)
    message = one_line_error(result, 1)
    assert "ghost" in message and "users list" in message
    assert result.stdout == ""


def test_set_role_changes_the_role_and_the_brand_limit(cs: Convoscope) -> None:
    assert add(cs, "bob", "agent", "--brands", "acme").exit_code == 0
    assert run(cs, "users", "set-role", "bob", "analyst").exit_code == 0
    assert listed(cs)["bob"] == ("analyst", "acme")  # the brand limit stays unless told
    assert run(cs, "users", "set-role", "bob", "team_manager", "--brands", "globex,initech").exit_code == 0
    assert listed(cs)["bob"] == ("team_manager", "globex,initech")
    assert run(cs, "users", "set-role", "bob", "administrator", "--every-brand").exit_code == 0
    assert listed(cs)["bob"] == ("administrator", "*")
    one_line_error(run(cs, "users", "set-role", "bob", "agent", "--brands", "acme", "--every-brand"), 2)
    one_line_error(run(cs, "users", "set-role", "bob", "superuser"), 2)
    assert listed(cs)["bob"] == ("administrator", "*")


@pytest.mark.parametrize(("args", "message"), [
    (["bogus"], "ADDRESS 'bogus' is not an e-mail address; use one such as ana@example.com"),
    ([], "give user bob's ADDRESS, or --none to remove their address"),
    (["bob@example.com", "--none"], "give the ADDRESS 'bob@example.com' or --none, not both"),
], ids=["not-an-address", "neither", "both"])
def test_set_email_names_what_was_typed_in_one_line(cs: Convoscope, args: list[str], message: str) -> None:
    """Issue 29 point 2's review: a bad address was called `--email` (`users add`'s option, not this command's
    ADDRESS), and no address at all was told "not both"."""
    assert add(cs, "bob", "agent", "--email", "bob@example.org").exit_code == 0
    assert one_line_error(run(cs, "users", "set-email", "bob", *args), 2) == f"convoscope: error: {message}"
    assert run(cs, "users", "list").stdout.split("\t")[-1].strip() == "bob@example.org"
    assert "--email 'bogus'" in one_line_error(add(cs, "eve", "agent", "--email", "bogus"), 2)  # `users add`'s


def test_remove_takes_the_user_off_the_list(cs: Convoscope) -> None:
    assert add(cs, "bob", "agent").exit_code == 0
    assert add(cs, "eve", "analyst").exit_code == 0
    result = run(cs, "users", "remove", "bob")
    assert result.exit_code == 0
    assert "bob" in result.stdout
    assert set(listed(cs)) == {"eve"}
    one_line_error(run(cs, "users", "token", "bob"), 1)


def test_token_is_printed_alone_on_standard_output_and_is_new_each_time(cs: Convoscope) -> None:
    assert add(cs, "bob", "analyst").exit_code == 0
    first, second = run(cs, "users", "token", "bob"), run(cs, "users", "token", "bob")
    for result in (first, second):
        assert result.exit_code == 0
        assert result.stderr == ""
        assert re.fullmatch(r"\S{32,}\n", result.stdout), repr(result.stdout)
    assert first.stdout != second.stdout


def all_cells(db: Path, tables: tuple[str, ...]) -> str:
    with connect_waiting(db, read_only=True) as con:
        return "\n".join(str(row) for table in tables for row in con.execute(f"SELECT * FROM {table}").fetchall())


def test_tokens_and_passwords_are_stored_hashed(cs: Convoscope) -> None:
    assert add(cs, "bob", "analyst", password="my very own password").exit_code == 0
    token = run(cs, "users", "token", "bob").stdout.strip()
    stored = all_cells(cs.db, ("users", "api_tokens"))
    assert "bob" in all_cells(cs.db, ("api_tokens",)), "the token was not stored at all"
    assert token not in stored
    assert token[4:] not in stored  # nor without a prefix
    assert "my very own password" not in stored
    for path in cs.dir.glob("store.duckdb*"):
        content = path.read_bytes()
        assert token.encode() not in content
        assert b"my very own password" not in content


@pytest.mark.parametrize("args", [["audit"], ["users", "list"]])
def test_reading_commands_on_a_missing_store_do_not_create_one(tmp_path: Path, args: list[str]) -> None:
    """A mistyped --db must not leave an empty store behind and answer as if all were well."""
    missing = tmp_path / "typo.duckdb"
    result = Convoscope(tmp_path).runner.invoke(cli, ["--db", str(missing), *args])
    assert "--db" in one_line_error(result, 1) or "ingest" in result.stderr
    assert not missing.exists()


# --- with a server: tokens, audit, forget, commands while serving --------------------------------------

@dataclass
class Live:
    store: Convoscope
    server: LiveServer
    admin: str
    analyst: str

    def client(self) -> httpx.Client:
        return self.server.client()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    store = Convoscope(tmp_path_factory.mktemp("accounts"))
    generate_brand(store, customers=60, days=4)
    ingest_worked_example(store)
    admin = add_user(store, "admin", "administrator")
    analyst = add_user(store, "ana", "analyst")
    with serving(store) as server:
        yield Live(store, server, admin, analyst)


def audit_rows(store: Convoscope) -> list[dict[str, str]]:
    result = run(store, "audit")
    assert result.exit_code == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_users_made_while_serving_work_at_once_and_changes_apply_at_once(live: Live) -> None:
    token = add_user(live.store, "late", "analyst")
    report = "/api/v1/reports/sessions-detail?from=2026-05-21&to=2026-05-21"
    with live.client() as client:
        assert client.get(report, headers=bearer(token)).status_code == 200
        assert client.get(report, auth=("late", token)).status_code == 200

        with live.client() as browser:
            assert log_in(browser, "late").status_code == 303
            assert browser.get(report).status_code == 200
            assert run(live.store, "users", "set-role", "late", "agent").exit_code == 0
            assert browser.get(report).status_code == 401  # the web login ended with the role change

        assert client.get(report, headers=bearer(token)).status_code == 403  # an Agent now
        assert client.get(f"/api/v1/conversations/{WORKED_CONVERSATION}", headers=bearer(token)).status_code == 200
        assert run(live.store, "users", "remove", "late").exit_code == 0
        assert client.get(f"/api/v1/conversations/{WORKED_CONVERSATION}", headers=bearer(token)).status_code == 401


def test_audit_lists_downloads_with_messages_and_conversation_views(live: Live) -> None:
    with live.client() as client:
        download = client.get("/api/v1/reports/sessions-detail-with-messages",
                              params={"from": "2026-05-21", "to": "2026-05-21", "as_of": AS_OF},
                              headers=bearer(live.analyst))
        assert download.status_code == 200
        assert "Hi, where is my order #1234?" in download.text
        posted = client.post("/api/v1/reports", json={"metricSet": "GladlyAISessionsDetailWithMessagesReport",
                                                      "startAt": "2026-05-21", "endAt": "2026-05-21"},
                             headers=bearer(live.analyst))
        assert posted.status_code == 200
        view = client.get(f"/api/v1/conversations/{WORKED_CONVERSATION}", headers=bearer(live.analyst))
        assert view.status_code == 200

    entries = audit_rows(live.store)
    newest = entries[0]
    assert (newest["user"], newest["action"], newest["target"]) == ("ana", "view", f"conversation/{WORKED_CONVERSATION}")
    # Gladly's name is audited as Gladly's report, in its shape since issue 25.
    downloads = [e for e in entries[1:3]
                 if e["target"] in ("sessions-detail-with-messages", "GladlyAISessionsDetailWithMessagesReport")]
    assert {e["target"] for e in downloads} == {"sessions-detail-with-messages", "GladlyAISessionsDetailWithMessagesReport"}
    assert all((e["user"], e["action"]) == ("ana", "download") for e in downloads)
    assert any("2026-05-21" in e["parameters"] for e in downloads)
    for entry in entries[:3]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["at"])
    assert "Hi, where is my order" not in run(live.store, "audit").stdout  # who, when, what — not the messages


def test_a_command_line_report_with_messages_is_audited_too(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "messages.csv"
    for args in (["--brand", "default", "--out", str(out)], ["--from", "2026-05-21", "--period", "week", "--headers", "snake"]):
        result = run(live.store, "report", "sessions-detail-with-messages", "--as-of", AS_OF, *args)
        assert result.exit_code == 0, result.stderr
    assert run(live.store, "report", "sessions-detail", "--as-of", AS_OF).exit_code == 0  # no messages: not audited
    to_stdout, to_file = audit_rows(live.store)[:2]
    for entry in (to_stdout, to_file):
        assert (entry["action"], entry["target"]) == ("download", "sessions-detail-with-messages")
        assert entry["user"].startswith("cli:")
    assert json.loads(to_stdout["parameters"]) == {"from": "2026-05-21", "period": "week", "headers": "snake", "as_of": AS_OF,
                                                   "out": "-"}  # every parameter given, the ones that change cells too
    assert "default" in to_file["parameters"] and str(out) in to_file["parameters"]


CUSTOMER = "forget-me"
SECRET = "card 4111-SECRET-1111"
FORGET_EVENTS = [
    ev("fm-1", "customer_message", "2026-05-22T09:00:00Z", customer=CUSTOMER, text=f"my {SECRET}"),
    ev("fm-2", "ai_message", "2026-05-22T09:00:05Z", customer=CUSTOMER, text="Let me get a teammate."),
    ev("fm-3", "handoff", "2026-05-22T09:02:00Z", customer=CUSTOMER, category="handoff_manual"),
    ev("fm-4", "agent_message", "2026-05-22T09:03:00Z", customer=CUSTOMER, agent="kim", text="Done."),
    ev("fm-5", "contact_end", "2026-05-22T09:10:00Z", customer=CUSTOMER, agent="kim"),
    ev("fm-6", "contact_end", "2026-05-25T09:10:00Z", customer=CUSTOMER, agent="kim"),  # an anomaly
]
FORGET_BAD = ev("fm-7", "customer_message", "2026-05-22T09:01:00Z", customer=CUSTOMER, route="sideways",
                text=f"again {SECRET}")
STORE_TABLES = ("events", "rejects", "duplicates", "pending", "sessions", "contacts", "conversations",
                "conversation_closes", "conversation_reopens", "anomalies", "session_messages")


def customer_traces(db: Path) -> list[str]:
    """Every table (but the audit log) searched for the customer or their words."""
    with connect_waiting(db, read_only=True) as con:
        found = []
        for table in STORE_TABLES:
            for row in con.execute(f"SELECT * FROM {table}").fetchall():
                text = str(row)
                if CUSTOMER in text or "4111-SECRET" in text:
                    found.append(f"{table}: {text[:200]}")
    return found


def stored_rows_keyed_by(db: Path, keys: list[int]) -> list[str]:
    """Rows of the stored derived tables (which keep keys, not names) whose key is one of `keys`."""
    with connect_waiting(db, read_only=True) as con:
        con.execute("CREATE TEMP TABLE wanted AS SELECT unnest(?::BIGINT[]) AS k", [keys])
        found = []
        for table in DERIVED_TABLES:
            for column in (r[0] for r in con.execute(f"DESCRIBE {stored(table)}").fetchall() if r[0].endswith("_key")):
                n = con.execute(f"SELECT count(*) FROM {stored(table)} WHERE {column} IN (SELECT k FROM wanted)")
                found += [f"{table}.{column}"] * n.fetchall()[0][0]
    return found


def test_forget_erases_the_customer_everywhere_and_is_audited(live: Live) -> None:
    store = live.store
    events = store.write_events(FORGET_EVENTS, "forget.jsonl")
    assert run(store, "ingest", str(events)).exit_code == 0
    assert run(store, "ingest", str(events)).exit_code == 0  # duplicates, kept in the duplicates table
    assert run(store, "ingest", str(store.write_events([FORGET_BAD], "forget-bad.jsonl"))).exit_code == 3
    conversation = next(row["Conversation ID"] for row in csv_dicts(run(store, "report", "conversation-export").stdout)
                        if row["Customer ID"] == CUSTOMER)
    with live.client() as client:
        assert client.get(f"/api/v1/conversations/{conversation}", headers=bearer(live.admin)).status_code == 200
    assert customer_traces(store.db), "the customer was never stored; the test proves nothing"
    with connect_waiting(store.db, read_only=True) as con:
        keys = [k for (k,) in con.execute("SELECT event_key FROM events WHERE customer_id = ?", [CUSTOMER]).fetchall()]
    assert stored_rows_keyed_by(store.db, keys), "no derived row of the customer; the test proves nothing"

    result = run(store, "forget", "--brand", "default", "--customer", CUSTOMER)
    assert result.exit_code == 0, result.stderr
    assert re.search(r"\b6 events\b", result.stdout), result.stdout  # the six stored events of the customer

    assert customer_traces(store.db) == []
    assert stored_rows_keyed_by(store.db, keys) == []  # keys are made from the customer's ids (SPEC 3.5)
    for name in ("sessions-detail", "sessions-detail-with-messages", "contact-export", "conversation-export",
                 "data-quality"):
        report = run(store, "report", name, "--as-of", AS_OF)
        assert report.exit_code == 0
        assert CUSTOMER not in report.stdout and "SECRET" not in report.stdout, name
    with live.client() as client:
        assert client.get(f"/api/v1/conversations/{conversation}", headers=bearer(live.admin)).status_code == 404
        api_report = client.get("/api/v1/reports/sessions-detail-with-messages", headers=bearer(live.admin))
        assert api_report.status_code == 200 and CUSTOMER not in api_report.text
        assert client.get(f"/api/v1/conversations/{WORKED_CONVERSATION}", headers=bearer(live.admin)).status_code == 200

    (erasure,) = [entry for entry in audit_rows(store) if entry["action"] == "forget"]
    assert "default" in erasure["target"] + erasure["parameters"]
    assert erasure["user"]
    log = run(store, "audit").stdout
    assert "SECRET" not in log
    assert CUSTOMER not in log  # that it happened, not whom it erased (docs/decisions.md 43)
    assert conversation not in log  # an id made from the customer's (SPEC 3.5) is theirs too
    assert any(entry["target"] == "conversation/(erased)" and entry["user"] == "admin" for entry in audit_rows(store))


def test_the_readmes_purge_leaves_no_erased_text_in_the_store_file(tmp_path: Path) -> None:
    """DuckDB does not overwrite the space a delete frees (decision 71): the README's purge, run as
    written, gives a store without the erased text that still works."""
    store = Convoscope(tmp_path)
    store.db = tmp_path / "convoscope.duckdb"
    assert store("ingest", str(store.write_events(FORGET_EVENTS, "forget.jsonl"))).exit_code == 0
    assert store("ingest", str(WORKED_EXAMPLE)).exit_code == 0
    assert store("forget", "--brand", "default", "--customer", CUSTOMER).exit_code == 0
    # What the purge is for; should DuckDB ever overwrite freed space, decision 71 and the purge can go.
    assert SECRET.encode() in store.db.read_bytes()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    purge = re.search(r"\(decision 71\):\n\n```sh\n(.*?)```", readme, re.S)
    assert purge, "the README lost its purge steps"
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    subprocess.run(["bash", "-ec", purge.group(1)], cwd=tmp_path, check=True)
    assert SECRET.encode() not in store.db.read_bytes()
    assert CUSTOMER.encode() not in store.db.read_bytes()
    assert [row["Customer ID"] for row in csv_dicts(store("report", "sessions-detail", "--as-of", AS_OF).stdout)] == ["c1", "c1"]
    assert "forget" in store("audit").stdout  # the record that it happened comes along


def cli_process(store: Convoscope, *args: str) -> subprocess.CompletedProcess[str]:
    config = ["--config", str(store.config)] if store.config is not None else []
    return subprocess.run([str(CONVOSCOPE), "--db", str(store.db), *config, *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_commands_keep_working_while_serve_runs(live: Live) -> None:
    store = live.store
    new = store.write_events([ev("ws-1", "customer_message", "2026-05-23T08:00:00Z", customer="while-serving"),
                              ev("ws-2", "ai_message", "2026-05-23T08:00:02Z", customer="while-serving")],
                             "while-serving.jsonl")
    answers: list[int] = []
    stop = threading.Event()

    def browse() -> None:  # someone using the app the whole time
        with live.client() as client:
            while not stop.is_set():
                answers.append(client.get("/api/v1/reports/sessions-summary", headers=bearer(live.analyst)).status_code)
                time.sleep(0.02)

    reader = threading.Thread(target=browse)
    reader.start()
    try:
        time.sleep(0.2)
        results = {
            "ingest": cli_process(store, "ingest", str(new)),
            "report": cli_process(store, "report", "sessions-detail", "--from", "2026-05-23", "--to", "2026-05-23"),
            "users list": cli_process(store, "users", "list"),
            "rejects": cli_process(store, "rejects"),
        }
    finally:
        stop.set()
        reader.join(timeout=60)
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
        assert "error" not in result.stderr.lower() and "lock" not in result.stderr.lower(), (name, result.stderr)
    assert "while-serving" in results["report"].stdout
    assert "ana\tanalyst" in results["users list"].stdout
    assert answers and set(answers) == {200}, answers
    assert live.server.process.poll() is None, live.server.output()

    with live.client() as client:  # the server answers afterwards, and sees what the command line stored
        after = client.get("/api/v1/reports/sessions-detail", params={"from": "2026-05-23", "to": "2026-05-23"},
                           headers=bearer(live.analyst))
    assert after.status_code == 200
    assert "while-serving" in after.text
