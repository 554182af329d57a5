"""What the HTML report of one issue (`issue report`) shows, gathered in one session.

``gather`` returns a frozen ``IssuePage``: the issue's report (issues.report, the value
`issue show` prints), its clicks hour by hour over the first ``HOURS`` after sending
began, and its funnel. Drawing it is ``page.issue_html``'s job, outside the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ..config import Settings
from ..issues.report import IssueReport, issue_report
from ..store import tracking
from .stats import delivered_counts

HOURS = 72

RULES = {
    "user_agent": "a known link scanner, security gateway, preview fetcher or crawler, or "
    "no user agent at all (for opens also Apple Mail Privacy Protection's image proxy)",
    "burst": "several links of one message followed within seconds: a scanner opening "
    "everything just after delivery",
    "honeypot": "the link no person can see was followed: every click of that message is "
    "a machine's",
    "head": "HEAD requests: answered, never counted as clicks",
    "prefetch": "prefetch and preview requests: answered, never counted as clicks",
}
"""What each rule of tracking.robots means, as the report explains it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuePage:
    report: IssueReport
    people_by_hour: tuple[int, ...]  # clicks by people in hour 0, 1, ... after the start
    machines_by_hour: tuple[int, ...]  # clicks by machines, the same hours
    later: int  # clicks (any) after the first HOURS
    funnel: tuple[tuple[str, int], ...]  # (step, how many): sent, delivered, clicked, ...


def gather(session: Session, settings: Settings, issue_id: int) -> IssuePage:
    """The report page's values for issue ``issue_id``. Raises NotFoundError for an
    unknown id. Run it in a writing transaction, like issues.report.issue_report."""
    report = issue_report(session, settings, issue_id)
    events = tracking.hourly(session, issue_id, "click") if report.started_at else []
    people, machines, later = by_hour(events, report.started_at)
    return IssuePage(
        report=report,
        people_by_hour=people,
        machines_by_hour=machines,
        later=later,
        funnel=funnel(report),
    )


def funnel(report: IssueReport) -> tuple[tuple[str, int], ...]:
    """sent → delivered (sent less bounced) → clicked (by a person, distinct messages) →
    unsubscribed (through this issue)."""
    sent, delivered = delivered_counts(report.deliveries)
    return (
        ("sent", sent),
        ("delivered", delivered),
        ("clicked", report.clicks.unique),
        ("unsubscribed", report.unsubscribes),
    )


def by_hour(
    events: Iterable[tuple[datetime, bool]], start: datetime | None, hours: int = HOURS
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(people's clicks per hour, machines' per hour, clicks after ``hours``) of events
    (time, by a machine) counted from ``start``; one before ``start`` (a test message)
    counts in hour 0."""
    people, machines, later = [0] * hours, [0] * hours, 0
    if start is None:
        return tuple(people), tuple(machines), later
    for at, machine in events:
        hour = max(int((at - start).total_seconds() // 3600), 0)
        if hour >= hours:
            later += 1
        elif machine:
            machines[hour] += 1
        else:
            people[hour] += 1
    return tuple(people), tuple(machines), later
