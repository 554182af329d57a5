"""The dispatcher: claim a batch, compose each message, hand them to the transport, settle.

``Worker.run`` is one process's loop (used by `issue send`, its child processes, `newsletter
worker` and the daemon). The issue is rendered once per process (``prepare_issue``); per
recipient only personalisation and MIME assembly happen, when the transport is ready to send
that message (``_Feed``). Nothing is sent inside a transaction, and the database work sits
beside the sending rather than between batches:

- half way through a batch the next one is claimed, so the connections do not drain and ramp
  up again at each batch boundary;
- each answer is recorded in the ledger as soon as the server has given it, in small groups
  (``_Settler``): at most ``connections`` answers are ever unrecorded, so after a crash (kill
  -9, OOM, power loss of this machine) at any moment, at most the messages on the wire plus
  those, 2 x ``connections``, can be sent again (with the same Message-ID).

A stop request (Ctrl-C, SIGTERM) hands out no more messages: the ones on the wire finish,
every answer is recorded, and what was not sent is given back.

The reputation guard acts here: a throttling reply backs off its domain for every worker
(``reputation``), and the issue pauses itself when its hard-bounce rate is too high
(``issues.guard``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from ..bounces import verp
from ..compose import PreparedIssue, Recipient
from ..config import Settings
from ..errors import InvalidEmailError, NewsletterError, StoreError
from ..issues import guard
from ..issues.render import prepare
from ..store import deliveries, lean_transaction, writer_sessions
from ..store.engine import close_frequent, frequent_commits
from ..store.models import Issue, utcnow
from . import ledger, reputation
from .transports import Envelope, Result, Transport, TransportError, transport_for

log = logging.getLogger("newsletter.delivery")
_T = TypeVar("_T")
IDLE_POLL_SECONDS = 0.2
MAX_SLOT_RETRIES = 3  # reservations for one chunk before a late worker sends anyway
PACING_STEP_SECONDS = 0.1  # slots are reserved this much at a time; a later slot goes unused
STATUS_CHECK_SECONDS = 0.1  # how often the settler looks whether an issue was paused
FLUSH_SECONDS = 0.05  # the longest an answer waits to be recorded when answers come slowly
GUARD_CHECK_SECONDS = 1.0  # exact bounce-rate check at least this often while bounces come
GUARD_FAST_SECONDS = 0.1  # ... and this often while this process sees a rate over the limit
COMMIT_RETRIES = 5  # a settling commit that fails (database restarting) is tried again


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


@dataclass(slots=True)
class _Answered:
    """A result to record: the claim, the transport's result, the message's Message-ID, and
    the domain key when the reply was a throttle."""

    claim: ledger.Claim
    result: Result
    message_id: str
    throttled: str = ""


@dataclass(slots=True)
class _Postponed:
    """A claim handed back untried because its domain is backing off until ``until``."""

    claim: ledger.Claim
    domain: str
    until: datetime


class Worker:
    """One process's sending loop. ``issue_id`` None: any sending issue (`newsletter worker`).

    ``exit_when_idle``: return once the issue has nothing due (`issue send`); otherwise poll
    for work until stopped (`newsletter worker`). ``connections`` (default every relay's
    ``concurrency``) is how many SMTP connections this process uses; it also bounds the
    results waiting to be settled.
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
        connections: int | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = writer_sessions(engine)
        self.connections = connections or settings.smtp_connections()
        self.settings = settings
        self.issue_id = issue_id
        self.exit_when_idle = exit_when_idle
        self.transport = transport
        self.stop = stop or threading.Event()
        self.on_settled = on_settled
        self.name = ledger.worker_name()
        self.stats = WorkerStats()
        self.paused_by_guard: dict[int, str] = {}  # issue id -> reason, paused by this worker
        self.bounce_guard = _BounceGuard(settings)
        self.halted: set[int] = set()  # issues no longer sending (paused, cancelled)
        self.backoff: dict[str, datetime] = {}  # domain key -> backing off until
        self.recent: set[str] = set()  # domain keys throttled in the last hour
        self._prepared: dict[int, PreparedIssue] = {}
        self._steps: dict[int, datetime] = {}  # sequence step issue -> its updated_at, rendered
        self._mail_from: Callable[[int], str] | None = None  # delivery id -> MAIL FROM

    def run(self) -> WorkerStats:
        """Send until done or stopped. Raises TransportError (config problem) after settling."""
        return asyncio.run(self._run())

    async def _run(self) -> WorkerStats:
        own_transport = self.transport is None
        transport = self.transport or transport_for(self.settings, connections=self.connections)
        settler = _Settler(self, window=self.connections)
        feed: _Feed | None = None
        try:
            claims = await asyncio.to_thread(self._claim)
            while not self.stop.is_set():
                if not claims:
                    if self.exit_when_idle and await asyncio.to_thread(self._idle):
                        break
                    await asyncio.sleep(IDLE_POLL_SECONDS)
                    claims = await asyncio.to_thread(self._claim)
                    continue
                feed = _Feed(self, claims, settler)
                await self._deliver(transport, feed, settler)
                if feed.ahead is not None:  # claimed while this batch was on the wire
                    claims = await feed.ahead
                elif not self.stop.is_set():
                    claims = await asyncio.to_thread(self._claim)
                feed = None
        finally:
            if feed is not None and feed.ahead is not None:
                await asyncio.gather(feed.ahead, return_exceptions=True)
            try:
                await settler.close()
            finally:
                await asyncio.to_thread(self._release)
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
        """Claim the next batch (in a thread) and read the domains backing off."""
        size = self._batch_size()
        lease = timedelta(seconds=self.settings.sending.lease_seconds)
        rate = self._rate()
        if rate:
            lease += timedelta(seconds=size / rate)

        def work(session: Session) -> list[ledger.Claim]:
            claims = ledger.claim(
                session, worker=self.name, limit=size, lease=lease, issue_id=self.issue_id
            )
            if claims:
                self.backoff, self.recent = reputation.active_backoffs(session)
                self._forget_edited_steps(session, {c.issue_id for c in claims})
            return claims

        claims = self._in_transaction(work)
        self.stats.claimed += len(claims)
        return claims

    def _forget_edited_steps(self, session: Session, issue_ids: set[int]) -> None:
        """A sequence step edited since this worker rendered it is rendered again (a worker
        may send a sequence for days): one look at the issues' times per claimed batch."""
        steps = issue_ids & self._steps.keys()
        if not steps:
            return
        rows = session.execute(select(Issue.id, Issue.updated_at).where(Issue.id.in_(steps)))
        for issue_id, updated_at in rows:
            if updated_at != self._steps[issue_id]:
                self._prepared.pop(issue_id, None)
                del self._steps[issue_id]

    def _in_transaction(self, work: Callable[[Session], _T]) -> _T:
        """``work`` in a writing transaction of its own, tried again on a new connection when
        the database dropped it or a lock timed out (see ``_retrying``)."""

        def attempt() -> _T:
            with self.sessions() as session, session.begin():
                return work(session)

        return _retrying(attempt, self.engine, "cannot reach the database")

    def _release(self) -> None:
        self._in_transaction(lambda session: ledger.release(session, self.name))

    def _idle(self) -> bool:
        """True when this worker is done: the issue was paused or cancelled, or it has
        nothing due now and nothing in flight elsewhere (then it may be marked sent)."""
        issue_id = self.issue_id
        if issue_id is None:
            return True

        def work(session: Session) -> bool:
            issue = session.get(Issue, issue_id)
            if issue is None or issue.status != ledger.ACTIVE_ISSUE:
                return True
            ledger.release_dead_local_claims(session)
            due, _waiting = ledger.remaining(session, issue_id)
            if due == 0:
                ledger.finish_if_done(session, issue)
                return True
            return False

        return self._in_transaction(work)

    def _prepared_issue(self, issue_id: int) -> PreparedIssue:
        prepared = self._prepared.get(issue_id)
        if prepared is None:
            # (a transaction: preparing may store the key that signs its web-view link)
            with self.sessions() as session, session.begin():
                issue = session.get(Issue, issue_id)
                if issue is None:
                    raise NewsletterError(f"issue {issue_id} vanished while sending")
                prepared = prepare(issue, self.settings, tracked=True)
                if issue.sequence_id is not None:
                    self._steps[issue_id] = issue.updated_at
            self._prepared[issue_id] = prepared
        return prepared

    def _sender(self) -> Callable[[int], str]:
        """delivery id -> MAIL FROM: the VERP key, or the fixed sender; read once."""
        if self._mail_from is None:
            with self.sessions() as session, session.begin():
                self._mail_from = verp.sender_for(self.settings, session)
        return self._mail_from

    async def _deliver(self, transport: Transport, feed: _Feed, settler: _Settler) -> None:
        """Send one batch through ``feed``; settle every answer; give back what was not sent.
        Raises TransportError (a configuration problem) once the rest is settled."""
        problem: TransportError | None = None
        try:
            results = await transport.send(feed, report=feed.report)
        except TransportError as exc:
            # A configuration problem (password, TLS, a relay that cannot be reached): not
            # the recipients' fault. What was answered is recorded; the rest is given back
            # without using up an attempt.
            problem, results = exc, []
        for r in results:  # deferred untried (no connection could be set up): not reported
            if r.key not in feed.reported:
                await feed.report(r)
        await settler.drain()
        # Claims not settled (a stop, a pause, a configuration error) go back at once,
        # without using up an attempt. (A settled one may be claimed again already, by the
        # claim made ahead: it is not ours to give back.)
        await asyncio.to_thread(self._give_back, feed.unsettled())
        if problem is not None:
            raise problem

    def _give_back(self, delivery_ids: list[int]) -> None:
        if not delivery_ids:
            return  # (no ids would mean every claim of this worker)
        self._in_transaction(lambda session: ledger.release(session, self.name, delivery_ids))

    async def _wait_for_slot(self, issue_id: int, n: int, rate: float) -> datetime | None:
        """Reserve ``n`` slots and sleep until the first comes; returns its time (slot k is at
        that + k / rate). A worker that wakes after its slots have passed (a busy machine)
        reserves again rather than send in the slots of the workers after it. None when the
        issue stopped sending."""
        span = timedelta(seconds=n / rate)
        for _ in range(MAX_SLOT_RETRIES):
            start = await asyncio.to_thread(self._reserve, issue_id, n, rate)
            if start is None:
                return None
            delay = (start - utcnow()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            if utcnow() < start + span:
                return start
        return utcnow()  # late every time: the machine is overloaded; send rather than starve

    def _reserve(self, issue_id: int, n: int, rate: float) -> datetime | None:
        return self._in_transaction(
            lambda session: ledger.reserve_slots(session, issue_id, n, rate)
        )

    def note_throttle(self, key: str) -> None:
        """A throttling reply for domain ``key``: stop handing out its messages at once, for
        the base backoff until the settler records the shared one."""
        if key not in self.backoff:
            delay = reputation.backoff_delay(self.settings.sending, 1)
            self.backoff[key] = utcnow() + delay
        self.recent.add(key)

    # -- settling (called by the settler) ----------------------------------------------------

    def commit(
        self, conn: Connection, answered: list[_Answered], postponed: list[_Postponed]
    ) -> dict[str, int]:
        """Record one group of results in one transaction on ``conn`` (the settler's own
        connection); returns counts by status."""
        settings = self.settings.sending
        untils: dict[str, datetime] = {}
        throttles = {a.throttled: a.result.text for a in answered if a.throttled}
        bounced = any(a.result.outcome == "bounced" for a in answered)
        plain = not (throttles or postponed or bounced)
        # The usual group (answers only, no bounce) takes the lean path; the rest the ORM's.
        with lean_transaction(conn, one_statement=True) if plain else conn.begin():
            if throttles or postponed:  # rare: the ORM is fine here
                with Session(bind=conn) as session:
                    if throttles:
                        untils = reputation.record_throttles(session, throttles, settings)
                    later = [
                        (p.claim, untils.get(p.domain, p.until), _backing_off(p)) for p in postponed
                    ]
                    ledger.postpone(session, later, worker=self.name)
                    session.flush()
            settled = ledger.settle(
                conn,
                [(a.claim, a.result, a.message_id) for a in answered],
                worker=self.name,
                settings=settings,
                not_before={
                    a.claim.delivery_id: untils[a.throttled] for a in answered if a.throttled
                },
            )
        self.backoff.update(untils)
        if postponed:
            settled["deferred"] = settled.get("deferred", 0) + len(postponed)
        self.stats.add(settled)
        if self.on_settled:
            self.on_settled(settled)
        return settled

    def check_issues(self, issue_ids: set[int], *, rate_checks: set[int]) -> None:
        """Note the issues that stopped sending (paused, cancelled elsewhere); for those in
        ``rate_checks``, apply the bounce-rate guard on the exact counts of every worker."""
        self._in_transaction(lambda session: self._check_issues(session, issue_ids, rate_checks))

    def _check_issues(self, session: Session, issue_ids: set[int], rate_checks: set[int]) -> None:
        rows = session.execute(
            select(Issue.id, Issue.status).where(Issue.id.in_(list(issue_ids)))
        ).all()
        for issue_id, status in rows:
            if status != ledger.ACTIVE_ISSUE:
                self.halted.add(issue_id)
                continue
            if issue_id not in rate_checks:
                continue
            counts = deliveries.counts(session, issue_id)
            self.bounce_guard.base(issue_id, counts)
            reason = guard.bounce_pause_reason(counts, self.settings.sending)
            if guard.pause_for(session, session.get_one(Issue, issue_id), reason):
                log.warning("issue.paused id=%s reason=%s", issue_id, reason)
                self.paused_by_guard[issue_id] = reason
                self.halted.add(issue_id)


class _BounceGuard:
    """Decides when the exact (database) bounce-rate check is worth running: the counts of
    the last check plus this process's own results since then are an estimate that costs
    nothing. The exact check (every worker's results) runs when the estimate passes the
    threshold; while the estimate's rate is above the limit but its attempts are not yet
    enough (other processes send too), every GUARD_FAST_SECONDS; otherwise at most every
    GUARD_CHECK_SECONDS while bounces come in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.sending
        self._base: dict[int, Counter[str]] = {}
        self._since: dict[int, Counter[str]] = {}
        self._checked: dict[int, float] = {}

    def base(self, issue_id: int, counts: dict[str, int]) -> None:
        self._base[issue_id] = Counter(counts)
        self._since[issue_id] = Counter()
        self._checked[issue_id] = time.monotonic()

    def due(self, answered: list[_Answered]) -> set[int]:
        """The issues whose exact check should run now, after these results."""
        if not self.settings.pause_bounce_rate:
            return set()
        bounced: set[int] = set()
        for a in answered:
            self._since.setdefault(a.claim.issue_id, Counter())[a.result.outcome] += 1
            if a.result.outcome == "bounced":
                bounced.add(a.claim.issue_id)
        due = set()
        for issue_id in bounced:
            estimate = self._base.get(issue_id, Counter()) + self._since[issue_id]
            if guard.bounce_pause_reason(estimate, self.settings):
                due.add(issue_id)
                continue
            fast = guard.bounce_rate_over(estimate, self.settings)
            interval = GUARD_FAST_SECONDS if fast else GUARD_CHECK_SECONDS
            if time.monotonic() - self._checked.get(issue_id, 0.0) >= interval:
                due.add(issue_id)
        return due


def _backing_off(p: _Postponed) -> str:
    until = p.until.isoformat(timespec="seconds")
    return f"not tried: {reputation.describe(p.domain)} is backing off (until {until} or later)"


class _Feed:
    """The EnvelopeSource of one batch: composes each message when the transport asks for
    it, paces them under a rate limit, keeps throttled domains back, and stops on a stop
    request or when the issue stops sending. Its ``report`` hands each answer to the
    settler."""

    def __init__(self, worker: Worker, claims: list[ledger.Claim], settler: _Settler) -> None:
        self.worker = worker
        self.settler = settler
        self.claim_ids = [c.delivery_id for c in claims]
        self._claims = iter(claims)
        self._left = len(claims)
        self._held: list[ledger.Claim] = []  # waiting for room in a capped domain
        self._in_flight: Counter[str] = Counter()
        self._room = asyncio.Condition()
        self._sent: dict[int, tuple[ledger.Claim, str, str]] = {}  # key -> claim, mid, domain
        self.reported: set[int] = set()  # handed to the settler (answered, postponed, failed)
        self._slots = 0  # sends left in the current rate-limit reservation
        self._slot_issue: int | None = None
        self._slot_at = utcnow()  # when the next reserved slot comes
        self._prefetch_at = len(claims) // 2
        self.ahead: asyncio.Future[list[ledger.Claim]] | None = None  # the next batch
        self._rate = worker._rate()
        self._now = utcnow()

    def unsettled(self) -> list[int]:
        """The claims of this batch that were not handed to the settler."""
        return [i for i in self.claim_ids if i not in self.reported]

    async def take(self) -> Envelope | None:
        w = self.worker
        while not w.stop.is_set() and self.settler.error is None:
            forced = False
            claim = self._next()
            if claim is None:
                if not self._held:
                    return None
                # Every claim left waits for room in a capped domain. If none comes in a second
                # (the transport gave up on its connections), go on anyway: the cap is a
                # courtesy to the receiver, not a rule the batch may hang on.
                async with self._room:
                    try:
                        await asyncio.wait_for(self._room.wait(), 1.0)
                    except TimeoutError:
                        if self._held:
                            claim, forced = self._held.pop(0), True
                if claim is None:
                    continue
            if claim.issue_id in w.halted:
                continue  # given back at the end of the batch
            key = reputation.domain_key(claim.email)
            until = w.backoff.get(key)
            if until is not None and until > utcnow():
                self.reported.add(claim.delivery_id)
                await self.settler.add(_Postponed(claim, key, until))
                continue
            cap = w.settings.sending.per_domain_concurrency
            if not forced and key in w.recent and self._in_flight[key] >= cap:
                self._held.append(claim)
                continue
            if self._rate and not await self._pace(claim.issue_id):
                w.halted.add(claim.issue_id)
                continue
            envelope = await self._compose(claim, key)
            if envelope is not None:
                self._maybe_claim_ahead()
                return envelope
        return None

    def _next(self) -> ledger.Claim | None:
        """The next claim: a held one whose domain has room now, else the next of the batch."""
        cap = self.worker.settings.sending.per_domain_concurrency
        for i, claim in enumerate(self._held):
            key = reputation.domain_key(claim.email)
            if self._in_flight[key] < cap or self.worker.backoff.get(key):
                return self._held.pop(i)
        claim = next(self._claims, None)
        if claim is not None:
            self._left -= 1
        return claim

    async def _pace(self, issue_id: int) -> bool:
        """Wait for this message's own rate-limit slot. Slots are reserved a chunk at a time
        (a tenth of a second's worth), and within the chunk each message waits for its slot,
        so the receiver sees an even stream, not a chunk at once."""
        step = timedelta(seconds=1 / self._rate)
        while True:
            if self._slots == 0 or self._slot_issue != issue_id:
                n = max(1, min(int(self._rate / 10), self._left + 1 + len(self._held)))
                start = await self.worker._wait_for_slot(issue_id, n, self._rate)
                if start is None:
                    return False
                self._slots, self._slot_issue, self._slot_at = n, issue_id, start
            due = self._slot_at
            self._slot_at += step
            self._slots -= 1
            delay = (due - utcnow()).total_seconds()
            if delay > -PACING_STEP_SECONDS:
                break
            # This slot passed more than a pacing step ago (the machine was busy): let it go
            # unused rather than catch up in a burst that would pass the rate in that second.
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    async def _compose(self, claim: ledger.Claim, key: str) -> Envelope | None:
        w = self.worker
        prepared = w._prepared_issue(claim.issue_id)
        r = Recipient(
            subscriber_id=claim.subscriber_id, email=claim.email, name=claim.name,
            token=claim.token, tracked=claim.tracked,
        )  # fmt: skip
        try:
            envelope = Envelope(
                key=claim.delivery_id,
                mail_from=w._sender()(claim.delivery_id),
                rcpt_to=prepared.envelope_recipient(r),
                data=prepared.message_bytes(r, date=self._now),
                smtputf8=prepared.needs_smtputf8(r),
                from_domain=prepared.from_domain,
            )
        except InvalidEmailError as exc:
            failed = Result(claim.delivery_id, "failed", None, "", str(exc))
            self.reported.add(claim.delivery_id)
            await self.settler.add(_Answered(claim, failed, ""))
            return None
        self._sent[claim.delivery_id] = (claim, prepared.message_id(r), key)
        self._in_flight[key] += 1
        return envelope

    def _maybe_claim_ahead(self) -> None:
        """Half way through the batch, claim the next one, while this one is on the wire (its
        connections do not drain and ramp up again between batches), unless the worker is
        stopping. It runs in the event loop's thread, like the settler's commits: in a thread
        of its own it held SQLite's write lock while the settler waited for it, and the two
        threads' waits for the GIL cost more than the claim."""
        if self.ahead is None and self._left <= self._prefetch_at and not self.worker.stop.is_set():
            self.ahead = asyncio.get_running_loop().create_future()
            try:
                self.ahead.set_result(self.worker._claim())
            except Exception as exc:  # raised where the batch's claims are awaited
                self.ahead.set_exception(exc)

    async def report(self, result: Result) -> None:
        """One answer: free its domain's slot, note a throttle, hand it to the settler."""
        claim, message_id, key = self._sent.pop(result.key)
        self.reported.add(result.key)
        self._in_flight[key] -= 1
        throttled = ""
        if reputation.is_throttle(result):
            throttled = key
            self.worker.note_throttle(key)
        if self._held:
            async with self._room:
                self._room.notify_all()
        await self.settler.add(_Answered(claim, result, message_id, throttled))


class _Settler:
    """Records answers in the ledger as they come, in small groups.

    An answer waits in the group until ``window`` of them are there (then the group is
    committed at once, before the next answer is taken) or ``FLUSH_SECONDS`` passed; so at
    most ``window`` answers are ever unrecorded, which is what bounds the doubles after a
    crash. The commit runs in the event loop's own thread, on one connection kept for the
    whole run: a group of a few rows costs ~0.1 ms that way, where a thread of its own cost
    milliseconds in waits for the GIL (docs/performance.md, "Sending").

    On PostgreSQL these commits do not wait for the WAL flush (``synchronous_commit`` off,
    as SQLite's ``synchronous = NORMAL`` in WAL mode): a crash of the sending processes loses
    nothing committed; a crash of the database server itself may lose its last fraction of a
    second (docs/operators.md, "Crash safety").

    A commit that fails (the database restarting) is tried again; if it keeps failing, the
    group is kept, no more messages are handed out, and the worker stops with StoreError.
    """

    def __init__(self, worker: Worker, *, window: int) -> None:
        self.worker = worker
        self.window = max(1, window)
        self._answered: list[_Answered] = []
        self._postponed: list[_Postponed] = []
        self._timer: asyncio.TimerHandle | None = None
        self.error: StoreError | None = None
        self._issues: set[int] = set()
        self._checked_status = 0.0
        self._conn: Connection | None = None

    async def add(self, item: _Answered | _Postponed) -> None:
        """Queue one answer (or postponed claim); commits the group once it is full."""
        if isinstance(item, _Answered):
            self._answered.append(item)
        else:
            self._postponed.append(item)
        if len(self._answered) + len(self._postponed) >= self.window:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    async def drain(self) -> None:
        """Commit what is queued. Raises StoreError when it cannot be recorded."""
        self.flush()
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        """Commit what is queued and release the connection."""
        try:
            await self.drain()
        finally:
            self._close_connection()

    def flush(self) -> None:
        """Commit the group now (never raises: a failure is kept in ``error``)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._answered or self._postponed):
            return
        answered, postponed = self._answered, self._postponed
        try:
            self._commit(answered, postponed)
        except StoreError as exc:
            self.error = exc  # the group stays queued for the next try
            return
        self._answered, self._postponed = [], []
        self.error = None
        try:
            self._check(answered)
        except StoreError as exc:  # recorded, but the issue cannot be watched: stop sending
            self.error = exc

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = frequent_commits(self.worker.engine)
        return self._conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            close_frequent(conn)

    def _commit(self, answered: list[_Answered], postponed: list[_Postponed]) -> None:
        """One transaction for the group. Raises StoreError."""
        try:
            _retrying(
                lambda: self.worker.commit(self._connection(), answered, postponed),
                self.worker.engine,
                "cannot record delivery results",
                retry_as="settle.retry",
                before_retry=self._close_connection,  # a new one (the old may be gone)
            )
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot record delivery results: {exc}") from exc

    def _check(self, answered: list[_Answered]) -> None:
        """The issue checks after a group (paused elsewhere? the bounce rate). Raises
        StoreError."""
        self._issues.update(a.claim.issue_id for a in answered)
        rate_checks = self.worker.bounce_guard.due(answered)
        now = time.monotonic()
        if rate_checks or now - self._checked_status >= STATUS_CHECK_SECONDS:
            self.worker.check_issues(set(self._issues), rate_checks=rate_checks)
            self._checked_status = now


def _retrying(
    action: Callable[[], _T],
    engine: Engine,
    what: str,
    *,
    retry_as: str = "db.retry",
    before_retry: Callable[[], None] | None = None,
) -> _T:
    """``action()``, tried again up to COMMIT_RETRIES times (0.2 s, doubling, between tries)
    when the database dropped the connection or a lock timed out; then StoreError saying
    ``what``, on one line. Other errors pass through."""
    for attempt in range(COMMIT_RETRIES):
        try:
            return action()
        except Exception as exc:
            if not _transient(exc, engine.dialect.loaded_dbapi):
                raise
            if attempt == COMMIT_RETRIES - 1:
                raise StoreError(f"{what}: {str(exc).splitlines()[0]}") from exc
            log.warning("%s attempt=%s error=%s", retry_as, attempt + 1, exc)
            if before_retry is not None:
                before_retry()
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _transient(exc: Exception, dbapi: object) -> bool:
    """A database error worth trying again: a lost connection, a lock or serialisation
    conflict; raised through SQLAlchemy, or by the driver itself (``dbapi``, the driver's
    module: the lean path uses its cursor directly)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    raw = getattr(dbapi, "OperationalError", None)
    return (
        isinstance(exc, OperationalError)
        or (isinstance(raw, type) and isinstance(exc, raw))
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    )
