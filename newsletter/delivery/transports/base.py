"""The transport interface: what the dispatcher hands over and what it gets back.

A transport takes a batch of ``Envelope`` (one message for one recipient each) and returns one
``Result`` per envelope. Per-message problems (a refused recipient, a dropped connection, a
timeout) are results, never exceptions. ``TransportError`` is raised only when the transport
cannot be used at all because of its configuration (wrong password, STARTTLS missing, an
untrusted certificate, an unwritable maildir): retrying later would fail the same way, so the
dispatcher should record the results it carries and stop with the message.

``classify`` turns an SMTP reply into an outcome; the SMTP transport uses it and the
dispatcher may too (for example on DSNs that carry a status code).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from ...errors import TransportError as TransportError  # re-exported: the interface

Outcome = Literal["sent", "deferred", "failed", "bounced"]
Stage = Literal["connect", "mail", "rcpt", "data"]

TEXT_LIMIT = 500
"""Result.text is one line of at most this many characters."""

BAD_MAILBOX = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10"})
"""Enhanced status codes (RFC 3463) that say the recipient's mailbox or domain does not exist:
bad mailbox, bad system, bad address syntax, mailbox moved, null MX. 5.1.7 and 5.1.8 are
about the sender and are not here."""

BARE_BOUNCE_CODES = frozenset({550, 551, 553})
"""Reply codes that mean "no such mailbox" when a server sends no enhanced code at RCPT."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message to one recipient.

    ``mail_from`` is ASCII; ``rcpt_to`` has an IDN domain already as an A-label and may have a
    non-ASCII local part, in which case ``smtputf8`` is True. ``data`` is the whole RFC 5322
    message with CRLF line endings, not dot-stuffed. ``from_domain`` is the domain of its
    From address (relays may be chosen by it); "" is the domain of ``mail_from``.
    """

    key: int
    mail_from: str
    rcpt_to: str
    data: bytes
    smtputf8: bool = False
    from_domain: str = ""


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one envelope.

    ``key`` is the envelope's key. ``code`` is the SMTP reply code the outcome rests on, None
    when no server reply is behind it (a connection fault, a refusal made on our side, the
    maildir transport). ``enhanced`` is the RFC 3463 code ("5.1.1") or "". ``text`` is the
    server's reply text without the codes, or what went wrong, on one line of at most
    ``TEXT_LIMIT`` characters. ``relay`` names the relay that answered when there are
    several (delivery/transports/pool.py), else "".
    """

    key: int
    outcome: Outcome
    code: int | None
    enhanced: str
    text: str
    relay: str = ""


@runtime_checkable
class EnvelopeSource(Protocol):
    """Envelopes handed out one at a time, as a transport is ready for the next one.

    The dispatcher's source composes each message when it is asked for it, paces them under a
    rate limit and stops handing them out when a stop is requested: a transport that takes
    from a source has on the wire only what it asked for.
    """

    async def take(self) -> Envelope | None:
        """The next envelope, or None when there are no more (for this call of ``send``)."""
        ...


Report = Callable[[Result], Awaitable[None]]
"""Called with each Result as soon as it is known (the server answered); may wait (the
dispatcher's ledger applies back-pressure through it)."""


class _Envelopes:
    """An EnvelopeSource over a sequence."""

    __slots__ = ("_queue",)

    def __init__(self, envelopes: Iterable[Envelope]) -> None:
        self._queue = deque(envelopes)

    async def take(self) -> Envelope | None:
        return self._queue.popleft() if self._queue else None


def as_source(envelopes: Iterable[Envelope] | EnvelopeSource) -> EnvelopeSource:
    """``envelopes`` as an EnvelopeSource (a sequence is taken in order)."""
    if isinstance(envelopes, EnvelopeSource):
        return envelopes
    return _Envelopes(envelopes)


def remaining(source: EnvelopeSource) -> list[Envelope]:
    """What a transport that stops early owes a Result for: the envelopes of a sequence it
    did not take. Envelopes a source did not hand out are its own caller's business (the
    dispatcher gives their claims back), so a source is never drained."""
    if isinstance(source, _Envelopes):
        rest, source._queue = list(source._queue), deque()
        return rest
    return []


class Transport(Protocol):
    """Sends envelopes; the dispatcher depends on this and nothing else."""

    async def send(
        self, envelopes: Iterable[Envelope] | EnvelopeSource, report: Report | None = None
    ) -> list[Result]:
        """Send each envelope (of a sequence, or taken from a source until it gives None);
        return one Result per envelope, in any order.

        ``report``, when given, is awaited with each Result as soon as the server has
        answered, before the transport takes more work on that connection. Envelopes that
        were never tried (no connection could be opened) are not reported; they are in the
        returned list (or the TransportError's ``results``) only.

        Never raises for a per-message problem. Raises TransportError when the transport
        cannot be used at all (see the module docstring); its ``results`` hold one Result per
        envelope.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and files. The transport may be used again afterwards."""
        ...


def one_line(text: str) -> str:
    """``text`` with control characters and runs of spaces collapsed, cut to TEXT_LIMIT."""
    line = " ".join(text.split())
    return line if len(line) <= TEXT_LIMIT else line[: TEXT_LIMIT - 1] + "…"


def has_line_break(*addresses: str) -> bool:
    """True if an address would inject a second SMTP command or header line."""
    return any("\r" in a or "\n" in a for a in addresses)


def classify(code: int | None, enhanced: str, *, stage: Stage) -> Outcome:
    """The outcome of a final reply ``code`` (with ``enhanced``, or "") at ``stage``.

    - 2xx: sent.
    - No reply (a connection fault, ``code`` None), 4xx or anything unexpected: deferred.
    - 5xx: failed, except a hard bounce (the address does not exist), which is "bounced":
      an enhanced code in BAD_MAILBOX at RCPT or after DATA (one recipient per transaction,
      so a data-stage 5.1.x is about that recipient, as some large providers send it), or a
      bare 550/551/553 without an enhanced code at RCPT only (at DATA a bare 550 is more often
      a content rejection). Policy codes (5.7.x) and a full mailbox (5.2.2) are "failed": they
      do not mean the address is invalid. Nothing at MAIL or connect is a bounce: there the
      code is about us.
    """
    if code is None or not 200 <= code < 600:
        return "deferred"
    if code < 300:
        return "sent"
    if code < 500:
        return "deferred"
    if enhanced:
        return "bounced" if enhanced in BAD_MAILBOX and stage in ("rcpt", "data") else "failed"
    return "bounced" if code in BARE_BOUNCE_CODES and stage == "rcpt" else "failed"


_MICROSOFT_THROTTLE = re.compile(r"^4\.7\.(\d{3})$")
_THROTTLE_WORDS = re.compile(
    r"\b(TSS0\d|TS0\d|rate limit|rate-limit|rate limited|throttl|unusual rate)", re.IGNORECASE
)


def is_throttle(result: Result) -> bool:
    """True when a deferral says "you send too much": Gmail 4.7.28, Microsoft 4.7.500 to
    4.7.650, Yahoo's [TS0x]/[TSS0x], or a 4xx that says "rate limit" or "throttled". A
    plain "421 too many connections" is about our connection, not the domain: not here."""
    if result.outcome != "deferred" or result.code is None or not 400 <= result.code < 500:
        return False
    enhanced = result.enhanced
    if enhanced == "4.7.28":
        return True
    m = _MICROSOFT_THROTTLE.match(enhanced)
    if m and 500 <= int(m.group(1)) <= 650:
        return True
    return bool(_THROTTLE_WORDS.search(result.text))
