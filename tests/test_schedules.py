"""Scheduled delivery (issue 29 points 2 and 3): reports e-mailed on a schedule through a real SMTP server.

The SMTP server is aiosmtpd's, on a free loopback port, run by the test: the mail convoscope sends is received,
parsed, and its CSV attachment read back and compared byte for byte with `convoscope report` over the run's
resolved range and as-of time. A server answering 451 makes a run fail, be retried and end failed, listed by
`schedules runs`, on the Schedules page and in the audit log.
"""

from __future__ import annotations

import csv
import email
import email.utils
import getpass
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from email import policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from cli_helpers import TEST_CONFIG, Convoscope
from convoscope.store import connect as connect_waiting
from web_helpers import PASSWORD, add_user, cli_ok, free_port, generate_brand, log_in, serving


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every message it accepts; `answer`, when set, is what it says instead."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    answer: str | None = None
    refused: int = 0
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if self.answer is not None:
            self.refused += 1
            return self.answer
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def configure(store: Convoscope, inbox: Inbox, **mail: Any) -> None:
    assert store.config is not None
    keys = {"host": "127.0.0.1", "port": inbox.port, "from": "reports@example.com", **mail}
    store.config.write_text(TEST_CONFIG + "\n[mail]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()))


@pytest.fixture
def site(cs: Convoscope, smtp: Inbox) -> tuple[Convoscope, Inbox]:
    """A generated brand (its days well inside the last 30), a Team Manager with an address, and mail configured."""
    generate_brand(cs, customers=60, days=5)
    add_user(cs, "tm", "team_manager")
    cli_ok(cs, "users", "set-email", "tm", "tm@example.com")
    configure(cs, smtp)
    return cs, smtp


def add(store: Convoscope, *args: str, report: str = "sessions-summary") -> int:
    out = cli_ok(store, "schedules", "add", report, "--owner", "tm", "--range", "last 30 days", "--cron", "0 8 * * 1",
                 *args)
    return int(out.strip())


def runs(store: Convoscope) -> list[list[str]]:
    return [line.split("\t") for line in cli_ok(store, "schedules", "runs").splitlines()]


def attachment(message: EmailMessage) -> tuple[str, bytes]:
    parts = list(message.iter_attachments())
    assert len(parts) == 1, message
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return parts[0].get_filename() or "", payload


def backdate(store: Convoscope, schedule_id: int, days: int) -> None:
    """The schedule as a store kept it since `days` ago, while nothing ran: its fire times since were missed."""
    con = connect_waiting(store.db)
    con.execute(f"UPDATE schedules SET created_at = created_at - INTERVAL {days} DAY WHERE id = ?", [schedule_id])
    con.close()


def test_the_mail_carries_the_report_as_the_command_line_writes_it(site: tuple[Convoscope, Inbox]) -> None:
    store, inbox = site
    schedule = add(store, "--to", "tm", "--to", "boss@example.com", "--period", "day")
    cli_ok(store, "schedules", "run", str(schedule))
    assert len(inbox.messages) == 1
    rcpts, message = inbox.messages[0]
    assert sorted(rcpts) == ["boss@example.com", "tm@example.com"]
    assert message["From"] == "reports@example.com"
    sent = email.utils.parsedate_to_datetime(message["Date"])  # RFC 5322 requires it
    assert sent.utcoffset() is not None and abs(datetime.now(UTC) - sent) < timedelta(minutes=5)
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message["Message-ID"]), message["Message-ID"]
    name, data = attachment(message)
    (run,) = runs(store)
    _, due, status, attempt, first, last, rows, size, delivered, recipients, error = run
    assert (status, attempt, delivered, error) == ("sent", "1", "attachment", "")
    assert name == f"sessions-summary_all_{first}_{last}.csv"
    expected = store.report("--from", first, "--to", last, "--tz", "UTC", "--period", "day", name="sessions-summary",
                            as_of=due).stdout_bytes
    assert data == expected
    assert int(size) == len(data) and int(rows) == data.count(b"\n") - 1 > 1


