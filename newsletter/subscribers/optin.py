"""Subscriber self-service: sign-up with double opt-in, confirmation, the token links of every
email (unsubscribe with its optional "why?", preferences, data export, erasure) and the
clean-up of expired sign-ups.

The web service calls these; each takes the caller's Session and commits nothing. Times are
passed in (``now``) so the clock stays at the edge.

Links and tokens:

- A subscriber's ``token`` (128 random bits, in every email's unsubscribe and preferences
  URL) is found by its first ``TOKEN_SELECTOR_LENGTH`` characters through an expression index
  and then compared whole with ``hmac.compare_digest``.
- A confirmation link carries its own token (192 bits). The store keeps its first characters
  (``selector``) and the SHA-256 of the whole (``verifier``), compared in constant time: a
  copy of the database holds no working confirmation link.

Sign-ups answer the same whatever the store knows about the address (new, unconfirmed,
active, unsubscribed, bounced, erased, in the cool-down), and take the same time: every
sign-up runs the same statements (the writes of one that must store nothing are rolled back
to a savepoint). Only the email that goes out, or not, differs, and it is sent after the
answer. Per-IP limits count an IPv6 client by its network (``[web] ipv6_prefix``, /64), so
one host cannot step around them with the addresses of its own prefix.

Raises InvalidEmailError (a bad address), InvalidInputError (a list that is not offered, a
"why?" answer that is not one of UNSUBSCRIBE_REASONS), NotFoundError (no subscriber or
confirmation has that token: the web answers 404) and RateLimitedError (too many sign-up
requests).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, exists, func, literal_column, select, update
from sqlalchemy.orm import Session

from ..config import WebSettings
from ..errors import InvalidInputError, NotFoundError, RateLimitedError
from ..store import outbox, ratelimits
from ..store import subscribers as store_subscribers
from ..store import tracking as store_tracking
from ..store.models import (
    SUPPRESSED_STATUSES,
    TOKEN_SELECTOR_LENGTH,
    Confirmation,
    Issue,
    MailingList,
    Membership,
    RateLimit,
    Subscriber,
    SubscriberEvent,
)
from . import enrol
from . import status as sub_status
from .preferences import zone_or_none
from .service import erase, is_suppressed, log_event, person_data, unsubscribe
from .validate import clean_name, normalise_email

SOURCE = "web"
"""``Subscriber.source`` of people who signed up on the web: only they expire unconfirmed."""

CONFIRM_SELECTOR_LENGTH = 12
EXPIRED_LINK_MEMORY = timedelta(days=30)
"""How long a used or expired confirmation link is still recognised (and answered politely)
before its row is deleted; after that it gets a 404 like any unknown link."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_VERSION = re.compile(r"[A-Za-z0-9._:-]{1,40}")
_NOT_FOUND = "no such link"  # the same message for every unknown or tampered token
_ISSUE_REF = re.compile(r"[0-9]{1,18}")  # below 2**63: fits every database's id column

