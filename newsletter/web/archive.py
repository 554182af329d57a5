"""The public archive: issues that went out, their "view in browser" pages and an Atom feed.

An issue is in the archive once sending started (its emails carry the web-view link from
the first message on) unless it was cancelled. Pages are rendered by the composer with no
personal fields (``compose.render_web_html``), so one reader never sees another's name,
address or links. Each function takes the caller's Session; NotFoundError for an issue that
is not (or not yet) published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..compose import IssueContent
from ..errors import NotFoundError
from ..issues.service import issue_content
from ..store.models import Issue

PUBLISHED = ("sending", "paused", "sent")
FEED_SIZE = 20


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One published issue as the archive list and the feed show it."""

    issue_id: int
    subject: str
    preheader: str
    published_at: datetime
    post_titles: tuple[str, ...]


def published_issues(session: Session, *, limit: int | None = None) -> list[ArchiveEntry]:
    """Published issues, newest first (by the time sending started)."""
    stmt = (
        select(Issue)
        .where(Issue.status.in_(PUBLISHED), Issue.started_at.is_not(None))
        .order_by(Issue.started_at.desc(), Issue.id.desc())
        .options(selectinload(Issue.posts))
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        ArchiveEntry(
            issue_id=i.id,
            subject=i.subject,
            preheader=i.preheader,
            published_at=i.started_at,  # type: ignore[arg-type]  # filtered above
            post_titles=tuple(p.title for p in i.posts),
        )
        for i in session.scalars(stmt)
    ]


def published_issue(session: Session, issue_id: int) -> IssueContent:
    """What the composer needs to show issue ``issue_id``; NotFoundError unless published."""
    issue = session.get(Issue, issue_id)
    if issue is None or issue.status not in PUBLISHED or issue.started_at is None:
        raise NotFoundError(f"no published issue {issue_id}")
    return issue_content(issue)
