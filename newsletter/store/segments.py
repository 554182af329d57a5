"""The segments table, and the SQL an audience needs: who matches a condition (a count, a
sample, groups by list and by domain), which names exist, and the one dialect branch of the
segment language (reading a JSON attribute as a number).

The conditions come from newsletter.audiences (SQLAlchemy expressions on the subscribers
table, bound parameters only); these functions take the caller's Session and never commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Float, delete, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement as _Element

from .models import Issue, MailingList, Membership, Segment, Subscriber

# --- the segments table ----------------------------------------------------------------------


def add(session: Session, name: str, expression: str) -> Segment:
    segment = Segment(name=name, expression=expression)
    session.add(segment)
    session.flush()
    return segment


def get(session: Session, name: str) -> Segment | None:
    return session.scalar(select(Segment).where(Segment.name == name))


def all_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def remove(session: Session, name: str) -> int:
    return session.execute(delete(Segment).where(Segment.name == name)).rowcount


def issues_with_rules(session: Session, statuses: Sequence[str]) -> list[tuple[int, dict]]:
    """(id, audience rule) of the issues in ``statuses`` whose rule is not empty."""
    rows = session.execute(select(Issue.id, Issue.audience_rule).where(Issue.status.in_(statuses)))
    return [(issue_id, rule) for issue_id, rule in rows if rule]


# --- who matches -----------------------------------------------------------------------------


def count(session: Session, condition: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(Subscriber).where(condition)) or 0


def sample(session: Session, condition: ColumnElement[bool], limit: int) -> list[str]:
    """The addresses of the first ``limit`` matching subscribers, in id order."""
    stmt = select(Subscriber.email).where(condition).order_by(Subscriber.id).limit(limit)
    return list(session.scalars(stmt))


def count_by_status(session: Session, condition: ColumnElement[bool]) -> dict[str, int]:
    stmt = select(Subscriber.status, func.count()).where(condition).group_by(Subscriber.status)
    return dict(session.execute(stmt).all())  # type: ignore[arg-type]


def count_by_list(session: Session, condition: ColumnElement[bool]) -> dict[str, int]:
    """Matching subscribers per list name (one on two lists counts in both)."""
    stmt = (
        select(MailingList.name, func.count())
        .select_from(Subscriber)
        .join(Membership, Membership.subscriber_id == Subscriber.id)
        .join(MailingList, MailingList.id == Membership.list_id)
        .where(condition)
        .group_by(MailingList.name)
        .order_by(func.count().desc(), MailingList.name)
    )
    return dict(session.execute(stmt).all())  # type: ignore[arg-type]


def count_by_domain(session: Session, condition: ColumnElement[bool]) -> dict[str, int]:
    """Matching subscribers per domain of their address (lower-cased), largest first."""
    at = func.instr(Subscriber.email_key, "@")
    if session.get_bind().dialect.name == "postgresql":
        at = func.strpos(Subscriber.email_key, "@")
    domain = func.substr(Subscriber.email_key, at + 1).label("domain")
    stmt = (
        select(domain, func.count())
        .where(condition)
        .group_by(domain)
        .order_by(func.count().desc(), domain)
    )
    return dict(session.execute(stmt).all())  # type: ignore[arg-type]


def existing_names(session: Session, model: Any, names: Collection[str]) -> set[str]:
    """Which of ``names`` exist as ``model`` (Tag, MailingList, Segment) names."""
    if not names:
        return set()
    return set(session.scalars(select(model.name).where(model.name.in_(list(names)))))


def existing_issues(session: Session, ids: Collection[int]) -> set[int]:
    if not ids:
        return set()
    return set(session.scalars(select(Issue.id).where(Issue.id.in_(list(ids)))))


# --- a JSON attribute as a number --------------------------------------------------------


def attribute_text(key: str) -> ColumnElement[Any]:
    """subscribers.attributes[key] as text (json_extract on SQLite, ->> on PostgreSQL);
    NULL when absent."""
    return Subscriber.attributes[key].as_string()


class _AsNumber(_Element[float]):
    """A text value as a number when it reads as one (" 42", "3.5", "1e3"), else NULL:
    attributes imported from CSV are text, and PostgreSQL refuses to cast "n/a"."""

    type = Float()
    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        self.text = text


@compiles(_AsNumber)
def _as_number_sqlite(element: _AsNumber, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.text, **kw)
    return (
        f"CASE WHEN trim({value}) GLOB '*[0-9]*' AND trim({value}) NOT GLOB '*[^0-9.eE+-]*' "
        f"THEN CAST(trim({value}) AS REAL) END"
    )


@compiles(_AsNumber, "postgresql")
def _as_number_postgresql(element: _AsNumber, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.text, **kw)
    number = r"'^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'"
    return f"CASE WHEN {value} ~ {number} THEN CAST({value} AS DOUBLE PRECISION) END"


def attribute_number(key: str) -> ColumnElement[float]:
    """subscribers.attributes[key] as a number, or NULL when absent or not a number."""
    return _AsNumber(attribute_text(key))  # type: ignore[return-value]
