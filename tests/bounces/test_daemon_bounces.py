"""`newsletter run` processes the bounce mailbox at its interval."""

from __future__ import annotations

import json
from pathlib import Path

from tests.delivery.test_daemon import Daemon

from .conftest import SentIssue, fixture, retarget, write_maildir


def test_the_daemon_processes_bounces_at_its_interval(
    sent_issue: SentIssue, tmp_path: Path
) -> None:
    cli = sent_issue.cli
    gone = sent_issue.emails[2]
    report = retarget(
        fixture("postfix_user_unknown.eml"), verp=sent_issue.messages[gone].mail_from, rcpt=gone
    )
    write_maildir(tmp_path / "returned", [report])
    text = cli.config.read_text().replace(
        "[bounces]\n", '[bounces]\nsource = "returned"\ninterval_minutes = 0.01\n', 1
    )
    cli.config.write_text(text + "\n[scheduler]\ndispatch_interval_seconds = 0.3\n")
    daemon = Daemon(cli.config)
    try:
        daemon.wait_for("job.scheduled id=bounces")
        daemon.wait_for("bounces.processed")
    finally:
        assert daemon.stop() == 0
    person = json.loads(cli.ok("subscriber", "show", gone, "--json").stdout)
    assert person["status"] == "bounced"
    others = [e for e in sent_issue.emails if e != gone]
    assert all(
        json.loads(cli.ok("subscriber", "show", e, "--json").stdout)["status"] == "active"
        for e in others
    )


def test_mailto_unsubscribe_requests_are_honoured(sent_issue: SentIssue, tmp_path: Path) -> None:
    import email
    import email.policy

    cli = sent_issue.cli
    leaving = sent_issue.emails[1]
    delivered = {
        str(m["Delivered-To"]): m
        for m in (
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in (tmp_path / "outbox" / "new").iterdir()
        )
    }
    url = str(delivered[leaving]["List-Unsubscribe"]).split(">")[0].lstrip("<")
    token = url.rsplit("/", 1)[1].split("?")[0]

    def request(subject: str) -> bytes:
        return (
            f"From: <{leaving}>\r\nTo: <unsubscribe@news.example.com>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@mail.example.org>\r\n\r\n\r\n"
        ).encode()

    forged = "unsubscribe-" + "A" * len(token)
    write_maildir(tmp_path / "requests", [request(f"unsubscribe-{token}"), request(forged)])
    out = cli.ok("bounces", "process", str(tmp_path / "requests")).stdout
    assert "1 unsubscribed by email" in out
    person = json.loads(cli.ok("subscriber", "show", leaving, "--json").stdout)
    assert person["status"] == "unsubscribed"
    assert person["events"][-1]["source"] == "mailto"
    others = [e for e in sent_issue.emails if e != leaving]
    assert all(
        json.loads(cli.ok("subscriber", "show", e, "--json").stdout)["status"] == "active"
        for e in others
    )
