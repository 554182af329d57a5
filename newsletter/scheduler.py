"""`newsletter run`: the scheduler daemon (APScheduler 3, jobs in the project's database).

One scheduler at a time: on PostgreSQL the process holds an advisory lock on a connection of
its own (released by the server the moment the process dies); on SQLite an flock on a file
beside the database. A second `newsletter run` waits as a hot standby and takes over.

Jobs (stable ids, stored in the ``apscheduler_jobs`` table, all coalescing, one instance at a
time, misfire grace = ``scheduler.misfire_grace_seconds``):

- ``dispatch`` (every ``scheduler.dispatch_interval_seconds``): issues whose time has come are
  opened for sending (or marked missed when too late, see issues.schedule); pending posts of
  "draft"/"send" feeds get their issue; every sending issue with due work (new, or deferred
  deliveries whose retry time came) gets a sending worker thread in this process.
- ``feed:<url>`` (every ``interval_minutes``): poll one feed; a broken feed is logged and the
  others go on.
- ``digest`` (the ``[digest] cron`` in its time zone): one digest per digest list, of the
  posts that list has not had; none when there are none.
- ``cadence:weekly``, ``cadence:monthly`` (the ``[cadence]`` crons, when a feed is in "send"
  mode): the digests of the posts held for readers who chose a weekly or monthly digest
  (newsletter.issues.digests).
- ``bounces`` (every ``bounces.interval_minutes``): process the bounce mailbox.

The ``dispatch`` job also delivers the webhook outbox (in a thread of its own) and moves
sequences on (newsletter.sequences.advance): each reader
whose next step is due gets it in that step's ledger, which the sending threads then send.

Restart safety: the issue rows are the truth for issues, so a schedule made while the daemon
was down is honoured when it starts. Jobs already in the store keep their next run time when
their trigger is unchanged, so a digest that fell due during downtime runs once on start-up
(coalesced) if within the grace. SIGTERM/SIGINT: no new work; sending threads finish their
batch, give back what they had not sent, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .bounces import run_scheduled
from .config import Settings
from .content.library import poll_feed
from .cron import cron_trigger
from .delivery import ledger
from .delivery.dispatcher import Worker
from .errors import InvalidInputError, NewsletterError, StoreError
from .issues import schedule
from .issues.announce import announce_pending
from .issues.digests import make_cadence_digests
from .issues.service import create_issue
from .sequences.advance import advance_all
from .store import writer_sessions
from .store.errors import translating
from .store.locks import SchedulerLock
from .store.models import Issue, utcnow
from .webhooks.deliver import deliver_due

log = logging.getLogger("newsletter.scheduler")
JOB_TABLE = "apscheduler_jobs"
BLOCK_SECONDS = 60  # wait before sending again after a configuration error (bad password)


# --- the daemon ----------------------------------------------------------------------------


@dataclass
class Daemon:
    settings: Settings
    engine: Engine
    stop: threading.Event = field(default_factory=threading.Event)
    sessions: sessionmaker[Session] = field(init=False)
    _senders: dict[int, threading.Thread] = field(default_factory=dict, init=False)
    # Issues whose sending failed for a configuration reason: not retried before this time.
    _blocked_until: dict[int, float] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _hooks: threading.Thread | None = field(default=None, init=False)  # delivering webhooks

    def __post_init__(self) -> None:
        self.sessions = writer_sessions(self.engine)

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        """Wait to be the scheduler, schedule until stopped, then shut down cleanly."""
        self._check_lists()
        leadership = SchedulerLock(self.engine)
        waiting_logged = False
        while not leadership.try_acquire():
            if not waiting_logged:
                log.info("scheduler.standby reason=another newsletter run is scheduling")
                waiting_logged = True
            if self.stop.wait(self.settings.scheduler.standby_poll_seconds):
                return
        log.info("scheduler.leader pid=%s", os.getpid())
        scheduler = self._scheduler()
        try:
            scheduler.start(paused=True)
            self._sync_jobs(scheduler)
            scheduler.resume()
            self.dispatch()  # catch up at once with what fell due while we were down
            lost = False
            while not self.stop.wait(self.settings.scheduler.standby_poll_seconds):
                if not leadership.still_held():
                    lost = True
                    log.error("scheduler.lost_lock reason=the database connection holding it "
                              "is gone; stopping so a standby or a restart takes over")  # fmt: skip
                    self.stop.set()
            log.info("scheduler.stopping")
        finally:
            scheduler.shutdown(wait=True)
            self._join_senders()
            with contextlib.suppress(Exception):
                leadership.release()
            log.info("scheduler.stopped")
        if lost:
            raise StoreError("lost the scheduler lock (database connection dropped)")

    def _check_lists(self) -> None:
        from .subscribers.service import get_list

        names = {f.list for f in self.settings.feeds if f.list} | (
            {self.settings.digest.list} if self.settings.digest.list else set()
        )
        with self.sessions() as session:
            for name in sorted(names):
                get_list(session, name)  # NotFoundError: one clear line before anything runs

    def _scheduler(self) -> BackgroundScheduler:
        grace = self.settings.scheduler.misfire_grace_seconds
        return BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=JOB_TABLE)},
            executors={"default": _JobThreads(self, 4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone="UTC",
        )

    def _wanted_jobs(self) -> dict[str, tuple[str, Any, tuple]]:
        s = self.settings
        jobs: dict[str, tuple[str, Any, tuple]] = {
            "dispatch": (
                f"{__name__}:job_dispatch",
                IntervalTrigger(seconds=s.scheduler.dispatch_interval_seconds, timezone="UTC"),
                (),
            )
        }
        for feed in s.feeds:
            jobs[f"feed:{feed.url}"] = (
                f"{__name__}:job_poll_feed",
                IntervalTrigger(minutes=feed.interval_minutes, timezone="UTC"),
                (feed.url,),
            )
        if s.bounces.source and s.bounces.interval_minutes > 0:
            jobs["bounces"] = (
                f"{__name__}:job_bounces",
                IntervalTrigger(minutes=s.bounces.interval_minutes, timezone="UTC"),
                (),
            )
        if any(f.mode == "send" and f.list for f in s.feeds):
            # readers who chose a weekly or monthly digest of a send-mode feed's posts
            for cadence in ("weekly", "monthly"):
                jobs[f"cadence:{cadence}"] = (
                    f"{__name__}:job_cadence",
                    cron_trigger(getattr(s.cadence, cadence), s.cadence.timezone),
                    (cadence,),
                )
        if self.digest_lists():
            jobs["digest"] = (
                f"{__name__}:job_digest",
                cron_trigger(s.digest.cron, s.digest.timezone),
                (),
            )
        return jobs

    def _sync_jobs(self, scheduler: BackgroundScheduler) -> None:
        """Make the stored jobs match the config, keeping a job's next run time (and so a
        run missed during downtime) when its trigger did not change."""
        wanted = self._wanted_jobs()
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
                log.info("job.removed id=%s", job.id)
        for job_id, (func, trigger, args) in wanted.items():
            existing = scheduler.get_job(job_id)
            if existing is not None and str(existing.trigger) == str(trigger):
                continue
            # A new feed is polled at once, not one interval after the daemon starts.
            first = {"next_run_time": datetime.now(UTC)} if job_id.startswith("feed:") else {}
            scheduler.add_job(func, trigger, args=args, id=job_id, replace_existing=True, **first)
            log.info("job.scheduled id=%s trigger=%s", job_id, trigger)

    def digest_lists(self) -> list[str]:
        lists = {f.list for f in self.settings.feeds if f.mode == "digest" and f.list}
        if self.settings.digest.list:
            lists.add(self.settings.digest.list)
        return sorted(lists)

    # -- jobs ----------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Open due issues, make feed-post issues, and keep a sender on every sending issue."""
        if self.stop.is_set():
            return
        grace = timedelta(seconds=self.settings.scheduler.misfire_grace_seconds)
        with self.sessions() as session, session.begin():
            for a in announce_pending(session, self.settings):
                log.info("feed.issue id=%s post=%s mode=%s list=%s", a.issue_id, a.post_id,
                         a.mode, a.list_name)  # fmt: skip
            to_send, missed = schedule.due_issues(session, grace=grace)
            for issue in missed:
                late = utcnow() - issue.scheduled_at if issue.scheduled_at else None
                log.warning("issue.missed id=%s late=%s (beyond the grace; not sent)",
                            issue.id, late)  # fmt: skip
            for issue in to_send:
                added = ledger.start_issue(session, issue)
                log.info("issue.start id=%s recipients=%s subject=%r", issue.id, added,
                         issue.subject)  # fmt: skip
        got = advance_all(
            self.sessions, self.settings, committed=lambda ids: [self._start_sender(i) for i in ids]
        )
        if got.taken:
            log.info("sequence.steps queued=%s skipped=%s left=%s done=%s", got.queued,
                     got.skipped, got.left, got.done)  # fmt: skip
        with self.sessions() as session, session.begin():
            ledger.release_dead_local_claims(session)
            due = ledger.issues_with_due_work(session)
        for issue_id in due:
            self._start_sender(issue_id)
        self._start_webhooks()

    def _start_sender(self, issue_id: int) -> None:
        with self._lock:
            running = self._senders.get(issue_id)
            if (running is not None and running.is_alive()) or self.stop.is_set():
                return
            if time.monotonic() < self._blocked_until.get(issue_id, 0.0):
                return
            thread = threading.Thread(
                target=self._send, args=(issue_id,), name=f"send-{issue_id}", daemon=False
            )
            self._senders[issue_id] = thread
            thread.start()

    def _send(self, issue_id: int) -> None:
        log.info("issue.send id=%s", issue_id)
        try:
            stats = Worker(self.engine, self.settings, issue_id=issue_id, stop=self.stop).run()
        except NewsletterError as exc:
            log.error("issue.error id=%s retry_in=%ss error=%s", issue_id, BLOCK_SECONDS, exc)
            with self._lock:
                self._blocked_until[issue_id] = time.monotonic() + BLOCK_SECONDS
            return
        except Exception:  # a bug must not kill the daemon; it is logged with its traceback
            log.exception("issue.crash id=%s", issue_id)
            return
        with self.sessions() as session:
            issue = session.get(Issue, issue_id)
            status = issue.status if issue else "gone"
        counts = " ".join(f"{k}={v}" for k, v in sorted(stats.by_status.items()))
        log.info("issue.batch_done id=%s status=%s %s", issue_id, status, counts)

    def _join_senders(self) -> None:
        with self._lock:
            threads = [*self._senders.values(), *([self._hooks] if self._hooks else [])]
        for thread in threads:
            thread.join()

    def poll(self, url: str) -> None:
        feed = next((f for f in self.settings.feeds if f.url == url), None)
        if feed is None or self.stop.is_set():
            return
        outcome = poll_feed(
            self.sessions,
            url,
            mode=feed.mode,
            announce_backlog=feed.announce_backlog,
            deadline=self.settings.fetch.deadline_seconds,
        )
        if outcome.status == "error":
            log.warning("feed.error url=%s error=%s", url, outcome.error)
            return
        log.info("feed.poll url=%s status=%s new=%s updated=%s", url, outcome.status,
                 outcome.new, outcome.updated)  # fmt: skip
        if outcome.new:
            self.dispatch()

    def digest(self) -> None:
        if self.stop.is_set():
            return
        for list_name in self.digest_lists():
            with self.sessions() as session, session.begin():
                try:
                    issue = create_issue(
                        session, self.settings, digest=True, list_name=list_name, waiting_only=True
                    )
                except InvalidInputError as exc:
                    log.info("digest.skip list=%s reason=%s", list_name, exc)
                    continue
                issue.status, issue.scheduled_at = "scheduled", utcnow()
                log.info("digest.created id=%s list=%s posts=%s", issue.id, list_name,
                         len(issue.posts))  # fmt: skip
        self.dispatch()

    def cadence_digests(self, cadence: str) -> None:
        """The weekly (monthly) digests of what was held for readers of that cadence."""
        if self.stop.is_set():
            return
        with self.sessions() as session, session.begin():
            for issue in make_cadence_digests(session, self.settings, cadence):
                log.info("cadence.digest id=%s cadence=%s list=%s posts=%s", issue.id, cadence,
                         issue.list_id, len(issue.posts))  # fmt: skip
        self.dispatch()

    def _start_webhooks(self) -> None:
        """Deliver the webhook messages that are due in a thread of their own (a slow
        receiver must not hold up dispatching); `newsletter serve` delivers them too."""
        with self._lock:
            if self.stop.is_set() or (self._hooks is not None and self._hooks.is_alive()):
                return
            self._hooks = threading.Thread(target=self._webhooks, name="webhooks", daemon=False)
            self._hooks.start()

    def _webhooks(self) -> None:
        try:
            with translating():
                deliver_due(self.sessions, self.settings.webhooks)
        except Exception:  # logged; the next dispatch tries again (the outbox keeps them)
            log.exception("webhooks.error")

    def bounces(self) -> None:
        """Process the bounce mailbox once (logs its problems, never raises)."""
        if not self.stop.is_set():
            run_scheduled(self.settings, self.sessions)


