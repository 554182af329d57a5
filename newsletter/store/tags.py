"""Tags and who has them: the SQL of the ``tags`` and ``subscriber_tags`` tables.

Names come in already normalised (subscribers/tags.py owns the rules). The readers are Core
on a ``Connection`` or a ``Session`` and need no models, so `subscriber list --tag` starts
fast; the writers import the models and the dialect when they run. Every write is one
statement for all the names or rows it is given, never a statement per row. The import's
set-based tagging (from its staging table) is in store/imports.py.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Integer, String, column, delete, select, table

from .types import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

tags = table(
    "tags", column("id", Integer), column("name", String), column("created_at", UTCDateTime())
)
subscriber_tags = table(
    "subscriber_tags",
    column("subscriber_id", Integer),
    column("tag_id", Integer),
    column("created_at", UTCDateTime()),
)


def ids_by_name(conn: Connection | Session, names: Collection[str]) -> dict[str, int]:
    """The ids of the tags named ``names`` that exist, by name."""
    if not names:
        return {}
    rows = conn.execute(select(tags.c.name, tags.c.id).where(tags.c.name.in_(list(names))))
    return {name: tag_id for name, tag_id in rows}


def ensure(session: Session, names: Collection[str], now: datetime) -> dict[str, int]:
    """Create the tags among ``names`` that do not exist yet (one INSERT ... ON CONFLICT DO
    NOTHING, so a concurrent creation of the same name is no error); returns all their ids."""
    from .dialect import insert  # the ORM and both dialects: not for the read-only commands
    from .models import Tag

    if not names:
        return {}
    session.execute(
        insert(session, Tag.__table__)
        .values([{"name": name, "created_at": now} for name in names])
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return ids_by_name(session, names)


def add(session: Session, subscriber_id: int, tag_ids: Iterable[int], now: datetime) -> int:
    """Give one subscriber these tags (one statement); returns how many were new to them."""
    from .dialect import insert
    from .models import SubscriberTag

    values = [{"subscriber_id": subscriber_id, "tag_id": t, "created_at": now} for t in tag_ids]
    if not values:
        return 0
    result = session.execute(
        insert(session, SubscriberTag.__table__).values(values).on_conflict_do_nothing()
    )
    return result.rowcount  # type: ignore[attr-defined]


def remove(session: Session, subscriber_id: int, names: Collection[str]) -> int:
    """Take the tags named ``names`` from one subscriber (one statement); returns how many they
    had. The tags themselves stay, with or without other subscribers."""
    if not names:
        return 0
    st = subscriber_tags.c
    named = select(tags.c.id).where(tags.c.name.in_(list(names)))
    result = session.execute(
        delete(subscriber_tags).where(st.subscriber_id == subscriber_id, st.tag_id.in_(named))
    )
    return result.rowcount  # type: ignore[attr-defined]


def names_by_subscriber(
    conn: Connection | Session, subscriber_ids: Collection[int]
) -> dict[int, list[str]]:
    """The tag names of each of ``subscriber_ids`` (a chunk of a listing or an export), sorted;
    one query. Subscribers without tags get an empty list."""
    names: dict[int, list[str]] = {sub_id: [] for sub_id in subscriber_ids}
    if not names:
        return names
    rows = conn.execute(
        select(subscriber_tags.c.subscriber_id, tags.c.name)
        .join(tags, tags.c.id == subscriber_tags.c.tag_id)
        .where(subscriber_tags.c.subscriber_id.in_(list(names)))
        .order_by(tags.c.name)
    )
    for sub_id, name in rows:
        names[sub_id].append(name)
    return names
