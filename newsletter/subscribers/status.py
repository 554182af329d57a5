"""A subscriber's states and the changes between them: the one place a subscriber's status
is set by our code (the importer's set-based SQL keeps the same rules, see store/imports.py).

    unconfirmed ──▶ active ──▶ unsubscribed ──▶ active (signs up and confirms again)
         │            │
         └────────────┴──▶ bounced, complained (the bounce rules; for good: no way back)

A complaint also ends a bounced or unsubscribed address's mail for good.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidInputError
from ..store.models import SUBSCRIBER_STATUSES, Subscriber

UNCONFIRMED = "unconfirmed"
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"

TRANSITIONS: Mapping[str, frozenset[str]] = {
    UNCONFIRMED: frozenset({ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED}),
    ACTIVE: frozenset({UNSUBSCRIBED, BOUNCED, COMPLAINED}),
    UNSUBSCRIBED: frozenset({ACTIVE, COMPLAINED}),
    BOUNCED: frozenset({UNSUBSCRIBED, COMPLAINED}),
    COMPLAINED: frozenset({UNSUBSCRIBED}),
}
assert set(TRANSITIONS) == set(SUBSCRIBER_STATUSES)


def sources(to: str) -> tuple[str, ...]:
    """The states a subscriber may come from to become ``to`` (for set-based updates)."""
    return tuple(s for s in SUBSCRIBER_STATUSES if to in TRANSITIONS[s])


def change(sub: Subscriber, to: str) -> None:
    """Set ``sub``'s status to ``to``; InvalidInputError if the table does not allow it."""
    if to not in TRANSITIONS:
        raise InvalidInputError(f"{to!r} is not a subscriber status")
    if to != sub.status and to not in TRANSITIONS[sub.status]:
        raise InvalidInputError(f"{sub.email} is {sub.status}: they cannot become {to}")
    sub.status = to
