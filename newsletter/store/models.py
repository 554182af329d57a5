"""Database models (SQLAlchemy 2 declarative). The migrations in ``migrations/`` mirror them;
a test checks that autogenerate finds no difference.

Times are stored in UTC and come back timezone-aware (``UTCDateTime``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SUBSCRIBER_STATUSES = ("unconfirmed", "active", "unsubscribed", "bounced", "complained")
# Statuses an import or an admin add may never turn back into "active".
SUPPRESSED_STATUSES = ("unsubscribed", "bounced", "complained")
EVENT_KINDS = (
    "subscribed",
    "confirmed",
    "imported",
    "updated",
    "unsubscribed",
    "bounced",
    "complained",
    "erased",
)

# An integer primary key that is a rowid alias on SQLite and a BIGINT elsewhere.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_token() -> str:
    """A random, URL-safe token of 128 bits (unsubscribe, confirm, preferences links)."""
    return secrets.token_urlsafe(16)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
