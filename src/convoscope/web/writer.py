"""The server's one writer of events (issue 30): the batches sent to the API or uploaded and the webhook deliveries
in the spool are stored by one thread, in rounds.

A round takes everything that came since the last one began: every waiting batch and up to SPOOL_ROUND of the
spool's deliveries, stored together in one transaction as one chunk (`service.store_round`: what a chunk costs
whatever its size — the planning of its validation, the duplicate check's scan of the stored ids unless the ids the
writer knows spare it — is paid once a round, not once a request), then the derive of the customers they changed;
then the spool's files are removed and the senders answered. So a batch is answered once it is in the reports, a spool that is empty is in the reports, and
under a steady stream a round lasts about as long as the work that came during the one before it: the time from
acceptance to a report is bounded by two rounds, whatever the rate (bench/live.py).

Readers never wait for a round under way (`settle`): a page reads what the last round derived. Only a reader that
finds customers pending while no round is under way (events another process stored while the server had the store
closed) wakes the writer and waits for its round, and a change of derivation settings is rebuilt under the lock as
before.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from convoscope import service
from convoscope.config import Config
from convoscope.events.known import KnownIds
from convoscope.sources import Outcome
from convoscope.spool import Spool
from convoscope.store import Store
from convoscope.web.server import Server

log = logging.getLogger("convoscope.writer")


@dataclass
class _Job:
    batch: service.Batch
    answer: Future[service.BatchOutcome] = field(default_factory=Future)


class Writer:
    """The thread that stores what the server is sent (see the module). `store` hands it a batch and waits for its
    round; `wake` tells it of a delivery in the spool; `drain` stores what is left and stops it."""

    PAUSE = 0.01  # seconds to let what comes together join one round
    IDLE = 5.0  # seconds between looks at the spool when nothing woke it (a delivery spooled by another process)
    SPOOL_ROUND = 2_000  # spool files a round merges at most: under a flood a round stays short, and answers flow
    NICE = -10  # the writer thread's nice value (`_run_ahead`)

    def __init__(self, server: Server) -> None:
        self.server = server
        self._jobs: list[_Job] = []
        self._mapped: dict[tuple[Path, int], tuple[str, str, Outcome]] = {}  # spooled deliveries (by file and
        # place in it), mapped by their handler
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rounds = threading.Condition()
        self._finished = 0  # rounds finished, for a reader waiting for the next one
        self._busy = False
        self._asked = False  # a reader found customers pending and waits for a round
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="convoscope-writer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def wake(self) -> None:
        self._wake.set()

    def spooled(self, path: Path, place: int, system: str, brand: str, record: Outcome) -> None:
        """A delivery was kept in the spool at `place` in the file `path`, and mapped to `record` for its answer: the
        round takes the record as it is rather than mapping the delivery again (half of what a delivery costs a
        round)."""
        with self._lock:
            self._mapped[path, place] = (system, brand, record)
        self._wake.set()

    def store(self, batch: service.Batch) -> service.BatchOutcome:
        """Store `batch` in the next round and return what became of it once that round derived it (the round's
        error, if it failed). Without the thread (a server stopping), stored at once under the write lock."""
        if not self.running:
            with self.server.gate.open() as store, self.server.gate.writing:
                outcome, = service.store_batches(store, [batch], known=self.server.gate.known)
                service.ensure_derived(store, self.server.config)
                return outcome
        job = _Job(batch)
        with self._lock:
            self._jobs.append(job)
        self._wake.set()
        return job.answer.result()

    def settle(self, store: Store, config: Config) -> None:
        """Before a reader reads derived tables: nothing to wait for when a round is under way (it derives what it
        stored; the reader sees the last round's), else what is pending (stored by another process) is derived by
        a round the reader waits for."""
        if self._busy:
            return
        with self._rounds:
            seen = self._finished
            self._asked = True
            self._wake.set()
            self._rounds.wait_for(lambda: self._finished > seen or not self.running, timeout=600)

    def drain(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        while self._round(everything=True):
            pass

    def _run(self) -> None:
        self._run_ahead()
        self._learn_ids()
        while not self._stop.is_set():
            self._wake.wait(self.IDLE)
            if self._stop.is_set():
                return
            time.sleep(self.PAUSE)
            self._wake.clear()
            try:
                self._round()
            except Exception:  # a full disk, a store held too long: the spool keeps its part for the next round
                log.exception("could not store what was sent; the spool keeps its deliveries for the next round")

    def _run_ahead(self) -> None:
        """Ask the kernel to run this thread ahead of the server's others (Linux: a thread's own nice value). On a
        machine the load saturates, a round otherwise waits for the cores behind every request, and freshness is a
        round and a half (bench/live.py at 10M: rounds of 1.5-1.8 s p50 became 0.77-0.87 s, decision 178). Lowering
        a nice value needs CAP_SYS_NICE (root has it); without, the writer runs as the rest (logged at info)."""
        if not sys.platform.startswith("linux"):  # elsewhere the call takes a process id, not a thread's
            return
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.NICE)
        except OSError as exc:
            log.info("the writer runs at the server's own priority (%s: raising it needs CAP_SYS_NICE)", exc.strerror)

    def _learn_ids(self) -> None:
        """Learn the stored ids (`KnownIds`) before anything is sent, so that the first round does not wait for it."""
        try:
            with self.server.gate.open() as store:
                self.server.gate.known.load(store.con)
        except Exception:  # the first round learns them instead
            log.exception("could not read the stored ids ahead of the first round")

    def _round(self, *, everything: bool = False) -> bool:
        """One round (see the module); whether it found anything to do."""
        spool = Spool(self.server.spool_folder)
        waiting = spool.waiting()
        waiting = waiting if everything else waiting[:self.SPOOL_ROUND]
        with self._lock:
            jobs, self._jobs = self._jobs, []
            listed = set(waiting)
            mapped = {key: self._mapped.pop(key) for key in [key for key in self._mapped if key[0] in listed]}
        if not jobs and not waiting and not self._asked:
            return False  # nothing came: the store stays closed, free for the command line
        self._asked = False
        self._busy = True
        try:
            started = time.perf_counter()
            with self.server.gate.open() as store, self.server.gate.writing:
                config, known = self.server.config, self.server.gate.known
                outcomes, merged, deliveries = self._store(store, jobs, waiting, mapped, known)
                stored = time.perf_counter()
                service.ensure_derived(store, config)
            log.debug("round: %d batches, %d deliveries in %d files; stored in %.3f s, derived in %.3f s", len(jobs),
                      deliveries, len(waiting), stored - started, time.perf_counter() - stored)
            spool.remove(merged)  # in the reports now: an empty spool is
            spool.clear_partial()
        except BaseException as exc:
            for job in jobs:
                if not job.answer.done():
                    job.answer.set_exception(exc)
            raise
        finally:
            self._busy = False
            with self._rounds:
                self._finished += 1
                self._rounds.notify_all()
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not job.answer.done():  # else its batch failed alone (`_store`)
                job.answer.set_result(outcome)
        return bool(jobs or waiting)

    @staticmethod
    def _store(store: Store, jobs: list[_Job], waiting: list[Path],
               mapped: dict[tuple[Path, int], tuple[str, str, Outcome]],
               known: KnownIds) -> tuple[list[service.BatchOutcome], list[Path], int]:
        """The jobs' batches and the spool's deliveries in one transaction; should that fail (it should not: a bad
        event is a reject), each batch alone, so that one batch's failure is its own answer, then the spool."""
        try:
            return service.store_round(store, [job.batch for job in jobs], waiting, mapped=mapped, known=known,
                                       warn=log.warning)
        except Exception:
            log.exception("storing %d batches and %d spool files together failed; each is stored alone", len(jobs),
                          len(waiting))
        outcomes = []
        for job in jobs:
            try:
                outcomes.extend(service.store_batches(store, [job.batch], known=known))
            except Exception as exc:
                job.answer.set_exception(exc)
                outcomes.append(service.BatchOutcome(service.IngestResult().counts, {}))
        service.merge_spool(store, waiting=waiting, known=known, warn=log.warning)  # removes what it merged
        return outcomes, [], len(waiting)  # for the round's log line: files, their deliveries unread here
