"""The maildir transport: writes each message as a .eml file instead of sending it.

For local use and demos: point a mail client (or ``python -m email``) at the directory. The
layout is a Maildir (``tmp/``, ``new/``, ``cur/``); each message is written to ``tmp/``,
flushed to disk and renamed into ``new/``, so a reader never sees half a file and a crash
leaves no partial message in ``new/``. The file is the message as it would go on the wire
(CRLF line endings) with ``Return-Path`` and ``Delivered-To`` lines in front, as a local
delivery agent adds them, so the envelope can be checked too. The file name holds the
envelope key: ``<seconds>.K<key>P<pid>Q<n>.<host>.eml``.

The messages hold subscribers' addresses and personal links: the directories it creates are
0700 and every file 0600, whatever the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from .base import (
    Envelope,
    EnvelopeSource,
    Report,
    Result,
    TransportError,
    as_source,
    has_line_break,
    one_line,
    remaining,
)

_counter = itertools.count(1)  # unique within the process, with the pid across processes
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _host_part() -> str:
    """The host name, with the characters Maildir names reserve ("/", ":", ".") replaced."""
    host = socket.gethostname() or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072").replace(".", "_")


class MaildirTransport:
    """Writes envelopes as files into a Maildir at ``path`` (created when first used)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._host = _host_part()
        self._ready = False  # the directories exist

    async def send(
        self, envelopes: Iterable[Envelope] | EnvelopeSource, report: Report | None = None
    ) -> list[Result]:
        """Write each envelope; "sent" once its file is in ``new/``, "deferred" if the write
        failed (disk full...). Raises TransportError if the directories cannot be created.
        The blocking file work runs in a thread; each Result is reported once its file is
        written."""
        source = as_source(envelopes)
        results: list[Result] = []
        while (env := await source.take()) is not None:
            try:
                result = await asyncio.to_thread(self._write_one, env)
            except TransportError as exc:
                untried = [env, *remaining(source)]
                exc.results = results + [
                    Result(e.key, "deferred", None, "", str(exc)) for e in untried
                ]
                raise
            results.append(result)
            if report is not None:
                await report(result)
        return results

    async def aclose(self) -> None:
        """Nothing to release: every file is closed once written."""

    def _write_one(self, env: Envelope) -> Result:
        if not self._ready:
            try:
                for folder in (self.path, *(self.path / s for s in ("tmp", "new", "cur"))):
                    with contextlib.suppress(FileExistsError):  # existing ones keep their mode
                        folder.mkdir(mode=_DIR_MODE, parents=True)
                        folder.chmod(_DIR_MODE)  # whatever the umask took off
            except OSError as exc:
                raise TransportError(
                    one_line(f"cannot create the maildir {self.path}: {exc}")
                ) from exc
            self._ready = True
        return self._write(env)

    def _write(self, env: Envelope) -> Result:
        if has_line_break(env.mail_from, env.rcpt_to):
            return Result(env.key, "failed", None, "", "an envelope address contains a line break")
        name = f"{int(time.time())}.K{env.key}P{os.getpid()}Q{next(_counter)}.{self._host}.eml"
        tmp = self.path / "tmp" / name
        header = f"Return-Path: <{env.mail_from}>\r\nDelivered-To: {env.rcpt_to}\r\n"
        try:
            fd = os.open(tmp, _CREATE, _FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fd, _FILE_MODE)  # whatever the umask took off
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
