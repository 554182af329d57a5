"""The delivery ledger: one row per (issue, subscriber), claimed in batches, settled per result.

All functions take the caller's Session and do not commit. ``claim`` must run in a short
transaction of its own: on PostgreSQL it locks with ``FOR UPDATE SKIP LOCKED`` so several
workers (processes, machines) take disjoint batches; on SQLite the session's engine should
begin IMMEDIATE (``engine.execution_options(sqlite_begin="IMMEDIATE")``) so claims are
serialised by the write lock.

Delivery states: pending -> sending (claimed) -> sent | deferred (retry later) | failed |
bounced; skipped when the recipient stopped being active before the claim. A claim whose
lease ran out (a crashed worker) is claimed again; ``attempts`` counts claims.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from ..config import SendingSettings
from ..errors import InvalidInputError
from ..issues import status as issue_status
from ..store.models import (
    Delivery,
    Issue,
    Subscriber,
    SubscriberEvent,
    UTCDateTime,
    utcnow,
)
from .transports import Result

ACTIVE_ISSUE = "sending"
STARTABLE = ("draft", "scheduled", "paused", "sending", "missed")
OPEN_DELIVERY = ("pending", "sending", "deferred")
PROBLEM_STATUSES = ("deferred", "failed", "bounced")


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


def worker_name() -> str:
    """host:pid:random: unique per process; the pid lets a host release a dead process's
    claims at once instead of waiting for the lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def start_issue(session: Session, issue: Issue, *, now: datetime | None = None) -> int:
    """Open an issue for sending: one pending delivery per active subscriber of its audience.

    Idempotent: people already in the ledger are not added twice, so starting a running
    issue again adds only subscribers who joined since. Returns how many deliveries it
    added. Raises InvalidInputError for a sent or cancelled issue.
    """
    if issue.status not in STARTABLE:
        raise InvalidInputError(f"issue {issue.id} is {issue.status}; it cannot be sent")
    now = now or utcnow()
    audience = "" if issue.list_id is None else (
        "AND s.id IN (SELECT m.subscriber_id FROM memberships m WHERE m.list_id = :list_id) "
    )  # fmt: skip
    added = session.execute(
        text(
            "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, next_attempt_at, "
            "last_enhanced, last_text, message_id, claimed_by, updated_at) "
            "SELECT :issue_id, s.id, 'pending', 0, :now, '', '', '', '', :now FROM subscribers s "
            f"WHERE s.status = 'active' {audience}"
            "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = :issue_id "
            "AND d.subscriber_id = s.id) ORDER BY s.id "
            # Another process starting the same issue at the same moment: theirs counts.
            "ON CONFLICT (issue_id, subscriber_id) DO NOTHING"
        ).bindparams(bindparam("now", type_=UTCDateTime)),
        {"issue_id": issue.id, "now": now, "list_id": issue.list_id},
    ).rowcount
    if issue.status != ACTIVE_ISSUE:
        issue_status.change(issue, ACTIVE_ISSUE)
        issue.started_at = issue.started_at or now
        issue.finished_at = None
    session.flush()
    return added


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
    pg = session.get_bind().dialect.name == "postgresql"
    only_issue = "AND d.issue_id = :issue_id " if issue_id is not None else ""
    pick = (
        "SELECT d.id FROM deliveries d JOIN issues i ON i.id = d.issue_id "
        f"WHERE i.status = '{ACTIVE_ISSUE}' {only_issue}"
        "AND ((d.status IN ('pending', 'deferred') AND d.next_attempt_at <= :now) "
        "OR (d.status = 'sending' AND d.lease_until < :now)) "
        "ORDER BY d.id LIMIT :limit"
    )
    assign = (
        "UPDATE deliveries SET status = 'sending', claimed_by = :worker, "
        "lease_until = :lease_until, attempts = attempts + 1, updated_at = :now "
    )
    if pg:
        sql = (
            f"WITH picked AS MATERIALIZED ({pick} FOR UPDATE OF d SKIP LOCKED) {assign}"
            "FROM picked WHERE deliveries.id = picked.id "
            "RETURNING deliveries.id, deliveries.issue_id, deliveries.subscriber_id, "
            "deliveries.attempts"
        )
    else:
        sql = f"{assign}WHERE id IN ({pick}) RETURNING id, issue_id, subscriber_id, attempts"
    params: dict[str, Any] = {
        "worker": worker,
        "lease_until": now + lease,
        "now": now,
        "limit": limit,
        "issue_id": issue_id,
    }
    stmt = text(sql).bindparams(
        bindparam("now", type_=UTCDateTime), bindparam("lease_until", type_=UTCDateTime)
    )
    rows = session.execute(stmt, {k: v for k, v in params.items() if f":{k}" in sql}).all()
    if not rows:
        return []
    people = {
        s.id: s
        for s in session.execute(
            select(
                Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.token,
                Subscriber.status,
            ).where(Subscriber.id.in_([r.subscriber_id for r in rows if r.subscriber_id]))
        )
    }  # fmt: skip
    claims, skipped = [], []
    for r in rows:
        person = people.get(r.subscriber_id)
        if person is None or person.status != "active":
            why = "subscriber erased" if person is None else f"subscriber is {person.status}"
            skipped.append({"did": r.id, "text": why})
            continue
        claims.append(
            Claim(r.id, r.issue_id, person.id, person.email, person.name, person.token, r.attempts)
        )
    if skipped:
        session.connection().execute(
            update(Delivery)
            .where(Delivery.id == bindparam("did"))
            .values(status="skipped", last_text=bindparam("text"), claimed_by="", lease_until=None),
            skipped,
        )
    claims.sort(key=lambda c: c.delivery_id)
    return claims


