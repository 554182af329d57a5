"""Plain text from HTML: the text/plain part of an email, one-line titles, short summaries;
and ``xml_safe``, which keeps a text within the characters XML 1.0 allows.

``html_to_text`` expects HTML that went through ``sanitize_html`` (the allowlisted tags); other
tags are read for their text only.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from html.parser import HTMLParser

SUMMARY_LENGTH = 300

_BLOCKS = frozenset(
    {"p", "div", "figure", "figcaption", "dl", "table", "caption", "hr", "pre", "blockquote"}
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_UNDERLINES = {"h1": "=", "h2": "-"}
_SPACE_RUN = re.compile(r"[ \t\n\r\f]+")
_BLANK_RUNS = re.compile(r"\n{3,}")

# Everything but what XML 1.0 allows (tab, LF, CR, U+0020 on, less the surrogates and U+FFFE,
# U+FFFF) less the other non-characters too (U+FDD0..U+FDEF and the last two code points of
# every plane), which strict feed readers refuse as well. Written as the allowed ranges: a
# class of those is several times faster to scan than one of the forbidden characters.
_NOT_XML = re.compile(
    "[^\t\n\r\x20-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd"
    + "".join(f"{chr(plane << 16)}-{chr(plane << 16 | 0xFFFD)}" for plane in range(1, 17))
    + "]"
)


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 does not allow, nor non-characters.

    One such character in a post's title would make the archive feed unreadable for every
    subscriber of it, so everything stored from a feed or a Markdown file goes through this,
    and so does every XML document we serve.
    """
    return _NOT_XML.sub("", text)


def clean_line(text: str) -> str:
    """``text`` as one line: whitespace runs (line breaks included) become one space, control
    and format characters other than joiners are dropped, the ends are trimmed."""
    kept = "".join(ch for ch in text if ch.isspace() or not _is_control(ch))
    return " ".join(kept.split())


def _is_control(ch: str) -> bool:
    """Control characters, and format characters (bidi overrides, zero-width space, soft
    hyphen) except the joiners and tags that emoji sequences need."""
    category = unicodedata.category(ch)
    if category == "Cc":
        return True
    return category == "Cf" and ch not in "\u200c\u200d" and not "\U000e0020" <= ch <= "\U000e007f"


def summarize(text: str, width: int = SUMMARY_LENGTH) -> str:
    """At most ``width`` characters of ``text`` on one line, cut at a word, marked with "…"."""
    line = clean_line(text)
    short = textwrap.shorten(line, width=width, placeholder=" …")
    if short == "…":  # the first word alone is too long: cut inside it
        short = line[: width - 1] + "…"
    return short


def html_to_text(html: str, *, bare: bool = False) -> str:
    """Readable plain text of (sanitised) ``html``.

    Paragraphs are separated by blank lines, links read "text (url)", list items start with
    "- " or "1. " (nested lists indented), block quotes with "> ", h1/h2 are underlined,
    preformatted text keeps its lines, table cells are joined with " | ", images show their
    alt text in brackets. Entities are decoded. ``bare=True`` leaves out link URLs, image alt
    texts, underlines and rules (for summaries). Never raises on bad markup.
    """
    writer = _TextWriter(bare=bare)
    writer.feed(html)
    writer.close()
    return writer.text()


