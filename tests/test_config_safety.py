"""Configuration cannot inject or leak, files are private, a bad config or database is one
line: through the real CLI, with real files, SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from newsletter.config import database_url, load_settings
from newsletter.errors import ConfigError
from newsletter.store import connect
from newsletter.store.engine import db_error_line, mask_password, sqlite_path
from tests.conftest import FIXTURES, Cli, write_config

POSTS = FIXTURES / "posts"
INJECTION = "\r\nBcc: victim@example.org"
SECRET = "s3cret-Pw"

# Commands that only read, and the ones that create or migrate the database.
READ_COMMANDS = [
    ("subscriber", "list"),
    ("issue", "ls"),
    ("list", "ls"),
    ("check",),
]
EVERY_KIND = [*READ_COMMANDS, ("init",), ("db", "upgrade"), ("subscriber", "add", "a@b.example")]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def one_line(result) -> str:
    """The single line a failed command printed (stderr, or check's FAIL line)."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    if result.stderr:
        (line,) = result.stderr.splitlines()
        return line
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("FAIL")]
    return line


SITE = {
    "name": '"Example Essays"',
    "base_url": '"https://news.example.com"',
    "postal_address": '"Example Ltd\\n1 Main Street\\n111 22 Stockholm"',
}
SENDER = {"from_name": '"Example Essays"', "from_address": '"letters@example.com"'}


def config_text(
    url: str,
    *,
    site: dict[str, str] | None = None,
    sender: dict[str, str] | None = None,
    sending: str = "",
    extra: str = "",
) -> str:
    """A config whose only possible failure is the one under test (maildir transport, so no
    SMTP server is needed; a postal address and an https base URL). ``site`` and ``sender``
    override keys with TOML values."""

    def table(name: str, keys: dict[str, str]) -> str:
        return f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())

    return f"""
{table("site", {**SITE, **(site or {})})}
{table("sender", {**SENDER, **(sender or {})})}
[database]
url = "{url}"

[sending]
transport = "maildir"
maildir_path = "outbox"
{sending}

{extra}
"""


# -- item 5: no value that reaches a header may hold a line break or a control ------------

# (section, key, TOML value): each would put a Bcc header (or a new SMTP command) in.
HEADER_VALUES = [
    ("sending", "unsubscribe_mailto", '"unsubscribe@example.com?subject=x\\r\\nBcc: v@x.org"'),
    ("sender", "from_name", '"Essays\\r\\nBcc: victim@example.org"'),
    ("sender", "from_address", '"letters@example.com\\nBcc: victim@example.org"'),
    ("sender", "reply_to", '"me@example.com\\r\\nBcc: victim@example.org"'),
    ("sender", "list_id", '"essays.example.com\\r\\nBcc: victim@example.org"'),
    ("site", "name", '"Essays\\u2028Bcc: victim@example.org"'),
    ("site", "base_url", '"https://news.example.com\\r\\nBcc: victim@example.org"'),
    ("sending", "feedback_id", '"c1:essays\\r\\nBcc: victim@example.org"'),
    ("digest", "subject", '"{site} digest\\r\\nBcc: victim@example.org"'),
    ("bounces", "return_path", '"bounces@example.com\\u0000"'),
    ("smtp", "ehlo_name", '"mail.example.com\\r\\nRSET"'),
    ("web", "lists", '["blog", "news\\u0007"]'),
]


def _with_value(url: str, section: str, key: str, value: str) -> str:
    line = f"{key} = {value}"
    if section == "site":
        return config_text(url, site={key: value})
    if section == "sender":
        return config_text(url, sender={key: value})
    if section == "sending":
        return config_text(url, sending=line)
    return config_text(url, extra=f"[{section}]\n{line}\n")


@pytest.mark.parametrize(("section", "key", "value"), HEADER_VALUES)
def test_a_control_character_in_a_header_value_is_one_line_naming_the_key(
    tmp_path: Path, capsys, migrated_url: str, section: str, key: str, value: str
) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(_with_value(migrated_url, section, key, value), encoding="utf-8")
    cli = Cli(config, capsys)

    checked = cli("check")
    line = one_line(checked)
    assert line.startswith("FAIL config") and f"{section}.{key}: contains " in line
    listed = one_line(cli("subscriber", "list"))
    assert listed.startswith(f"Error: {config}: {section}.{key}: contains ")


def test_the_unsubscribe_mailto_attack_adds_no_header(issue_cli_factory) -> None:
    """The reported attack: `check` fails and nothing is sent; the same config without the
    CR LF sends a message whose headers are exactly the expected ones."""
    bad = issue_cli_factory('unsubscribe_mailto = "u@example.com?subject=x\\r\\nBcc: v@x.org"')
    assert "sending.unsubscribe_mailto: contains a line break (U+000D)" in one_line(bad("check"))
    assert one_line(bad("issue", "send", "1", "--workers", "1")).startswith("Error: ")

    good = issue_cli_factory('unsubscribe_mailto = "u@example.com"')
    good.ok("issue", "send", "1", "--workers", "1")
    (eml,) = (good.config.parent / "outbox" / "new").iterdir()
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert (
        "Bcc" not in message
        and "<mailto:u@example.com?subject=unsubscribe-" in (message["List-Unsubscribe"])
    )


