"""Issue use cases: create from a post or as a digest, list, show, and the composer's view.

Each takes the caller's Session. Raises NotFoundError (post, list, issue) and
InvalidInputError (nothing to send, a bad subject).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from ..compose import IssueContent, PostView
from ..config import Settings
from ..content.library import get_post, iter_posts
from ..content.text import clean_line, html_to_text
from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..store.models import Issue, IssuePost, MailingList, Membership, Post, Subscriber
from ..subscribers.service import get_list

MAX_SUBJECT = 500


def _subject(text: str) -> str:
    subject = clean_line(text)[:MAX_SUBJECT]
    if not subject:
        raise InvalidInputError("an issue needs a subject on one line")
    return subject


def create_issue(
    session: Session,
    settings: Settings,
    *,
    post_id: int | None = None,
    latest: bool = False,
    digest: bool = False,
    since: datetime | None = None,
    list_name: str | None = None,
    subject: str | None = None,
    preheader: str | None = None,
    waiting_only: bool = False,
    archive: bool | None = None,
) -> Issue:
    """Create a draft issue from one post (``post_id`` or ``latest``) or a digest.
    ``archive``: in the public archive or not (None: as its list says, see issues.archive).

    A digest holds every post not yet in another issue to the same list (drafts count;
    cancelled and missed issues do not), published after ``since`` if given, newest first
    (``waiting_only``: see digest_posts); with none, it is refused.
    """
    if sum((post_id is not None, latest, digest)) != 1:
        raise InvalidInputError("choose exactly one of --post ID, --latest or --digest")
    mlist = get_list(session, list_name) if list_name else None
    if digest:
        posts = digest_posts(session, mlist, since=since, waiting_only=waiting_only)
        if not posts:
            audience = f"list {mlist.name!r}" if mlist else "every subscriber"
            raise InvalidInputError(f"nothing for a digest: every post already went to {audience}")
        count = len(posts)
        default_subject = digest_subject(settings.digest.subject, settings.site.name, count)
        default_preheader = "; ".join(p.title for p in posts[:3])
    else:
        if latest:
            post = next(iter_posts(session, limit=1), None)
            if post is None:
                raise NotFoundError("there are no posts yet: run `newsletter post fetch` first")
        else:
            post = get_post(session, post_id)  # type: ignore[arg-type]
        posts = [post]
        default_subject, default_preheader = post.title, post.summary
        if subject is None and not clean_line(post.title):
            default_subject = _subject_from_text(post)
    issue = Issue(
        archive=archive,
        kind="digest" if digest else "post",
        subject=_subject(subject if subject is not None else default_subject),
        preheader=clean_line(preheader if preheader is not None else default_preheader)[:200],
        list_id=mlist.id if mlist else None,
        status="draft",
    )
    session.add(issue)
    session.flush()
    for position, post in enumerate(posts):
        session.add(IssuePost(issue_id=issue.id, post_id=post.id, position=position))
    session.flush()
    session.expire(issue, ["posts"])
    return issue


SUBJECT_WORDS = 10  # a post without a title: its first words make the subject


def _subject_from_text(post: Post) -> str:
    """A subject for a post with no title: its first words (summary, else body), cut at a
    word with an ellipsis. InvalidInputError, naming --subject, when it has no text at all."""
    words = clean_line(post.summary or html_to_text(post.html, bare=True)).split()
    if not words:
        raise InvalidInputError(
            f"post {post.id} has no title and no text to make a subject from: "
            "give one with --subject"
        )
    subject = " ".join(words[:SUBJECT_WORDS])
    return subject + ("…" if len(words) > SUBJECT_WORDS else "")


def digest_subject(template: str, site: str, count: int) -> str:
    """Fill the configured digest subject; an unknown {field} is a ConfigError."""
    posts = f"{count} new post{'s' if count != 1 else ''}"
    try:
        return template.format(site=site, count=count, posts=posts)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"digest.subject: cannot fill {template!r}: {exc}") from None


def digest_posts(
    session: Session,
    mlist: MailingList | None,
    *,
    since: datetime | None = None,
    waiting_only: bool = False,
) -> list[Post]:
    """Posts not yet in any issue to this list (cancelled and missed ones do not count),
    newest first. ``waiting_only`` (the scheduled digest): only posts that wait for a digest,
    not those that get an issue of their own or a new feed's backlog."""
    same_audience = Issue.list_id.is_(None) if mlist is None else Issue.list_id == mlist.id
    already = exists().where(
        IssuePost.post_id == Post.id,
        IssuePost.issue_id == Issue.id,
        and_(same_audience, Issue.status.not_in(("cancelled", "missed"))),
    )
    stmt = select(Post).where(~already)
    if waiting_only:
        stmt = stmt.where(Post.announce == "none")
    if since is not None:
        stmt = stmt.where(Post.published_at >= since)
    stmt = stmt.order_by(Post.published_at.desc().nulls_last(), Post.id.desc())
    return list(session.scalars(stmt))


def get_issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"no issue with id {issue_id}")
    return issue


EDITABLE = ("draft", "scheduled")  # an issue whose text may still change


def edit_issue(
    session: Session,
    issue_id: int,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    archive: bool | None = None,
) -> Issue:
    """Change an issue's subject or preheader (before sending starts) or whether it is in
    the public archive (at any time). InvalidInputError for a text change once sending
    started: its emails already went out with the old one."""
    issue = get_issue(session, issue_id)
    if (subject is not None or preheader is not None) and issue.status not in EDITABLE:
        raise InvalidInputError(
            f"issue {issue_id} is {issue.status}: its subject and preheader can no longer change"
        )
    if subject is not None:
        issue.subject = _subject(subject)
    if preheader is not None:
        issue.preheader = clean_line(preheader)[:200]
    if archive is not None:
        issue.archive = archive
    session.flush()
    return issue


def iter_issues(session: Session) -> Iterator[Issue]:
    yield from session.scalars(select(Issue).order_by(Issue.id.desc()))


def audience_size(session: Session, issue: Issue) -> int:
    """Active subscribers the issue would go to now."""
    stmt = select(func.count()).select_from(Subscriber).where(Subscriber.status == "active")
    if issue.list_id is not None:
        stmt = stmt.join(Membership, Membership.subscriber_id == Subscriber.id).where(
            Membership.list_id == issue.list_id
        )
    return session.scalar(stmt) or 0


def issue_row(issue: Issue) -> dict[str, Any]:
    """The `issue ls --json` form."""
    return {
        "id": issue.id,
        "subject": issue.subject,
        "status": issue.status,
        "scheduled_at": issue.scheduled_at.isoformat() if issue.scheduled_at else None,
        "kind": issue.kind,
        "list": issue.mailing_list.name if issue.mailing_list else None,
        "preheader": issue.preheader,
        "post_ids": [p.id for p in issue.posts],
        "created_at": issue.created_at.isoformat(),
        "archive": issue.archive,
        "slug": issue.slug,
    }


def issue_content(issue: Issue, *, web_path: str = "") -> IssueContent:
    """What the composer needs of an issue (no database objects cross over); ``web_path``:
    its web-view page (newsletter.issues.archive.web_path)."""
    return IssueContent(
        web_path=web_path,
        issue_id=issue.id,
        kind=issue.kind,  # type: ignore[arg-type]
        subject=issue.subject,
        preheader=issue.preheader,
        posts=tuple(
            PostView(
                title=p.title,
                url=p.url,
                html=p.html,
                summary=p.summary,
                published_at=p.published_at,
                author=p.author,
                image_url=p.image_url,
            )
            for p in issue.posts
        ),
    )
