"""Scheduled reports (issue 29, docs/schedules.md): what a schedule is and when it is due.

A schedule is a report's parameters kept as a saved view (brands, period, by, where, headers, extra), a
relative range (`yesterday`, `last week`...) resolved in the schedule's time zone at each fire time, a crontab
line read in that zone, and its recipients: user names (their e-mail address at run time) or plain addresses.
It belongs to an Administrator or Team Manager (`accounts.SCHEDULE`), and runs as them: their brands and
permissions at run time (`delivery.py`). Fire times are APScheduler's `CronTrigger`'s (two of them, either
firing, when a crontab line restricts both its days of the month and of the week, as crontab does); the runs a
process claimed are rows of `schedule_runs`, keyed by schedule and fire time, so that two processes never send the
same run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from convoscope import accounts
from convoscope.accounts import User
from convoscope.config import Config, check_zone
from convoscope.errors import ConvoscopeError, Forbidden, ParameterError
from convoscope.service.reports import Asker, prepare_report
from convoscope.store import Store

# The relative ranges a schedule may take, as local dates around the day it fires (`resolve_range`).
RANGES = ("yesterday", "last 7 days", "last 30 days", "last week", "last month", "this month to date")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's numbering: 0 (and 7) is Sunday


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored. `params`: the saved view (`brands`, `period`, `by`, `where`, `headers`, `extra`)."""

    id: int
    owner: str
    report: str
    params: dict[str, Any]
    range: str
    timezone: str
    cron: str
    recipients: tuple[str, ...]
    created_at: datetime  # UTC, naive as the store keeps it
    brands: tuple[str, ...] = field(default=())

    def trigger(self) -> BaseTrigger:
        return parse_cron(self.cron, self.timezone)

    def next_fire(self, now: datetime | None = None) -> datetime | None:
        now = now or datetime.now(UTC)
        return self.trigger().get_next_fire_time(None, now)

    def options(self, day: date, as_of: datetime) -> dict[str, Any]:
        """The parameters of `prepare_report` for the run whose local day is `day`, judged at `as_of`."""
        first, last = resolve_range(self.range, day)
        return {"brands": list(self.params.get("brands") or ()), "date_from": first.isoformat(),
                "date_to": last.isoformat(), "tz": self.timezone, "as_of": _rfc3339(as_of),
                "period": self.params.get("period"), "by": self.params.get("by"),
                "where": list(self.params.get("where") or ()), "headers": self.params.get("headers") or "display",
                "extra": bool(self.params.get("extra"))}


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_range(name: str, day: date) -> tuple[date, date]:
    """The local dates, both inclusive, of relative range `name` for a run on local day `day`: whole days before
    it (`yesterday`, `last 7 days`, `last 30 days`), the whole ISO week (Monday to Sunday) or calendar month before
    the one `day` is in, or this month from its first day to `day` (judged as of the fire time)."""
    month = day.replace(day=1)
    if name == "yesterday":
        return day - timedelta(days=1), day - timedelta(days=1)
    if name in ("last 7 days", "last 30 days"):
        return day - timedelta(days=int(name.split()[1])), day - timedelta(days=1)
    if name == "last week":
        monday = day - timedelta(days=day.weekday() + 7)
        return monday, monday + timedelta(days=6)
    if name == "last month":
        end = month - timedelta(days=1)
        return end.replace(day=1), end
    if name == "this month to date":
        return month, day
    raise ParameterError("range", lambda n: f"{n('range')} {name!r} is not one of {', '.join(RANGES)}")


def _weekdays(text: str) -> str:
    """A crontab day-of-week field (numbers 0-7 with Sunday 0 and 7, names, ranges, steps, lists) as APScheduler's
    names: APScheduler 3 counts Monday as 0, so that `1` would otherwise mean Tuesday."""
    if text == "*":
        return text
    days: set[int] = set()
    for item in text.lower().split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(item)
        if span == "*":
            first, last = 0, 6
        else:
            low, dash, high = span.partition("-")
            first = _weekday(low)
            last = _weekday(high) if dash else (6 if step else first)
            if dash and last == 0 and high.strip() == "7":
                last = 7
        if last < first:
            raise ValueError(item)
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    return ",".join(_DAYS[d] for d in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _DAYS and len(text) == 3:
        return _DAYS.index(text)
    raise ValueError(text)


def parse_cron(text: str, zone: str) -> BaseTrigger:
    """A crontab line's five fields (minute hour day-of-month month day-of-week, as crontab(5) reads them) as
    APScheduler's trigger in `zone`; a `ParameterError` on `cron` for anything else.

    When both day fields are restricted (neither starts with `*`), crontab runs on a day either matches (`0 8 1 * 1`:
    the 1st of each month and every Monday), where one `CronTrigger` would want both: that line is two triggers, one
    for each day field, the earlier fire time of the two the next."""
    fields = text.split()
    try:
        if len(fields) != 5:
            raise ValueError(text)
        minute, hour, day, month, weekday = fields
        days = _weekdays(weekday)

        def cron(day: str, days: str) -> CronTrigger:
            return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=days,
                               timezone=ZoneInfo(zone))

        if day.startswith("*") or weekday.startswith("*"):
            return cron(day, days)
        return OrTrigger([cron(day, "*"), cron("*", days)])
    except (ValueError, TypeError, IndexError):
        raise ParameterError("cron", lambda n: f"{n('cron')} {text!r} is not a crontab schedule; give five fields, "
                                               "minute hour day month weekday, such as '0 8 * * 1' (Mondays at "
                                               "08:00)") from None


