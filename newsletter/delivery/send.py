"""`issue send`, `issue pause|resume|cancel`, `newsletter worker`: running the dispatcher.

``send_issue`` opens the issue for sending, runs one worker in a thread of this process plus
``workers - 1`` child processes (each renders the issue once and keeps its own SMTP
connections; ``smtp.concurrency`` connections are shared out among them), reports progress
from the ledger, and returns when nothing is due any more. Several `issue send` of one issue
(and workers, and the daemon) may run at once: they share its deliveries.

Stopping (``stop``: Ctrl-C or SIGTERM in the parent): no more messages are handed out, the
ones on the wire finish, every answer is settled, what was not sent is given back, and the
call returns; the next `issue send` continues where this one stopped. The children ignore
the terminal's SIGINT (they are told by the parent, with SIGTERM), so a Ctrl-C while one is
still starting cannot leave it half-started. ``abort`` (a second Ctrl-C) kills everything at
once: that is the crash case, bounded like kill -9.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ..config import database_url, load_settings
from ..errors import InvalidInputError, NewsletterError
from ..issues import status as issue_status
from ..issues.service import get_issue
from ..store import connect, deliveries, writer_sessions
from ..store.engine import one_writer_at_a_time
from ..store.models import Issue
from . import ledger
from .dispatcher import Worker
from .transports import transport_for

PROGRESS_INTERVAL = 0.25
CHILD_CONFIG_ERROR = 3


@dataclass
class SendSummary:
    issue_id: int
    status: str
    counts: dict[str, int]
    added: int
    seconds: float
    stopped: bool
    pause_reason: str = ""  # the reputation guard paused the issue


def open_for_sending(
    session: Session,
    issue_id: int,
    *,
    only_missed: bool = False,
    joined_at: datetime | None = None,
) -> int:
    """Start (or join) sending an issue; with ``only_missed`` retry its failed deliveries.

    Returns the number of deliveries added to the ledger (0 for an issue that another process
    finished after ``joined_at``, when this command started: a second `issue send` started
    beside the first finds nothing left). Raises NotFoundError, or InvalidInputError for a
    cancelled issue or one sent before. The issue row is locked (PostgreSQL; SQLite
    serialises writers), so concurrent starts take turns.
    """
    get_issue(session, issue_id)
    issue = session.get_one(Issue, issue_id, with_for_update=True, populate_existing=True)
    ledger.release_dead_local_claims(session)
    if only_missed:
        ledger.retry_missed(session, issue)
        if issue.status == "sending":
            return 0
    if issue.status == "sent" and joined_at and issue.finished_at and issue.finished_at > joined_at:
        return 0  # started beside a send that has finished it meanwhile: nothing left to do
    return ledger.start_issue(session, issue)


def default_workers(engine: Engine) -> int:
    """Sending processes when none is asked for: one on SQLite (one writer at a time: every
    answer is recorded as it comes, so a second process mostly waits for the write lock;
    measured 4,300 against 3,200 messages/s, docs/performance.md), one per CPU core on
    PostgreSQL."""
    return 1 if one_writer_at_a_time(engine) else os.cpu_count() or 1


def connection_shares(connections: int, workers: int) -> list[int]:
    """``connections`` (smtp.concurrency) shared out among at most that many workers."""
    workers = max(1, min(workers, connections))
    base, extra = divmod(connections, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def _child(
    config_path: str, issue_id: int | None, exit_when_idle: bool, connections: int, errors: Any
) -> None:
    """Entry point of a worker process. It was started with SIGINT ignored (the parent
    decides); SIGTERM asks it to stop. A configuration problem goes to the parent, which
    reports it once."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = load_settings(config_path)
    engine = connect(database_url(settings))
    try:
        Worker(
            engine, settings, issue_id=issue_id, exit_when_idle=exit_when_idle, stop=stop,
            connections=connections,
        ).run()  # fmt: skip
    except NewsletterError as exc:
        errors.put(str(exc))
        sys.exit(CHILD_CONFIG_ERROR)
    finally:
        engine.dispose()


_children: list[multiprocessing.process.BaseProcess] = []  # for abort()


def abort(status: int = 130) -> None:
    """Stop at once (a second Ctrl-C): kill the worker processes and exit. Nothing is
    settled; the next `issue send` resends at most what was on the wire and unsettled."""
    for child in list(_children):
        if child.is_alive() and child.pid:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
    os._exit(status)


def _start_children(
    ctx: Any, count: int, target: Callable[..., None], args: Callable[[int], tuple]
) -> list[multiprocessing.process.BaseProcess]:
    """Start ``count`` worker processes with SIGINT ignored from birth (an ignored signal
    stays ignored across exec, and Python then installs no KeyboardInterrupt handler)."""
    children = [ctx.Process(target=target, args=args(i), daemon=True) for i in range(count)]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for child in children:
            child.start()
            _children.append(child)
    finally:
        signal.signal(signal.SIGINT, previous)
    return children


