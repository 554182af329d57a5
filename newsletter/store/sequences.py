"""The sequences, sequence_steps and enrollments tables: their SQL (newsletter.sequences has
the rules). Nothing here commits.

Enrolling is one ``INSERT … SELECT`` per sequence (an import of 5,000 readers enrols them in
one statement) that never adds a reader twice (the unique key decides, also between two
processes); the daemon takes due readers by the index on ``due_at`` (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so two takers get disjoint readers; SQLite serialises writers).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Seq
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, exists, func, literal, select, update
from sqlalchemy.orm import Session

from .dialect import insert
from .models import (
    Delivery,
    Enrollment,
    IdType,
    Membership,
    Sequence,
    SequenceStep,
    Subscriber,
    SubscriberTag,
    Tag,
    UTCDateTime,
)

ACTIVE, DONE, LEFT = "active", "done", "left"


def steps(session: Session, sequence_id: int, *, removed: bool = False) -> list[SequenceStep]:
    """A sequence's steps in order (``removed``: also the removed ones)."""
    query = select(SequenceStep).where(SequenceStep.sequence_id == sequence_id)
    if not removed:
        query = query.where(SequenceStep.removed_at.is_(None))
    return list(session.scalars(query.order_by(SequenceStep.position)))


def next_position(session: Session, sequence_id: int) -> int:
    """The number the next step added to the sequence gets (numbers are never reused)."""
    top = session.scalar(
        select(func.max(SequenceStep.position)).where(SequenceStep.sequence_id == sequence_id)
    )
    return (top or 0) + 1


def sequences_triggered(
    session: Session, triggers: Iterable[str], list_ids: Iterable[int] | None = None
) -> list[Sequence]:
    """The sequences with one of ``triggers`` ("confirm", "join", "tag:NAME"), of the given
    lists (None: of any list)."""
    query = select(Sequence).where(Sequence.trigger.in_(list(triggers)))
    if list_ids is not None:
        query = query.where(Sequence.list_id.in_(list(list_ids)))
    return list(session.scalars(query.order_by(Sequence.id)))


