"""A real aiosmtpd server on 127.0.0.1 (random port) that records what it saw and can be told
to misbehave.

``smtp_server(**options)`` starts one (in a thread, so a test drives the transport with
``asyncio.run``) and stops it after the test. Options: ``pipelining`` (advertise PIPELINING,
which aiosmtpd does not by default), ``smtputf8``, ``tls`` ("starttls" or "implicit", with a
certificate from a test CA), ``auth`` (require AUTH with user/secret).

The handler records every session (the commands in order, the raw chunks the server read) and
every message accepted. ``handler.inject(verb, address, *replies)`` queues replies for the
next commands of ``verb`` naming ``address`` (MAIL: the sender; RCPT and DATA: the recipient;
EHLO: ""). A reply of DROP closes the connection without answering, HANG never answers, and a
421 reply closes the connection after answering, as servers do. ``handler.rule(verb, fn)``
answers every ``verb`` whose address ``fn`` gives a reply for (a whole domain throttled, one
address in ten bounced). ``data_delay`` (seconds) makes each message take that long before its
250 (a slow relay), and ``port`` asks for a given port; ``smtp_server.stop_port(port)`` stops
one server half way through a test. Other keyword arguments of
``smtp_server`` go to aiosmtpd's SMTP class.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from newsletter.config import SmtpSettings
from newsletter.delivery.transports import Envelope

from .certs import TlsFiles, make_tls_files

DROP = "DROP"  # close the connection instead of answering
HANG = "HANG"  # never answer
USERNAME, PASSWORD = "user", "secret"
SENDER = "bounces@news.example.com"


@dataclass
class Received:
    """A message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    content: bytes  # as the server got it, dot-stuffing undone
    session: int
    at: float = field(default_factory=time.monotonic)  # when the server accepted it
    wall: float = field(default_factory=time.time)  # the same, as a Unix time


@dataclass
class ServerSession:
    """One client connection as the server saw it."""

    number: int
    commands: list[tuple[str, str]] = field(default_factory=list)  # (VERB, argument)
    chunks: list[bytes] = field(default_factory=list)  # what each read from the socket held
    closed: bool = False

    def verbs(self) -> list[str]:
        return [verb for verb, _ in self.commands]


class RecordingHandler:
    """The aiosmtpd handler: accepts everything unless a reply was injected."""

    def __init__(self, *, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.sessions: list[ServerSession] = []
        self.messages: list[Received] = []
        self._injected: dict[tuple[str, str], list[str]] = {}
        self._rules: list[tuple[str, Callable[[str], str | None]]] = []
        self.data_delay = 0.0
        self._lock = threading.Lock()
        self.open_sessions = 0  # sessions that sent a command and are still connected
        self.most_open = 0  # the highest open_sessions seen

    # -- for tests ------------------------------------------------------------------------

    def inject(self, verb: str, address: str, *replies: str) -> None:
        """The next len(replies) ``verb`` commands for ``address`` get these replies."""
        with self._lock:
            self._injected.setdefault((verb, address), []).extend(replies)

    def rule(self, verb: str, reply_for: Callable[[str], str | None]) -> None:
        """Every ``verb`` command whose address ``reply_for`` maps to a reply gets it."""
        with self._lock:
            self._rules.append((verb, reply_for))

    def commands(self, verb: str) -> list[str]:
        """The arguments of every ``verb`` command the server saw, in order."""
        with self._lock:
            return [a for s in self.sessions for v, a in s.commands if v == verb]

    def used_sessions(self) -> list[ServerSession]:
        """Sessions that sent at least one command (aiosmtpd's start-up probe sends none)."""
        return [s for s in self.sessions if s.commands]

    def recipients(self) -> list[str]:
        return [r for m in self.messages for r in m.rcpt_tos]

    def new_session(self) -> ServerSession:
        with self._lock:
            session = ServerSession(len(self.sessions))
            self.sessions.append(session)
            return session

    def command(self, session: ServerSession, verb: str, arg: str) -> None:
        with self._lock:
            if not session.commands:
                self.open_sessions += 1
                self.most_open = max(self.most_open, self.open_sessions)
            session.commands.append((verb, arg))

    def closed(self, session: ServerSession) -> None:
        with self._lock:
            if session.commands and not session.closed:
                self.open_sessions -= 1
            session.closed = True

    # -- aiosmtpd hooks -------------------------------------------------------------------

    async def _reply_for(self, server: RecordingSMTP, verb: str, address: str) -> str | None:
        with self._lock:
            queued = self._injected.get((verb, address))
            reply = queued.pop(0) if queued else None
            for rule_verb, reply_for in self._rules:
                if reply is None and rule_verb == verb:
                    reply = reply_for(address)
        if reply == HANG:
            await asyncio.Event().wait()  # cancelled by aiosmtpd when the client goes away
        if reply == DROP:
            server.transport.close()
        elif reply is not None and reply.startswith("421"):
            server.loop.call_soon(server.transport.close)
        return reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        reply = await self._reply_for(server, "EHLO", "")
        if reply is not None:
            return [reply]
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        reply = await self._reply_for(server, "MAIL", address)
        if reply is None:
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply or "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = await self._reply_for(server, "RCPT", address)
        if reply is None:
            envelope.rcpt_tos.append(address)
        return reply or "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        reply = await self._reply_for(server, "DATA", envelope.rcpt_tos[0])
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if reply is None:
            received = Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                envelope.original_content,
                server.record.number,
            )
            with self._lock:
                self.messages.append(received)
        return reply or "250 2.0.0 OK queued"


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, noting each command and each chunk read in the session's record."""

    def __init__(self, handler: RecordingHandler, **kwargs: Any) -> None:
        self.recorder = handler
        self.record = handler.new_session()
        super().__init__(handler, **kwargs)

    def connection_lost(self, error: Exception | None) -> None:
        self.recorder.closed(self.record)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self.record.chunks.append(bytes(data))
        super().data_received(data)


