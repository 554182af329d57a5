"""Reading subscriber CSV files: pure parsing, no database.

``read_csv(binary_file)`` checks the file is UTF-8 text (BOM or not), sniffs the delimiter
(comma, semicolon or tab) and yields records; ``resolve_mapping`` turns a preset or explicit
``--map`` options into column positions; ``parse_record`` validates one row into a
``Candidate`` or a ``Rejection``. Raises ImportFileError for a file that cannot be imported at
all: binary, empty, not UTF-8, no email column, a ``--map`` column that is not in the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import ImportFileError, InvalidEmailError
from .validate import clean_name, normalise_email

PRESETS = ("auto", "mailchimp", "substack", "listmonk", "generic")
FIELDS = ("email", "name", "first_name", "last_name", "status", "attributes")
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
    raw: BinaryIO, name: str = "file"
) -> tuple[list[str], Iterator[tuple[int, list[str]]], CountingReader]:
    """Open a CSV stream: returns (header, rows as (row number, cells), byte counter).

    Row numbers are spreadsheet rows: the header is row 1. Raises ImportFileError.
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
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
    except csv.Error as exc:
        raise ImportFileError(f"{name}: cannot read the header row: {exc}") from None
    if header is None:
        raise ImportFileError(f"{name} has no header row")
    header = [h.strip() for h in header]

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            for cells in reader:
                number += 1
                yield number, cells
        except csv.Error as exc:
            raise ImportFileError(f"{name}: row {number + 1}: {exc}") from None

    return header, rows(), counter


# --- column mapping -------------------------------------------------------------------------

_GENERIC = {
    "email": ("email", "e-mail", "email address", "e-mail address", "emailaddress", "mail"),
    "name": ("name", "full name", "fullname", "display name"),
    "first_name": ("first name", "firstname", "first_name", "fname", "given name"),
    "last_name": ("last name", "lastname", "last_name", "lname", "surname", "family name"),
    "status": ("status",),
}
_PRESETS: dict[str, dict[str, Any]] = {
    "mailchimp": {
        "fields": {"email": "Email Address", "first_name": "First Name", "last_name": "Last Name"},
        "status_columns": {"UNSUB_TIME": "unsubscribed", "CLEAN_TIME": "bounced"},
        "ignore": ("LEID", "EUID", "LAST_CHANGED", "MEMBER_RATING", "GMTOFF", "DSTOFF"),
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
    used = set(positions.values()) | {p for p, _ in status_columns} | {p for p, _ in extra_named}
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
    for pos, key in m.extra:
        value = _cell(cells, pos)
        if value:
            attributes[key] = clean_name(value) if len(value) < 1000 else value[:1000]
    status = _STATUS_WORDS.get(_cell(cells, m.status).lower())
    for pos, flagged in m.status_columns:
        if status is None and _cell(cells, pos).lower() not in ("", "false", "0", "no"):
            status = flagged
    return Candidate(row, address.email, address.key, clean_name(name), status, attributes)