def retry_delay(settings: SendingSettings, attempts: int) -> timedelta:
    """Backoff before the next attempt: retry_backoff_seconds, doubling per attempt."""
    return timedelta(seconds=settings.retry_backoff_seconds * 2 ** max(0, attempts - 1))


_SETTLE_SQL: dict[tuple[str, str], str] = {}


def _settle_sql(dialect: Any, status: str) -> str:
    """The UPDATE that records results of one status, in the driver's own parameter style
    (it runs per group of answers, as ``exec_driver_sql``: no statement to build each time)."""
    key = (dialect.name, status)
    sql = _SETTLE_SQL.get(key)
    if sql is None:
        p = "?" if dialect.paramstyle == "qmark" else "%s"
        sent_at = f", sent_at = {p}" if status == "sent" else ""
        # A "sent" is recorded even if another worker took the claim over meanwhile (the
        # message went out either way); anything else only while the claim is still ours.
        ours = f"claimed_by = {p} AND status = 'sending'"
        guard = "status <> 'sent'" if status == "sent" else ours
        sql = _SETTLE_SQL[key] = (
            f"UPDATE deliveries SET status = {p}, last_code = {p}, last_enhanced = {p}, "
            f"last_text = {p}, message_id = {p}, next_attempt_at = {p}, claimed_by = '', "
            f"lease_until = NULL, updated_at = {p}{sent_at} WHERE id = {p} AND {guard}"
        )
    return sql


_DATETIMES: dict[str, Any] = {}


def _datetimes(dialect: Any) -> Any:
    """How this dialect stores a UTCDateTime parameter (what SQLAlchemy would send)."""
    processor = _DATETIMES.get(dialect.name)
    if processor is None:
        processor = _DATETIMES[dialect.name] = UTCDateTime().bind_processor(dialect) or (
            lambda value: value
        )
    return processor


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
    dt = _datetimes(conn.dialect)
    stamp = dt(now)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    bounced: list[tuple[Claim, Result]] = []
    for c, r, message_id in outcomes:
        status = r.outcome
        next_at = now
        if status == "deferred":
            if c.attempts >= settings.max_attempts:
                status = "failed"
            else:
                next_at = now + retry_delay(settings, c.attempts)
                if c.delivery_id in not_before:
                    next_at = max(next_at, not_before[c.delivery_id])
        elif status == "bounced":
            bounced.append((c, r))
        head = (status, r.code, r.enhanced, r.text[:500], message_id, dt(next_at), stamp)
        tail = (stamp, c.delivery_id) if status == "sent" else (c.delivery_id, worker)
        rows.setdefault(status, []).append(head + tail)
    cursor = conn.connection.cursor()  # the driver's own: no statement to build per group
    try:
        for status, params in rows.items():
            cursor.executemany(_settle_sql(conn.dialect, status), params)
    finally:
        cursor.close()
    if bounced:
        _mark_bounced(conn, bounced, now)
    return {status: len(params) for status, params in rows.items()}