def enroll(
    session: Session,
    sequence: Sequence,
    readers: ColumnElement[bool],
    now: datetime,
    *,
    restart: bool = False,
) -> int:
    """Enrol the active members of the sequence's list who match ``readers`` (a condition on
    subscribers), due for its first step after that step's delay. A reader already enrolled
    keeps their place, unless ``restart``: then they start again at the first step (the steps
    they already received are not sent twice: the ledger holds one delivery per reader and
    step). Returns how many were enrolled (or restarted)."""
    first = next(iter(steps(session, sequence.id)), None)
    due = now + timedelta(seconds=first.delay_seconds if first else 0)
    first_position = first.position if first else 1
    member = exists().where(
        Membership.list_id == sequence.list_id, Membership.subscriber_id == Subscriber.id
    )
    chosen = select(
        literal(sequence.id, IdType),
        Subscriber.id,
        literal(ACTIVE),
        literal(first_position),
        literal(due, UTCDateTime),
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(Subscriber.status == "active", member, readers)
    restarted = 0
    if restart:
        restarted = session.execute(
            update(Enrollment)
            .where(
                Enrollment.sequence_id == sequence.id,
                Enrollment.subscriber_id.in_(chosen.with_only_columns(Subscriber.id)),
            )
            .values(status=ACTIVE, next_position=first_position, due_at=due, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
    columns = (
        "sequence_id", "subscriber_id", "status", "next_position", "due_at", "enrolled_at",
        "updated_at",
    )  # fmt: skip
    stmt = (
        insert(session, Enrollment.__table__)
        .from_select(columns, chosen)
        .on_conflict_do_nothing(index_elements=["sequence_id", "subscriber_id"])
        .execution_options(preserve_rowcount=True)
    )
    return session.execute(stmt).rowcount + restarted


def tagged(tag_name: str) -> ColumnElement[bool]:
    """Subscribers who have the tag (a condition for ``enroll``)."""
    return exists().where(
        SubscriberTag.subscriber_id == Subscriber.id,
        SubscriberTag.tag_id == Tag.id,
        Tag.name == tag_name,
    )


class Due(NamedTuple):
    enrollment_id: int
    sequence_id: int
    subscriber_id: int
    next_position: int
    due_at: datetime
    timezone: str | None
    member: bool  # still on the sequence's list
    active: bool  # still an active subscriber


def take_due(session: Session, now: datetime, limit: int) -> list[Due]:
    """Up to ``limit`` readers whose next step is due, of sequences that are not paused,
    locked for this transaction (rows another taker holds are skipped)."""
    member = exists().where(
        Membership.list_id == Sequence.list_id, Membership.subscriber_id == Enrollment.subscriber_id
    )
    locked = (
        select(Enrollment.id)
        .where(Enrollment.due_at <= now, Enrollment.status == ACTIVE)
        .where(Enrollment.sequence_id.in_(select(Sequence.id).where(Sequence.paused.is_(False))))
        .order_by(Enrollment.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(locked))
    if not ids:
        return []
    rows = session.execute(
        select(
            Enrollment.id,
            Enrollment.sequence_id,
            Enrollment.subscriber_id,
            Enrollment.next_position,
            Enrollment.due_at,
            Subscriber.timezone,
            member,
            Subscriber.status == "active",
        )
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(Enrollment.id.in_(ids))
        .order_by(Enrollment.id)
    )
    return [Due(*row) for row in rows]


def move_on(
    session: Session, changes: Seq[tuple[int, str, int, datetime | None]], now: datetime
) -> None:
    """Set (enrollment id, status, next position, due at) for each of ``changes``."""
    if not changes:
        return
    session.execute(
        update(Enrollment),
        [
            {"id": i, "status": s, "next_position": p, "due_at": d, "updated_at": now}
            for i, s, p, d in changes
        ],
    )


def shift_due(session: Session, sequence_id: int, position: int, by: timedelta) -> int:
    """Readers waiting for step ``position``: their due time moved by ``by`` (its delay was
    edited)."""
    waiting = session.scalars(
        select(Enrollment).where(
            Enrollment.sequence_id == sequence_id,
            Enrollment.next_position == position,
            Enrollment.status == ACTIVE,
        )
    ).all()
    for row in waiting:
        if row.due_at is not None:
            row.due_at = row.due_at + by
    return len(waiting)


def waiting_by_position(session: Session, sequence_id: int) -> dict[int, int]:
    """How many enrolled readers wait for each next position (still active subscribers)."""
    rows = session.execute(
        select(Enrollment.next_position, func.count())
        .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
        .where(
            Enrollment.sequence_id == sequence_id,
            Enrollment.status == ACTIVE,
            Subscriber.status == "active",
        )
        .group_by(Enrollment.next_position)
    )
    return {position: count for position, count in rows}


def enrollment_counts(session: Session, sequence_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Enrollment.status, func.count())
        .where(Enrollment.sequence_id == sequence_id)
        .group_by(Enrollment.status)
    )
    return {status: count for status, count in rows}


def delivery_counts(session: Session, issue_ids: Seq[int]) -> dict[int, dict[str, int]]:
    """The ledger of each step's issue, by status."""
    counts: dict[int, dict[str, int]] = {i: {} for i in issue_ids}
    rows = session.execute(
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(list(issue_ids)))
        .group_by(Delivery.issue_id, Delivery.status)
    )
    for issue_id, status, count in rows:
        counts[issue_id][status] = count
    return counts


def enrollment_of(session: Session, sequence_id: int, subscriber_id: int) -> Enrollment | None:
    return session.scalar(
        select(Enrollment).where(
            Enrollment.sequence_id == sequence_id, Enrollment.subscriber_id == subscriber_id
        )
    )


def stale_pending(session: Session, issue_ids: Seq[int], before: datetime, now: datetime) -> int:
    """Deliveries of these step issues not tried yet and due before ``before``: skipped (too
    late to send after a pause)."""
    if not issue_ids:
        return 0
    return session.execute(
        update(Delivery)
        .where(
            Delivery.issue_id.in_(list(issue_ids)),
            Delivery.status == "pending",
            Delivery.next_attempt_at < before,
        )
        .values(status="skipped", last_text="too late: the sequence was paused", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
