"""Running scheduled reports (issue 29, docs/schedules.md): claim a run, produce its CSV through the one report
path, mail it, record what happened; retry a failure, and show it as failed after the last attempt.

A run is claimed before anything is sent: a row of `schedule_runs` keyed by (schedule, fire time), written in a
transaction, so two processes (the scheduler inside `serve`, a `schedules run-due` from cron) never send the same
run. The store is held only to claim, to produce the CSV and to record: never while the SMTP server is spoken
to. A report runs as its schedule's owner (`schedules.owner_asker`), through `service.prepare_report` and
`run_report`, which audit a report with messages as every download is audited. Mail is sent with the standard
library (`smtplib`, `email.message`): the CSV attached, or, above `[mail] attach_limit`, kept beside the store
and linked (`/deliveries/TOKEN`) for `[mail] link_days`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import smtplib
import ssl
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from convoscope import accounts
from convoscope.config import Config, MailSettings
from convoscope.errors import ConvoscopeError
from convoscope.reports.base import naive_utc
from convoscope.service.reports import prepare_report, run_report
from convoscope.service.schedules import (
    Schedule,
    accounts_audit,
    get_schedule,
    last_fire,
    list_schedules,
    owner_asker,
    refusal,
    resolve_recipients,
)
from convoscope.store import Store

Opener = Callable[[], AbstractContextManager[Store]]
STALE = timedelta(hours=1)  # a run `running` this long was left by a process that stopped: it is attempted again
log = logging.getLogger("convoscope.schedules")


def deliveries_folder(db_path: Path) -> Path:
    """Where CSVs too large to attach are kept, for their links: `<store file>.deliveries` beside it."""
    return db_path.with_name(db_path.name + ".deliveries")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Outcome:
    """What one attempt of a run gave: `sent`, `retrying` or `failed`, and why."""

    schedule_id: int
    due_at: datetime
    attempt: int
    status: str
    rows: int = 0
    size: int = 0
    error: str | None = None


# --- claiming ---------------------------------------------------------------------------------------------------

def due(store: Store, now: datetime) -> list[tuple[int, datetime, int]]:
    """(schedule, fire time, attempt) of every run owed at `now`: each schedule's latest fire time after the later of
    its creation and its last claimed run (once, however many were missed), and every run waiting for a retry."""
    owed = []
    for schedule in list_schedules(store.con):
        claimed = store.con.execute("SELECT max(due_at) FROM schedule_runs WHERE schedule_id = ?",
                                    [schedule.id]).fetchall()[0][0]
        after = _aware(max(schedule.created_at, claimed) if claimed is not None else schedule.created_at)
        fire = last_fire(schedule.trigger(), after, now)
        if fire is not None:
            owed.append((schedule.id, naive_utc(fire), 1))
    retries = store.con.execute("""
        SELECT schedule_id, due_at, attempt + 1 FROM schedule_runs
        WHERE (status = 'retrying' AND next_attempt_at <= ?) OR (status = 'running' AND started_at <= ?)
        ORDER BY due_at
    """, [naive_utc(now), naive_utc(now - STALE)]).fetchall()
    return owed + [(int(s), d, int(a)) for s, d, a in retries]


def claim(store: Store, schedule_id: int, due_at: datetime, attempt: int, now: datetime) -> bool:
    """Take attempt `attempt` of the run (`schedule_id`, `due_at`) for this process: False when another took it
    first. The first attempt is a new row (its key refuses a second); a later one moves the row on from the attempt
    before, which only one process can do."""
    with store.transaction() as con:
        found = con.execute("SELECT attempt, status FROM schedule_runs WHERE schedule_id = ? AND due_at = ?",
                            [schedule_id, due_at]).fetchall()
        if attempt == 1:
            if found:
                return False
            con.execute("INSERT INTO schedule_runs (schedule_id, due_at, status, attempt, started_at) "
                        "VALUES (?, ?, 'running', 1, ?)", [schedule_id, due_at, naive_utc(now)])
            return True
        if not found or found[0][0] != attempt - 1 or found[0][1] not in ("retrying", "running"):
            return False
        con.execute("UPDATE schedule_runs SET status = 'running', attempt = ?, started_at = ?, finished_at = NULL, "
                    "next_attempt_at = NULL WHERE schedule_id = ? AND due_at = ?",
                    [attempt, naive_utc(now), schedule_id, due_at])
        return True


# --- one attempt ------------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A run's CSV, made: where it is, its name in the mail, its rows and bytes, and the addresses it goes to."""

    schedule: Schedule
    path: Path
    filename: str
    rows: int
    size: int
    addresses: list[str]
    skipped: list[str]
    brands: list[str]
    date_from: str
    date_to: str
    personal: bool


