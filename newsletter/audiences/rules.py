"""An issue's audience: its list and its ``audience_rule`` made into one condition.

The rule (Issue.audience_rule) is JSON: ``{"where": EXPR}`` or ``{"segment": NAME}``,
``"exclude_lists": [NAME, ...]``, ``"exclude_segments": [NAME, ...]``, and for a resend
``{"resend_of": ID, "to": "non-clickers" | "non-openers" | "not-delivered"}``; ``{}`` is the
whole list (or, with no list, every subscriber). Segment names are resolved when the
condition is made (when sending starts, the ledger is filled with it), so a segment edited
before then counts as edited. Whatever the rule says, only active subscribers are in an
audience: the unconfirmed, unsubscribed, bounced and complained never are.

Raises SegmentSyntaxError (a bad --where), NotFoundError (a segment or list that does not
exist) and InvalidInputError (contradictory options).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, select, true
from sqlalchemy.orm import Session

from ..errors import InvalidInputError, NotFoundError
from ..store import segments as store
from ..store.models import Issue, MailingList, Subscriber
from ..store.types import utcnow
from . import cadence
from . import compile as compile_
from .expression import ClickedWithin, Engaged, parse, walk

ACTIVE = "active"
RESEND_TARGETS = ("non-clickers", "non-openers", "not-delivered")
# Deliveries of the first issue that count as "not delivered" for a resend.
NOT_DELIVERED = ("failed", "deferred", "bounced", "skipped")


def make_rule(
    session: Session,
    *,
    where: str | None = None,
    segment: str | None = None,
    exclude_lists: Sequence[str] = (),
    exclude_segments: Sequence[str] = (),
    resend_of: int | None = None,
    to: str | None = None,
) -> dict[str, Any]:
    """The audience_rule for these options, checked: the expression parses, the segments and
    lists exist. An empty dict when nothing is given."""
    if where is not None and segment is not None:
        raise InvalidInputError("choose --segment NAME or --where EXPR, not both")
    rule: dict[str, Any] = {}
    if where is not None:
        parse(where)
        rule["where"] = where
    if segment is not None:
        segment_expression(session, segment)
        rule["segment"] = segment
    for name in exclude_segments:
        segment_expression(session, name)
    missing = set(exclude_lists) - store.existing_names(session, MailingList, exclude_lists)
    if missing:
        raise NotFoundError(f"no list named {sorted(missing)[0]!r}")
    if exclude_lists:
        rule["exclude_lists"] = list(dict.fromkeys(exclude_lists))
    if exclude_segments:
        rule["exclude_segments"] = list(dict.fromkeys(exclude_segments))
    if (resend_of is None) != (to is None):
        raise InvalidInputError("a resend needs both --resend-of ID and --to")
    if resend_of is not None:
        if to not in RESEND_TARGETS:
            raise InvalidInputError(f"--to must be one of {', '.join(RESEND_TARGETS)}")
        rule |= {"resend_of": resend_of, "to": to}
    return rule


def segment_expression(session: Session, name: str) -> str:
    """The expression of segment ``name``; NotFoundError when there is none."""
    segment = store.get(session, name)
    if segment is None:
        raise NotFoundError(f"no segment named {name!r}")
    return segment.expression


@dataclass(frozen=True, slots=True)
class Parts:
    """An audience in three conditions: ``base`` (the list, or everyone), ``include`` (the
    segment, --where or resend), ``exclude`` (the excluded lists and segments). The audience
    is active AND base AND include AND NOT exclude."""

    base: ColumnElement[bool]
    include: ColumnElement[bool]
    exclude: ColumnElement[bool] | None
    # What the readers' cadences add (newsletter.audiences.cadence); None: nothing.
    cadence: ColumnElement[bool] | None = None

    def audience(self, *, cadence: bool = True) -> ColumnElement[bool]:
        """The whole condition; ``cadence=False``: before the readers' cadences."""
        parts = [Subscriber.status == ACTIVE, self.base, self.include]
        if cadence and self.cadence is not None:
            parts.append(self.cadence)
        return and_(*parts, *([not_(self.exclude)] if self.exclude is not None else []))


def parts(session: Session, issue: Issue, *, now: datetime | None = None) -> Parts:
    """The three conditions of ``issue``'s audience now."""
    now = now or utcnow()
    rule = issue.audience_rule or {}
    base = true() if issue.list_id is None else compile_.on_list(issue.list_id)
    include: list[ColumnElement[bool]] = []
    if "where" in rule:
        include.append(compile_.condition(parse(rule["where"]), now=now))
    if "segment" in rule:
        include.append(_segment(session, rule["segment"], now))
    if "resend_of" in rule:
        include.append(_resend(int(rule["resend_of"]), rule["to"]))
    excluded: list[ColumnElement[bool]] = []
    for name in rule.get("exclude_lists", ()):
        list_id = select(MailingList.id).where(MailingList.name == name).scalar_subquery()
        excluded.append(compile_.on_list(list_id))
    excluded += [_segment(session, name, now) for name in rule.get("exclude_segments", ())]
    return Parts(
        base=base,
        include=and_(*include) if include else true(),
        exclude=or_(*excluded) if excluded else None,
        cadence=cadence.condition(issue),
    )


def audience(session: Session, issue: Issue, *, now: datetime | None = None) -> ColumnElement[bool]:
    """The one condition on subscribers that ``issue`` goes to (the ledger's fill)."""
    return parts(session, issue, now=now).audience()


def _segment(session: Session, name: str, now: datetime) -> ColumnElement[bool]:
    return compile_.condition(parse(segment_expression(session, name)), now=now)


def _resend(issue_id: int, to: str) -> ColumnElement[bool]:
    if to == "not-delivered":
        return compile_.delivered(issue_id, NOT_DELIVERED)
    kind = "click" if to == "non-clickers" else "open"
    return and_(compile_.delivered(issue_id, ("sent",)), not_(compile_.engaged(kind, issue_id)))


def uses_per_subscriber_events(rule: dict[str, Any], expressions: Sequence[str]) -> bool:
    """Whether the audience depends on events tied to a reader (clicked:, opened:,
    clicked_within:, a resend to non-clickers or non-openers)."""
    if rule.get("to") in ("non-clickers", "non-openers"):
        return True
    return any(needs_per_subscriber(expr) for expr in expressions)


def needs_per_subscriber(expression: str) -> bool:
    return any(isinstance(n, Engaged | ClickedWithin) for n in walk(parse(expression)))


def expressions(session: Session, rule: dict[str, Any]) -> list[str]:
    """Every expression the rule uses (its --where and its segments'), for warnings."""
    found = [rule["where"]] if "where" in rule else []
    names = [rule["segment"]] if "segment" in rule else []
    for name in [*names, *rule.get("exclude_segments", ())]:
        segment = store.get(session, name)
        if segment is not None:
            found.append(segment.expression)
    return found
