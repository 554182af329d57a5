"""Importing subscriber CSV files (and Mailchimp's export archive) into the store,
set-based and streaming.

Rows are parsed and validated one by one (``csvparse``) and written in large batches to a
temporary staging table (executemany on SQLite, COPY on PostgreSQL); the classification
(new, updated, unchanged, duplicate in file, suppressed) and the writes are then a handful of
SQL statements, so memory stays flat whatever the file size and nothing is committed per row.
Tags (a tags column, ``--tag``) are staged with the row and given in two more statements.

The caller owns the transaction: on an ImportFileError in a CSV file nothing has been written
to the store's tables (in an archive's second or third file, the earlier ones have), and
rolling back leaves the store exactly as it was. People who unsubscribed,
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
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy.orm import Session

from ..errors import ImportFileError
from ..store import imports
from ..store import tags as store_tags
from ..store.models import SUPPRESSED_STATUSES, utcnow
from . import enrol
from .csvparse import Candidate, Rejection, parse_record, read_csv, resolve_mapping
from .export import neutralise
from .service import get_list
from .tags import normalise_tags

REPORT_COLUMNS = ["row", "value", "outcome", "reason"]

BATCH_ROWS = 20_000
OUTCOMES = ("new", "updated", "unchanged", "duplicate", "suppressed", "rejected")
# Mailchimp's export archive: the file-name prefixes (the audience id follows) and the status
# each file's people have here (None: the import's ``status`` for new people, as for a CSV).
ARCHIVE_FILES = (
    ("subscribed_members_export_", None),
    ("unsubscribed_members_export_", "unsubscribed"),
    ("cleaned_members_export_", "bounced"),
)
MAX_ARCHIVE_BYTES = 4 << 30
"""The most an archive's files may unpack to, together (a million-row export is ~200 MB)."""


@dataclass
class ImportResult:
    """What an import did (or, with dry_run, would do). ``tagged``: the (person, tag) pairs
    added; ``tags``: the tag names the file and ``--tag`` gave; ``files``: for an archive,
    (file name, status given, rows) of each file it held."""

    preset: str
    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    added_to_list: int = 0
    dry_run: bool = False
    tagged: int = 0
    tags: set[str] = field(default_factory=set)
    files: list[tuple[str, str, int]] = field(default_factory=list)
    enrolled: int = 0  # enrolments in sequences (``trigger_sequences``)


ProgressCallback = Callable[[int], None]


@dataclass
class _Run:
    """What the files of one import share: where they go and what they produce."""

    session: Session
    list_id: int | None
    status: str
    source: str
    dry_run: bool
    tags: list[str]  # --tag, normalised
    result: ImportResult
    report: Any  # a csv writer, or None
    trigger_sequences: bool = False
    restart_sequences: bool = False


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
    tags: Sequence[str] = (),
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    trigger_sequences: bool = False,
    restart_sequences: bool = False,
) -> ImportResult:
    """Import a CSV stream, or Mailchimp's export archive. Raises ImportFileError (nothing
    written), NotFoundError (list) or InvalidInputError (a ``tags`` name).

    ``status`` is what new people get (active or unconfirmed); rows that the exporting tool
    marks unsubscribed or bounced keep that status. ``report`` receives one CSV line per
    rejected, duplicate or suppressed row. ``progress`` is called with the bytes read so far.
    A quote that is never closed refuses the file (ImportFileError naming the row and line),
    or with ``lenient`` rejects that row and reads on from the next line. ``tags`` are given
    to everyone of the file who is new, updated or unchanged, besides the tags of their row
    (a tags column: Mailchimp's TAGS, ``tags``, ``--map tags=COLUMN``); tags are only added.
    ``trigger_sequences``: the active people of the file start the sequences their lists and
    tags trigger, as if they had confirmed (without it an import enrols nobody: importing an
    old list must not send it a welcome series).

    A zip (by its name or its first bytes) must be Mailchimp's export archive: see
    ``archive_members``. Its files are imported one after the other (subscribed, unsubscribed,
    cleaned) in the caller's transaction, into one result and one report (with a file column).
    """
    mlist = get_list(session, list_name) if list_name else None
    wanted = normalise_tags(tags)
    result = ImportResult(preset=preset, dry_run=dry_run, tags=set(wanted))
    archive = _is_zip(raw, name)
    writer = None
    if report is not None:
        writer = csv.writer(report)
        writer.writerow(["file", *REPORT_COLUMNS] if archive else REPORT_COLUMNS)
    run = _Run(session, mlist.id if mlist else None, status, source, dry_run, wanted, result,
               writer, trigger_sequences, restart_sequences)  # fmt: skip
    if not archive:
        _import_file(run, raw, name, preset, mapping, lenient, None, progress)
        return result
    try:
        with zipfile.ZipFile(raw) as zf:
            members = archive_members(zf, name, max_archive_bytes)
            done = 0
            for info, forced in members:
                rows = result.rows
                scaled = _scaled(progress, done, info)
                with zf.open(info) as member:
                    _import_file(run, member, info.filename, preset, mapping, lenient, forced,
                                 scaled, label=f"{name}: {info.filename}")  # fmt: skip
                result.files.append((info.filename, forced or status, result.rows - rows))
                done += info.compress_size
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ImportFileError(f"{name} is not a zip archive that can be read: {exc}") from None
    return result


