"""The issues table: the ids in a status, and the shared send-rate cursor (its locking read
and its update)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import Issue


def locked_rate_cursor(session: Session, issue_id: int) -> tuple[datetime | None, str]:
    """(the issue's rate cursor, its status), the row locked until the transaction ends
    (FOR UPDATE on PostgreSQL; SQLite's writer lock serialises the callers)."""
    # SQLite renders no FOR UPDATE: its writer lock is the lock there.
    stmt = select(Issue.rate_cursor, Issue.status).where(Issue.id == issue_id).with_for_update()
    cursor, status = session.execute(stmt).one()
    return cursor, status


def move_rate_cursor(session: Session, issue_id: int, to: datetime) -> None:
    """Set the time of the issue's next free sending slot."""
    session.execute(update(Issue).where(Issue.id == issue_id).values(rate_cursor=to))


def ids_with_status(session: Session, status: str) -> list[int]:
    """The ids of the issues that are ``status`` now, in id order."""
    return list(session.scalars(select(Issue.id).where(Issue.status == status).order_by(Issue.id)))
