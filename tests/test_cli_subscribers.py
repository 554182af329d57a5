"""The subscriber and list commands, through the real entry point."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from newsletter.cli import app
from tests.helpers import store_snapshot


def test_every_command_has_help_text() -> None:
    import typer.main

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    root = typer.main.get_command(app)
    missing = [" ".join(p) for p, c in walk(root, []) if p and not (c.help or "").strip()]
    assert missing == []


def test_add_list_show(cli) -> None:
    cli.ok("list", "create", "weekly", "--description", "The weekly letter")
    out = cli.ok("subscriber", "add", " Ada@Example.COM ", "--name", "Ada", "--list", "weekly")
    assert "Added Ada@example.com (active" in out.stdout
    cli.ok("subscriber", "add", "grace@example.org", "--unconfirmed")
    rows = json.loads(cli.ok("subscriber", "list", "--json").stdout)
    assert [(r["email"], r["status"], r["lists"]) for r in rows] == [
        ("Ada@example.com", "active", ["weekly"]),
        ("grace@example.org", "unconfirmed", []),
    ]
    assert {"id", "email", "name", "status"} <= set(rows[0])
    only = json.loads(cli.ok("subscriber", "list", "--json", "--list", "weekly").stdout)
    assert [r["email"] for r in only] == ["Ada@example.com"]
    found = json.loads(cli.ok("subscriber", "list", "--json", "--search", "GRACE").stdout)
    assert [r["email"] for r in found] == ["grace@example.org"]
    person = json.loads(cli.ok("subscriber", "show", "ADA@example.com", "--json").stdout)
    assert person["lists"] == ["weekly"]
    assert [e["kind"] for e in person["events"]] == ["confirmed"]
    lists = json.loads(cli.ok("list", "ls", "--json").stdout)
    assert lists[0]["name"] == "weekly" and lists[0]["counts"]["active"] == 1
    assert json.loads(cli.ok("list", "show", "weekly", "--json").stdout)["members"] == 1


def test_empty_list_json_is_an_empty_array(cli) -> None:
    assert json.loads(cli.ok("subscriber", "list", "--json").stdout) == []


def test_name_with_crlf_cannot_carry_a_header(cli) -> None:
    cli.ok("subscriber", "add", "mal@example.com", "--name", "Mal\r\nBcc: victim@example.org")
    person = json.loads(cli.ok("subscriber", "show", "mal@example.com", "--json").stdout)
    assert person["name"] == "Mal Bcc: victim@example.org"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscriber", "add", "not-an-email"], "is not a valid email address"),
        (["subscriber", "add", "a@example.com", "--list", "nope"], "no list named 'nope'"),
        (["subscriber", "show", "ghost@example.com"], "no subscriber"),
        (["list", "show", "nope"], "no list named"),
        (["subscriber", "list", "--status", "happy"], "unknown status"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(cli, args, message) -> None:
    before = store_snapshot(cli.config)
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert store_snapshot(cli.config) == before


def test_usage_error_exits_2(cli) -> None:
    result = cli("subscriber", "add", "a@example.com", "--confirmed", "--unconfirmed")
    assert result.exit_code == 2


def test_missing_config_is_one_line(tmp_path, capsys) -> None:
    from tests.conftest import Cli

    result = Cli(tmp_path / "absent.toml", capsys)("subscriber", "list")
    assert result.exit_code == 1
    assert "absent.toml not found" in result.stderr


def test_unmigrated_database_says_to_upgrade(tmp_path, capsys) -> None:
    from tests.conftest import Cli, write_config

    config = write_config(tmp_path / "n.toml", f"sqlite:///{tmp_path / 'n.db'}")
    result = Cli(config, capsys)("subscriber", "list")
    assert result.exit_code == 1 and "newsletter db upgrade" in result.stderr


def test_unsubscribe_is_idempotent_and_blocks_readding(cli) -> None:
    cli.ok("subscriber", "add", "ada@example.com")
    assert "unsubscribed" in cli.ok("subscriber", "unsubscribe", "ada@example.com").stdout
    assert "already" in cli.ok("subscriber", "unsubscribe", "ada@example.com").stdout
    result = cli("subscriber", "add", "ADA@example.com")
    assert result.exit_code == 1 and "unsubscribed" in result.stderr
    person = json.loads(cli.ok("subscriber", "show", "ada@example.com", "--json").stdout)
    assert person["status"] == "unsubscribed"
    assert [e["kind"] for e in person["events"]] == ["confirmed", "unsubscribed"]


def test_erase_keeps_only_a_hash_and_blocks_reimport(cli, tmp_path) -> None:
    cli.ok("subscriber", "add", "erase.me@example.com", "--name", "Eve Private")
    cli.ok("subscriber", "erase", "erase.me@example.com", "--yes")
    snapshot = store_snapshot(cli.config)
    assert snapshot["subscribers"] == [] and snapshot["subscriber_events"] == []
    assert len(snapshot["suppressions"]) == 1
    dump = json.dumps(snapshot)
    assert "erase.me" not in dump and "Eve" not in dump
    assert "erased" in cli("subscriber", "add", "Erase.Me@example.com").stderr
    csv_file = tmp_path / "again.csv"
    csv_file.write_text("email\nerase.me@example.com\n", encoding="utf-8")
    out = cli.ok("subscriber", "import", str(csv_file)).stdout
    assert "0 new" in out and "1 suppressed" in out
    assert store_snapshot(cli.config)["subscribers"] == []


def test_erase_asks_first(cli) -> None:
    cli.ok("subscriber", "add", "keep@example.com")
    result = cli("subscriber", "erase", "keep@example.com", input="n\n")
    assert result.exit_code == 1
    assert len(store_snapshot(cli.config)["subscribers"]) == 1


def test_export_neutralises_formulas_and_streams(cli, tmp_path) -> None:
    cli.ok("subscriber", "add", "=cmd@example.com", "--name", '=HYPERLINK("http://x")')
    cli.ok("subscriber", "add", "plain@example.com", "--name", "+1 Plain")
    cli.ok("subscriber", "add", "at@example.com", "--name", "@SUM(A1)")
    out = tmp_path / "out.csv"
    cli.ok("subscriber", "export", "--out", str(out))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["email"] for r in rows] == [
        "'=cmd@example.com",
        "plain@example.com",
        "at@example.com",
    ]
    assert [r["name"] for r in rows] == ['\'=HYPERLINK("http://x")', "'+1 Plain", "'@SUM(A1)"]
    stdout_rows = list(csv.DictReader(io.StringIO(cli.ok("subscriber", "export").stdout)))
    assert len(stdout_rows) == 3


def test_console_script_runs_as_a_process(cli) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(cli.config), "subscriber", "show",
         "x@example.com"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: no subscriber 'x@example.com'"
