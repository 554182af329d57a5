"""`issue send`, `issue pause|resume|cancel`, `newsletter worker`: running the dispatcher.

``send_issue`` opens the issue for sending, runs one worker in a thread of this process plus
``workers - 1`` child processes (each renders the issue once and keeps its own SMTP
connections), reports progress from the ledger, and returns when nothing is due any more.
Ctrl-C / SIGTERM: every worker finishes its batch in flight, gives back what it had not sent,
and the call returns; the next `issue send` continues where this one stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from ..config import database_url, load_settings
from ..errors import InvalidInputError, NewsletterError
from ..issues.service import get_issue
from ..store import connect, writer_sessions
from ..store.models import Delivery, Issue, utcnow
from . import ledger
from .dispatcher import Worker
from .transports import make_transport

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


def open_for_sending(session: Session, issue_id: int, *, only_missed: bool = False) -> int:
    """Start (or join) sending an issue; with ``only_missed`` retry its failed deliveries.

    Returns the number of deliveries added to the ledger. Raises NotFoundError, or
    InvalidInputError for a cancelled issue (or a sent one, unless retrying missed ones).
    """
    issue = get_issue(session, issue_id)
    ledger.release_dead_local_claims(session)
    if only_missed:
        retried = session.execute(
            update(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.status.in_(("failed", "deferred")))
            .values(status="pending", attempts=0, next_attempt_at=utcnow(), claimed_by="")
        ).rowcount
        if issue.status == "sent" and retried:
            issue.status = "sending"
        if issue.status == "sending":
            return 0
    return ledger.start_issue(session, issue)


def _child(config_path: str, issue_id: int | None, exit_when_idle: bool) -> None:
    """Entry point of a worker process."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings = load_settings(config_path)
    engine = connect(database_url(settings))
    try:
        Worker(engine, settings, issue_id=issue_id, exit_when_idle=exit_when_idle, stop=stop).run()
    except NewsletterError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(CHILD_CONFIG_ERROR)
    finally:
        engine.dispose()


def send_issue(
    engine: Engine,
    config_path: Path,
    issue_id: int,
    *,
    workers: int,
    only_missed: bool = False,
    progress: Callable[[dict[str, int]], None] | None = None,
    stop: threading.Event | None = None,
) -> SendSummary:
    """Send an issue with ``workers`` processes; return when nothing is due or on ``stop``.

    Raises NotFoundError / InvalidInputError (issue), TransportError (the SMTP settings do not
    work: wrong password, no STARTTLS, untrusted certificate) after recording what it sent.
    """
    settings = load_settings(config_path)
    # Settings that cannot work (no password, plain-text AUTH to a remote host) are refused
    # here, once, before the issue changes state or any process starts.
    make_transport(settings.smtp, settings.sending, base_dir=Path(settings.base_dir))
    stop = stop or threading.Event()
    started = time.monotonic()
    sessions = writer_sessions(engine)
    with sessions() as session, session.begin():
        added = open_for_sending(session, issue_id, only_missed=only_missed)
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_child, args=(str(config_path), issue_id, True), daemon=True)
        for _ in range(max(0, workers - 1))
    ]
    for child in children:
        child.start()
    errors: list[BaseException] = []
    worker = Worker(engine, settings, issue_id=issue_id, stop=stop)

    def run_local() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_local, name="newsletter-worker")
    thread.start()
    try:
        while thread.is_alive() or any(c.is_alive() for c in children):
            if progress:
                with sessions() as session:
                    progress(ledger.counts(session, issue_id))
            thread.join(PROGRESS_INTERVAL)
            if stop.is_set():
                for child in children:
                    if child.is_alive() and child.pid:
                        os.kill(child.pid, signal.SIGTERM)
    except KeyboardInterrupt:
        stop.set()
        for child in children:
            if child.is_alive() and child.pid:
                os.kill(child.pid, signal.SIGTERM)
        thread.join()
    for child in children:
        child.join()
    if errors:
        raise errors[0]
    failed_children = [c for c in children if c.exitcode not in (0, None, -signal.SIGTERM)]
    with sessions() as session, session.begin():
        issue = session.get_one(Issue, issue_id)
        ledger.finish_if_done(session, issue)
        counts = ledger.counts(session, issue_id)
        status = issue.status
    if progress:
        progress(counts)
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
    )


def set_issue_status(session: Session, issue_id: int, action: str) -> Issue:
    """pause (sending -> paused), resume (paused -> sending), cancel (not sent -> cancelled).

    Workers stop claiming a paused or cancelled issue at their next batch. Raises
    InvalidInputError when the issue is not in a state the action applies to.
    """
    issue = get_issue(session, issue_id)
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
    issue.status = target
    session.flush()
    return issue


def run_worker_process(config_path: Path, stop: threading.Event) -> None:
    """`newsletter worker`: claim work of any sending issue until ``stop``."""
    settings = load_settings(config_path)
    engine = connect(database_url(settings))
    try:
        Worker(engine, settings, issue_id=None, exit_when_idle=False, stop=stop).run()
    finally:
        engine.dispose()
