"""The SMTP transport against a real aiosmtpd server: reuse, content, replies, faults."""

from __future__ import annotations

import asyncio
import socket

import pytest

from newsletter.config import SmtpSettings
from newsletter.delivery.transports import Result, SmtpTransport, TransportError

from .conftest import DROP, HANG, SENDER, by_key, envelope


def send_all(transport: SmtpTransport, *batches: list) -> list[list[Result]]:
    """Send each batch in turn on one event loop, then close the transport."""

    async def run() -> list[list[Result]]:
        try:
            return [await transport.send(batch) for batch in batches]
        finally:
            await transport.aclose()

    return asyncio.run(run())


def test_many_messages_over_few_reused_connections(smtp_server):
    server = smtp_server()
    settings = server.settings(concurrency=3, max_messages_per_connection=10)
    envelopes = [envelope(k) for k in range(1, 51)]

    (results,) = send_all(SmtpTransport(settings, ehlo_name="client.example.org"), envelopes)

    assert sorted(r.key for r in results) == list(range(1, 51))
    assert {r.outcome for r in results} == {"sent"}
    assert results[0].code == 250 and results[0].enhanced == "2.0.0"
    assert sorted(server.handler.recipients()) == sorted(e.rcpt_to for e in envelopes)
    sessions = server.handler.used_sessions()
    # 50 messages, at most 10 per connection, 3 workers: 5 full connections plus at most
    # two part-filled ones (each worker's last).
    assert 5 <= len(sessions) <= 7
    assert server.handler.most_open <= 3
    for session in sessions:
        verbs = session.verbs()
        assert verbs.count("EHLO") == 1 and verbs[0] == "EHLO"
        assert 1 <= verbs.count("MAIL") <= 10
        assert verbs[-1] == "QUIT"
        assert ("EHLO", "client.example.org") in session.commands


def test_connections_are_kept_between_batches_and_closed_by_aclose(smtp_server):
    server = smtp_server()
    transport = SmtpTransport(server.settings(concurrency=2))

    first, second = send_all(
        transport, [envelope(k) for k in range(1, 5)], [envelope(k) for k in range(5, 9)]
    )

    assert {r.outcome for r in first + second} == {"sent"}
    sessions = server.handler.used_sessions()
    assert len(sessions) == 2
    for session in sessions:
        verbs = session.verbs()
        assert verbs.count("EHLO") == 1
        assert "RSET" in verbs  # the check made when a kept connection is taken up again
        assert verbs[-1] == "QUIT"


@pytest.mark.parametrize("pipelining", [True, False])
def test_content_arrives_byte_exact(smtp_server, pipelining):
    server = smtp_server(pipelining=pipelining)
    bodies = {
        1: b"Subject: dots\r\n\r\n.starts with a dot\r\n.\r\n..two\r\nend\r\n",
        2: b".Leading: dot on the first line\r\n\r\nbody\r\n",
        3: "Subject: caf\u00e9\r\n\r\n8-bit body: gr\u00fc\u00dfe\r\n".encode(),
        4: b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\n" + b"line\r\n" * 4000,
    }
    envelopes = [envelope(k, data=data) for k, data in bodies.items()]

    (results,) = send_all(SmtpTransport(server.settings(concurrency=2)), envelopes)

    assert {r.outcome for r in results} == {"sent"}
    got = {m.rcpt_tos[0]: m for m in server.handler.messages}
    for env in envelopes:
        assert got[env.rcpt_to].content == env.data
        assert got[env.rcpt_to].mail_from == SENDER
    assert "BODY=8BITMIME" in got["user3@example.com"].mail_options
    assert "BODY=8BITMIME" not in got["user1@example.com"].mail_options