class RunFailure(ConvoscopeError):
    """A run that cannot go on, in one line for the runs' list and the audit log."""


def _prepare(store: Store, config: Config, schedule_id: int, due_at: datetime, scratch: Path,
             writing: AbstractContextManager[Any]) -> Prepared:
    schedule = get_schedule(store.con, schedule_id)
    if schedule is None:
        raise RunFailure(f"schedule {schedule_id} was removed")
    owner = accounts.get_user(store.con, schedule.owner)
    if owner is None or not owner.can(accounts.SCHEDULE):
        raise RunFailure(f"its owner {schedule.owner} is no longer an Administrator or Team Manager; "
                         "remove the schedule and add it again under another owner")
    day = _aware(due_at).astimezone(ZoneInfo(schedule.timezone)).date()
    options = schedule.options(day, _aware(due_at))
    definition, params = prepare_report(store, config, schedule.report, owner_asker(owner), brands=options.pop("brands"),
                                        **options)
    addresses: list[str] = []
    skipped: list[str] = []
    for recipient in resolve_recipients(store.con, schedule.recipients):
        why = refusal(recipient, messages=definition.personal_data, brands=params.brands)
        if why is not None or recipient.address is None:
            skipped.append(why or recipient.name)
        elif recipient.address.lower() not in (a.lower() for a in addresses):
            addresses.append(recipient.address)  # a mailbox named twice (a user and their address): one RCPT
    if not addresses:
        raise RunFailure("no recipient may receive it: " + "; ".join(skipped))
    given = {"schedule": schedule.id, "from": options["date_from"], "to": options["date_to"], "tz": schedule.timezone,
             "as_of": options["as_of"], "recipients": addresses, "via": "schedule"}
    path = scratch / "report.csv"
    count = run_report(store, config, definition, params, owner_asker(owner), given=given, to=path, writing=writing,
                       action="download").count
    brand = "+".join(schedule.brands) or "all"
    filename = f"{definition.name}_{brand}_{options['date_from']}_{options['date_to']}.csv"
    return Prepared(schedule, path, filename, count, path.stat().st_size, addresses, skipped, list(params.brands),
                    options["date_from"], options["date_to"], definition.personal_data)