def _mark_bounced(conn: Connection, bounced: Iterable[tuple[Claim, Result]], now: datetime) -> None:
    for c, r in bounced:
        changed = conn.execute(
            update(Subscriber)
            .where(Subscriber.id == c.subscriber_id, Subscriber.status == "active")
            .values(status="bounced", updated_at=now)
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
    now = now or utcnow()
    conn = db.connection() if isinstance(db, Session) else db
    return conn.execute(
        update(Delivery)
        .where(
            Delivery.id == bindparam("did"),
            Delivery.claimed_by == worker,
            Delivery.status == "sending",
        )
        .values(
            status="deferred",
            attempts=Delivery.attempts - 1,
            next_attempt_at=bindparam("until", type_=UTCDateTime),
            last_code=None,
            last_enhanced="",
            last_text=bindparam("text"),
            claimed_by="",
            lease_until=None,
            updated_at=now,
        ),
        [{"did": c.delivery_id, "until": until, "text": why[:500]} for c, until, why in postponed],
    ).rowcount


def release(session: Session, worker: str, delivery_ids: Sequence[int] = ()) -> int:
    """Give claims back (shutdown): they become due again at once. Returns how many.

    With no ids, every claim of ``worker`` is released. The attempt is not counted.
    """
    stmt = update(Delivery).where(Delivery.claimed_by == worker, Delivery.status == "sending")
    if delivery_ids:
        stmt = stmt.where(Delivery.id.in_(list(delivery_ids)))
    return session.execute(
        stmt.values(
            status="pending",
            claimed_by="",
            lease_until=None,
            attempts=Delivery.attempts - 1,
            updated_at=utcnow(),
        )
    ).rowcount


def release_dead_local_claims(session: Session) -> int:
    """Release claims held by processes of this host that no longer exist (kill -9, power
    loss of a child): no need to wait for their lease. Returns how many were released."""
    host = socket.gethostname()
    holders = session.scalars(
        select(Delivery.claimed_by)
        .where(Delivery.status == "sending", Delivery.claimed_by.like(f"{host}:%"))
        .distinct()
    ).all()
    released = 0
    for holder in holders:
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


def counts(session: Session, issue_id: int) -> dict[str, int]:
    """Deliveries of an issue by status."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    ).all()
    return dict(rows)


def remaining(session: Session, issue_id: int, *, now: datetime | None = None) -> tuple[int, int]:
    """(work still to do now or in flight, deferred deliveries waiting for a later retry)."""
    now = now or utcnow()
    due = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.issue_id == issue_id,
            (Delivery.status.in_(("pending", "sending")))
            | ((Delivery.status == "deferred") & (Delivery.next_attempt_at <= now)),
        )
    )
    waiting = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == "deferred",
            Delivery.next_attempt_at > now,
        )
    )
    return due or 0, waiting or 0


def finish_if_done(session: Session, issue: Issue, *, now: datetime | None = None) -> bool:
    """Mark a sending issue sent when no delivery is open any more."""
    if issue.status != ACTIVE_ISSUE:
        return False
    open_count = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.issue_id == issue.id, Delivery.status.in_(OPEN_DELIVERY))
    )
    if open_count:
        return False
    issue_status.change(issue, issue_status.SENT)
    issue.finished_at = now or utcnow()
    session.flush()
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
    stmt = select(Issue.rate_cursor, Issue.status).where(Issue.id == issue_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    cursor, status = session.execute(stmt).one()
    if status != ACTIVE_ISSUE:
        return None
    start = max(cursor or now, now)
    session.execute(
        update(Issue)
        .where(Issue.id == issue_id)
        .values(rate_cursor=start + timedelta(seconds=n / rate))
    )
    return start


SETTLED = ("sent", "deferred", "failed", "bounced")


def send_rate(session: Session, issue: Issue) -> float | None:
    """Messages per second while the issue was sending: deliveries settled (sent, deferred,
    failed, bounced) divided by the time from the first settlement to the last. None before
    two settlements at different times."""
    first, last, settled = session.execute(
        select(func.min(Delivery.updated_at), func.max(Delivery.updated_at), func.count()).where(
            Delivery.issue_id == issue.id, Delivery.status.in_(SETTLED)
        )
    ).one()
    if not first or not last:
        return None
    span = (last - first).total_seconds()  # min/max keep the column type: aware UTC
    return round(settled / span, 1) if span > 0 else None


def errors_by_reply(session: Session, issue_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The most common replies behind deferred, failed and bounced deliveries."""
    rows = session.execute(
        select(
            Delivery.status, Delivery.last_code, Delivery.last_enhanced, Delivery.last_text,
            func.count(),
        )
        .where(Delivery.issue_id == issue_id, Delivery.status.in_(PROBLEM_STATUSES))
        .group_by(Delivery.status, Delivery.last_code, Delivery.last_enhanced, Delivery.last_text)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()  # fmt: skip
    return [
        {"status": s, "code": c, "enhanced": e, "text": t, "count": n} for s, c, e, t, n in rows
    ]


def missed(session: Session, issue: Issue) -> Iterable[dict[str, Any]]:
    """Everyone in the ledger who has not received the issue, with the reason, streamed."""
    stmt = (
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue.id, Delivery.status != "sent")
        .order_by(Delivery.id)
        .execution_options(yield_per=2000)
    )
    for d, email in session.execute(stmt):
        yield {
            "delivery_id": d.id,
            "subscriber_id": d.subscriber_id,
            "email": email,
            "status": d.status,
            "reason": _reason(d, issue),
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat() if d.status == "deferred" else None,
            "code": d.last_code,
            "enhanced": d.last_enhanced,
            "text": d.last_text,
        }


def _reason(d: Delivery, issue: Issue) -> str:
    reply = " ".join(str(x) for x in (d.last_code, d.last_enhanced, d.last_text) if x)
    if d.status == "deferred":
        return f"deferred until {d.next_attempt_at.isoformat(timespec='seconds')}: {reply}"
    if d.status in ("failed", "bounced"):
        return f"{d.status}: {reply}"
    if d.status == "skipped":
        return f"skipped: {d.last_text}"
    if issue.status in ("paused", "cancelled"):
        return f"not sent: the issue is {issue.status}"
    return "in flight" if d.status == "sending" else "not sent yet"
