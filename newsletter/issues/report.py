"""One issue's report: what it is, who it goes to, how its sending went. `issue show` prints
it; the HTML report and the API are to serve the same value.

``issue_report`` gathers it in the caller's session and returns a frozen ``IssueReport``
that holds no database objects; ``IssueReport.as_json()`` is its JSON form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..config import Settings
from ..store import bounces, deliveries, domains, tracking
from ..store.models import DELIVERY_STATUSES, Delivery, Issue, utcnow
from ..subscribers.domains import provider_domains
from . import archive, guard, service

PROBLEMS = ("deferred", "failed", "bounced")
"""The statuses whose replies the report shows, most common first."""
ERRORS_SHOWN = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class PostLink:
    """A post in the issue."""

    id: int
    title: str
    url: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "url": self.url}


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyCount:
    """How many deliveries ended (for now) deferred, failed or bounced on the same reply."""

    status: str
    code: int | None
    enhanced: str
    text: str
    count: int

    @property
    def reply(self) -> str:
        """The reply as people read it: "550 5.1.1 no such user"."""
        return " ".join(str(x) for x in (self.code, self.enhanced, self.text) if x)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "enhanced": self.enhanced,
            "text": self.text,
            "count": self.count,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """A receiving domain held back after it throttled us (see delivery/reputation.py)."""

    domain: str  # the domain key: a provider ("google") or a domain
    domains: tuple[str, ...]  # the domains it stands for
    until: datetime
    strikes: int  # throttles in a row
    reply: str  # the throttling reply

    def as_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "domains": list(self.domains),
            "until": self.until.isoformat(timespec="seconds"),
            "strikes": self.strikes,
            "reply": self.reply,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkCount:
    """People's clicks on one link of the issue."""

    url: str
    total: int
    unique: int  # distinct messages

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "total": self.total, "unique": self.unique}


@dataclass(frozen=True, kw_only=True, slots=True)
class Engagement:
    """Clicks (or opens) of the issue: people's first, machines' apart (tracking.robots)."""

    total: int  # by people
    unique: int  # distinct messages with one by a person
    machine: int  # clicks (GET requests) by machines, any rule
    links: tuple[LinkCount, ...]  # people's clicks per link, most clicked first
    filtered: Mapping[str, int]  # requests per rule that found a machine (HEAD included)

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "unique": self.unique,
            "machine": self.machine,
            "links": [link.as_json() for link in self.links],
            "filtered": dict(self.filtered),
        }


