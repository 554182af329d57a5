"""Feed modes: an issue of its own for each new post of a "draft" or "send" feed.

``announce_pending`` turns posts marked ``announce = "pending"`` (by ``poll_feed``) into
issues, marking each post done in the same transaction, so a post gets exactly one issue
however often feeds are polled or the daemon restarts. In "send" mode the issue is scheduled
for now; the scheduler (or `issue send`) sends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..store.models import Issue, Post, utcnow
from . import status as issue_status
from .service import create_issue


@dataclass(frozen=True)
class Announced:
    issue_id: int
    post_id: int
    mode: str
    list_name: str


def announce_pending(session: Session, settings: Settings) -> list[Announced]:
    """Create the issues of pending posts. Raises NotFoundError if a feed's list is missing."""
    feeds = {f.url: f for f in settings.feeds}
    done: list[Announced] = []
    pending = session.scalars(
        select(Post).where(Post.announce == "pending").order_by(Post.id).with_for_update()
    ).all()
    for post in pending:
        feed = feeds.get(post.origin)
        if feed is None or feed.mode not in ("draft", "send"):
            post.announce = "none"  # the feed left the config or changed mode
            continue
        issue: Issue = create_issue(session, settings, post_id=post.id, list_name=feed.list or None)
        if feed.mode == "send":
            issue_status.change(issue, issue_status.SCHEDULED)
            issue.scheduled_at = utcnow()
            if issue.list_id is not None:
                # each reader's cadence: "every post" readers get it now, the others in
                # their digest (newsletter.audiences.cadence)
                issue.cadence = "post"
                default = settings.list_settings(feed.list).cadence
                issue.audience_rule = {**(issue.audience_rule or {}), "default_cadence": default}
        post.announce = "done"
        done.append(Announced(issue.id, post.id, feed.mode, feed.list))
    session.flush()
    return done
