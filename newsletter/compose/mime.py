"""Small, fast MIME pieces: header lines, RFC 2047 encoded-words, quoted-printable, IDN.

Headers are written here, not by ``email.policy``: the standard library costs ~150 µs for
one non-ASCII To header, and Python before 3.11.10 decodes an encoded-word found in a
display name (``=?utf-8?q?=0D=0ABcc...?=``) and writes the CR LF it hides back out, which
is a header injection. Every text that reaches a header here has been through
``clean_line`` (no control characters), and any text that contains ``=?`` is itself
encoded. Every header is folded at spaces to lines of at most 78 characters (RFC 5322), its
encoded-words at most 75 (RFC 2047); only a token that cannot be folded (an address, a URL)
makes a longer line. Tests read every header back with the standard library's parser.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from functools import lru_cache

import idna

from ..content.text import clean_line
from ..errors import InvalidEmailError

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"  # quoted-printable soft line break: decodes to nothing
MAX_NAME_LENGTH = 200  # characters of a display name we keep: as many as the store keeps
MAX_HEADER_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters...
MAX_LINE = 998  # ...and MUST be at most 998
MAX_ENCODED_WORD = 75  # RFC 2047 2: an encoded-word is at most 75 characters long

# Characters that would make an address unusable or let it break out of a header.
_BAD_ADDRESS = re.compile(r'[\s<>()\[\],;:"\\\x00-\x1f\x7f]')
# An ASCII display name made only of these can go into a header unquoted (atext + space).
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
# Words (between single spaces) that go into a header as they are, on a line of their own if
# need be: atoms in a phrase, any printable ASCII in unstructured text; never with "=?".
_PLAIN_ATOM = re.compile(r"(?:^|(?<= ))(?![^ ]*=\?)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,77}(?= |$)")
_PLAIN_TEXT_WORD = re.compile(r"(?:^|(?<= ))(?![^ ]*=\?)[!-~]{1,77}(?= |$)")
_EW_OVERHEAD = len("=?utf-8?b??=")
_ENCODED_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars -> a 72-char "=?utf-8?b?...?="
_EW_MIN_BYTES = 12  # a line with room for fewer bytes than this gets no encoded-word


def clean_name(name: str) -> str:
    """A subscriber's name fit for a header and a greeting: one line, no control or
    invisible format characters (``clean_line``), at most MAX_NAME_LENGTH characters."""
    return clean_line(name)[:MAX_NAME_LENGTH].rstrip()


@lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """The IDNA A-label form (``xn--...``) of a domain; ASCII domains are lower-cased.

    Raises InvalidEmailError if the domain is not a valid internationalised domain name.
    """
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidEmailError(domain, f"not a valid domain name ({exc})") from exc


def split_address(address: str) -> tuple[str, str]:
    """``(local part, A-label domain)`` of an address.

    Raises InvalidEmailError if the address has no ``@``, an empty side, or a character
    (space, CR, LF, angle bracket...) that could break out of a header or an SMTP command.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmailError(address, "it needs a local part, an @ and a domain")
    if _BAD_ADDRESS.search(address):
        raise InvalidEmailError(address, "it contains a space, a control or a special character")
    return local, ascii_domain(domain)


def encode_value(value: str) -> bytes:
    """Quoted-printable of a UTF-8 ``value`` that starts at column 0, ending in a soft
    line break so whatever follows also starts at column 0. Empty in, empty out."""
    if not value:
        return b""
    encoded = binascii.b2a_qp(value.encode("utf-8"))
    if b"\n" in encoded:  # b2a_qp breaks long values with bare LF soft breaks
        encoded = encoded.replace(b"\n", CRLF)
    return encoded + SOFT_BREAK


