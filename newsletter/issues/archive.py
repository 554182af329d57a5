"""What is public: which issues the web archive shows, and the links to an issue's page.

An issue is in the public archive (``/archive``, its page, the Atom feed) when the marketer
said so (``issue create|edit --archive``), or, when they said nothing, when its audience is
public: every subscriber (no list), or a list that is public (``list create|edit --public``;
by default a list is public only when visitors can join it on the subscribe form, i.e. it is
in ``[web] lists``). ``--no-archive`` and ``issue unpublish`` take it out.

Pages are named by the issue's unguessable slug, never by its sequential id. A public issue's
page is ``/archive/<slug>``. The web-view link in the emails of a private issue carries a
signature of the slug (HMAC-SHA256 with a key kept in the database, one per installation):
``/archive/<slug>?k=<signature>``; the page answers to that link only, so recipients can read
it in a browser while nobody can list or guess it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from sqlalchemy import ColumnElement, and_, false, or_
from sqlalchemy.orm import Session

from ..config import Settings
from ..store.models import Issue, MailingList
from ..store.secrets import key as load_key

KEY_NAME = "archive"  # the secrets-table key that signs private web-view links
PUBLISHED = ("sending", "paused", "sent")  # an issue is on the web once sending started


def list_is_public(mlist: MailingList | None, settings: Settings) -> bool:
    """Whether issues to this list (None: every subscriber) are public by default."""
    if mlist is None:
        return True
    if mlist.public is not None:
        return bool(mlist.public)
    return mlist.name in settings.web.lists


def is_public(issue: Issue, settings: Settings) -> bool:
    """Whether the issue belongs in the public archive (once it is published)."""
    if issue.archive is not None:
        return bool(issue.archive)
    return list_is_public(issue.mailing_list, settings)


def public_clause(settings: Settings) -> ColumnElement[bool]:
    """``is_public`` as a SQL condition on Issue, outer-joined to MailingList."""
    by_list = or_(
        Issue.list_id.is_(None),
        MailingList.public.is_(True),
        and_(
            MailingList.public.is_(None),
            MailingList.name.in_(settings.web.lists) if settings.web.lists else false(),
        ),
    )
    return or_(Issue.archive.is_(True), and_(Issue.archive.is_(None), by_list))


def is_published(issue: Issue) -> bool:
    """Sending started (its emails already point at its page) and it was not cancelled."""
    return issue.status in PUBLISHED and issue.started_at is not None


def sign(key: bytes, slug: str) -> str:
    """The web-view signature of an issue slug (128 bits, base64url)."""
    digest = hmac.new(key, b"view:" + slug.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_signature(key: bytes, slug: str, signature: str) -> bool:
    """Constant-time check of a web-view signature."""
    return hmac.compare_digest(sign(key, slug), signature)


def web_path(session: Session, issue: Issue, settings: Settings) -> str:
    """The path of the issue's web-view page as its emails link to it."""
    if is_public(issue, settings):
        return f"/archive/{issue.slug}"
    return f"/archive/{issue.slug}?k={sign(load_key(session, KEY_NAME), issue.slug)}"


def visible(session: Session, issue: Issue, settings: Settings, signature: str | None) -> bool:
    """Whether a request for the issue's page (with ``?k=`` ``signature`` if any) may see it."""
    if not is_published(issue):
        return False
    if is_public(issue, settings):
        return True
    return bool(signature) and valid_signature(
        load_key(session, KEY_NAME), issue.slug, signature or ""
    )


__all__ = [
    "PUBLISHED",
    "is_public",
    "is_published",
    "list_is_public",
    "public_clause",
    "sign",
    "valid_signature",
    "visible",
    "web_path",
]