REFUSALS = [
    # (verb, reply, outcome)
    ("RCPT", "451 4.3.0 Try again later", "deferred"),
    ("RCPT", "550 5.1.1 No such user here", "bounced"),
    ("RCPT", "550 No such user here", "bounced"),
    ("RCPT", "553 Mailbox name not allowed", "bounced"),
    ("RCPT", "554 5.7.1 Rejected for policy reasons", "failed"),
    ("RCPT", "550 5.7.1 Relaying denied", "failed"),
    ("RCPT", "552 5.2.2 Mailbox full", "failed"),
    ("MAIL", "550 5.1.8 Bad sender domain", "failed"),
    ("MAIL", "452 4.3.1 Insufficient storage", "deferred"),
    ("DATA", "554 5.6.0 Message content rejected", "failed"),
    ("DATA", "550 5.1.10 Recipient not found", "bounced"),
    ("DATA", "550 Content rejected", "failed"),
]


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(("verb", "reply", "outcome"), REFUSALS)
def test_refusal_is_classified_and_followed_by_rset(smtp_server, pipelining, verb, reply, outcome):
    server = smtp_server(pipelining=pipelining)
    victim = envelope(2)
    server.handler.inject(verb, SENDER if verb == "MAIL" else victim.rcpt_to, reply)
    transport = SmtpTransport(server.settings(concurrency=1))

    (results,) = send_all(transport, [envelope(1), victim, envelope(3)])

    got = by_key(results)
    code, _, rest = reply.partition(" ")
    refused_key = 1 if verb == "MAIL" else 2  # MAIL is refused for the first message sent
    refused = got[refused_key]
    assert refused.outcome == outcome
    assert refused.code == int(code)
    enhanced = rest.split()[0] if rest[0].isdigit() else ""
    assert refused.enhanced == enhanced
    assert refused.text == rest.removeprefix(enhanced).strip()
    assert [r.outcome for k, r in sorted(got.items()) if k != refused_key] == ["sent", "sent"]
    (session,) = server.handler.used_sessions()
    verbs = session.verbs()
    assert verbs.count("RSET") == 1
    assert verbs[verbs.index("RSET") + 1] == "MAIL"  # RSET before the next transaction
    assert len(server.handler.messages) == 2


def test_421_defers_and_the_rest_goes_over_a_new_connection(smtp_server):
    server = smtp_server()
    server.handler.inject("RCPT", "user2@example.com", "421 4.3.2 Service shutting down")
    envelopes = [envelope(k) for k in range(1, 6)]

    (results,) = send_all(SmtpTransport(server.settings(concurrency=1)), envelopes)

    got = by_key(results)
    assert got[2].outcome == "deferred"
    assert (got[2].code, got[2].enhanced, got[2].text) == (421, "4.3.2", "Service shutting down")
    assert all(got[k].outcome == "sent" for k in (1, 3, 4, 5))
    first, second = server.handler.used_sessions()
    assert "RSET" not in first.verbs() and "QUIT" not in first.verbs()
    assert second.verbs().count("MAIL") == 3
    assert sorted(server.handler.recipients()) == [f"user{k}@example.com" for k in (1, 3, 4, 5)]


def test_connection_dropped_mid_data_defers_and_the_rest_is_delivered(smtp_server):
    server = smtp_server()
    server.handler.inject("DATA", "user2@example.com", DROP)
    envelopes = [envelope(k) for k in range(1, 6)]

    (results,) = send_all(SmtpTransport(server.settings(concurrency=1)), envelopes)

    got = by_key(results)
    assert got[2].outcome == "deferred" and got[2].code is None
    assert "message data" in got[2].text and "closed the connection" in got[2].text
    assert all(got[k].outcome == "sent" for k in (1, 3, 4, 5))
    assert len(server.handler.used_sessions()) == 2
    assert "user2@example.com" not in server.handler.recipients()


def test_a_server_that_stops_answering_times_out(smtp_server):
    server = smtp_server()
    server.handler.inject("RCPT", "user2@example.com", HANG)

    (results,) = send_all(
        SmtpTransport(server.settings(concurrency=1, timeout=1.0)),
        [envelope(k) for k in range(1, 4)],
    )

    got = by_key(results)
    assert got[2].outcome == "deferred"
    assert "no answer within 1 s" in got[2].text
    assert got[1].outcome == got[3].outcome == "sent"


def test_smtputf8_recipient_without_server_support_is_failed_and_not_sent(smtp_server):
    server = smtp_server(smtputf8=False)
    utf8 = envelope(2, "j\u00f6rg@example.com", smtputf8=True)

    (results,) = send_all(SmtpTransport(server.settings()), [envelope(1), utf8, envelope(3)])

    got = by_key(results)
    assert got[2].outcome == "failed" and "SMTPUTF8" in got[2].text
    assert got[1].outcome == got[3].outcome == "sent"
    commands = [c for s in server.handler.used_sessions() for c in s.commands]
    assert not [arg for verb, arg in commands if "\u00f6" in arg]
    assert len([verb for verb, _ in commands if verb == "MAIL"]) == 2


