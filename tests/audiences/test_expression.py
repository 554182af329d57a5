"""The segment language's parser: the tree it reads, precedence, and one line per mistake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.audiences.expression import (
    All,
    AnyOf,
    Attribute,
    ClickedWithin,
    Engaged,
    Not,
    OnList,
    Received,
    Status,
    Subscribed,
    Tag,
    parse,
)
from newsletter.errors import InvalidInputError, SegmentSyntaxError


def test_conditions() -> None:
    assert parse("tag:customer") == Tag("customer")
    assert parse('list:"Weekly letters"') == OnList("Weekly letters")
    assert parse("status:Active") == Status("active")
    assert parse("subscribed_before:2026-01-01") == Subscribed(
        True, datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert parse('subscribed_after:"2026-01-01 12:30"') == Subscribed(
        False, datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    )
    assert parse("clicked:12") == Engaged("click", 12)
    assert parse("opened:3") == Engaged("open", 3)
    assert parse("received:7") == Received(7)
    assert parse("clicked_within:90d") == ClickedWithin(timedelta(days=90))
    assert parse("clicked_within:12h") == ClickedWithin(timedelta(hours=12))
    assert parse("clicked_within:2w") == ClickedWithin(timedelta(weeks=2))


def test_attributes_compare_bare_numbers_as_numbers_and_the_rest_as_text() -> None:
    assert parse('attr.plan = "pro"') == Attribute("plan", "=", "pro")
    assert parse("attr.plan = pro") == Attribute("plan", "=", "pro")
    assert parse("attr.age > 30") == Attribute("age", ">", 30.0)
    assert parse('attr.age > "30"') == Attribute("age", ">", "30")
    assert parse("attr.score <= -1.5") == Attribute("score", "<=", -1.5)
    assert parse("attr.city != Malmö") == Attribute("city", "!=", "Malmö")
    assert parse("attr.company CONTAINS acme") == Attribute("company", "contains", "acme")
    assert parse('attr."First Name" = Ada') == Attribute("First Name", "=", "Ada")
    assert parse(r'attr.quote = "say \"hi\""') == Attribute("quote", "=", 'say "hi"')


def test_not_binds_tighter_than_and_and_and_tighter_than_or() -> None:
    a, b, c = Tag("a"), Tag("b"), Tag("c")
    assert parse("tag:a or tag:b and tag:c") == AnyOf((a, All((b, c))))
    assert parse("not tag:a and tag:b") == All((Not(a), b))
    assert parse("(tag:a or tag:b) and not (tag:c)") == All((AnyOf((a, b)), Not(c)))
    assert parse("NOT not tag:a") == Not(Not(a))
    assert parse("tag:a and tag:b and tag:c") == All((a, b, c))


def test_an_injection_attempt_is_only_a_value() -> None:
    node = parse('attr.x = "\'; drop table subscribers; --"')
    assert node == Attribute("x", "=", "'; drop table subscribers; --")


MALFORMED = [
    ("", "at 1: expected a condition"),
    ("tag:", "at 5: expected a tag name after 'tag:', found end of input"),
    ("tag customer", "at 5: expected ':' after 'tag', found 'customer'"),
    ("colour:red", "at 1: expected a condition"),
    ("tag:a and", "at 10: expected a condition after 'and'"),
    ("(tag:a", "at 7: expected ')'"),
    ("tag:a)", "at 6: expected 'and', 'or' or the end, found ')'"),
    ("attr.plan", "at 10: expected an operator"),
    ("attr.plan =", "at 12: expected a value after '=', found end of input"),
    ('attr.plan = "pro', "at 17: expected a closing '\"', found end of input"),
    ("status:happy", "at 8: expected a status (unconfirmed, active"),
    ("subscribed_before:2026-13-01", "at 19: expected a date"),
    ("clicked:abc", "at 9: expected an issue id (a number), found 'abc'"),
    ("clicked_within:90", "at 16: expected a duration such as 90d, 12h or 2w"),
    ("tag:a or or tag:b", "at 10: expected a condition after 'or' (tag:, list:"),
    ("not", "at 4: expected a condition after 'not'"),
    ("attr. = 1", "at 7: expected an attribute name after 'attr.'"),
    ("tag:a & tag:b", "at 7: expected a condition, a value or an operator, found '&'"),
    ("()", "at 2: expected a condition after '('"),
    ("tag:a tag:b", "at 7: expected 'and', 'or' or the end, found 'tag'"),
    ("received:", "at 10: expected an issue id (a number) after 'received:'"),
    ("attr.plan contains", "at 19: expected a value after 'contains'"),
    ("attr.plan = and", "at 13: expected a value after '=', found 'and'"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_expressions_say_where_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse(text)
    line = str(caught.value)
    assert line.startswith("segment: ") and message in line, line
    assert "\n" not in line
    assert isinstance(caught.value, InvalidInputError)


def test_there_are_at_least_twenty_malformed_cases() -> None:
    assert len(MALFORMED) >= 20
