"""The reputation guard: back off a receiving domain that throttles us, pause a bad list.

Large receivers throttle a sender they do not trust yet: Gmail answers ``421 4.7.28``,
Microsoft ``451 4.7.500``-``4.7.650``, Yahoo ``421 4.7.0 [TSS04]``. Sending on makes it worse,
and a retry per recipient (each with its own backoff) keeps knocking. So recipients are grouped
by receiving domain (``domain_key``: the provider for the big consumer domains, whose many
domains share one reputation, else the domain itself), and after a throttling reply:

- the domain's other deliveries in the batch are deferred untried (no attempt used) until the
  domain's backoff ends; every worker reads the backoff from the database (``domain_backoffs``)
  and does the same;
- the backoff grows with each throttle in a row (``sending.domain_backoff_seconds``, doubling,
  up to ``domain_backoff_max_seconds``);
- for an hour after a throttle, at most ``sending.per_domain_concurrency`` messages to that
  domain are in flight at once per sending process; other domains go on at full speed.

The other half of the guard, pausing an issue that bounces or draws complaints, is in
``issues/guard.py`` (the dispatcher and the bounce processor both apply it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ..config import SendingSettings
from ..store import domains
from ..store.models import utcnow
from ..subscribers.domains import PROVIDERS, describe, domain_key
from .transports import is_throttle

__all__ = [  # the grouping by domain is the guard's vocabulary: named here too
    "PROVIDERS", "active_backoffs", "backoff_delay", "describe",
    "domain_key", "is_throttle", "record_throttles",
]  # fmt: skip

RECENT = timedelta(hours=1)
"""How long after a throttle a domain keeps its lower concurrency, and throttles count as
"in a row" for the growing delay."""


def backoff_delay(settings: SendingSettings, strikes: int) -> timedelta:
    """The backoff after ``strikes`` throttles in a row: the base, doubling, capped."""
    seconds = settings.domain_backoff_seconds * 2 ** max(0, strikes - 1)
    return timedelta(seconds=min(seconds, settings.domain_backoff_max_seconds))


def record_throttles(
    session: Session,
    replies: dict[str, str],
    settings: SendingSettings,
    *,
    now: datetime | None = None,
) -> dict[str, datetime]:
    """Record a throttling reply for each domain key of ``replies`` (key -> reply text) and
    return each one's backoff end. A domain already backing off keeps its end (the replies
    were for messages sent before the backoff was known); otherwise its strikes grow (reset
    after an hour without a throttle) and a new backoff starts now."""
    now = now or utcnow()
    rows = domains.locked_backoffs(session, replies, now)
    untils = {}
    for key, reply in replies.items():
        row = rows[key]
        if row.until > now:
            untils[key] = row.until
            continue
        recent = row.strikes and row.throttled_at > now - RECENT
        row.strikes = row.strikes + 1 if recent else 1
        row.until = now + backoff_delay(settings, row.strikes)
        row.reply = reply[:500]
        row.throttled_at = now
        untils[key] = row.until
    session.flush()
    return untils


def active_backoffs(
    session: Session, *, now: datetime | None = None
) -> tuple[dict[str, datetime], set[str]]:
    """(domain key -> backoff end for domains backing off now, keys throttled in the last
    hour). Forgets domains not throttled for a day."""
    now = now or utcnow()
    rows = domains.throttled_since(session, now - RECENT, now - timedelta(1))
    return {d: until for d, until, _ in rows if until > now}, {d for d, _, _ in rows}