def _engagement(session: Session, issue_id: int, kind: str) -> Engagement:
    found = tracking.counts(session, issue_id, kind)
    urls = tracking.link_urls(session, issue_id) if found["links"] else {}
    return Engagement(
        total=found["total"],
        unique=found["unique"],
        machine=found["machine"],
        links=tuple(
            LinkCount(url=urls.get(n["idx"], ""), total=n["total"], unique=n["unique"])
            for n in found["links"]
        ),
        filtered=found["filtered"],
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueReport:
    """One issue at the time it was read."""

    id: int
    subject: str
    status: str
    scheduled_at: datetime | None
    kind: str
    list_name: str | None  # None: every active subscriber
    preheader: str
    created_at: datetime
    archive: bool | None  # as the marketer set it; None: as its list says (see ``public``)
    slug: str
    audience: int  # active subscribers it would go to now
    posts: tuple[PostLink, ...]
    deliveries: Mapping[str, int]  # every delivery status, in DELIVERY_STATUSES order
    started_at: datetime | None
    finished_at: datetime | None
    errors: tuple[ReplyCount, ...]  # the most common problem replies, most common first
    bounces: Mapping[str, int]  # bounces and complaints by kind, every kind
    rate_per_second: float | None  # None before two settlements at different times
    pause_reason: str | None  # why the reputation guard paused it
    backoffs: tuple[Backoff, ...]  # every domain backing off now, not only this issue's
    relays: Mapping[str, Mapping[str, int]]  # with several relays: each one's answers by status
    public: bool  # in the public web archive
    web_url: str  # its web-view page, as its emails link to it
    clicks: Engagement
    opens: Engagement | None  # None unless [tracking] opens is on
    unsubscribes: int  # who unsubscribed through this issue's link or header
    unsubscribe_reasons: Mapping[str, int]  # their answers to "why?", by answer
    audience_rule: Mapping[str, Any] = field(default_factory=dict)  # who beyond the list
    cadence: str | None = None  # readers' cadences: "post", "weekly", "monthly" (audiences)
    local_time: str | None = None  # `issue schedule --local`: the readers' hour, HH:MM
    waiting_for_hour: int = 0  # pending deliveries whose reader's hour has not come
    next_local_at: datetime | None = None  # the next of those hours

    def as_json(self) -> dict[str, Any]:
        """The `issue show --json` form: the `issue ls --json` row (service.issue_row), then
        the report's own keys; times in ISO 8601 (a backoff's to the second)."""
        return {
            "id": self.id,
            "subject": self.subject,
            "status": self.status,
            "scheduled_at": _iso(self.scheduled_at),
            "kind": self.kind,
            "list": self.list_name,
            "preheader": self.preheader,
            "post_ids": [p.id for p in self.posts],
            "created_at": self.created_at.isoformat(),
            "archive": self.archive,
            "slug": self.slug,
            "audience_rule": dict(self.audience_rule),
            "cadence": self.cadence,
            "local_time": self.local_time,
            "audience": self.audience,
            "posts": [p.as_json() for p in self.posts],
            "deliveries": dict(self.deliveries),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "errors": [e.as_json() for e in self.errors],
            "bounces": dict(self.bounces),
            "rate_per_second": self.rate_per_second,
            "pause_reason": self.pause_reason,
            "backoff": [b.as_json() for b in self.backoffs],
            "relays": {name: dict(n) for name, n in self.relays.items()},
            "public": self.public,
            "web_url": self.web_url,
            "clicks": self.clicks.as_json(),
            **({"opens": self.opens.as_json()} if self.opens is not None else {}),
            "unsubscribes": self.unsubscribes,
            "unsubscribe_reasons": dict(self.unsubscribe_reasons),
            "waiting_for_hour": self.waiting_for_hour,
            "next_local_at": _iso(self.next_local_at),
        }


def issue_report(
    session: Session, settings: Settings, issue_id: int, *, now: datetime | None = None
) -> IssueReport:
    """The report of issue ``issue_id``; ``now`` decides which backoffs are current.

    Raises NotFoundError for an unknown id. Run it in a writing transaction: a private
    issue's web-view link is signed with a key made on first use (issues.archive).
    """
    issue = service.get_issue(session, issue_id)
    counts = deliveries.counts(session, issue.id)
    now = now or utcnow()
    unsubscribes, reasons = tracking.unsubscribe_counts(session, issue.id)
    waiting, next_local = (
        deliveries.waiting_for_hour(session, issue.id, now) if issue.local_time else (0, None)
    )
    return IssueReport(
        id=issue.id,
        subject=issue.subject,
        status=issue.status,
        scheduled_at=issue.scheduled_at,
        kind=issue.kind,
        list_name=issue.mailing_list.name if issue.mailing_list else None,
        preheader=issue.preheader,
        created_at=issue.created_at,
        archive=issue.archive,
        slug=issue.slug,
        audience=service.audience_size(session, issue),
        posts=tuple(PostLink(id=p.id, title=p.title, url=p.url) for p in issue.posts),
        deliveries={s: counts.get(s, 0) for s in DELIVERY_STATUSES},
        started_at=issue.started_at,
        finished_at=issue.finished_at,
        errors=tuple(
            ReplyCount(**e) for e in deliveries.replies(session, issue.id, PROBLEMS, ERRORS_SHOWN)
        ),
        bounces=bounces.issue_counts(session, issue.id),
        rate_per_second=send_rate(session, issue),
        pause_reason=issue.pause_reason or None,
        backoffs=tuple(
            Backoff(
                domain=b.domain,
                domains=tuple(provider_domains(b.domain)),
                until=b.until,
                strikes=b.strikes,
                reply=b.reply,
            )
            for b in domains.backing_off(session, now)
        ),
        relays={
            relay: {s: n[s] for s in DELIVERY_STATUSES if s in n}
            for relay, n in deliveries.by_relay(session, issue.id).items()
        },
        public=archive.is_public(issue, settings),
        web_url=settings.site.base_url.rstrip("/") + archive.web_path(session, issue, settings),
        clicks=_engagement(session, issue.id, "click"),
        opens=_engagement(session, issue.id, "open") if settings.tracking.opens else None,
        unsubscribes=unsubscribes,
        audience_rule=issue.audience_rule or {},
        unsubscribe_reasons=reasons,
        cadence=issue.cadence,
        local_time=issue.local_time,
        waiting_for_hour=waiting,
        next_local_at=next_local,
    )


def send_rate(session: Session, issue: Issue) -> float | None:
    """Messages per second while the issue was sending: deliveries settled (sent, deferred,
    failed, bounced) divided by the time from the first settlement to the last. None before
    two settlements at different times."""
    first, last, settled = deliveries.settled_span(session, issue.id, guard.ATTEMPTED)
    if not first or not last:
        return None
    span = (last - first).total_seconds()  # min/max keep the column type: aware UTC
    return round(settled / span, 1) if span > 0 else None


# --- who has not received it (`issue missed`) ------------------------------------------------


def missed(session: Session, issue: Issue) -> Iterator[dict[str, Any]]:
    """Everyone in the ledger who has not received the issue, with the reason, streamed."""
    for d, email in deliveries.not_sent(session, issue.id):
        yield {
            "delivery_id": d.id,
            "subscriber_id": d.subscriber_id,
            "email": email,
            "status": d.status,
            "reason": _reason(d, issue),
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat() if d.status == "deferred" else None,
            "code": d.last_code,
            "enhanced": d.last_enhanced,
            "text": d.last_text,
        }


def _reason(d: Delivery, issue: Issue) -> str:
    reply = " ".join(str(x) for x in (d.last_code, d.last_enhanced, d.last_text) if x)
    if d.status == "deferred":
        return f"deferred until {d.next_attempt_at.isoformat(timespec='seconds')}: {reply}"
    if d.status in ("failed", "bounced"):
        return f"{d.status}: {reply}"
    if d.status == "skipped":
        return f"skipped: {d.last_text}"
    if issue.status in ("paused", "cancelled"):
        return f"not sent: the issue is {issue.status}"
    if d.status == "pending" and issue.local_time and d.next_attempt_at > utcnow():
        return f"waiting for the reader's hour: {d.next_attempt_at.isoformat(timespec='seconds')}"
    return "in flight" if d.status == "sending" else "not sent yet"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