@pytest.mark.parametrize(
    "value",
    ['"a b@example.com"', '"u@example.com?subject=<x>"', '"u@example.com?subject=\\"x\\""'],
)
def test_an_unsubscribe_mailto_that_cannot_sit_in_angle_brackets_is_refused(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "n.toml"
    path.write_text(f"[sending]\nunsubscribe_mailto = {value}\n")
    with pytest.raises(ConfigError, match=r"sending\.unsubscribe_mailto: .* may not contain"):
        load_settings(path)


def test_multi_line_texts_keep_their_lines_and_refuse_other_controls(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[site]\npostal_address = "Ltd\\n1 Main St\\r\\n\\tStockholm"\n')
    assert load_settings(path).site.postal_address == "Ltd\n1 Main St\r\n\tStockholm"
    path.write_text('[web]\nconsent_text = "Yes.\\u001b[2J"\n')
    with pytest.raises(ConfigError, match=r"web\.consent_text: contains the control character"):
        load_settings(path)


# -- item 5: database URLs are shown with the password masked -------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pw@db.example.com/news", "postgresql://user:***@db.example.com/news"),
        ("postgresql://user:p@ss w@host:5433/db?x=1", "postgresql://user:***@host:5433/db?x=1"),
        ("postgresql://host/db?user=u&password=pw&x=1", "postgresql://host/db?user=u&password=***&x=1"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////var/lib/a:b@c.db", "sqlite:////var/lib/a:b@c.db"),
        ("bad URL 'postgres://u:pw@h/x': no", "bad URL 'postgres://u:***@h/x': no"),
        ("host=h password='a b' user=u", "host=h password=*** user=u"),
    ],
)  # fmt: skip
def test_mask_password(url: str, shown: str) -> None:
    assert mask_password(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://news:{SECRET}@127.0.0.1:1/news",  # nothing listens there
        f"postgresql://news:{SECRET}@127.0.0.1:99999/news",  # a port that cannot be
        f"postgresql://news:{SECRET}@127.0.0.1:fivefour/news",  # not a number
        f"postgresql://news:{SECRET}@127.0.0.1:5432/news?bogus_option=1",
        f"postgresql+nodriver://news:{SECRET}@127.0.0.1/news",
        f"mysql://news:{SECRET}@127.0.0.1/news",
        f"postgresql://news@127.0.0.1:1/news?password={SECRET}",
    ],
)
@pytest.mark.parametrize("command", EVERY_KIND)
def test_a_bad_database_url_is_one_masked_line_in_every_command(
    tmp_path: Path, capsys, url: str, command: tuple[str, ...]
) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(config_text(url))
    result = Cli(config, capsys)(*command)
    line = one_line(result)
    assert SECRET not in result.stdout + result.stderr
    assert "***" in line and "database" in line


def test_a_bad_port_says_what_is_wrong(tmp_path: Path, capsys) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(config_text(f"postgresql://u:{SECRET}@127.0.0.1:99999/x"))
    assert one_line(Cli(config, capsys)("init")) == (
        "Error: bad database URL postgresql://u:***@127.0.0.1:99999/x: port 99999 is not 1-65535"
    )
    config.write_text(config_text(f"postgresql://u:{SECRET}@127.0.0.1:x1/x"))
    assert one_line(Cli(config, capsys)("issue", "ls")).endswith("the port is not a number")


def _with_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    assert at, "the test URL names a user"
    return f"{scheme}://{userinfo.split(':')[0]}:{SECRET}@{host}"


def test_postgresql_check_and_errors_mask_the_password(postgres_url: str, tmp_path, capsys):
    url = _with_password(postgres_url)
    config = tmp_path / "newsletter.toml"
    config.write_text(config_text(url))
    cli = Cli(config, capsys)
    cli.ok("init")
    checked = cli.ok("check")
    (line,) = [ln for ln in checked.stdout.splitlines() if ln.startswith("ok   database")]
    assert ":***@" in line and SECRET not in checked.stdout

    missing = make_url(url).set(database="no_such_db_xyz").render_as_string(hide_password=False)
    config.write_text(config_text(missing))
    for command in (("check",), ("subscriber", "list"), ("init",)):
        result = cli(*command)
        assert "no_such_db_xyz" in one_line(result) and SECRET not in result.stderr + result.stdout


def test_a_driver_error_line_is_masked_and_single(postgres_url: str) -> None:
    from sqlalchemy.exc import DBAPIError

    engine = connect(_with_password(postgres_url) + "&password=" + SECRET + "&nosuchoption=1")
    with pytest.raises(DBAPIError) as caught:
        engine.connect()
    engine.dispose()
    line = db_error_line(caught.value)
    assert "nosuchoption" in line and SECRET not in line and "\n" not in line


# -- item 5: a file that is not a database, a database that does not exist -------------------