def last_fire(trigger: BaseTrigger, after: datetime, now: datetime) -> datetime | None:
    """The latest fire time of `trigger` in (`after`, `now`], or None: the one run a process that was not running
    at the earlier ones owes (a run missed is run once, not once per fire time missed). It looks back from `now`
    over windows doubling in length, so a frequent schedule left alone for months takes a few steps, not one per
    fire time."""
    window = timedelta(hours=1)
    while True:
        start = max(after, now - window)
        found = None
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None and fire <= now:
            if fire > after:
                found = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if found is not None or start <= after:
            return found
        window *= 2


# --- kept in the store --------------------------------------------------------------------------------------------

_COLUMNS = "id, owner, report, params::VARCHAR, range, timezone, cron, recipients, created_at"


def _row(row: tuple[Any, ...]) -> Schedule:
    params = json.loads(row[3])
    return Schedule(row[0], row[1], row[2], params, row[4], row[5], row[6], tuple(row[7]), row[8],
                    tuple(params.get("brands") or ()))


def get_schedule(con: duckdb.DuckDBPyConnection, schedule_id: int) -> Schedule | None:
    rows = con.execute(f"SELECT {_COLUMNS} FROM schedules WHERE id = ?", [schedule_id]).fetchall()
    return _row(rows[0]) if rows else None


def list_schedules(con: duckdb.DuckDBPyConnection, viewer: User | None = None) -> list[Schedule]:
    """Every schedule (the command line), or those `viewer` may see and remove: their own, and an
    administrator's every schedule whose brands are all theirs."""
    found = [_row(r) for r in con.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY id").fetchall()]
    return [s for s in found if viewer is None or may_manage(viewer, s)]


def may_manage(user: User, schedule: Schedule) -> bool:
    if schedule.owner == user.name:
        return user.can(accounts.SCHEDULE)
    return user.can(accounts.ADMINISTER) and (user.brands is None
                                              or bool(schedule.brands) and set(schedule.brands) <= set(user.brands))


@dataclass(frozen=True)
class Recipient:
    """One recipient as given (`name`), and the address it reaches (None: a user without one)."""

    name: str
    address: str | None
    user: User | None


def resolve_recipients(con: duckdb.DuckDBPyConnection, given: Sequence[str]) -> list[Recipient]:
    """Each recipient: a user by name (their address now), else a plain address; a `ParameterError` on
    `recipients` for what is neither."""
    found = []
    for name in given:
        user = accounts.get_user(con, name)
        if user is not None:
            found.append(Recipient(name, user.email, user))
            continue
        try:
            found.append(Recipient(name, accounts.check_email(name), None))
        except ParameterError:
            raise _recipients_error(f"{name!r} is neither a user nor an e-mail address; list users with "
                                    "'convoscope users list'") from None
    return found


def _recipients_error(why: str) -> ParameterError:
    return ParameterError("recipients", lambda n: f"{n('recipients')}: {why}")


def refusal(recipient: Recipient, *, messages: bool, brands: Sequence[str]) -> str | None:
    """Why `recipient` may not receive a report (None: they may): a report with messages goes only to users who may
    download it themselves (SPEC 6.4, 6.5), and who see every brand it covers; any report needs an address."""
    if messages:
        user = recipient.user
        if user is None:
            return (f"{recipient.name} is a plain address, and the report holds messages: it goes only to users who "
                    "may read them")
        if not user.can(accounts.REPORTS_WITH_MESSAGES):
            return f"{user.name} ({user.role_title}) may not read reports with messages"
        hidden = [b for b in brands if user.brands is not None and b not in user.brands]
        if hidden:
            return f"{user.name} may not see brand {hidden[0]}, which the report covers"
    if recipient.address is None:
        return f"user {recipient.name} has no e-mail address; set one with 'convoscope users set-email {recipient.name} ADDRESS'"
    return None


def owner_asker(owner: User) -> Asker:
    """Who a schedule's report runs as: its owner, with their brands and permissions now."""
    return Asker(owner.name, "schedule", owner.brands, owner.can(accounts.REPORTS_WITH_MESSAGES))


def add_schedule(store: Store, config: Config, owner_name: str, report: str, *, range_name: str, timezone: str,
                 cron: str, recipients: Sequence[str], brands: Sequence[str] = (), period: str | None = None,
                 by: str | None = None, where: Sequence[str] = (), headers: str = "display", extra: bool = False,
                 now: datetime | None = None) -> Schedule:
    """Keep a new schedule of `report` for `owner_name`, an Administrator or Team Manager, once its every part is
    checked: the parameters as the owner may run them now (`prepare_report`), the range, zone and crontab line,
    and each recipient (`refusal`)."""
    now = now or datetime.now(UTC)
    check_zone(timezone, param="timezone")
    if parse_cron(cron, timezone).get_next_fire_time(None, now) is None:  # such as '0 7 31 2 *', February 31st
        raise ParameterError("cron", lambda n: f"{n('cron')} {cron!r} never fires: no date has its day of the month "
                                               "in its months (and its weekday, when given); check its day and month "
                                               "fields")
    if range_name not in RANGES:
        raise ParameterError("range", lambda n: f"{n('range')} {range_name!r} is not one of {', '.join(RANGES)}")
    recipients = list(dict.fromkeys(r.strip() for r in recipients if r.strip()))
    if not recipients:
        raise ParameterError("recipients", lambda n: f"give at least one of {n('recipients')}: a user name or an "
                                                     "e-mail address")
    params: dict[str, Any] = {"brands": list(dict.fromkeys(brands)), "period": period, "by": by, "where": list(where),
              "headers": headers, "extra": extra}
    draft = Schedule(0, owner_name, report, params, range_name, timezone, cron, tuple(recipients), now,
                     tuple(params["brands"]))
    with store.transaction() as con:
        owner = accounts.get_user(con, owner_name)
        if owner is None:
            raise ConvoscopeError(f"no user {owner_name!r}; list them with", command=("users", "list"))
        if not owner.can(accounts.SCHEDULE):
            raise Forbidden(f"{owner.name} is {owner.role_title}: only an Administrator or a Team Manager may "
                            "schedule reports")
        definition, prepared = prepare_report(store, config, report, owner_asker(owner), brands=brands,
                                              **{k: v for k, v in draft.options(now.date(), now).items()
                                                 if k != "brands"})
        for recipient in resolve_recipients(con, recipients):
            why = refusal(recipient, messages=definition.personal_data, brands=prepared.brands)
            if why is not None:
                raise _recipients_error(why)
        schedule_id = next_schedule_id(con)
        con.execute("INSERT INTO schedules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [schedule_id, owner.name, definition.name, json.dumps(params), range_name, timezone, cron,
                     recipients, now.astimezone(UTC).replace(tzinfo=None)])
        accounts_audit(con, owner.name, "schedule_added", definition.name, schedule_id, prepared.brands)
    return get_schedule(store.con, schedule_id) or draft