class _JobThreads(ThreadPoolExecutor):
    """APScheduler's thread pool, quiet about a job that falls due while it shuts down.

    The scheduler's thread looks for due jobs once more after ``shutdown()`` has stopped the
    pool (it waits for the running jobs first, a feed poll for up to its deadline), and
    APScheduler logs the pool's refusal as a traceback. That run is not made, as before; it
    is only not reported as a crash.
    """

    def __init__(self, daemon: Daemon, max_workers: int) -> None:
        super().__init__(max_workers)
        self._daemon = daemon
        self._stopping = False

    def shutdown(self, wait: bool = True) -> None:
        self._stopping = True
        super().shutdown(wait)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        if self._stopping:
            log.info("job.skipped id=%s reason=the daemon is stopping", job.id)
            return
        super()._do_submit_job(_ForDaemon(job, self._daemon), run_times)


class _ForDaemon:
    """A stored job as APScheduler runs it, its function given this process's daemon: the
    job store keeps only the function's name and the job's own arguments."""

    def __init__(self, job: Any, daemon: Daemon) -> None:
        self._job = job
        self.func = functools.partial(job.func, daemon=daemon)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


# Job functions: module-level so the job store can keep a reference to them by name; the
# executor passes the daemon that runs them.


def _run_job(name: str, work: Callable[[], None]) -> None:
    """One job run: a database that cannot be used, or another of our errors, is one logged
    line (the job runs again at its next time), not a traceback from APScheduler."""
    try:
        with translating():
            work()
    except NewsletterError as exc:
        log.error("job.error job=%s error=%s", name, exc)


def job_dispatch(*, daemon: Daemon | None = None) -> None:
    if daemon is not None:  # always given by our executor; APScheduler checks the signature
        _run_job("dispatch", daemon.dispatch)


def job_poll_feed(url: str, *, daemon: Daemon | None = None) -> None:
    if daemon is not None:
        _run_job(f"feed:{url}", lambda: daemon.poll(url))


def job_digest(*, daemon: Daemon | None = None) -> None:
    if daemon is not None:
        _run_job("digest", daemon.digest)


def job_cadence(cadence: str, *, daemon: Daemon | None = None) -> None:
    if daemon is not None:
        _run_job(f"cadence:{cadence}", lambda: daemon.cadence_digests(cadence))


def job_bounces(*, daemon: Daemon | None = None) -> None:
    if daemon is not None:
        _run_job("bounces", daemon.bounces)
