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
from typing import BinaryIO, TextIO

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..errors import ImportFileError
from ..store import imports
from ..store.models import SUPPRESSED_STATUSES, utcnow
from .csvparse import Candidate, Rejection, parse_record, read_csv, resolve_mapping
from .export import neutralise
from .service import get_list

BATCH_ROWS = 20_000
OUTCOMES = ("new", "updated", "unchanged", "duplicate", "suppressed", "rejected")


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
    imports.create_staging(conn)
    write = imports.staging_writer(conn)

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

    imports.classify(conn, SUPPRESSED_STATUSES)
    if not dry_run:
        result.added_to_list = imports.apply(
            conn,
            status=status,
            source=source,
            file_name=name,
            list_id=mlist.id if mlist else None,
            now=utcnow(),
        )
    elif mlist is not None:
        result.added_to_list = imports.count_new_members(conn, mlist.id)
    result.counts.update(imports.outcome_counts(conn))
    if report is not None:
        _write_report(conn, report)
    imports.drop_staging(conn)
    return result


def _staging_row(record: Candidate | Rejection) -> tuple:
    if isinstance(record, Rejection):
        return (record.row, None, None, None, "", None, None, None, record.value[:500],
                record.reason)  # fmt: skip
    attrs = json.dumps(record.attributes) if record.attributes else None
    digest = hashlib.sha256(record.key.encode()).hexdigest()
    return (record.row, record.email, record.key, digest, record.name, record.status, attrs,
            secrets.token_urlsafe(16), None, None)  # fmt: skip


def _write_report(conn: Connection, report: TextIO) -> None:
    writer = csv.writer(report)
    writer.writerow(["row", "value", "outcome", "reason"])
    for row_no, value, outcome, reason in imports.refused_rows(conn):
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
