"""The deliveries table: its SQL and every dialect branch of it.

One row per (issue, subscriber). What a claim means, when a deferral becomes a failure and
what an issue's report says are the rules of delivery/ (ledger.py, status.py) and issues/;
these functions only read and write rows, with the caller's Session or Connection, and never
commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    bindparam,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from .dialect import insert
from .models import Delivery, IdType, Subscriber, UTCDateTime

_OPEN = ("pending", "sending", "deferred")


def add_audience(
    session: Session,
    issue_id: int,
    now: datetime,
    audience: ColumnElement[bool] | None = None,
    not_before: ColumnElement[datetime] | None = None,
    *,
    status: str = "pending",
    reason: str = "",
    only_new: bool = True,
) -> int:
    """Add a pending delivery for each active subscriber matching ``audience`` (a condition on
    subscribers, see newsletter.audiences.rules; None: everyone) not in the issue's ledger
    yet, in subscriber order, with one INSERT ... SELECT. ``not_before``: each delivery's
    first time (an expression on the subscriber: their local hour); None: ``now``. Returns
    how many were added; a concurrent start of the same issue adds each person once (the
    unique key decides). ``status``/``reason``: rows recorded as "skipped" with why (a
    sequence step too late to send). ``only_new=False`` leaves out the NOT EXISTS that skips
    people already in the ledger (a sequence step's few readers per call: the unique key does
    it, and PostgreSQL planned the NOT EXISTS over a growing ledger as a nested loop)."""
    already = exists().where(Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id)
    chosen = (
        select(
            literal(issue_id, IdType),
            Subscriber.id,
            literal(status),
            literal(0),
            literal(now, UTCDateTime) if not_before is None else not_before,
            literal(""),
            literal(reason),
            literal(""),
            literal(""),
            literal(now, UTCDateTime),
        )
        .where(Subscriber.status == "active")
        .order_by(Subscriber.id)
    )
    if only_new:
        chosen = chosen.where(~already)
    if audience is not None:
        chosen = chosen.where(audience)
    columns = (
        "issue_id", "subscriber_id", "status", "attempts", "next_attempt_at", "last_enhanced",
        "last_text", "message_id", "claimed_by", "updated_at",
    )  # fmt: skip
    stmt = (
        insert(session, Delivery.__table__)  # the table: a Core INSERT, not the ORM's bulk one
        .from_select(columns, chosen)
        # Another process starting the same issue at the same moment: theirs counts.
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
        .execution_options(preserve_rowcount=True)  # an INSERT's rowcount is kept only if asked
    )
    return session.execute(stmt).rowcount


class ClaimedRow(NamedTuple):
    id: int
    issue_id: int
    subscriber_id: int | None
    attempts: int


def claim_due(
    session: Session,
    *,
    worker: str,
    limit: int,
    lease_until: datetime,
    now: datetime,
    issue_id: int | None = None,
) -> list[ClaimedRow]:
    """Mark up to ``limit`` due deliveries of sending issues (of one issue, or any) as
    "sending" for ``worker`` until ``lease_until``, counting the attempt; return them.

    Due: pending, or deferred whose next attempt has come, or sending whose lease ran out.
    PostgreSQL locks the rows it picks with FOR UPDATE SKIP LOCKED, so several workers take
    disjoint sets; on SQLite the caller's transaction holds the write lock (BEGIN IMMEDIATE).
    """
    only_issue = "AND d.issue_id = :issue_id " if issue_id is not None else ""
    pick = (
        "SELECT d.id FROM deliveries d JOIN issues i ON i.id = d.issue_id "
        f"WHERE i.status = 'sending' {only_issue}"
        "AND ((d.status IN ('pending', 'deferred') AND d.next_attempt_at <= :now) "
        "OR (d.status = 'sending' AND d.lease_until < :now)) "
        "ORDER BY d.id LIMIT :limit"
    )
    assign = (
        "UPDATE deliveries SET status = 'sending', claimed_by = :worker, "
        "lease_until = :lease_until, attempts = attempts + 1, updated_at = :now "
    )
    if session.get_bind().dialect.name == "postgresql":
        sql = (
            f"WITH picked AS MATERIALIZED ({pick} FOR UPDATE OF d SKIP LOCKED) {assign}"
            "FROM picked WHERE deliveries.id = picked.id "
            "RETURNING deliveries.id, deliveries.issue_id, deliveries.subscriber_id, "
            "deliveries.attempts"
        )
    else:
        sql = f"{assign}WHERE id IN ({pick}) RETURNING id, issue_id, subscriber_id, attempts"
    params: dict[str, Any] = {
        "worker": worker,
        "lease_until": lease_until,
        "now": now,
        "limit": limit,
        "issue_id": issue_id,
    }
    stmt = text(sql).bindparams(
        bindparam("now", type_=UTCDateTime), bindparam("lease_until", type_=UTCDateTime)
    )
    rows = session.execute(stmt, {k: v for k, v in params.items() if f":{k}" in sql})
    return [ClaimedRow(*r) for r in rows]


def recipients(session: Session, subscriber_ids: Iterable[int]) -> dict[int, Row[Any]]:
    """id -> (id, email, name, token, status, no_tracking) of these subscribers (the erased
    are absent)."""
    rows = session.execute(
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.name,
            Subscriber.token,
            Subscriber.status,
            Subscriber.no_tracking,
        ).where(Subscriber.id.in_(list(subscriber_ids)))
    )
    return {r.id: r for r in rows}


def skip(session: Session, skipped: Sequence[tuple[int, str]]) -> None:
    """Mark claimed deliveries skipped: (delivery id, why) each."""
    if not skipped:
        return
    session.connection().execute(
        update(Delivery)
        .where(Delivery.id == bindparam("did"))
        .values(status="skipped", last_text=bindparam("text"), claimed_by="", lease_until=None),
        [{"did": did, "text": why} for did, why in skipped],
    )


class Answer(NamedTuple):
    """A server's answer for a claimed delivery, with the status it gives the delivery."""

    delivery_id: int
    status: str
    code: int | None
    enhanced: str
    text: str
    message_id: str
    next_attempt_at: datetime
    relay: str = ""


