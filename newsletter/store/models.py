"""Database models (SQLAlchemy 2 declarative). The migrations in ``migrations/`` mirror them;
a test checks that autogenerate finds no difference.

Times are stored in UTC and come back timezone-aware (``UTCDateTime``).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Re-exported: the models' callers import them from here.
from .types import SUBSCRIBER_STATUSES as SUBSCRIBER_STATUSES
from .types import SUPPRESSED_STATUSES as SUPPRESSED_STATUSES
from .types import UTCDateTime as UTCDateTime
from .types import utcnow as utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EVENT_KINDS = (
    "subscribed",
    "confirmed",
    "imported",
    "updated",
    "unsubscribed",
    "bounced",
    "complained",
    "bounce",  # a bounce report that did not (yet) reach the rule's limit
    "complaint",
    "erased",
)

# An integer primary key that is a rowid alias on SQLite and a BIGINT elsewhere.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def new_token() -> str:
    """A random, URL-safe token of 128 bits (unsubscribe, confirm, preferences links)."""
    return secrets.token_urlsafe(16)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (CheckConstraint(f"status IN ({_in(SUBSCRIBER_STATUSES)})", name="status"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # email keeps the local part as given (trimmed, domain lower-cased); email_key is the
    # fully lower-cased form that makes addresses unique case-insensitively.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    source: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The subscriber's own "don't track my clicks" (preferences page): plain links, no pixel.
    no_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # IANA zone name ("Europe/Stockholm") from the sign-up form, an import or the admin; None:
    # the list's zone ([lists.NAME] timezone) for `issue schedule --local`.
    timezone: Mapped[str | None] = mapped_column(String(64))

    lists: Mapped[list[MailingList]] = relationship(
        secondary="memberships", back_populates="subscribers", order_by="MailingList.name"
    )
    events: Mapped[list[SubscriberEvent]] = relationship(
        back_populates="subscriber",
        order_by="SubscriberEvent.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class MailingList(Base):
    """A list (audience). Subscribers belong to many lists through memberships."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Whether its issues are in the public archive; None: only if it is on the subscribe
    # form ([web] lists). See newsletter.issues.archive.
    public: Mapped[bool | None] = mapped_column(Boolean, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscribers: Mapped[list[Subscriber]] = relationship(
        secondary="memberships", back_populates="lists", viewonly=True
    )


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_subscriber_id", "subscriber_id"),)

    list_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The reader's own cadence for this list: "post", "weekly" or "monthly" (the preferences
    # page); None: the list's default ([lists.NAME] cadence). See newsletter.audiences.cadence.
    cadence: Mapped[str | None] = mapped_column(String(16))


class SubscriberEvent(Base):
    """Append-only history of a subscriber; doubles as the consent record (time, IP, source)."""

    __tablename__ = "subscriber_events"
    __table_args__ = (Index("ix_subscriber_events_subscriber_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    subscriber: Mapped[Subscriber] = relationship(back_populates="events")


class Suppression(Base):
    """An address that must never be mailed or imported again, kept only as a hash.

    Written when a person is erased (GDPR): ``email_hash`` is the SHA-256 of the lower-cased
    address, so the erased address cannot be read back but a re-import is recognised.
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32), default="erased")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- posts and issues ----------------------------------------------------------------------

ISSUE_KINDS = ("post", "digest")
ISSUE_STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled", "missed")


class Feed(Base):
    """Fetch state of one feed URL (the feeds themselves are configured in [[feeds]])."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Post(Base):
    """A blog post, from a feed entry or a Markdown file. ``html`` is already sanitised.

    ``origin`` is the feed URL or "markdown"; (origin, guid) is unique, so fetching a feed
    again never duplicates a post and an edited post is updated in place.
    """

    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("origin", "guid", name="uq_posts_origin_guid"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("feeds.id", ondelete="SET NULL"), index=True
    )
    origin: Mapped[str] = mapped_column(String(2000))
    guid: Mapped[str] = mapped_column(String(2000))
    url: Mapped[str] = mapped_column(String(2000), default="")
    title: Mapped[str] = mapped_column(String(1000))
    summary: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(500), default="")
    image_url: Mapped[str] = mapped_column(String(2000), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # For feeds in "draft" or "send" mode: "pending" until the scheduler has made this post's
    # issue (in the same transaction as the issue), then "done". "backlog": what a new feed
    # already had at its first poll (never mailed by the daemon). "none": posts that wait for
    # a digest (digest feeds, Markdown posts).
    announce: Mapped[str] = mapped_column(String(16), default="none", server_default="none")


class Issue(Base):
    """One edition of the newsletter: one post or a digest of several, sent to one list
    (or, with no list, to every active subscriber)."""

    __tablename__ = "issues"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(ISSUE_KINDS)})", name="kind"),
        CheckConstraint(f"status IN ({_in(ISSUE_STATUSES)})", name="status"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    list_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("lists.id", ondelete="RESTRICT"), index=True
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The shared rate limiter: the time up to which sending slots are already handed out.
    # Workers reserve slots by moving it forward (store/ratelimit), across processes.
    rate_cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the reputation guard paused it (bounce or complaint rate); "" otherwise.
    pause_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # 1 once a marketer resumed it after such a pause: the guard does not pause it again.
    guard_off: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Who beyond the list (newsletter.audiences): {"where": EXPR, "segment": NAME,
    # "exclude_lists": [...], "exclude_segments": [...], "resend_of": ID, "to": "non-clickers"};
    # {} is the whole list. Fixed in the ledger when sending starts.
    audience_rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Readers' cadences (newsletter.audiences.cadence): "post" for a send-mode feed's post
    # (goes to "every post" readers, held for the others' digests), "weekly"/"monthly" for
    # the digest of what was held; None: everyone in the audience.
    cadence: Mapped[str | None] = mapped_column(String(16))
    # `issue schedule --local HH:MM --within`: each reader at that hour in their zone (readers
    # with none: ``local_zone``, the list's), within ``local_within`` seconds of
    # ``scheduled_at``; the ledger keeps each delivery's time (newsletter.issues.schedule).
    local_time: Mapped[str | None] = mapped_column(String(5))
    local_within: Mapped[int | None] = mapped_column(Integer)
    local_zone: Mapped[str | None] = mapped_column(String(64))
    # The sequence whose step this issue is (newsletter.sequences): such an issue stays
    # "sending" while its sequence runs, gets a delivery per reader who reaches the step, and
    # is not listed with the marketer's issues. None: an ordinary issue.
    sequence_id: Mapped[int | None] = mapped_column(IdType, index=True)
    # In the public archive? None: as its list says (newsletter.issues.archive).
    archive: Mapped[bool | None] = mapped_column(Boolean, default=None)
    # The unguessable name of its archive and web-view pages (never the sequential id).
    slug: Mapped[str] = mapped_column(
        String(32), unique=True, index=True, default=lambda: secrets.token_urlsafe(16)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    mailing_list: Mapped[MailingList | None] = relationship()
    posts: Mapped[list[Post]] = relationship(
        secondary="issue_posts", order_by="IssuePost.position", viewonly=True
    )
    step: Mapped[SequenceStep | None] = relationship(
        primaryjoin="Issue.id == foreign(SequenceStep.issue_id)", viewonly=True, uselist=False
    )


class IssuePost(Base):
    __tablename__ = "issue_posts"
    __table_args__ = (Index("ix_issue_posts_post_id", "post_id"),)

    issue_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    post_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("posts.id", ondelete="RESTRICT"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


# --- deliveries ----------------------------------------------------------------------------

DELIVERY_STATUSES = ("pending", "sending", "sent", "deferred", "failed", "bounced", "skipped")
# Deliveries in these states are finished: nothing more will be sent for them.
FINAL_DELIVERY_STATUSES = ("sent", "failed", "bounced", "skipped")


class Delivery(Base):
    """One message of one issue to one subscriber: the ledger that makes sending exactly-once.

    Created for the whole audience when sending starts. A worker claims a batch (status
    "sending", ``claimed_by``, ``lease_until``), sends outside any transaction and records each
    result; a claim whose lease expired (a crashed worker) is claimed again. ``message_id`` is
    the same on every attempt, so a resend after a crash carries the same Message-ID.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_subscriber"),
        CheckConstraint(f"status IN ({_in(DELIVERY_STATUSES)})", name="status"),
        Index("ix_deliveries_issue_status", "issue_id", "status", "next_attempt_at"),
        Index("ix_deliveries_subscriber_id", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    issue_id: Mapped[int] = mapped_column(IdType, ForeignKey("issues.id", ondelete="CASCADE"))
    # NULL once the subscriber is erased: the row stays for the issue's statistics.
    subscriber_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_enhanced: Mapped[str] = mapped_column(String(16), default="")
    last_text: Mapped[str] = mapped_column(String(500), default="")
    message_id: Mapped[str] = mapped_column(String(300), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The relay that gave the last answer, with several [[smtp]] relays; else "".
    relay: Mapped[str] = mapped_column(String(100), default="", server_default="")


# APScheduler 3's SQLAlchemy job store keeps its jobs here (the table it would create itself,
# made by our migrations so the schema has one owner). Only `newsletter run` touches it.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


# --- web sign-ups --------------------------------------------------------------------------


class Confirmation(Base):
    """A double opt-in link sent to one address: pending until it is used or expires.

    The link's token is never stored: ``selector`` (its first characters) finds the row and
    ``verifier`` (SHA-256 of the whole token) is compared in constant time, so a copy of the
    database holds no working link. ``consent`` is what the sign-up recorded (time, IP, user
    agent, source page, consent text version) and ``lists`` the lists asked for; both are
    cleared when an unconfirmed sign-up expires. ``subscriber_id`` is NULL once the person was
    deleted (expired or erased); the row is kept for a while so an old link is answered
    politely ("expired") instead of with a 404.
    """

    __tablename__ = "confirmations"
    __table_args__ = (Index("ix_confirmations_subscriber_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    selector: Mapped[str] = mapped_column(String(16), unique=True)
    verifier: Mapped[str] = mapped_column(String(64))
    subscriber_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    lists: Mapped[list[str]] = mapped_column(JSON, default=list)
    consent: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateLimit(Base):
    """A fixed-window request counter shared by every `newsletter serve` process.

    ``key`` names what is counted and a hash of whom (``signup-ip:<sha256>``,
    ``signup-address:<sha256>``); the window restarts when ``window_start`` is older than
    the configured window. Old rows are purged by the web service's periodic clean-up.
    """

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)


TOKEN_SELECTOR_LENGTH = 8
"""Leading characters of a subscriber's token that the database looks up (an expression
index); the whole token is then compared in constant time (``hmac.compare_digest``), so the
timing of a lookup can reveal at most these characters, never a working token."""

Index(
    "ix_subscribers_token_selector",
    func.substr(Subscriber.token, 1, TOKEN_SELECTOR_LENGTH),
)


# --- bounces and complaints ----------------------------------------------------------------

BOUNCE_KINDS = ("hard", "soft", "complaint")


class Bounce(Base):
    """A bounce (RFC 3464 DSN or a non-standard one) or a complaint (RFC 5965 ARF report)
    that came back after sending: one row per report and recipient (newsletter.bounces).

    ``delivery_id`` and ``issue_id`` are set when the report could be tied to one message
    (by its VERP token or its original Message-ID), ``subscriber_id`` when it could be tied
    to a person (that message's recipient, or the reported address); all three are NULL for a
    report about an address we do not know. ``matched_by`` says how: "verp", "message-id",
    "recipient" or "". ``status`` is the RFC 3463 code ("5.1.1"), ``action`` the DSN Action
    ("failed", "delayed") or the ARF Feedback-Type ("abuse"). ``report_key`` is the report's
    own Message-ID (or a hash of it): a report already recorded is never counted twice.
    ``received_at`` is when the report was written (its Date, never later than processing).
    Erasing a subscriber deletes their rows (the diagnostic and headers hold the address);
    a report about an erased person that arrives later is kept without them.
    """

    __tablename__ = "bounces"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(BOUNCE_KINDS)})", name="kind"),
        Index("ix_bounces_subscriber_id", "subscriber_id", "kind", "received_at"),
        Index("ix_bounces_issue_id", "issue_id"),
        Index("ix_bounces_delivery_id", "delivery_id"),
        Index("ix_bounces_report_key", "report_key"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    delivery_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    issue_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("issues.id", ondelete="SET NULL")
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    recipient: Mapped[str] = mapped_column(String(320), default="")
    status: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(32), default="")
    diagnostic: Mapped[str] = mapped_column(String(1000), default="")
    matched_by: Mapped[str] = mapped_column(String(16), default="")
    report_key: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(500), default="")
    headers: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DomainBackoff(Base):
    """A receiving domain (or provider, see delivery/reputation.py) that throttled us: no
    worker sends to it before ``until``. ``strikes`` counts throttles in a row (the delay
    doubles with each); a domain throttled in the last hour also gets fewer messages in
    flight at once (``sending.per_domain_concurrency``)."""

    __tablename__ = "domain_backoffs"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    strikes: Mapped[int] = mapped_column(Integer, default=1)
    reply: Mapped[str] = mapped_column(String(500), default="")
    throttled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Secret(Base):
    """A named random key made on first use and shared by every process through the database
    (``verp``: the key that signs VERP tokens, see newsletter.bounces.verp). Hex-encoded."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- engagement (newsletter.tracking) -------------------------------------------------------

TRACKING_KINDS = ("click", "open")


class IssueLink(Base):
    """A link of a sent issue, numbered when the issue is prepared (the same numbers in every
    process: the order in which the links first appear). Index 0 is the honeypot link no
    person sees. A tracking token names (issue, index), never a URL."""

    __tablename__ = "issue_links"

    issue_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(String(2000))


class TrackingEvent(Base):
    """One click on a tracked link or one load of the open pixel.

    ``machine`` is "" for a person, else the rule that found a machine ("user_agent",
    "burst", "honeypot", "head", "prefetch"). ``visitor`` is a keyed hash of the message (the
    issue and its recipient) that makes unique counts possible without naming anyone;
    ``subscriber_id`` is set only when ``[tracking] per_subscriber`` is on. After
    ``retention_days`` both are cleared and the event is only a count.
    """

    __tablename__ = "tracking_events"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(TRACKING_KINDS)})", name="kind"),
        Index("ix_tracking_events_issue_id", "issue_id", "kind", "at"),
        Index("ix_tracking_events_subscriber_id", "subscriber_id"),
        Index("ix_tracking_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    issue_id: Mapped[int] = mapped_column(IdType, ForeignKey("issues.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    link_idx: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    machine: Mapped[str] = mapped_column(String(16), default="")
    visitor: Mapped[str] = mapped_column(String(32), default="")
    subscriber_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE")
    )


class Unsubscribe(Base):
    """An unsubscription counted for the issue whose link or List-Unsubscribe header it came
    from (``issue_id`` NULL when it came from elsewhere), with the optional answer to "why?".
    It names no one: the person's own history is in subscriber_events."""

    __tablename__ = "unsubscribes"
    __table_args__ = (Index("ix_unsubscribes_issue_id", "issue_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("issues.id", ondelete="SET NULL")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(32), default="")


# --- audiences (newsletter.audiences) -------------------------------------------------------


class Tag(Base):
    """A label on subscribers ("customer", "vip"), from imports or `subscriber tag`."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriberTag(Base):
    __tablename__ = "subscriber_tags"
    __table_args__ = (Index("ix_subscriber_tags_tag_id", "tag_id", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Segment(Base):
    """A named audience expression (docs/marketers.md: the segment language)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    expression: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DigestQueue(Base):
    """A post held for a reader's digest: a send-mode feed's post that went to the "every
    post" readers of a list, kept for each reader who chose a weekly or monthly digest of it.
    ``issue_id`` is set when the post is put in that reader's digest (once)."""

    __tablename__ = "digest_queue"
    __table_args__ = (
        UniqueConstraint("list_id", "subscriber_id", "post_id", name="uq_digest_queue_list_id"),
        Index("ix_digest_queue_waiting", "list_id", "cadence", "issue_id"),
        Index("ix_digest_queue_issue", "issue_id", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    list_id: Mapped[int] = mapped_column(IdType, ForeignKey("lists.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    post_id: Mapped[int] = mapped_column(IdType, ForeignKey("posts.id", ondelete="CASCADE"))
    cadence: Mapped[str] = mapped_column(String(16))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    issue_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("issues.id", ondelete="SET NULL")
    )


# --- sequences (newsletter.sequences) -------------------------------------------------------


class Sequence(Base):
    """A welcome or drip series of one list: steps sent to each reader who joins it, each a
    delay after the one before. ``trigger``: "confirm", "join" or "tag:NAME"."""

    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    list_id: Mapped[int] = mapped_column(IdType, ForeignKey("lists.id", ondelete="RESTRICT"))
    trigger: Mapped[str] = mapped_column(String(120))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    mailing_list: Mapped[MailingList] = relationship()


class SequenceStep(Base):
    """One email of a sequence, from a Markdown file; sent through its own issue
    (``issue_id``), whose ledger holds one delivery per reader who reached it. ``position``
    numbers the steps for good (a removed step keeps its number; ``removed_at`` is set)."""

    __tablename__ = "sequence_steps"
    __table_args__ = (
        UniqueConstraint("sequence_id", "position", name="uq_sequence_steps_sequence_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(IdType, ForeignKey("sequences.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    delay_seconds: Mapped[int] = mapped_column(Integer)
    # "HH:MM-HH:MM" in the reader's time zone (their list's when they have none), or None.
    window: Mapped[str | None] = mapped_column(String(11))
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    template: Mapped[str] = mapped_column(String(100), default="")
    html: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(2000), default="")
    issue_id: Mapped[int] = mapped_column(IdType, ForeignKey("issues.id", ondelete="RESTRICT"))
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Enrollment(Base):
    """A reader in a sequence: the next step they are to get (the first step numbered
    ``next_position`` or later) and when (``due_at``; NULL once they are done or left, so the
    daemon's index on it holds only readers with something to come)."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("sequence_id", "subscriber_id", name="uq_enrollments_sequence_id"),
        Index("ix_enrollments_due_at", "due_at"),
        Index("ix_enrollments_subscriber_id", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(IdType, ForeignKey("sequences.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, done, left
    next_position: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- the HTTP API and outgoing webhooks (newsletter.tokens, newsletter.webhooks) -----------


class ApiToken(Base):
    """A bearer token of the HTTP API: only its SHA-256 is kept; ``selector`` (the first
    characters of the token) finds the row, the hash is compared in constant time."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    selector: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One write through the API: who (the token's name), what, when, from where."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(200))  # "POST /api/v1/subscribers"
    target: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Webhook(Base):
    """An outgoing webhook: events POSTed to ``url``, signed per the Standard Webhooks
    specification with ``secret`` ("whsec_" + base64). ``disabled_reason`` is set when its
    deliveries kept failing for a day."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookMessage(Base):
    """An event waiting to reach a webhook (the outbox): written in the transaction of the
    event itself, so nothing is lost if a process dies; delivered at least once, retried with
    a growing delay for a day. ``msg_id`` is the same on every attempt (webhook-id)."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
        Index("ix_webhook_outbox_webhook", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(IdType, ForeignKey("webhooks.id", ondelete="CASCADE"))
    msg_id: Mapped[str] = mapped_column(String(40), unique=True)
    event: Mapped[str] = mapped_column(String(60))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
