"""CSV import: presets, validation, de-duplication, never-resubscribe, dry run, bad files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.helpers import store_snapshot

IMPORT = FIXTURES / "import"


def people(cli) -> dict[str, dict]:
    return {r["email"]: r for r in json.loads(cli.ok("subscriber", "list", "--json").stdout)}


def report_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def test_mailchimp_export(cli, tmp_path) -> None:
    cli.ok("list", "create", "weekly")
    report = tmp_path / "report.csv"
    out = cli.ok(
        "subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv"), "--list", "weekly",
        "--report", str(report),
    ).stdout  # fmt: skip
    assert "(mailchimp format): 6 new, 0 updated, 0 unchanged, 1 duplicate in file" in out
    assert "3 rejected" in out and "6 joined list 'weekly'" in out
    subs = people(cli)
    assert set(subs) == {
        "ada@example.com",
        "Grace.Hopper@example.org",  # domain lower-cased, local part kept
        "jürgen@bücher.de",  # internationalised domain and local part
        "info@café.example",  # an A-label domain is stored in its Unicode form
        "mallory@example.net",
        "spaced@example.com",  # trimmed
    }
    assert subs["ada@example.com"]["name"] == "Ada Lovelace"  # the first of two rows wins
    assert subs["mallory@example.net"]["name"] == "Mal Bcc: victim@example.org Lory"
    assert all(s["status"] == "active" and s["lists"] == ["weekly"] for s in subs.values())
    grace = json.loads(cli.ok("subscriber", "show", "grace.hopper@example.org", "--json").stdout)
    assert grace["attributes"]["Company"] == "Navy Computing Lab"  # quoted newline, cleaned
    ada = json.loads(cli.ok("subscriber", "show", "ada@example.com", "--json").stdout)
    assert ada["attributes"]["Company"] == "Analytical Engines, Ltd"  # quoted comma
    assert ada["attributes"]["OPTIN_IP"] == "192.0.2.10"  # consent data kept
    assert [e["kind"] for e in ada["events"]] == ["imported"]
    assert ada["events"][0]["detail"] == {"file": "mailchimp_subscribed.csv", "row": 2}
    rows = report_rows(report)
    assert [(r["row"], r["outcome"]) for r in rows] == [
        ("4", "duplicate"), ("5", "rejected"), ("9", "rejected"), ("11", "rejected"),
    ]  # fmt: skip
    assert rows[0]["reason"] == "duplicate of row 2"
    assert rows[1]["value"] == "not-an-email" and "@-sign" in rows[1]["reason"]


def test_reimport_is_idempotent(cli) -> None:
    cli.ok("subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv"))
    before = store_snapshot(cli.config)
    out = cli.ok("subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv")).stdout
    assert "0 new, 0 updated, 6 unchanged" in out
    assert store_snapshot(cli.config) == before


def test_unsubscribed_people_never_come_back(cli) -> None:
    cli.ok("subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv"))
    # Mailchimp's unsubscribed export: a known person becomes unsubscribed, a new one is
    # stored as unsubscribed (suppressed), never active.
    out = cli.ok("subscriber", "import", str(IMPORT / "mailchimp_unsubscribed.csv")).stdout
    assert "1 new, 1 updated" in out
    subs = people(cli)
    assert subs["ada@example.com"]["status"] == "unsubscribed"
    assert subs["gone@example.com"]["status"] == "unsubscribed"
    # Importing the subscribed export again does not re-activate either of them.
    out = cli.ok("subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv")).stdout
    assert "1 suppressed" in out
    assert people(cli)["ada@example.com"]["status"] == "unsubscribed"
    cli.ok("subscriber", "unsubscribe", "grace.hopper@example.org")
    cli.ok("subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv"))
    assert people(cli)["Grace.Hopper@example.org"]["status"] == "unsubscribed"


def test_dry_run_changes_nothing(cli) -> None:
    cli.ok("list", "create", "weekly")
    before = store_snapshot(cli.config)
    out = cli.ok(
        "subscriber", "import", str(IMPORT / "mailchimp_subscribed.csv"), "--dry-run",
        "--list", "weekly",
    ).stdout  # fmt: skip
    assert out.startswith("Dry run, nothing changed") and "6 new" in out
    assert "6 would join list 'weekly'" in out
    assert store_snapshot(cli.config) == before


def test_substack_export(cli) -> None:
    out = cli.ok("subscriber", "import", str(IMPORT / "substack.csv")).stdout
    assert "(substack format): 3 new" in out and "1 duplicate in file" in out
    subs = people(cli)
    assert subs["Reader2@example.com"]["status"] == "active"
    assert subs["disabled@example.com"]["status"] == "unsubscribed"


def test_listmonk_export(cli, tmp_path) -> None:
    report = tmp_path / "r.csv"
    out = cli.ok(
        "subscriber", "import", str(IMPORT / "listmonk.csv"), "--report", str(report)
    ).stdout
    assert "(listmonk format): 2 new" in out and "1 rejected" in out
    lm1 = json.loads(cli.ok("subscriber", "show", "lm1@example.com", "--json").stdout)
    assert lm1["name"] == "Lin, Mei"
    assert lm1["attributes"] == {"city": "Oslo", "plan": "pro"}
    assert people(cli)["lm2@example.com"]["status"] == "unsubscribed"  # blocklisted
    assert report_rows(report)[0]["reason"] == "the attributes column is not a JSON object"


def test_attributes_merge_on_reimport(cli, tmp_path) -> None:
    cli.ok("subscriber", "import", str(IMPORT / "listmonk.csv"))
    f = tmp_path / "more.csv"
    f.write_text('email,name,attributes\nlm1@example.com,,"{""team"": ""red""}"\n', "utf-8")
    out = cli.ok("subscriber", "import", str(f), "--preset", "listmonk").stdout
    assert "1 updated" in out
    lm1 = json.loads(cli.ok("subscriber", "show", "lm1@example.com", "--json").stdout)
    assert lm1["attributes"] == {"city": "Oslo", "plan": "pro", "team": "red"}
    assert lm1["name"] == "Lin, Mei"  # an empty name never blanks a stored one
    out = cli.ok("subscriber", "import", str(f), "--preset", "listmonk").stdout
    assert "0 updated, 1 unchanged" in out


def test_any_csv_with_a_mapping_and_semicolons(cli) -> None:
    out = cli.ok(
        "subscriber", "import", str(IMPORT / "custom_semicolon.csv"),
        "--map", "email=Kontakt", "--map", "name=Vorname", "--map", "city=Stadt",
    ).stdout  # fmt: skip
    assert "2 new" in out
    bernd = json.loads(cli.ok("subscriber", "show", "bernd@example.de", "--json").stdout)
    assert bernd["name"] == "Bernd" and bernd["attributes"] == {"city": "Köln; Innenstadt"}


def test_tab_separated_and_unconfirmed(cli) -> None:
    cli.ok("subscriber", "import", str(IMPORT / "tabs.tsv"), "--unconfirmed")
    subs = people(cli)
    assert {s["status"] for s in subs.values()} == {"unconfirmed"}
    assert subs["tab1@example.com"]["name"] == "Tab One"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["binary.csv"], "looks like a binary file"),
        (["empty.csv"], "empty.csv is empty"),
        (["latin1.csv"], "is not UTF-8 text"),
        (["no_email_column.csv"], "no email column found (columns are: 'foo', 'bar')"),
        (["custom_semicolon.csv", "--map", "email=Mail"], "column 'Mail' (from --map email=Mail)"),
        (["does-not-exist.csv"], "cannot open"),
        (["substack.csv", "--list", "nope"], "no list named 'nope'"),
        (["substack.csv", "--preset", "hubspot"], "unknown preset 'hubspot'"),
    ],
)
def test_bad_files_are_one_line_and_change_nothing(cli, args, message) -> None:
    cli.ok("subscriber", "import", str(IMPORT / "tabs.tsv"))
    before = store_snapshot(cli.config)
    result = cli("subscriber", "import", str(IMPORT / args[0]), *args[1:])
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert store_snapshot(cli.config) == before


def test_directory_instead_of_file(cli, tmp_path) -> None:
    before = store_snapshot(cli.config)
    result = cli("subscriber", "import", str(tmp_path))
    assert result.exit_code == 1 and "cannot open" in result.stderr
    assert store_snapshot(cli.config) == before


def test_bad_bytes_late_in_the_file_reject_only_that_row(cli, tmp_path) -> None:
    f = tmp_path / "late.csv"
    body = "".join(f"user{i}@example.com,User {i}\n" for i in range(30_000)).encode()
    f.write_bytes(b"email,name\n" + body + b"zoe@example.com,Zo\xeb\n")
    report = tmp_path / "r.csv"
    out = cli.ok("subscriber", "import", str(f), "--report", str(report)).stdout
    assert "30000 new" in out and "1 rejected" in out
    assert report_rows(report) == [
        {"row": "30002", "value": "zoe@example.com", "outcome": "rejected",
         "reason": "not UTF-8 text: save the file as UTF-8"}
    ]  # fmt: skip


def test_malformed_csv_fails_whole_and_changes_nothing(cli, tmp_path) -> None:
    f = tmp_path / "huge_field.csv"
    f.write_text('email,name\na@example.com,"' + "x" * 1_100_000 + '"\n', "utf-8")
    before = store_snapshot(cli.config)
    result = cli("subscriber", "import", str(f))
    assert result.exit_code == 1 and "row 2: field larger than field limit" in result.stderr
    assert store_snapshot(cli.config) == before


def test_bad_map_syntax_is_a_usage_error(cli) -> None:
    result = cli("subscriber", "import", str(IMPORT / "tabs.tsv"), "--map", "email")
    assert result.exit_code == 2