def send_issue(
    engine: Engine,
    config_path: Path,
    issue_id: int,
    *,
    workers: int,
    only_missed: bool = False,
    progress: Callable[[dict[str, int]], None] | None = None,
    stop: threading.Event | None = None,
    started_at: datetime | None = None,
) -> SendSummary:
    """Send an issue with ``workers`` processes; return when nothing is due or on ``stop``.

    Raises NotFoundError / InvalidInputError (issue), TransportError (the SMTP settings do not
    work: wrong password, no STARTTLS, untrusted certificate, a relay that cannot be reached)
    after recording what it sent and giving back the rest without using up attempts.
    ``started_at``: when the command started (see ``open_for_sending``).
    """
    settings = load_settings(config_path)
    # Settings that cannot work (no password, plain-text AUTH to a remote host) are refused
    # here, once, before the issue changes state or any process starts.
    transport_for(settings)
    stop = stop or threading.Event()
    started = time.monotonic()
    sessions = writer_sessions(engine)
    with sessions() as session, session.begin():
        added = open_for_sending(session, issue_id, only_missed=only_missed, joined_at=started_at)
    shares = connection_shares(settings.smtp_connections(), workers)
    ctx = multiprocessing.get_context("spawn")
    child_errors = ctx.SimpleQueue()
    children = _start_children(
        ctx, len(shares) - 1, _child,
        lambda i: (str(config_path), issue_id, True, shares[i + 1], child_errors),
    )  # fmt: skip
    errors: list[BaseException] = []
    worker = Worker(engine, settings, issue_id=issue_id, stop=stop, connections=shares[0])

    def run_local() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)
            stop.set()  # a configuration problem: the children stop too

    thread = threading.Thread(target=run_local, name="newsletter-worker")
    thread.start()
    told = False
    while thread.is_alive() or any(c.is_alive() for c in children):
        if progress:
            with sessions() as session:
                progress(deliveries.counts(session, issue_id))
        thread.join(PROGRESS_INTERVAL)
        if stop.is_set() and not told:
            told = True
            for child in children:
                if child.is_alive() and child.pid:
                    os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join()
        _children.remove(child)
    if errors:
        raise errors[0]
    failed_children = [c for c in children if c.exitcode not in (0, None, -signal.SIGTERM)]
    reported = []
    while not child_errors.empty():
        reported.append(child_errors.get())
    with sessions() as session, session.begin():
        issue = session.get_one(Issue, issue_id)
        ledger.finish_if_done(session, issue)
        counts = deliveries.counts(session, issue_id)
        status = issue.status
        pause_reason = issue.pause_reason if status == "paused" else ""
    if progress:
        progress(counts)
    if reported and not stop.is_set():
        raise NewsletterError(reported[0])
    if failed_children and not stop.is_set() and counts.get("pending"):
        raise InvalidInputError(
            f"{len(failed_children)} worker process(es) stopped with an error; see above"
        )
    return SendSummary(
        issue_id=issue_id,
        status=status,
        counts=counts,
        added=added,
        seconds=time.monotonic() - started,
        stopped=stop.is_set(),
        pause_reason=pause_reason,
    )


def set_issue_status(session: Session, issue_id: int, action: str) -> Issue:
    """pause (sending -> paused), resume (paused -> sending), cancel (not sent -> cancelled).

    Workers stop claiming a paused or cancelled issue at their next batch. Raises
    InvalidInputError when the issue is not in a state the action applies to.
    """
    issue = get_issue(session, issue_id)
    if issue.sequence_id is not None:
        raise InvalidInputError(
            f"issue {issue_id} is a step of a sequence: use `newsletter sequence pause|resume`"
        )
    allowed = {
        "pause": (("sending", "scheduled"), "paused"),
        "resume": (("paused",), "sending"),
        "cancel": (("draft", "scheduled", "sending", "paused", "missed"), "cancelled"),
    }
    sources, target = allowed[action]
    if issue.status not in sources:
        raise InvalidInputError(f"issue {issue_id} is {issue.status}; cannot {action} it")
    if action == "resume" and issue.started_at is None:
        # Paused before it ever started: back to waiting for its time, or to a draft.
        target = "scheduled" if issue.scheduled_at else "draft"
    if action == "resume" and issue.pause_reason:
        # Resumed after the reputation guard paused it: the marketer has decided.
        issue.pause_reason, issue.guard_off = "", 1
    issue_status.change(issue, target)
    session.flush()
    return issue


def run_worker_process(config_path: Path, stop: threading.Event) -> dict[str, int]:
    """`newsletter worker`: claim work of any sending issue until ``stop``. Returns what it
    settled, by status."""
    settings = load_settings(config_path)
    engine = connect(database_url(settings))
    try:
        worker = Worker(engine, settings, issue_id=None, exit_when_idle=False, stop=stop)
        return worker.run().by_status
    finally:
        engine.dispose()
