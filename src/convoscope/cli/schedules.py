"""Scheduled reports (issue 29, docs/schedules.md): `schedules add|list|remove|runs|run|run-due`.

`run-due` is what cron runs where no server does: every run owed now, each claimed in the store first, so that it
and a running `serve` never send the same run twice.
"""

from __future__ import annotations

import click

from convoscope.cli.app import App, fail, pass_app
from convoscope.errors import ParameterError, option_name
from convoscope.service import delivery
from convoscope.service import schedules as schedule_service

# The parameters `schedules add` names otherwise than `--name`: its recipients are `--to`, its zone `--tz`, and the
# dates of a run come from `--range` (`--to` here is not a date).
_OPTIONS = {"recipients": "--to", "timezone": "--tz", "from": "--range", "to": "--range"}


def _option(param: str) -> str:
    return _OPTIONS.get(param) or option_name(param)


@click.group()
def schedules() -> None:
    """Reports e-mailed on a schedule (owned by an Administrator or a Team Manager)."""


@schedules.command("add")
@click.argument("report")
@click.option("--owner", required=True, metavar="USER", help="Administrator or Team Manager the report runs as.")
@click.option("--range", "range_name", required=True, type=click.Choice(schedule_service.RANGES),
              help="The dates each run covers, in the schedule's time zone.")
@click.option("--cron", required=True, metavar="'M H DOM MON DOW'",
              help="When it runs, a crontab line read in --tz, such as '0 8 * * 1' (Mondays at 08:00).")
@click.option("--tz", "timezone", default="UTC", show_default=True, metavar="ZONE",
              help="IANA time zone of the schedule, its range and its report.")
@click.option("--to", "recipients", multiple=True, required=True, metavar="USER|ADDRESS",
              help="A recipient: a user (their address) or an e-mail address; repeatable.")
@click.option("--brand", "brands", multiple=True, help="Only this brand; repeatable (default every brand of the owner).")
@click.option("--period", help="half_hour, day, week, month, quarter or year.")
@click.option("--by", metavar="DIMENSION", help="A summary's rows per value of DIMENSION too.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Filter; repeatable, AND-ed.")
@click.option("--headers", type=click.Choice(["display", "snake"]), default="display", show_default=True)
@click.option("--extra", is_flag=True, help="Append the report's extra columns.")
@pass_app
def schedules_add(app: App, report: str, owner: str, range_name: str, cron: str, timezone: str,
                  recipients: tuple[str, ...], brands: tuple[str, ...], period: str | None, by: str | None,
                  where: tuple[str, ...], headers: str, extra: bool) -> None:
    """Schedule REPORT to be e-mailed as CSV (a link above [mail] attach_limit)."""
    try:
        with app.store(must_exist=True) as store:
            schedule = schedule_service.add_schedule(
                store, app.config, owner, report, range_name=range_name, timezone=timezone, cron=cron,
                recipients=recipients, brands=brands, period=period, by=by, where=where, headers=headers, extra=extra)
    except ParameterError as exc:  # named as this command's options are
        fail(exc.worded(_option, app.command), exc.exit_code)
    fire = schedule.next_fire()
    click.echo(schedule.id)
    click.echo(f"schedule {schedule.id}: {schedule_service.describe(schedule)}, {schedule.range}, next run "
               f"{fire:%Y-%m-%d %H:%M %Z}" if fire else f"schedule {schedule.id} added; its crontab line never fires",
               err=True)


@schedules.command("list")
@pass_app
def schedules_list(app: App) -> None:
    """List schedules: id, owner, report and view, range, crontab line, zone, recipients, next run (UTC)."""
    with app.store(must_exist=True) as store:
        found = schedule_service.list_schedules(store.con)
    if not found:
        click.echo(f"no schedules; add one with: {app.command(['schedules', 'add', 'REPORT', '--owner', 'USER', '--range', 'yesterday', '--cron', '0 8 * * *', '--to', 'USER'])}",
                   err=True)
    for schedule in found:
        fire = schedule.next_fire()
        click.echo("\t".join([str(schedule.id), schedule.owner, schedule_service.describe(schedule), schedule.range,
                              schedule.cron, schedule.timezone, ",".join(schedule.recipients),
                              f"{fire:%Y-%m-%dT%H:%M:%S%z}" if fire else "never"]))


@schedules.command("remove")
@click.argument("schedule_id", type=int, metavar="ID")
@pass_app
def schedules_remove(app: App, schedule_id: int) -> None:
    """Remove schedule ID (its runs stay listed)."""
    import getpass

    with app.store(must_exist=True) as store:  # audited as the operator, as `forget` is
        schedule_service.remove_schedule(store, schedule_id, None, operator=f"cli:{getpass.getuser()}")
    click.echo(f"removed schedule {schedule_id}", err=True)


@schedules.command("runs")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@pass_app
def schedules_runs(app: App, limit: int) -> None:
    """The newest runs: schedule, fire time (UTC), status, attempt, from, to, rows, bytes, delivered as, recipients,
    error."""
    with app.store(must_exist=True) as store:
        runs = delivery.list_runs(store, limit=limit)
    for run in runs:
        click.echo("\t".join([str(run.schedule_id), f"{run.due_at:%Y-%m-%dT%H:%M:%SZ}", run.status, str(run.attempt),
                              str(run.date_from or ""), str(run.date_to or ""), "" if run.rows is None else str(run.rows), "" if run.size is None else str(run.size),
                              run.delivered or "", ",".join(run.recipients), run.error or ""]))


def _report(outcomes: list[delivery.Outcome]) -> None:
    for outcome in outcomes:
        what = f"{outcome.rows:,} rows, {outcome.size:,} bytes" if outcome.status == "sent" else outcome.error
        click.echo(f"schedule {outcome.schedule_id} ({outcome.due_at:%Y-%m-%dT%H:%M:%SZ}, attempt {outcome.attempt}): "
                   f"{outcome.status}: {what}", err=True)


@schedules.command("run-due")
@pass_app
def schedules_run_due(app: App) -> None:
    """Send every run owed now, and retry those whose pause is over (for cron; `serve` does it by itself).
    Exit 1 when a run failed."""
    import sys

    outcomes = delivery.run_due(app.store, app.config)
    _report(outcomes)
    if not outcomes:
        click.echo("nothing due", err=True)
    if any(o.status != "sent" for o in outcomes):
        sys.exit(1)


@schedules.command("run")
@click.argument("schedule_id", type=int, metavar="ID")
@pass_app
def schedules_run(app: App, schedule_id: int) -> None:
    """Run schedule ID now, as if it fired now (a failure is retried by run-due or serve)."""
    import sys

    outcome = delivery.run_now(app.store, app.config, schedule_id)
    _report([outcome])
    if outcome.status != "sent":
        sys.exit(1)
