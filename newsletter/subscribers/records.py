"""Subscriber records as the HTTP API reads and changes them: one person with their lists and
tags, a filtered page in id order (keyset cursor), and changes to name, attributes, tags and
lists. The consent rules are the ones of the sign-up form and of `subscriber add`
(newsletter.subscribers.optin and .service); nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, selectinload

from ..errors import InvalidInputError, NotFoundError
from ..store import tags as store_tags
from ..store.models import Membership, Subscriber, SubscriberTag, Tag, utcnow
from . import enrol, tags
from .listing import check_status
from .preferences import set_timezone
from .service import add_subscriber, get_list, log_event
from .validate import clean_name, normalise_email

MAX_ATTRIBUTE_TEXT = 1000


def get(session: Session, subscriber_id: int) -> Subscriber:
    sub = session.get(Subscriber, subscriber_id)
    if sub is None or sub.status == "erased":
        raise NotFoundError(f"no subscriber with id {subscriber_id}")
    return sub


def by_email(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (as typed: case and Gmail dots as the store keys
    them), or None. Raises InvalidEmailError for something that is not an address."""
    key = normalise_email(email).key
    return session.scalar(select(Subscriber).where(Subscriber.email_key == key))


def record(session: Session, sub: Subscriber, tag_names: list[str] | None = None) -> dict[str, Any]:
    """The API's form of a subscriber (``tag_names``: their tags, when already read)."""
    if tag_names is None:
        tag_names = store_tags.names_by_subscriber(session, [sub.id])[sub.id]
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "attributes": sub.attributes or {},
        "lists": sorted(m.name for m in sub.lists),
        "tags": tag_names,
        "timezone": sub.timezone,
        "source": sub.source,
        "created_at": sub.created_at,
        "confirmed_at": sub.confirmed_at,
        "unsubscribed_at": sub.unsubscribed_at,
    }


def page(
    session: Session,
    *,
    email: str | None = None,
    status: str | None = None,
    list_name: str | None = None,
    tag: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """Subscribers matching the filters with an id above ``after``, in id order; returns the
    records and the id to continue after (None on the last page). Erased people are left out."""
    check_status(status)
    query = select(Subscriber).where(Subscriber.id > after, Subscriber.status != "erased")
    if email is not None:
        query = query.where(Subscriber.email_key == normalise_email(email).key)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if list_name is not None:
        mlist = get_list(session, list_name)
        query = query.where(exists().where(Membership.list_id == mlist.id,
                                           Membership.subscriber_id == Subscriber.id))  # fmt: skip
    if tag is not None:
        query = query.where(exists().where(
            SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id == Tag.id,
            Tag.name == tags.normalise_tag(tag),
        ))  # fmt: skip
    rows = session.scalars(
        query.order_by(Subscriber.id).limit(limit + 1).options(selectinload(Subscriber.lists))
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    named = store_tags.names_by_subscriber(session, [s.id for s in rows]) if rows else {}
    records = [record(session, s, named.get(s.id, [])) for s in rows]
    return records, (rows[-1].id if more else None)


def check_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    for key, value in attributes.items():
        if not key.strip():
            raise InvalidInputError("attributes: a key may not be empty")
        if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_TEXT:
            raise InvalidInputError(
                f"attributes.{key}: longer than {MAX_ATTRIBUTE_TEXT} characters"
            )
    return attributes


def create_confirmed(
    session: Session,
    email: str,
    *,
    name: str,
    lists: Sequence[str],
    attributes: dict[str, Any],
    tag_names: Sequence[str],
    timezone: str | None,
    ip: str,
    trigger_sequences: bool,
) -> tuple[Subscriber, bool]:
    """An active subscriber added by an API client that holds their consent (as `subscriber
    add`: erased, unsubscribed, bounced and complained addresses are refused). Returns the
    subscriber and whether they are new."""
    sub, created = add_subscriber(
        session, email, name=name, lists=lists, status="active", source="api", ip=ip,
        attributes=check_attributes(attributes),
    )  # fmt: skip
    if timezone:
        set_timezone(sub, timezone)
    if tag_names:
        tags.tag(session, sub, tag_names)
    if trigger_sequences:
        enrol.confirmed(session, sub.id, None, utcnow())
    return sub, created


def update(
    session: Session,
    sub: Subscriber,
    *,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
    tag_names: Sequence[str] | None = None,
    lists: Sequence[str] | None = None,
    actor: str,
    ip: str,
) -> list[str]:
    """Change what is given (``tag_names`` and ``lists`` replace the current ones); an
    "updated" event records which fields changed and who changed them. Returns them."""
    changed = []
    if name is not None and clean_name(name) != sub.name:
        sub.name = clean_name(name)
        changed.append("name")
    if attributes is not None and attributes != (sub.attributes or {}):
        sub.attributes = check_attributes(attributes)
        changed.append("attributes")
    if tag_names is not None:
        wanted = set(tags.normalise_tags(tag_names))
        have = set(tags.tags_of(session, sub))
        if wanted != have:
            tags.untag(session, sub, sorted(have - wanted))
            tags.tag(session, sub, sorted(wanted - have))
            changed.append("tags")
    if lists is not None:
        wanted_ids = {get_list(session, n).id for n in lists}
        have_ids = {m.id for m in sub.lists}
        if wanted_ids != have_ids:
            for list_id in have_ids - wanted_ids:
                session.delete(session.get(Membership, (list_id, sub.id)))
            for list_id in wanted_ids - have_ids:
                session.add(Membership(list_id=list_id, subscriber_id=sub.id))
            changed.append("lists")
    if changed:
        sub.updated_at = utcnow()
        log_event(session, sub.id, "updated", source="api", ip=ip,
                  detail={"fields": changed, "token": actor})  # fmt: skip
        session.flush()
        session.expire(sub, ["lists"])
    return changed
