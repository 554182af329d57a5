"""The whole loop over real SMTP: an issue goes out through aiosmtpd with VERP senders, the
bounces and complaints come back into a Maildir, `newsletter bounces process` applies the
rules, and the next issue never reaches the suppressed (email checklist items 24-27)."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections import Counter
from pathlib import Path

from newsletter.bounces.verp import VerpCodec, load_key
from newsletter.config import database_url, load_settings
from newsletter.store import connect, session_factory
from newsletter.store.models import Delivery, Subscriber
from tests.delivery.test_send_issue import seed, smtp_config

from .conftest import RETURN_PATH, fixture, retarget, write_maildir

VERP_SENDER = re.compile(r"bounces\+[0-9a-z]+-[a-z2-7]{16}@news\.example\.com")


def test_bounces_and_complaints_come_back_and_suppress(cli, smtp_server, tmp_path: Path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    returns = tmp_path / "returns"
    cli.config.write_text(
        cli.config.read_text()
        + f'\n[bounces]\nreturn_path = "{RETURN_PATH}"\nsource = "{returns}"\n'
    )
    emails = seed(cli, tmp_path, 9)
    cli.ok("issue", "send", "1", "--workers", "1")

    # Every message left with its own signed sender that decodes to its own delivery.
    sent = {}
    for m in server.handler.messages:
        (rcpt,) = m.rcpt_tos
        assert VERP_SENDER.fullmatch(m.mail_from), m.mail_from
        msg = email.message_from_bytes(m.content, policy=email.policy.default)
        sent[rcpt] = (m.mail_from, str(msg["Message-ID"]))
    assert sorted(sent) == sorted(emails)
    assert len({mail_from for mail_from, _ in sent.values()}) == len(emails)
    engine = connect(database_url(load_settings(cli.config)))
    try:
        with session_factory(engine)() as session:
            codec = VerpCodec(RETURN_PATH, load_key(session))
            for rcpt, (mail_from, message_id) in sent.items():
                d = session.get(Delivery, codec.decode(mail_from))
                assert (d.issue_id, d.message_id) == (1, message_id)
                assert session.get(Subscriber, d.subscriber_id).email == rcpt
    finally:
        engine.dispose()

    def back(name: str, who: str, *, verp: bool = True) -> bytes:
        mail_from, message_id = sent[who]
        verp_address = mail_from if verp else "bounces@news.example.com"
        return retarget(fixture(name), verp=verp_address, rcpt=who, message_id=message_id)

    hard = emails[:4]
    complained, delayed, away, replied, untouched = emails[4:]
    write_maildir(
        returns,
        [
            back("postfix_user_unknown.eml", hard[0]),
            back("gmail_no_such_user.eml", hard[1]),
            retarget(fixture("malformed_dsn_verp.eml"), verp=sent[hard[2]][0]),
            back("outlook_recipient_not_found.eml", hard[3], verp=False),  # by Message-ID
            back("arf_yahoo_abuse.eml", complained),
            back("postfix_delayed.eml", delayed),
            back("out_of_office.eml", away),
            back("human_reply.eml", replied),
        ],
    )
    summary = json.loads(cli.ok("bounces", "process", "--json").stdout)
    assert {k: summary[k] for k in ("messages", "recorded", "hard", "soft", "complaints")} == {
        "messages": 8, "recorded": 6, "hard": 4, "soft": 1, "complaints": 1,
    }  # fmt: skip
    assert (summary["not_bounces"], summary["unmatched"]) == (2, 0)
    assert sorted((c["email"], c["status"]) for c in summary["changes"]) == sorted(
        [(h, "bounced") for h in hard] + [(complained, "complained")]
    )

    def status(who: str) -> str:
        return json.loads(cli.ok("subscriber", "show", who, "--json").stdout)["status"]

    assert [status(h) for h in hard] == ["bounced"] * 4
    assert status(complained) == "complained"
    assert [status(x) for x in (delayed, away, replied, untouched)] == ["active"] * 4
    issue = json.loads(cli.ok("issue", "show", "1", "--json").stdout)
    assert issue["deliveries"]["bounced"] == 4 and issue["deliveries"]["sent"] == 5
    rows = json.loads(cli.ok("bounces", "ls", "--json", "--issue", "1").stdout)
    assert Counter(r["kind"] for r in rows) == {"hard": 4, "soft": 1, "complaint": 1}
    assert Counter(r["matched_by"] for r in rows) == {"verp": 5, "message-id": 1}
    text = cli.ok("subscriber", "show", hard[0]).stdout
    assert "bounced" in text and "5.1.1" in text and "User unknown" in text

    # Processed reports are gone from the inbox; a second run counts nothing again.
    assert len(list((returns / "new").iterdir())) == 2
    again = json.loads(cli.ok("bounces", "process", "--json").stdout)
    assert (again["messages"], again["recorded"], again["changes"]) == (2, 0, [])

    # The next issue reaches everyone but the bounced and the complained.
    cli.ok("issue", "create", "--latest", "--list", "blog", "--subject", "Second")
    before = len(server.handler.messages)
    cli.ok("issue", "send", "2", "--workers", "1")
    second = Counter(r for m in server.handler.messages[before:] for r in m.rcpt_tos)
    assert sorted(second) == sorted([delayed, away, replied, untouched])
    assert max(second.values()) == 1
    suppressed = set(hard) | {complained}
    assert not suppressed & set(second)


def test_complaints_pause_an_issue_that_is_still_sending(cli, smtp_server, tmp_path: Path) -> None:
    from tests.delivery.test_send_issue import _newsletter, _wait, show

    server = smtp_server()
    smtp_config(cli, server, rate_per_second=4, batch_size=8, pause_min_attempts=5)
    returns = tmp_path / "returns"
    cli.config.write_text(cli.config.read_text() + f'\n[bounces]\nreturn_path = "{RETURN_PATH}"\n')
    seed(cli, tmp_path, 60)
    proc = _newsletter(cli.config, "issue", "send", "1", "--workers", "1")
    try:
        _wait(lambda: len(server.handler.messages) >= 6, 30)
        first = server.handler.messages[0]
        msg = email.message_from_bytes(first.content, policy=email.policy.default)
        report = retarget(
            fixture("arf_yahoo_abuse.eml"), verp=first.mail_from, rcpt=first.rcpt_tos[0],
            message_id=str(msg["Message-ID"]),
        )  # fmt: skip
        write_maildir(returns, [report])
        out = cli.ok("bounces", "process", str(returns)).stdout
        assert "Paused for complaints: issue 1." in out
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Issue 1 paused" in out
    info = show(cli)
    assert info["status"] == "paused" and "pause_complaint_rate" in info["pause_reason"]
    assert len(server.handler.messages) < 60  # it stopped sending