def test_a_mailbox_named_twice_gets_the_mail_once(site: tuple[Convoscope, Inbox]) -> None:
    """Issue 29 point 2's review: a user and their address, in any case, were three RCPTs to one mailbox."""
    store, inbox = site
    schedule = add(store, "--to", "tm", "--to", "tm@example.com", "--to", "TM@EXAMPLE.COM", "--to",
                   "Boss@Example.com", "--to", "boss@example.com")
    cli_ok(store, "schedules", "run", str(schedule))
    (rcpts, message), = inbox.messages
    assert rcpts == ["tm@example.com", "Boss@Example.com"]  # each the first spelling given
    assert message["To"] == "tm@example.com, Boss@Example.com"
    (run,) = runs(store)
    assert run[2] == "sent" and run[9] == "tm@example.com,Boss@Example.com"


def test_above_the_size_limit_the_mail_carries_a_link_to_the_same_file(site: tuple[Convoscope, Inbox]) -> None:
    store, inbox = site
    configure(store, inbox, attach_limit=100)
    schedule = add(store, "--to", "tm")
    cli_ok(store, "schedules", "run", str(schedule))
    (_, message), = inbox.messages
    assert not list(message.iter_attachments())
    body = message.get_body(("plain",))
    assert body is not None
    link = next(word for word in body.get_content().split() if "/deliveries/" in word)
    (run,) = runs(store)
    assert run[2] == "sent" and run[8] == "link"
    expected = store.report("--from", run[4], "--to", run[5], "--tz", "UTC", name="sessions-summary",
                            as_of=run[1]).stdout_bytes
    with serving(store) as server, server.client() as client:
        answer = client.get(link.replace("http://127.0.0.1:8000", ""))
        assert answer.status_code == 200, answer.text
        assert answer.content == expected
        assert client.get("/deliveries/not-a-token").status_code == 404


def test_a_failing_smtp_server_is_retried_then_the_run_is_shown_failed(site: tuple[Convoscope, Inbox]) -> None:
    store, inbox = site
    configure(store, inbox, retry_after="1s", attempts=3)
    inbox.answer = "451 4.3.0 try again later"
    schedule = add(store, "--to", "tm")
    backdate(store, schedule, 8)  # a Monday 08:00 since then was missed
    first = store("schedules", "run-due")
    assert first.exit_code == 1 and "retrying" in first.stderr and "451" in first.stderr, first.stderr
    assert store("schedules", "run-due").stderr.strip() in ("nothing due", "")  # the pause is not over
    for expected in ("retrying", "failed"):
        time.sleep(2.5)  # past the pause (1 s, then 2 s): the next attempt is owed
        result = store("schedules", "run-due")
        assert result.exit_code == 1 and expected in result.stderr, result.stderr
    assert inbox.refused == 3 and not inbox.messages
    (run,) = runs(store)
    assert run[2:4] == ["failed", "3"] and "451" in run[-1]
    audit = cli_ok(store, "audit")
    assert audit.count("schedule_failed") == 3
    with serving(store) as server, server.client() as browser:
        assert log_in(browser, "tm", PASSWORD).status_code == 303
        page = browser.get("/schedules")
        assert page.status_code == 200
        assert 'data-status="failed"' in page.text and "451" in page.text


def test_a_missed_run_is_run_once_on_the_next_start_and_run_due_is_idempotent(site: tuple[Convoscope, Inbox]) -> None:
    store, inbox = site
    schedule = add(store, "--to", "tm")
    assert "nothing due" in store("schedules", "run-due").stderr  # created now: no Monday 08:00 since
    backdate(store, schedule, 22)  # three Mondays missed: one run owed, the latest
    with serving(store):
        deadline = time.monotonic() + 60
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.2)
    assert len(inbox.messages) == 1
    (run,) = runs(store)
    assert run[2] == "sent"
    assert "nothing due" in store("schedules", "run-due").stderr
    assert len(inbox.messages) == 1


def test_who_may_schedule_and_who_may_receive_messages(site: tuple[Convoscope, Inbox]) -> None:
    store, _ = site
    add_user(store, "agent1", "agent")
    add_user(store, "ana", "analyst")
    refused = store("schedules", "add", "sessions-summary", "--owner", "agent1", "--range", "yesterday", "--cron",
                    "0 8 * * *", "--to", "tm")
    assert refused.exit_code == 1 and "only an Administrator or a Team Manager" in refused.stderr
    plain = store("schedules", "add", "sessions-detail-with-messages", "--owner", "tm", "--range", "yesterday",
                  "--cron", "0 8 * * *", "--to", "someone@example.com")
    assert plain.exit_code == 2 and "plain address" in plain.stderr and len(plain.stderr.splitlines()) == 1
    no_address = store("schedules", "add", "sessions-summary", "--owner", "tm", "--range", "yesterday", "--cron",
                       "0 8 * * *", "--to", "ana")
    assert no_address.exit_code == 2 and "users set-email ana" in no_address.stderr
    bad_cron = store("schedules", "add", "sessions-summary", "--owner", "tm", "--range", "yesterday", "--cron",
                     "every monday", "--to", "tm")
    assert bad_cron.exit_code == 2 and "crontab" in bad_cron.stderr
    assert cli_ok(store, "schedules", "list") == ""