UNSUBSCRIBE_REASONS: dict[str, str] = {
    "too_many": "Too many emails",
    "not_relevant": "Not what I'm interested in",
    "never_signed_up": "I never signed up",
    "other": "Something else",
}
"""The answers the unsubscribe page offers to "why?": the key is what is stored (at most 32
characters) and counted per issue, the value what the page shows."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OptInPolicy:
    """The web sign-up rules (from ``[web]``): which lists are offered, how long a link
    lives, the cool-down between confirmation emails, and the request limits."""

    lists: tuple[str, ...] = ()
    consent_version: str = "1"
    expiry: timedelta = timedelta(hours=48)
    cooldown: timedelta = timedelta(minutes=15)
    limit_per_ip: int = 10
    limit_per_address: int = 5
    window: timedelta = timedelta(hours=1)
    ipv6_prefix: int = 64

    @classmethod
    def from_settings(cls, web: WebSettings) -> OptInPolicy:
        return cls(
            lists=tuple(web.lists),
            consent_version=web.consent_version,
            expiry=timedelta(hours=web.confirm_expiry_hours),
            cooldown=timedelta(seconds=web.confirm_cooldown_seconds),
            limit_per_ip=web.signup_limit_per_ip,
            limit_per_address=web.signup_limit_per_address,
            window=timedelta(seconds=web.signup_limit_window_seconds),
            ipv6_prefix=web.ipv6_prefix,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SignupRequest:
    """One sign-up as a form or the JSON API sent it, with what the request tells about it.

    ``honeypot`` is the hidden field people never see; ``consent_version`` the version the
    form says it showed (the configured one if empty or malformed).
    """

    email: str
    name: str = ""
    lists: tuple[str, ...] = ()
    ip: str = ""
    user_agent: str = ""
    source_page: str = ""
    consent_version: str = ""
    channel: Literal["form", "api"] = "form"
    honeypot: str = ""
    timezone: str = ""  # the browser's zone (the form's hidden field); kept if we know it


@dataclass(frozen=True, slots=True)
class ConfirmationMail:
    """A confirmation email to send once the transaction has committed."""

    confirmation_id: int
    email: str
    name: str
    token: str


ConfirmOutcome = Literal["confirmed", "already", "expired"]


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    """What a confirmation link did. ``token`` is the subscriber's link token (for the
    preferences link on the answer page), empty when the person no longer exists."""

    outcome: ConfirmOutcome
    token: str = ""


# --- rate limits ---------------------------------------------------------------------------


def _hashed(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode('utf-8')).hexdigest()[:40]}"


def count_request(
    session: Session, kind: str, who: str, *, limit: int, window: timedelta, now: datetime
) -> None:
    """Count one request of ``kind`` (e.g. "signup-ip") by ``who`` in a fixed window shared
    by every process (an upsert, so concurrent requests are counted exactly).

    Raises RateLimitedError when this request is over ``limit``; the caller's rollback then
    leaves the counter at the limit, so the window is not stretched by refused requests.
    """
    hits, start = ratelimits.count_hit(session, _hashed(kind, who), window=window, now=now)
    if hits > limit:
        retry_after = max(1, int((start + window - now).total_seconds() + 0.999))
        what = "from this address" if kind.endswith("ip") else "for this email address"
        raise RateLimitedError(what, retry_after)


def client_network(ip: str, ipv6_prefix: int) -> str:
    """What per-IP limits count a client by: an IPv4 address itself (also when written as an
    IPv4-mapped IPv6 address), an IPv6 address's ``/ipv6_prefix`` network (a host is given a
    whole /64, so counting single IPv6 addresses would let it sign up without limit), and
    anything that is not an address (no client known) as it is."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip.strip()[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network((address, ipv6_prefix), strict=False))
    return str(address)


def count_signup_ip(session: Session, ip: str, policy: OptInPolicy, *, now: datetime) -> None:
    """Count one sign-up request from ``ip`` (by ``client_network``) against
    ``policy.limit_per_ip``. Raises RateLimitedError beyond it."""
    count_request(
        session,
        "signup-ip",
        client_network(ip, policy.ipv6_prefix),
        limit=policy.limit_per_ip,
        window=policy.window,
        now=now,
    )


# --- sign-up -------------------------------------------------------------------------------


def _offered_lists(requested: tuple[str, ...], policy: OptInPolicy) -> list[str]:
    """The lists a sign-up joins: the ones asked for (each must be offered), else the first
    offered list, else none. Raises InvalidInputError for a list that is not offered."""
    chosen = list(dict.fromkeys(n.strip() for n in requested if n.strip()))
    for name in chosen:
        if name not in policy.lists:
            raise InvalidInputError(f"there is no list {name[:100]!r} to subscribe to")
    if not chosen and policy.lists:
        chosen = [policy.lists[0]]
    return chosen


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _subscriber_for(session: Session, email: str, key: str, name: str) -> Subscriber:
    """The subscriber with this address, inserted unconfirmed first if there is none: one
    insert that does nothing for a known address (so a known and a new one take the same
    statements), and resolves a concurrent sign-up of the same new address by the unique
    email_key."""
    values = {"email": email, "email_key": key, "name": name, "status": sub_status.UNCONFIRMED}
    added = store_subscribers.add_if_new(session, values | {"attributes": {}, "source": SOURCE})
    sub = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).one()
    outbox.subscriber_created(session, sub, new=added)
    return sub