def _recorded(verb: str) -> Callable[..., Any]:
    original = getattr(SMTP, f"smtp_{verb}")

    async def method(self: RecordingSMTP, arg: str | None) -> None:
        self.recorder.command(self.record, verb, arg or "")
        await original(self, arg)

    return method


for _verb in ("EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"):
    setattr(RecordingSMTP, f"smtp_{_verb}", _recorded(_verb))


class _Controller(Controller):
    def factory(self) -> RecordingSMTP:
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    port: int
    handler: RecordingHandler

    def settings(self, **overrides: Any) -> SmtpSettings:
        """Client settings for this server: 127.0.0.1, 5 s timeout, no TLS unless told."""
        values: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "timeout": 5.0}
        return SmtpSettings(**(values | overrides))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(tls_files: TlsFiles) -> Iterator[Callable[..., Server]]:
    controllers: list[Controller] = []

    def start(
        *,
        pipelining: bool = True,
        smtputf8: bool = True,
        tls: str = "",
        auth: bool = False,
        auth_require_tls: bool = True,
        data_delay: float = 0.0,
        port: int = 0,
        **smtp_kwargs: Any,
    ) -> Server:
        handler = RecordingHandler(pipelining=pipelining)
        handler.data_delay = data_delay
        kwargs: dict[str, Any] = {
            "enable_SMTPUTF8": smtputf8,
            "server_hostname": "mx.example.net",
            **smtp_kwargs,
        }
        if tls == "starttls":
            kwargs |= {"tls_context": tls_files.server_context(), "require_starttls": True}
        elif tls == "implicit":
            kwargs["ssl_context"] = tls_files.server_context()
        if auth:
            kwargs |= {
                "authenticator": _authenticator,
                "auth_required": True,
                "auth_require_tls": auth_require_tls,
            }
        for _attempt in range(5):  # the free port may be taken before we bind it again
            chosen = port or _free_port()
            controller = _Controller(handler, hostname="127.0.0.1", port=chosen, **kwargs)
            try:
                controller.start()
            except OSError:
                if port:
                    raise
                continue
            controllers.append(controller)
            return Server(chosen, handler)
        raise RuntimeError("no free port for the test SMTP server")

    def stop_port(port: int) -> None:
        """Stop the server on ``port`` now (a relay that goes away half way)."""
        for controller in controllers:
            if controller.port == port and controller._thread is not None:
                controller.stop()

    start.stop_port = stop_port  # type: ignore[attr-defined]
    yield start
    for controller in controllers:
        if controller._thread is not None:
            controller.stop()


def envelope(key: int, rcpt: str = "", data: bytes = b"", *, smtputf8: bool = False) -> Envelope:
    """An envelope for ``rcpt`` (default ``user<key>@example.com``) with a small message."""
    rcpt = rcpt or f"user{key}@example.com"
    data = (
        data
        or (
            f"From: News <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: Issue {key}\r\n"
            f"Message-ID: <{key}.test@news.example.com>\r\n\r\nHello number {key}.\r\n"
        ).encode()
    )
    return Envelope(key, SENDER, rcpt, data, smtputf8)


def by_key(results: list) -> dict:
    """Results keyed by envelope key (a transport returns them in any order)."""
    assert len({r.key for r in results}) == len(results), "a key came back twice"
    return {r.key: r for r in results}
