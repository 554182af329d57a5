"""The delivery ledger: one row per (issue, subscriber), claimed in batches, settled per result.

All functions take the caller's Session and do not commit. ``claim`` must run in a short
transaction of its own: on PostgreSQL it locks with ``FOR UPDATE SKIP LOCKED`` so several
workers (processes, machines) take disjoint batches; on SQLite the session's engine should
begin IMMEDIATE (``engine.execution_options(sqlite_begin="IMMEDIATE")``) so claims are
serialised by the write lock.

The rules live here (what a claim means, when a deferral becomes a failure, what a bounce does
to the subscriber), the states in delivery/status.py, the SQL in store/deliveries.py. A claim
whose lease ran out (a crashed worker) is claimed again; ``attempts`` counts claims.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, case, insert, literal, update
from sqlalchemy.orm import Session

from ..audiences import cadence, rules
from ..config import SendingSettings
from ..errors import InvalidInputError
from ..issues import schedule
from ..issues import status as issue_status
from ..store import deliveries, outbox
from ..store import issues as issues_store
from ..store.models import Issue, Subscriber, SubscriberEvent, UTCDateTime, utcnow
from ..subscribers import status as subscriber_status
from . import status as delivery_status
from .transports import Result

ACTIVE_ISSUE = "sending"
STARTABLE = ("draft", "scheduled", "paused", "sending", "missed")


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery this worker now owns until ``lease_until``, with what the message needs."""

    delivery_id: int
    issue_id: int
    subscriber_id: int
    email: str
    name: str
    token: str
    attempts: int
    tracked: bool = True  # False: the subscriber chose not to be tracked


