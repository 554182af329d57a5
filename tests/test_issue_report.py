"""The issue report (issues/report.py) read directly, for an issue really sent to a maildir."""

from __future__ import annotations

import json
from pathlib import Path

from newsletter.config import load_settings
from newsletter.issues.report import PostLink, issue_report
from newsletter.issues.service import get_issue, issue_row
from newsletter.store import connect, session_factory
from tests.conftest import FIXTURES, Cli, write_config

MAILDIR = '[sending]\ntransport = "maildir"\nmaildir_path = "outbox"\n'


def test_the_report_of_a_sent_issue(tmp_path: Path, migrated_url: str, capsys) -> None:
    cli = Cli(write_config(tmp_path / "newsletter.toml", migrated_url, MAILDIR), capsys)
    cli.ok("list", "create", "blog")
    cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    cli.ok("subscriber", "add", "grace@example.com", "--list", "blog")
    cli.ok("post", "add", str(FIXTURES / "posts" / "pricing-per-seat.md"))
    cli.ok("issue", "create", "--latest", "--list", "blog")
    cli.ok("issue", "send", "1", "--workers", "1")

    engine = connect(migrated_url)
    try:
        with session_factory(engine)() as session, session.begin():
            report = issue_report(session, load_settings(cli.config), 1)
            row = issue_row(get_issue(session, 1))
    finally:
        engine.dispose()

    title = "Why we price per seat: notes from year three"
    assert (report.id, report.subject, report.status, report.kind) == (1, title, "sent", "post")
    assert (report.list_name, report.audience, report.public) == ("blog", 2, False)
    assert report.posts == (
        PostLink(id=1, title=title, url="https://news.example.com/posts/pricing-per-seat/"),
    )
    assert dict(report.deliveries) == {
        "pending": 0, "sending": 0, "sent": 2, "deferred": 0, "failed": 0, "bounced": 0,
        "skipped": 0,
    }  # fmt: skip
    assert dict(report.bounces) == {"hard": 0, "soft": 0, "complaint": 0}
    assert report.errors == () and report.backoffs == () and report.pause_reason is None
    assert report.started_at is not None and report.finished_at is not None
    assert report.started_at <= report.finished_at
    assert report.web_url.startswith(f"https://news.example.com/archive/{report.slug}?k=")
    # Its JSON form begins with the `issue ls --json` row and is what `issue show --json` prints.
    data = report.as_json()
    assert list(data.items())[: len(row)] == list(row.items())
    assert json.loads(cli.ok("issue", "show", "1", "--json").stdout) == data
