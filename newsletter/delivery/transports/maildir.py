"""The maildir transport: writes each message as a .eml file instead of sending it.

For local use and demos: point a mail client (or ``python -m email``) at the directory. The
layout is a Maildir (``tmp/``, ``new/``, ``cur/``); each message is written to ``tmp/``,
flushed to disk and renamed into ``new/``, so a reader never sees half a file and a crash
leaves no partial message in ``new/``. The file is the message as it would go on the wire
(CRLF line endings) with ``Return-Path`` and ``Delivered-To`` lines in front, as a local
delivery agent adds them, so the envelope can be checked too. The file name holds the
envelope key: ``<seconds>.K<key>P<pid>Q<n>.<host>.eml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from .base import Envelope, Result, TransportError, has_line_break, one_line

_counter = itertools.count(1)  # unique within the process, with the pid across processes


def _host_part() -> str:
    """The host name, with the characters Maildir names reserve ("/", ":", ".") replaced."""
    host = socket.gethostname() or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072").replace(".", "_")


class MaildirTransport:
    """Writes envelopes as files into a Maildir at ``path`` (created when first used)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._host = _host_part()

    async def send(self, envelopes: Sequence[Envelope]) -> list[Result]:
        """Write each envelope; "sent" once its file is in ``new/``, "deferred" if the write
        failed (disk full...). Raises TransportError if the directories cannot be created.
        The blocking file work runs in a thread."""
        return await asyncio.to_thread(self._write_all, envelopes)

    async def aclose(self) -> None:
        """Nothing to release: every file is closed once written."""

    def _write_all(self, envelopes: Sequence[Envelope]) -> list[Result]:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            text = one_line(f"cannot create the maildir {self.path}: {exc}")
            results = [Result(e.key, "deferred", None, "", text) for e in envelopes]
            raise TransportError(text, results) from exc
        return [self._write(env) for env in envelopes]

    def _write(self, env: Envelope) -> Result:
        if has_line_break(env.mail_from, env.rcpt_to):
            return Result(env.key, "failed", None, "", "an envelope address contains a line break")
        name = f"{int(time.time())}.K{env.key}P{os.getpid()}Q{next(_counter)}.{self._host}.eml"
        tmp = self.path / "tmp" / name
        header = f"Return-Path: <{env.mail_from}>\r\nDelivered-To: {env.rcpt_to}\r\n"
        try:
            with open(tmp, "xb") as fh:
                fh.write(header.encode())
                fh.write(env.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, self.path / "new" / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return Result(env.key, "deferred", None, "", one_line(f"cannot write {tmp}: {exc}"))
        return Result(env.key, "sent", None, "", one_line(f"written to {self.path / 'new' / name}"))
