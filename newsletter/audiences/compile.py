"""A segment's tree -> one SQLAlchemy condition on the subscribers table.

Every value from the expression is a bound parameter; nothing the user wrote becomes SQL
text. Each condition is true or false, never NULL (an absent attribute is simply not equal),
so ``not`` means "everyone else". A name that exists nowhere (tag, list, issue) matches
nobody. The condition says nothing about status unless the expression does: the callers
(rules.py, the ledger) always add "active".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import singledispatch
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select

from ..store import segments as store
from ..store.models import (
    Delivery,
    MailingList,
    Membership,
    Subscriber,
    SubscriberTag,
    Tag,
    TrackingEvent,
)
from .expression import (
    All,
    AnyOf,
    Attribute,
    ClickedWithin,
    Engaged,
    Node,
    Not,
    OnList,
    Received,
    Status,
    Subscribed,
)
from .expression import Tag as TagNode

PERSON = ""  # TrackingEvent.machine of a person's event


def condition(node: Node, *, now: datetime) -> ColumnElement[bool]:
    """The condition ``node`` stands for; ``now`` anchors clicked_within."""
    return _compile(node, now)


def tag_key(name: str) -> str:
    """A tag's stored form (subscribers/tags.py: spaces collapsed, lower-cased)."""
    return " ".join(name.split()).lower()


def _exists(*criteria: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS (... WHERE criteria) tied to the outer subscriber row only: a query that also
    joins memberships (plans by list) must not swallow the subquery's own FROM."""
    return exists().where(*criteria).correlate(Subscriber)


@singledispatch
def _compile(node: Any, now: datetime) -> ColumnElement[bool]:  # pragma: no cover
    raise TypeError(f"not a segment node: {node!r}")


@_compile.register
def _(node: All, now: datetime) -> ColumnElement[bool]:
    return and_(*(_compile(n, now) for n in node.operands))


@_compile.register
def _(node: AnyOf, now: datetime) -> ColumnElement[bool]:
    return or_(*(_compile(n, now) for n in node.operands))


@_compile.register
def _(node: Not, now: datetime) -> ColumnElement[bool]:
    return not_(_compile(node.operand, now))


@_compile.register
def _(node: TagNode, now: datetime) -> ColumnElement[bool]:
    tag_id = select(Tag.id).where(Tag.name == tag_key(node.name)).scalar_subquery()
    return _exists(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id == tag_id)


@_compile.register
def _(node: OnList, now: datetime) -> ColumnElement[bool]:
    list_id = select(MailingList.id).where(MailingList.name == node.name).scalar_subquery()
    return on_list(list_id)


def on_list(list_id: Any) -> ColumnElement[bool]:
    """Member of the list ``list_id`` (an id, or a scalar subquery giving one)."""
    return _exists(Membership.subscriber_id == Subscriber.id, Membership.list_id == list_id)


@_compile.register
def _(node: Status, now: datetime) -> ColumnElement[bool]:
    return Subscriber.status == node.status


@_compile.register
def _(node: Subscribed, now: datetime) -> ColumnElement[bool]:
    if node.before:
        return Subscriber.created_at < node.at
    # "after 2026-01-01" (a date: midnight) means from the next day on; a time, after it.
    at = node.at + timedelta(days=1) if _is_midnight(node.at) else node.at
    return Subscriber.created_at >= at


def _is_midnight(at: datetime) -> bool:
    return (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0)


@_compile.register
def _(node: Engaged, now: datetime) -> ColumnElement[bool]:
    return engaged(node.kind, node.issue_id)


def engaged(kind: str, issue_id: int) -> ColumnElement[bool]:
    """A person's (not a machine's) click or open of issue ``issue_id`` names them (only
    recorded with [tracking] per_subscriber)."""
    return _exists(
        TrackingEvent.subscriber_id == Subscriber.id,
        TrackingEvent.issue_id == issue_id,
        TrackingEvent.kind == kind,
        TrackingEvent.machine == PERSON,
    )


@_compile.register
def _(node: ClickedWithin, now: datetime) -> ColumnElement[bool]:
    return _exists(
        TrackingEvent.subscriber_id == Subscriber.id,
        TrackingEvent.kind == "click",
        TrackingEvent.machine == PERSON,
        TrackingEvent.at >= now - node.span,
    )


@_compile.register
def _(node: Received, now: datetime) -> ColumnElement[bool]:
    return delivered(node.issue_id, ("sent",))


def delivered(issue_id: int, statuses: tuple[str, ...]) -> ColumnElement[bool]:
    """Their delivery of issue ``issue_id`` is in ``statuses``."""
    return _exists(
        Delivery.subscriber_id == Subscriber.id,
        Delivery.issue_id == issue_id,
        Delivery.status.in_(statuses),
    )


@_compile.register
def _(node: Attribute, now: datetime) -> ColumnElement[bool]:
    if node.op == "contains":
        text = func.lower(store.attribute_text(node.key))
        return and_(text.is_not(None), text.contains(str(node.value).lower(), autoescape=True))
    value = store.attribute_number(node.key) if isinstance(node.value, float) else (
        store.attribute_text(node.key)
    )  # fmt: skip
    if node.op == "!=":  # an absent attribute is not equal to anything
        return or_(value.is_(None), value != node.value)
    compared = {
        "=": value == node.value,
        "<": value < node.value,
        ">": value > node.value,
        "<=": value <= node.value,
        ">=": value >= node.value,
    }[node.op]
    return and_(value.is_not(None), compared)
