"""Issue use cases: create from a post, as a digest or as a resend, list, show, and the
composer's view.

Each takes the caller's Session. Raises NotFoundError (post, list, issue, segment),
InvalidInputError (nothing to send, a bad subject, a resend that cannot be) and
SegmentSyntaxError (a --where that cannot be read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from ..audiences import rules
from ..compose import IssueContent, PostView
from ..config import Settings
from ..content.library import get_post, iter_posts
from ..content.text import clean_line, html_to_text
from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..store import segments as audience_store
from ..store.models import Issue, IssuePost, MailingList, Post, utcnow
from ..subscribers.service import get_list
from . import status as issue_status

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
    audience: Audience | None = None,
) -> Issue:
    """Create a draft issue from one post (``post_id`` or ``latest``) or a digest.
    ``archive``: in the public archive or not (None: as its list says, see issues.archive).
    ``audience``: who beyond the list (a segment or --where, exclusions), kept as the
    issue's audience_rule and applied when sending starts.

    A digest holds every post not yet in another issue to the same list (drafts count;
    cancelled and missed issues do not), published after ``since`` if given, newest first
    (``waiting_only``: see digest_posts); with none, it is refused.
    """
    if sum((post_id is not None, latest, digest)) != 1:
        raise InvalidInputError("choose exactly one of --post ID, --latest or --digest")
    mlist = get_list(session, list_name) if list_name else None
    rule = (audience or Audience()).rule(session)
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
        audience_rule=rule,
    )
    return _add(session, issue, posts)


def create_digest_of(
    session: Session, settings: Settings, mlist: MailingList, posts: Sequence[Post], *, cadence: str
) -> Issue:
    """A digest of ``posts`` for the readers of ``mlist`` who chose the ``cadence`` digest
    (newsletter.issues.digests): a draft whose audience is the readers whose held posts it
    takes (newsletter.audiences.cadence)."""
    issue = Issue(
        kind="digest",
        subject=_subject(digest_subject(settings.digest.subject, settings.site.name, len(posts))),
        preheader=clean_line("; ".join(p.title for p in posts[:3]))[:200],
        list_id=mlist.id,
        status="draft",
        cadence=cadence,
        audience_rule={},
    )
    return _add(session, issue, posts)


def _add(session: Session, issue: Issue, posts: Sequence[Post]) -> Issue:
    session.add(issue)
    session.flush()
    for position, post in enumerate(posts):
        session.add(IssuePost(issue_id=issue.id, post_id=post.id, position=position))
    session.flush()
    session.expire(issue, ["posts"])
    return issue


@dataclass(frozen=True, slots=True)
class Audience:
    """Who an issue goes to beyond its list (`issue create --segment | --where`,
    ``--exclude-list``, ``--exclude-segment``); see newsletter.audiences.rules."""

    where: str | None = None
    segment: str | None = None
    exclude_lists: tuple[str, ...] = ()
    exclude_segments: tuple[str, ...] = ()

    def rule(
        self, session: Session, *, resend_of: int | None = None, to: str | None = None
    ) -> dict[str, Any]:
        return rules.make_rule(
            session,
            where=self.where,
            segment=self.segment,
            exclude_lists=self.exclude_lists,
            exclude_segments=self.exclude_segments,
            resend_of=resend_of,
            to=to,
        )


def create_resend(
    session: Session,
    settings: Settings,
    *,
    resend_of: int,
    to: str,
    subject: str | None = None,
    after: timedelta | None = None,
    archive: bool | None = None,
    audience: Audience | None = None,
    now: datetime | None = None,
) -> Issue:
    """A new issue with the same posts, subject and preheader as issue ``resend_of`` (its
    subject ``subject`` if given), for those who received it and did not click
    (``to="non-clickers"``) or open it ("non-openers"), or whose delivery failed
    ("not-delivered"); only active subscribers, as always, so no one who unsubscribed,
    bounced or complained meanwhile. Who exactly is decided when it starts sending.

    ``after``: scheduled that long after the first one finished (or now, if that is past);
    otherwise a draft. It stays out of the public archive unless ``archive``. Raises
    InvalidInputError for an issue never sent, an ``after`` for one still sending, and a
    resend to non-clickers (non-openers) while events name no reader ([tracking]
    per_subscriber, and opens, off)."""
    original = get_issue(session, resend_of)
    if original.started_at is None:
        raise InvalidInputError(f"issue {resend_of} was never sent: no one to resend it to")
    if to in ("non-clickers", "non-openers") and not settings.tracking.per_subscriber:
        raise InvalidInputError(
            f"--to {to} needs [tracking] per_subscriber = true: without it no click or open "
            f"names a reader, and the resend would go to everyone who received issue {resend_of}"
        )
    if to == "non-openers" and not settings.tracking.opens:
        raise InvalidInputError("--to non-openers needs [tracking] opens = true")
    rule = (audience or Audience()).rule(session, resend_of=resend_of, to=to)
    issue = Issue(
        archive=False if archive is None else archive,
        kind=original.kind,
        subject=_subject(subject if subject is not None else original.subject),
        preheader=original.preheader,
        list_id=original.list_id,
        status="draft",
        audience_rule=rule,
    )
    issue = _add(session, issue, list(original.posts))
    if after is not None:
        if original.finished_at is None:
            raise InvalidInputError(
                f"issue {resend_of} is {original.status}: --after counts from when it finished"
            )
        issue.scheduled_at = max(original.finished_at + after, now or utcnow())
        issue_status.change(issue, issue_status.SCHEDULED)
        session.flush()
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
    """The marketer's issues, newest first (not the issues sequence steps are sent through:
    `sequence show` reports those)."""
    query = select(Issue).where(Issue.sequence_id.is_(None)).order_by(Issue.id.desc())
    yield from session.scalars(query)


def audience_size(session: Session, issue: Issue) -> int:
    """Active subscribers the issue would go to now: its list and audience rule, the same
    condition the ledger is filled with when sending starts."""
    return audience_store.count(session, rules.audience(session, issue))


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
        "audience_rule": issue.audience_rule or {},
        "cadence": issue.cadence,
        "local_time": issue.local_time,
    }


def issue_content(issue: Issue, *, web_path: str = "") -> IssueContent:
    """What the composer needs of an issue (no database objects cross over); ``web_path``:
    its web-view page (newsletter.issues.archive.web_path). A sequence step's issue shows the
    step (its Markdown, its template)."""
    step = issue.step
    if step is not None:
        posts: tuple[PostView, ...] = (
            PostView(
                title=step.subject,
                url="",
                html=step.html,
                summary=step.preheader,
                published_at=None,
            ),
        )
    else:
        posts = tuple(
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
        )
    return IssueContent(
        web_path=web_path,
        issue_id=issue.id,
        kind=issue.kind,  # type: ignore[arg-type]
        subject=issue.subject,
        preheader=issue.preheader,
        posts=posts,
        template=step.template if step is not None else "",
    )
