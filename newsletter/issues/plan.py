"""`issue plan`: before sending, who an issue goes to and who it leaves out, by list and by
receiving domain, and how long it takes at the configured rate.

The recipients are counted with the condition the ledger will be filled with
(newsletter.audiences.rules), so the plan and the send agree; they are "who matches now": the
audience is fixed only when sending starts. Raises NotFoundError (the issue, a segment of its
rule that was removed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_
from sqlalchemy.orm import Session

from ..audiences import rules
from ..audiences.segments import PER_SUBSCRIBER_OFF, warnings
from ..config import Settings
from ..store import segments as store
from ..store.models import SUPPRESSED_STATUSES, Subscriber, utcnow
from ..subscribers.domains import domain_key
from .service import get_issue

SAMPLE = 10
DOMAINS_SHOWN = 20
OTHER_DOMAINS = "(other)"


@dataclass(frozen=True, slots=True)
class Plan:
    issue: int
    recipients: int
    excluded: dict[str, int]
    by_list: dict[str, int]
    by_domain: dict[str, int]
    rate_per_second: float | None  # None: no rate limit
    estimated_seconds: float | None  # None: no rate limit (as fast as the relay takes them)
    sample: tuple[str, ...]
    warnings: tuple[str, ...]
    started: bool  # sending has started: its ledger already holds its audience

    def as_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "recipients": self.recipients,
            "excluded": self.excluded,
            "by_list": self.by_list,
            "by_domain": self.by_domain,
            "rate_per_second": self.rate_per_second,
            "estimated_seconds": self.estimated_seconds,
            "sample": list(self.sample),
            "warnings": list(self.warnings),
            "started": self.started,
        }


def send_rate(settings: Settings) -> float | None:
    """Messages per second the configured limits allow (the stricter of the two); None when
    neither is set (0 = unlimited), as the dispatcher reads them."""
    s = settings.sending
    rates = [r for r in (s.rate_per_second, s.rate_per_hour / 3600) if r > 0]
    return min(rates) if rates else None


def plan_issue(
    session: Session, settings: Settings, issue_id: int, *, now: datetime | None = None
) -> Plan:
    """Who issue ``issue_id`` would go to if it started now, and who it leaves out why:
    ``excluded`` counts the list's suppressed (unsubscribed, bounced, complained) and
    unconfirmed members, the active ones its segment or --where leaves out
    (``not_matching``), those its --exclude-list/--exclude-segment take away (``exclusions``),
    and ``preferences``: those whose own cadence keeps them out (a send-mode post goes to
    "every post" readers; the others get it in their digest)."""
    issue = get_issue(session, issue_id)
    parts = rules.parts(session, issue, now=now or utcnow())
    audience = parts.audience()
    statuses = store.count_by_status(session, parts.base)
    active = statuses.get(rules.ACTIVE, 0)
    matching = store.count(
        session, and_(Subscriber.status == rules.ACTIVE, parts.base, parts.include)
    )
    chosen = parts.audience(cadence=False)
    before_cadence = store.count(session, chosen) if parts.exclude is not None else matching
    recipients = store.count(session, audience) if parts.cadence is not None else before_cadence
    rate = send_rate(settings)
    return Plan(
        issue=issue.id,
        recipients=recipients,
        excluded={
            "suppressed": sum(statuses.get(s, 0) for s in SUPPRESSED_STATUSES),
            "unconfirmed": statuses.get("unconfirmed", 0),
            "not_matching": active - matching,
            "exclusions": matching - before_cadence,
            "preferences": before_cadence - recipients,
        },
        by_list=store.count_by_list(session, audience),
        by_domain=_by_domain(store.count_by_domain(session, audience)),
        rate_per_second=rate,
        estimated_seconds=recipients / rate if rate else None,
        sample=tuple(store.sample(session, audience, SAMPLE)),
        warnings=tuple(_warnings(session, settings, issue.audience_rule or {})),
        started=issue.started_at is not None,
    )


def _by_domain(domains: dict[str, int]) -> dict[str, int]:
    """Counts per receiving domain grouped as the reputation guard groups them (gmail.com
    and googlemail.com are "google"), largest first; past the first few, one "(other)"."""
    grouped: Counter[str] = Counter()
    for domain, n in domains.items():
        grouped[domain_key("@" + domain)] += n
    ranked = grouped.most_common()
    shown = dict(ranked[:DOMAINS_SHOWN])
    rest = sum(n for _, n in ranked[DOMAINS_SHOWN:])
    return shown | ({OTHER_DOMAINS: rest} if rest else {})


def _warnings(session: Session, settings: Settings, rule: dict[str, Any]) -> list[str]:
    per_subscriber = settings.tracking.per_subscriber
    found: list[str] = []
    for expression in rules.expressions(session, rule):
        found += [w for w in warnings(session, expression, per_subscriber=per_subscriber)
                  if w not in found]  # fmt: skip
    resend_needs_events = rule.get("to") in ("non-clickers", "non-openers")
    if resend_needs_events and not per_subscriber and PER_SUBSCRIBER_OFF not in found:
        found.append(PER_SUBSCRIBER_OFF)
    return found
