"""The digest queue and readers' cadences: the SQL of newsletter.audiences.cadence.

Posts held for readers' digests are written with one INSERT ... SELECT when a send-mode
post's issue starts, and taken into digests with one UPDATE per group of readers who wait for
the same posts; the groups are found with one GROUP BY over a bit per post (portable: no
string aggregate, whose order SQLite does not promise). Functions take the caller's Session
and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from .dialect import insert
from .models import (
    Delivery,
    DigestQueue,
    IdType,
    Issue,
    IssuePost,
    Membership,
    Subscriber,
    UTCDateTime,
)

MAX_POSTS = 60  # posts in one cadence digest (one bit each); more wait for the next one


def post_of(issue: Issue) -> int:
    """The post of a one-post issue (a send-mode feed's)."""
    post_id = issue.posts[0].id if issue.posts else None
    if post_id is None:
        raise ValueError(f"issue {issue.id} has no post")
    return post_id


def hold(
    session: Session,
    *,
    list_id: int,
    post_id: int,
    issue_id: int,
    cadence: ColumnElement[Any],
    audience: ColumnElement[bool],
    now: datetime,
) -> int:
    """Queue ``post_id`` for each reader of ``audience`` on ``list_id`` whose ``cadence`` (a
    column of their membership) is a digest and who is not in issue ``issue_id``'s ledger."""
    in_ledger = exists().where(
        Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id
    )
    chosen = (
        select(
            literal(list_id, IdType),
            Subscriber.id,
            literal(post_id, IdType),
            cadence,
            literal(now, UTCDateTime),
        )
        .join(Membership, Membership.subscriber_id == Subscriber.id)
        .where(Membership.list_id == list_id, cadence != "post", audience, ~in_ledger)
    )
    stmt = (
        insert(session, DigestQueue.__table__)
        .from_select(("list_id", "subscriber_id", "post_id", "cadence", "queued_at"), chosen)
        .on_conflict_do_nothing(index_elements=["list_id", "subscriber_id", "post_id"])
        .execution_options(preserve_rowcount=True)
    )
    return session.execute(stmt).rowcount


def _waiting(list_id: int, cadence: str) -> list[ColumnElement[bool]]:
    return [
        DigestQueue.list_id == list_id,
        DigestQueue.cadence == cadence,
        DigestQueue.issue_id.is_(None),
    ]


def drop_inactive(session: Session, list_id: int, cadence: str) -> int:
    """Forget held posts of readers who are no longer active (they left: nothing is owed)."""
    inactive = select(Subscriber.id).where(Subscriber.status != "active")
    return session.execute(
        delete(DigestQueue).where(
            *_waiting(list_id, cadence), DigestQueue.subscriber_id.in_(inactive)
        )
    ).rowcount


def refresh_statistics(session: Session) -> None:
    """PostgreSQL: fresh planner statistics of the queue before the digest's grouping (it
    fills in bulk between two digests; with the statistics of an empty table the planner
    chose a nested loop that took minutes for 100,000 rows)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE digest_queue"))


def waiting_posts(session: Session, list_id: int, cadence: str) -> list[int]:
    """The posts held for ``cadence`` readers of the list and not yet in a digest, oldest
    first (at most MAX_POSTS)."""
    stmt = (
        select(DigestQueue.post_id)
        .where(*_waiting(list_id, cadence))
        .distinct()
        .order_by(DigestQueue.post_id)
        .limit(MAX_POSTS)
    )
    return list(session.scalars(stmt))


def _mask(post_ids: Sequence[int]) -> ColumnElement[int]:
    bits = case(
        {p: literal(1 << i, BigInteger) for i, p in enumerate(post_ids)},
        value=DigestQueue.post_id,
        else_=literal(0, BigInteger),
    )
    return func.sum(bits)


def groups(session: Session, list_id: int, cadence: str, post_ids: Sequence[int]) -> list[int]:
    """The distinct sets of ``post_ids`` that readers wait for, as bit masks (bit i: the
    i-th post), most readers first."""
    per_reader = (
        select(_mask(post_ids).label("mask"))
        .where(*_waiting(list_id, cadence), DigestQueue.post_id.in_(list(post_ids)))
        .group_by(DigestQueue.subscriber_id)
        .subquery()
    )
    rows = session.execute(
        select(per_reader.c.mask, func.count())
        .group_by(per_reader.c.mask)
        .order_by(func.count().desc(), per_reader.c.mask)
    )
    return [int(mask) for mask, _n in rows]


def take(
    session: Session,
    *,
    list_id: int,
    cadence: str,
    post_ids: Sequence[int],
    mask: int,
    issue_id: int,
) -> int:
    """Put the held posts of the readers waiting for exactly the set ``mask`` into digest
    ``issue_id``. Returns how many queue rows it took."""
    readers = (
        select(DigestQueue.subscriber_id)
        .where(*_waiting(list_id, cadence), DigestQueue.post_id.in_(list(post_ids)))
        .group_by(DigestQueue.subscriber_id)
        .having(_mask(post_ids) == mask)
        .subquery("readers")
    )
    # UPDATE ... FROM the grouped readers (a join, computed once), not IN (subquery): on
    # PostgreSQL the IN form was re-planned into a loop that took hours on 1,000,000 rows.
    return session.execute(
        update(DigestQueue)
        .where(
            *_waiting(list_id, cadence),
            DigestQueue.post_id.in_(list(post_ids)),
            DigestQueue.subscriber_id == readers.c.subscriber_id,
        )
        .values(issue_id=issue_id)
        .execution_options(synchronize_session=False)
    ).rowcount


def waiting_counts(session: Session, list_id: int | None = None) -> dict[tuple[int, str], int]:
    """(list id, cadence) -> readers with posts held and not yet in a digest."""
    stmt = (
        select(
            DigestQueue.list_id,
            DigestQueue.cadence,
            func.count(DigestQueue.subscriber_id.distinct()),
        )
        .where(DigestQueue.issue_id.is_(None))
        .group_by(DigestQueue.list_id, DigestQueue.cadence)
    )
    if list_id is not None:
        stmt = stmt.where(DigestQueue.list_id == list_id)
    return {(lid, c): n for lid, c, n in session.execute(stmt)}


def issue_post_ids(session: Session, issue_id: int) -> list[int]:
    return list(session.scalars(select(IssuePost.post_id).where(IssuePost.issue_id == issue_id)))


# --- a reader's cadence ------------------------------------------------------------------------


def cadences(session: Session, subscriber_id: int) -> dict[int, str | None]:
    """list id -> the reader's own cadence there (None: the list's default)."""
    rows = session.execute(
        select(Membership.list_id, Membership.cadence).where(
            Membership.subscriber_id == subscriber_id
        )
    )
    return {list_id: cadence for list_id, cadence in rows}


def set_cadence(session: Session, subscriber_id: int, list_id: int, cadence: str | None) -> int:
    """Set the reader's cadence on one of their lists. Returns 0 when they are not on it."""
    return session.execute(
        update(Membership)
        .where(Membership.subscriber_id == subscriber_id, Membership.list_id == list_id)
        .values(cadence=cadence)
        .execution_options(synchronize_session=False)
    ).rowcount
