"""Reading the bounce history: `bounces ls`, and the counts `issue show` can add.

Each function takes the caller's Session and only reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInputError
from ..store.models import BOUNCE_KINDS, Bounce, Subscriber


def iter_bounces(
    session: Session,
    *,
    kind: str | None = None,
    subscriber_id: int | None = None,
    issue_id: int | None = None,
    limit: int | None = None,
    chunk: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Recorded bounces and complaints, newest first, as plain rows (streamed).

    Raises InvalidInputError for an unknown ``kind``.
    """
    if kind is not None and kind not in BOUNCE_KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(BOUNCE_KINDS)}")
    stmt = (
        select(Bounce, Subscriber.email, Subscriber.status)
        .outerjoin(Subscriber, Subscriber.id == Bounce.subscriber_id)
        .order_by(Bounce.received_at.desc(), Bounce.id.desc())
        .execution_options(yield_per=chunk)
    )
    if kind is not None:
        stmt = stmt.where(Bounce.kind == kind)
    if subscriber_id is not None:
        stmt = stmt.where(Bounce.subscriber_id == subscriber_id)
    if issue_id is not None:
        stmt = stmt.where(Bounce.issue_id == issue_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    for b, email, status in session.execute(stmt):
        yield {
            "id": b.id,
            "received_at": b.received_at.isoformat(),
            "kind": b.kind,
            "email": email or b.recipient,
            "subscriber_id": b.subscriber_id,
            "subscriber_status": status,
            "issue_id": b.issue_id,
            "delivery_id": b.delivery_id,
            "status": b.status,
            "action": b.action,
            "diagnostic": b.diagnostic,
            "matched_by": b.matched_by,
            "report": b.report_key,
            "source": b.source,
        }
