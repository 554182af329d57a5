"""The rate_limits table: request counters in fixed windows, shared by every process."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, literal
from sqlalchemy.orm import Session

from .dialect import insert
from .models import RateLimit


def count_hit(
    session: Session, key: str, *, window: timedelta, now: datetime
) -> tuple[int, datetime]:
    """Count one hit for ``key`` and return (hits in its window, the window's start). A
    window older than ``window`` starts again at ``now``. One upsert: concurrent hits are
    counted exactly."""
    table = RateLimit.__table__
    stamp = literal(now, table.c.window_start.type)
    restart = table.c.window_start <= literal(now - window, table.c.window_start.type)
    stmt = insert(session, table).values(key=key, window_start=now, hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "hits": case((restart, 1), else_=table.c.hits + 1),
            "window_start": case((restart, stamp), else_=table.c.window_start),
        },
    ).returning(table.c.hits, table.c.window_start)
    hits, start = session.execute(stmt).one()
    return hits, start
