"""Subscriber and list use cases. Each takes a Session owned by the caller.

Raises NotFoundError for unknown subscribers or lists, InvalidEmailError for bad addresses,
InvalidInputError for other refused values. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, object_session, selectinload

from ..errors import InvalidInputError, NotFoundError
from ..store import cadence as store_cadence
from ..store import outbox
from ..store import tags as store_tags
from ..store import tracking as store_tracking
from ..store.models import (
    SUPPRESSED_STATUSES,
    MailingList,
    Membership,
    Subscriber,
    SubscriberEvent,
    Suppression,
    utcnow,
)
from . import status as sub_status
from .listing import check_status, no_such_list
from .validate import clean_name, normalise_email, suppression_hash

# --- lists -------------------------------------------------------------------------------


def create_list(
    session: Session, name: str, description: str = "", *, public: bool | None = None
) -> MailingList:
    """A new list. ``public``: its issues are in the public archive (None: only if it is on
    the subscribe form, see newsletter.issues.archive)."""
    name = name.strip()
    if not name or len(name) > 100 or any(c in name for c in "\r\n\t"):
        raise InvalidInputError("a list name needs 1 to 100 characters on one line")
    if session.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
        raise InvalidInputError(f"list {name!r} already exists")
    mlist = MailingList(name=name, description=description.strip(), public=public)
    session.add(mlist)
    session.flush()
    return mlist


def edit_list(
    session: Session, name: str, *, description: str | None = None, public: bool | None = None
) -> MailingList:
    """Change a list's description or whether its issues are public."""
    mlist = get_list(session, name)
    if description is not None:
        mlist.description = description.strip()
    if public is not None:
        mlist.public = public
    session.flush()
    return mlist


def get_list(session: Session, name: str) -> MailingList:
    mlist = session.scalar(select(MailingList).where(MailingList.name == name))
    if mlist is None:
        raise no_such_list(name)
    return mlist


