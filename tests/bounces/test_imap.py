"""`newsletter bounces process imaps://...` against a real Dovecot on 127.0.0.1: the reports
are flagged and never processed twice, other mail stays unread, TLS is verified.

Skipped only when the dovecot binary is absent (Debian: apt-get install dovecot-imapd).
"""

from __future__ import annotations

import imaplib
import json
import re
import ssl
from collections.abc import Iterator

import pytest

from tests.delivery.certs import TlsFiles

from .conftest import SentIssue, fixture, retarget
from .dovecot import PASSWORD, USER, Dovecot, dovecot_binary, start_dovecot

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None, reason="dovecot not installed (apt-get install dovecot-imapd)"
)


@pytest.fixture
def dovecot(tls_files: TlsFiles) -> Iterator[Dovecot]:
    with start_dovecot(tls_files) as server:
        yield server


def client(server: Dovecot, tls_files: TlsFiles) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=context, timeout=10)
    conn.login(USER, PASSWORD)
    conn.select("INBOX")
    return conn


def deliver(conn: imaplib.IMAP4, *messages: bytes) -> None:
    """Put messages into INBOX as the mail system would (unread)."""
    for raw in messages:
        typ, _ = conn.append(
            "INBOX", None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        )
        assert typ == "OK"


def flags(conn: imaplib.IMAP4) -> list[set[str]]:
    """The flags of every message in INBOX, in UID order."""
    conn.noop()  # take in the other session's changes first
    typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK"
    by_uid = {}
    for line in data:
        text = (line if isinstance(line, bytes) else line[0]).decode()
        uid = re.search(r"UID (\d+)", text)
        found = re.search(r"FLAGS \(([^)]*)\)", text)
        if uid and found:
            by_uid[int(uid.group(1))] = set(found.group(1).split()) - {"\\Recent"}
    return [by_uid[uid] for uid in sorted(by_uid)]


def test_imap_source(sent_issue: SentIssue, dovecot: Dovecot, tls_files, monkeypatch) -> None:
    sent = sent_issue
    one, two, three = sent.emails[:3]

    def to(name: str, who: str) -> bytes:
        m = sent.messages[who]
        return retarget(fixture(name), verp=m.mail_from, rcpt=who, message_id=m.message_id)

    conn = client(dovecot, tls_files)
    deliver(conn, to("postfix_user_unknown.eml", one), to("out_of_office.eml", two),
            to("arf_yahoo_abuse.eml", two))  # fmt: skip

    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", PASSWORD)
    # The test CA is not trusted yet: the certificate is refused, in one line.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    refused = sent.cli("bounces", "process", dovecot.url())
    assert refused.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))

    def process(url: str) -> dict:
        return json.loads(sent.cli.ok("bounces", "process", url, "--json").stdout)

    preview = json.loads(
        sent.cli.ok("bounces", "process", dovecot.url(), "--dry-run", "--json").stdout
    )
    assert (preview["messages"], preview["hard"], preview["complaints"]) == (3, 1, 1)
    assert flags(conn) == [set(), set(), set()]  # a dry run marks nothing

    first = process(dovecot.url())
    assert (first["messages"], first["hard"], first["complaints"], first["not_bounces"]) == (
        3, 1, 1, 1,
    )  # fmt: skip
    assert sorted((c["email"], c["status"]) for c in first["changes"]) == [
        (one, "bounced"), (two, "complained"),
    ]  # fmt: skip
    bounce, reply, complaint = flags(conn)
    assert bounce == complaint == {"\\Seen", "$NewsletterProcessed"}
    assert reply == {"$NewsletterIgnored"}  # left unread for a human

    again = process(dovecot.url())
    assert again["messages"] == 0

    # New mail: only it is read, over imap:// with STARTTLS this time.
    deliver(conn, to("postfix_delayed.eml", three))
    later = process(dovecot.url(tls=False))
    assert (later["messages"], later["soft"], later["changes"]) == (1, 1, [])
    assert flags(conn)[-1] == {"\\Seen", "$NewsletterProcessed"}
    conn.logout()

    rows = json.loads(sent.cli.ok("bounces", "ls", "--json").stdout)
    assert sorted(r["kind"] for r in rows) == ["complaint", "hard", "soft"]
    assert {r["source"] for r in rows} == {
        f"imaps://{USER}@127.0.0.1:{dovecot.imaps_port}/INBOX",
        f"imap://{USER}@127.0.0.1:{dovecot.imap_port}/INBOX",
    }

    missing = sent.cli("bounces", "process", dovecot.url(mailbox="Nope"))
    assert missing.exit_code == 1 and "Mailbox doesn't exist: Nope" in missing.stderr
    # Last: Dovecot slows every login from an address after a failed one.
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", "wrong")
    denied = sent.cli("bounces", "process", dovecot.url())
    assert denied.exit_code == 1 and "Authentication failed" in denied.stderr
    assert len(denied.stderr.splitlines()) == 1
