"""Subscriber queries in SQLAlchemy Core, for commands that only read.

The readers take a ``Connection`` and need neither the ORM nor the models (see
store/types.py), so `subscriber list` starts without them. The tables are named here by the
columns read; a test checks each against the models (tests/test_startup.py). The writers
import the models when they run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Integer, String, column, exists, func, or_, select, table

from .tags import names_by_subscriber, subscriber_tags
from .types import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

subscribers = table(
    "subscribers",
    column("id", Integer),
    column("email", String),
    column("email_key", String),
    column("name", String),
    column("status", String),
    column("created_at", UTCDateTime()),
)
lists = table("lists", column("id", Integer), column("name", String))
memberships = table("memberships", column("list_id", Integer), column("subscriber_id", Integer))


def list_id(conn: Connection, name: str) -> int | None:
    """The id of the list named ``name``, or None."""
    return conn.scalar(select(lists.c.id).where(lists.c.name == name))


def subscriber_rows(
    conn: Connection,
    *,
    list_id: int | None = None,
    status: str | None = None,
    search: str | None = None,
    tag_ids: Sequence[int] = (),
    limit: int | None = None,
    chunk: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Subscribers in id order as dicts (id, email, name, status, lists, tags, created_at),
    with the names of their lists and tags in name order; streamed in chunks (keyset
    pagination: flat memory on millions). ``search``: a substring of the address or the
    name, any case; ``tag_ids``: only those who have every one of these tags."""
    s = subscribers.c
    stmt = select(s.id, s.email, s.name, s.status, s.created_at).order_by(s.id)
    if list_id is not None:
        stmt = stmt.join(memberships, memberships.c.subscriber_id == s.id).where(
            memberships.c.list_id == list_id
        )
    if status:
        stmt = stmt.where(s.status == status)
    if search:
        pattern = f"%{search.lower()}%"
        stmt = stmt.where(or_(s.email_key.like(pattern), func.lower(s.name).like(pattern)))
    st = subscriber_tags.c
    for tag_id in tag_ids:
        stmt = stmt.where(exists().where(st.subscriber_id == s.id, st.tag_id == tag_id))
    last_id, given = 0, 0
    while True:
        size = chunk if limit is None else min(chunk, limit - given)
        if size <= 0:
            return
        batch = conn.execute(stmt.where(s.id > last_id).limit(size)).all()
        if not batch:
            return
        names: dict[int, list[str]] = {row.id: [] for row in batch}
        for sub_id, list_name in conn.execute(
            select(memberships.c.subscriber_id, lists.c.name)
            .join(lists, lists.c.id == memberships.c.list_id)
            .where(memberships.c.subscriber_id.in_(names))
            .order_by(lists.c.name)
        ):
            names[sub_id].append(list_name)
        tags = names_by_subscriber(conn, list(names))
        for row in batch:
            yield {
                "id": row.id,
                "email": row.email,
                "name": row.name,
                "status": row.status,
                "lists": names[row.id],
                "tags": tags[row.id],
                "created_at": row.created_at,
            }
        given += len(batch)
        last_id = batch[-1].id


def add_if_new(session: Session, values: dict[str, Any]) -> bool:
    """Insert a subscriber with these column values unless one with the same ``email_key``
    exists (then nothing happens: a concurrent insert of the same address is resolved by the
    unique key, and a known and a new address take the same statement). True if inserted."""
    from .dialect import insert  # the ORM and both dialects: not for the read-only commands
    from .models import Subscriber

    table = Subscriber.__table__
    stmt = (
        insert(session, table).values(values).on_conflict_do_nothing(index_elements=["email_key"])
    )
    return session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount == 1
