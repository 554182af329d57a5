"""The weekly and monthly digests of readers who chose one (newsletter.audiences.cadence).

At each [cadence] weekly (monthly) time, for every list with posts held for such readers: one
digest issue per set of posts readers wait for (usually one; a reader who joined during the
week waits for fewer), made and scheduled for now in one transaction with the taking of the
queue rows, so each held post goes into exactly one digest of each reader, however often the
job runs or the daemon restarts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..config import Settings
from ..store import cadence as queue
from ..store.models import Issue, MailingList, Post, utcnow
from . import status as issue_status
from .service import create_digest_of


def make_cadence_digests(
    session: Session, settings: Settings, cadence: str, *, now: datetime | None = None
) -> list[Issue]:
    """Make and schedule (for now) the ``cadence`` digests of every list. Returns them."""
    now = now or utcnow()
    made: list[Issue] = []
    queue.refresh_statistics(session)
    for list_id, waiting_cadence in sorted(queue.waiting_counts(session)):
        if waiting_cadence != cadence:
            continue
        queue.drop_inactive(session, list_id, cadence)
        post_ids = queue.waiting_posts(session, list_id, cadence)
        if not post_ids:
            continue
        mlist = session.get_one(MailingList, list_id)
        for mask in queue.groups(session, list_id, cadence, post_ids):
            chosen = [p for i, p in enumerate(post_ids) if mask >> i & 1]
            posts = [session.get_one(Post, p) for p in chosen]
            posts.sort(key=lambda p: (p.published_at or p.created_at, p.id), reverse=True)
            issue = create_digest_of(session, settings, mlist, posts, cadence=cadence)
            queue.take(
                session,
                list_id=list_id,
                cadence=cadence,
                post_ids=post_ids,
                mask=mask,
                issue_id=issue.id,
            )
            issue.scheduled_at = now
            issue_status.change(issue, issue_status.SCHEDULED)
            made.append(issue)
    session.flush()
    return made