def encode_body(text: str) -> bytes:
    """Quoted-printable (RFC 2045) of ``text`` as UTF-8: CRLF line ends, lines <= 76."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data).replace(b"\n", CRLF)


class _Folder:
    """One header field being written: tokens one space apart, a line folded (CRLF and a
    space) before a token that would take it past MAX_HEADER_LINE. Lengths are octets, so
    a raw UTF-8 (RFC 6532) token counts what it weighs on the wire."""

    __slots__ = ("_line", "_lines")

    def __init__(self, header: str) -> None:
        self._lines: list[bytes] = []
        self._line = header.encode("ascii") + b":"

    def add(self, token: bytes) -> None:
        """``token`` after a space, on a new line if it does not fit on this one (a token
        too long for any line, such as a long address, gets a line of its own)."""
        if len(self._line) + 1 + len(token) > MAX_HEADER_LINE and self._line:
            self._lines.append(self._line)
            self._line = b""
        self._line += b" " + token

    def add_all(self, tokens: list[bytes]) -> None:
        """``add`` each of ``tokens`` (one loop: long names take this path per recipient)."""
        line, lines = self._line, self._lines
        for token in tokens:
            if len(line) + 1 + len(token) > MAX_HEADER_LINE and line:
                lines.append(line)
                line = b""
            line += b" " + token
        self._line = line

    def add_encoded(self, text: str) -> None:
        """``text`` as base64 encoded-words of whole characters, each at most
        MAX_ENCODED_WORD long, the first filling what is left of the line.

        A break falls after a space where one is near: mail clients drop the whitespace
        between two encoded-words (RFC 2047, 6.2), so the space travels inside the word.
        Python's address parser (3.11 included, CPython gh-128110) keeps that whitespace in
        a display name; a break at a space makes its reading a double space, not a split word.
        """
        data = text.encode("utf-8")
        end = len(data)
        free = min(MAX_HEADER_LINE - len(self._line) - 1, MAX_ENCODED_WORD) - _EW_OVERHEAD
        room = max(free, 0) // 4 * 3
        if self._line and (room < min(end, _EW_MIN_BYTES) or room < end <= _ENCODED_WORD_BYTES):
            self._lines.append(self._line)  # too little room left: start on a new line
            self._line = b""
            room = _ENCODED_WORD_BYTES
        start = 0
        while start < end:
            cut = start + room
            if cut >= end:
                cut = end
            else:
                while data[cut] & 0xC0 == 0x80:  # not inside a character
                    cut -= 1
                space = data.rfind(b" ", start, cut)
                if space - start >= (cut - start) // 2:
                    cut = space + 1
            if start:  # every word after the first has a line of its own
                self._lines.append(self._line)
                self._line = b""
            word = binascii.b2a_base64(data[start:cut], newline=False)
            self._line += b" =?utf-8?b?" + word + b"?="
            start = cut
            room = _ENCODED_WORD_BYTES

    def header(self) -> bytes:
        """The complete header, CRLF included."""
        return b"\r\n".join([*self._lines, self._line]) + CRLF


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _add_words(folder: _Folder, text: str, plain: re.Pattern[str], first_room: int) -> None:
    """``text`` word by word: the words ``plain`` matches as they are (but a first word
    longer than ``first_room``), the runs of other words between them as encoded-words."""
    pos = 0
    for match in plain.finditer(text):
        if match.start() == 0 and match.end() > first_room:
            continue  # too long for the first line: part of the next run
        if match.start() > pos:
            folder.add_encoded(text[pos : match.start() - 1])  # without the space between
        folder.add(match.group().encode("ascii"))
        pos = match.end() + 1
    if pos < len(text):
        folder.add_encoded(text[pos:])


def _add_phrase(folder: _Folder, name: str, *, raw_utf8: bool = False) -> None:
    """A display name as an RFC 5322 phrase, folded at its spaces.

    An ASCII name is an atom phrase or a quoted string (the CRLF of a fold inside a quoted
    string is not part of it, RFC 5322 3.2.4). ``raw_utf8`` (an RFC 6532 message) quotes a
    non-ASCII name as it is. Otherwise, and for a name containing ``=?`` or a run of more
    than a line without a space, ASCII atoms stay as they are and the runs of other words
    between them become encoded-words: the space between an atom and an encoded-word is
    part of the name, in every reader.
    """
    if "=?" not in name and (raw_utf8 or name.isascii()):
        phrase = name if not raw_utf8 and _ATOM_PHRASE.fullmatch(name) else _quoted(name)
        tokens = [t.encode("utf-8") for t in phrase.split(" ")]
        if max(map(len, tokens)) < MAX_HEADER_LINE:
            folder.add_all(tokens)
            return
    _add_words(folder, name, _PLAIN_ATOM, MAX_HEADER_LINE)


def _short_phrase(name: str) -> str | None:
    """The one-token phrase of a short ``name`` (atoms, a quoted string or one
    encoded-word), or None when it takes the folding path."""
    if "=?" in name:
        return None
    if name.isascii():
        return name if _ATOM_PHRASE.fullmatch(name) else _quoted(name)
    data = name.encode("utf-8")
    if len(data) > _ENCODED_WORD_BYTES:
        return None
    return "=?utf-8?b?" + binascii.b2a_base64(data, newline=False).decode("ascii") + "?="


def address_header(header: str, name: str, local: str, domain: str) -> bytes:
    """A complete address header (CRLF included), e.g. ``To: Ada <ada@example.org>``, for a
    ``clean_name``/``clean_line`` display name and a domain already in A-label form, folded
    at MAX_HEADER_LINE (an addr-spec is never folded).

    A non-ASCII local part can only travel with SMTPUTF8, so that line is raw UTF-8
    (RFC 6532) with the name as a quoted string.
    """
    addr = f"{local}@{domain}"
    if not name:
        return f"{header}: {addr}".encode() + CRLF
    if local.isascii():
        phrase = _short_phrase(name)  # the common case: one short line
        if phrase is not None and len(header) + len(phrase) + len(addr) + 5 <= MAX_HEADER_LINE:
            return f"{header}: {phrase} <{addr}>".encode("ascii") + CRLF
    folder = _Folder(header)
    _add_phrase(folder, name, raw_utf8=not local.isascii())
    folder.add(f"<{addr}>".encode())
    return folder.header()


def list_id_header(name: str, list_id: str) -> bytes:
    """``List-Id: Name <list-id>`` (RFC 2919) for a ``clean_line`` name and an ASCII id."""
    folder = _Folder("List-Id")
    if name:
        _add_phrase(folder, name)
    folder.add(f"<{list_id}>".encode("ascii"))
    return folder.header()


def items_header(header: str, items: Sequence[str]) -> bytes:
    """A complete header (CRLF included) of items that cannot be folded inside, such as a
    msg-id or ``<URI>,`` (RFC 2369: no whitespace inside the angle brackets), one space
    apart: a line is folded between two items, or after the colon, where the next item
    would take it past MAX_HEADER_LINE (an item too long for any line gets one of its own)."""
    if len(items) == 1 and len(header) + len(items[0]) + 2 <= MAX_HEADER_LINE:
        return f"{header}: {items[0]}".encode() + CRLF  # a Message-ID, as a rule
    line = f"{header}:"
    lines = []
    for item in items:
        if len(line) + 1 + len(item) > MAX_HEADER_LINE and line:
            lines.append(line)
            line = ""
        line += " " + item
    lines.append(line)
    return "\r\n".join(lines).encode("utf-8") + CRLF


def text_header(header: str, text: str) -> bytes:
    """A complete unstructured header (CRLF included) for one line of ``text`` (already
    through ``clean_line``), folded at its spaces before MAX_HEADER_LINE.

    ASCII words stay as they are; runs of other words (non-ASCII, containing ``=?``, or too
    long for a line, the first word included: a fold right after the colon would leave a
    leading space in what Python's parser reads) become RFC 2047 encoded-words.
    """
    if not _needs_encoding(text) and len(header) + len(text) + 2 <= MAX_HEADER_LINE:
        return f"{header}: {text}".encode("ascii") + CRLF
    folder = _Folder(header)
    _add_words(folder, text, _PLAIN_TEXT_WORD, MAX_HEADER_LINE - len(header) - 2)
    return folder.header()