def send_mail(mail: MailSettings, to: list[str], subject: str, body: str,
              attachment: tuple[str, bytes] | None = None) -> None:
    """Send one message through the `[mail]` server (a `RunFailure` saying what went wrong, in one line)."""
    if mail.host is None:
        raise RunFailure("no SMTP server is configured; set host in the [mail] table of the configuration file")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = mail.sender, ", ".join(to), subject
    # RFC 5322 requires Date; Message-ID lets a mail program thread and deduplicate (its domain the sender's)
    message["Date"] = formatdate(usegmt=True)
    _, sender = parseaddr(mail.sender)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)
    if attachment is not None:
        message.add_attachment(attachment[1], maintype="text", subtype="csv", filename=attachment[0])
    password = mail.password if mail.password_env is None else os.environ.get(mail.password_env)
    try:
        with smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout) as smtp:
            if mail.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if mail.username is not None:
                if password is None:
                    raise RunFailure(f"[mail] username is set but no password: set {mail.password_env or 'password'}")
                smtp.login(mail.username, password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise RunFailure(f"the SMTP server {mail.host}:{mail.port} answered {exc.smtp_code} {' '.join(text.split())}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise RunFailure(f"the SMTP server {mail.host}:{mail.port} refused {', '.join(exc.recipients)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise RunFailure(f"cannot send through the SMTP server {mail.host}:{mail.port}: {reason}") from None


def _body(prepared: Prepared, link: str | None, days: int) -> str:
    schedule = prepared.schedule
    lines = [f"The {schedule.report} report for {prepared.date_from} to {prepared.date_to} ({schedule.timezone}), "
             f"{prepared.rows:,} rows, as scheduled by {schedule.owner} ({schedule.range}, '{schedule.cron}').", ""]
    if link is None:
        lines.append(f"It is attached: {prepared.filename}.")
    else:
        lines.append(f"It is {prepared.size:,} bytes, more than is attached; download it within {days} days from:")
        lines.append(link)
        if prepared.personal:
            lines.append("(It holds messages: log in to download it.)")
    lines += ["", f"Schedule {schedule.id}; remove it on the Schedules page or with 'convoscope schedules remove "
                  f"{schedule.id}'."]
    return "\n".join(lines)


def attempt(opener: Opener, config: Config, schedule_id: int, due_at: datetime, attempt_no: int, *,
            writing: AbstractContextManager[Any] | None = None, now: Callable[[], datetime] | None = None) -> Outcome:
    """One claimed attempt of a run: the CSV made (store open), the mail sent (store closed), the outcome recorded
    with its audit entry (store open). A failure is retried after `[mail] retry_after`, doubled each time, until
    `[mail] attempts` have failed."""
    clock = now or (lambda: datetime.now(UTC))
    lock = writing if writing is not None else nullcontext()
    outcome = Outcome(schedule_id, due_at, attempt_no, "sent")
    prepared: Prepared | None = None
    link_hash = None
    with tempfile.TemporaryDirectory(prefix="convoscope-schedule-") as scratch:
        try:
            with opener() as store:
                prepared = _prepare(store, config, schedule_id, due_at, Path(scratch), lock)
                folder = deliveries_folder(store.path)
            outcome.rows, outcome.size = prepared.rows, prepared.size
            link = None
            if prepared.size > config.mail.attach_limit:
                token = secrets.token_urlsafe(32)
                folder.mkdir(exist_ok=True)
                shutil.copyfile(prepared.path, folder / f"{link_digest(token)}.csv")
                link_hash = link_digest(token)
                brand = prepared.brands[0] if len(prepared.brands) == 1 else None
                base = (config.for_brand(brand) if brand else config.defaults).public_url
                link = f"{base}/deliveries/{token}"
            schedule = prepared.schedule
            subject = f"{schedule.report} {prepared.date_from} to {prepared.date_to} (schedule {schedule.id})"
            attachment = None if link else (prepared.filename, prepared.path.read_bytes())
            send_mail(config.mail, prepared.addresses, subject, _body(prepared, link, config.mail.link_days), attachment)
        except Exception as exc:  # a run must end recorded whatever went wrong, or it would stay `running`
            if isinstance(exc, ConvoscopeError):
                outcome.error = exc.worded(lambda name: name)
            else:
                log.exception("convoscope: schedule %s failed", schedule_id)
                outcome.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if link_hash is not None:  # not sent: its link goes nowhere
                (folder / f"{link_hash}.csv").unlink(missing_ok=True)
                link_hash = None
    if outcome.error is not None:
        last = attempt_no >= config.mail.attempts
        outcome.status = "failed" if last else "retrying"
    _record(opener, lock, outcome, prepared, link_hash, config.mail, clock())
    return outcome


def _record(opener: Opener, lock: AbstractContextManager[Any], outcome: Outcome, prepared: Prepared | None,
            link_hash: str | None, mail: MailSettings, now: datetime) -> None:
    retry = (now + mail.retry_after * 2 ** (outcome.attempt - 1)) if outcome.status == "retrying" else None
    with opener() as store, lock, store.transaction() as con:
        con.execute("""
            UPDATE schedule_runs SET status = ?, finished_at = ?, next_attempt_at = ?, date_from = ?, date_to = ?,
                rows = ?, bytes = ?, recipients = ?, delivered = ?, link_hash = ?, error = ?
            WHERE schedule_id = ? AND due_at = ?
        """, [outcome.status, naive_utc(now), naive_utc(retry) if retry else None,
              prepared.date_from if prepared else None, prepared.date_to if prepared else None,
              outcome.rows if prepared else None, outcome.size if prepared else None,
              prepared.addresses if prepared else None,
              None if outcome.status != "sent" else ("link" if link_hash else "attachment"), link_hash,
              outcome.error if outcome.error is None or not prepared or not prepared.skipped
              else f"{outcome.error} (skipped: {'; '.join(prepared.skipped)})",
              outcome.schedule_id, outcome.due_at])
        if outcome.status == "sent" and prepared is not None and prepared.skipped:
            con.execute("UPDATE schedule_runs SET error = ? WHERE schedule_id = ? AND due_at = ?",
                        ["skipped: " + "; ".join(prepared.skipped), outcome.schedule_id, outcome.due_at])
        schedule = prepared.schedule if prepared else get_schedule(con, outcome.schedule_id)
        action = {"sent": "schedule_sent", "retrying": "schedule_failed", "failed": "schedule_failed"}[outcome.status]
        extra: dict[str, Any] = {"due_at": outcome.due_at, "attempt": outcome.attempt, "status": outcome.status}
        if prepared is not None:
            extra |= {"rows": outcome.rows, "bytes": outcome.size, "recipients": prepared.addresses}
        if outcome.error:
            extra["error"] = outcome.error
        accounts_audit(con, schedule.owner if schedule else None, action, schedule.report if schedule else "",
                       outcome.schedule_id, prepared.brands if prepared else list(schedule.brands if schedule else ()),
                       **extra)


def run_due(opener: Opener, config: Config, *, writing: AbstractContextManager[Any] | None = None,
            now: datetime | None = None) -> list[Outcome]:
    """Every run owed now (`due`), each claimed, then attempted: what `schedules run-due` and the scheduler inside
    `serve` do. Runs another process claimed first are left to it."""
    moment = now or datetime.now(UTC)
    lock = writing if writing is not None else nullcontext()
    with opener() as store:
        owed = due(store, moment)
    outcomes = []
    for schedule_id, due_at, attempt_no in owed:
        with opener() as store, lock:
            taken = claim(store, schedule_id, due_at, attempt_no, moment)
        if taken:
            outcomes.append(attempt(opener, config, schedule_id, due_at, attempt_no, writing=writing))
    _drop_expired(opener, config.mail.link_days)
    return outcomes


def run_now(opener: Opener, config: Config, schedule_id: int, *, writing: AbstractContextManager[Any] | None = None
            ) -> Outcome:
    """A run of the schedule now, out of its rhythm (the page's Run now, `schedules run`), as if it fired now."""
    moment = datetime.now(UTC).replace(microsecond=0)
    with opener() as store, writing if writing is not None else nullcontext():
        if get_schedule(store.con, schedule_id) is None:
            raise ConvoscopeError(f"no schedule {schedule_id}; list them with", command=("schedules", "list"))
        while not claim(store, schedule_id, naive_utc(moment), 1, moment):
            moment += timedelta(seconds=1)  # pressed twice within a second: the second is its own run
    return attempt(opener, config, schedule_id, naive_utc(moment), 1, writing=writing)


def _drop_expired(opener: Opener, days: int) -> None:
    """Linked CSVs are kept `link_days`; then the file goes (the run's row stays, its link dead)."""
    with opener() as store:
        folder = deliveries_folder(store.path)
    if not folder.is_dir():
        return
    limit = datetime.now(UTC).timestamp() - days * 86400
    for path in folder.glob("*.csv"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < limit:
                path.unlink()


@dataclass(frozen=True)
class RunRow:
    """One run as the runs' list shows it."""

    schedule_id: int
    due_at: datetime
    status: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None
    date_from: Any
    date_to: Any
    rows: int | None
    size: int | None
    recipients: tuple[str, ...]
    delivered: str | None
    error: str | None


def list_runs(store: Store, schedule_ids: list[int] | None = None, limit: int = 100) -> list[RunRow]:
    """The newest runs, of `schedule_ids` only when given (a removed schedule's stay listed for the command line)."""
    only = "WHERE list_contains(?::BIGINT[], schedule_id)" if schedule_ids is not None else ""
    rows = store.con.execute(f"""
        SELECT schedule_id, due_at, status, attempt, started_at, finished_at, next_attempt_at, date_from, date_to,
               rows, bytes, recipients, delivered, error
        FROM schedule_runs {only} ORDER BY started_at DESC, due_at DESC LIMIT {int(limit)}
    """, [schedule_ids] if schedule_ids is not None else []).fetchall()
    return [RunRow(*(list(r[:11]) + [tuple(r[11] or ())] + list(r[12:]))) for r in rows]


def linked_file(store: Store, token: str, link_days: int) -> tuple[Path, RunRow, Schedule | None] | None:
    """The CSV a delivery's link points at, its run and schedule; None for a link unknown or past `link_days`."""
    digest = link_digest(token)
    found = store.con.execute("SELECT schedule_id, due_at FROM schedule_runs WHERE link_hash = ?", [digest]).fetchall()
    path = deliveries_folder(store.path) / f"{digest}.csv"
    if not found or not path.is_file():
        return None
    run = next(r for r in list_runs(store, [found[0][0]], limit=1_000_000) if r.due_at == found[0][1])
    if run.finished_at is None or _aware(run.finished_at) + timedelta(days=link_days) < datetime.now(UTC):
        return None
    return path, run, get_schedule(store.con, run.schedule_id)