def test_a_schedule_id_is_never_given_twice(site: tuple[Convoscope, Inbox]) -> None:
    """Issue 29 point 2's review: removing the newest schedules gave their ids again, and their runs and audit
    entries (`schedule/ID`) to the next schedule added."""
    store, _ = site
    first, second, third = add(store, "--to", "tm"), add(store, "--to", "tm"), add(store, "--to", "tm")
    cli_ok(store, "schedules", "run", str(second))
    cli_ok(store, "schedules", "remove", str(third))  # no runs: only the audit log remembers it
    cli_ok(store, "schedules", "remove", str(second))
    fourth = add(store, "--to", "tm")
    assert (first, second, third, fourth) == (1, 2, 3, 4)
    assert [run[0] for run in runs(store)] == [str(second)]
    assert cli_ok(store, "audit").count(f"schedule/{fourth}") == 1  # its own `schedule_added`, nothing before it


@pytest.mark.parametrize(("line", "zone", "fires_on"), [
    ("0 8 1 * 1", "UTC", lambda d: d.day == 1 or d.isoweekday() == 1),  # both restricted: either day (crontab(5))
    ("30 6 15 * 0", "Europe/Berlin", lambda d: d.day == 15 or d.isoweekday() == 7),  # Sunday as 0, across DST
    ("0 8 1-7 * fri", "America/New_York", lambda d: d.day <= 7 or d.isoweekday() == 5),
    ("0 8 13 * 5,7", "UTC", lambda d: d.day == 13 or d.isoweekday() in (5, 7)),
    ("0 8 1 * *", "UTC", lambda d: d.day == 1),
    ("0 8 * * 1", "UTC", lambda d: d.isoweekday() == 1),
    ("0 8 */2 * 1", "UTC", lambda d: d.day % 2 == 1 and d.isoweekday() == 1),  # a field starting with *: both
])
def test_fire_times_are_crontabs(line: str, zone: str, fires_on: Callable[[date], bool]) -> None:
    """Issue 29 point 2's review: `0 8 1 * 1` fired only on a 1st that is a Monday (APScheduler's AND of the
    fields), where crontab runs it on the 1st of each month and on every Monday."""
    from convoscope.service.schedules import last_fire, parse_cron

    tz = ZoneInfo(zone)
    minute, hour = (int(f) for f in line.split()[:2])
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(400)]
    expected = [datetime.combine(d, dt_time(hour, minute), tz) for d in days if fires_on(d)]
    trigger = parse_cron(line, zone)
    found: list[datetime] = []
    fire = trigger.get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=tz))
    while fire is not None and fire.date() <= days[-1]:
        found.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert found == expected
    assert last_fire(trigger, expected[0], expected[-1] + timedelta(hours=1)) == expected[-1]  # a run missed


def test_a_crontab_line_that_never_fires_is_refused(cs: Convoscope) -> None:
    """Issue 29 point 2's review: February 31st was kept, as a schedule that never runs."""
    add_user(cs, "tm", "team_manager")
    for line in ("0 7 31 2 *", "0 7 30 2 *", "0 7 31 4,6,9,11 *"):
        never = cs("schedules", "add", "sessions-summary", "--owner", "tm", "--range", "yesterday", "--cron", line,
                   "--to", "tm@example.com")
        assert never.exit_code == 2, never.stderr
        assert never.stderr == f"convoscope: error: --cron {line!r} never fires: no date has its day of the month " \
                               "in its months (and its weekday, when given); check its day and month fields\n"
    assert cli_ok(cs, "schedules", "list") == ""


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--tz", "Mars/Olympus", "--tz 'Mars/Olympus' is not an IANA time zone; use a name such as UTC or "
                             "Europe/Berlin"),
    ("--to", "nobody", "--to: 'nobody' is neither a user nor an e-mail address; list users with 'convoscope users "
                       "list'"),
    ("--to", " ", "give at least one of --to: a user name or an e-mail address"),
    ("--cron", "every monday", "--cron 'every monday' is not a crontab schedule; give five fields, minute hour day "
                               "month weekday, such as '0 8 * * 1' (Mondays at 08:00)"),
], ids=["zone", "recipient", "no-recipient", "cron"])
def test_schedules_add_names_its_own_options(cs: Convoscope, option: str, value: str, message: str) -> None:
    """Issue 29 point 2's review: errors named `--recipients` and `--timezone`, which `schedules add` does not
    have (its options are `--to` and `--tz`)."""
    add_user(cs, "tm", "team_manager")
    given = {"--cron": "0 8 * * 1", "--to": "tm@example.com", "--tz": "UTC", option: value}
    result = cs("schedules", "add", "sessions-summary", "--owner", "tm", "--range", "yesterday",
                *[word for pair in given.items() for word in pair])
    assert result.exit_code == 2
    assert result.stderr == f"convoscope: error: {message}\n"


