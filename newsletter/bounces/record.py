"""Recording reports in the store: tie each to a delivery and a subscriber, apply the rules.

    record_report(session, report, rules=..., codec=..., source=...) -> Recorded

Takes the caller's Session and does not commit. Raises nothing of its own: database errors
propagate (the caller's transaction rolls back, the message stays in the mailbox).

Which delivery a report is about, most trustworthy first:

1. its VERP token (the address the bounce came back to, or the returned message's
   Return-Path), checked with the key: exactly one delivery, so one issue and one subscriber;
2. the returned message's Message-ID, which this program makes as
   ``<issue.subscriber.digest@domain>``: the delivery of that issue and subscriber, if the
   Message-ID it recorded is exactly this one;
3. the reported address (Final-Recipient, Original-Recipient, the returned message's To):
   the subscriber with that address, and no particular delivery.

Anything else is recorded as unmatched (no subscriber) and changes nothing.

What a report does (one Bounce row and one subscriber event per matched recipient):

- the delivery: a hard bounce turns a "sent" delivery into "bounced", a final soft failure
  (Action failed, e.g. 5.2.2 mailbox full) into "failed"; a delay changes nothing;
- the subscriber, by the rules of ``[bounces]`` (counting distinct messages, so the three
  "delayed" warnings one message can cause count once): ``hard_bounce_limit`` hard bounces,
  or ``soft_bounce_limit`` soft bounces within ``soft_bounce_window_days``, make an active
  or unconfirmed subscriber "bounced"; ``complaint_limit`` complaints make anyone not yet
  "complained" so. The event is "bounced" / "complained" when the status changed (its detail
  names the rule), else "bounce" / "complaint"; its detail holds the code, the diagnostic,
  the issue, the delivery and the report's Message-ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..config import BounceSettings
from ..errors import InvalidInputError
from ..store.models import Bounce, Delivery, Subscriber, utcnow
from ..subscribers import status as sub_status
from ..subscribers.service import is_suppressed, log_event
from ..subscribers.validate import normalise_email
from .parse import Failure, Report, clean, find_reply, our_message_id
from .verp import VerpCodec

_CODES = re.compile(
    r"(?<![\w.])[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\b)?|(?<![\w.])[245]\.\d{1,3}\.\d{1,3}\b"
)


@dataclass(frozen=True, slots=True)
class Match:
    """Who a report is about. ``by``: "verp", "message-id", "recipient" or "" (nobody)."""

    delivery_id: int | None = None
    issue_id: int | None = None
    subscriber_id: int | None = None
    by: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """A subscriber whose status a report changed."""

    subscriber_id: int
    email: str
    status: str
    rule: str


@dataclass
class Recorded:
    """What recording one report did. ``outcome``: "recorded", "duplicate" (this report was
    recorded before) or "ignored" (not a bounce: nothing written)."""

    outcome: str
    kinds: list[str] = field(default_factory=list)
    unmatched: int = 0
    changes: list[Change] = field(default_factory=list)
    complained_issues: set[int] = field(default_factory=set)  # issues a complaint was about


def record_report(
    session: Session,
    report: Report,
    *,
    rules: BounceSettings,
    codec: VerpCodec | None,
    source: str = "",
    now: datetime | None = None,
) -> Recorded:
    """Record one parsed report and apply the rules (see the module docstring)."""
    if report.category == "other":
        return Recorded("ignored")
    seen = session.scalar(select(Bounce.id).where(Bounce.report_key == report.key).limit(1))
    if seen is not None:
        return Recorded("duplicate")
    now = now or utcnow()
    received_at = min(report.date or now, now)
    message = _match_message(session, report, codec)
    if message.delivery_id is not None:
        # One message went to one recipient: its worst news is the news.
        worst = report.worst
        failures: list[tuple[Failure, Match]] = [(worst, message)] if worst else []
    else:
        failures = [(f, _match_recipient(session, f, report)) for f in report.failures]
    result = Recorded("recorded")
    for failure, match in failures:
        bounce = _add_bounce(session, report, failure, match, source, received_at, now)
        result.kinds.append(failure.kind)
        if failure.kind == "complaint" and bounce.issue_id is not None:
            result.complained_issues.add(bounce.issue_id)
        if match.subscriber_id is None:
            result.unmatched += 1
            continue
        if match.delivery_id is not None:
            _settle_delivery(session, match.delivery_id, failure, now)
        change = _apply_rules(session, bounce, failure, report, rules, now)
        if change is not None:
            result.changes.append(change)
    return result


# --- matching -------------------------------------------------------------------------------


def _match_message(session: Session, report: Report, codec: VerpCodec | None) -> Match:
    if codec is not None:
        delivery_id = codec.first(report.envelope_to)
        if delivery_id is not None:
            row = session.execute(
                select(Delivery.id, Delivery.issue_id, Delivery.subscriber_id).where(
                    Delivery.id == delivery_id
                )
            ).first()
            if row is not None:
                return Match(row.id, row.issue_id, row.subscriber_id, "verp")
    ids = our_message_id(report.original_message_id)
    if ids is not None:
        issue_id, subscriber_id = ids
        row = session.execute(
            select(Delivery.id, Delivery.message_id).where(
                Delivery.issue_id == issue_id, Delivery.subscriber_id == subscriber_id
            )
        ).first()
        if row is not None and row.message_id == report.original_message_id:
            return Match(row.id, issue_id, subscriber_id, "message-id")
    return Match()


def _match_recipient(session: Session, failure: Failure, report: Report) -> Match:
    candidates = [failure.recipient, failure.original_recipient]
    if len(report.failures) == 1:
        candidates += report.original_to
    for address in dict.fromkeys(a for a in candidates if a):
        try:
            key = normalise_email(address).key
        except InvalidInputError:
            key = address.strip().lower()
        subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email_key == key))
        if subscriber_id is not None:
            return Match(None, None, subscriber_id, "recipient")
    return Match()


# --- writing --------------------------------------------------------------------------------


def _add_bounce(
    session: Session,
    report: Report,
    failure: Failure,
    match: Match,
    source: str,
    received_at: datetime,
    now: datetime,
) -> Bounce:
    recipient = failure.recipient
    if not recipient and match.subscriber_id is not None:
        recipient = session.scalar(
            select(Subscriber.email).where(Subscriber.id == match.subscriber_id)
        ) or ""  # fmt: skip
    # About someone who was erased (their delivery lost its subscriber, or the address is
    # on the suppression list): keep the fact for the issue's counts, not their address.
    erased = match.subscriber_id is None and (
        match.delivery_id is not None or (bool(recipient) and _erased(session, recipient))
    )
    bounce = Bounce(
        kind=failure.kind,
        delivery_id=match.delivery_id,
        issue_id=match.issue_id,
        subscriber_id=match.subscriber_id,
        recipient="" if erased else clean(recipient, 320),
        status=failure.status[:16],
        action=clean(failure.action, 32),
        diagnostic="" if erased else clean(failure.diagnostic, 1000),
        matched_by=match.by,
        report_key=report.key[:300],
        source=clean(source, 500),
        headers="" if erased else report.headers,
        received_at=received_at,
        created_at=now,
    )
    session.add(bounce)
    session.flush()
    return bounce


def _erased(session: Session, address: str) -> bool:
    try:
        key = normalise_email(address).key
    except InvalidInputError:
        key = address.strip().lower()
    return is_suppressed(session, key)


def _settle_delivery(session: Session, delivery_id: int, failure: Failure, now: datetime) -> None:
    if failure.kind == "hard":
        outcome = "bounced"
    elif failure.kind == "soft" and failure.action == "failed":
        outcome = "failed"
    else:
        return
    # Like the SMTP transport's results: the code, the enhanced code, the reply's text.
    reply = failure.diagnostic.partition(";")[2] or failure.diagnostic
    text = _CODES.sub(" ", reply)
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == "sent")
        .values(
            status=outcome,
            last_code=find_reply(reply),
            last_enhanced=failure.status[:16],
            last_text=clean(f"{text} (reported by a bounce message)", 500),
            updated_at=now,
        )
    )


def _distinct_messages(session: Session, subscriber_id: int, kind: str, since=None) -> int:
    """How many distinct messages (deliveries; a report without one counts alone) brought
    ``kind`` reports for the subscriber."""
    stmt = select(func.count(func.distinct(func.coalesce(Bounce.delivery_id, -Bounce.id)))).where(
        Bounce.subscriber_id == subscriber_id, Bounce.kind == kind
    )
    if since is not None:
        stmt = stmt.where(Bounce.received_at >= since)
    return session.scalar(stmt) or 0


def _apply_rules(
    session: Session,
    bounce: Bounce,
    failure: Failure,
    report: Report,
    rules: BounceSettings,
    now: datetime,
) -> Change | None:
    subscriber_id = bounce.subscriber_id
    assert subscriber_id is not None
    rule = ""
    becomes = ""
    if failure.kind == "hard":
        n = _distinct_messages(session, subscriber_id, "hard")
        if n >= rules.hard_bounce_limit:
            becomes, rule = "bounced", f"{n} hard bounce(s), limit {rules.hard_bounce_limit}"
    elif failure.kind == "soft":
        days = rules.soft_bounce_window_days
        n = _distinct_messages(session, subscriber_id, "soft", now - timedelta(days=days))
        if n >= rules.soft_bounce_limit:
            becomes = "bounced"
            rule = f"{n} soft bounces in {days} days, limit {rules.soft_bounce_limit}"
    else:
        n = _distinct_messages(session, subscriber_id, "complaint")
        if n >= rules.complaint_limit:
            becomes, rule = "complained", f"{n} complaint(s), limit {rules.complaint_limit}"
    changed = False
    if becomes:
        allowed = Subscriber.status.in_(sub_status.sources(becomes))
        changed = bool(
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id, allowed)
                .values(status=becomes, updated_at=now)
            ).rowcount
        )
    detail: dict[str, Any] = {
        "type": failure.kind,
        "status": failure.status,
        "action": failure.action,
        "diagnostic": clean(failure.diagnostic, 300),
        "issue": bounce.issue_id,
        "delivery": bounce.delivery_id,
        "matched_by": bounce.matched_by,
        "report": report.message_id or report.key,
        "bounce": bounce.id,
    }
    if changed:
        detail["rule"] = rule
        kind = becomes
    else:
        kind = "complaint" if failure.kind == "complaint" else "bounce"
    log_event(session, subscriber_id, kind, source=report.format, detail=detail, at=now)
    if not changed:
        return None
    email = session.scalar(select(Subscriber.email).where(Subscriber.id == subscriber_id)) or ""
    return Change(subscriber_id, email, becomes, rule)
