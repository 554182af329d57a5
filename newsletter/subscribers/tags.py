"""Tags: labels on subscribers ("customer", "vip"), from imports, `--tag` and `subscriber tag`.

The rule for a name: white space trimmed and each run of it inside made one space, then
lower-cased, so "VIP", " vip " and "Vip" are one tag, stored and shown as "vip"; 1 to 100
characters; no comma (it separates tags in an import's cell and in the export's column), no
double quote (Mailchimp quotes each tag in its TAGS cell) and no control character.
Tags are additive: an import or `subscriber tag` only ever adds them; only `subscriber untag`
takes one away. Everything here raises InvalidInputError naming the refused name; the SQL
is store/tags.py's, and the caller owns the session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..store import tags as store

if TYPE_CHECKING:  # the name rules are also for the import's parser and `subscriber list`
    from sqlalchemy.orm import Session

    from ..store.models import Subscriber

MAX_TAG = 100
_REFUSED = re.compile(r'[,"\x00-\x1f\x7f-\x9f]')


def normalise_tag(name: str) -> str:
    """The stored form of a tag name. Raises InvalidInputError."""
    tag = " ".join(name.split()).lower()
    if not tag:
        raise InvalidInputError("a tag needs a name (1 to 100 characters)")
    if len(tag) > MAX_TAG:
        raise InvalidInputError(f"tag {tag[:20]!r}... is longer than {MAX_TAG} characters")
    if bad := _REFUSED.search(tag):
        raise InvalidInputError(f"tag {tag!r} may not contain {bad.group()!r}")
    return tag


def normalise_tags(names: Iterable[str]) -> list[str]:
    """The stored forms of ``names``, each once, sorted. Raises InvalidInputError."""
    return sorted({normalise_tag(name) for name in names})


def split_cell(cell: str) -> list[str]:
    """The tags in an import's cell: comma-separated, each optionally in double quotes, as
    Mailchimp writes them (``customer, vip``, ``"customer","vip"``); empty ones are skipped.
    Sorted, each once. Raises InvalidInputError."""
    return normalise_tags(p for p in cell.replace('"', "").split(",") if p.strip())


def tag(session: Session, sub: Subscriber, names: Iterable[str]) -> list[str]:
    """Give ``sub`` these tags, creating tags that do not exist yet; a tag new to them starts
    the sequences it triggers ("tag:NAME"). Returns the (normalised) names that were new to
    them; the others they had already."""
    from ..store.models import utcnow
    from .enrol import tagged

    wanted = normalise_tags(names)
    now = utcnow()
    had = set(tags_of(session, sub))
    ids = store.ensure(session, wanted, now)
    store.add(session, sub.id, ids.values(), now)
    added = [name for name in wanted if name not in had]
    tagged(session, sub.id, added, now)
    return added


def untag(session: Session, sub: Subscriber, names: Iterable[str]) -> list[str]:
    """Take these tags from ``sub``. Returns the (normalised) names they had; the others are
    no error (untagging is idempotent)."""
    wanted = normalise_tags(names)
    had = set(tags_of(session, sub))
    store.remove(session, sub.id, wanted)
    return [name for name in wanted if name in had]


def tags_of(session: Session, sub: Subscriber) -> list[str]:
    """``sub``'s tag names, sorted."""
    return store.names_by_subscriber(session, [sub.id])[sub.id]
