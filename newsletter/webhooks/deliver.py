"""Delivering the outbox: claim due messages (a lease, SKIP LOCKED on PostgreSQL), POST
each signed to its webhook outside any transaction, record the answer. A 2xx is delivered; a
message to a webhook that answered again is tried at once; anything else is tried again after
a growing delay (RETRY_DELAYS) until ``[webhooks] retry_hours`` after it was made, and then its
webhook is disabled with a logged notice (`webhook ls` shows why)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ..config import WebhookSettings
from ..errors import InvalidInputError
from ..store.models import Webhook, WebhookMessage, utcnow
from . import signing, targets

log = logging.getLogger("newsletter.webhooks")
RETRY_DELAYS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)  # seconds, then hourly
BATCH = 50


@dataclass(frozen=True)
class Job:
    message_id: int
    msg_id: str
    body: str
    url: str
    secret: str
    webhook_id: int
    webhook: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str


def _claim(session: Session, settings: WebhookSettings, now: datetime, limit: int) -> list[Job]:
    due = (
        select(WebhookMessage.id)
        .join(Webhook, Webhook.id == WebhookMessage.webhook_id)
        .where(
            WebhookMessage.status == "pending",
            WebhookMessage.next_attempt_at <= now,
            Webhook.enabled.is_(True),
        )
        .order_by(WebhookMessage.id)
        .limit(limit)
        .with_for_update(of=WebhookMessage, skip_locked=True)
    )
    ids = list(session.scalars(due))
    if not ids:
        return []
    lease = now + timedelta(seconds=2 * settings.timeout_seconds + 5)
    session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.id.in_(ids))
        .values(next_attempt_at=lease, attempts=WebhookMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(WebhookMessage, Webhook)
        .join(Webhook, Webhook.id == WebhookMessage.webhook_id)
        .where(WebhookMessage.id.in_(ids))
        .order_by(WebhookMessage.id)
    )
    return [
        Job(m.id, m.msg_id, m.body, w.url, w.secret, w.id, w.name, m.attempts, m.created_at)
        for m, w in rows
    ]


def post(client: httpx.Client, job: Job, settings: WebhookSettings) -> Outcome:
    """One signed POST. Never raises."""
    try:
        targets.check(job.url, allow_private=settings.allow_private)
    except InvalidInputError as exc:
        return Outcome(False, None, str(exc))
    headers = signing.headers(job.secret, job.msg_id, int(time.time()), job.body)
    try:
        answer = client.post(job.url, content=job.body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= answer.status_code < 300:
        return Outcome(True, answer.status_code, "")
    return Outcome(False, answer.status_code, f"answered {answer.status_code}")


def _settle(
    session: Session, job: Job, outcome: Outcome, settings: WebhookSettings, now: datetime
) -> None:
    row = session.get(WebhookMessage, job.message_id)
    if row is None:  # the webhook was removed meanwhile
        return
    row.last_status, row.last_error = outcome.status, outcome.error
    if outcome.ok:
        row.status, row.delivered_at = "sent", now
        # The receiver is back: what waits for it goes now, not after its own delay.
        session.execute(
            update(WebhookMessage)
            .where(
                WebhookMessage.webhook_id == job.webhook_id,
                WebhookMessage.status == "pending",
                WebhookMessage.attempts > 0,
                WebhookMessage.next_attempt_at > now,
                WebhookMessage.id != job.message_id,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        return
    if now - job.created_at >= timedelta(hours=settings.retry_hours):
        row.status = "failed"
        hook = session.get(Webhook, job.webhook_id)
        if hook is not None and hook.enabled:
            hook.enabled = False
            hook.disabled_reason = (
                f"disabled {now.isoformat(timespec='seconds')}: messages failed for "
                f"{settings.retry_hours:g} h ({outcome.error})"
            )[:500]
            log.warning("webhook.disabled name=%s reason=%s", job.webhook, hook.disabled_reason)
        return
    delay = RETRY_DELAYS[min(job.attempts - 1, len(RETRY_DELAYS) - 1)]
    row.next_attempt_at = now + timedelta(seconds=delay)


def deliver_due(
    sessions: sessionmaker[Session],
    settings: WebhookSettings,
    *,
    limit: int = BATCH,
    client: httpx.Client | None = None,
) -> int:
    """Deliver what is due now, a batch at a time; returns how many were attempted."""
    own = client is None
    client = client or httpx.Client(timeout=settings.timeout_seconds, follow_redirects=False)
    attempted = 0
    try:
        while True:
            with sessions() as session, session.begin():
                jobs = _claim(session, settings, utcnow(), limit)
            for job in jobs:
                outcome = post(client, job, settings)
                with sessions() as session, session.begin():
                    _settle(session, job, outcome, settings, utcnow())
                if not outcome.ok:
                    log.info("webhook.retry name=%s msg=%s attempt=%s error=%s", job.webhook,
                             job.msg_id, job.attempts, outcome.error)  # fmt: skip
            attempted += len(jobs)
            if len(jobs) < limit:
                return attempted
    finally:
        if own:
            client.close()
