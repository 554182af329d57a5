"""The secrets table: keys the product makes for itself (VERP, archive links, tokens), by name."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Secret


def key(session: Session, name: str) -> bytes:
    """The named secret, made (32 random bytes) and stored on first use.

    Safe when several processes race to make it: the loser reads the winner's key. Writes
    in a savepoint of the caller's transaction; the caller commits.
    """
    value = session.scalar(select(Secret.value).where(Secret.name == name))
    if value is None:
        try:
            with session.begin_nested():
                session.add(Secret(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass
        value = session.scalar(select(Secret.value).where(Secret.name == name))
    return bytes.fromhex(value)
