"""Counts across issues and subscribers for `newsletter stats`: list growth by day and each
sent issue's engagement, every dialect branch of them. The reports (newsletter.reports)
bucket the days into weeks and compute the rates.

What the growth counts, by the day (UTC) it happened:

- ``new``: subscribers by ``created_at`` (everyone still in the database, whatever their
  status now; the erased are gone);
- ``confirmed``: subscribers by ``confirmed_at`` (one per person: the latest confirmation);
- ``unsubscribed``, ``bounced``: the subscriber events of that kind (each time a status
  changed to it, so someone who came back and left again counts twice).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, cast, func, literal_column, select
from sqlalchemy.orm import Session

from .models import Delivery, Issue, Subscriber, SubscriberEvent, TrackingEvent, Unsubscribe

GROWTH = ("new", "confirmed", "unsubscribed", "bounced")


def _utc_day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a time column, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        # A literal, not a parameter: PostgreSQL must see the same expression in GROUP BY.
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column)  # SQLite keeps UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff'


def _per_day(session: Session, column: Any, *where: Any) -> list[tuple[date, int]]:
    day = _utc_day(session, column)
    rows = session.execute(
        select(day, func.count()).where(column.is_not(None), *where).group_by(day).order_by(day)
    )
    return [(d if isinstance(d, date) else date.fromisoformat(d), n) for d, n in rows]


def daily_growth(session: Session, since: datetime | None = None) -> dict[str, list]:
    """``{what: [(day, n), ...]}`` for each of GROWTH, days in order, only days with one;
    ``since`` (aware) leaves out what happened before it."""

    def after(column: Any) -> tuple[Any, ...]:
        return () if since is None else (column >= since,)

    def events(kind: str) -> list[tuple[date, int]]:
        at = SubscriberEvent.at
        return _per_day(session, at, SubscriberEvent.kind == kind, *after(at))

    return {
        "new": _per_day(session, Subscriber.created_at, *after(Subscriber.created_at)),
        "confirmed": _per_day(session, Subscriber.confirmed_at, *after(Subscriber.confirmed_at)),
        "unsubscribed": events("unsubscribed"),
        "bounced": events("bounced"),
    }


def issue_engagement(session: Session, since: datetime | None = None) -> list[dict[str, Any]]:
    """Every issue that began sending (since ``since``), oldest first::

        {"id", "subject", "status", "started_at", "deliveries": {status: n},
         "unique_clicks": n, "unsubscribes": n}

    ``unique_clicks`` counts distinct messages with a click by a person (the ``unique`` of
    store.tracking.counts), in one query for all the issues."""
    scope = select(Issue.id).where(Issue.started_at.is_not(None))
    if since is not None:
        scope = scope.where(Issue.started_at >= since)
    issues = session.execute(
        select(Issue.id, Issue.subject, Issue.status, Issue.started_at)
        .where(Issue.id.in_(scope))
        .order_by(Issue.started_at, Issue.id)
    ).all()
    if not issues:
        return []
    by_status: dict[int, dict[str, int]] = {}
    for issue_id, status, n in session.execute(
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(scope))
        .group_by(Delivery.issue_id, Delivery.status)
    ):
        by_status.setdefault(issue_id, {})[status] = n
    ev = TrackingEvent
    clicks = dict(
        session.execute(
            select(ev.issue_id, func.count(func.distinct(ev.visitor)))
            .where(ev.issue_id.in_(scope), ev.kind == "click", ev.machine == "")
            .group_by(ev.issue_id)
        ).all()
    )
    unsubscribes = dict(
        session.execute(
            select(Unsubscribe.issue_id, func.count())
            .where(Unsubscribe.issue_id.in_(scope))
            .group_by(Unsubscribe.issue_id)
        ).all()
    )
    return [
        {
            "id": issue_id,
            "subject": subject,
            "status": status,
            "started_at": started_at,
            "deliveries": by_status.get(issue_id, {}),
            "unique_clicks": clicks.get(issue_id, 0),
            "unsubscribes": unsubscribes.get(issue_id, 0),
        }
        for issue_id, subject, status, started_at in issues
    ]