def worker_name() -> str:
    """host:pid:random: unique per process; the pid lets a host release a dead process's
    claims at once instead of waiting for the lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def start_issue(session: Session, issue: Issue, *, now: datetime | None = None) -> int:
    """Open an issue for sending: one pending delivery per active subscriber of its audience.

    Idempotent: people already in the ledger are not added twice, so starting a running
    issue again adds only subscribers who joined (or came to match its rule) since. Returns
    how many deliveries it added. Raises InvalidInputError for a sent or cancelled issue,
    NotFoundError when a segment of its rule was removed (newsletter.audiences.rules).
    """
    if issue.status not in STARTABLE:
        raise InvalidInputError(f"issue {issue.id} is {issue.status}; it cannot be sent")
    if issue.sequence_id is not None:
        return 0  # a sequence step's readers come from the sequence (newsletter.sequences)
    now = now or utcnow()
    # The audience is fixed here: who matches the issue's list and rule now, and (a
    # send-mode post) who reads every post; the others get the post in their digest.
    parts = rules.parts(session, issue, now=now)
    audience = parts.audience()
    added = deliveries.add_audience(
        session, issue.id, now, audience, not_before=_local_hours(session, issue, audience)
    )
    cadence.hold_for_digests(session, issue, parts.audience(cadence=False), now)
    if issue.status != ACTIVE_ISSUE:
        issue_status.change(issue, ACTIVE_ISSUE)
        issue.started_at = issue.started_at or now
        issue.finished_at = None
    session.flush()
    return added


def _local_hours(
    session: Session, issue: Issue, audience: ColumnElement[bool]
) -> ColumnElement[datetime] | None:
    """Each delivery's first time for an issue scheduled at readers' local hour (`issue
    schedule --local`): one time per time zone of its audience. None: now, for everyone."""
    if not issue.local_time:
        return None
    times, fallback = schedule.local_times(issue, deliveries.by_time_zone(session, audience))
    fallback_at = literal(fallback, UTCDateTime)
    if not times:
        return fallback_at
    return case(
        {name: literal(at, UTCDateTime) for name, at in times.items()},
        value=Subscriber.timezone,
        else_=fallback_at,
    )


def claim(
    session: Session,
    *,
    worker: str,
    limit: int,
    lease: timedelta,
    issue_id: int | None = None,
    now: datetime | None = None,
) -> list[Claim]:
    """Take up to ``limit`` due deliveries of sending issues (one issue, or any).

    Due: pending; deferred whose next attempt has come; sending whose lease ran out. The
    recipient's status is checked here: a delivery whose subscriber is no longer active
    (unsubscribed, bounced, erased...) becomes "skipped" and is not returned.
    """
    now = now or utcnow()
    rows = deliveries.claim_due(
        session, worker=worker, limit=limit, lease_until=now + lease, now=now, issue_id=issue_id
    )
    if not rows:
        return []
    people = deliveries.recipients(session, (r.subscriber_id for r in rows if r.subscriber_id))
    claims, skipped = [], []
    for r in rows:
        person = people.get(r.subscriber_id) if r.subscriber_id else None
        if person is None or person.status != subscriber_status.ACTIVE:
            why = "subscriber erased" if person is None else f"subscriber is {person.status}"
            skipped.append((r.id, why))
            continue
        claims.append(
            Claim(
                r.id,
                r.issue_id,
                person.id,
                person.email,
                person.name,
                person.token,
                r.attempts,
                not person.no_tracking,
            )
        )
    deliveries.skip(session, skipped)
    claims.sort(key=lambda c: c.delivery_id)
    return claims


def retry_delay(settings: SendingSettings, attempts: int) -> timedelta:
    """Backoff before the next attempt: retry_backoff_seconds, doubling per attempt."""
    return timedelta(seconds=settings.retry_backoff_seconds * 2 ** max(0, attempts - 1))


def settle(
    db: Session | Connection,
    outcomes: Sequence[tuple[Claim, Result, str]],
    *,
    worker: str,
    settings: SendingSettings,
    now: datetime | None = None,
    not_before: dict[int, datetime] | None = None,
) -> dict[str, int]:
    """Record results: (claim, transport result, Message-ID) each. Returns counts by status.

    A deferred delivery that used its ``max_attempts`` becomes failed. A bounced recipient
    becomes a bounced subscriber (with an event) and is never mailed again. A result for a
    claim that another worker has since taken over (our lease ran out) is recorded only if it
    says "sent": the message went out either way. ``not_before`` (delivery id -> time) puts a
    deferred delivery's next attempt no earlier than that (its domain is backing off).

    This runs for every few answers while an issue is sending, so it is lean: one UPDATE per
    status in the driver's parameter style, executed for the group at once on the driver's
    cursor (inside the caller's transaction).
    """
    conn = db.connection() if isinstance(db, Session) else db
    now = now or utcnow()
    not_before = not_before or {}
    answers: list[deliveries.Answer] = []
    bounced: list[tuple[Claim, Result]] = []
    for c, r, message_id in outcomes:
        status = delivery_status.answered(r.outcome, c.attempts, settings.max_attempts)
        next_at = now
        if status == delivery_status.DEFERRED:
            next_at = now + retry_delay(settings, c.attempts)
            if c.delivery_id in not_before:
                next_at = max(next_at, not_before[c.delivery_id])
        elif status == delivery_status.BOUNCED:
            bounced.append((c, r))
        answers.append(
            deliveries.Answer(
                c.delivery_id,
                status,
                r.code,
                r.enhanced,
                r.text[:500],
                message_id,
                next_at,
                r.relay,
            )
        )
    settled = deliveries.record_answers(conn, answers, worker=worker, now=now)
    if bounced:
        _mark_bounced(conn, bounced, now)
    return settled


def _mark_bounced(conn: Connection, bounced: Iterable[tuple[Claim, Result]], now: datetime) -> None:
    for c, r in bounced:
        changed = conn.execute(
            update(Subscriber)
            .where(
                Subscriber.id == c.subscriber_id,
                Subscriber.status == subscriber_status.ACTIVE,
            )
            .values(status=subscriber_status.BOUNCED, updated_at=now)
        ).rowcount
        if changed:
            conn.execute(
                insert(SubscriberEvent).values(
                    subscriber_id=c.subscriber_id,
                    kind="bounced",
                    at=now,
                    source="smtp",
                    ip="",
                    detail={
                        "issue": c.issue_id,
                        "code": r.code,
                        "enhanced": r.enhanced,
                        "text": r.text[:300],
                    },
                )
            )


def postpone(
    db: Session | Connection,
    postponed: Sequence[tuple[Claim, datetime, str]],
    *,
    worker: str,
    now: datetime | None = None,
) -> int:
    """Give claims back untried until a later time: (claim, not before, why) each. The
    delivery is deferred without using up an attempt (its domain is backing off: not the
    recipient's fault). Returns how many."""
    if not postponed:
        return 0
    conn = db.connection() if isinstance(db, Session) else db
    return deliveries.postpone(
        conn,
        [(c.delivery_id, until, why) for c, until, why in postponed],
        worker=worker,
        now=now or utcnow(),
    )


def release(session: Session, worker: str, delivery_ids: Sequence[int] = ()) -> int:
    """Give claims back (shutdown): they become due again at once. Returns how many.

    With no ids, every claim of ``worker`` is released. The attempt is not counted.
    """
    return deliveries.release(session, worker, delivery_ids, now=utcnow())


def release_dead_local_claims(session: Session) -> int:
    """Release claims held by processes of this host that no longer exist (kill -9, power
    loss of a child): no need to wait for their lease. Returns how many were released."""
    released = 0
    for holder in deliveries.claim_holders(session, socket.gethostname()):
        try:
            pid = int(holder.split(":")[1])
        except (IndexError, ValueError):
            continue
        if not _alive(pid):
            released += release(session, holder)
    return released


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def retry_missed(session: Session, issue: Issue) -> int:
    """Make an issue's failed and deferred deliveries pending again, attempts counted from
    zero (`issue send --only-missed`); a sent issue is sending again. Returns how many."""
    retried = deliveries.retry(session, issue.id, delivery_status.RETRIED_WHEN_MISSED, utcnow())
    if issue.status == issue_status.SENT and retried:
        issue_status.change(issue, issue_status.SENDING)
    return retried


def issues_with_due_work(session: Session, *, now: datetime | None = None) -> list[int]:
    """The sending issues that have deliveries to do now (new, or deferred whose retry time
    has come), in id order."""
    now = now or utcnow()
    return [
        issue_id
        for issue_id in issues_store.ids_with_status(session, ACTIVE_ISSUE)
        if deliveries.due_and_waiting(session, issue_id, now)[0] > 0
    ]


def remaining(session: Session, issue_id: int, *, now: datetime | None = None) -> tuple[int, int]:
    """(work still to do now or in flight, deferred deliveries waiting for a later retry)."""
    return deliveries.due_and_waiting(session, issue_id, now or utcnow())


def finish_if_done(session: Session, issue: Issue, *, now: datetime | None = None) -> bool:
    """Mark a sending issue sent when no delivery is open any more (never a sequence step's
    issue: it gets deliveries for as long as its sequence runs)."""
    if issue.status != ACTIVE_ISSUE or issue.sequence_id is not None:
        return False
    if deliveries.open_count(session, issue.id):
        return False
    issue_status.change(issue, issue_status.SENT)
    issue.finished_at = now or utcnow()
    session.flush()
    if hooks := outbox.wanted(session, "issue.sent"):
        counts = deliveries.counts(session, issue.id)
        data = {"id": issue.id, "subject": issue.subject, "list_id": issue.list_id,
                "finished_at": issue.finished_at.isoformat(), "deliveries": counts}  # fmt: skip
        outbox.emit(session, "issue.sent", data, at=issue.finished_at, webhook_ids=hooks)
    return True


def reserve_slots(
    session: Session, issue_id: int, n: int, rate: float, *, now: datetime | None = None
) -> datetime | None:
    """Rate limit shared by every worker: reserve ``n`` sending slots at ``rate`` per second.

    Returns the time of the first slot (slot k is at start + k / rate), or None when the
    issue is no longer sending (paused, cancelled). The issue row is the shared cursor
    (locked FOR UPDATE on PostgreSQL; SQLite serialises writers).
    """
    now = now or utcnow()
    cursor, status = issues_store.locked_rate_cursor(session, issue_id)
    if status != ACTIVE_ISSUE:
        return None
    start = max(cursor or now, now)
    issues_store.move_rate_cursor(session, issue_id, start + timedelta(seconds=n / rate))
    return start
