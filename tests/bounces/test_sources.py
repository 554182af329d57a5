"""`newsletter bounces process` on a Maildir and an mbox: what is moved, what is left, nothing
counted twice, --dry-run changes nothing, and one clear line for a bad source."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest

from newsletter.bounces.sources import BounceSourceError, ImapUrl
from tests.helpers import store_snapshot

from .conftest import SentIssue, fixture, retarget, write_maildir


def mailbag(sent: SentIssue) -> list[bytes]:
    """A hard bounce, a delay, an out-of-office and a human reply about issue 1."""
    one, two = sent.emails[0], sent.emails[1]

    def to(name: str, who: str) -> bytes:
        m = sent.messages[who]
        return retarget(fixture(name), verp=m.mail_from, rcpt=who, message_id=m.message_id)

    return [
        to("postfix_user_unknown.eml", one),
        to("postfix_delayed.eml", two),
        to("out_of_office.eml", two),
        to("human_reply.eml", one),
    ]


def status(sent: SentIssue, who: str) -> str:
    return json.loads(sent.cli.ok("subscriber", "show", who, "--json").stdout)["status"]


def process(sent: SentIssue, *args: str) -> dict:
    return json.loads(sent.cli.ok("bounces", "process", *args, "--json").stdout)


def test_maildir(sent_issue: SentIssue, tmp_path: Path) -> None:
    sent = sent_issue
    box = tmp_path / "Maildir"
    write_maildir(box, mailbag(sent))
    # A message a mail client has already seen sits in cur/ with flags: read too.
    seen = retarget(fixture("gmail_no_such_user.eml"), verp=sent.messages[sent.emails[2]].mail_from)
    (box / "cur" / "1763000000.M1P1.mx:2,S").write_bytes(seen)

    before = store_snapshot(sent.cli.config)
    dry = process(sent, str(box), "--dry-run")
    assert (dry["dry_run"], dry["messages"], dry["hard"], dry["soft"]) == (True, 5, 2, 1)
    assert [c["email"] for c in dry["changes"]] == [sent.emails[0], sent.emails[2]]
    assert store_snapshot(sent.cli.config) == before
    assert len(list((box / "new").iterdir())) == 4 and not (box / ".Processed").exists()

    out = sent.cli.ok("bounces", "process", str(box)).stdout
    assert "Processed 5 message(s)" in out and "2 hard, 1 soft, 0 complaint(s)" in out
    assert "2 not a bounce (left alone)" in out and "2 subscriber(s) bounced" in out
    assert f"{sent.emails[0]}: bounced (1 hard bounce(s), limit 1)" in out
    assert status(sent, sent.emails[0]) == "bounced" and status(sent, sent.emails[1]) == "active"
    left = sorted(mailbox.Maildir(box, create=False).iterkeys())
    assert len(left) == 2  # the auto-reply and the human reply, untouched in new/
    assert len(list((box / "new").iterdir())) == 2
    done = sorted(p.name for p in (box / ".Processed" / "cur").iterdir())
    assert len(done) == 3 and all(n.endswith(":2,S") for n in done)
    assert (box / ".Processed" / "maildirfolder").exists()

    again = process(sent, str(box))
    assert (again["messages"], again["not_bounces"], again["recorded"]) == (2, 2, 0)
    rows = json.loads(sent.cli.ok("bounces", "ls", "--json").stdout)
    assert len(rows) == 3 and {r["kind"] for r in rows} == {"hard", "soft"}


def test_mbox_is_only_read_and_nothing_is_counted_twice(sent_issue: SentIssue, tmp_path) -> None:
    sent = sent_issue
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for raw in mailbag(sent):
        box.add(raw)
    box.close()
    content = path.read_bytes()
    first = process(sent, str(path))
    assert (first["messages"], first["recorded"], first["not_bounces"]) == (4, 2, 2)
    second = process(sent, str(path))
    assert (second["recorded"], second["duplicates"], second["not_bounces"]) == (0, 2, 2)
    assert path.read_bytes() == content
    assert len(json.loads(sent.cli.ok("bounces", "ls", "--json").stdout)) == 2
    assert not path.with_suffix(".mbox.lock").exists()


def test_the_configured_source_is_relative_to_the_config_file(sent_issue, tmp_path) -> None:
    sent = sent_issue
    write_maildir(tmp_path / "returns", mailbag(sent)[:1])
    sent.cli.config.write_text(
        sent.cli.config.read_text().replace("[bounces]\n", '[bounces]\nsource = "returns"\n')
    )
    assert process(sent)["hard"] == 1


def test_bad_sources_are_one_clear_line(cli, tmp_path: Path, monkeypatch) -> None:
    result = cli("bounces", "process")
    assert result.exit_code == 1 and "no bounce source" in result.stderr
    result = cli("bounces", "process", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "does not exist" in result.stderr
    (tmp_path / "plain").mkdir()
    result = cli("bounces", "process", str(tmp_path / "plain"))
    assert result.exit_code == 1 and "not a Maildir" in result.stderr
    monkeypatch.delenv("NEWSLETTER_IMAP_PASSWORD", raising=False)
    result = cli("bounces", "process", "imaps://bounces@127.0.0.1:1/INBOX")
    assert result.exit_code == 1 and "NEWSLETTER_IMAP_PASSWORD" in result.stderr
    result = cli("bounces", "process", "imap://bounces:pw@127.0.0.1:1/INBOX")
    assert result.exit_code == 1 and "no password in the IMAP URL" in result.stderr
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", "secret")
    result = cli("bounces", "process", "imap://bounces@127.0.0.1:1/INBOX")
    assert result.exit_code == 1 and "Error: IMAP imap://bounces@127.0.0.1:1/INBOX" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_imap_urls() -> None:
    url = ImapUrl.parse("imaps://bounces%40example.com@imap.example.com/Bounces%20In")
    assert (url.tls, url.user, url.host, url.port, url.mailbox) == (
        True, "bounces@example.com", "imap.example.com", 993, "Bounces In",
    )  # fmt: skip
    url = ImapUrl.parse("imap://bounces@example.com@127.0.0.1:1143")
    assert (url.user, url.port, url.mailbox) == ("bounces@example.com", 1143, "INBOX")
    assert str(url) == "imap://bounces@example.com@127.0.0.1:1143/INBOX"
    for bad in ("imaps://imap.example.com/INBOX", "imaps://u@/INBOX", "imap://u@h:x/"):
        with pytest.raises(BounceSourceError):
            ImapUrl.parse(bad)


def test_every_bounces_command_has_help(cli) -> None:
    for command in ("process", "ls"):
        out = cli.ok("bounces", command, "--help").stdout
        assert "Usage" in out and len(out.splitlines()) > 3
