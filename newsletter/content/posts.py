"""Turning raw post fields (from a feed entry or a Markdown file) into a clean ``PostData``.

The one place where a body is sanitised, the summary and image fall back to the body, and the
guid and content hash are made, so feeds and Markdown posts follow the same rules. It is also
where every stored text loses the characters XML cannot carry (``xml_safe``): a post's title
ends up in the archive feed, and one U+FFFF there would break the feed for every reader.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from .models import PostData
from .sanitize import absolute_url, first_image_url, sanitize_html
from .text import clean_line, html_to_text, summarize, xml_safe

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
    URL, then to "sha256:" and the content hash. No field keeps a character that XML 1.0
    forbids or a non-character (the sanitiser keeps them, even from character references).
    Never raises.
    """
    body = xml_safe(sanitize_html(html, base_url=base_url))
    text = html_to_text(body, bare=True)
    title = clean_line(xml_safe(title)) or summarize(text, TITLE_FALLBACK_LENGTH)
    digest = content_hash(title, body)
    url = xml_safe(absolute_url(url, base_url))
    return PostData(
        guid=clean_line(xml_safe(guid)) or url or f"sha256:{digest}",
        url=url,
        title=title,
        published_at=published_at,
        updated_at=updated_at,
        summary=summarize(xml_safe(summary) or text),
        html=body,
        author=clean_line(xml_safe(author)),
        image_url=xml_safe(absolute_url(image_url, base_url)) or first_image_url(body),
        content_hash=digest,
    )