def test_smtputf8_recipient_is_sent_with_smtputf8_when_offered(smtp_server):
    server = smtp_server(smtputf8=True)
    rcpt = "j\u00f6rg@example.com"
    data = f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: hej\r\n\r\nhej\r\n".encode()

    (results,) = send_all(
        SmtpTransport(server.settings()), [envelope(1, rcpt, data, smtputf8=True)]
    )

    assert results[0].outcome == "sent"
    (message,) = server.handler.messages
    assert message.rcpt_tos == [rcpt]
    assert "SMTPUTF8" in message.mail_options and "BODY=8BITMIME" in message.mail_options
    assert message.content == data


def _pipelined(session) -> bool:
    """True if one read on the server held MAIL FROM, RCPT TO and DATA together: a client
    waiting for each reply before the next command can never cause that."""
    return any(b"MAIL FROM:" in c and b"RCPT TO:" in c and b"DATA\r\n" in c for c in session.chunks)


@pytest.mark.parametrize(
    ("offered", "allowed", "expected"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_pipelining_is_used_when_offered(smtp_server, offered, allowed, expected):
    server = smtp_server(pipelining=offered)

    send_all(
        SmtpTransport(server.settings(concurrency=1), pipelining=allowed),
        [envelope(k) for k in range(1, 21)],
    )

    (session,) = server.handler.used_sessions()
    assert len(server.handler.messages) == 20
    assert _pipelined(session) is expected


def test_no_server_is_a_transport_error_and_nothing_is_tried():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, concurrency=4))

    with pytest.raises(TransportError) as caught:
        send_all(transport, [envelope(k) for k in range(1, 11)])

    message = str(caught.value)
    assert message.startswith(f"cannot reach the SMTP relay 127.0.0.1:{port}: connection refused")
    assert "check smtp.host and smtp.port" in message and "\n" not in message
    results = caught.value.results
    assert sorted(r.key for r in results) == list(range(1, 11))
    assert {r.outcome for r in results} == {"deferred"}
    assert all(r.code is None and "while connecting" in r.text for r in results)


def test_a_permanent_refusal_of_the_session_stops_the_batch(smtp_server):
    server = smtp_server()
    server.handler.inject("EHLO", "", *["554 5.7.1 No SMTP service for you"] * 8)

    with pytest.raises(TransportError) as caught:
        send_all(SmtpTransport(server.settings()), [envelope(1), envelope(2)])

    assert "EHLO refused: 554 5.7.1 No SMTP service for you" in str(caught.value)
    assert sorted(r.key for r in caught.value.results) == [1, 2]
    assert {r.outcome for r in caught.value.results} == {"deferred"}
    assert not server.handler.messages


def test_a_connection_refused_for_now_leaves_the_work_to_the_others(smtp_server):
    server = smtp_server()
    server.handler.inject("EHLO", "", "421 4.7.0 Too many connections, try later")

    (results,) = send_all(
        SmtpTransport(server.settings(concurrency=3)), [envelope(k) for k in range(1, 31)]
    )

    assert len(results) == 30 and {r.outcome for r in results} == {"sent"}
    assert len(server.handler.messages) == 30
    assert len(server.handler.used_sessions()) == 3  # the refused one and two that worked


def test_overlapping_batches_share_the_connection_limit(smtp_server):
    server = smtp_server()
    transport = SmtpTransport(server.settings(concurrency=2))

    async def run() -> list[Result]:
        try:
            batches = await asyncio.gather(
                transport.send([envelope(k) for k in range(1, 21)]),
                transport.send([envelope(k) for k in range(21, 41)]),
            )
        finally:
            await transport.aclose()
        return [r for batch in batches for r in batch]

    results = asyncio.run(run())

    assert sorted(r.key for r in results) == list(range(1, 41))
    assert {r.outcome for r in results} == {"sent"}
    assert server.handler.most_open <= 2


def test_an_empty_batch_opens_nothing(smtp_server):
    server = smtp_server()

    assert send_all(SmtpTransport(server.settings()), []) == [[]]
    assert server.handler.used_sessions() == []
