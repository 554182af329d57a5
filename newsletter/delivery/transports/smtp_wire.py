"""The SMTP wire format (RFC 5321, 3463, 2920, 6152, 6531, 1870) as pure functions on bytes.

No I/O here: the connection in ``smtp.py`` reads lines and writes what these build, which keeps
the per-message work small and easy to test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .base import one_line

CRLF = b"\r\n"
DATA = b"DATA\r\n"
RSET = b"RSET\r\n"
QUIT = b"QUIT\r\n"
END_OF_DATA = b".\r\n"

_ENHANCED = re.compile(rb"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


class ProtocolFault(Exception):
    """The server sent something that is not an SMTP reply."""


@dataclass(slots=True)
class Reply:
    """A complete (possibly multi-line) SMTP reply: the code and the text of each line."""

    code: int
    lines: list[bytes]

    @property
    def enhanced(self) -> str:
        """The RFC 3463 enhanced status code at the start of the text, or "".

        Only a code of the same class as the reply code counts ("550 4.1.1" has none).
        """
        match = _ENHANCED.match(self.lines[0])
        if match is None or match[1][0] != 48 + self.code // 100:
            return ""
        return match[0].decode("ascii")

    def text(self) -> str:
        """The reply text on one line, without the enhanced code (it has a field of its own)."""
        first = self.lines[0]
        match = _ENHANCED.match(first)
        if match is not None:
            first = first[match.end() :]
        joined = b" ".join([first, *self.lines[1:]])
        return one_line(joined.decode("utf-8", "replace"))

    def describe(self) -> str:
        """Code, enhanced code and text, as a fault message quotes a reply."""
        return one_line(f"{self.code} {b' '.join(self.lines).decode('utf-8', 'replace')}")


def parse_reply_line(line: bytes) -> tuple[int, bool, bytes]:
    """Split one reply line into (code, is_last_line, text). Raises ProtocolFault."""
    code = line[:3]
    sep = line[3:4]
    if not code.isdigit() or sep not in (b" ", b"-", b"\r", b"\n", b""):
        raise ProtocolFault(f"not an SMTP reply: {line[:80]!r}")
    return int(code), sep != b"-", line[4:].rstrip(b"\r\n")


def parse_extensions(ehlo: Reply) -> dict[str, str]:
    """The EHLO keywords (upper case) and their parameters: {"AUTH": "PLAIN LOGIN", ...}."""
    extensions = {}
    for line in ehlo.lines[1:]:
        keyword, _, params = line.decode("ascii", "replace").strip().partition(" ")
        extensions[keyword.upper()] = params.strip()
    return extensions


def mail_command(sender: str, *, size: int | None, eightbit: bool, smtputf8: bool) -> bytes:
    """MAIL FROM with SIZE, BODY=8BITMIME and SMTPUTF8 parameters as asked."""
    cmd = b"MAIL FROM:<" + sender.encode() + b">"
    if size is not None:
        cmd += b" SIZE=%d" % size
    if eightbit:
        cmd += b" BODY=8BITMIME"
    if smtputf8:
        cmd += b" SMTPUTF8"
    return cmd + CRLF


def rcpt_command(recipient: str) -> bytes:
    """RCPT TO for one recipient, UTF-8 encoded (only sent so when SMTPUTF8 is in use)."""
    return b"RCPT TO:<" + recipient.encode() + b">" + CRLF


def dot_stuffed(data: bytes) -> bytes:
    """``data`` ready to send after DATA: lines starting with "." get another one, and the
    terminating CRLF.CRLF is added (after a final CRLF if the data has none)."""
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    if data[:1] == b".":
        data = b"." + data
    return data + (END_OF_DATA if data[-2:] == CRLF else CRLF + END_OF_DATA)