_SETTLE_SQL: dict[str, str] = {}


def _settle_sql(status: str) -> str:
    """The UPDATE that records answers of one status on SQLite (it runs per group of answers
    on the driver's cursor: no statement to build each time)."""
    sql = _SETTLE_SQL.get(status)
    if sql is None:
        p = "?"
        sent_at = f", sent_at = {p}" if status == "sent" else ""
        # A "sent" is recorded even if another worker took the claim over meanwhile (the
        # message went out either way); anything else only while the claim is still ours.
        ours = f"claimed_by = {p} AND status = 'sending'"
        guard = "status <> 'sent'" if status == "sent" else ours
        sql = _SETTLE_SQL[status] = (
            f"UPDATE deliveries SET status = {p}, last_code = {p}, last_enhanced = {p}, "
            f"last_text = {p}, message_id = {p}, next_attempt_at = {p}, claimed_by = '', "
            f"lease_until = NULL, updated_at = {p}, relay = {p}{sent_at} "
            f"WHERE id = {p} AND {guard}"
        )
    return sql


_GROUP_SQL: dict[int, str] = {}
_GROUP_TYPES = ("bigint", "text", "int", "text", "text", "text", "timestamptz", "text")


def _group_sql(n: int) -> str:
    """One UPDATE that records ``n`` answers of any statuses (PostgreSQL), with numbered
    parameters: $1 the time, $2 the worker, then the rows as a VALUES list. The guard is the
    per-status one of ``_settle_sql``."""
    sql = _GROUP_SQL.get(n)
    if sql is None:
        width = len(_GROUP_TYPES)
        rows = ", ".join(
            "(" + ", ".join(f"${3 + r * width + i}::{t}" for i, t in enumerate(_GROUP_TYPES)) + ")"
            for r in range(n)
        )
        sql = _GROUP_SQL[n] = (
            "UPDATE deliveries AS d SET status = v.status, last_code = v.code, "
            "last_enhanced = v.enhanced, last_text = v.text, message_id = v.message_id, "
            "next_attempt_at = v.next_at, claimed_by = '', lease_until = NULL, "
            "updated_at = $1, relay = v.relay, "
            "sent_at = CASE WHEN v.status = 'sent' THEN $1 ELSE d.sent_at END "
            f"FROM (VALUES {rows}) "
            "AS v(id, status, code, enhanced, text, message_id, next_at, relay) "
            "WHERE d.id = v.id AND CASE WHEN v.status = 'sent' THEN d.status <> 'sent' "
            "ELSE d.claimed_by = $2 AND d.status = 'sending' END"
        )
    return sql


