"""Parsing RSS 0.9x/1.0/2.0 and Atom bodies with feedparser into ``FeedData``.

feedparser only parses the bytes given (it never fetches, never sanitises and never resolves
relative URLs here): entry bodies go through our own sanitiser, relative to the entry's link.
"""

from __future__ import annotations

import calendar
import html
import io
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

import feedparser

from ..errors import FeedError
from .models import FeedData, PostData
from .posts import build_post
from .sanitize import absolute_url, sanitize_html
from .text import clean_line, html_to_text

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


def parse_feed(data: bytes, *, base_url: str) -> FeedData:
    """Parse a feed body; ``base_url`` is where it came from (the base for relative links).

    Entries keep feed order; a repeated guid is kept once. A feed with no entries is valid.
    Raises FeedError naming ``base_url`` when the body is empty or is not RSS or Atom.
    """
    # BytesIO: feedparser would read a bytes value that looks like a path or URL as one.
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.get("entries"):
        if not data.strip():
            reason = "the body is empty"
        else:
            problem = clean_line(str(parsed.get("bozo_exception") or ""))
            reason = f"not RSS or Atom ({problem})" if problem else "not RSS or Atom"
        raise FeedError(f"cannot parse feed {base_url}: {reason}")

    feed = parsed.feed
    link = absolute_url(feed.get("link", ""), base_url)
    feed_author = _author(feed)
    entries: dict[str, PostData] = {}
    for entry in parsed.entries:
        post = _post(entry, base_url=base_url, fallback_base=link or base_url, author=feed_author)
        entries.setdefault(post.guid, post)
    return FeedData(
        title=_plain(feed.get("title_detail"), base_url),
        link=link,
        entries=tuple(entries.values()),
    )


def _post(entry: Mapping[str, Any], *, base_url: str, fallback_base: str, author: str) -> PostData:
    """One feed entry as a post; its body is resolved against its own link when it has one."""
    url = absolute_url(entry.get("link", ""), base_url)
    page = url or fallback_base
    body, xml_base = _body(entry)
    summary_detail = entry.get("summary_detail")
    summary = ""
    if summary_detail and summary_detail.get("value") != body:
        summary = _plain(summary_detail, page)
    # Not .get(): feedparser would answer with the published time (a deprecated fallback).
    updated_at = _utc(entry["updated_parsed"]) if "updated_parsed" in entry else None
    return build_post(
        guid=entry.get("id") or "",
        url=url,
        title=_plain(entry.get("title_detail"), page),
        html=body,
        # relative URLs in the body: against its xml:base (the entry's, else the feed's, as
        # feedparser carries it), else the entry's link, else the feed's address
        base_url=absolute_url(xml_base, base_url) if xml_base else page,
        summary=summary,
        published_at=_utc(entry.get("published_parsed")) or updated_at,
        updated_at=updated_at,
        author=_author(entry) or author,
        image_url=_image(entry),
    )


def _body(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The entry's body as (untrusted) HTML: HTML content first, then any content, then the
    summary; and the xml:base in force for it ("" when none)."""
    candidates = [*entry.get("content", ()), entry.get("summary_detail")]
    candidates = [c for c in candidates if c and c.get("value")]
    if not candidates:
        return "", ""
    chosen = next((c for c in candidates if c.get("type") in _HTML_TYPES), candidates[0])
    base = chosen.get("base") or ""
    if chosen.get("type") in _HTML_TYPES:
        return chosen["value"], base
    paragraphs = (p.strip() for p in chosen["value"].split("\n\n"))
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p), base


def _plain(detail: Mapping[str, Any] | None, base_url: str) -> str:
    """A feed text construct (title, summary) as one line of plain text."""
    if not detail:
        return ""
    value = detail.get("value") or ""
    if detail.get("type") in _HTML_TYPES:
        value = html_to_text(sanitize_html(value, base_url=base_url), bare=True)
    return clean_line(value)


def _author(item: Mapping[str, Any]) -> str:
    """The author's name; an RSS ``email (Name)`` gives the name, a bare address nothing."""
    detail = item.get("author_detail") or {}
    value = detail.get("name") or item.get("author") or ""
    if "@" in value:
        value = parseaddr(value)[0]
    return clean_line(value)


def _image(entry: Mapping[str, Any]) -> str:
    """The image the feed names for the entry (media:thumbnail, media:content, enclosure)."""
    for thumbnail in entry.get("media_thumbnail", ()):
        if thumbnail.get("url"):
            return thumbnail["url"]
    for media in entry.get("media_content", ()):
        if media.get("url") and (
            media.get("medium") == "image" or media.get("type", "").startswith("image/")
        ):
            return media["url"]
    for enclosure in entry.get("enclosures", ()):
        if enclosure.get("href") and enclosure.get("type", "").startswith("image/"):
            return enclosure["href"]
    return ""


def _utc(value: time.struct_time | None) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime."""
    if not value:
        return None
    try:  # a date outside what Python holds (year 0, 9999 in a later zone) counts as missing
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