def next_schedule_id(con: duckdb.DuckDBPyConnection) -> int:
    """One past every schedule id the store has known, so that an id is never given twice: a removed schedule's
    runs and audit entries (`schedule/ID`) stay its own, and a new schedule's claims never meet its keys. The audit
    log remembers every id (`schedule_added` is written with the schedule), in a store made before this rule too;
    the schedules and their runs are counted as well, should an audit entry be missing."""
    return int(con.execute("""
        SELECT greatest((SELECT coalesce(max(id), 0) FROM schedules),
                        (SELECT coalesce(max(schedule_id), 0) FROM schedule_runs),
                        (SELECT coalesce(max(TRY_CAST(split_part(target, '/', 2) AS BIGINT)), 0) FROM audit_log
                         WHERE starts_with(target, 'schedule/'))) + 1
    """).fetchall()[0][0])


def remove_schedule(store: Store, schedule_id: int, by: User | None, *, operator: str | None = None) -> Schedule:
    """Remove a schedule (and keep its runs' history); `by`, a user who must be allowed to (`may_manage`), or None
    for the command line's `operator` (`cli:NAME`, as the audit log names them)."""
    with store.transaction() as con:
        schedule = get_schedule(con, schedule_id)
        if schedule is None or (by is not None and not may_manage(by, schedule)):
            raise ConvoscopeError(f"no schedule {schedule_id} you may remove; list them with",
                                  command=("schedules", "list"))
        con.execute("DELETE FROM schedules WHERE id = ?", [schedule_id])
        accounts_audit(con, by.name if by else operator, "schedule_removed", schedule.report, schedule_id,
                       list(schedule.brands))
    return schedule


def accounts_audit(con: duckdb.DuckDBPyConnection, user: str | None, action: str, report: str, schedule_id: int,
                   brands: Sequence[str], **more: Any) -> None:
    """An audit entry about a schedule, written in the transaction at hand."""
    con.execute("INSERT INTO audit_log (logged_at, user_name, action, target, parameters, brands) VALUES "
                "(?, ?, ?, ?, ?, ?)",
                [datetime.now(UTC).replace(tzinfo=None), user, action, f"schedule/{schedule_id}",
                 json.dumps({"report": report, **more}, sort_keys=True, default=str), sorted(brands) or None])


def describe(schedule: Schedule) -> str:
    """A schedule on one line, as `schedules list` prints it."""
    view = [f"--brand {b}" for b in schedule.brands] + [f"--where {w}" for w in schedule.params.get("where") or ()]
    for key in ("period", "by"):
        if schedule.params.get(key):
            view.append(f"--{key} {schedule.params[key]}")
    if schedule.params.get("headers") == "snake":
        view.append("--headers snake")
    if schedule.params.get("extra"):
        view.append("--extra")
    return " ".join([schedule.report, *view])

