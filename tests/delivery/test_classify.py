"""Pure parts of the transports: outcome classification and the SMTP wire format."""

from __future__ import annotations

import pytest

from newsletter.delivery.transports import classify
from newsletter.delivery.transports.smtp_wire import (
    ProtocolFault,
    Reply,
    dot_stuffed,
    mail_command,
    parse_extensions,
    parse_reply_line,
)


@pytest.mark.parametrize(
    ("code", "enhanced", "stage", "outcome"),
    [
        (250, "2.0.0", "data", "sent"),
        (None, "", "connect", "deferred"),
        (421, "4.3.2", "rcpt", "deferred"),
        (451, "", "rcpt", "deferred"),
        (550, "5.1.1", "rcpt", "bounced"),
        (550, "5.1.2", "rcpt", "bounced"),
        (553, "5.1.3", "rcpt", "bounced"),
        (550, "5.1.10", "rcpt", "bounced"),
        (550, "5.1.1", "data", "bounced"),
        (550, "5.1.1", "mail", "failed"),  # at MAIL the address in question is ours
        (550, "5.1.7", "rcpt", "failed"),  # bad sender mailbox: not the recipient's fault
        (550, "", "rcpt", "bounced"),
        (551, "", "rcpt", "bounced"),
        (553, "", "rcpt", "bounced"),
        (554, "", "rcpt", "failed"),
        (550, "", "data", "failed"),
        (550, "", "mail", "failed"),
        (554, "5.7.1", "rcpt", "failed"),
        (550, "5.7.1", "rcpt", "failed"),
        (552, "5.2.2", "rcpt", "failed"),
        (552, "5.2.2", "data", "failed"),
    ],
)
def test_classify(code, enhanced, stage, outcome):
    assert classify(code, enhanced, stage=stage) == outcome


def test_reply_enhanced_code_and_text():
    reply = Reply(550, [b"5.1.1 <a@example.com>: Recipient address rejected", b"second line"])
    assert reply.enhanced == "5.1.1"
    assert reply.text() == "<a@example.com>: Recipient address rejected second line"
    assert reply.describe() == ("550 5.1.1 <a@example.com>: Recipient address rejected second line")
    assert Reply(550, [b"4.1.1 wrong class"]).enhanced == ""  # must match the reply's class
    assert Reply(250, [b"OK"]).enhanced == ""
    assert len(Reply(554, [b"x" * 2000]).text()) == 500


def test_parse_reply_line():
    assert parse_reply_line(b"250-PIPELINING\r\n") == (250, False, b"PIPELINING")
    assert parse_reply_line(b"250 OK\r\n") == (250, True, b"OK")
    assert parse_reply_line(b"250\r\n") == (250, True, b"")
    with pytest.raises(ProtocolFault):
        parse_reply_line(b"HTTP/1.1 400 Bad Request\r\n")


def test_parse_extensions():
    ehlo = Reply(250, [b"mx.example.net", b"PIPELINING", b"auth PLAIN LOGIN", b"SIZE 1000"])
    assert parse_extensions(ehlo) == {"PIPELINING": "", "AUTH": "PLAIN LOGIN", "SIZE": "1000"}


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\n.b\r\n.\r\n", b"a\r\n..b\r\n..\r\n.\r\n"),
        (b".a\r\n", b"..a\r\n.\r\n"),
        (b"no final line break", b"no final line break\r\n.\r\n"),
        (b"", b"\r\n.\r\n"),
    ],
)
def test_dot_stuffing(data, wire):
    assert dot_stuffed(data) == wire


def test_mail_command_parameters():
    assert mail_command("b@example.com", size=None, eightbit=False, smtputf8=False) == (
        b"MAIL FROM:<b@example.com>\r\n"
    )
    assert mail_command("b@example.com", size=12, eightbit=True, smtputf8=True) == (
        b"MAIL FROM:<b@example.com> SIZE=12 BODY=8BITMIME SMTPUTF8\r\n"
    )
