"""Shared parts of the bounce tests: the fixture messages, an issue really sent (through the
maildir transport, with VERP on) to bounce against, and helpers that turn a fixture into
the bounce of one of those messages.

Fixture messages (tests/fixtures/bounces/*.eml) are shaped like the real thing from
Postfix, Exim, qmail, Gmail, Microsoft 365, Yahoo and Hotmail. ``retarget`` rewrites one so it
reports on a message this test sent: it swaps the fixture's VERP address, recipient and
original Message-ID (found with the parser itself) for the real ones.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.bounces.parse import parse_report
from newsletter.config import Settings, database_url, load_settings
from newsletter.store import connect, session_factory
from tests.conftest import FIXTURES, Cli
from tests.delivery.conftest import smtp_server, tls_files  # noqa: F401  (fixtures)
from tests.delivery.test_send_issue import seed

BOUNCES = FIXTURES / "bounces"
RETURN_PATH = "bounces+{token}@news.example.com"
_reports = itertools.count(1)


def fixture(name: str) -> bytes:
    return (BOUNCES / name).read_bytes()


def retarget(raw: bytes, *, verp: str = "", rcpt: str = "", message_id: str = "") -> bytes:
    """The fixture ``raw`` as a report on another message: every VERP address in it becomes
    ``verp``, the reported recipient ``rcpt``, the original Message-ID ``message_id``.
    Also gives the report a Message-ID of its own, so each use is a new report."""
    report = parse_report(raw)
    swaps: dict[str, str] = {}
    if verp:
        for address in report.envelope_to:
            if address.startswith("bounces+"):
                swaps[address] = verp
    if rcpt:
        for f in report.failures:
            for old in (f.recipient, f.original_recipient):
                if old:
                    swaps[old] = rcpt
        for old in report.original_to:
            swaps[old] = rcpt
    if message_id and report.original_message_id:
        swaps[report.original_message_id] = message_id
    for old, new in swaps.items():
        raw = raw.replace(old.encode(), new.encode())
    if report.message_id:
        fresh = f"<report.{next(_reports)}@reports.example.net>"
        raw = raw.replace(report.message_id.encode(), fresh.encode(), 1)
    return raw


def write_maildir(path: Path, messages: list[bytes]) -> mailbox.Maildir:
    """A Maildir at ``path`` holding ``messages`` in new/, as a delivery agent leaves them."""
    box = mailbox.Maildir(path, create=True)
    for raw in messages:
        box.add(raw)
    return box


@dataclass
class SentMessage:
    email: str
    mail_from: str
    message_id: str


@dataclass
class SentIssue:
    """Issue 1, sent to ``emails`` through the maildir transport with VERP on."""

    cli: Cli
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    emails: list[str]
    messages: dict[str, SentMessage]


def sent_messages(outbox: Path) -> dict[str, SentMessage]:
    """What the maildir transport wrote: by recipient, its envelope sender and Message-ID."""
    found = {}
    for path in sorted((outbox / "new").iterdir()):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        rcpt = str(msg["Delivered-To"])
        found[rcpt] = SentMessage(rcpt, str(msg["Return-Path"]).strip("<>"), str(msg["Message-ID"]))
    return found


@pytest.fixture
def sent_issue(cli: Cli, tmp_path: Path) -> Iterator[SentIssue]:
    text = cli.config.read_text()
    cli.config.write_text(
        f'{text}\n[sending]\ntransport = "maildir"\nmaildir_path = "outbox"\n'
        f'\n[bounces]\nreturn_path = "{RETURN_PATH}"\n'
    )
    emails = seed(cli, tmp_path, 6)
    cli.ok("issue", "send", "1", "--workers", "1")
    settings = load_settings(cli.config)
    engine = connect(database_url(settings))
    try:
        yield SentIssue(
            cli, settings, engine, session_factory(engine), emails,
            sent_messages(tmp_path / "outbox"),
        )  # fmt: skip
    finally:
        engine.dispose()
