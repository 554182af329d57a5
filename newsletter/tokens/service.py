"""Tokens: create (the token is returned once; only its SHA-256 is stored), check a presented
token in constant time, list, revoke; and the scopes an API route may need.

Raises InvalidInputError (a bad name or scope, a name in use), NotFoundError (no such token)
and AuthError (a presented token that is unknown, malformed or revoked, 401; one without the
scope, 403).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import AuthError, InvalidInputError, NotFoundError
from ..store.models import ApiToken, utcnow

SCOPES = (
    "subscribers:read",
    "subscribers:write",
    "lists:read",
    "lists:write",
    "segments:read",
    "posts:read",
    "posts:write",
    "issues:read",
    "issues:write",
    "sequences:write",
    "webhooks:read",
    "webhooks:write",
)
PREFIX = "nl_"
SELECTOR_LENGTH = 12
_TOKEN = re.compile(r"nl_[A-Za-z0-9_-]{40,60}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_scopes(scopes: Iterable[str]) -> list[str]:
    """Sorted, each once; ``all`` is every scope. Raises InvalidInputError for one unknown."""
    wanted: set[str] = set()
    for raw in scopes:
        for scope in (s.strip() for s in raw.split(",")):
            if not scope:
                continue
            if scope == "all":
                wanted |= set(SCOPES)
            elif scope in SCOPES:
                wanted.add(scope)
            else:
                raise InvalidInputError(f"unknown scope {scope!r} (scopes: {', '.join(SCOPES)})")
    if not wanted:
        raise InvalidInputError(f"give --scope (one or more of: {', '.join(SCOPES)})")
    return sorted(wanted)


def create_token(session: Session, name: str, scopes: Iterable[str]) -> tuple[ApiToken, str]:
    """A new token named ``name`` with ``scopes``; returns the row and the token itself (the
    only time it exists outside the caller's hands)."""
    if not _NAME.fullmatch(name):
        raise InvalidInputError(f"token name {name!r}: use letters, digits, '.', '-' and '_'")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise InvalidInputError(f"a token named {name!r} exists already")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        selector=token[len(PREFIX) : len(PREFIX) + SELECTOR_LENGTH],
        token_hash=_hash(token),
        scopes=normalise_scopes(scopes),
    )
    session.add(row)
    session.flush()
    return row, token


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    scopes: tuple[str, ...]
    last_used_at: datetime | None


def authenticate(session: Session, presented: str) -> TokenInfo:
    """The live token ``presented`` is (read only). Raises AuthError (401) otherwise; the
    comparison takes the same time for an unknown selector as for a wrong secret."""
    well_formed = bool(_TOKEN.fullmatch(presented))
    selector = presented[len(PREFIX) : len(PREFIX) + SELECTOR_LENGTH] if well_formed else ""
    row = (
        session.scalar(select(ApiToken).where(ApiToken.selector == selector)) if selector else None
    )
    expected = row.token_hash if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _hash(presented)) or row is None:
        raise AuthError("invalid or unknown token")
    if row.revoked_at is not None:
        raise AuthError("this token was revoked")
    return TokenInfo(row.id, row.name, tuple(row.scopes), row.last_used_at)


def needs_touch(token: TokenInfo, *, now: datetime | None = None) -> bool:
    """Whether ``last_used_at`` is older than LAST_USED_EVERY (it is written that rarely)."""
    return token.last_used_at is None or (now or utcnow()) - token.last_used_at > LAST_USED_EVERY


def touch(session: Session, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is not None:
        row.last_used_at = utcnow()


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(session: Session, name: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise NotFoundError(f"no token named {name!r} (newsletter token ls)")
    row.revoked_at = row.revoked_at or utcnow()
    session.flush()
    return row