def _record_answers_at_once(
    conn: Connection, answers: list[Answer], worker: str, stamp: Any, dt: Any
) -> dict[str, int]:
    """PostgreSQL: the group in one prepared statement, on psycopg's RawCursor (numbered
    parameters as the server takes them: psycopg neither parses the statement again nor,
    past 50 parameters, skips its cache)."""
    import psycopg

    params: list[Any] = [stamp, worker]
    counts: dict[str, int] = {}
    for a in answers:
        params += (a.delivery_id, a.status, a.code, a.enhanced, a.text, a.message_id,
                   dt(a.next_attempt_at), a.relay)  # fmt: skip
        counts[a.status] = counts.get(a.status, 0) + 1
    if answers:
        with psycopg.RawCursor(conn.connection.driver_connection) as cursor:
            cursor.execute(_group_sql(len(answers)), params, prepare=True)
    return counts


_DATETIMES: dict[str, Any] = {}


def _datetimes(dialect: Any) -> Any:
    """How this dialect stores a UTCDateTime parameter (what SQLAlchemy would send)."""
    processor = _DATETIMES.get(dialect.name)
    if processor is None:
        processor = _DATETIMES[dialect.name] = UTCDateTime().bind_processor(dialect) or (
            lambda value: value
        )
    return processor


def record_answers(
    conn: Connection, answers: Iterable[Answer], *, worker: str, now: datetime
) -> dict[str, int]:
    """Write answers to their deliveries (a "sent" even when another worker has taken the
    claim over since; any other status only while the claim is still ``worker``'s). Returns
    how many answers of each status were given.

    This runs for every few answers while an issue is sending, so it is lean, on the driver's
    own cursor (inside the caller's transaction): on PostgreSQL one UPDATE for the whole group
    (so a caller may run it as a transaction of its own: ``lean_transaction(one_statement=
    True)``); on SQLite, where a statement costs no round trip, one prepared UPDATE per
    status, executed for the group at once."""
    dt = _datetimes(conn.dialect)
    stamp = dt(now)
    if conn.dialect.name == "postgresql":
        return _record_answers_at_once(conn, list(answers), worker, stamp, dt)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for a in answers:
        head = (a.status, a.code, a.enhanced, a.text, a.message_id, dt(a.next_attempt_at), stamp,
                a.relay)  # fmt: skip
        tail = (stamp, a.delivery_id) if a.status == "sent" else (a.delivery_id, worker)
        rows.setdefault(a.status, []).append(head + tail)
    cursor = conn.connection.cursor()  # the driver's own: no statement to build per group
    try:
        for status, params in rows.items():
            cursor.executemany(_settle_sql(status), params)
    finally:
        cursor.close()
    return {status: len(params) for status, params in rows.items()}


def postpone(
    conn: Connection, postponed: Sequence[tuple[int, datetime, str]], *, worker: str, now: datetime
) -> int:
    """Give ``worker``'s claims back untried as deferred until a later time, without using up
    their attempt: (delivery id, not before, why) each. Returns how many."""
    return conn.execute(
        update(Delivery)
        .where(
            Delivery.id == bindparam("did"),
            Delivery.claimed_by == worker,
            Delivery.status == "sending",
        )
        .values(
            status="deferred",
            attempts=Delivery.attempts - 1,
            next_attempt_at=bindparam("until", type_=UTCDateTime),
            last_code=None,
            last_enhanced="",
            last_text=bindparam("text"),
            claimed_by="",
            lease_until=None,
            updated_at=now,
        ),
        [{"did": did, "until": until, "text": why[:500]} for did, until, why in postponed],
    ).rowcount


def release(
    session: Session, worker: str, delivery_ids: Sequence[int] = (), *, now: datetime
) -> int:
    """Give ``worker``'s claims (all, or these) back as pending, the attempt not counted."""
    stmt = update(Delivery).where(Delivery.claimed_by == worker, Delivery.status == "sending")
    if delivery_ids:
        stmt = stmt.where(Delivery.id.in_(list(delivery_ids)))
    return session.execute(
        stmt.values(
            status="pending",
            claimed_by="",
            lease_until=None,
            attempts=Delivery.attempts - 1,
            updated_at=now,
        )
    ).rowcount


