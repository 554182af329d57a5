"""Webhook use cases: add (the secret is returned once), list, remove, send a test event now,
and the log of one webhook's messages. Raise InvalidInputError and NotFoundError."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import WebhookSettings
from ..errors import InvalidInputError, NotFoundError
from ..store import outbox
from ..store.models import Webhook, WebhookMessage, utcnow
from . import deliver, signing, targets

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def normalise_events(events: Iterable[str]) -> list[str]:
    wanted: set[str] = set()
    for raw in events:
        for event in (e.strip() for e in raw.split(",")):
            if not event:
                continue
            if event == "all":
                wanted |= set(outbox.EVENTS)
            elif event in outbox.EVENTS:
                wanted.add(event)
            else:
                raise InvalidInputError(
                    f"unknown event {event!r} (events: {', '.join(outbox.EVENTS)})"
                )
    if not wanted:
        raise InvalidInputError(f"give --events (one or more of: {', '.join(outbox.EVENTS)})")
    return sorted(wanted)


def add_webhook(
    session: Session,
    settings: WebhookSettings,
    url: str,
    events: Iterable[str],
    *,
    name: str | None = None,
) -> tuple[Webhook, str]:
    """A new webhook; returns it and its secret (shown once)."""
    url = targets.check(url, allow_private=settings.allow_private)
    wanted = normalise_events(events)
    if name is None:
        host = re.sub(r"[^A-Za-z0-9_.-]", "-", urlsplit(url).hostname or "hook")
        taken = set(session.scalars(select(Webhook.name)))
        name, n = host, 1
        while name in taken:
            n += 1
            name = f"{host}-{n}"
    if not _NAME.fullmatch(name):
        raise InvalidInputError(f"webhook name {name!r}: use letters, digits, '.', '-' and '_'")
    if session.scalar(select(Webhook.id).where(Webhook.name == name)) is not None:
        raise InvalidInputError(f"a webhook named {name!r} exists already")
    secret = signing.new_secret()
    hook = Webhook(name=name, url=url, events=wanted, secret=secret)
    session.add(hook)
    session.flush()
    return hook, secret


def get_webhook(session: Session, name: str) -> Webhook:
    hook = session.scalar(select(Webhook).where(Webhook.name == name))
    if hook is None:
        raise NotFoundError(f"no webhook named {name!r} (newsletter webhook ls)")
    return hook


def list_webhooks(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "name": h.name,
            "url": h.url,
            "events": h.events,
            "enabled": h.enabled,
            "disabled_reason": h.disabled_reason,
            "created_at": h.created_at.isoformat(),
        }
        for h in session.scalars(select(Webhook).order_by(Webhook.name))
    ]


def remove_webhook(session: Session, name: str) -> None:
    session.delete(get_webhook(session, name))
    session.flush()


def message_log(session: Session, name: str, *, limit: int = 50) -> list[dict[str, Any]]:
    hook = get_webhook(session, name)
    rows = session.scalars(
        select(WebhookMessage)
        .where(WebhookMessage.webhook_id == hook.id)
        .order_by(WebhookMessage.id.desc())
        .limit(limit)
    )
    return [
        {
            "msg_id": m.msg_id,
            "event": m.event,
            "status": m.status,
            "attempts": m.attempts,
            "created_at": m.created_at.isoformat(),
            "delivered_at": m.delivered_at.isoformat() if m.delivered_at else None,
            "next_attempt_at": m.next_attempt_at.isoformat() if m.status == "pending" else None,
            "last_status": m.last_status,
            "last_error": m.last_error,
        }
        for m in rows
    ]


def send_test(session: Session, settings: WebhookSettings, name: str) -> deliver.Outcome:
    """POST a "webhook.test" event to the webhook now (not through the outbox)."""
    hook = get_webhook(session, name)
    now = utcnow()
    job = deliver.Job(
        0, "msg_test_" + now.strftime("%Y%m%d%H%M%S"),
        outbox.body(outbox.TEST_EVENT, {"webhook": hook.name}, now), hook.url, hook.secret,
        hook.id, hook.name, 1, now,
    )  # fmt: skip
    with httpx.Client(timeout=settings.timeout_seconds, follow_redirects=False) as client:
        return deliver.post(client, job, settings)