class _TextWriter(HTMLParser):
    """Streams text into lines, tracking the prefixes that blocks around it impose."""

    def __init__(self, *, bare: bool) -> None:
        super().__init__(convert_charrefs=True)
        self._bare = bare
        self._lines: list[str] = []
        self._open = False  # is there a current line?
        self._line = ""  # text of the current line, without its prefix
        self._prefix = ""  # prefix of the current line ("> ", indentation, bullet)
        self._breaks = 0  # line breaks owed before the next text: 1 new line, 2 blank line
        self._quote = 0  # depth of open <blockquote>s
        self._last_quote = 0  # quote depth of the last line written
        self._indents: list[int] = []  # widths of the bullets of the open list items
        self._bullet: str | None = None  # bullet waiting for the first text of its item
        self._lists: list[str] = []  # "ul" or "ol" for each open list
        self._numbers: list[int] = []  # next item number of each open list
        self._pre = 0
        self._links: list[tuple[str, list[str]]] = []  # href and text of the open links
        self._cell = 0  # index of the next cell in the current table row

    # Output ------------------------------------------------------------------------------

    def _request_break(self, count: int) -> None:
        self._breaks = max(self._breaks, count)

    def _flush(self) -> None:
        self._lines.append((self._prefix + self._line).rstrip())
        self._open = False
        self._line = ""
        self._prefix = ""

    def _start_line(self) -> None:
        """Pay the owed breaks and open a new line with the prefix of the blocks around it."""
        if self._open:
            self._flush()
        if self._lines:
            blank = ">" * min(self._quote, self._last_quote)
            self._lines.extend([blank] * (self._breaks - 1))
        self._breaks = 0
        self._open = True
        quote = "> " * self._quote
        if self._bullet is not None:
            self._prefix = quote + " " * sum(self._indents[:-1]) + self._bullet
            self._bullet = None
        else:
            self._prefix = quote + " " * sum(self._indents)
        self._last_quote = self._quote

    def _write(self, text: str) -> None:
        if self._links:
            self._links[-1][1].append(text)
            return
        if not text:
            return
        if self._breaks or not self._open:
            if not self._pre:
                text = text.lstrip()
                if not text:
                    return
            self._start_line()
        elif not self._pre and (not self._line or self._line.endswith(" ")):
            text = text.lstrip()
        self._line += text

    def text(self) -> str:
        """The text written so far, trimmed, with at most one blank line in a row."""
        while self._links:  # an unclosed <a> still shows its text
            self._end_link()
        if self._open:
            self._flush()
        text = "\n".join(self._lines).replace("\xa0", " ")
        return _BLANK_RUNS.sub("\n\n", text).strip("\n")

    # Parser events -------------------------------------------------------------------------

    def handle_data(self, data: str) -> None:
        if not self._pre:
            self._write(_SPACE_RUN.sub(" ", data))
            return
        first, *rest = data.split("\n")
        self._write(first)
        for piece in rest:
            if self._links:
                self._write(" " + piece)
                continue
            self._request_break(1)
            self._start_line()
            self._line = piece

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _BLOCKS or tag in _HEADINGS:
            self._request_break(2)
        if tag == "blockquote":
            self._quote += 1
        elif tag == "pre":
            self._pre += 1
        elif tag in ("ul", "ol"):
            self._request_break(1 if self._indents else 2)
            self._lists.append(tag)
            self._numbers.append(_to_int(attributes.get("start"), 1))
        elif tag == "li":
            self._start_item()
        elif tag in ("dt", "dd", "tr"):
            self._request_break(1)
            self._cell = 0
        elif tag in ("td", "th"):
            if self._cell:
                self._write(" | ")
            self._cell += 1
        elif tag == "br":
            self._break_line()
        elif tag == "hr" and not self._bare:
            self._write("-" * 20)
            self._request_break(2)
        elif tag == "img" and not self._bare:
            alt = clean_line(attributes.get("alt") or "")
            if alt:
                self._write(alt if self._links else f"[{alt}]")
        elif tag == "a":
            self._links.append((attributes.get("href") or "", []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            self._end_link()
        elif tag in _HEADINGS:
            self._underline(tag)
        elif tag == "li" and self._indents:
            self._indents.pop()
            self._bullet = None
            self._request_break(1)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            self._numbers.pop()
            self._request_break(1 if self._indents else 2)
        elif tag == "blockquote" and self._quote:
            self._quote -= 1
        elif tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCKS or tag in _HEADINGS:
            self._request_break(2)

    # Helpers -------------------------------------------------------------------------------

    def _start_item(self) -> None:
        self._request_break(1)
        if self._lists and self._lists[-1] == "ol":
            bullet = f"{self._numbers[-1]}. "
            self._numbers[-1] += 1
        else:
            bullet = "- "
        self._indents.append(len(bullet))
        self._bullet = bullet

    def _break_line(self) -> None:
        if self._links:
            self._write(" ")
        elif self._line:
            self._breaks = 1 if not self._breaks else 2
        else:
            self._request_break(2)

    def _end_link(self) -> None:
        href, parts = self._links.pop()
        label = " ".join("".join(parts).split())
        target = href.removeprefix("mailto:")
        if self._bare:
            self._write(label)
        elif not href or label in (href, target):
            self._write(label or href)
        elif not label:
            self._write(target)
        else:
            self._write(f"{label} ({target})")

    def _underline(self, tag: str) -> None:
        mark = _UNDERLINES.get(tag)
        if mark and self._line.strip() and not self._bare:
            width = len(self._line.strip())
            self._request_break(1)
            self._write(mark * width)


def _to_int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
