"""The domain_backoffs table: one row per receiving domain that throttled us lately.

The rules (how long a backoff lasts, what counts as a throttle) are delivery/reputation.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session

from .dialect import insert
from .models import DomainBackoff


def locked_backoffs(
    session: Session, domains: Iterable[str], now: datetime
) -> dict[str, DomainBackoff]:
    """The backoff rows of ``domains`` (created first for those without one, with no backoff
    and no strikes), locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite's
    writer lock serialises the callers). Another worker adding the same row at the same
    moment is harmless: the insert does nothing for a row that exists."""
    keys = list(domains)
    session.execute(
        insert(session, DomainBackoff)
        .values(
            [
                {"domain": key, "until": now, "strikes": 0, "reply": "", "throttled_at": now}
                for key in keys
            ]
        )
        .on_conflict_do_nothing(index_elements=["domain"])
    )
    stmt = (
        select(DomainBackoff)
        .where(DomainBackoff.domain.in_(keys))
        .execution_options(populate_existing=True)
        .with_for_update()  # SQLite renders none: its writer lock is the lock there
    )
    return {row.domain: row for row in session.scalars(stmt)}


def throttled_since(
    session: Session, since: datetime, forget_before: datetime
) -> Sequence[Row[tuple[str, datetime, datetime]]]:
    """(domain, backoff end, last throttle) of the domains throttled since ``since``; rows
    whose last throttle is older than ``forget_before`` are deleted first."""
    session.execute(delete(DomainBackoff).where(DomainBackoff.throttled_at < forget_before))
    return session.execute(
        select(DomainBackoff.domain, DomainBackoff.until, DomainBackoff.throttled_at).where(
            DomainBackoff.throttled_at > since
        )
    ).all()


def backing_off(session: Session, now: datetime) -> list[DomainBackoff]:
    """The rows of domains whose backoff has not ended at ``now``, soonest end first."""
    return list(
        session.scalars(
            select(DomainBackoff).where(DomainBackoff.until > now).order_by(DomainBackoff.until)
        )
    )
