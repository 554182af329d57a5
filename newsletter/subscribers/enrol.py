"""Putting readers into sequences when something happens to them (newsletter.sequences has
the sequences themselves): called in the same transaction as the event, so a confirmation
and its welcome series are stored together or not at all.

- ``confirmed``: the double opt-in for lists was completed (also by someone subscribed to
  other lists already), or an admin added people as active and asked for it
  (``--trigger-sequences``): the "confirm" and "join" sequences of those lists.
- ``tagged``: a tag was added: the "tag:NAME" sequences (of lists they are on).

A reader is enrolled in a sequence once; a second event keeps their place.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from ..store import sequences as store
from ..store.models import Subscriber


def _enroll(
    session: Session,
    triggers: Iterable[str],
    readers: ColumnElement[bool],
    list_ids: Iterable[int] | None,
    now: datetime,
    restart: bool = False,
) -> int:
    return sum(
        store.enroll(session, sequence, readers, now, restart=restart)
        for sequence in store.sequences_triggered(session, triggers, list_ids)
    )


def confirmed(
    session: Session,
    readers: ColumnElement[bool] | int,
    list_ids: Iterable[int] | None,
    now: datetime,
    *,
    restart: bool = False,
) -> int:
    """Readers (a subscriber id or a condition) who became confirmed members of ``list_ids``
    (None: of any of their lists). ``restart``: readers in a sequence already start it again
    (the steps they received are not sent twice). Returns how many enrolments were made."""
    return _enroll(session, ("confirm", "join"), _who(readers), list_ids, now, restart)


def tagged(
    session: Session, readers: ColumnElement[bool] | int, tag_names: Iterable[str], now: datetime
) -> int:
    who = _who(readers)
    return sum(
        _enroll(session, (f"tag:{name}",), who & store.tagged(name), None, now)
        for name in tag_names
    )


def _who(readers: ColumnElement[bool] | int) -> ColumnElement[bool]:
    return Subscriber.id == readers if isinstance(readers, int) else readers
