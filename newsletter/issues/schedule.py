"""Scheduling issues: a time in a named zone, stored in UTC on the issue row.

The issue row is the source of truth: `issue schedule` works whether or not `newsletter run`
is up, and the daemon sends what is due when it (re)starts. Misfire policy: an issue whose
time passed while nothing was running is still sent if it is at most
``scheduler.misfire_grace_seconds`` late (default 24 h); an older one becomes "missed" and is
reported, never sent by surprise days later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
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
    issue.local_time = issue.local_within = issue.local_zone = None
    issue_status.change(issue, issue_status.SCHEDULED)
    session.flush()
    return issue


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
MIN_WITHIN = timedelta(minutes=1)
MAX_WITHIN = timedelta(days=7)


def parse_hour(value: str) -> str:
    """'9:00' / '09:00' -> '09:00'. InvalidInputError with one line for anything else."""
    match = _HHMM.match(value.strip())
    if not match:
        raise InvalidInputError(f"cannot read {value!r} as a local time: use HH:MM, like 09:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(f"unknown time zone {name!r} (use Area/City)") from None


def schedule_local(
    session: Session,
    issue: Issue,
    hour: str,
    *,
    within: timedelta,
    default_zone: str,
    now: datetime | None = None,
) -> Issue:
    """Schedule ``issue`` to reach each reader at ``hour`` (HH:MM) in their own time zone
    (readers with none: ``default_zone``), all within ``within`` from now. The issue opens
    now; when it does, each delivery gets its own time (``local_times``)."""
    now = now or utcnow()
    if issue.status not in SCHEDULABLE:
        raise InvalidInputError(
            f"issue {issue.id} is {issue.status}; only drafts and missed issues can be scheduled"
        )
    if not MIN_WITHIN <= within <= MAX_WITHIN:
        raise InvalidInputError("--within must be between 1 minute and 7 days")
    zone(default_zone)
    issue.local_time, issue.local_zone = parse_hour(hour), default_zone
    issue.local_within = int(within.total_seconds())
    issue.scheduled_at = now
    issue_status.change(issue, issue_status.SCHEDULED)
    session.flush()
    return issue


def local_time(hour: str, zone_name: str, start: datetime, end: datetime) -> datetime:
    """When ``hour`` (HH:MM) next comes in ``zone_name`` from ``start`` (UTC). If that is
    after ``end``, the nearer end of the window: ``end``, or ``start`` when the hour went by
    just before it. A wall time the clocks skip (spring forward) is the moment after the gap."""
    tz = zone(zone_name)
    h, m = (int(x) for x in hour.split(":"))
    local_start = start.astimezone(tz)
    for days in (0, 1, 2):
        day = (local_start + timedelta(days=days)).date()
        at = datetime.combine(day, time(h, m), tzinfo=tz).astimezone(UTC)
        if at >= start:
            break
    if at <= end:
        return at
    previous = datetime.combine(day - timedelta(days=1), time(h, m), tzinfo=tz).astimezone(UTC)
    return end if at - end <= start - previous else start


def local_times(issue: Issue, zones: Iterable[str | None]) -> tuple[dict[str, datetime], datetime]:
    """Each zone's delivery time for a `--local` issue, and the time of readers with no zone
    (or one that is no longer known)."""
    start = issue.scheduled_at or utcnow()
    end = start + timedelta(seconds=issue.local_within or 86_400)
    hour, fallback = issue.local_time or "09:00", issue.local_zone or "UTC"
    times: dict[str, datetime] = {}
    for name in zones:
        if not name:
            continue
        try:
            times[name] = local_time(hour, name, start, end)
        except InvalidInputError:
            continue  # an unknown zone: the list's
    return times, local_time(hour, fallback, start, end)


def unschedule_issue(session: Session, issue: Issue) -> Issue:
    """Back to a draft. Raises InvalidInputError unless the issue is scheduled or missed."""
    if issue.status not in ("scheduled", "missed"):
        raise InvalidInputError(f"issue {issue.id} is {issue.status}, not scheduled")
    issue_status.change(issue, issue_status.DRAFT)
    issue.scheduled_at = None
    issue.local_time = issue.local_within = issue.local_zone = None
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