def archive_members(
    zf: zipfile.ZipFile, name: str, max_bytes: int = MAX_ARCHIVE_BYTES
) -> list[tuple[zipfile.ZipInfo, str | None]]:
    """The CSV files of Mailchimp's export archive with the status each one's people get, in
    the order to import them (subscribed, unsubscribed, cleaned): files named
    ``subscribed_members_export_*.csv``, ``unsubscribed_...`` and ``cleaned_...`` (in any
    folder of the zip; folders, ``__MACOSX/`` and hidden files are skipped). Raises
    ImportFileError for any other file, two files of one kind, none at all, an encrypted
    file, or files that would unpack to more than ``max_bytes`` together (a zip bomb: the
    sizes are checked before anything is read, and reading stops at the size declared)."""
    expected = ", ".join(f"{prefix}*.csv" for prefix, _ in ARCHIVE_FILES)
    found: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        base = info.filename.rsplit("/", 1)[-1]
        if info.is_dir() or info.filename.startswith("__MACOSX/") or base.startswith("."):
            continue
        prefix = next(
            (p for p, _ in ARCHIVE_FILES if base.startswith(p) and base.lower().endswith(".csv")),
            None,
        )
        if prefix is None:
            raise ImportFileError(
                f"{name} is not a Mailchimp export archive: it holds {info.filename!r}; "
                f"expected only {expected}"
            )
        if prefix in found:
            raise ImportFileError(
                f"{name} holds two {prefix}*.csv files ({found[prefix].filename!r} and "
                f"{info.filename!r}); import them one by one"
            )
        if info.flag_bits & 0x1:
            raise ImportFileError(f"{name}: {info.filename} is encrypted; unpack it first")
        found[prefix] = info
    if not found:
        raise ImportFileError(f"{name} is not a Mailchimp export archive: it holds no {expected}")
    total = sum(info.file_size for info in found.values())
    if total > max_bytes:
        raise ImportFileError(
            f"{name} would unpack to {total:,} bytes, more than the {max_bytes:,} allowed: "
            "refused (a damaged or malicious archive?)"
        )
    return [(found[prefix], forced) for prefix, forced in ARCHIVE_FILES if prefix in found]


def _is_zip(raw: BinaryIO, name: str) -> bool:
    """A zip archive by its name, or (a seekable file) by its first bytes."""
    if name.lower().endswith(".zip"):
        return True
    if not raw.seekable():
        return False
    position = raw.tell()
    head = raw.read(4)
    raw.seek(position)
    return head == b"PK\x03\x04"


def _scaled(
    progress: ProgressCallback | None, done: int, info: zipfile.ZipInfo
) -> ProgressCallback | None:
    """Progress in bytes of the archive: a member's bytes read, scaled to its packed size."""
    if progress is None:
        return None
    ratio = info.compress_size / max(info.file_size, 1)
    return lambda n: progress(done + int(n * ratio))


def _import_file(
    run: _Run,
    raw: BinaryIO,
    name: str,
    preset: str,
    mapping: Mapping[str, str] | None,
    lenient: bool,
    forced: str | None,
    progress: ProgressCallback | None,
    *,
    label: str | None = None,
) -> None:
    """Stage, classify and apply one CSV file into ``run``: its counts, tags and report lines.
    ``forced``: the status of every row (an archive's unsubscribed or cleaned file)."""
    result = run.result
    header, rows, counter = read_csv(raw, label or name, lenient=lenient)
    colmap = resolve_mapping(header, preset, mapping)
    result.preset = colmap.preset
    conn = run.session.connection()
    imports.create_staging(conn)
    write = imports.staging_writer(conn)

    batch: list[tuple] = []
    for number, cells in rows:
        record = parse_record(number, cells, colmap)
        if record is None:
            continue
        batch.append(_staging_row(record, forced, result.tags))
        if len(batch) >= BATCH_ROWS:
            write(batch)
            result.rows += len(batch)
            batch = []
            if progress:
                progress(counter.count)
    batch.extend(_staging_row(r, forced, result.tags) for r in rows.rejected)  # lenient
    if batch:
        write(batch)
        result.rows += len(batch)
    if progress:
        progress(counter.count)

    imports.classify(conn, SUPPRESSED_STATUSES)
    if not run.dry_run:
        now = utcnow()
        result.added_to_list += imports.apply(
            conn,
            status=run.status,
            source=run.source,
            file_name=name,
            list_id=run.list_id,
            now=now,
        )
        tag_ids = store_tags.ensure(run.session, run.tags, now).values()
        result.tagged += imports.apply_tags(conn, tag_ids=list(tag_ids), now=now)
        if run.trigger_sequences:
            lists = [run.list_id] if run.list_id is not None else None
            result.enrolled += enrol.confirmed(run.session, imports.imported(), lists, now,
                                               restart=run.restart_sequences)  # fmt: skip
            result.enrolled += enrol.tagged(run.session, imports.imported(), result.tags, now)
    elif run.list_id is not None:
        result.added_to_list += imports.count_new_members(conn, run.list_id)
    for outcome, n in imports.outcome_counts(conn).items():
        result.counts[outcome] += n
    if run.report is not None:
        lead = [name] if label else []
        for row_no, value, outcome, reason in imports.refused_rows(conn):
            run.report.writerow([*lead, row_no, neutralise(value or ""), outcome, reason])
    imports.drop_staging(conn)


def _staging_row(record: Candidate | Rejection, forced: str | None, seen: set[str]) -> tuple:
    if isinstance(record, Rejection):
        return (record.row, None, None, None, "", None, None, None, record.value[:500],
                record.reason, None, None)  # fmt: skip
    attrs = json.dumps(record.attributes) if record.attributes else None
    digest = hashlib.sha256(record.key.encode()).hexdigest()
    tags = None
    if record.tags:
        seen.update(record.tags)
        tags = json.dumps(record.tags)
    return (record.row, record.email, record.key, digest, record.name, forced or record.status,
            attrs, secrets.token_urlsafe(16), None, None, tags, record.timezone)  # fmt: skip


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
