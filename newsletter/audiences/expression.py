"""The segment language: text -> a small tree of conditions (pure; no database).

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expression ")" | condition
    condition  := FIELD ":" value | "attr." KEY OPERATOR value
    FIELD      := tag | list | status | subscribed_before | subscribed_after
                | clicked | opened | clicked_within | received
    OPERATOR   := = | != | < | > | <= | >= | contains
    value      := a bare word (letters, digits, _ - . @ +) or a "quoted string"

``not`` binds tighter than ``and``, ``and`` tighter than ``or``; keywords are
case-insensitive. A bare number after an operator compares as a number, anything else
(quoted "42" included) as text. ``parse`` raises SegmentSyntaxError naming the position (in
characters, from 1) and what was expected there; names that exist nowhere (a tag no one has)
are not errors here: they match nobody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ..durations import duration
from ..errors import SegmentSyntaxError
from ..store.types import SUBSCRIBER_STATUSES

# --- the tree --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tag:
    name: str


@dataclass(frozen=True, slots=True)
class OnList:
    name: str


@dataclass(frozen=True, slots=True)
class Status:
    status: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    """Created before ``at`` (``before``), or at or after it."""

    before: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Engaged:
    """A person (not a machine) clicked a link of, or opened, issue ``issue_id``."""

    kind: Literal["click", "open"]
    issue_id: int


@dataclass(frozen=True, slots=True)
class ClickedWithin:
    """A person clicked a link of any issue in the last ``span``."""

    span: timedelta


@dataclass(frozen=True, slots=True)
class Received:
    """The delivery of issue ``issue_id`` to them was sent."""

    issue_id: int


Operator = Literal["=", "!=", "<", ">", "<=", ">=", "contains"]


@dataclass(frozen=True, slots=True)
class Attribute:
    """attributes[key] compared with ``value`` (a float: as numbers; a str: as text)."""

    key: str
    op: Operator
    value: str | float


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class All:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    operands: tuple[Node, ...]


Node = Tag | OnList | Status | Subscribed | Engaged | ClickedWithin | Received | Attribute
Node = Node | Not | All | AnyOf


def walk(node: Node):
    """Every node of the tree, the root first."""
    yield node
    if isinstance(node, Not):
        yield from walk(node.operand)
    elif isinstance(node, All | AnyOf):
        for operand in node.operands:
            yield from walk(operand)


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["word", "string", "(", ")", ":", "op", "end"]
    text: str
    pos: int  # 1-based
    end: int  # 1-based position just after it


_WORD = re.compile(r"[\w.@+\-]+")
_OPS = ("!=", "<=", ">=", "=", "<", ">")
_SPACE = re.compile(r"\s+")


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        if m := _SPACE.match(text, i):
            i = m.end()
            continue
        ch = text[i]
        if ch in "():":
            out.append(_Token(ch, ch, i + 1, i + 2))  # type: ignore[arg-type]
            i += 1
        elif ch in "\"'":
            i = _string(text, i, out)
        elif op := next((o for o in _OPS if text.startswith(o, i)), None):
            out.append(_Token("op", op, i + 1, i + 1 + len(op)))
            i += len(op)
        elif m := _WORD.match(text, i):
            out.append(_Token("word", m.group(), i + 1, m.end() + 1))
            i = m.end()
        else:
            raise SegmentSyntaxError(i + 1, "a condition, a value or an operator", repr(ch))
    out.append(_Token("end", "", len(text) + 1, len(text) + 1))
    return out


def _string(text: str, start: int, out: list[_Token]) -> int:
    """Read a string quoted with ``text[start]`` (backslash escapes the quote and itself)."""
    quote, chars, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
            continue
        if ch == quote:
            out.append(_Token("string", "".join(chars), start + 1, i + 2))
            return i + 1
        chars.append(ch)
        i += 1
    raise SegmentSyntaxError(len(text) + 1, f"a closing {quote!r}", "end of input")


# --- the parser ------------------------------------------------------------------------------

FIELDS = (
    "tag", "list", "status", "subscribed_before", "subscribed_after", "clicked", "opened",
    "clicked_within", "received",
)  # fmt: skip
_CONDITION = "a condition{} (tag:, list:, attr.KEY, status:, clicked:, ... or '(')"
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def parse(text: str) -> Node:
    """The tree of ``text``. Raises SegmentSyntaxError (one line: where, what was expected,
    what was found)."""
    return _Parser(_tokens(text)).expression()


def _found(token: _Token) -> str:
    if token.kind == "end":
        return "end of input"
    return repr(token.text) if token.kind != "string" else f'"{token.text}"'


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        return self.token.kind == "word" and self.token.text.lower() == word

    def fail(self, expected: str, token: _Token | None = None) -> SegmentSyntaxError:
        token = token or self.token
        return SegmentSyntaxError(token.pos, expected, _found(token))

    def expression(self) -> Node:
        node = self.any_of()
        if self.token.kind != "end":
            raise self.fail("'and', 'or' or the end")
        return node

    def any_of(self) -> Node:
        operands = [self.all_of()]
        while self.keyword("or"):
            self.take()
            operands.append(self.all_of())
        return operands[0] if len(operands) == 1 else AnyOf(tuple(operands))

    def all_of(self) -> Node:
        operands = [self.negation()]
        while self.keyword("and"):
            self.take()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else All(tuple(operands))

    def negation(self) -> Node:
        if self.keyword("not"):
            self.take()
            return Not(self.negation())
        if self.token.kind == "(":
            self.take()
            node = self.any_of()
            if self.token.kind != ")":
                raise self.fail("')' or 'and', 'or'")
            self.take()
            return node
        return self.condition()

    def condition(self) -> Node:
        after = self.tokens[self.i - 1].text if self.i else ""
        where = f" after {after!r}" if after.lower() in ("and", "or", "not", "(") else ""
        token = self.token
        if token.kind != "word" or token.text.lower() in ("and", "or", "not"):
            raise self.fail(_CONDITION.format(where))
        word = token.text.lower()
        if word.startswith("attr."):
            return self.attribute()
        if word not in FIELDS:
            raise self.fail(_CONDITION.format(where))
        self.take()
        if self.token.kind != ":":
            raise self.fail(f"':' after {token.text!r}")
        self.take()
        return self.field(word)

    def value(self, what: str, after: str) -> _Token:
        """The next token as a value (a bare word that is not a keyword, or a string)."""
        token = self.token
        if token.kind not in ("word", "string") or (
            token.kind == "word" and token.text.lower() in ("and", "or", "not")
        ):
            raise self.fail(f"{what} after {after!r}")
        return self.take()

    def field(self, name: str) -> Node:
        if name in ("tag", "list"):
            token = self.value(f"a {name} name", f"{name}:")
            return Tag(token.text) if name == "tag" else OnList(token.text)
        token = self.value(_FIELD_VALUES[name], f"{name}:")
        text = token.text.strip()
        if name == "status":
            if text.lower() not in SUBSCRIBER_STATUSES:
                raise self.fail(f"a status ({', '.join(SUBSCRIBER_STATUSES)})", token)
            return Status(text.lower())
        if name in ("subscribed_before", "subscribed_after"):
            return Subscribed(name == "subscribed_before", self.moment(text, token))
        if name == "clicked_within":
            span = duration(text)
            if span is None:
                raise self.fail(_FIELD_VALUES[name], token)
            return ClickedWithin(span)
        if not text.isdigit() or len(text) > 18:
            raise self.fail(_FIELD_VALUES[name], token)
        if name == "received":
            return Received(int(text))
        return Engaged("click" if name == "clicked" else "open", int(text))

    def moment(self, text: str, token: _Token) -> datetime:
        """A date (midnight UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(_FIELD_VALUES["subscribed_before"], token) from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def attribute(self) -> Node:
        head = self.take()
        key = head.text[len("attr.") :]
        if not key:
            if self.token.kind != "string" or self.token.pos != head.end:
                raise self.fail("an attribute name after 'attr.'")
            key = self.take().text
        if not key or '"' in key or "\\" in key:
            raise self.fail("an attribute name without quotes or backslashes", head)
        shown = f"attr.{key}"
        op_token = self.token
        if op_token.kind == "op":
            op = op_token.text
        elif self.keyword("contains"):
            op = "contains"
        else:
            raise self.fail(f"an operator (=, !=, <, >, <=, >=, contains) after {shown!r}")
        self.take()
        token = self.value("a value", op)
        value: str | float = token.text
        if token.kind == "word" and op != "contains" and _NUMBER.fullmatch(token.text):
            value = float(token.text)
        return Attribute(key, op, value)  # type: ignore[arg-type]


_FIELD_VALUES = {
    "status": "a status",
    "subscribed_before": "a date (YYYY-MM-DD, or a quoted ISO 8601 time)",
    "subscribed_after": "a date (YYYY-MM-DD, or a quoted ISO 8601 time)",
    "clicked_within": "a duration such as 90d, 12h or 2w",
    "clicked": "an issue id (a number)",
    "opened": "an issue id (a number)",
    "received": "an issue id (a number)",
}
