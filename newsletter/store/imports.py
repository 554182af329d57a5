"""The import's staging tables: their SQL and every dialect branch of it.

An import writes the parsed rows to a temporary staging table (executemany on SQLite, COPY on
PostgreSQL), classifies them against the store into a second temporary table in one pass,
and applies them in a handful of set-based statements. What an import does with each row
(the parsing, the validation, which statuses are never made active again) is
subscribers/importer.py's; this module holds the statements. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    bindparam,
    column,
    select,
    table,
    text,
)

from .models import Subscriber
from .types import UTCDateTime

STAGING = "import_staging"  # the rows as read
RESULT = "import_result"  # the rows with their outcome
COLUMNS = (
    "row_no",
    "email",
    "email_key",
    "email_hash",
    "name",
    "status",
    "attributes",
    "token",
    "value",
    "reason",
    "tags",
    "timezone",
)
"""The staging table's columns, in the order of a staged row's values."""


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def create_staging(conn: Connection) -> None:
    """Create the (temporary) staging table, empty."""
    pg = _pg(conn)
    temp = "TEMPORARY" if pg else "TEMP"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGING}")
    conn.exec_driver_sql(
        f"CREATE {temp} TABLE {STAGING} (row_no INTEGER NOT NULL, email TEXT, email_key TEXT, "
        "email_hash TEXT, name TEXT NOT NULL, status TEXT, attributes TEXT, token TEXT, "
        "value TEXT, reason TEXT, tags TEXT, timezone TEXT)" + (" ON COMMIT DROP" if pg else "")
    )


def _executemany_writer(conn: Connection) -> Callable[[list[tuple]], None]:
    sql = f"INSERT INTO {STAGING} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

    def write(batch: list[tuple]) -> None:
        conn.exec_driver_sql(sql, batch)

    return write


def _copy_writer(conn: Connection) -> Callable[[list[tuple]], None]:
    dbapi = conn.connection.driver_connection
    sql = f"COPY {STAGING} ({', '.join(COLUMNS)}) FROM STDIN"

    def write(batch: list[tuple]) -> None:
        with dbapi.cursor() as cur, cur.copy(sql) as copy:
            for row in batch:
                copy.write_row(row)

    return write


def classify(conn: Connection, suppressed_statuses: Sequence[str]) -> None:
    """Give each staged row its outcome in one pass (a second temporary table, RESULT).

    A row is rejected (it has no address), a duplicate (of an earlier row of the file),
    suppressed (erased earlier, or a subscriber in ``suppressed_statuses``), new, updated
    (a name, status or attribute that differs) or unchanged. Reads the store, writes only
    temporary tables.
    """
    pg = _pg(conn)
    suppressed = ", ".join(f"'{s}'" for s in suppressed_statuses)
    if pg:
        changed = "(sub.attributes::jsonb || s.attributes::jsonb) <> sub.attributes::jsonb"
    else:
        changed = "json_patch(sub.attributes, s.attributes) <> json(sub.attributes)"
    temp = "TEMPORARY" if pg else "TEMP"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {RESULT}")
    conn.exec_driver_sql(f"CREATE INDEX ix_{STAGING}_key ON {STAGING} (email_key)")
    conn.exec_driver_sql(
        f"CREATE {temp} TABLE {RESULT} AS SELECT s.row_no, s.email, s.email_key, s.name, "
        "s.status, s.attributes, s.token, s.value, s.tags, s.timezone, sub.id AS subscriber_id, "
        "CASE WHEN s.email_key IS NULL THEN 'rejected' "
        "WHEN f.first_row <> s.row_no THEN 'duplicate' "
        "WHEN sup.email_hash IS NOT NULL THEN 'suppressed' "
        "WHEN sub.id IS NULL THEN 'new' "
        f"WHEN sub.status IN ({suppressed}) THEN 'suppressed' "
        "WHEN (s.name <> '' AND s.name <> sub.name) "
        "OR (s.status IS NOT NULL AND s.status <> sub.status) "
        "OR (s.timezone IS NOT NULL AND (sub.timezone IS NULL OR s.timezone <> sub.timezone)) "
        f"OR (s.attributes IS NOT NULL AND {changed}) THEN 'updated' "
        "ELSE 'unchanged' END AS outcome, "
        "CASE WHEN s.email_key IS NULL THEN s.reason "
        "WHEN f.first_row <> s.row_no THEN 'duplicate of row ' || f.first_row "
        "WHEN sup.email_hash IS NOT NULL THEN 'erased earlier: never imported again' "
        f"WHEN sub.status IN ({suppressed}) THEN 'already ' || sub.status || ': not re-activated' "
        "END AS reason "
        f"FROM {STAGING} s "
        f"LEFT JOIN (SELECT email_key, MIN(row_no) AS first_row FROM {STAGING} "
        "WHERE email_key IS NOT NULL GROUP BY email_key) f ON f.email_key = s.email_key "
        "LEFT JOIN suppressions sup ON sup.email_hash = s.email_hash "
        "LEFT JOIN subscribers sub ON sub.email_key = s.email_key"
    )


def apply(
    conn: Connection,
    *,
    status: str,
    source: str,
    file_name: str,
    list_id: int | None,
    now: datetime,
) -> int:
    """Write the classified rows to the store: the new ones inserted (with ``status`` unless
    the row gives one; an "imported" event each), the updated ones updated (an "updated"
    event each), and all but the refused ones added to the list ``list_id``. Returns how many
    joined the list."""
    pg = _pg(conn)
    as_json = "CAST({} AS json)" if pg else "{}"
    if pg:
        merged = "(subscribers.attributes::jsonb || r.attributes::jsonb)::json"
    else:
        merged = "json_patch(subscribers.attributes, r.attributes)"
    detail = (
        "json_build_object('file', CAST(:file AS text), 'row', r.row_no)"
        if pg
        else ("json_object('file', :file, 'row', r.row_no)")
    )
    attributes = as_json.format("COALESCE(r.attributes, '{}')")
    insert_new = (
        "INSERT INTO subscribers (email, email_key, name, status, attributes, token, source, "
        "created_at, updated_at, confirmed_at, unsubscribed_at, timezone) "
        "SELECT r.email, r.email_key, r.name, COALESCE(r.status, :status), "
        f"{attributes}, r.token, :source, :now, :now, "
        "CASE WHEN COALESCE(r.status, :status) = 'active' THEN :now END, "
        "CASE WHEN r.status = 'unsubscribed' THEN :now END, r.timezone "
        f"FROM {RESULT} r WHERE r.outcome = 'new' ORDER BY r.row_no"
    )
    events = "INSERT INTO subscriber_events (subscriber_id, kind, at, source, ip, detail) "
    if pg:
        # One statement: the new ids come back from RETURNING, no index lookups per row.
        new_rows = [
            f"WITH ins AS ({insert_new} RETURNING id, email_key) {events}"
            f"SELECT ins.id, 'imported', :now, :source, '', {detail} FROM ins "
            f"JOIN {RESULT} r ON r.email_key = ins.email_key AND r.outcome = 'new'"
        ]
    else:
        new_rows = [
            insert_new,
            f"{events}SELECT sub.id, 'imported', :now, :source, '', {detail} FROM {RESULT} r "
            "JOIN subscribers sub ON sub.email_key = r.email_key WHERE r.outcome = 'new'",
        ]
    statements = [
        *new_rows,
        "UPDATE subscribers SET "
        "name = CASE WHEN r.name <> '' THEN r.name ELSE subscribers.name END, "
        "attributes = CASE WHEN r.attributes IS NULL THEN subscribers.attributes "
        f"ELSE {merged} END, "
        "status = COALESCE(r.status, subscribers.status), "
        "timezone = COALESCE(r.timezone, subscribers.timezone), updated_at = :now "
        f"FROM {RESULT} r WHERE r.subscriber_id = subscribers.id AND r.outcome = 'updated'",
        f"{events}SELECT r.subscriber_id, 'updated', :now, :source, '', {detail} "
        f"FROM {RESULT} r WHERE r.outcome = 'updated'",
    ]
    params = {"status": status, "source": source, "file": file_name, "now": now}
    for sql in statements:
        _execute(conn, sql, params)
    if list_id is None:
        return 0
    added = _execute(
        conn,
        "INSERT INTO memberships (list_id, subscriber_id, created_at) "
        f"SELECT :list_id, sub.id, :now FROM {RESULT} r "
        "JOIN subscribers sub ON sub.email_key = r.email_key "
        "WHERE r.outcome IN ('new', 'updated', 'unchanged') AND NOT EXISTS ("
        "SELECT 1 FROM memberships m WHERE m.list_id = :list_id AND m.subscriber_id = sub.id)",
        {"list_id": list_id, "now": now},
    )
    return added.rowcount


def apply_tags(conn: Connection, *, tag_ids: Sequence[int], now: datetime) -> int:
    """Tag the people of the new, updated and unchanged rows (after ``apply``) with the tags
    their row names (the staged JSON array of names; the tags are created as needed) and with
    the tags ``tag_ids`` (an import's ``--tag``). Three set-based statements, whatever the
    number of rows; tags are only ever added (ON CONFLICT DO NOTHING). Returns how many
    (subscriber, tag) pairs were new."""
    if _pg(conn):
        names = "json_array_elements_text(CAST(r.tags AS json)) AS j(value)"
    else:
        names = "json_each(r.tags) AS j"
    kept = "r.outcome IN ('new', 'updated', 'unchanged')"
    pair = "INSERT INTO subscriber_tags (subscriber_id, tag_id, created_at) "
    # SQLite reads ON CONFLICT after a SELECT as part of it unless the SELECT has a WHERE.
    _execute(
        conn,
        f"INSERT INTO tags (name, created_at) SELECT DISTINCT j.value, :now FROM {RESULT} r "
        f"CROSS JOIN {names} WHERE r.tags IS NOT NULL AND {kept} ON CONFLICT (name) DO NOTHING",
        {"now": now},
    )
    added = _execute(
        conn,
        f"{pair}SELECT sub.id, t.id, :now FROM {RESULT} r CROSS JOIN {names} "
        "JOIN tags t ON t.name = j.value JOIN subscribers sub ON sub.email_key = r.email_key "
        f"WHERE r.tags IS NOT NULL AND {kept} ON CONFLICT DO NOTHING",
        {"now": now},
    ).rowcount
    if tag_ids:
        stmt = text(
            f"{pair}SELECT sub.id, t.id, :now FROM {RESULT} r "
            "JOIN subscribers sub ON sub.email_key = r.email_key "
            f"CROSS JOIN tags t WHERE t.id IN :ids AND {kept} ON CONFLICT DO NOTHING"
        ).bindparams(bindparam("now", type_=UTCDateTime), bindparam("ids", expanding=True))
        added += conn.execute(stmt, {"now": now, "ids": list(tag_ids)}).rowcount
    return added


def imported() -> ColumnElement[bool]:
    """The subscribers of the new, updated and unchanged rows (after ``apply``), as a
    condition (for enrolling them in sequences)."""
    rows = (
        select(column("email_key"))
        .select_from(table(RESULT))
        .where(column("outcome").in_(("new", "updated", "unchanged")))
    )
    return Subscriber.email_key.in_(rows)


def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> CursorResult[Any]:
    """Run textual SQL with the parameters it names; ``now`` is bound as a UTC time."""
    stmt = text(sql)
    if ":now" in sql:
        stmt = stmt.bindparams(bindparam("now", type_=UTCDateTime))
    return conn.execute(stmt, {k: v for k, v in params.items() if f":{k}" in sql})


def count_new_members(conn: Connection, list_id: int) -> int:
    """How many classified rows would join the list ``list_id`` (a dry run)."""
    return conn.execute(
        text(
            f"SELECT COUNT(*) FROM {RESULT} r WHERE r.outcome IN ('new', 'updated', 'unchanged') "
            "AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.list_id = :list_id "
            "AND m.subscriber_id = r.subscriber_id)"
        ),
        {"list_id": list_id},
    ).scalar_one()


def staging_writer(conn: Connection) -> Callable[[list[tuple]], None]:
    """A function that appends a batch of rows (tuples in ``COLUMNS`` order) to the staging
    table: COPY on PostgreSQL, executemany on SQLite."""
    return _copy_writer(conn) if _pg(conn) else _executemany_writer(conn)


def outcome_counts(conn: Connection) -> dict[str, int]:
    """Classified rows by outcome."""
    rows = conn.execute(text(f"SELECT outcome, COUNT(*) FROM {RESULT} GROUP BY outcome"))
    return {outcome: n for outcome, n in rows}


def refused_rows(conn: Connection) -> Iterator[tuple[int, str | None, str, str]]:
    """(row number, address or value, outcome, reason) of the rejected, duplicate and
    suppressed rows, in file order, streamed."""
    result = conn.execute(
        text(
            f"SELECT row_no, COALESCE(email, value), outcome, reason FROM {RESULT} "
            "WHERE outcome IN ('rejected', 'duplicate', 'suppressed') ORDER BY row_no"
        ).execution_options(yield_per=5000)
    )
    yield from result  # type: ignore[misc]


def drop_staging(conn: Connection) -> None:
    """Drop both temporary tables (PostgreSQL would drop them at commit anyway)."""
    conn.exec_driver_sql(f"DROP TABLE {STAGING}")
    conn.exec_driver_sql(f"DROP TABLE {RESULT}")
