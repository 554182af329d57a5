"""The values the composer takes: what an issue says and who receives it.

These are plain frozen value objects so the store, the CLI and the dispatcher can build them
from rows without the composer knowing about the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, kw_only=True, slots=True)
class PostView:
    """One blog post as the templates see it.

    ``html`` is already sanitised and holds only absolute URLs (the content package does
    that). ``text`` is a plain-text version if the caller has one; otherwise the composer
    derives it from ``html``.
    """

    title: str
    url: str
    html: str
    summary: str
    published_at: datetime | None
    author: str = ""
    image_url: str = ""
    text: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueContent:
    """Everything about an issue that is the same for every recipient."""

    issue_id: int
    kind: Literal["post", "digest"]
    subject: str
    preheader: str
    posts: tuple[PostView, ...]
    # Path of its web-view page under site.base_url (newsletter.issues.archive.web_path).
    web_path: str = ""
    # The templates to use, email/<template>.html and .txt ("": the kind's own); a sequence
    # step's front matter may name one (newsletter.sequences).
    template: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Recipient:
    """One subscriber, as much as a message needs.

    ``token`` is the subscriber's opaque (>= 128-bit) unsubscribe/preferences token; it goes
    into the URLs instead of the address. ``tracked`` is False for a subscriber who chose not
    to be tracked: their message keeps the links as written.
    """

    subscriber_id: int
    email: str
    name: str
    token: str
    tracked: bool = True
