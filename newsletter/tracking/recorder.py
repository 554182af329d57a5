"""Recording clicks and opens without slowing the web service down.

The redirector only verifies the token, answers, and hands a ``Hit`` to the ``Recorder``
(a bounded queue: ``add`` never waits). A thread of its own takes what has queued, at most
every ``FLUSH_SECONDS``, classifies it (tracking.robots: the message-wide rules, burst and
honeypot, need the message's other hits, which it keeps in memory for a short while),
and writes it in one transaction: one INSERT for the lot, and an UPDATE for the earlier
hits of a message that a later one showed to be a machine's. A burst of scanner clicks
becomes a few large inserts instead of thousands of small ones, so people's clicks and the
sign-up pages go on.

``per_subscriber`` off, the subscriber's id is used in memory only (for the message's
rules and the keyed ``visitor`` hash) and never written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ..store import outbox
from ..store import tracking as store
from ..store.errors import translating
from ..store.models import utcnow
from . import robots
from .tokens import Signer

log = logging.getLogger("newsletter.tracking")

FLUSH_SECONDS = 0.1
MAX_QUEUED = 200_000
HONEYPOT_MEMORY_SECONDS = 24 * 3600.0  # a message that followed the honeypot stays a machine's


@dataclass(slots=True)
class Hit:
    """One request to a tracked URL, as the redirector saw it."""

    kind: str  # "click" or "open"
    issue_id: int
    link_idx: int | None
    subscriber_id: int
    rule: str  # what the request showed by itself (robots.request_rule)
    at: datetime
    clock: float  # time.monotonic() when it came
    row_id: int | None = None


class Recorder:
    """Queues hits and writes them in batches from a thread; see the module's doc."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: Callable[[], Signer],
        *,
        per_subscriber: bool,
        flush_seconds: float = FLUSH_SECONDS,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._per_subscriber = per_subscriber
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue[Hit] = queue.Queue(maxsize=max_queued)
        self._recent: dict[tuple[int, int], deque[Hit]] = {}
        self._honeypot: dict[tuple[int, int], float] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.dropped = 0
        self.written = 0

    # -- the request side -----------------------------------------------------------------

    def add(self, hit: Hit) -> None:
        """Queue ``hit`` (never waits; when the queue is full the hit is dropped and counted:
        at MAX_QUEUED waiting the database has been gone for a while)."""
        try:
            self._queue.put_nowait(hit)
        except queue.Full:
            self.dropped += 1

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tracking", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.flush()
            except Exception:  # logged; the hits stay queued for the next round
                log.exception("writing tracking events failed")
            self._stop.wait(max(0.0, self._flush_seconds - (time.monotonic() - started)))

    def flush(self) -> int:
        """Classify and write everything queued now. Returns how many hits it wrote."""
        batch: list[Hit] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return 0
        try:
            with translating(), self._sessions() as session, session.begin():
                written = self._write(session, batch)
        except Exception:
            for hit in batch:  # try again next round (classification is idempotent)
                self.add(hit)
            raise
        self.written += written
        return written

    # -- classification -------------------------------------------------------------------

    def _classify(self, hit: Hit) -> list[Hit]:
        """Set ``hit.rule`` from the message's rules; return the message's earlier hits that
        this one shows to be a machine's (their rule is changed here)."""
        key = (hit.issue_id, hit.subscriber_id)
        now = hit.clock
        if hit.rule in robots.NOT_CLICKS:
            return []
        recent = self._recent.setdefault(key, deque())
        while recent and now - recent[0].clock > robots.BURST_SECONDS:
            recent.popleft()
        changed: list[Hit] = []
        flagged = self._honeypot.get(key)
        if hit.kind == "click" and hit.link_idx == 0:
            hit.rule = robots.HONEYPOT
            self._honeypot[key] = now
            changed = [h for h in recent if h.rule != robots.HONEYPOT]
            for h in changed:
                h.rule = robots.HONEYPOT
        elif flagged is not None and now - flagged < HONEYPOT_MEMORY_SECONDS:
            hit.rule = robots.HONEYPOT
        elif hit.kind == "click":
            links = {h.link_idx for h in recent if h.kind == "click"} | {hit.link_idx}
            if len(links) >= robots.BURST_LINKS:
                if hit.rule == robots.HUMAN:
                    hit.rule = robots.BURST
                changed = [h for h in recent if h.kind == "click" and h.rule == robots.HUMAN]
                for h in changed:
                    h.rule = robots.BURST
        recent.append(hit)
        return changed

    def _forget_old(self, now: float) -> None:
        for key in [k for k, q in self._recent.items() if not q or now - q[-1].clock > 60]:
            del self._recent[key]
        if len(self._honeypot) > 100_000:
            self._honeypot = {
                k: t for k, t in self._honeypot.items() if now - t < HONEYPOT_MEMORY_SECONDS
            }

    def _write(self, session: Session, batch: list[Hit]) -> int:
        live = store.tracking_targets(
            session, {h.issue_id for h in batch}, {h.subscriber_id for h in batch}
        )
        batch = [
            h for h in batch if h.issue_id in live.issues and h.subscriber_id not in live.opted_out
        ]
        reclassified: dict[int, Hit] = {}
        for hit in batch:
            for earlier in self._classify(hit):
                if earlier.row_id is not None:
                    reclassified[earlier.row_id] = earlier
        self._forget_old(time.monotonic())
        signer = self._signer()
        rows = [
            {
                "issue_id": h.issue_id,
                "kind": h.kind,
                "link_idx": h.link_idx,
                "at": h.at,
                "machine": h.rule,
                "visitor": signer.visitor(h.issue_id, h.subscriber_id),
                "subscriber_id": (
                    h.subscriber_id
                    if self._per_subscriber and h.subscriber_id in live.subscribers
                    else None
                ),
            }
            for h in batch
        ]
        for hit, row_id in zip(batch, store.add_events(session, rows), strict=True):
            hit.row_id = row_id
        by_rule: dict[str, list[int]] = {}
        for row_id, hit in reclassified.items():
            by_rule.setdefault(hit.rule, []).append(row_id)
        for rule, ids in by_rule.items():
            store.mark_machine(session, ids, rule)
        clicks = [r for r in rows if r["kind"] == "click" and r["machine"] == robots.HUMAN]
        hooks = outbox.wanted(session, "link.clicked") if clicks else []
        if hooks:  # a person's clicks (as far as it can be told now), for the webhooks
            urls = {i: store.link_urls(session, i) for i in {r["issue_id"] for r in clicks}}
            outbox.emit_each(session, "link.clicked", [
                {"issue_id": r["issue_id"], "url": urls[r["issue_id"]].get(r["link_idx"], ""),
                 "at": r["at"].isoformat(), "subscriber_id": r["subscriber_id"]}
                for r in clicks
            ], webhook_ids=hooks)  # fmt: skip
        return len(rows)


def hit_now(kind: str, issue_id: int, link_idx: int | None, subscriber_id: int, rule: str) -> Hit:
    """A hit that came just now."""
    return Hit(kind, issue_id, link_idx, subscriber_id, rule, utcnow(), time.monotonic())
