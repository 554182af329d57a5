"""A delivery's states and the changes between them, and the rule for the status an answer
gives. Deliveries change in groups (a claim, a group of answers), so the changes themselves
are set-based statements in store/deliveries.py, made by the ledger (delivery/ledger.py);
a bounce message arriving later is applied by bounces/record.py.

    pending ──▶ sending ──▶ sent ──▶ bounced, failed (a bounce message arrives later)
       ▲  ▲        │ │ │
       │  └────────┘ │ └──▶ deferred ──▶ sending (its next attempt) ─ ... ─▶ failed
       │  (released) └──▶ failed, bounced
       └── deferred, failed (`issue send --only-missed` retries them)

A delivery whose subscriber is no longer active when it would be claimed becomes skipped
(from pending, deferred, or sending whose lease ran out). A claim whose lease ran out is
claimed again (sending ──▶ sending); a claim given back untried because its domain is
backing off becomes deferred without using up an attempt.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..store.models import DELIVERY_STATUSES

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
BOUNCED = "bounced"
SKIPPED = "skipped"

TRANSITIONS: Mapping[str, frozenset[str]] = {
    PENDING: frozenset({SENDING, SKIPPED}),
    SENDING: frozenset({SENDING, PENDING, SENT, DEFERRED, FAILED, BOUNCED, SKIPPED}),
    DEFERRED: frozenset({SENDING, PENDING, SKIPPED}),
    SENT: frozenset({BOUNCED, FAILED}),
    FAILED: frozenset({PENDING}),
    BOUNCED: frozenset(),
    SKIPPED: frozenset(),
}
assert set(TRANSITIONS) == set(DELIVERY_STATUSES)

RETRIED_WHEN_MISSED = (FAILED, DEFERRED)
"""What `issue send --only-missed` makes pending again."""


def sources(to: str) -> tuple[str, ...]:
    """The states a delivery may come from to become ``to`` (for set-based updates)."""
    return tuple(s for s in DELIVERY_STATUSES if to in TRANSITIONS[s])


def answered(outcome: str, attempts: int, max_attempts: int) -> str:
    """The status a claimed delivery takes for the server's answer ``outcome`` (sent,
    deferred, failed, bounced) after its ``attempts``-th attempt: a deferral that used the
    last allowed attempt is a failure."""
    if outcome == DEFERRED and attempts >= max_attempts:
        return FAILED
    return outcome
