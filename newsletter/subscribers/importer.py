"""Importing subscriber CSV files into the store, set-based and streaming.

Rows are parsed and validated one by one (``csvparse``) and written in large batches to a
temporary staging table (executemany on SQLite, COPY on PostgreSQL); the classification
(new, updated, unchanged, duplicate in file, suppressed) and the writes are then a handful of
SQL statements, so memory stays flat whatever the file size and nothing is committed per row.

The caller owns the transaction: on an ImportFileError nothing has been written to the
store's tables, and rolling back leaves the store exactly as it was. People who unsubscribed,
bounced, complained or were erased are never made active again, and a re-import of the same
file changes nothing.

``open_report`` writes the report at a temporary name and renames it into place only when the
import went through, so a refused import leaves an existing report as it was.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy import Connection, CursorResult, bindparam, text
from sqlalchemy.orm import Session

from ..errors import ImportFileError
from ..store.models import SUPPRESSED_STATUSES, UTCDateTime, utcnow
from .csvparse import Candidate, Rejection, parse_record, read_csv, resolve_mapping
from .export import neutralise
from .service import get_list

BATCH_ROWS = 20_000
OUTCOMES = ("new", "updated", "unchanged", "duplicate", "suppressed", "rejected")
STAGING = "import_staging"  # the rows as read
RESULT = "import_result"  # the rows with their outcome
_COLUMNS = (
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
)


@dataclass
class ImportResult:
    """What an import did (or, with dry_run, would do)."""

    preset: str
    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    added_to_list: int = 0
    dry_run: bool = False


ProgressCallback = Callable[[int], None]


def import_subscribers(
    session: Session,
    raw: BinaryIO,
    *,
    name: str = "file",
    preset: str = "auto",
    mapping: Mapping[str, str] | None = None,
    list_name: str | None = None,
    status: str = "active",
    source: str = "import",
    dry_run: bool = False,
    report: TextIO | None = None,
    progress: ProgressCallback | None = None,
    lenient: bool = False,
) -> ImportResult:
    """Import a CSV stream. Raises ImportFileError (nothing written) or NotFoundError (list).

    ``status`` is what new people get (active or unconfirmed); rows that the exporting tool
    marks unsubscribed or bounced keep that status. ``report`` receives one CSV line per
    rejected, duplicate or suppressed row. ``progress`` is called with the bytes read so far.
    A quote that is never closed refuses the file (ImportFileError naming the row and line),
    or with ``lenient`` rejects that row and reads on from the next line.
    """
    mlist = get_list(session, list_name) if list_name else None
    header, rows, counter = read_csv(raw, name, lenient=lenient)
    colmap = resolve_mapping(header, preset, mapping)
    result = ImportResult(preset=colmap.preset, dry_run=dry_run)
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    _create_staging(conn, pg)
    write = _copy_writer(conn) if pg else _executemany_writer(conn)

    batch: list[tuple] = []
    for number, cells in rows:
        record = parse_record(number, cells, colmap)
        if record is None:
            continue
        batch.append(_staging_row(record))
        if len(batch) >= BATCH_ROWS:
            write(batch)
            result.rows += len(batch)
            batch = []
            if progress:
                progress(counter.count)
    batch.extend(_staging_row(r) for r in rows.rejected)  # unterminated quotes (lenient)
    if batch:
        write(batch)
        result.rows += len(batch)
    if progress:
        progress(counter.count)

    _classify(conn, pg)
    if not dry_run:
        result.added_to_list = _apply(conn, pg, status, source, name, mlist.id if mlist else None)
    elif mlist is not None:
        result.added_to_list = _count_new_members(conn, mlist.id)
    for outcome, n in conn.execute(
        text(f"SELECT outcome, COUNT(*) FROM {RESULT} GROUP BY outcome")
    ):
        result.counts[outcome] = n
    if report is not None:
        _write_report(conn, report)
    conn.exec_driver_sql(f"DROP TABLE {STAGING}")
    conn.exec_driver_sql(f"DROP TABLE {RESULT}")
    return result


def _staging_row(record: Candidate | Rejection) -> tuple:
    if isinstance(record, Rejection):
        return (record.row, None, None, None, "", None, None, None, record.value[:500],
                record.reason)  # fmt: skip
    attrs = json.dumps(record.attributes) if record.attributes else None
    digest = hashlib.sha256(record.key.encode()).hexdigest()
    return (record.row, record.email, record.key, digest, record.name, record.status, attrs,
            secrets.token_urlsafe(16), None, None)  # fmt: skip


def _create_staging(conn: Connection, pg: bool) -> None:
    temp = "TEMPORARY" if pg else "TEMP"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGING}")
    conn.exec_driver_sql(
        f"CREATE {temp} TABLE {STAGING} (row_no INTEGER NOT NULL, email TEXT, email_key TEXT, "
        "email_hash TEXT, name TEXT NOT NULL, status TEXT, attributes TEXT, token TEXT, "
        "value TEXT, reason TEXT)" + (" ON COMMIT DROP" if pg else "")
    )


def _executemany_writer(conn: Connection) -> Callable[[list[tuple]], None]:
    sql = f"INSERT INTO {STAGING} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"

    def write(batch: list[tuple]) -> None:
        conn.exec_driver_sql(sql, batch)

    return write


def _copy_writer(conn: Connection) -> Callable[[list[tuple]], None]:
    dbapi = conn.connection.driver_connection
    sql = f"COPY {STAGING} ({', '.join(_COLUMNS)}) FROM STDIN"

    def write(batch: list[tuple]) -> None:
        with dbapi.cursor() as cur, cur.copy(sql) as copy:
            for row in batch:
                copy.write_row(row)

    return write


def _classify(conn: Connection, pg: bool) -> None:
    """Give each staged row its outcome in one pass (a second temporary table, RESULT).

    Reads the store, writes only temporary tables.
    """
    suppressed = ", ".join(f"'{s}'" for s in SUPPRESSED_STATUSES)
    if pg:
        changed = "(sub.attributes::jsonb || s.attributes::jsonb) <> sub.attributes::jsonb"
    else:
        changed = "json_patch(sub.attributes, s.attributes) <> json(sub.attributes)"
    temp = "TEMPORARY" if pg else "TEMP"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {RESULT}")
    conn.exec_driver_sql(f"CREATE INDEX ix_{STAGING}_key ON {STAGING} (email_key)")
    conn.exec_driver_sql(
        f"CREATE {temp} TABLE {RESULT} AS SELECT s.row_no, s.email, s.email_key, s.name, "
        "s.status, s.attributes, s.token, s.value, sub.id AS subscriber_id, "
        "CASE WHEN s.email_key IS NULL THEN 'rejected' "
        "WHEN f.first_row <> s.row_no THEN 'duplicate' "
        "WHEN sup.email_hash IS NOT NULL THEN 'suppressed' "
        "WHEN sub.id IS NULL THEN 'new' "
        f"WHEN sub.status IN ({suppressed}) THEN 'suppressed' "
        "WHEN (s.name <> '' AND s.name <> sub.name) "
        "OR (s.status IS NOT NULL AND s.status <> sub.status) "
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


def _apply(
    conn: Connection, pg: bool, status: str, source: str, file_name: str, list_id: int | None
) -> int:
    """Write the classified rows to the store. Returns how many joined the list."""
    now = utcnow()
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
        "created_at, updated_at, confirmed_at, unsubscribed_at) "
        "SELECT r.email, r.email_key, r.name, COALESCE(r.status, :status), "
        f"{attributes}, r.token, :source, :now, :now, "
        "CASE WHEN COALESCE(r.status, :status) = 'active' THEN :now END, "
        "CASE WHEN r.status = 'unsubscribed' THEN :now END "
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
        "status = COALESCE(r.status, subscribers.status), updated_at = :now "
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


def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> CursorResult[Any]:
    """Run textual SQL with the parameters it names; ``now`` is bound as a UTC time."""
    stmt = text(sql)
    if ":now" in sql:
        stmt = stmt.bindparams(bindparam("now", type_=UTCDateTime))
    return conn.execute(stmt, {k: v for k, v in params.items() if f":{k}" in sql})


def _count_new_members(conn: Connection, list_id: int) -> int:
    return conn.execute(
        text(
            f"SELECT COUNT(*) FROM {RESULT} r WHERE r.outcome IN ('new', 'updated', 'unchanged') "
            "AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.list_id = :list_id "
            "AND m.subscriber_id = r.subscriber_id)"
        ),
        {"list_id": list_id},
    ).scalar_one()


def _write_report(conn: Connection, report: TextIO) -> None:
    writer = csv.writer(report)
    writer.writerow(["row", "value", "outcome", "reason"])
    result = conn.execute(
        text(
            f"SELECT row_no, COALESCE(email, value), outcome, reason FROM {RESULT} "
            "WHERE outcome IN ('rejected', 'duplicate', 'suppressed') ORDER BY row_no"
        ).execution_options(yield_per=5000)
    )
    for row_no, value, outcome, reason in result:
        writer.writerow([row_no, neutralise(value or ""), outcome, reason])


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


@contextlib.contextmanager
def open_report(path: Path, source: Path) -> Iterator[TextIO]:
    """The report file for an import of ``source``, as a text file to write CSV to.

    It is written at a temporary name beside the file ``path`` names (symlinks followed;
    mode 0600: it holds addresses) and renamed over it when the block ends without an error;
    on an error the temporary file is removed, so a refused import does not touch an existing
    report. A device, a pipe or a descriptor (``/dev/stdout``) is written directly, never
    replaced. Raises ImportFileError when ``path`` is the input file (after resolving links),
    a directory, or cannot be written.
    """
    if _same_file(path, source):
        raise ImportFileError(f"the report {path} is the input file; name another file")
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ImportFileError(f"cannot write report {path}: {exc}") from None
    if target.is_dir():
        raise ImportFileError(f"cannot write report {path}: it is a directory")
    absolute = os.path.abspath(path)
    if absolute.startswith(("/dev/", "/proc/")) or (target.exists() and not target.is_file()):
        try:
            direct = path.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise ImportFileError(f"cannot write report {path}: {exc.strerror}") from None
        with direct:
            yield direct
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ImportFileError(f"cannot write report {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename == tmp:  # the rename, not the import
            raise ImportFileError(f"cannot write report {path}: {exc.strerror}") from None
        raise
