"""Turning raw post fields (from a feed entry or a Markdown file) into a clean ``PostData``.

The one place where a body is sanitised, the summary and image fall back to the body, and the
guid and content hash are made, so feeds and Markdown posts follow the same rules.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from .models import PostData
from .sanitize import absolute_url, first_image_url, sanitize_html
from .text import clean_line, html_to_text, summarize

TITLE_FALLBACK_LENGTH = 80


def content_hash(title: str, html: str) -> str:
    """sha256 hex digest of a post's title and (sanitised) body."""
    return hashlib.sha256(f"{title}\0{html}".encode()).hexdigest()


def build_post(
    *,
    guid: str,
    url: str,
    title: str,
    html: str,
    base_url: str,
    summary: str = "",
    published_at: datetime | None = None,
    updated_at: datetime | None = None,
    author: str = "",
    image_url: str = "",
) -> PostData:
    """Make a ``PostData`` from untrusted fields.

    ``title`` falls back to the start of the body (feeds may have untitled items); ``html`` is
    raw HTML, sanitised here with relative URLs resolved against ``base_url``;
    ``summary`` is plain text (the start of the body when empty); ``image_url`` may be
    relative (the body's first image when empty or not http(s)); ``guid`` falls back to the
    URL, then to "sha256:" and the content hash. Never raises.
    """
    body = sanitize_html(html, base_url=base_url)
    text = html_to_text(body, bare=True)
    title = clean_line(title) or summarize(text, TITLE_FALLBACK_LENGTH)
    digest = content_hash(title, body)
    url = absolute_url(url, base_url)
    return PostData(
        guid=clean_line(guid) or url or f"sha256:{digest}",
        url=url,
        title=title,
        published_at=published_at,
        updated_at=updated_at,
        summary=summarize(summary or text),
        html=body,
        author=clean_line(author),
        image_url=absolute_url(image_url, base_url) or first_image_url(body),
        content_hash=digest,
    )
