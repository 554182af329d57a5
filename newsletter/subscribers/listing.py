"""`subscriber list`: who is on file, read with Core queries (no ORM, no models), so the
command starts fast. The rules (a known status, an existing list) are the same as for the
other subscriber use cases in service.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

from ..errors import InvalidInputError, NotFoundError
from ..store import subscribers as store
from ..store import tags as store_tags
from ..store.types import SUBSCRIBER_STATUSES
from .tags import normalise_tags


def check_status(status: str | None) -> None:
    """InvalidInputError unless ``status`` is None or a subscriber status."""
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise InvalidInputError(
            f"unknown status {status!r}; one of: {', '.join(SUBSCRIBER_STATUSES)}"
        )


def no_such_list(name: str) -> NotFoundError:
    return NotFoundError(f"no list named {name!r} (create it with `newsletter list create`)")


def summaries(
    conn: Connection,
    *,
    list_name: str | None = None,
    status: str | None = None,
    search: str | None = None,
    tags: Sequence[str] = (),
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The short form of each matching subscriber, in id order (streams: flat memory).
    ``tags``: only those who have all of them. Raises InvalidInputError (a status, a tag
    name) or NotFoundError (a list, a tag nobody was ever given)."""
    check_status(status)
    wanted = normalise_tags(tags)
    tag_ids = store_tags.ids_by_name(conn, wanted)
    for name in wanted:
        if name not in tag_ids:
            raise NotFoundError(f"no tag named {name!r}")
    list_id = None
    if list_name:
        list_id = store.list_id(conn, list_name)
        if list_id is None:
            raise no_such_list(list_name)
    for row in store.subscriber_rows(
        conn,
        list_id=list_id,
        status=status,
        search=search,
        tag_ids=list(tag_ids.values()),
        limit=limit,
    ):
        created = row["created_at"]
        row["created_at"] = created.isoformat() if created else None
        yield row
