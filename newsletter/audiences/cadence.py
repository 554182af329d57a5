"""Each reader's cadence for a list: every post, a weekly digest, or a monthly digest.

A feed in "send" mode gives each new post an issue of its own with ``Issue.cadence = "post"``.
When that issue starts sending, one transaction fills its ledger with the list's readers whose
cadence is "post" and holds the post in the digest queue for every other reader of the audience
(``hold_for_digests``): each reader is in exactly one of the two, decided once. The weekly and
monthly jobs (newsletter.issues.cadence) then put each reader's held posts in one digest issue
(``Issue.cadence = "weekly"``), whose audience is the readers whose queue rows it took; a
queue row is taken once. A reader who changes cadence gets what was already held for the old
one in the next digest of the old one, and the new one from then on: never a post twice.

A reader's cadence is ``Membership.cadence``, or the list's default ([lists.NAME] cadence in
the config) when they chose none. Issues that are not a send-mode feed's (a marketer's own
`issue create`) go to the whole audience whatever the readers' cadences.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, not_
from sqlalchemy.orm import Session

from ..store import cadence as store
from ..store.models import DigestQueue, Issue, Membership, Subscriber

POST = "post"


def effective(default: str) -> ColumnElement[Any]:
    """The reader's cadence as a column of their membership row (``default``: the list's)."""
    return func.coalesce(Membership.cadence, literal(default))


def reads(list_id: Any, cadences: tuple[str, ...], default: str) -> ColumnElement[bool]:
    """A member of ``list_id`` whose cadence there is one of ``cadences``."""
    return (
        exists()
        .where(
            Membership.subscriber_id == Subscriber.id,
            Membership.list_id == list_id,
            effective(default).in_(cadences),
        )
        .correlate(Subscriber)  # a plan by list also joins memberships: not that one
    )


def held(list_id: Any, post_id: int) -> ColumnElement[bool]:
    """The post is already held for this reader's digest."""
    return (
        exists()
        .where(
            DigestQueue.list_id == list_id,
            DigestQueue.subscriber_id == Subscriber.id,
            DigestQueue.post_id == post_id,
        )
        .correlate(Subscriber)
    )


def condition(issue: Issue) -> ColumnElement[bool] | None:
    """What the issue's readers' cadences add to its audience (None: nothing)."""
    if issue.cadence is None or issue.list_id is None:
        return None
    if issue.cadence == POST:
        default = (issue.audience_rule or {}).get("default_cadence", POST)
        post_id = store.post_of(issue)
        return and_(reads(issue.list_id, (POST,), default), not_(held(issue.list_id, post_id)))
    # a cadence digest: the readers whose held posts it took
    return (
        exists()
        .where(DigestQueue.issue_id == issue.id, DigestQueue.subscriber_id == Subscriber.id)
        .correlate(Subscriber)
    )


def hold_for_digests(
    session: Session, issue: Issue, audience: ColumnElement[bool], now: datetime
) -> int:
    """When a send-mode post's issue starts: hold its post for every reader of ``audience``
    whose cadence is a digest and who is not in its ledger. Returns how many were held."""
    if issue.cadence != POST or issue.list_id is None:
        return 0
    default = (issue.audience_rule or {}).get("default_cadence", POST)
    return store.hold(
        session,
        list_id=issue.list_id,
        post_id=store.post_of(issue),
        issue_id=issue.id,
        cadence=effective(default),
        audience=audience,
        now=now,
    )