@pytest.mark.parametrize("command", EVERY_KIND)
def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path, capsys, command) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    before = junk.read_bytes()
    config = tmp_path / "newsletter.toml"
    config.write_text(config_text(f"sqlite:///{junk}"))
    line = one_line(Cli(config, capsys)(*command))
    assert f"cannot open the database {junk}: file is not a database" in line
    assert junk.read_bytes() == before


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_does_not_create_the_database(tmp_path: Path, capsys, command) -> None:
    db = tmp_path / "news.db"
    config = tmp_path / "newsletter.toml"
    config.write_text(config_text(f"sqlite:///{db}"))
    line = one_line(Cli(config, capsys)(*command))
    assert f"database {db} does not exist: run `newsletter init`" in line
    assert not db.exists() and list(tmp_path.iterdir()) == [config]


def test_init_creates_the_missing_database(tmp_path: Path, capsys, db_kind, database_url) -> None:
    config = write_config(tmp_path / "newsletter.toml", database_url)
    cli = Cli(config, capsys)
    assert "upgraded from empty" in cli.ok("init").stdout
    cli.ok("subscriber", "add", "ada@example.com")
    assert "ada@example.com" in cli.ok("subscriber", "list").stdout


# -- item 6: files are private -------------------------------------------------------------


def test_init_writes_config_and_database_0600(tmp_path: Path, capsys, umask_022) -> None:
    config = tmp_path / "site" / "newsletter.toml"
    Cli(config, capsys).ok("init")
    db = config.parent / "newsletter.db"
    assert mode(config) == 0o600 and mode(db) == 0o600
    engine = connect(f"sqlite:///{db}")  # a running service: -wal and -shm exist meanwhile
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM probe")).all()
            wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
            assert wal.exists() and shm.exists()
            assert mode(wal) == 0o600 and mode(shm) == 0o600
    finally:
        engine.dispose()


def test_init_leaves_an_existing_config_as_it_is(tmp_path: Path, capsys, umask_022) -> None:
    config = write_config(tmp_path / "newsletter.toml", f"sqlite:///{tmp_path / 'n.db'}")
    config.chmod(0o640)
    Cli(config, capsys).ok("init")
    assert mode(config) == 0o640 and mode(tmp_path / "n.db") == 0o600


@pytest.fixture
def issue_cli_factory(tmp_path: Path, capsys, migrated_url: str):
    """A CLI with one issue to one subscriber, the maildir transport and ``sending`` lines."""

    def make(sending: str = "") -> Cli:
        config = tmp_path / "newsletter.toml"
        config.write_text(config_text(migrated_url, sending=sending))
        return Cli(config, capsys)

    cli = make()
    cli.ok("list", "create", "blog")
    cli.ok("subscriber", "add", "ada@example.com", "--name", "Ada", "--list", "blog")
    cli.ok("post", "add", str(POSTS / "pricing-per-seat.md"))
    cli.ok("issue", "create", "--latest", "--list", "blog")
    return make


def test_the_maildir_transport_writes_0600_files_in_0700_folders(
    issue_cli_factory, umask_022
) -> None:
    cli = issue_cli_factory()
    cli.ok("issue", "send", "1", "--workers", "1")
    outbox = cli.config.parent / "outbox"
    (eml,) = (outbox / "new").iterdir()
    assert eml.suffix == ".eml" and mode(eml) == 0o600
    assert {mode(d) for d in (outbox, outbox / "tmp", outbox / "new", outbox / "cur")} == {0o700}


def test_check_warns_about_files_others_can_read(issue_cli_factory, tmp_path: Path) -> None:
    cli = issue_cli_factory()
    cli.ok("issue", "send", "1", "--workers", "1")  # creates the maildir
    db = sqlite_path(database_url(load_settings(cli.config)))  # None on PostgreSQL
    outbox = cli.config.parent / "outbox"
    cli.config.chmod(0o600)
    outbox.chmod(0o700)
    if db is not None:
        db.chmod(0o600)
    quiet = cli.ok("check")
    assert not [ln for ln in quiet.stdout.splitlines() if "readable" in ln]

    cli.config.chmod(0o644)
    outbox.chmod(0o755)
    if db is not None:
        db.chmod(0o640)
    warned = cli("check")
    assert warned.exit_code == 0, warned.stdout  # a warning, not a failure
    lines = [ln for ln in warned.stdout.splitlines() if "readable" in ln]
    expected = [
        f"warn config     {cli.config} is readable by group or others: chmod 600 {cli.config}",
        f"warn transport  maildir {outbox} is readable by group or others: chmod 700 {outbox}",
    ]
    if db is not None:
        expected.insert(1, f"warn database   {db} is readable by group or others: chmod 600 {db}")
    assert lines == expected


# -- item 4: a config nested 100,000 deep -------------------------------------------------


@pytest.mark.parametrize("opening", ["[", "{a = "])
@pytest.mark.parametrize("command", [*EVERY_KIND, ("serve",), ("run",), ("worker",)])
def test_a_deeply_nested_config_is_one_line(tmp_path: Path, capsys, opening, command) -> None:
    config = tmp_path / "deep.toml"
    config.write_text("a = " + opening * 100_000 + "\n")
    line = one_line(Cli(config, capsys)(*command))
    assert f"{config}: config file too deeply nested" in line
