"""The webhook outbox: an event becomes one row per webhook that wants it, written with the
caller's Session, in the transaction of the event itself (nothing is lost if the process dies
before it is delivered; newsletter.webhooks delivers it). Nothing here commits."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Subscriber, Webhook, WebhookMessage, utcnow

EVENTS = (
    "subscriber.created",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "issue.sent",
    "link.clicked",
)
TEST_EVENT = "webhook.test"

# Subscriber history kinds (subscriber_events.kind) that are webhook events.
_SUBSCRIBER_KINDS = {
    "confirmed": "subscriber.confirmed",
    "unsubscribed": "subscriber.unsubscribed",
    "bounced": "subscriber.bounced",
    "complained": "subscriber.complained",
}


def body(event: str, data: dict[str, Any], at: datetime) -> str:
    """The JSON a webhook receives: ``{"type", "timestamp", "data"}``."""
    return json.dumps(
        {"type": event, "timestamp": at.isoformat(), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def wanted(session: Session, event: str) -> list[int]:
    """The enabled webhooks that want ``event`` (one small query: ask it before building a
    payload that needs more)."""
    rows = session.execute(select(Webhook.id, Webhook.events).where(Webhook.enabled.is_(True)))
    return [i for i, events in rows if event in events]


def emit(
    session: Session,
    event: str,
    data: dict[str, Any],
    *,
    at: datetime | None = None,
    webhook_ids: list[int] | None = None,
) -> int:
    """Queue ``event`` for every enabled webhook that wants it (``webhook_ids``: those, asked
    already with ``wanted``). Returns how many messages were queued."""
    return emit_each(session, event, [data], at=at, webhook_ids=webhook_ids)


def emit_each(
    session: Session,
    event: str,
    items: list[dict[str, Any]],
    *,
    at: datetime | None = None,
    webhook_ids: list[int] | None = None,
) -> int:
    """``emit`` for several events of one type (one look at the webhooks)."""
    ids = wanted(session, event) if webhook_ids is None else webhook_ids
    if not ids or not items:
        return 0
    at = at or utcnow()
    for data in items:
        text = body(event, data, at)
        for webhook_id in ids:
            session.add(
                WebhookMessage(
                    webhook_id=webhook_id,
                    msg_id=f"msg_{secrets.token_urlsafe(18)}",
                    event=event,
                    body=text,
                    next_attempt_at=at,
                    created_at=at,
                )
            )
    session.flush()
    return len(ids) * len(items)


def subscriber_data(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "lists": sorted(m.name for m in sub.lists),
    }


def subscriber_event(session: Session, kind: str, subscriber_id: int, at: datetime) -> None:
    """The webhook event of a subscriber history entry, if it is one and a webhook wants it."""
    event = _SUBSCRIBER_KINDS.get(kind)
    ids = wanted(session, event) if event is not None else []
    sub = session.get(Subscriber, subscriber_id) if ids else None
    if sub is not None:
        emit(session, event, subscriber_data(sub), at=at, webhook_ids=ids)  # type: ignore[arg-type]


def subscriber_created(session: Session, sub: Subscriber, *, new: bool = True) -> None:
    """``subscriber.created`` for ``sub`` if ``new``. The look for webhooks is made either way,
    so that a sign-up of a known address and of a new one run the same statements (without
    a webhook that wants the event)."""
    ids = wanted(session, "subscriber.created")
    if ids and new:
        emit(session, "subscriber.created", subscriber_data(sub), webhook_ids=ids)