def request_signup(
    session: Session, req: SignupRequest, policy: OptInPolicy, *, now: datetime
) -> ConfirmationMail | None:
    """Record a sign-up and return the confirmation email to send, or None to send nothing.

    Nothing is sent (and, except for the request counter, nothing stored) for a filled
    honeypot, an erased, bounced or complained address, or an address that got a
    confirmation email within the cool-down. Anyone else gets a new link: a new person is
    stored unconfirmed with a "subscribed" consent event (time, IP, user agent, source page,
    consent text version, lists); an existing subscriber's name and lists change only when
    they confirm.

    Every case runs the same statements, so the time of the answer does not tell whether
    the address is known: the person, the link and the event are written in a savepoint,
    which is rolled back when nothing may be stored.

    Raises InvalidEmailError, InvalidInputError (a list not offered) and RateLimitedError
    (more than ``policy.limit_per_address`` requests for this address in the window).
    """
    address = normalise_email(req.email)
    name = clean_name(req.name)
    lists = _offered_lists(req.lists, policy)
    count_request(
        session,
        "signup-address",
        address.key,
        limit=policy.limit_per_address,
        window=policy.window,
        now=now,
    )
    suppressed = is_suppressed(session, address.key)  # asked even for a honeypot
    savepoint = session.begin_nested()
    sub = _subscriber_for(session, address.email, address.key, name)
    recent = select(Confirmation.id).where(
        Confirmation.subscriber_id == sub.id, Confirmation.created_at > now - policy.cooldown
    )
    in_cooldown = session.scalar(recent.limit(1)) is not None
    refused = (
        suppressed
        or in_cooldown
        or bool(req.honeypot.strip())
        or sub.status in ("bounced", "complained")
    )
    version = req.consent_version.strip()
    consent = {
        "method": "double-opt-in",
        "channel": req.channel,
        "requested_at": now.isoformat(),
        "ip": req.ip[:64],
        "user_agent": req.user_agent[:300],
        "source_page": req.source_page[:500],
        "consent_version": version if _VERSION.fullmatch(version) else policy.consent_version,
        "name": name,
        "timezone": zone_or_none(req.timezone),
    }
    token = secrets.token_urlsafe(24)
    confirmation = Confirmation(
        selector=token[:CONFIRM_SELECTOR_LENGTH],
        verifier=_digest(token),
        subscriber_id=sub.id,
        lists=lists,
        consent=consent,
        created_at=now,
        expires_at=now + policy.expiry,
    )
    session.add(confirmation)
    detail = {k: v for k, v in consent.items() if k not in ("ip", "requested_at", "name")}
    log_event(
        session,
        sub.id,
        "subscribed",
        source=(req.source_page or SOURCE)[:200],
        ip=req.ip[:64],
        detail=detail | {"lists": lists},
        at=now,
    )
    session.flush()
    mail = ConfirmationMail(confirmation.id, sub.email, name or sub.name, token)
    if refused:
        savepoint.rollback()
        return None
    savepoint.commit()
    return mail


def forget_confirmation(session: Session, confirmation_id: int) -> None:
    """Delete a confirmation whose email could not be sent, so the cool-down does not keep
    the person from trying again (the unconfirmed person then expires as usual)."""
    session.execute(delete(Confirmation).where(Confirmation.id == confirmation_id))


# --- confirmation --------------------------------------------------------------------------


