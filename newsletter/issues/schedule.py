"""Scheduling issues: a time in a named zone, stored in UTC on the issue row.

The issue row is the source of truth: `issue schedule` works whether or not `newsletter run`
is up, and the daemon sends what is due when it (re)starts. Misfire policy: an issue whose
time passed while nothing was running is still sent if it is at most
``scheduler.misfire_grace_seconds`` late (default 24 h); an older one becomes "missed" and is
reported, never sent by surprise days later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInputError
from ..store.models import Issue, utcnow
from . import status as issue_status

SCHEDULABLE = ("draft", "scheduled", "missed")


def parse_local_time(value: str, tz_name: str) -> datetime:
    """'YYYY-MM-DD HH:MM' (or ISO 8601) in the zone ``tz_name`` -> an aware UTC datetime.

    A time that does not exist in that zone (skipped by a DST change) is refused; a time that
    exists twice (the hour repeated in autumn) means the first of the two. Raises
    InvalidInputError with one line.
    """
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(f"unknown time zone {tz_name!r} (use Area/City)") from None
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInputError(f"cannot read {value!r}: use 'YYYY-MM-DD HH:MM'") from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    local = naive.replace(tzinfo=zone, fold=0)
    # A skipped local time does not survive the round trip through UTC.
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise InvalidInputError(
            f"{value} does not exist in {tz_name} (the clocks skip it for daylight saving)"
        )
    return local.astimezone(UTC)


def schedule_issue(
    session: Session, issue: Issue, when: datetime, *, now: datetime | None = None
) -> Issue:
    """Schedule a draft (or re-schedule a scheduled) issue at ``when`` (aware). Raises
    InvalidInputError for a time in the past or an issue that is sending or done."""
    now = now or utcnow()
    if issue.status not in SCHEDULABLE:
        raise InvalidInputError(
            f"issue {issue.id} is {issue.status}; only drafts and missed issues can be scheduled"
        )
    if when <= now:
        raise InvalidInputError(
            f"{when.isoformat(timespec='minutes')} is in the past; pick a later time"
        )
    issue.scheduled_at = when
    issue_status.change(issue, issue_status.SCHEDULED)
    session.flush()
    return issue


def unschedule_issue(session: Session, issue: Issue) -> Issue:
    """Back to a draft. Raises InvalidInputError unless the issue is scheduled or missed."""
    if issue.status not in ("scheduled", "missed"):
        raise InvalidInputError(f"issue {issue.id} is {issue.status}, not scheduled")
    issue_status.change(issue, issue_status.DRAFT)
    issue.scheduled_at = None
    session.flush()
    return issue


def due_issues(
    session: Session, *, grace: timedelta, now: datetime | None = None
) -> tuple[list[Issue], list[Issue]]:
    """Scheduled issues whose time has come: (to send now, too late: now marked missed)."""
    now = now or utcnow()
    due = session.scalars(
        select(Issue)
        .where(Issue.status == "scheduled", Issue.scheduled_at <= now)
        .order_by(Issue.scheduled_at, Issue.id)
        .with_for_update(skip_locked=True)
    ).all()
    send, missed = [], []
    for issue in due:
        if issue.scheduled_at is not None and now - issue.scheduled_at > grace:
            issue_status.change(issue, issue_status.MISSED)
            missed.append(issue)
        else:
            send.append(issue)
    session.flush()
    return send, missed


def upcoming(session: Session) -> list[Issue]:
    """Scheduled issues, soonest first."""
    return list(
        session.scalars(
            select(Issue).where(Issue.status == "scheduled").order_by(Issue.scheduled_at)
        )
    )
