"""An issue's states and the changes between them: the one place an issue's status is set.

    draft ──▶ scheduled ──▶ sending ──▶ sent
      ▲  ◀──────┘  │  ▲        │  ▲      │
      │            ▼  │        ▼  │      │ (a resend of the missed: --only-missed)
      │          missed      paused  ◀───┘
      └───────────────────────────────── cancelled (from any state but sent)

``change`` refuses a change the table does not hold (InvalidInputError, one line): the use
cases check their own preconditions first, with their own words; this is the backstop.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidInputError
from ..store.models import ISSUE_STATUSES, Issue

DRAFT = "draft"
SCHEDULED = "scheduled"
SENDING = "sending"
PAUSED = "paused"
SENT = "sent"
CANCELLED = "cancelled"
MISSED = "missed"

TRANSITIONS: Mapping[str, frozenset[str]] = {
    DRAFT: frozenset({SCHEDULED, SENDING, CANCELLED}),
    SCHEDULED: frozenset({DRAFT, SENDING, MISSED, PAUSED, CANCELLED}),
    MISSED: frozenset({DRAFT, SCHEDULED, SENDING, CANCELLED}),
    SENDING: frozenset({SENT, PAUSED, CANCELLED}),
    # resumed: sending again, or (paused before it ever started) back to waiting
    PAUSED: frozenset({SENDING, SCHEDULED, DRAFT, CANCELLED}),
    SENT: frozenset({SENDING}),  # `issue send --only-missed` retries the failed and deferred
    CANCELLED: frozenset(),
}
assert set(TRANSITIONS) == set(ISSUE_STATUSES)


def can_change(current: str, to: str) -> bool:
    """Whether an issue that is ``current`` may become ``to`` (staying put always may)."""
    return to == current or to in TRANSITIONS.get(current, frozenset())


def change(issue: Issue, to: str) -> None:
    """Set ``issue``'s status to ``to``; InvalidInputError if the table does not allow it."""
    if to not in TRANSITIONS:
        raise InvalidInputError(f"{to!r} is not an issue status")
    if not can_change(issue.status, to):
        raise InvalidInputError(f"issue {issue.id} is {issue.status}: it cannot become {to}")
    issue.status = to
