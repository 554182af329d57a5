"""The automatic pause: an issue that bounces or draws complaints like a bad list stops.

Sending on to a list that hard-bounces at 10 % or draws complaints at 0.5 % ruins the sender's
domain for every later issue. So an issue whose hard-bounce rate passes
``sending.pause_bounce_rate`` (checked by the dispatcher as results come in) or whose
complaint rate passes ``sending.pause_complaint_rate`` (checked by the bounce processor), once
at least ``sending.pause_min_attempts`` deliveries were tried, is paused with the reason kept
on the issue (``issue show``, and one line from `issue send`). Resuming it is the marketer's
decision: the guard does not pause that issue again.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..config import SendingSettings
from ..store.models import Issue
from . import status as issue_status

ATTEMPTED = ("sent", "deferred", "failed", "bounced")
"""Delivery states that mean the delivery was tried."""


def bounce_rate_over(counts: dict[str, int], settings: SendingSettings) -> bool:
    """True when these counts bounce above ``pause_bounce_rate``, however few they are."""
    attempted = sum(counts.get(s, 0) for s in ATTEMPTED)
    rate = settings.pause_bounce_rate
    return bool(rate and attempted and counts.get("bounced", 0) > rate * attempted)


def bounce_pause_reason(counts: dict[str, int], settings: SendingSettings) -> str:
    """Why an issue with these delivery counts should pause for its hard bounces, or ""."""
    attempted = sum(counts.get(s, 0) for s in ATTEMPTED)
    if attempted < settings.pause_min_attempts or not bounce_rate_over(counts, settings):
        return ""
    bounced, rate = counts.get("bounced", 0), settings.pause_bounce_rate
    return (
        f"hard bounces {bounced / attempted:.1%} of {attempted} attempts passed "
        f"sending.pause_bounce_rate {rate:.1%}: check the list (a bought or old list hurts the "
        "sender's domain), then `newsletter issue resume` to go on"
    )


def complaint_pause_reason(complaints: int, sent: int, settings: SendingSettings) -> str:
    """Why an issue with these complaint and sent counts should pause, or ""."""
    rate = settings.pause_complaint_rate
    if not rate or sent < settings.pause_min_attempts or complaints <= rate * sent:
        return ""
    return (
        f"complaints {complaints / sent:.2%} of {sent} messages sent passed "
        f"sending.pause_complaint_rate {rate:.2%}: check who is on the list and what they "
        "signed up for, then `newsletter issue resume` to go on"
    )


def pause_for(session: Session, issue: Issue, reason: str) -> bool:
    """Pause a sending issue for ``reason`` unless a marketer resumed it after an automatic
    pause before. True if it paused it now."""
    if not reason or issue.status != "sending" or issue.guard_off:
        return False
    issue_status.change(issue, issue_status.PAUSED)
    issue.pause_reason = reason
    session.flush()
    return True
