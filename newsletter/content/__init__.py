"""Posts ingest: feeds and Markdown files in, clean ``PostData`` out. Pure library code.

The feed pipeline runs in stages, each usable alone:

    fetch_feed(url, etag=..., last_modified=...)  -> FetchResult   (the only network code)
    parse_feed(result.body, base_url=result.url)  -> FeedData      (feedparser, bytes only)
    load_markdown_post(path, base_url=...)        -> PostData      (front matter + CommonMark)

Every post body goes through ``sanitize_html`` (nh3; feed HTML is untrusted) with its relative
links and images made absolute; ``html_to_text`` gives the plain text of such a body for the
text/plain part of an email; ``xml_safe`` takes out of a text what XML cannot carry (stored
posts and the archive feed go through it). Errors: ``FeedError`` (fetch, parse) and
``ContentError`` (Markdown posts), each one line naming the URL or the file.
"""

from .feeds import parse_feed
from .fetch import fetch_feed
from .markdown_posts import load_markdown_post
from .models import FeedData, FetchResult, PostData
from .posts import content_hash
from .sanitize import sanitize_html
from .text import html_to_text, xml_safe

__all__ = [
    "FeedData",
    "FetchResult",
    "PostData",
    "content_hash",
    "fetch_feed",
    "html_to_text",
    "load_markdown_post",
    "parse_feed",
    "sanitize_html",
    "xml_safe",
]
