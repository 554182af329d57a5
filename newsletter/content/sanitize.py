"""Sanitising untrusted HTML (feed bodies, Markdown with raw HTML) for email, with nh3.

What survives is an email-safe allowlist: text structure, links, images, tables. No script,
style, iframe, object, form, SVG or event handler survives, no ``style``/``class``/``id``
attribute, and no URL other than http(s) (plus mailto/tel for links). Relative URLs are made
absolute against the base URL; one that cannot be (no base) is dropped. Nesting is capped at
``MAX_DEPTH`` first (see ``nesting``): the parser inside nh3 slows with the square of it.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

from .nesting import MAX_DEPTH, cap_nesting

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
        "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "i", "img", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
        "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip

ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "width", "height", "title"},
    "ol": {"start"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
}

# Dropped together with everything inside them (the others outside the allowlist lose only
# the tag and keep their text).
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
        "noscript", "noembed", "template", "svg", "math", "select", "textarea", "button",
        "audio", "video",
    }
)  # fmt: skip

URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_WEB_SCHEMES = ("http", "https")


def absolute_url(url: str, base_url: str) -> str:
    """``url`` made absolute against ``base_url``; "" if ``url`` is empty or the result is not
    an http(s) URL."""
    if not url.strip():
        return ""
    joined = urljoin(base_url, url.strip())
    return joined if urlsplit(joined).scheme in _WEB_SCHEMES else ""


def sanitize_html(html: str, *, base_url: str) -> str:
    """Return ``html`` cleaned to the email-safe allowlist, with absolute http(s) URLs.

    Safe for any input (it never raises on bad markup), in time linear in its size: tags
    nested deeper than ``MAX_DEPTH`` are dropped first, their text kept. Links get
    ``rel="noopener"``; images keep ``alt`` as given, even empty.
    """

    def resolve(url: str) -> str | None:
        return absolute_url(url, base_url) or None

    return nh3.clean(
        cap_nesting(html, dropped_with_content=DROPPED_WITH_CONTENT, max_depth=MAX_DEPTH),
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        url_relative=resolve,
        link_rel="noopener",
        strip_comments=True,
    ).strip()


class _FirstImage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.src = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and not self.src:
            self.src = dict(attrs).get("src") or ""


def first_image_url(html: str) -> str:
    """The ``src`` of the first image in sanitised ``html`` that has one, or ""."""
    finder = _FirstImage()
    finder.feed(html)
    finder.close()
    return finder.src
