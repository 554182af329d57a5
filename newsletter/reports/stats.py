"""The list over time (`newsletter stats`): growth per ISO week and each sent issue's clicks.

``list_stats`` reads in the caller's session and returns a frozen ``ListStats``;
``ListStats.as_json()`` is what `stats --json` prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..store import stats
from ..store.models import utcnow


@dataclass(frozen=True, kw_only=True, slots=True)
class Week:
    """What happened to the list in one ISO week (UTC days); see store.stats for what
    each figure counts."""

    week: str  # "2026-W49"
    starts: date  # its Monday
    new: int
    confirmed: int
    unsubscribed: int
    bounced: int

    def as_json(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "starts": self.starts.isoformat(),
            "new": self.new,
            "confirmed": self.confirmed,
            "unsubscribed": self.unsubscribed,
            "bounced": self.bounced,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueRate:
    """One issue that began sending: how many it reached and how many of them clicked."""

    id: int
    subject: str
    status: str
    started_at: datetime
    sent: int  # messages that went out: accepted, or refused as a bounce
    delivered: int  # sent and not bounced
    clicked: int  # distinct messages with a click by a person
    unsubscribes: int  # through this issue's link or header

    @property
    def click_rate(self) -> float | None:
        """clicked ÷ delivered, None before anything was delivered."""
        return self.clicked / self.delivered if self.delivered else None

    def as_json(self) -> dict[str, Any]:
        rate = self.click_rate
        return {
            "id": self.id,
            "subject": self.subject,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "sent": self.sent,
            "delivered": self.delivered,
            "unique_clicks": self.clicked,
            "click_rate": None if rate is None else round(rate, 4),
            "unsubscribes": self.unsubscribes,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ListStats:
    since: datetime | None
    weeks: tuple[Week, ...]  # every week from the first to the last, quiet ones included
    issues: tuple[IssueRate, ...]  # oldest first

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "weeks": [w.as_json() for w in self.weeks],
            "issues": [i.as_json() for i in self.issues],
        }


def list_stats(
    session: Session, *, since: datetime | None = None, now: datetime | None = None
) -> ListStats:
    """Growth per week from ``since`` (or the first thing that happened) to the week of
    ``now``, and every issue that began sending since ``since``."""
    return ListStats(
        since=since,
        weeks=weekly(stats.daily_growth(session, since), since=since, now=now or utcnow()),
        issues=tuple(issue_rate(row) for row in stats.issue_engagement(session, since)),
    )


def delivered_counts(deliveries: Mapping[str, int]) -> tuple[int, int]:
    """(sent, delivered) from deliveries by status: what went out, and of it what was not
    bounced (failed and deferred deliveries never reached anyone)."""
    delivered = deliveries.get("sent", 0)
    return delivered + deliveries.get("bounced", 0), delivered


def issue_rate(row: Mapping[str, Any]) -> IssueRate:
    sent, delivered = delivered_counts(row["deliveries"])
    return IssueRate(
        id=row["id"],
        subject=row["subject"],
        status=row["status"],
        started_at=row["started_at"],
        sent=sent,
        delivered=delivered,
        clicked=row["unique_clicks"],
        unsubscribes=row["unsubscribes"],
    )


def weekly(
    days: Mapping[str, Iterable[tuple[date, int]]], *, since: datetime | None, now: datetime
) -> tuple[Week, ...]:
    """Per-day counts (store.stats.daily_growth) summed into ISO weeks, from the week of
    ``since`` (or of the first day with a count) to the week of ``now``; () when nothing
    happened and no ``since`` was given."""
    sums: dict[date, dict[str, int]] = {}
    for what, counts in days.items():
        for day, n in counts:
            monday = day - timedelta(days=day.weekday())
            sums.setdefault(monday, dict.fromkeys(stats.GROWTH, 0))[what] += n
    if since is not None:
        first = since.astimezone(UTC).date()
    elif sums:
        first = min(sums)
    else:
        return ()
    today = now.astimezone(UTC).date()
    last = max(today, *sums) if sums else today
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        counts = sums.get(monday, dict.fromkeys(stats.GROWTH, 0))
        year, number, _ = monday.isocalendar()
        weeks.append(Week(week=f"{year}-W{number:02d}", starts=monday, **counts))
        monday += timedelta(days=7)
    return tuple(weeks)