def test_removing_a_schedule_is_audited_as_who_removed_it(cs: Convoscope) -> None:
    """Issue 29 point 2's review: `schedules remove` wrote its audit entry with no user; the command line's operator
    is `cli:NAME`, as `forget` and `report` name them."""
    add_user(cs, "tm", "team_manager")
    schedule = int(cli_ok(cs, "schedules", "add", "sessions-summary", "--owner", "tm", "--range", "yesterday",
                          "--cron", "0 8 * * 1", "--to", "tm@example.com").strip())
    cli_ok(cs, "schedules", "remove", str(schedule))
    audit = list(csv.DictReader(io.StringIO(cli_ok(cs, "audit"))))
    (removed,) = [row for row in audit if row["action"] == "schedule_removed"]
    assert removed["user"] == f"cli:{getpass.getuser()}" and removed["target"] == f"schedule/{schedule}"


def test_users_get_an_address(cs: Convoscope) -> None:
    cli_ok(cs, "users", "add", "ana", "--role", "analyst", "--email", "ana@example.com", "--password-stdin",
           input=PASSWORD + "\n")
    assert cli_ok(cs, "users", "list").split("\t")[-1].strip() == "ana@example.com"
    bad = cs("users", "set-email", "ana", "not an address")
    assert bad.exit_code == 2 and "is not an e-mail address" in bad.stderr
    cli_ok(cs, "users", "set-email", "ana", "--none")
    assert cli_ok(cs, "users", "list").split("\t")[-1].strip() == ""


def test_a_schedule_made_in_chromium_is_listed_and_run_now_mails_it(site: tuple[Convoscope, Inbox]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from test_browser import CHROMIUM, CHROMIUM_ARGS, shot

    store, inbox = site
    with serving(store) as server, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url + "/schedules")
        page.get_by_label("User name").fill("tm")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()
        page.locator("#schedule-report").select_option("sessions-summary")
        page.locator("#schedule-range").select_option("last 30 days")
        page.locator("#schedule-cron").fill("every monday")
        page.get_by_role("button", name="Add schedule").click()
        expect(page.locator("#form-error")).to_contain_text("not a crontab schedule")  # beside the field, form kept
        page.locator("#schedule-cron").fill("0 8 * * 1")
        page.get_by_role("button", name="Add schedule").click()
        expect(page.locator("#schedules-notice")).to_contain_text("Schedule 1 added")
        row = page.locator("#schedules tr[data-schedule='1']")
        expect(row).to_contain_text("sessions-summary")
        expect(row).to_contain_text("0 8 * * 1")
        row.get_by_role("button", name="Run now").click()
        expect(page.locator("#schedules-notice")).to_contain_text("running now")
        for _ in range(120):  # the run happens on the server's scheduler; the page lists it once it ended
            page.reload()
            if page.locator("#runs tr[data-status='sent']").count():
                break
            page.wait_for_timeout(500)
        expect(page.locator("#runs tr[data-status='sent']")).to_have_count(1)
        shot(page, "schedules")
        browser.close()
    (rcpts, message), = inbox.messages
    assert rcpts == ["tm@example.com"]
    _, data = attachment(message)
    (run,) = runs(store)
    assert data == store.report("--from", run[4], "--to", run[5], "--tz", "UTC", name="sessions-summary",
                                as_of=run[1]).stdout_bytes