def find_confirmation(session: Session, token: str) -> Confirmation:
    """The confirmation whose link carries ``token``. Raises NotFoundError otherwise (also
    for a malformed or tampered token); the comparison takes constant time."""
    if not _TOKEN.fullmatch(token):
        raise NotFoundError(_NOT_FOUND)
    row = session.scalar(
        select(Confirmation).where(Confirmation.selector == token[:CONFIRM_SELECTOR_LENGTH])
    )
    expected = row.verifier if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _digest(token)) or row is None:
        raise NotFoundError(_NOT_FOUND)
    return row


def confirmation_state(confirmation: Confirmation, *, now: datetime) -> ConfirmOutcome | None:
    """ "already" (used), "expired" (too late, or the person is gone), else None (usable)."""
    if confirmation.used_at is not None:
        return "already"
    if confirmation.expires_at <= now or confirmation.subscriber_id is None:
        return "expired"
    return None


def confirm(
    session: Session,
    token: str,
    policy: OptInPolicy,
    *,
    ip: str,
    user_agent: str,
    now: datetime,
) -> ConfirmResult:
    """Use a confirmation link: the person becomes active (once), joins the lists they asked
    for (those still offered) and a "confirmed" consent event records when, from where and
    what they had agreed to. A used link answers "already", a late one "expired".

    Raises NotFoundError for an unknown or tampered token.
    """
    confirmation = find_confirmation(session, token)
    state = confirmation_state(confirmation, now=now)
    sub = (
        session.get(Subscriber, confirmation.subscriber_id) if confirmation.subscriber_id else None
    )
    if state == "already":
        return ConfirmResult("already", sub.token if sub is not None else "")
    if state == "expired" or sub is None or sub.status in ("bounced", "complained"):
        return ConfirmResult("expired")
    consent = confirmation.consent or {}
    if sub.status != "active":
        sub_status.change(sub, sub_status.ACTIVE)
        sub.confirmed_at = now
        sub.unsubscribed_at = None
    if consent.get("name"):
        sub.name = clean_name(consent["name"])
    if zone := zone_or_none(consent.get("timezone") or ""):
        sub.timezone = zone
    joined = _join(session, sub, [n for n in confirmation.lists if n in policy.lists])
    enrol.confirmed(session, sub.id, [m.id for m in sub.lists if m.name in joined], now)
    confirmation.used_at = now
    detail = {
        "method": "double-opt-in",
        "user_agent": user_agent[:300],
        "lists": joined,
        "requested_at": consent.get("requested_at"),
        "request_ip": consent.get("ip", ""),
        "request_user_agent": consent.get("user_agent", ""),
        "source_page": consent.get("source_page", ""),
        "consent_version": consent.get("consent_version", policy.consent_version),
    }
    log_event(session, sub.id, "confirmed", source=SOURCE, ip=ip[:64], detail=detail, at=now)
    session.flush()
    return ConfirmResult("confirmed", sub.token)


def _join(session: Session, sub: Subscriber, names: list[str]) -> list[str]:
    """Add ``sub`` to the named lists that exist; return the names of every list joined."""
    if not names:
        return []
    lists = session.scalars(select(MailingList).where(MailingList.name.in_(names))).all()
    current = set(
        session.scalars(select(Membership.list_id).where(Membership.subscriber_id == sub.id))
    )
    for mlist in lists:
        if mlist.id not in current:
            session.add(Membership(list_id=mlist.id, subscriber_id=sub.id))
    session.flush()
    session.expire(sub, ["lists"])
    return sorted(m.name for m in lists)


# --- the links in every email --------------------------------------------------------------


def subscriber_by_token(session: Session, token: str) -> Subscriber:
    """The subscriber whose unsubscribe / preferences links carry ``token``.

    The database looks up only the token's first characters (an index on them); the whole
    token is compared with ``hmac.compare_digest``. Raises NotFoundError for an unknown,
    malformed or tampered token, with the same message in every case.
    """
    if not _TOKEN.fullmatch(token):
        raise NotFoundError(_NOT_FOUND)
    selector = func.substr(
        Subscriber.token, literal_column("1"), literal_column(str(TOKEN_SELECTOR_LENGTH))
    )
    found = None
    for sub in session.scalars(select(Subscriber).where(selector == token[:TOKEN_SELECTOR_LENGTH])):
        if hmac.compare_digest(sub.token.encode("ascii"), token.encode("ascii")):
            found = sub
    if found is None:
        raise NotFoundError(_NOT_FOUND)
    return found


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """What an unsubscribe link did: the person, and the id of the unsubscription it counted
    (the ``Unsubscribe`` row that the "why?" answer goes on), None when this request changed
    nothing (already unsubscribed, bounced or complained)."""

    subscriber: Subscriber
    counted: int | None


