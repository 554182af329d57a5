"""Several relays behind one transport: ``[[smtp]]`` as a list (docs/operators.md, "Several
relays").

Each relay is an SmtpTransport with its own connections. The pool takes envelopes from the
caller's source one at a time, as a relay's connection is ready, and routes each one:

- **Who may carry it.** A relay with ``from_domains`` carries only messages whose From domain
  is one of them (or under one); a relay without carries any.
- **Weights.** Among those, a smooth weighted round-robin (nginx's) over the relays that have
  room: a relay has room while fewer of its messages wait than it has connections. While
  every relay keeps up, each gets its weight's share; one that falls behind (slower, or held
  to its ``rate_per_second``) passes the rest to the others, so a slow relay never slows the
  issue. Weight 0 is a standby: used only when no weighted relay can carry the message.
- **Failover.** A relay whose connections cannot be opened (refused, unknown host, no answer,
  a failed TLS handshake) or that breaks off ``STRIKES`` transactions in a row (a dropped
  connection, a 421 that is not a receiving domain's throttle) is taken out for
  ``sending.relay_down_seconds`` (doubling while it keeps failing, up to 16 times), and its
  work goes to the others: the messages it had taken but not tried, and the ones it broke
  off, each tried at once on another relay. (A message whose connection dropped after its
  data was sent may have been taken by the relay: it can arrive twice, with the same
  Message-ID, exactly as when one relay's deferral is retried later.)

When no relay is left for a message it is deferred, as with one relay. When no relay could be
reached at all during a send, ``send`` raises TransportError (``unreachable``) naming each:
nothing was tried, so no attempt is used. A relay that refuses our settings (AUTH refused,
STARTTLS missing, an untrusted certificate) stops the send with TransportError naming it: a
configuration error is for the operator to fix, not for the other relays to hide.

Every Result carries the name of the relay that answered (``Result.relay``), which the ledger
records for `issue show`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...config import SmtpSettings
from .base import (
    Envelope,
    EnvelopeSource,
    Report,
    Result,
    Transport,
    TransportError,
    as_source,
    is_throttle,
    remaining,
)

log = logging.getLogger("newsletter.delivery")
STRIKES = 3  # transactions broken off in a row that take a relay out
MAX_DOWN_DOUBLINGS = 4  # the time out grows to at most 2**4 = 16 times relay_down_seconds
WAIT_SECONDS = 1.0  # the longest a relay's connection waits before looking again


@dataclass(eq=False)
class Relay:
    """One relay of the pool and what the pool knows of it (kept from one send to the next)."""

    settings: SmtpSettings  # (already shared out to this process: transports.shared_out)
    transport: Transport
    down_until: float = 0.0  # time.monotonic() until which it is left out
    outages: int = 0  # times taken out in a row
    strikes: int = 0  # transactions broken off in a row
    credit: float = 0.0  # the weighted round-robin's running score
    next_slot: float = 0.0  # time.monotonic() of its next message under ``rate``
    # From the settings, read once (they are looked at for every message):
    connections: int = field(init=False)
    rate: float = field(init=False)  # messages per second for this process; 0: no limit
    name: str = field(init=False)
    weight: float = field(init=False)
    share: float = field(init=False)
    picky: bool = field(init=False)  # it carries only some From domains

    def __post_init__(self) -> None:
        self.connections = self.settings.concurrency
        self.rate = self.settings.rate_per_second
        self.name = self.settings.label
        self.weight = self.settings.weight
        self.share = self.weight or 1.0  # (a standby's turn among standbys)
        self.picky = bool(self.settings.from_domains)

    def carries(self, domain: str) -> bool:
        """True if this relay may send mail From ``domain``."""
        return self.settings.carries(domain)


class RelayPool:
    """A Transport over several relays (see the module docstring)."""

    def __init__(self, relays: Iterable[Relay], *, down_seconds: float) -> None:
        self.relays = list(relays)
        self.down_seconds = down_seconds

    async def send(
        self, envelopes: Iterable[Envelope] | EnvelopeSource, report: Report | None = None
    ) -> list[Result]:
        """Send each envelope through one relay; one Result per envelope. Raises
        TransportError when no relay could be reached, or one refused our settings."""
        return await _Send(self, as_source(envelopes), report).run()

    async def aclose(self) -> None:
        await asyncio.gather(*(relay.transport.aclose() for relay in self.relays))

    def take_out(self, relay: Relay) -> float:
        """Leave ``relay`` out of the next sends for a while (growing while it keeps failing);
        returns for how many seconds."""
        relay.outages += 1
        seconds = self.down_seconds * 2 ** min(relay.outages - 1, MAX_DOWN_DOUBLINGS)
        relay.down_until = time.monotonic() + seconds
        relay.strikes = 0
        return seconds


def _from_domain(envelope: Envelope) -> str:
    return (envelope.from_domain or envelope.mail_from.rpartition("@")[2]).lower()


class _Send:
    """The state of one ``RelayPool.send``."""

    def __init__(self, pool: RelayPool, source: EnvelopeSource, report: Report | None) -> None:
        self.pool = pool
        self.source = source
        self.report = report
        now = time.monotonic()
        # Relays taken out lately sit this send out, unless every relay is out: then all
        # are tried again (with one relay left, waiting would only delay the error).
        relays = [r for r in pool.relays if r.down_until <= now] or list(pool.relays)
        self.active: list[Relay] = relays
        self.queues: dict[Relay, deque[Envelope]] = {r: deque() for r in relays}
        self.pending: deque[Envelope] = deque()  # to be routed (again), before the source's
        self.owner: dict[int, tuple[Envelope, Relay]] = {}  # handed to a relay, not answered
        self.tried: dict[int, set[Relay]] = {}
        self.results: list[Result] = []
        self.stranded: list[Envelope] = []  # no relay left that may carry them
        self.faults: dict[Relay, str] = {}  # relay -> why it could not be reached
        self.fatal: TransportError | None = None
        self.exhausted = False  # the source has given its last envelope
        self.pulling = False  # a relay is waiting for the source's next envelope
        self.answered = False  # some relay answered a transaction during this send
        self.unlogged: list[str] = []  # relays taken out before any relay answered
        self._changed = asyncio.Event()

    async def run(self) -> list[Result]:
        async with asyncio.TaskGroup() as group:
            for relay in self.active:
                group.create_task(self._drive(relay))
        left = [*self.pending, *self.stranded, *(e for q in self.queues.values() for e in q)]
        left += remaining(self.source)
        if self.fatal is not None:
            deferred = self._deferred(left, str(self.fatal))
            raise TransportError(str(self.fatal), self.results + deferred)
        if left and not self.answered and self.faults:
            # (the error names every relay: the warnings held back would say it again)
            reasons = "; ".join(f"{r.name} ({why})" for r, why in self.faults.items())
            raise TransportError(
                f"cannot reach any SMTP relay: {reasons}; check host and port of each [[smtp]] "
                "in the config and that the relays are running, then send again (nothing was "
                "sent, no attempt was used)",
                self._deferred(left, "no SMTP relay could be reached"),
                unreachable=True,
                reason=reasons,
            )
        for line in self.unlogged:
            log.warning("%s", line)
        why = "; ".join(f"{r.name}: {reason}" for r, reason in self.faults.items())
        return self.results + self._deferred(left, why or "no relay may send this message")

    @staticmethod
    def _deferred(envelopes: list[Envelope], text: str) -> list[Result]:
        return [Result(e.key, "deferred", None, "", text[:500]) for e in envelopes]

    # -- one relay -------------------------------------------------------------------------

    async def _drive(self, relay: Relay) -> None:
        """Run ``relay``'s transport over its share; route back what it could not try."""

        async def reported(result: Result) -> None:
            await self._answer(relay, result)

        try:
            results = await relay.transport.send(_Share(self, relay), reported)
        except TransportError as exc:
            results = exc.results
            if exc.unreachable:
                self.faults[relay] = exc.reason
            elif self.fatal is None:
                self.fatal = TransportError(f"SMTP relay {relay.name}: {exc}", reason=exc.reason)
        untried = [r for r in results if self.owner.get(r.key, (None, None))[1] is relay]
        if untried and self.fatal is None:
            # Its connections could not be set up: everything it still had goes elsewhere.
            reason = untried[0].text
            self.faults.setdefault(relay, reason)
            self._take_out(relay, reason)
        for r in untried:
            envelope, _ = self.owner.pop(r.key)
            if not self._route_again(envelope, relay):
                self.stranded.append(envelope)
        self._take_out(relay, "")  # its share is done: it takes no more work in this send
        self._wake()

    async def take(self, relay: Relay) -> Envelope | None:
        """The next envelope for ``relay``'s connections, or None when its share is done."""
        if relay.rate:
            now = time.monotonic()
            at = max(now, relay.next_slot)
            relay.next_slot = at + 1 / relay.rate
            if at > now:
                await asyncio.sleep(at - now)
        while self.fatal is None and relay in self.queues:
            queue = self.queues[relay]
            if queue:
                envelope = queue.popleft()
                self._hand(envelope, relay)
                self._wake()  # its queue has room again
                return envelope
            if self.pending or not (self.exhausted or self.pulling):
                envelope = await self._next()
                if envelope is None:
                    continue
                target, wait = self._route(envelope, asker=relay)
                if target is relay:
                    self._hand(envelope, relay)
                    return envelope
                if target is not None:
                    self.queues[target].append(envelope)
                    self._wake()
                    continue
                if not wait:
                    self.stranded.append(envelope)
                    continue
                self.pending.appendleft(envelope)  # every relay that may carry it is busy
            elif self.exhausted:
                if (envelope := self._steal(relay)) is not None:
                    self._hand(envelope, relay)
                    return envelope
                if not (self.pending or self._owned_elsewhere(relay) or any(self.queues.values())):
                    return None  # nothing left, and nothing another relay may give back
            await self._wait()
        return None

    def _owned_elsewhere(self, relay: Relay) -> bool:
        """True while another relay holds envelopes it may yet give back. (What ``relay``
        itself holds never comes back to it: an envelope is not routed twice to one relay,
        and one its transport took but could not try, it returns only when all of
        ``relay``'s connections have stopped asking, so waiting for those would never end.)"""
        return any(owner is not relay for _, owner in self.owner.values())

    def _steal(self, relay: Relay) -> Envelope | None:
        """At the end of the source, an envelope waiting for a busier relay that ``relay``
        may carry (a standby takes none: it is there for when the others cannot)."""
        if relay.weight <= 0:
            return None
        for other, queue in self.queues.items():
            for i, envelope in enumerate(queue):
                tried = self.tried.get(envelope.key, ())
                if (
                    other is not relay
                    and relay not in tried
                    and relay.carries(_from_domain(envelope))
                ):
                    del queue[i]
                    return envelope
        return None

    async def _next(self) -> Envelope | None:
        """An envelope to route: one given back first, else the source's next."""
        if self.pending:
            return self.pending.popleft()
        self.pulling = True
        try:
            envelope = await self.source.take()
        finally:
            self.pulling = False
            self._wake()
        if envelope is None:
            self.exhausted = True
        return envelope

    def _route(self, envelope: Envelope, *, asker: Relay) -> tuple[Relay | None, bool]:
        """(the relay for ``envelope``, or None; whether to wait for room rather than give
        up on it). The weighted relays that may carry it first, the standbys only when none
        may; among them, those with room (``asker``, whose connection is free, has)."""
        tried = self.tried.get(envelope.key) if self.tried else None
        domain = ""
        able = False
        best: Relay | None = None
        total = 0.0
        for standby in (False, True):
            for r in self.active:
                if (r.weight <= 0) != standby or (tried and r in tried):
                    continue
                if r.picky:
                    domain = domain or _from_domain(envelope)
                    if not r.carries(domain):
                        continue
                able = True
                if r is not asker and len(self.queues[r]) >= r.connections:
                    continue
                r.credit += r.share
                total += r.share
                if best is None or r.credit > best.credit:
                    best = r
            if able:
                break
        if best is None:
            return None, able
        best.credit -= total
        return best, False

    def _hand(self, envelope: Envelope, relay: Relay) -> None:
        self.owner[envelope.key] = (envelope, relay)

    async def _answer(self, relay: Relay, result: Result) -> None:
        """A relay's answer: final, or (a transaction it broke off) routed to another relay."""
        envelope, _ = self.owner.pop(result.key)
        self._wake()  # (the end of a send waits for the last answers)
        if result.code is not None:
            self.answered = True
        broken = result.outcome == "deferred" and (
            result.code is None
            or (result.code == 421 and not is_throttle(result))  # a domain's: the guard's
        )
        if broken:
            relay.strikes += 1
            if relay.strikes >= STRIKES:
                self._take_out(relay, result.text)
            if self._route_again(envelope, relay):
                return
        else:
            relay.strikes = 0
            if result.outcome == "sent":
                relay.outages = 0
        if self.tried:
            self.tried.pop(result.key, None)
        r = result
        final = Result(r.key, r.outcome, r.code, r.enhanced, r.text, relay.name)
        self.results.append(final)
        if self.report is not None:
            await self.report(final)

    def _route_again(self, envelope: Envelope, relay: Relay) -> bool:
        """Queue ``envelope``, which ``relay`` could not send, for another relay; False when
        no other relay may carry it."""
        tried = self.tried.setdefault(envelope.key, set())
        tried.add(relay)
        domain = _from_domain(envelope)
        if not any(r not in tried and r.carries(domain) for r in self.active):
            return False
        self.pending.appendleft(envelope)
        self._wake()
        return True

    def _take_out(self, relay: Relay, reason: str) -> None:
        """Stop giving ``relay`` work in this send; with a ``reason``, for a while after."""
        if relay not in self.queues:
            return
        self.active.remove(relay)
        self.pending.extendleft(reversed(self.queues.pop(relay)))
        if reason:
            seconds = self.pool.take_out(relay)
            line = f"relay.down name={relay.name} seconds={seconds:.0f} reason={reason}"
            if self.answered:  # the others carry on: say so now
                log.warning("%s", line)
            else:  # perhaps none can be reached: then the send's error says it once
                self.unlogged.append(line)
        self._wake()

    # -- waiting -----------------------------------------------------------------------------

    def _wake(self) -> None:
        self._changed.set()

    async def _wait(self) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), WAIT_SECONDS)


@dataclass(slots=True)
class _Share:
    """The EnvelopeSource one relay's transport takes from."""

    send: _Send
    relay: Relay

    async def take(self) -> Envelope | None:
        return await self.send.take(self.relay)
