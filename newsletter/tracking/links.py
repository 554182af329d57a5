"""Rewriting an issue's links to the redirector, once per issue, when it is prepared.

``LinkPlan`` is what the composer needs: the signer, the base URL and the links that must
stay as they are (unsubscribe, preferences, the web view: the people who follow them must
never wonder whether that was counted). ``rewrite_html`` and ``rewrite_text`` replace every
other http(s) link with ``{base_url}/l/{link token}.{reader}``, where ``reader`` is a
placeholder the composer fills in per recipient; the links are numbered in the order they
first appear (the same in every process), and the same URL in both parts gets one number.
Index 0 is the honeypot (``HONEYPOT``): a link in the HTML that no person can see.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from .tokens import Signer

HONEYPOT = "https://honeypot.invalid/"
"""What the templates get as ``honeypot_url`` when clicks are tracked; it becomes link 0."""

MAX_URL = 2000  # longer links are left as they are (the table keeps up to 2,000 characters)

_A_HREF = re.compile(r"""(<a\b[^>]*?\shref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_TEXT_URL = re.compile(r"""https?://[^\s<>"]+""", re.IGNORECASE)
_TRAILING = ".,;:!?'"


@dataclass(slots=True)
class LinkPlan:
    """The per-issue part of link tracking, and the links numbered so far."""

    signer: Signer
    issue_id: int
    base_url: str
    keep_prefixes: tuple[str, ...]  # links starting with one of these are not rewritten
    clicks: bool = True  # rewrite the links (and add the honeypot)
    opens: bool = False  # add the open pixel
    reader: str = ""  # the placeholder the composer fills in with each reader's token
    urls: list[str] = field(default_factory=lambda: [HONEYPOT])
    _index: dict[str, int] = field(default_factory=lambda: {HONEYPOT: 0})

    def tracked(self, url: str) -> str | None:
        """The tracked form of ``url``, or None when it stays as it is."""
        if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL:
            return None
        if url != HONEYPOT and url.startswith(self.keep_prefixes):
            return None
        if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
            return None  # not a URL a mail client would follow as written
        idx = self._index.get(url)
        if idx is None:
            idx = self._index[url] = len(self.urls)
            self.urls.append(url)
        return f"{self.base_url}/l/{self.signer.link(self.issue_id, idx)}.{self.reader}"

    def pixel(self) -> str:
        """The open pixel's URL (the reader placeholder in it)."""
        return f"{self.base_url}/o/{self.signer.pixel(self.issue_id)}.{self.reader}.gif"


def rewrite_html(doc: str, plan: LinkPlan) -> str:
    """``doc`` with the href of every tracked <a> rewritten (entities in it decoded first:
    ``&amp;`` in an attribute is ``&`` in the URL the reader is sent to)."""

    def replace(m: re.Match[str]) -> str:
        tracked = plan.tracked(html.unescape(m.group(3)).strip())
        if tracked is None:
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{tracked}{m.group(2)}"

    return _A_HREF.sub(replace, doc)


def _url_end(url: str) -> str:
    """A URL found in running text without the punctuation after it: "(see https://x.y/a)."
    gives "https://x.y/a"; a closing parenthesis that belongs to the URL stays."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last == ")" and url.count("(") < url.count(")")):
            url = url[:-1]
        else:
            break
    return url


def rewrite_text(doc: str, plan: LinkPlan) -> str:
    """``doc`` (a plain-text part) with every tracked URL rewritten."""

    def replace(m: re.Match[str]) -> str:
        found = m.group(0)
        url = _url_end(found)
        tracked = plan.tracked(url)
        return found if tracked is None else tracked + found[len(url) :]

    return _TEXT_URL.sub(replace, doc)


_HONEYPOT_A = re.compile(
    r"<a\b[^>]*?\shref\s*=\s*([\"'])" + re.escape(HONEYPOT) + r"\1.*?</a>",
    re.IGNORECASE | re.DOTALL,
)


def strip_honeypot(doc: str) -> str:
    """``doc`` without the honeypot link (the message of a reader who is not tracked)."""
    return _HONEYPOT_A.sub("", doc)


def pixel_tag(plan: LinkPlan) -> str:
    """The open pixel as an <img> for the end of the HTML body."""
    return (
        f'<img src="{plan.pixel()}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px;" aria-hidden="true">'
    )


def add_pixel(doc: str, plan: LinkPlan) -> str:
    """``doc`` with the open pixel just before </body> (at the end if there is none)."""
    tag = pixel_tag(plan)
    at = doc.lower().rfind("</body>")
    return doc + tag if at < 0 else doc[:at] + tag + doc[at:]