def issue_ref(text: str) -> int | None:
    """The issue an unsubscribe URL's ``?issue=`` names: a positive integer, else None
    (nothing, garbage or an absurd number is "not from an issue", never an error)."""
    text = text.strip()
    if not _ISSUE_REF.fullmatch(text) or int(text) == 0:
        return None
    return int(text)


def unsubscribe_by_token(
    session: Session,
    token: str,
    *,
    method: Literal["one-click", "page"],
    ip: str,
    issue_id: int | None = None,
) -> Unsubscribed:
    """Unsubscribe the owner of ``token``: idempotent (a second call changes nothing and logs
    nothing), and a bounced or complained person stays as they are (already never mailed).
    Takes effect for the next delivery claimed.

    An unsubscription this call makes is counted for ``issue_id`` (the issue whose link or
    List-Unsubscribe header was used; one that does not exist counts as no issue). The count
    names no one. Raises NotFoundError for a bad token."""
    sub = subscriber_by_token(session, token)
    counted = None
    if sub.status not in SUPPRESSED_STATUSES and unsubscribe(
        session, sub, source=f"web-{method}", ip=ip[:64]
    ):
        counted = store_tracking.add_unsubscribe(session, _existing_issue(session, issue_id))
    return Unsubscribed(sub, counted)


def _existing_issue(session: Session, issue_id: int | None) -> int | None:
    if issue_id is None:
        return None
    return session.scalar(select(Issue.id).where(Issue.id == issue_id))


def record_unsubscribe_reason(session: Session, unsubscribe_id: int, reason: str) -> bool:
    """Put the answer to "why?" on the unsubscription ``unsubscribe_id`` (which the caller
    has verified the person was given): once, a later answer changes nothing; an empty
    answer records nothing. Returns whether it was recorded. Raises InvalidInputError for
    an answer that is not one of UNSUBSCRIBE_REASONS."""
    if not reason:
        return False
    if reason not in UNSUBSCRIBE_REASONS:
        raise InvalidInputError("that is not one of the answers offered")
    return store_tracking.set_unsubscribe_reason(session, unsubscribe_id, reason)


def editable_lists(sub: Subscriber, policy: OptInPolicy) -> list[str]:
    """The lists the preferences page offers ``sub``: every list offered to visitors plus the
    lists they are on (they may leave any list, but join only offered ones)."""
    return list(dict.fromkeys([*policy.lists, *(m.name for m in sub.lists)]))


def update_preferences(
    session: Session,
    sub: Subscriber,
    policy: OptInPolicy,
    *,
    name: str | None,
    lists: list[str],
    ip: str,
    no_tracking: bool | None = None,
) -> bool:
    """Set a subscriber's name (None: leave it), lists and "don't track my clicks" (None:
    leave it) from the preferences page; logs an "updated" event when something changed and
    returns whether it did. Raises InvalidInputError for a list that the page does not offer
    them."""
    allowed = editable_lists(sub, policy)
    wanted = list(dict.fromkeys(n.strip() for n in lists if n.strip()))
    for list_name in wanted:
        if list_name not in allowed:
            raise InvalidInputError(f"there is no list {list_name[:100]!r} to join")
    before = sorted(m.name for m in sub.lists)
    new_name = sub.name if name is None else clean_name(name)
    changed: dict[str, Any] = {}
    if new_name != sub.name:
        sub.name = new_name
        changed["name"] = True
    if sorted(wanted) != before:
        mlists = session.scalars(select(MailingList).where(MailingList.name.in_(allowed))).all()
        keep = {m.id for m in mlists if m.name in wanted}
        leave = [m.id for m in mlists if m.name not in wanted]
        if leave:
            session.execute(
                delete(Membership).where(
                    Membership.subscriber_id == sub.id, Membership.list_id.in_(leave)
                )
            )
        _join(session, sub, [m.name for m in mlists if m.id in keep])
        session.expire(sub, ["lists"])
        changed["lists"] = sorted(m.name for m in sub.lists)
    if no_tracking is not None and no_tracking != sub.no_tracking:
        sub.no_tracking = no_tracking
        changed["no_tracking"] = no_tracking
    if changed:
        log_event(session, sub.id, "updated", source="web-preferences", ip=ip[:64], detail=changed)
        session.flush()
    return bool(changed)


