"""Segment use cases: create (the expression is checked first), list, show (who matches
now), remove; and the warnings an expression deserves (names that exist nowhere, events that
name no one).

Each takes the caller's Session. Raises SegmentSyntaxError, NotFoundError (no such
segment), InvalidInputError (a bad or taken name, a segment an unsent issue still uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_
from sqlalchemy.orm import Session

from ..errors import InvalidInputError, NotFoundError
from ..store import segments as store
from ..store.models import MailingList, Segment, Subscriber, Tag, utcnow
from . import compile as compile_
from .expression import Engaged, OnList, Received, parse, walk
from .expression import Tag as TagNode
from .rules import ACTIVE, needs_per_subscriber

SAMPLE = 10
MAX_NAME = 100
UNSENT = ("draft", "scheduled", "paused", "missed")  # issues whose audience is not fixed yet

PER_SUBSCRIBER_OFF = (
    "clicked:, opened: and clicked_within: match nobody while [tracking] per_subscriber is "
    "false (events then name no reader)"
)


def create_segment(session: Session, name: str, expression: str) -> Segment:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInputError(f"a segment needs a name of 1 to {MAX_NAME} printable characters")
    parse(expression)
    if store.get(session, name) is not None:
        raise InvalidInputError(f"there is already a segment named {name!r}")
    return store.add(session, name, expression.strip())


def get_segment(session: Session, name: str) -> Segment:
    segment = store.get(session, name)
    if segment is None:
        raise NotFoundError(f"no segment named {name!r}")
    return segment


def list_segments(session: Session) -> list[Segment]:
    return store.all_segments(session)


def remove_segment(session: Session, name: str) -> None:
    """Delete a segment; refused while an issue not yet sending uses it."""
    get_segment(session, name)
    users = [
        issue_id
        for issue_id, rule in store.issues_with_rules(session, UNSENT)
        if rule.get("segment") == name or name in rule.get("exclude_segments", ())
    ]
    if users:
        raise InvalidInputError(
            f"segment {name!r} is the audience of issue {users[0]}"
            + (f" and {len(users) - 1} more" if len(users) > 1 else "")
            + ": change or cancel those first"
        )
    store.remove(session, name)


@dataclass(frozen=True, slots=True)
class Matches:
    name: str
    expression: str
    count: int  # active subscribers matching now
    sample: tuple[str, ...]
    warnings: tuple[str, ...]

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "expression": self.expression,
            "count": self.count,
            "sample": list(self.sample),
            "warnings": list(self.warnings),
        }


def show_segment(
    session: Session, name: str, *, per_subscriber: bool, now: datetime | None = None
) -> Matches:
    """Who matches segment ``name`` now: the active subscribers, and the first few."""
    segment = get_segment(session, name)
    node = parse(segment.expression)
    condition = and_(Subscriber.status == ACTIVE, compile_.condition(node, now=now or utcnow()))
    return Matches(
        name=segment.name,
        expression=segment.expression,
        count=store.count(session, condition),
        sample=tuple(store.sample(session, condition, SAMPLE)),
        warnings=tuple(warnings(session, segment.expression, per_subscriber=per_subscriber)),
    )


def warnings(session: Session, expression: str, *, per_subscriber: bool) -> list[str]:
    """One line per thing in ``expression`` that matches nobody for a reason the marketer may
    not see: a tag, list or issue that does not exist, events that name no reader."""
    nodes = list(walk(parse(expression)))
    found = []
    tags = {compile_.tag_key(n.name) for n in nodes if isinstance(n, TagNode)}
    for tag in sorted(tags - store.existing_names(session, Tag, tags)):
        found.append(f"no subscriber has the tag {tag!r}: tag:{tag} matches nobody")
    lists = {n.name for n in nodes if isinstance(n, OnList)}
    for name in sorted(lists - store.existing_names(session, MailingList, lists)):
        found.append(f"there is no list {name!r}: list:{name} matches nobody")
    issues = {n.issue_id for n in nodes if isinstance(n, Engaged | Received)}
    for issue_id in sorted(issues - store.existing_issues(session, issues)):
        found.append(f"there is no issue {issue_id}: conditions on it match nobody")
    if not per_subscriber and needs_per_subscriber(expression):
        found.append(PER_SUBSCRIBER_OFF)
    return found
