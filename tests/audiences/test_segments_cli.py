"""`newsletter segment ...` through the real CLI on SQLite and PostgreSQL: who matches,
mistakes as one line with exit 2, an injection attempt that matches nobody and changes
nothing."""

from __future__ import annotations

import json

import pytest

from tests.helpers import store_snapshot

from .conftest import import_people, tag

PEOPLE = [
    {"email": "ada@example.com", "plan": "pro", "age": "36", "company": "Acme Labs"},
    {"email": "bo@example.com", "plan": "free", "age": "n/a", "company": "Bo & Co"},
    {"email": "cy@gmail.com", "plan": "pro", "age": "19", "company": ""},
    {"email": "di@example.org", "plan": "", "age": "61", "company": "ACME"},
]


@pytest.fixture
def people(cli, tmp_path):
    import_people(cli, tmp_path, PEOPLE, list_name="blog")
    import_people(cli, tmp_path, [{"email": "eve@example.net"}], list_name="partners")
    tag(cli.config, {"customer": ["ada@example.com", "cy@gmail.com", "di@example.org"],
                     "churned": ["cy@gmail.com"]})  # fmt: skip
    return cli


def matches(cli, expression: str) -> list[str]:
    name = f"s{abs(hash(expression))}"
    cli.ok("segment", "create", name, expression)
    shown = json.loads(cli.ok("segment", "show", name, "--json").stdout)
    cli.ok("segment", "rm", name)
    assert shown["count"] == len(shown["sample"])
    return sorted(shown["sample"])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("tag:customer and not tag:churned", ["ada@example.com", "di@example.org"]),
        ("tag:CUSTOMER or list:partners",
         ["ada@example.com", "cy@gmail.com", "di@example.org", "eve@example.net"]),
        ('attr.plan = "pro"', ["ada@example.com", "cy@gmail.com"]),
        ('attr.plan != "pro"', ["bo@example.com", "di@example.org", "eve@example.net"]),
        ("attr.age > 30", ["ada@example.com", "di@example.org"]),
        ("attr.age < 30", ["cy@gmail.com"]),
        ("not attr.age >= 19 and list:blog", ["bo@example.com"]),
        ("attr.company contains acme", ["ada@example.com", "di@example.org"]),
        ('attr.company contains "&"', ["bo@example.com"]),
        ('attr.company contains "%"', []),
        ("tag:nobody-has-this", []),
        ("list:no-such-list or received:99 or clicked:98", []),
        ("subscribed_before:2000-01-01", []),
        ("subscribed_after:2000-01-01 and list:partners", ["eve@example.net"]),
        ("status:active and (tag:churned or attr.plan = free)", ["bo@example.com", "cy@gmail.com"]),
    ],
)  # fmt: skip
def test_who_matches(people, expression, expected) -> None:
    assert matches(people, expression) == expected


def test_only_active_subscribers_count(people) -> None:
    people.ok("subscriber", "unsubscribe", "ada@example.com")
    assert matches(people, "tag:customer") == ["cy@gmail.com", "di@example.org"]
    assert matches(people, "status:unsubscribed") == []  # shown: active ones only


def test_create_ls_show_rm(people) -> None:
    out = people.ok("segment", "create", "loyal", "tag:customer and not tag:churned").stdout
    assert "Created segment 'loyal'" in out
    assert json.loads(people.ok("segment", "ls", "--json").stdout)[0]["name"] == "loyal"
    assert "tag:customer and not tag:churned" in people.ok("segment", "ls").stdout
    shown = people.ok("segment", "show", "loyal")
    assert "matches  2 active subscribers" in shown.stdout
    assert "ada@example.com" in shown.stdout and shown.stderr == ""
    again = people("segment", "create", "loyal", "tag:vip")
    assert again.exit_code == 1 and "already a segment named 'loyal'" in again.stderr
    people.ok("segment", "rm", "loyal")
    gone = people("segment", "show", "loyal")
    assert gone.exit_code == 1 and gone.stderr == "Error: no segment named 'loyal'\n"


def test_a_sample_is_ten_addresses(cli, tmp_path) -> None:
    rows = [{"email": f"r{i:02}@example.com", "plan": "pro"} for i in range(25)]
    import_people(cli, tmp_path, rows, list_name="blog")
    cli.ok("segment", "create", "pros", "attr.plan = pro")
    shown = json.loads(cli.ok("segment", "show", "pros", "--json").stdout)
    assert shown["count"] == 25 and len(shown["sample"]) == 10
    assert "and 15 more" in cli.ok("segment", "show", "pros").stdout


def test_warnings_name_what_matches_nobody(people) -> None:
    people.ok("segment", "create", "odd", "tag:ghost or list:nowhere or clicked:7")
    shown = people.ok("segment", "show", "odd")
    lines = shown.stderr.splitlines()
    assert "Warning: no subscriber has the tag 'ghost': tag:ghost matches nobody" in lines
    assert "Warning: there is no list 'nowhere': list:nowhere matches nobody" in lines
    assert "Warning: there is no issue 7: conditions on it match nobody" in lines
    assert any("per_subscriber is false" in line for line in lines)
    assert "matches  0 active subscribers" in shown.stdout


def test_an_injection_attempt_matches_nobody_and_changes_nothing(people) -> None:
    before = store_snapshot(people.config)
    attempt = "attr.x = \"'; drop table subscribers; --\" or attr.plan = \"x' OR '1'='1\""
    people.ok("segment", "create", "evil", attempt)
    assert json.loads(people.ok("segment", "show", "evil", "--json").stdout)["count"] == 0
    people.ok("segment", "rm", "evil")
    assert store_snapshot(people.config) == before
    assert len(json.loads(people.ok("subscriber", "list", "--json").stdout)) == 5


MALFORMED = [
    "", "tag:", "tag customer", "colour:red", "tag:a and", "(tag:a", "tag:a)", "attr.plan",
    "attr.plan =", 'attr.plan = "pro', "status:happy", "subscribed_before:2026-13-01",
    "clicked:abc", "clicked_within:90", "tag:a or or tag:b", "not", "attr. = 1",
    "tag:a & tag:b", "()", "tag:a tag:b",
]  # fmt: skip


@pytest.mark.parametrize("expression", MALFORMED)
def test_a_malformed_expression_is_one_line_and_exit_2(cli, expression) -> None:
    before = store_snapshot(cli.config)
    result = cli("segment", "create", "bad", expression)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("Error: segment: at ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    where = cli("issue", "create", "--latest", "--where", expression)
    assert where.exit_code == 2 and where.stderr == result.stderr
    assert store_snapshot(cli.config) == before


def test_twenty_malformed() -> None:
    assert len(MALFORMED) == 20


def test_a_segment_in_use_cannot_be_removed(people, tmp_path) -> None:
    from tests.conftest import FIXTURES

    people.ok("post", "add", str(FIXTURES / "posts" / "pricing-per-seat.md"))
    people.ok("segment", "create", "loyal", "tag:customer")
    people.ok("issue", "create", "--latest", "--list", "blog", "--segment", "loyal")
    refused = people("segment", "rm", "loyal")
    assert refused.exit_code == 1
    assert "segment 'loyal' is the audience of issue 1" in refused.stderr
    missing = people("issue", "create", "--latest", "--segment", "nope")
    assert missing.exit_code == 1 and "no segment named 'nope'" in missing.stderr


def test_every_segment_command_has_help(cli) -> None:
    for command in ("create", "ls", "show", "rm"):
        out = cli.ok("segment", command, "--help").stdout
        assert "Usage:" in out and len(out.splitlines()) > 3
