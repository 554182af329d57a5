"""The published issues, as the web archive, its issue pages and its Atom feed read them.

An issue is in the archive once sending started (its emails carry the web-view link from
the first message on) unless it was cancelled, and only if it is public; a private one is
shown only to its signed web-view link (issues/archive.py says what is public).
Pages are rendered by the composer with no personal fields (``compose.render_web_html``),
so one reader never sees another's name, address or links. Each function takes the caller's
Session; NotFoundError for an issue that is not (or not yet) published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..compose import IssueContent
from ..config import Settings
from ..errors import NotFoundError
from ..store.models import Issue, MailingList
from . import archive
from .service import issue_content

PUBLISHED = archive.PUBLISHED
FEED_SIZE = 20


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One published issue as the archive list and the feed show it."""

    issue_id: int
    slug: str
    subject: str
    preheader: str
    published_at: datetime
    post_titles: tuple[str, ...]


def published_issues(
    session: Session, settings: Settings, *, limit: int | None = None
) -> list[ArchiveEntry]:
    """Public published issues, newest first (by the time sending started)."""
    stmt = (
        select(Issue)
        .outerjoin(MailingList, MailingList.id == Issue.list_id)
        .where(
            Issue.status.in_(PUBLISHED),
            Issue.started_at.is_not(None),
            Issue.sequence_id.is_(None),  # a welcome email is not an edition
            archive.public_clause(settings),
        )
        .order_by(Issue.started_at.desc(), Issue.id.desc())
        .options(selectinload(Issue.posts))
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        ArchiveEntry(
            issue_id=i.id,
            slug=i.slug,
            subject=i.subject,
            preheader=i.preheader,
            published_at=i.started_at,  # type: ignore[arg-type]  # filtered above
            post_titles=tuple(p.title for p in i.posts),
        )
        for i in session.scalars(stmt)
    ]


def published_issue(
    session: Session, settings: Settings, slug: str, signature: str | None = None
) -> IssueContent:
    """What the composer needs to show the issue named ``slug``: NotFoundError unless it is
    published and public, or private with a valid web-view ``signature``."""
    issue = session.scalars(select(Issue).where(Issue.slug == slug)).first()
    if issue is None or not archive.visible(session, issue, settings, signature):
        raise NotFoundError("no such issue in the archive")
    return issue_content(issue)


def public_slug(session: Session, settings: Settings, issue_id: int) -> str:
    """The slug of public published issue ``issue_id`` (old ``/archive/<id>`` links)."""
    issue = session.get(Issue, issue_id)
    if issue is None or not archive.is_published(issue) or not archive.is_public(issue, settings):
        raise NotFoundError("no such issue in the archive")
    return issue.slug