def person_export(session: Session, sub: Subscriber) -> dict[str, Any]:
    """Everything stored about ``sub``: ``person_data`` (fields, lists, every event, i.e. the
    consent records, and their own clicks and opens if any were tied to them) plus the
    confirmation links sent to them with what each recorded."""
    rows = session.scalars(
        select(Confirmation).where(Confirmation.subscriber_id == sub.id).order_by(Confirmation.id)
    )
    return person_data(sub) | {
        "confirmations": [
            {
                "sent_at": c.created_at.isoformat(),
                "expires_at": c.expires_at.isoformat(),
                "used_at": c.used_at.isoformat() if c.used_at else None,
                "lists": c.lists,
                "consent": c.consent,
            }
            for c in rows
        ]
    }


def erase_self(session: Session, sub: Subscriber) -> None:
    """GDPR erasure asked for by the person: their confirmations, events (tracking events
    too), memberships and row are deleted; only the suppression hash of the address stays
    (``service.erase``)."""
    session.execute(delete(Confirmation).where(Confirmation.subscriber_id == sub.id))
    erase(session, sub)


# --- clean-up ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cleanup:
    expired_people: int
    forgotten_links: int
    rate_limits: int


def expire_signups(
    session: Session, policy: OptInPolicy, *, now: datetime, chunk: int = 500
) -> Cleanup:
    """Delete people who signed up on the web and never confirmed once no link of theirs is
    still valid (their consent data on the links is cleared too); forget links used or
    expired more than EXPIRED_LINK_MEMORY ago; drop rate-limit windows that ended.

    Admin-added unconfirmed people (`subscriber add --unconfirmed`, imports) are never
    deleted here, nor anyone who once confirmed.
    """
    pending = exists().where(
        Confirmation.subscriber_id == Subscriber.id,
        Confirmation.expires_at > now,
        Confirmation.used_at.is_(None),
    )
    stale = (
        select(Subscriber.id)
        .where(
            Subscriber.status == "unconfirmed",
            Subscriber.source == SOURCE,
            Subscriber.confirmed_at.is_(None),
            ~pending,
        )
        .limit(chunk)
    )
    people = 0
    while ids := list(session.scalars(stale)):
        session.execute(
            update(Confirmation)
            .where(Confirmation.subscriber_id.in_(ids))
            .values(subscriber_id=None, lists=[], consent={})
        )
        session.execute(delete(SubscriberEvent).where(SubscriberEvent.subscriber_id.in_(ids)))
        session.execute(delete(Membership).where(Membership.subscriber_id.in_(ids)))
        session.execute(delete(Subscriber).where(Subscriber.id.in_(ids)))
        people += len(ids)
    cutoff = now - EXPIRED_LINK_MEMORY
    links = session.execute(
        delete(Confirmation).where(
            (Confirmation.expires_at < cutoff) | (Confirmation.used_at < cutoff)
        )
    ).rowcount
    windows = session.execute(
        delete(RateLimit).where(RateLimit.window_start <= now - policy.window)
    ).rowcount
    session.expire_all()
    return Cleanup(people, links or 0, windows or 0)
