"""Posts in the store: polling feeds into it, adding Markdown posts, listing.

``poll_feed`` opens its own short transactions (read the validators, then store the
result) because the network fetch in between must not hold a database transaction; every
other function takes the caller's Session. A feed error is recorded on the feed row and
returned, never raised, so one broken feed does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import FeedError, NotFoundError, StoreError
from ..store.models import Feed, Post, utcnow
from .feeds import parse_feed
from .fetch import fetch_feed
from .markdown_posts import load_markdown_post
from .models import FeedData, FetchResult, PostData
from .text import clean_line

log = logging.getLogger("newsletter.content")
MARKDOWN_ORIGIN = "markdown"
Change = Literal["new", "updated", "unchanged"]


@dataclass
class FeedOutcome:
    """What one poll of one feed did."""

    url: str
    status: Literal["fetched", "not_modified", "error"]
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    error: str = ""
    new_post_ids: tuple[int, ...] = ()


def upsert_post(
    session: Session, data: PostData, *, origin: str, feed_id: int | None = None
) -> tuple[Post, Change]:
    """Insert a post, or update it in place when its content changed (same origin + guid)."""
    post = session.scalar(select(Post).where(Post.origin == origin, Post.guid == data.guid))
    fields: dict[str, Any] = {
        "url": data.url,
        "title": data.title,
        "summary": data.summary,
        "html": data.html,
        "author": data.author,
        "image_url": data.image_url,
        "content_hash": data.content_hash,
        "published_at": data.published_at,
        "updated_at": data.updated_at,
    }
    if post is None:
        post = Post(origin=origin, guid=data.guid, feed_id=feed_id, **fields)
        session.add(post)
        session.flush()
        return post, "new"
    if post.content_hash == data.content_hash and post.url == data.url:
        return post, "unchanged"
    for key, value in fields.items():
        setattr(post, key, value)
    session.flush()
    return post, "updated"


def poll_feed(
    sessions: sessionmaker[Session],
    url: str,
    *,
    mode: str = "",
    announce_backlog: bool = False,
    client: httpx.Client | None = None,
    timeout: float = 20.0,
    deadline: float = 30.0,
) -> FeedOutcome:
    """Fetch one feed (conditionally, with the stored ETag / Last-Modified) and store its
    posts. Returns what happened; errors are recorded on the feed and returned.

    With ``mode`` "draft" or "send", each new post is marked for an issue of its own
    (``Post.announce = "pending"``; ``issues.announce`` makes it). A feed's first successful
    poll only records its backlog as seen ("backlog": no issue of its own and no scheduled
    digest), unless ``announce_backlog``.
    """
    with sessions() as session, session.begin():
        feed = session.scalar(select(Feed).where(Feed.url == url))
        if feed is None:
            feed = Feed(url=url)
            session.add(feed)
            session.flush()
        feed_id, etag, last_modified = feed.id, feed.etag, feed.last_modified
        seen_before = feed.title != ""  # set by the first successful parse
    if not seen_before and not announce_backlog:
        announce = "backlog"  # a new feed's existing posts: seen, never mailed on their own
    elif mode in ("draft", "send"):
        announce = "pending"
    else:
        announce = "none"
    try:
        result = fetch_feed(
            url,
            etag=etag,
            last_modified=last_modified,
            client=client,
            timeout=timeout,
            deadline=deadline,
        )
        parsed = parse_feed(result.body, base_url=result.url) if result.status == "ok" else None
        return _store(sessions, url, feed_id, result, parsed, announce)
    except (StoreError, OperationalError):
        raise  # a database that cannot be used is the operator's problem, not this feed's
    except Exception as exc:  # any failure of one feed is that feed's one line; others go on
        error = str(exc) if isinstance(exc, FeedError) else _one_line(url, exc)
        with sessions() as session, session.begin():
            feed = session.get_one(Feed, feed_id)
            feed.last_error = error[:1000]
            feed.last_fetched_at = utcnow()
        return FeedOutcome(url=url, status="error", error=error)


def _one_line(url: str, exc: Exception) -> str:
    """A feed's unexpected failure (a parser or a store bug on odd input) as one line."""
    first = clean_line(next((ln for ln in str(exc).splitlines() if ln.strip()), ""))
    log.warning("feed.unexpected url=%s error=%s", url, type(exc).__name__)
    return f"cannot read feed {url}: {type(exc).__name__}" + (f": {first[:300]}" if first else "")


def _store(
    sessions: sessionmaker[Session],
    url: str,
    feed_id: int,
    result: FetchResult,
    parsed: FeedData | None,
    announce: str,
) -> FeedOutcome:
    """Store a fetched feed's posts and validators in one transaction."""
    outcome = FeedOutcome(url=url, status="fetched" if parsed else "not_modified")
    new_ids: list[int] = []
    with sessions() as session, session.begin():
        feed = session.get_one(Feed, feed_id)
        feed.etag, feed.last_modified = result.etag, result.last_modified
        feed.last_fetched_at, feed.last_error = utcnow(), ""
        if parsed is not None:
            feed.title = (parsed.title or "(untitled feed)")[:500]
            for data in parsed.entries:
                post, change = upsert_post(session, data, origin=url, feed_id=feed_id)
                setattr(outcome, change, getattr(outcome, change) + 1)
                if change == "new":
                    post.announce = announce
                    new_ids.append(post.id)
    outcome.new_post_ids = tuple(new_ids)
    return outcome


def add_markdown_post(session: Session, path: str | Path, *, base_url: str) -> tuple[Post, Change]:
    """Store a Markdown post (front matter + body). Raises ContentError for a bad file."""
    data = load_markdown_post(path, base_url=base_url)
    return upsert_post(session, data, origin=MARKDOWN_ORIGIN)


def get_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise NotFoundError(f"no post with id {post_id}")
    return post


def iter_posts(session: Session, *, limit: int | None = None) -> Iterator[Post]:
    """Posts, newest first (by publication time, then by id)."""
    stmt = select(Post).order_by(Post.published_at.desc().nulls_last(), Post.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    yield from session.scalars(stmt)


def post_row(post: Post) -> dict[str, Any]:
    """The `post ls --json` form."""
    return {
        "id": post.id,
        "title": post.title,
        "url": post.url,
        "published_at": post.published_at.isoformat() if post.published_at else None,
        "origin": post.origin,
        "guid": post.guid,
        "author": post.author,
        "summary": post.summary,
    }
