"""The values the content stage hands on: a fetched body, a parsed feed, a post."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, kw_only=True, slots=True)
class PostData:
    """One post, from a feed entry or a Markdown file, ready to be stored.

    ``html`` is sanitised and its links and images are absolute; ``title``, ``summary`` and
    ``author`` are plain text on one line; times are aware and in UTC. ``content_hash`` changes
    when the title or the body changes, so an edited post can be told from an unchanged one.
    """

    guid: str
    url: str
    title: str
    published_at: datetime | None
    updated_at: datetime | None
    summary: str
    html: str
    author: str
    image_url: str
    content_hash: str


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedData:
    """A parsed feed: its title, its site link (absolute, or "") and its posts in feed order."""

    title: str
    link: str
    entries: tuple[PostData, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchResult:
    """The answer to one feed fetch.

    ``etag`` and ``last_modified`` are the validators to send next time; ``url`` is the final
    URL after redirects, the base for relative links in the body.
    """

    status: Literal["ok", "not_modified"]
    body: bytes
    etag: str | None
    last_modified: str | None
    url: str
