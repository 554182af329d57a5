"""The daemon's sequence job: readers whose next step is due get it in that step's ledger.

Each tick takes due readers by the index on ``enrollments.due_at`` (never a scan of everyone
enrolled), in batches of ``BATCH``, each batch one transaction that

1. locks its readers (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two takers never share one),
2. adds one pending delivery per reader to the step's issue with ``INSERT … SELECT``
   (the ledger's unique key makes it once per reader and step, whatever happens next: a
   kill -9 between two batches, two daemons, a standby taking over), its first time the
   reader's send window when the step has one,
3. moves each reader on to the following step, due its delay later, or marks them done.

From there the dispatcher sends the step like any issue: claims, rate limit, retries,
bounces, tracking, `issue missed`. A reader who is no longer active or no longer on the
sequence's list leaves it here; a step due longer ago than ``[sequences] max_late`` (the
daemon was down, the sequence paused) is recorded as skipped in its ledger, not sent late.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, literal
from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from ..errors import InvalidInputError
from ..store import deliveries
from ..store import sequences as store
from ..store.models import Sequence, SequenceStep, Subscriber, UTCDateTime, utcnow
from .steps import in_window

BATCH = 1000
LATE = "skipped: more than [sequences] max_late late (the daemon was down or the sequence paused)"


@dataclass
class Advanced:
    queued: int = 0  # deliveries added to steps' ledgers
    skipped: int = 0  # too late
    left: int = 0
    done: int = 0
    taken: int = 0  # readers taken (due)
    issues: set[int] = field(default_factory=set)  # the step issues that got deliveries


def advance_all(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime | None = None,
    committed: Callable[[set[int]], None] | None = None,
) -> Advanced:
    """Take every reader due now, a batch per transaction. Returns what it did.
    ``committed`` is called after each batch with the step issues it gave deliveries (the
    daemon starts their senders at once, not after the last batch)."""
    total = Advanced()
    while True:
        with sessions() as session, session.begin():
            got = advance(session, settings, now=now or utcnow())
        if committed is not None and got.issues:
            committed(got.issues)
        for name in ("queued", "skipped", "left", "done", "taken"):
            setattr(total, name, getattr(total, name) + getattr(got, name))
        total.issues |= got.issues
        if got.taken < BATCH:
            return total


def advance(session: Session, settings: Settings, *, now: datetime, limit: int = BATCH) -> Advanced:
    """One batch (in the caller's transaction)."""
    result = Advanced()
    due = store.take_due(session, now, limit)
    result.taken = len(due)
    if not due:
        return result
    max_late = settings.sequences.max_late_span()
    plans: dict[int, list[SequenceStep]] = {}
    zones: dict[int, str] = {}
    changes: list[tuple[int, str, int, datetime | None]] = []
    send: dict[tuple[int, str], list[store.Due]] = defaultdict(list)  # (step id, how) -> readers
    step_by_id: dict[int, SequenceStep] = {}
    for row in due:
        if row.sequence_id not in plans:
            plans[row.sequence_id] = store.steps(session, row.sequence_id)
            sequence = session.get_one(Sequence, row.sequence_id)
            zones[row.sequence_id] = settings.list_timezone(sequence.mailing_list.name)
        steps = plans[row.sequence_id]
        if not (row.active and row.member):
            changes.append((row.enrollment_id, store.LEFT, row.next_position, None))
            result.left += 1
            continue
        step = next((s for s in steps if s.position >= row.next_position), None)
        if step is None:
            changes.append((row.enrollment_id, store.DONE, row.next_position, None))
            continue
        step_by_id[step.id] = step
        late = now - row.due_at > max_late
        send[(step.id, "late" if late else "send")].append(row)
        base = row.due_at if late else _first_time(step, row, zones[row.sequence_id], now)
        following = next((s for s in steps if s.position > step.position), None)
        if following is None:
            changes.append((row.enrollment_id, store.DONE, step.position + 1, None))
        else:
            at = base + timedelta(seconds=following.delay_seconds)
            changes.append((row.enrollment_id, store.ACTIVE, step.position + 1, at))
    for (step_id, how), rows in send.items():
        step = step_by_id[step_id]
        readers = Subscriber.id.in_([r.subscriber_id for r in rows])
        if how == "late":
            result.skipped += deliveries.add_audience(
                session, step.issue_id, now, readers, status="skipped", reason=LATE,
                only_new=False,
            )  # fmt: skip
            continue
        zone = zones[step.sequence_id]
        result.queued += deliveries.add_audience(
            session, step.issue_id, now, readers,
            not_before=_window_times(step, rows, zone, now), only_new=False,
        )  # fmt: skip
        result.issues.add(step.issue_id)
    store.move_on(session, changes, now)
    result.done = sum(1 for c in changes if c[1] == store.DONE)
    return result


def _first_time(step: SequenceStep, row: store.Due, list_zone: str, now: datetime) -> datetime:
    if not step.window:
        return now
    return _in_window(step.window, row.timezone, list_zone, now)


def _in_window(window: str, zone: str | None, list_zone: str, now: datetime) -> datetime:
    """``in_window`` in the reader's zone; their list's when they have none (or one this
    machine does not know)."""
    try:
        return in_window(window, zone or list_zone, now)
    except InvalidInputError:
        return in_window(window, list_zone, now)


def _window_times(
    step: SequenceStep, rows: list[store.Due], list_zone: str, now: datetime
) -> ColumnElement[datetime] | None:
    """Each reader's first time for a step with a send window: one per time zone."""
    if not step.window:
        return None
    fallback = literal(in_window(step.window, list_zone, now), UTCDateTime)
    times = {
        r.timezone: literal(_in_window(step.window, r.timezone, list_zone, now), UTCDateTime)
        for r in rows
        if r.timezone
    }
    if not times:
        return fallback
    return case(times, value=Subscriber.timezone, else_=fallback)