def claim_holders(session: Session, host: str) -> list[str]:
    """The workers of ``host`` (names "host:pid:…") holding claims now."""
    return list(
        session.scalars(
            select(Delivery.claimed_by)
            .where(Delivery.status == "sending", Delivery.claimed_by.like(f"{host}:%"))
            .distinct()
        )
    )


def retry(session: Session, issue_id: int, statuses: Sequence[str], now: datetime) -> int:
    """Make an issue's deliveries in ``statuses`` pending again with a fresh count of
    attempts (`issue send --only-missed`). Returns how many."""
    return session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status.in_(list(statuses)))
        .values(status="pending", attempts=0, next_attempt_at=now, claimed_by="")
    ).rowcount


# --- reading ---------------------------------------------------------------------------------


def counts(session: Session, issue_id: int) -> dict[str, int]:
    """An issue's deliveries by status."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    ).all()
    return dict(rows)  # type: ignore[arg-type]


def by_relay(session: Session, issue_id: int) -> dict[str, dict[str, int]]:
    """An issue's deliveries by the relay that answered last, then by status (only those a
    relay of several answered for)."""
    rows = session.execute(
        select(Delivery.relay, Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.relay != "")
        .group_by(Delivery.relay, Delivery.status)
        .order_by(Delivery.relay)
    ).all()
    found: dict[str, dict[str, int]] = {}
    for relay, status, n in rows:
        found.setdefault(relay, {})[status] = n
    return found


def due_and_waiting(session: Session, issue_id: int, now: datetime) -> tuple[int, int]:
    """(deliveries to do now or in flight, pending or deferred ones waiting for a later time:
    a retry, or the reader's local hour)."""
    later = Delivery.next_attempt_at > now
    due, waiting = session.execute(
        select(
            func.count().filter((Delivery.status == "sending") | ~later),
            func.count().filter(later),
        ).where(Delivery.issue_id == issue_id, Delivery.status.in_(_OPEN))
    ).one()
    return due or 0, waiting or 0


def waiting_for_hour(session: Session, issue_id: int, now: datetime) -> tuple[int, datetime | None]:
    """(pending deliveries whose time has not come, the next of those times)."""
    n, first = session.execute(
        select(func.count(), func.min(Delivery.next_attempt_at)).where(
            Delivery.issue_id == issue_id,
            Delivery.status == "pending",
            Delivery.next_attempt_at > now,
        )
    ).one()
    return n or 0, first


def by_time_zone(session: Session, condition: ColumnElement[bool]) -> list[str | None]:
    """The time zones of the subscribers matching ``condition`` (None for those with none)."""
    return list(session.scalars(select(Subscriber.timezone).where(condition).distinct()))


def open_count(session: Session, issue_id: int) -> int:
    """An issue's deliveries not done yet (pending, sending, deferred)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.status.in_(_OPEN))
        )
        or 0
    )


def settled_span(
    session: Session, issue_id: int, statuses: Sequence[str]
) -> tuple[datetime | None, datetime | None, int]:
    """(first, last update, how many) of an issue's deliveries in ``statuses``."""
    first, last, n = session.execute(
        select(func.min(Delivery.updated_at), func.max(Delivery.updated_at), func.count()).where(
            Delivery.issue_id == issue_id, Delivery.status.in_(list(statuses))
        )
    ).one()
    return first, last, n


def replies(
    session: Session, issue_id: int, statuses: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """The most common (status, code, enhanced code, text) of an issue's deliveries in
    ``statuses``, with their count, most common first."""
    rows = session.execute(
        select(
            Delivery.status, Delivery.last_code, Delivery.last_enhanced, Delivery.last_text,
            func.count(),
        )
        .where(Delivery.issue_id == issue_id, Delivery.status.in_(list(statuses)))
        .group_by(Delivery.status, Delivery.last_code, Delivery.last_enhanced, Delivery.last_text)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()  # fmt: skip
    return [
        {"status": s, "code": c, "enhanced": e, "text": t, "count": n} for s, c, e, t, n in rows
    ]


def not_sent(session: Session, issue_id: int) -> Iterator[tuple[Delivery, str | None]]:
    """An issue's deliveries that are not sent, with the address (None once erased), in
    ledger order, streamed."""
    stmt = (
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id, Delivery.status != "sent")
        .order_by(Delivery.id)
        .execution_options(yield_per=2000)
    )
    yield from session.execute(stmt)  # type: ignore[misc]