def list_counts(session: Session) -> list[tuple[MailingList, dict[str, int]]]:
    """Every list with its member counts by subscriber status."""
    rows = session.execute(
        select(Membership.list_id, Subscriber.status, func.count())
        .join(Subscriber, Subscriber.id == Membership.subscriber_id)
        .group_by(Membership.list_id, Subscriber.status)
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for list_id, status, n in rows:
        counts.setdefault(list_id, {})[status] = n
    lists = session.scalars(select(MailingList).order_by(MailingList.name)).all()
    return [(m, counts.get(m.id, {})) for m in lists]


# --- subscribers -------------------------------------------------------------------------


def is_suppressed(session: Session, email_key: str) -> bool:
    """True when the address was erased: it may never be added or imported again."""
    digest = suppression_hash(email_key)
    return (
        session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is not None
    )


def find_subscriber(session: Session, email_or_id: str) -> Subscriber:
    """Look a subscriber up by address (case-insensitive) or numeric id."""
    ref = email_or_id.strip()
    if ref.isdigit():
        sub = session.get(Subscriber, int(ref))
    else:
        sub = session.scalar(select(Subscriber).where(Subscriber.email_key == _key_for_lookup(ref)))
    if sub is None:
        raise NotFoundError(f"no subscriber {ref!r}")
    return sub


def _key_for_lookup(ref: str) -> str:
    try:
        return normalise_email(ref).key
    except InvalidInputError:
        return ref.lower()


def add_subscriber(
    session: Session,
    email: str,
    *,
    name: str = "",
    lists: Sequence[str] = (),
    status: str = "active",
    source: str = "cli",
    ip: str = "",
    attributes: dict[str, Any] | None = None,
) -> tuple[Subscriber, bool]:
    """Add someone, or add an existing subscriber to more lists. Returns (subscriber, created).

    An address that unsubscribed, bounced, complained or was erased is never re-activated:
    the call raises InvalidInputError saying why.
    """
    if status not in ("active", "unconfirmed"):
        raise InvalidInputError("a new subscriber is either active or unconfirmed")
    address = normalise_email(email)
    if is_suppressed(session, address.key):
        raise InvalidInputError(f"{address.email} was erased and may not be added again")
    mlists = [get_list(session, n) for n in lists]
    sub = session.scalar(select(Subscriber).where(Subscriber.email_key == address.key))
    created = sub is None
    now = utcnow()
    if sub is None:
        sub = Subscriber(
            email=address.email,
            email_key=address.key,
            name=clean_name(name),
            status=status,
            attributes=attributes or {},
            source=source,
            confirmed_at=now if status == "active" else None,
        )
        session.add(sub)
        session.flush()
        outbox.subscriber_created(session, sub)
        kind = "confirmed" if status == "active" else "subscribed"
        log_event(session, sub.id, kind, source=source, ip=ip, detail={"by": "admin"})
    elif sub.status in SUPPRESSED_STATUSES:
        raise InvalidInputError(
            f"{sub.email} is {sub.status} and cannot be re-subscribed by an admin"
        )
    elif name and clean_name(name) != sub.name:
        sub.name = clean_name(name)
    existing = {m.id for m in sub.lists} if not created else set()
    for mlist in mlists:
        if mlist.id not in existing:
            session.add(Membership(list_id=mlist.id, subscriber_id=sub.id))
    session.flush()
    session.expire(sub, ["lists"])
    return sub, created


def log_event(
    session: Session,
    subscriber_id: int,
    kind: str,
    *,
    source: str = "",
    ip: str = "",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    at = at or utcnow()
    session.add(
        SubscriberEvent(
            subscriber_id=subscriber_id,
            kind=kind,
            source=source,
            ip=ip,
            detail=detail or {},
            at=at,
        )
    )
    outbox.subscriber_event(session, kind, subscriber_id, at)  # for the webhooks that want it


def iter_subscribers(
    session: Session,
    *,
    list_name: str | None = None,
    status: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    chunk: int = 2000,
) -> Iterator[Subscriber]:
    """Subscribers in id order, streamed in chunks (keyset pagination: flat memory)."""
    check_status(status)
    stmt = select(Subscriber).order_by(Subscriber.id)
    if list_name:
        mlist = get_list(session, list_name)
        stmt = stmt.join(Membership, Membership.subscriber_id == Subscriber.id).where(
            Membership.list_id == mlist.id
        )
    if status:
        stmt = stmt.where(Subscriber.status == status)
    if search:
        pattern = f"%{search.lower()}%"
        stmt = stmt.where(
            or_(Subscriber.email_key.like(pattern), func.lower(Subscriber.name).like(pattern))
        )
    last_id, given = 0, 0
    while True:
        size = chunk if limit is None else min(chunk, limit - given)
        if size <= 0:
            return
        batch = session.scalars(
            stmt.where(Subscriber.id > last_id).limit(size).options(selectinload(Subscriber.lists))
        ).all()
        if not batch:
            return
        yield from batch
        given += len(batch)
        last_id = batch[-1].id
        session.expunge_all()  # keep the identity map from growing with the list


def export_subscribers(
    session: Session,
    *,
    list_name: str | None = None,
    status: str | None = None,
    chunk: int = 2000,
) -> Iterator[tuple[Subscriber, list[str]]]:
    """``iter_subscribers`` with each one's tag names (sorted), for the CSV export: one tag
    query per chunk, each chunk given out before the next one is read."""
    subs = iter_subscribers(session, list_name=list_name, status=status, chunk=chunk)
    pending: list[Subscriber] = []
    for sub in subs:
        pending.append(sub)
        if len(pending) == chunk:
            yield from _with_tags(session, pending)
            pending = []
    yield from _with_tags(session, pending)


def _with_tags(session: Session, subs: list[Subscriber]) -> Iterator[tuple[Subscriber, list[str]]]:
    tags = store_tags.names_by_subscriber(session, [sub.id for sub in subs])
    for sub in subs:
        yield sub, tags[sub.id]


def unsubscribe(
    session: Session, sub: Subscriber, *, source: str = "cli", ip: str = "", reason: str = ""
) -> bool:
    """Mark a subscriber unsubscribed. Idempotent: returns False if already unsubscribed."""
    if sub.status == "unsubscribed":
        return False
    previous = sub.status
    sub_status.change(sub, sub_status.UNSUBSCRIBED)
    sub.unsubscribed_at = utcnow()
    detail = {"previous": previous} | ({"reason": reason} if reason else {})
    log_event(session, sub.id, "unsubscribed", source=source, ip=ip, detail=detail)
    session.flush()
    return True


def person_data(sub: Subscriber) -> dict[str, Any]:
    """Everything held on one person: fields, lists, tags (sorted), the whole event (consent)
    history and their clicks and opens (``tracking_events``: only ever stored with ``[tracking]
    per_subscriber`` on, and only until ``retention_days``). Reads through the session
    ``sub`` belongs to, as its lists and events do."""
    session = object_session(sub)
    if session is None:
        raise ValueError("person_data needs a subscriber that belongs to a session")
    own = store_cadence.cadences(session, sub.id)
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "attributes": sub.attributes,
        "source": sub.source,
        "created_at": _iso(sub.created_at),
        "updated_at": _iso(sub.updated_at),
        "confirmed_at": _iso(sub.confirmed_at),
        "unsubscribed_at": _iso(sub.unsubscribed_at),
        "no_tracking": sub.no_tracking,
        "timezone": sub.timezone,
        "lists": [m.name for m in sub.lists],
        # their own cadence per list (None: the list's default, [lists.NAME] cadence)
        "cadences": {m.name: own.get(m.id) for m in sub.lists},
        "tags": store_tags.names_by_subscriber(session, [sub.id])[sub.id],
        "events": [
            {
                "kind": e.kind,
                "at": _iso(e.at),
                "source": e.source,
                "ip": e.ip,
                "detail": e.detail,
            }
            for e in sub.events
        ],
        "tracking_events": store_tracking.events_of(session, sub.id),
    }


def erase(session: Session, sub: Subscriber) -> str:
    """GDPR erasure: delete the person, their history and their clicks and opens; keep only
    a suppression hash. The per-issue unsubscribe counts name no one and stay.

    Returns the hash. The address can never be added or imported again.
    """
    digest = suppression_hash(sub.email_key)
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        session.add(Suppression(email_hash=digest, reason="erased"))
    session.execute(delete(SubscriberEvent).where(SubscriberEvent.subscriber_id == sub.id))
    store_tracking.delete_events_of(session, sub.id)
    session.execute(delete(Membership).where(Membership.subscriber_id == sub.id))
    session.execute(delete(Subscriber).where(Subscriber.id == sub.id))
    session.expunge(sub)
    session.flush()
    return digest


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
