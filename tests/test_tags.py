"""Tags: from Mailchimp's TAGS, a tags column and --tag at import; tag, untag, list --tag,
show and export; on SQLite and PostgreSQL through the real CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest

from newsletter.errors import InvalidInputError
from newsletter.subscribers.tags import normalise_tag, split_cell
from tests.conftest import FIXTURES
from tests.helpers import store_snapshot

IMPORT = FIXTURES / "import"
MAILCHIMP_TAGS = IMPORT / "mailchimp_tags.csv"


def show(cli, who: str) -> dict:
    return json.loads(cli.ok("subscriber", "show", who, "--json").stdout)


def emails(cli, *args: str) -> list[str]:
    rows = json.loads(cli.ok("subscriber", "list", "--json", *args).stdout)
    return [r["email"] for r in rows]


def tags_by_email(cli) -> dict[str, list[str]]:
    rows = json.loads(cli.ok("subscriber", "list", "--json").stdout)
    return {r["email"]: r["tags"] for r in rows}


def test_mailchimp_tags_become_exactly_those_tags(cli) -> None:
    out = cli.ok("subscriber", "import", str(MAILCHIMP_TAGS)).stdout
    assert "(mailchimp format): 5 new" in out
    assert "Tags churned, customer, spring sale, vip: 7 given." in out
    assert tags_by_email(cli) == {
        "cus@example.com": ["customer", "vip"],
        "gone@example.com": ["churned"],
        "both@example.com": ["churned", "customer"],  # Mailchimp's own quoting, any case
        "plain@example.com": [],
        "shout@example.com": ["spring sale", "vip"],  # trimmed, spaces collapsed, once
    }
    cus = show(cli, "cus@example.com")
    assert cus["tags"] == ["customer", "vip"]
    assert cus["attributes"]["TAGS"] == "customer, vip"  # the raw cell is kept, as before
    assert emails(cli, "--tag", "customer") == ["cus@example.com", "both@example.com"]
    assert emails(cli, "--tag", "Customer", "--tag", "churned") == ["both@example.com"]


def test_import_tag_option_adds_to_everyone_and_reimport_is_additive(cli) -> None:
    cli.ok("subscriber", "add", "plain@example.com")  # already there: tagged as well
    out = cli.ok(
        "subscriber", "import", str(MAILCHIMP_TAGS), "--tag", "Spring Import", "--tag", "vip"
    ).stdout
    assert "4 new, 1 updated" in out
    tags = tags_by_email(cli)
    assert tags["plain@example.com"] == ["spring import", "vip"]
    assert tags["gone@example.com"] == ["churned", "spring import", "vip"]
    assert tags["cus@example.com"] == ["customer", "spring import", "vip"]
    # The same file again, with one more tag: only that is added, nothing is taken away.
    before = store_snapshot(cli.config)
    out = cli.ok("subscriber", "import", str(MAILCHIMP_TAGS), "--tag", "spring import").stdout
    assert "0 new, 0 updated, 5 unchanged" in out and ": 0 given." in out
    assert store_snapshot(cli.config) == before
    cli.ok("subscriber", "import", str(MAILCHIMP_TAGS), "--tag", "second")
    assert tags_by_email(cli)["gone@example.com"] == ["churned", "second", "spring import", "vip"]


def test_suppressed_people_are_left_alone_and_a_dry_run_changes_nothing(cli) -> None:
    cli.ok("subscriber", "add", "gone@example.com")
    cli.ok("subscriber", "unsubscribe", "gone@example.com")
    before = store_snapshot(cli.config)
    out = cli.ok("subscriber", "import", str(MAILCHIMP_TAGS), "--tag", "x", "--dry-run").stdout
    assert "not given in a dry run" in out
    assert store_snapshot(cli.config) == before
    cli.ok("subscriber", "import", str(MAILCHIMP_TAGS), "--tag", "x")
    assert show(cli, "gone@example.com")["tags"] == []  # suppressed: not touched


def test_a_tags_column_and_map_tags(cli, tmp_path) -> None:
    generic = tmp_path / "crm.csv"
    generic.write_text("email;Tags\nann@example.com;Lead, Webinar\nbo@example.com;\n", "utf-8")
    cli.ok("subscriber", "import", str(generic))
    assert tags_by_email(cli) == {"ann@example.com": ["lead", "webinar"], "bo@example.com": []}
    assert "Tags" not in show(cli, "ann@example.com")["attributes"]  # a field, not an attribute
    # Substack has no tags column; its plan column can become one.
    cli.ok("subscriber", "import", str(IMPORT / "substack.csv"), "--map", "tags=plan")
    tags = tags_by_email(cli)
    assert tags["reader1@example.com"] == ["free"] and tags["Reader2@example.com"] == ["paid"]


def test_a_bad_tag_in_a_row_rejects_that_row(cli, tmp_path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(f"email,tags\nok@example.com,fine\nlong@example.com,{'x' * 101}\n", "utf-8")
    report = tmp_path / "r.csv"
    out = cli.ok("subscriber", "import", str(f), "--report", str(report)).stdout
    assert "1 new" in out and "1 rejected" in out
    (row,) = csv.DictReader(report.open(encoding="utf-8"))
    assert row["row"] == "3" and "longer than 100 characters" in row["reason"]


def test_tag_untag_show_list_export(cli, tmp_path) -> None:
    cli.ok("subscriber", "add", "ada@example.com")
    cli.ok("subscriber", "add", "bob@example.com")
    out = cli.ok("subscriber", "tag", "ADA@example.com", "VIP", "customer").stdout
    assert out == "ada@example.com: added customer, vip; tags now: customer, vip.\n"
    out = cli.ok("subscriber", "tag", "ada@example.com", "vip", "beta").stdout
    assert out == "ada@example.com: added beta; tags now: beta, customer, vip.\n"
    cli.ok("subscriber", "tag", "2", "customer")  # by id
    out = cli.ok("subscriber", "untag", "ada@example.com", "Beta", "never-had").stdout
    assert out == "ada@example.com: removed beta; tags now: customer, vip.\n"
    out = cli.ok("subscriber", "untag", "bob@example.com", "customer").stdout
    assert out == "bob@example.com: removed customer; tags now: none.\n"
    assert show(cli, "ada@example.com")["tags"] == ["customer", "vip"]
    assert "tags          customer, vip" in cli.ok("subscriber", "show", "ada@example.com").stdout
    assert emails(cli, "--tag", "customer") == ["ada@example.com"]
    assert emails(cli, "--tag", "beta") == []  # the tag stays, with nobody
    # Export: a tags column, comma-separated; importing the export gives the same tags.
    rows = list(csv.DictReader(io.StringIO(cli.ok("subscriber", "export").stdout)))
    assert [(r["email"], r["tags"]) for r in rows] == [
        ("ada@example.com", "customer,vip"),
        ("bob@example.com", ""),
    ]
    out_file = tmp_path / "export.csv"
    cli.ok("subscriber", "export", "--out", str(out_file))
    cli.ok("subscriber", "untag", "ada@example.com", "customer", "vip")
    cli.ok("subscriber", "import", str(out_file))
    assert show(cli, "ada@example.com")["tags"] == ["customer", "vip"]


def test_erase_takes_the_tags_too(cli) -> None:
    cli.ok("subscriber", "add", "eve@example.com")
    cli.ok("subscriber", "tag", "eve@example.com", "secret")
    cli.ok("subscriber", "erase", "eve@example.com", "--yes")
    assert store_snapshot(cli.config)["subscriber_tags"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscriber", "tag", "ghost@example.com", "vip"], "no subscriber 'ghost@example.com'"),
        (["subscriber", "untag", "ghost@example.com", "vip"], "no subscriber"),
        (["subscriber", "tag", "ada@example.com", "a,b"], "may not contain ','"),
        (["subscriber", "tag", "ada@example.com", "  "], "a tag needs a name"),
        (["subscriber", "list", "--tag", "nope"], "no tag named 'nope'"),
        (["subscriber", "import", str(MAILCHIMP_TAGS), "--tag", "x" * 101], "longer than 100"),
    ],
)
def test_errors_are_one_line_and_exit_1(cli, args, message) -> None:
    cli.ok("subscriber", "add", "ada@example.com")
    before = store_snapshot(cli.config)
    result = cli(*args)
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert store_snapshot(cli.config) == before


def test_tag_usage_needs_a_name(cli) -> None:
    assert cli("subscriber", "tag", "ada@example.com").exit_code == 2


@pytest.mark.parametrize(
    ("cell", "tags"),
    [
        ("customer, vip", ["customer", "vip"]),
        ('"Customer","VIP"', ["customer", "vip"]),
        ("churned", ["churned"]),
        (" , ,", []),
        ("Été,  Zoë  Fans ", ["zoë fans", "été"]),
    ],
)
def test_split_cell(cell, tags) -> None:
    assert split_cell(cell) == tags


@pytest.mark.parametrize("name", ["", "a,b", 'say "hi"', "tab\there", "x" * 101, "nul\x00"])
def test_refused_names(name) -> None:
    if name == "tab\there":  # white space inside a name is made one space
        assert normalise_tag(name) == "tab here"
        return
    with pytest.raises(InvalidInputError):
        normalise_tag(name)


def test_the_core_tables_name_columns_the_models_have() -> None:
    from newsletter.store import tags
    from newsletter.store.models import Base

    for core in (tags.tags, tags.subscriber_tags):
        model = Base.metadata.tables[core.name]
        assert set(core.c.keys()) <= set(model.c.keys()), core.name
