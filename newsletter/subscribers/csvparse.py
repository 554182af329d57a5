"""Reading subscriber CSV files: pure parsing, no database.

``read_csv(binary_file)`` checks the file is UTF-8 text (BOM or not), sniffs the delimiter
(comma, semicolon or tab) and yields records (``CsvRecords``: a quote that is never closed is
found, not allowed to swallow the rows after it); ``resolve_mapping`` turns a preset or
explicit ``--map`` options into column positions; ``parse_record`` validates one row into a
``Candidate`` or a ``Rejection`` (a cell of tags is split and checked by tags.py's rules).
Raises ImportFileError for a file that cannot be imported at all: binary, empty, not UTF-8,
no email column, a ``--map`` column that is not in the file, a quote that is never closed
(unless lenient).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import ImportFileError, InvalidEmailError, InvalidInputError
from .preferences import zone_or_none
from .tags import split_cell
from .validate import clean_name, normalise_email

PRESETS = ("auto", "mailchimp", "substack", "listmonk", "generic")
FIELDS = ("email", "name", "first_name", "last_name", "status", "attributes", "tags", "timezone")
SNIFF_BYTES = 64 * 1024
MAX_FIELD = 1_000_000

# Words in a status column that mean "do not mail": the person keeps that status here.
_STATUS_WORDS = {
    "unsubscribed": "unsubscribed",
    "blocklisted": "unsubscribed",
    "blacklisted": "unsubscribed",
    "cleaned": "bounced",
    "bounced": "bounced",
    "complained": "complained",
}


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Column positions for each field; extra columns become attributes."""

    preset: str
    email: int
    name: int | None = None
    first_name: int | None = None
    last_name: int | None = None
    status: int | None = None
    attributes: int | None = None  # a JSON object column (listmonk)
    tags: int | None = None  # comma-separated tag names (Mailchimp's TAGS)
    timezone: int | None = None  # an IANA zone name (Mailchimp's TIMEZONE)
    # Columns whose non-empty value means "unsubscribed"/"bounced" (Mailchimp's exports).
    status_columns: tuple[tuple[int, str], ...] = ()
    extra: tuple[tuple[int, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Candidate:
    row: int
    email: str
    key: str
    name: str
    status: str | None  # None, or a do-not-mail status carried over from the old tool
    attributes: dict[str, Any]
    tags: list[str] = field(default_factory=list)  # normalised, sorted, each once
    timezone: str | None = None  # a zone the zone database knows


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    value: str
    reason: str


class CountingReader(io.RawIOBase):
    """Wraps a binary file and counts the bytes read, for the progress bar."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def _check_sample(sample: bytes, name: str) -> str:
    """Decode the start of the file, refusing empty, binary and non-UTF-8 files."""
    if not sample.strip(b" \t\r\n\xef\xbb\xbf"):
        raise ImportFileError(f"{name} is empty")
    if b"\x00" in sample:
        raise ImportFileError(f"{name} looks like a binary file, not a CSV text file")
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(sample, final=len(sample) < SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{name} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8 CSV"
        ) from None


def sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: whichever the header line has most of (outside quotes)."""
    line, in_quotes = [], False
    for ch in text:
        if ch == '"':
            in_quotes = not in_quotes
        elif ch in "\r\n" and not in_quotes:
            break
        elif not in_quotes:
            line.append(ch)
    counts = {d: line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(
    raw: BinaryIO, name: str = "file", *, lenient: bool = False
) -> tuple[list[str], CsvRecords, CountingReader]:
    """Open a CSV stream: returns (header, records, byte counter).

    Iterating the records gives (row number, cells); row numbers are spreadsheet rows (the
    header is row 1). Raises ImportFileError, also while iterating: a quote that is never
    closed refuses the file unless ``lenient`` (see CsvRecords).
    """
    counter = CountingReader(raw)
    buffered = io.BufferedReader(counter, buffer_size=1 << 20)
    sample = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    text = _check_sample(sample, name)
    delimiter = sniff_delimiter(text)
    # Bad bytes after the sampled start become lone surrogates, so parse_record can reject
    # exactly the rows that hold them instead of failing the whole file at a decoder chunk.
    stream = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="surrogateescape", newline="")
    csv.field_size_limit(MAX_FIELD)
    records = CsvRecords(stream, name, delimiter, lenient=lenient)
    return records.read_header(), records, counter


# --- quotes that are never closed -------------------------------------------------------------

# Only a record that spans lines is looked at (the per-row cost is comparing line numbers). It
# is a runaway quote when a line inside a field looks like a row with an address, when the
# quote is still open at the end of the file, or when it is far longer than the lines before.
LONG_RECORD_CHARS = 4096
LONG_RECORD_FACTOR = 32
_CATCH_UP = 0xFFF  # every 4,096 rows the lag iterator catches up (a mask of the row number)
_ADDRESS = re.compile(r"[^\s@\"',;<>()\[\]{}]+@[^\s@\"',;<>()\[\]{}]+\.[^\W_][\w-]*")
_END = object()


@dataclass(frozen=True, slots=True)
class _Runaway:
    line: int  # the line of the file the quote opened on
    detail: str  # what gave it away
    raw: list[str]  # the record's lines as read
    first: int  # the line of the file raw[0] is


def _line_breaks(cell: str) -> int:
    """Line breaks in a cell, counted as the text stream splits lines (LF, CRLF, CR)."""
    return cell.count("\n") + cell.count("\r") - cell.count("\r\n")


class CsvRecords:
    """The records of a CSV text stream; a quote that is never closed is found, not swallowed.

    csv.reader reads an open quote on to the next quote character or the end of the file,
    taking every line in between into one field. The lines also go through ``itertools.tee``
    so that the raw lines of a suspect record can be looked at, and read again, without a
    Python call per line; a two-line sentinel after the file closes the last record and shows
    whether a quote was still open. A runaway raises ImportFileError naming the row and the
    line the quote opened on; with ``lenient`` the row goes to ``rejected`` instead and
    reading starts again at the next line.
    """

    def __init__(self, stream: Iterable[str], name: str, delimiter: str, *, lenient: bool) -> None:
        self.name = name
        self.delimiter = delimiter
        self.lenient = lenient
        self.rejected: list[Rejection] = []
        token = secrets.token_hex(8)
        self._end = (f'"{token}\n', f'{token}"\n')
        self._source = itertools.chain(stream, self._end)
        self._chars = self._lines = 0  # lines passed so far and their length, for the mean
        self._open((), 0)

    def _open(self, replay: Iterable[str], base: int) -> None:
        """A fresh csv.reader over ``replay`` then the rest of the file; ``base`` is the line
        of the file just before the reader's first line."""
        lead, self._lag = itertools.tee(itertools.chain(replay, self._source))
        self._reader = csv.reader(lead, delimiter=self.delimiter)
        self._base = base
        self._lag_at = 0  # lines of this reader the lag iterator has passed

    def _skip(self, upto: int) -> None:
        """Let the lag iterator pass (and count) the reader's lines up to ``upto``."""
        n = upto - self._lag_at
        if n > 0:
            self._chars += sum(map(len, itertools.islice(self._lag, n)))
            self._lines += n
            self._lag_at = upto

    def _take(self, start: int, end: int) -> list[str]:
        """The raw lines start..end of the current reader (counted from 1, both included)."""
        self._skip(start - 1)
        lines = list(itertools.islice(self._lag, end - start + 1))
        self._lag_at = end
        return lines

    def read_header(self) -> list[str]:
        """The first non-blank record, stripped. Raises ImportFileError."""
        reader = self._reader
        try:
            last = reader.line_num
            for cells in reader:
                line = reader.line_num
                if line - last != 1:
                    verdict = self._check(cells, last + 1, line)
                    if verdict is _END:
                        break
                    if isinstance(verdict, _Runaway):
                        raise ImportFileError(
                            f"{self.name}: row 1 (line {verdict.line}): a quote opened on this "
                            f"line of the header is not closed ({verdict.detail})"
                        )
                last = line
                if any(c.strip() for c in cells):
                    return [h.strip() for h in cells]
        except csv.Error as exc:
            raise ImportFileError(f"{self.name}: cannot read the header row: {exc}") from None
        raise ImportFileError(f"{self.name} has no header row")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        number, catch_up = 1, _CATCH_UP
        while True:
            reader = self._reader
            last = reader.line_num
            try:
                for cells in reader:
                    number += 1
                    last += 1
                    if reader.line_num != last:
                        verdict = self._check(cells, last, reader.line_num)
                        if verdict is _END:
                            return
                        if isinstance(verdict, _Runaway):
                            self._runaway(number, verdict)
                            break  # lenient: read on with the reader _runaway opened
                        last = reader.line_num
                    if not number & catch_up:
                        self._skip(last)
                    yield number, cells
                else:
                    return
            except csv.Error as exc:
                number += 1
                self._bad_record(number, exc, last + 1, reader.line_num)

    def _check(self, cells: list[str], start: int, end: int) -> _Runaway | object | None:
        """Look at a record on lines start..end of the reader: _END, a _Runaway or None."""
        raw = self._take(start, end)
        if raw[0] is self._end[0]:
            return _END
        first = self._base + start
        mean = self._chars / max(self._lines, 1)
        length = sum(map(len, raw))
        self._chars += length
        self._lines += len(raw)
        opened = [first]  # the line of the file each cell starts on
        for cell in cells[:-1]:
            opened.append(opened[-1] + _line_breaks(cell))
        if raw[-1] is self._end[0]:
            return _Runaway(opened[-1], "still open at the end of the file", raw, first)
        for k, cell in enumerate(cells):
            if "\n" not in cell and "\r" not in cell:
                continue
            for j, text in enumerate(cell.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
                if j and any(_ADDRESS.fullmatch(p.strip()) for p in text.split(self.delimiter)):
                    detail = f"line {opened[k] + j} looks like a row of its own"
                    return _Runaway(opened[k], detail, raw, first)
        if length > max(LONG_RECORD_CHARS, LONG_RECORD_FACTOR * mean):
            k = max(range(len(cells)), key=lambda i: _line_breaks(cells[i]))
            detail = (
                f"the field runs on for {end - start + 1} lines, {length:,} characters, "
                "far longer than the other rows"
            )
            return _Runaway(opened[k], detail, raw, first)
        return None

    def _runaway(self, row: int, verdict: _Runaway) -> None:
        """Refuse the file, or (lenient) reject the row and read again from the next line."""
        if not self.lenient:
            raise ImportFileError(
                f"{self.name}: row {row} (line {verdict.line}): a quote opened on this line is "
                f"not closed ({verdict.detail}); fix the quote, or pass --lenient to reject "
                "that row and read on from the next line"
            )
        offset = min(max(verdict.line - verdict.first, 0), len(verdict.raw) - 1)
        reason = (
            f"a quote opened on line {verdict.line} is not closed ({verdict.detail}); "
            f"read on from line {verdict.line + 1}"
        )
        self.rejected.append(Rejection(row, verdict.raw[offset].rstrip("\r\n")[:200], reason))
        self._open(verdict.raw[offset + 1 :], verdict.first + offset)

    def _bad_record(self, row: int, exc: csv.Error, start: int, end: int) -> None:
        """A record csv.reader gave up on (a field over MAX_FIELD): refuse, or reject it."""
        raw = self._take(start, end)
        first = self._base + start
        if not self.lenient:
            if end <= start:
                raise ImportFileError(f"{self.name}: row {row}: {exc}") from None
            raise ImportFileError(
                f"{self.name}: row {row} (line {first}): {exc}, running on to line "
                f"{self._base + end} (is a closing quote missing?); fix it, or pass --lenient "
                "to reject that row and read on from the next line"
            ) from None
        value = raw[0].rstrip("\r\n")[:200] if raw else ""
        self.rejected.append(Rejection(row, value, f"{exc}; read on from line {first + 1}"))
        self._open(raw[1:], first)


# --- column mapping -------------------------------------------------------------------------

_GENERIC = {
    "email": ("email", "e-mail", "email address", "e-mail address", "emailaddress", "mail"),
    "name": ("name", "full name", "fullname", "display name"),
    "first_name": ("first name", "firstname", "first_name", "fname", "given name"),
    "last_name": ("last name", "lastname", "last_name", "lname", "surname", "family name"),
    "status": ("status",),
    "tags": ("tags", "tag"),
}
_PRESETS: dict[str, dict[str, Any]] = {
    "mailchimp": {
        "fields": {
            "email": "Email Address",
            "first_name": "First Name",
            "last_name": "Last Name",
            "tags": "TAGS",
        },
        "status_columns": {"UNSUB_TIME": "unsubscribed", "CLEAN_TIME": "bounced"},
        "ignore": ("LEID", "EUID", "LAST_CHANGED", "MEMBER_RATING", "GMTOFF", "DSTOFF"),
        "keep_raw": ("tags",),  # TAGS also stays an attribute, as it was before tags
    },
    "substack": {
        "fields": {"email": "email", "name": "name"},
        "status_columns": {"email_disabled": "unsubscribed"},
        "ignore": (),
    },
    "listmonk": {
        "fields": {
            "email": "email",
            "name": "name",
            "attributes": "attributes",
            "status": "status",
        },
        "status_columns": {},
        "ignore": ("uuid", "created_at", "updated_at"),
    },
}


def detect_preset(header: list[str]) -> str:
    """Guess the exporting tool from the header row."""
    names = {h.lower() for h in header}
    if "email address" in names and ("first name" in names or "member_rating" in names):
        return "mailchimp"
    if "email" in names and "attributes" in names:
        return "listmonk"
    if "email" in names and ("active_subscription" in names or "email_disabled" in names):
        return "substack"
    return "generic"


def _find(header: list[str], column: str) -> int | None:
    """Position of a column: exact match first, then case-insensitive."""
    if column in header:
        return header.index(column)
    lowered = [h.lower() for h in header]
    return lowered.index(column.lower()) if column.lower() in lowered else None


def resolve_mapping(
    header: list[str], preset: str = "auto", overrides: Mapping[str, str] | None = None
) -> ColumnMap:
    """Column positions for a preset plus explicit ``field=Column`` overrides.

    Unknown override fields become attribute names. Raises ImportFileError naming the missing
    column and listing the columns the file has.
    """
    if preset not in PRESETS:
        raise ImportFileError(f"unknown preset {preset!r}; one of: {', '.join(PRESETS)}")
    if preset == "auto":
        preset = detect_preset(header)
    columns = ", ".join(repr(h) for h in header) or "(none)"
    spec = _PRESETS.get(preset, {"fields": {}, "status_columns": {}, "ignore": ()})
    positions: dict[str, int] = {}
    for fld, column in spec["fields"].items():
        pos = _find(header, column)
        if pos is not None:
            positions[fld] = pos
    if "tags" not in positions and (pos := _find(header, "tags")) is not None:
        positions["tags"] = pos  # a tags column is read by every preset (our own export too)
    for alias in ("timezone", "time zone", "time_zone", "tz"):  # every preset too
        if "timezone" not in positions and (pos := _find(header, alias)) is not None:
            positions["timezone"] = pos
    if preset == "generic":
        lowered = [h.lower() for h in header]
        for fld, aliases in _GENERIC.items():
            for alias in aliases:
                if alias in lowered:
                    positions[fld] = lowered.index(alias)
                    break
    extra_named: list[tuple[int, str]] = []
    for fld, column in (overrides or {}).items():
        pos = _find(header, column)
        if pos is None:
            raise ImportFileError(
                f"column {column!r} (from --map {fld}={column}) is not in the file; "
                f"columns are: {columns}"
            )
        if fld in FIELDS:
            positions[fld] = pos
        else:
            extra_named.append((pos, fld))
    if "email" not in positions:
        raise ImportFileError(
            f"no email column found (columns are: {columns}); name it with --map email=COLUMN"
        )
    status_columns = tuple(
        (pos, status)
        for column, status in spec["status_columns"].items()
        if (pos := _find(header, column)) is not None
    )
    raw = {positions[f] for f in spec.get("keep_raw", ()) if f in positions}
    used = set(positions.values()) - raw
    used |= {p for p, _ in status_columns} | {p for p, _ in extra_named}
    ignore = {c.lower() for c in spec["ignore"]}
    extra = tuple(
        (i, h) for i, h in enumerate(header) if i not in used and h and h.lower() not in ignore
    )
    return ColumnMap(
        preset=preset,
        status_columns=status_columns,
        extra=tuple(extra_named) + extra,
        **positions,
    )


# --- one row --------------------------------------------------------------------------------


def _cell(cells: list[str], pos: int | None) -> str:
    return cells[pos].strip() if pos is not None and pos < len(cells) else ""


def parse_record(row: int, cells: list[str], m: ColumnMap) -> Candidate | Rejection | None:
    """Validate one CSV record. Returns None for a blank line."""
    try:
        "".join(cells).encode("utf-8")
    except UnicodeEncodeError:
        value = _cell(cells, m.email).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return Rejection(row, value, "not UTF-8 text: save the file as UTF-8")
    raw_email = _cell(cells, m.email)
    if not raw_email:
        if not any(c.strip() for c in cells):
            return None
        return Rejection(row, "", "no email address")
    try:
        address = normalise_email(raw_email)
    except InvalidEmailError as exc:
        return Rejection(row, raw_email, exc.reason)
    name = _cell(cells, m.name)
    if not name and (m.first_name is not None or m.last_name is not None):
        name = f"{_cell(cells, m.first_name)} {_cell(cells, m.last_name)}"
    attributes: dict[str, Any] = {}
    if m.attributes is not None and (raw_attrs := _cell(cells, m.attributes)):
        try:
            attributes = json.loads(raw_attrs)
        except ValueError:
            attributes = None  # type: ignore[assignment]
        if not isinstance(attributes, dict):
            return Rejection(row, raw_email, "the attributes column is not a JSON object")
    tags: list[str] = []
    if m.tags is not None and (raw_tags := _cell(cells, m.tags)):
        try:
            tags = split_cell(raw_tags)
        except InvalidInputError as exc:
            return Rejection(row, raw_email, str(exc))
    for pos, key in m.extra:
        value = _cell(cells, pos)
        if value:
            attributes[key] = clean_name(value) if len(value) < 1000 else value[:1000]
    status = _STATUS_WORDS.get(_cell(cells, m.status).lower())
    for pos, flagged in m.status_columns:
        if status is None and _cell(cells, pos).lower() not in ("", "false", "0", "no"):
            status = flagged
    zone = None
    if m.timezone is not None and (raw_zone := _cell(cells, m.timezone)):
        zone = zone_or_none(raw_zone)
        if zone is None:  # not a zone we know: kept as it was, as an attribute
            attributes["timezone"] = clean_name(raw_zone)[:100]
    return Candidate(
        row, address.email, address.key, clean_name(name), status, attributes, tags, zone
    )
