"""The one scheduler inside `serve` (issue 29): APScheduler's `BackgroundScheduler`, started and stopped with the
web app, runs `delivery.run_due` at start (the runs missed while nothing was running, once each) and then every
`TICK`; a page's Run now is one more job of the same scheduler.

It keeps no schedule of its own: the store is the one list, which `schedules add` in another process changes
too, and every run is claimed there first (`delivery.claim`), so a cron-driven `schedules run-due` beside a
server never sends a run twice. APScheduler provides the thread, one run at a time (`max_instances=1`), a tick
missed while one ran folded into the next (`coalesce`), and a clean stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from convoscope.config import Config
from convoscope.service import delivery

TICK = 30  # seconds between looks at what is due: a run starts at most this long after its fire time
log = logging.getLogger("convoscope.schedules")


class Scheduler:
    """Scheduled reports while the server runs. `opener` opens the store (the server's gate), `writing` is the
    server's write lock, `config` gives the configuration as its file says now."""

    def __init__(self, opener: delivery.Opener, writing: AbstractContextManager[Any],
                 config: Callable[[], Config]) -> None:
        self.opener, self.writing, self.config = opener, writing, config
        self._scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                                         "misfire_grace_time": None})

    def start(self) -> None:
        self._scheduler.add_job(self._tick, IntervalTrigger(seconds=TICK, timezone=UTC), id="run-due",
                                next_run_time=datetime.now(UTC))
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)  # a run under way ends recorded

    def run_now(self, schedule_id: int) -> None:
        """Run a schedule now, on the scheduler's thread: the page answers at once, the run lists itself."""
        self._scheduler.add_job(self._run_now, args=[schedule_id])

    def _tick(self) -> None:
        try:
            for outcome in delivery.run_due(self.opener, self.config(), writing=self.writing):
                if outcome.status != "sent":
                    log.warning("convoscope: schedule %s: %s (%s)", outcome.schedule_id, outcome.error, outcome.status)
        except Exception:  # the next tick tries again; the server goes on
            log.exception("convoscope: scheduled reports could not run")

    def _run_now(self, schedule_id: int) -> None:
        try:
            delivery.run_now(self.opener, self.config(), schedule_id, writing=self.writing)
        except Exception:
            log.exception("convoscope: schedule %s could not run", schedule_id)
