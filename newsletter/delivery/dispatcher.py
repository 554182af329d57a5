"""The dispatcher: claim a batch, compose each message, hand them to the transport, settle.

``Worker.run`` is one process's loop (used by `issue send`, its child processes and
`newsletter worker`). The issue is rendered once per process (``prepare_issue``); per
recipient only personalisation and MIME assembly happen. Database work happens in short
transactions between batches; nothing is sent inside a transaction. A stop request (Ctrl-C,
SIGTERM) lets the batch in flight finish, releases what was not sent and returns.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from ..bounces import verp
from ..compose import PreparedIssue, Recipient
from ..config import Settings
from ..errors import InvalidEmailError, NewsletterError
from ..issues.preview import prepare
from ..store import writer_sessions
from ..store.models import Issue, utcnow
from . import ledger
from .transports import Envelope, Result, Transport, TransportError, make_transport

log = logging.getLogger("newsletter.delivery")
IDLE_POLL_SECONDS = 0.2
MAX_SLOT_RETRIES = 3  # reservations for one chunk before a late worker sends anyway


@dataclass
class WorkerStats:
    claimed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict[str, int]) -> None:
        for status, n in counts.items():
            self.by_status[status] = self.by_status.get(status, 0) + n


def sender_address(settings: Settings) -> str:
    """The envelope sender (MAIL FROM) of mail outside any delivery (a test send): the bounce
    address without its VERP token if configured, else From. Deliveries get a per-delivery
    sender from ``bounces.verp.sender_for`` (see Worker._compose)."""
    return verp.plain_return_path(settings.bounces.return_path) or settings.sender.from_address


class Worker:
    """One process's sending loop. ``issue_id`` None: any sending issue (`newsletter worker`).

    ``exit_when_idle``: return once the issue has nothing due (`issue send`); otherwise poll
    for work until stopped (`newsletter worker`).
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        issue_id: int | None = None,
        exit_when_idle: bool = True,
        transport: Transport | None = None,
        stop: threading.Event | None = None,
        on_settled: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.sessions = writer_sessions(engine)
        self.settings = settings
        self.issue_id = issue_id
        self.exit_when_idle = exit_when_idle
        self.transport = transport
        self.stop = stop or threading.Event()
        self.on_settled = on_settled
        self.name = ledger.worker_name()
        self.stats = WorkerStats()
        self._prepared: dict[int, PreparedIssue] = {}
        self._mail_from: Callable[[int], str] | None = None  # delivery id -> MAIL FROM

    def run(self) -> WorkerStats:
        """Send until done or stopped. Raises TransportError (config problem) after settling."""
        return asyncio.run(self._run())

    async def _run(self) -> WorkerStats:
        own_transport = self.transport is None
        transport = self.transport or make_transport(
            self.settings.smtp, self.settings.sending, base_dir=self.settings.base_dir
        )
        try:
            while not self.stop.is_set():
                claims = self._claim()
                if not claims:
                    if self.exit_when_idle and self._idle():
                        break
                    await asyncio.sleep(IDLE_POLL_SECONDS)
                    continue
                await self._deliver(transport, claims)
        finally:
            with self.sessions() as session, session.begin():
                ledger.release(session, self.name)
            if own_transport:
                await transport.aclose()
        return self.stats

    # -- steps -------------------------------------------------------------------------------

    def _batch_size(self) -> int:
        """Under a rate limit, about two seconds of sending, so claims stay spread out."""
        size = self.settings.sending.batch_size
        rate = self._rate()
        return max(1, min(size, int(rate * 2))) if rate else size

    def _rate(self) -> float:
        s = self.settings.sending
        rates = [r for r in (s.rate_per_second, s.rate_per_hour / 3600) if r > 0]
        return min(rates) if rates else 0.0

    def _claim(self) -> list[ledger.Claim]:
        size = self._batch_size()
        lease = timedelta(seconds=self.settings.sending.lease_seconds)
        rate = self._rate()
        if rate:
            lease += timedelta(seconds=size / rate)
        with self.sessions() as session, session.begin():
            claims = ledger.claim(
                session, worker=self.name, limit=size, lease=lease, issue_id=self.issue_id
            )
        self.stats.claimed += len(claims)
        return claims

    def _idle(self) -> bool:
        """True when this worker is done: the issue was paused or cancelled, or it has
        nothing due now and nothing in flight elsewhere (then it may be marked sent)."""
        if self.issue_id is None:
            return True
        with self.sessions() as session, session.begin():
            issue = session.get(Issue, self.issue_id)
            if issue is None or issue.status != ledger.ACTIVE_ISSUE:
                return True
            ledger.release_dead_local_claims(session)
            due, _waiting = ledger.remaining(session, self.issue_id)
            if due == 0:
                ledger.finish_if_done(session, issue)
                return True
            return False

    def _prepared_issue(self, issue_id: int) -> PreparedIssue:
        prepared = self._prepared.get(issue_id)
        if prepared is None:
            with self.sessions() as session:
                issue = session.get(Issue, issue_id)
                if issue is None:
                    raise NewsletterError(f"issue {issue_id} vanished while sending")
                prepared = prepare(issue, self.settings)
            self._prepared[issue_id] = prepared
        return prepared

    def _compose(
        self, claims: list[ledger.Claim]
    ) -> tuple[list[Envelope], list[tuple], dict[int, str]]:
        """Envelopes for the claims, the Message-ID of each (by delivery id), and the failed
        outcomes of recipients that cannot be addressed."""
        envelopes, failed, message_ids = [], [], {}
        now = utcnow()
        if self._mail_from is None:  # once per process: the VERP key, or the fixed sender
            with self.sessions() as session, session.begin():
                self._mail_from = verp.sender_for(self.settings, session)
        mail_from = self._mail_from
        for c in claims:
            prepared = self._prepared_issue(c.issue_id)
            r = _recipient(c)
            try:
                envelopes.append(
                    Envelope(
                        key=c.delivery_id,
                        mail_from=mail_from(c.delivery_id),
                        rcpt_to=prepared.envelope_recipient(r),
                        data=prepared.message_bytes(r, date=now),
                        smtputf8=prepared.needs_smtputf8(r),
                    )
                )
                message_ids[c.delivery_id] = prepared.message_id(r)
            except InvalidEmailError as exc:
                failed.append((c, Result(c.delivery_id, "failed", None, "", str(exc)), ""))
        return envelopes, failed, message_ids

    async def _deliver(self, transport: Transport, claims: list[ledger.Claim]) -> None:
        by_id = {c.delivery_id: c for c in claims}
        envelopes, outcomes, message_ids = self._compose(claims)
        problem: TransportError | None = None
        try:
            results = await self._send_paced(transport, envelopes, claims)
        except TransportError as exc:
            # A configuration problem (password, TLS): not the recipients' fault. What was
            # sent is recorded; the rest is given back without using up an attempt.
            problem = exc
            results = [r for r in exc.results if r.outcome != "deferred"]
        outcomes += [(by_id[r.key], r, message_ids[r.key]) for r in results]
        with self.sessions() as session, session.begin():
            settled = ledger.settle(
                session, outcomes, worker=self.name, settings=self.settings.sending
            )
            # Claims not settled (a configuration error, a pause or cancel under a rate
            # limit) go back at once, without using up an attempt.
            ledger.release(session, self.name)
        self.stats.add(settled)
        if self.on_settled:
            self.on_settled(settled)
        if problem is not None:
            raise problem

    async def _send_paced(
        self, transport: Transport, envelopes: list[Envelope], claims: list[ledger.Claim]
    ) -> list[Result]:
        """Send at once, or, under a rate limit, in small chunks, each at the slot reserved
        for it just before it goes (so a late worker cannot burst into another's slots)."""
        rate = self._rate()
        if not rate or not envelopes:
            return await transport.send(envelopes)
        issue_of = {c.delivery_id: c.issue_id for c in claims}
        results: list[Result] = []
        chunk = max(1, int(rate / 10))  # about ten sends a second
        for i in range(0, len(envelopes), chunk):
            part = envelopes[i : i + chunk]
            if not await self._wait_for_slot(issue_of[part[0].key], len(part), rate):
                break  # paused or cancelled meanwhile: stop here
            results += await transport.send(part)
        return results

    async def _wait_for_slot(self, issue_id: int, n: int, rate: float) -> bool:
        """Reserve ``n`` slots and sleep until they come. A worker that wakes after its slots
        have passed (a busy machine) reserves again rather than send in the slots of the
        workers after it. False when the issue stopped sending."""
        span = timedelta(seconds=n / rate)
        for _ in range(MAX_SLOT_RETRIES):
            with self.sessions() as session, session.begin():
                start = ledger.reserve_slots(session, issue_id, n, rate)
            if start is None:
                return False
            delay = (start - utcnow()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            if utcnow() < start + span:
                return True
        return True  # late every time: the machine is overloaded; send rather than starve


def _recipient(c: ledger.Claim) -> Recipient:
    return Recipient(subscriber_id=c.subscriber_id, email=c.email, name=c.name, token=c.token)
