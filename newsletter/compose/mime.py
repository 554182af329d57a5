"""Small, fast MIME pieces: header lines, RFC 2047 encoded-words, quoted-printable, IDN.

Headers are written here, not by ``email.policy``: the standard library costs ~150 µs for
one non-ASCII To header, and Python before 3.11.10 decodes an encoded-word found in a
display name (``=?utf-8?q?=0D=0ABcc...?=``) and writes the CR LF it hides back out, which
is a header injection. Every text that reaches a header here has been through
``clean_line`` (no control characters), and any text that contains ``=?`` is itself
encoded. Tests read every header back with the standard library's parser.
"""

from __future__ import annotations

import binascii
import re
from functools import lru_cache

import idna

from ..content.text import clean_line
from ..errors import InvalidEmailError

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"  # quoted-printable soft line break: decodes to nothing
MAX_NAME_LENGTH = 100  # characters of a display name we keep; bounds the To line length
MAX_HEADER_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters...
MAX_LINE = 998  # ...and MUST be at most 998

# Characters that would make an address unusable or let it break out of a header.
_BAD_ADDRESS = re.compile(r'[\s<>()\[\],;:"\\\x00-\x1f\x7f]')
# An ASCII display name made only of these can go into a header unquoted (atext + space).
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_ENCODED_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars -> a 72-char "=?utf-8?b?...?="


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


def _encoded_words(text: str) -> bytes:
    """RFC 2047 base64 encoded-words for ``text``, folded onto continuation lines.

    Spaces stay inside the words: whitespace between two encoded-words is not part of the
    text (RFC 2047, 6.2). Python's own address parser keeps that whitespace, so it reads a
    name of more than one word (over ~45 bytes of UTF-8) with an extra space; mail clients
    do not.
    """
    words: list[bytes] = []
    chunk = bytearray()
    for char in text:
        raw = char.encode("utf-8")
        if len(chunk) + len(raw) > _ENCODED_WORD_BYTES:
            words.append(b"=?utf-8?b?" + binascii.b2a_base64(chunk, newline=False) + b"?=")
            chunk.clear()
        chunk += raw
    words.append(b"=?utf-8?b?" + binascii.b2a_base64(chunk, newline=False) + b"?=")
    return b"\r\n ".join(words)


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(name: str) -> bytes:
    """A display name as an RFC 5322 phrase: an atom phrase, a quoted string, or RFC 2047
    encoded-words (non-ASCII names, and names that look like encoded-words: ``=?``)."""
    if _needs_encoding(name):
        return _encoded_words(name)
    if _ATOM_PHRASE.fullmatch(name):
        return name.encode("ascii")
    return _quoted(name).encode("ascii")


def address_header(header: str, name: str, local: str, domain: str) -> bytes:
    """A complete address header line (CRLF included), e.g. ``To: Ada <ada@example.org>``,
    for a ``clean_name``/``clean_line`` display name and a domain already in A-label form.

    A non-ASCII local part can only travel with SMTPUTF8, so that line is raw UTF-8
    (RFC 6532) with the name as a quoted string.
    """
    addr = f"{local}@{domain}".encode()
    if not name:
        return f"{header}: ".encode() + addr + CRLF
    phrase = _phrase(name) if local.isascii() else _quoted(name).encode()
    return f"{header}: ".encode() + phrase + b" <" + addr + b">" + CRLF


def list_id_header(name: str, list_id: str) -> bytes:
    """``List-Id: Name <list-id>`` (RFC 2919) for a ``clean_line`` name and an ASCII id."""
    phrase = _phrase(name) + b" " if name else b""
    return b"List-Id: " + phrase + f"<{list_id}>".encode("ascii") + CRLF


def text_header(header: str, text: str) -> bytes:
    """A complete unstructured header line (CRLF included) for one line of ``text``
    (already through ``clean_line``).

    ASCII text is folded at spaces before 78 columns; other text (or text containing
    ``=?``, or a word too long for one line) becomes RFC 2047 encoded-words.
    """
    words = text.split(" ")
    if _needs_encoding(text) or max(map(len, words)) > MAX_LINE - 100:
        return f"{header}: ".encode() + _encoded_words(text) + CRLF
    lines, line = [], f"{header}:"
    for word in words:
        if len(line) + 1 + len(word) > MAX_HEADER_LINE and line != f"{header}:":
            lines.append(line)
            line = ""
        line += " " + word
    return "\r\n".join([*lines, line]).encode("ascii") + CRLF
