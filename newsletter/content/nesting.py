"""Bounding how deep untrusted HTML nests, in one linear pass, before the sanitiser parses it.

html5ever (inside nh3) looks through the open elements for almost every start tag, so its time
grows with the square of the nesting: a 550 KB post of 50,000 nested ``<div>``s costs it
seconds. ``cap_nesting`` reads the markup once, keeps a model of the open elements by the HTML
rules, and writes the markup back in a canonical form that the sanitiser parses as the model
did:

- tags are rebuilt from their name and attributes; text between tags is copied (it holds no
  ``<``); comments, doctypes and processing instructions are left out (nh3 drops them too);
- an element the rules close implicitly (a ``<p>`` by a ``<div>``, an ``<li>`` by the next
  ``<li>``, a cell by the next cell) gets an explicit end tag, and an end tag the rules ignore
  is left out, so the sanitiser's open elements follow the model's; formatting elements a
  block cut are reopened by the rules (``<p><b>x</p><p>y`` keeps "y" bold), in the model too;
- a tag that would open an element deeper than ``max_depth`` is left out and its text kept (a
  space stands for a block tag, so words do not run together); an element that the sanitiser
  drops with its content and that starts beyond the limit is left out whole;
- the raw text of ``script``, ``style`` and the like is left out when the sanitiser drops it
  with its element, and written as escaped text otherwise (``title``, ``xmp``).

Every step consumes input and looks at a bounded part of the model, so the time is linear in
the input. This is not a sanitiser: its output still goes through nh3.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable

MAX_DEPTH = 100


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_VOID = _names(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr"
)
_IGNORED = frozenset({"html", "head", "body"})  # the sanitiser parses a fragment of a body
_RAWTEXT = _names("script style xmp iframe noembed noframes noscript")
_RCDATA = frozenset({"title", "textarea"})
_FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
_SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dialog dir div dl dt embed fieldset figcaption figure footer "
    "form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li "
    "link listing main marquee menu meta nav noembed noframes noscript object ol p param "
    "plaintext pre script search section select source style summary table tbody td template "
    "textarea tfoot th thead title tr track ul wbr xmp mi mo mn ms mtext annotation-xml "
    "foreignobject desc"
)
_NOT_ADP = _SPECIAL - {"address", "div", "p"}  # where the search for an open <li> stops
_MARKERS = _names("applet caption marquee object template td th")
_HEADINGS = _names("h1 h2 h3 h4 h5 h6")
_SCOPE = _names(
    "applet caption html table td th marquee object template mi mo mn ms mtext annotation-xml "
    "foreignobject desc title"
)
_BUTTON_SCOPE = _SCOPE | {"button"}
_LIST_SCOPE = _SCOPE | {"ol", "ul"}
_TABLE_SCOPE = _names("html table template")
_TABLE_PARTS = _names("caption col colgroup tbody td tfoot th thead tr")
_CELL_GROUPS = (("td", "th"), ("tr",), ("tbody", "tfoot", "thead"))  # closed in this order
_CLOSES_P = _HEADINGS | _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer form header hgroup hr listing main menu nav ol p pre search section summary "
    "table ul li dd dt xmp plaintext"
)
# Start tags before which the rules do not reopen formatting elements.
_NO_REOPEN = _CLOSES_P | _TABLE_PARTS | frozenset({"frameset", "template"})
_VOID_REOPENS = _names("area br embed img image input keygen wbr")
_IN_SELECT = _names("option optgroup hr")  # the start tags a <select> takes
_ENDS_SELECT = _names("input keygen textarea select")
_ENDS_SELECT_IN_TABLE = _names("caption table tbody tfoot thead tr td th")
_MAX_ACTIVE = 12  # formatting elements remembered since the last marker (the rules: no bound)

_TAG_NAME = re.compile(r"[A-Za-z][^\t\n\f\r />]*+")
_ATTRIBUTE = re.compile(
    r"(?:[\t\n\f\r ]|/(?!>))*+"
    r"(?:(?P<end>/?>)"
    r"|(?P<name>[^\t\n\f\r />][^\t\n\f\r />=]*+)"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"
    r"(?:\"(?P<dq>[^\"]*+)\"|'(?P<sq>[^']*+)'|(?P<uq>[^\t\n\f\r >\"'][^\t\n\f\r >]*+)"
    r"|(?P<open>[\"']))?)?)"
)
_COMMENT_END = re.compile(r"--!?>")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_RAW_END = {
    name: re.compile(rf"</{name}(?=[\t\n\f\r />])", re.IGNORECASE) for name in _RAWTEXT | _RCDATA
}
_GONE = "#gone"  # a formatting element the sanitiser's rules took out of the middle


def cap_nesting(
    html: str, *, dropped_with_content: Iterable[str], max_depth: int = MAX_DEPTH
) -> str:
    """``html`` rewritten canonically with no element deeper than ``max_depth``.

    ``dropped_with_content`` names the elements the sanitiser removes with everything inside
    them: their raw text (script, style...) is left out here, and beyond the limit so is all
    of their content. Never raises on bad markup.
    """
    writer = _Writer(frozenset(dropped_with_content), max_depth)
    writer.run(html)
    return "".join(writer.out)


class _Active:
    """An entry of the list of active formatting elements: its start tag, and where it is
    open in the model (-1: closed, to be reopened before the next text)."""

    __slots__ = ("index", "name", "tag")

    def __init__(self, name: str, tag: str, index: int) -> None:
        self.name, self.tag, self.index = name, tag, index


class _Writer:
    """The tokenizer (the HTML one, less the states that need the tree) and the model of the
    open elements, writing the canonical markup as it goes."""

    def __init__(self, dropped: frozenset[str], max_depth: int) -> None:
        self.dropped = dropped
        self.max_depth = max_depth
        self.out: list[str] = []
        self.names: list[str] = []  # the open elements, outermost first
        self.shown: list[bool] = []  # was its start tag written (within the limit)?
        self.entries: list[_Active | None] = []  # its active formatting entry
        self.open: dict[str, list[int]] = {}  # name -> stack indices where it is open
        self.specials: list[int] = []  # stack indices of the special elements
        self.not_adp: list[int] = []  # ... of the special ones other than address, div, p
        self.active: list[_Active | None] = []  # formatting elements; None: a marker
        self.markers: list[int] = []  # where the markers are in ``active``
        self.skip_from = -1  # >= 0: inside a dropped element beyond the limit, write nothing

    # Tokenizer -------------------------------------------------------------------------------

    def run(self, s: str) -> None:
        pos, end = 0, len(s)
        while pos < end:
            lt = s.find("<", pos)
            if lt < 0:
                self.text(s[pos:])
                break
            if lt > pos:
                self.text(s[pos:lt])
            pos = self.markup(s, lt)
        self.pop_through(0)

    def markup(self, s: str, lt: int) -> int:
        """Handle what starts with the "<" at ``lt``; the position after it (len(s): stop)."""
        nxt = s[lt + 1 : lt + 2]
        if nxt == "!":
            if s.startswith("<!--", lt):
                found = _COMMENT_END.search(s, lt + 2)
                return found.end() if found else len(s)
            return self.bogus_comment(s, lt)
        if nxt == "?":
            return self.bogus_comment(s, lt)
        if nxt == "/":
            name = _TAG_NAME.match(s, lt + 2)
            if name is None:
                return lt + 3 if s.startswith(">", lt + 2) else self.bogus_comment(s, lt)
            tag = self.scan_tag(s, name.end())
            if tag is None:
                return len(s)
            self.end_tag(name.group().translate(_ASCII_LOWER))
            return tag[2]
        name = _TAG_NAME.match(s, lt + 1)
        if name is None:
            self.text("&lt;")
            return lt + 1
        tag = self.scan_tag(s, name.end())
        if tag is None:  # the input ends inside the tag: the rules drop it
            return len(s)
        attributes, self_closing, after = tag
        lowered = name.group().translate(_ASCII_LOWER)
        return self.start_tag(s, lowered, attributes, self_closing, after)

    @staticmethod
    def bogus_comment(s: str, lt: int) -> int:
        close = s.find(">", lt)
        return close + 1 if close >= 0 else len(s)

    @staticmethod
    def scan_tag(s: str, pos: int) -> tuple[str, bool, int] | None:
        """The attributes after a tag name at ``pos`` as canonical text, whether the tag closes
        itself, and the position after it; None when the input ends inside the tag."""
        parts: list[str] = []
        seen: set[str] = set()
        while True:
            m = _ATTRIBUTE.match(s, pos)
            if m is None or m.group("open"):
                return None
            pos = m.end()
            if m.group("end"):
                return "".join(parts), m.group("end") == "/>", pos
            name = m.group("name").translate(_ASCII_LOWER)
            if name in seen:  # the first one counts
                continue
            seen.add(name)
            value = m.group("dq")
            if value is None:
                value = m.group("sq") if m.group("sq") is not None else m.group("uq")
            if value is None:
                parts.append(f" {name}")
            else:
                parts.append(f' {name}="{value.replace(chr(34), "&quot;")}"')

    def start_tag(self, s: str, name: str, attributes: str, self_closing: bool, after: int) -> int:
        if self.open.get("select") and name not in _IN_SELECT:
            select = self.open["select"][-1]
            if name in _ENDS_SELECT or (
                name in _ENDS_SELECT_IN_TABLE and -1 < self.topmost(("table",)) < select
            ):
                self.pop_through(select)
                if name == "select":
                    return after
            elif name != "script":
                return after  # ignored inside a <select>
        if name in _RAWTEXT or name in _RCDATA:
            return self.raw_text(s, name, after)
        if name == "plaintext":  # the rest of the input is text
            self.close_p()
            self.text(html_lib.escape(s[after:], quote=False))
            return len(s)
        if name in _IGNORED:
            return after
        if name in _TABLE_PARTS and not self.open.get("table"):
            return after  # ignored outside a table
        tag = f"<{name}{attributes}{'/>' if self_closing else '>'}"
        if name in _VOID:
            if name in _VOID_REOPENS:
                self.reconstruct()
            if name == "hr":
                self.close_p()
            self.write(tag)
            return after
        self.implied_ends(name)
        if name not in _NO_REOPEN:
            self.reconstruct()
        self.push(name, tag)
        return after

    def raw_text(self, s: str, name: str, after: int) -> int:
        """Script, style, title...: their content is text up to their end tag."""
        found = _RAW_END[name].search(s, after)
        content_end = found.start() if found else len(s)
        if name not in self.dropped:
            if name == "xmp":
                self.close_p()
            content = s[after:content_end]
            if name in _RCDATA:  # character references count here: keep them
                self.text(content.replace("<", "&lt;"))
            else:
                self.text(html_lib.escape(content, quote=False))
        if found is None:
            return len(s)
        tag = self.scan_tag(s, found.end())
        return tag[2] if tag is not None else len(s)

    # Model ----------------------------------------------------------------------------------

    def write(self, piece: str) -> None:
        if self.skip_from < 0:
            self.out.append(piece)

    def text(self, piece: str) -> None:
        if not piece or self.skip_from >= 0:
            return
        self.reconstruct()
        self.out.append(piece)

    def space(self) -> None:
        """Stands for a block tag left out, so that the words around it stay apart."""
        if self.skip_from < 0 and self.out and not self.out[-1][-1:].isspace():
            self.out.append(" ")

    def push(self, name: str, tag: str, entry: _Active | None = None) -> None:
        index = len(self.names)
        shown = index < self.max_depth
        if name in _FORMATTING and entry is None:
            entry = self.remember(name, tag)
        if entry is not None:
            entry.index = index
        self.names.append(name)
        self.shown.append(shown)
        self.entries.append(entry)
        self.open.setdefault(name, []).append(index)
        if name in _SPECIAL:
            self.specials.append(index)
            if name in _NOT_ADP:
                self.not_adp.append(index)
        if name in _MARKERS:
            self.markers.append(len(self.active))
            self.active.append(None)
        if shown:
            self.write(tag)
        elif name in self.dropped and self.skip_from < 0:
            self.skip_from = index
        elif name in _SPECIAL:
            self.space()

    def pop(self) -> None:
        index = len(self.names) - 1
        name = self.names.pop()
        shown = self.shown.pop()
        entry = self.entries.pop()
        if entry is not None:
            entry.index = -1  # stays active: reopened before the next text
        if name != _GONE:
            self.open[name].pop()
        if self.specials and self.specials[-1] == index:
            self.specials.pop()
            if self.not_adp and self.not_adp[-1] == index:
                self.not_adp.pop()
        if name in _MARKERS:  # the rules forget the formatting opened since it opened
            del self.active[self.markers.pop() :]
        if shown:
            self.write(f"</{name}>")
        elif name in _SPECIAL:
            self.space()
        if index == self.skip_from:
            self.skip_from = -1

    def pop_through(self, index: int) -> None:
        """Close the open elements from the innermost to the one at ``index``."""
        while len(self.names) > index:
            self.pop()

    def last_marker(self) -> int:
        return self.markers[-1] if self.markers else -1

    def remember(self, name: str, tag: str) -> _Active:
        """A new entry in the active formatting list. As by the rules, a fourth identical one
        since the last marker pushes out the first; beyond ``_MAX_ACTIVE`` the oldest goes."""
        first = self.last_marker() + 1
        same = [i for i, e in enumerate(self.active[first:], first) if e and e.tag == tag]
        if len(same) >= 3:
            del self.active[same[0]]
        if len(self.active) - first >= _MAX_ACTIVE:
            del self.active[first]
        entry = _Active(name, tag, -1)
        self.active.append(entry)
        return entry

    def last_active(self, name: str) -> int:
        """Where the last entry named ``name`` since the last marker is in ``active`` (-1)."""
        for i in range(len(self.active) - 1, self.last_marker(), -1):
            entry = self.active[i]
            if entry is not None and entry.name == name:
                return i
        return -1

    def reconstruct(self) -> None:
        """Reopen the formatting elements closed since the last open one or marker."""
        if not self.active or self.active[-1] is None or self.active[-1].index >= 0:
            return
        start = len(self.active) - 1
        while start > 0 and (entry := self.active[start - 1]) is not None and entry.index < 0:
            start -= 1
        for entry in self.active[start:]:
            if entry is not None:
                self.push(entry.name, entry.tag, entry)

    def topmost(self, names: Iterable[str], but: str = "") -> int:
        """The stack index of the innermost open element named in ``names`` (-1: none)."""
        best = -1
        for name in names:
            where = self.open.get(name)
            if where and where[-1] > best and name != but:
                best = where[-1]
        return best

    def in_scope(self, name: str, boundaries: frozenset[str]) -> int:
        """Where ``name`` is open with no boundary element inside it (-1: not in scope)."""
        where = self.open.get(name)
        if not where:
            return -1
        return where[-1] if where[-1] > self.topmost(boundaries, but=name) else -1

    def close_p(self) -> None:
        index = self.in_scope("p", _BUTTON_SCOPE)
        if index >= 0:
            self.pop_through(index)

    def implied_ends(self, name: str) -> None:
        """What a start tag closes before it opens (the common cases of the rules)."""
        if name in ("li", "dd", "dt"):
            wanted = ("li",) if name == "li" else ("dd", "dt")
            if self.not_adp and self.names[self.not_adp[-1]] in wanted:
                self.pop_through(self.not_adp[-1])
        if name in _CLOSES_P:
            self.close_p()
            if name in _HEADINGS and self.names and self.names[-1] in _HEADINGS:
                self.pop_through(len(self.names) - 1)
        elif name in _TABLE_PARTS:
            for group in _CELL_GROUPS:
                index = self.topmost(group)
                if index > self.topmost(_TABLE_SCOPE):
                    self.pop_through(index)
                if name in group:
                    break
        elif name == "a" and self.last_active("a") >= 0:
            self.end_formatting("a")  # an <a> inside an <a> ends the first one
            position = self.last_active("a")
            if position >= 0:
                del self.active[position]

    def end_tag(self, name: str) -> None:
        if name in _IGNORED:
            return
        if self.open.get("select") and name not in ("select", "option", "optgroup"):
            return  # ignored inside a <select>
        if name == "br":
            self.reconstruct()
            self.write("<br>")
            return
        if name in _VOID:
            return
        if name == "p":
            index = self.in_scope("p", _BUTTON_SCOPE)
            if index >= 0:
                self.pop_through(index)
            elif len(self.names) < self.max_depth:
                self.write("<p></p>")  # what the rules make of a stray </p>
            return
        if name in _HEADINGS:
            index = self.topmost(_HEADINGS)
            if index > self.topmost(_SCOPE):
                self.pop_through(index)
            return
        if name in _FORMATTING:
            self.end_formatting(name)
            return
        if name in _SPECIAL:
            if name == "li":
                boundaries = _LIST_SCOPE
            elif name in _TABLE_PARTS or name == "table":
                boundaries = _TABLE_SCOPE
            else:
                boundaries = _SCOPE
            index = self.in_scope(name, boundaries)
            if index >= 0:
                self.pop_through(index)
            return
        self.end_other(name)

    def end_other(self, name: str) -> None:
        """The rule for most end tags: it closes the innermost element of its name, unless a
        special element is open inside that one (then it is ignored)."""
        index = self.topmost((name,))
        if index >= 0 and (not self.specials or self.specials[-1] < index):
            self.pop_through(index)

    def end_formatting(self, name: str) -> None:
        """The end of a formatting element (the adoption agency of the rules, roughly)."""
        position = self.last_active(name)
        if position < 0:
            self.end_other(name)
            return
        entry = self.active[position]
        assert entry is not None
        index = entry.index
        if index < 0:  # closed already: forget it
            del self.active[position]
            return
        if self.topmost(_SCOPE) > index:
            return  # not in scope: ignored
        del self.active[position]
        if not self.specials or self.specials[-1] < index:
            self.entries[index] = None
            self.pop_through(index)
            return
        # Blocks are open inside it: the sanitiser's rules move them out of it (and reopen it
        # inside them); the model keeps them where they are and only takes the element out.
        if self.shown[index]:
            self.write(f"</{name}>")
        self.shown[index] = False
        self.entries[index] = None
        self.names[index] = _GONE
        where = self.open[name]
        if where[-1] == index:
            where.pop()
        else:
            where.remove(index)
