"""Column types and value sets the models and the Core queries share.

Importable without SQLAlchemy's ORM (``sqlalchemy.orm`` and the declarative models cost
about 130 ms of a command's start): commands that only read, such as `subscriber list`, use
these with Core queries (see store/subscribers.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator

SUBSCRIBER_STATUSES = ("unconfirmed", "active", "unsubscribed", "bounced", "complained")
# Statuses an import or an admin add may never turn back into "active".
SUPPRESSED_STATUSES = ("unsubscribed", "bounced", "complained")


def utcnow() -> datetime:
    return datetime.now(UTC)


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
