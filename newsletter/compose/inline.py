"""CSS inlining with premailer: run once per issue, never per recipient.

Rules from the document's <style> blocks become ``style=""`` attributes; ``@media`` rules
(dark mode, small screens) stay in a <style> block with ``!important`` kept, because they
cannot be inlined and must beat the inline styles. Nothing is fetched: external stylesheets
are refused instead (``allow_network=False``), so a template must carry its CSS inline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import cssutils
import premailer
from lxml import etree

from ..errors import ContentError

Inliner = Callable[[str], str]
"""Takes a full HTML document with <style> blocks, returns it with the CSS inlined."""

_STYLESHEET_LINK = re.compile(r"<link\b[^>]*\bstylesheet\b", re.IGNORECASE)

# cssutils logs every property it does not know (color-scheme, mso-*, -webkit-*) at ERROR
# level; those are deliberate in email CSS, so keep the log quiet.
cssutils.log.setLevel(logging.CRITICAL)


def inline_css(html: str) -> str:
    """Inline the CSS of ``html`` (a whole document) with premailer.

    Raises ContentError if the document has a ``<link rel=stylesheet>`` (it would be left
    in the message, unfetched) or cannot be parsed.
    """
    if _STYLESHEET_LINK.search(html):
        raise ContentError(
            "email templates cannot use <link rel=stylesheet>: put the CSS in a <style> block"
        )
    try:
        return premailer.Premailer(
            html,
            strip_important=False,  # keep !important inside the @media rules
            allow_network=False,
            keep_style_tags=False,  # only the rules that cannot be inlined stay
            disable_validation=True,  # cssutils does not know modern/email-only properties
            # "height:auto" would become height="auto" and replace an image's real height
            disable_basic_attributes=["height"],
            cache_css_parsing=True,
        ).transform(pretty_print=False)
    except (etree.LxmlError, ValueError) as exc:
        raise ContentError(f"cannot inline the CSS of the email HTML: {exc}") from exc
