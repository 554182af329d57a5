"""Where bounce messages come from: a Maildir, an mbox file or an IMAP mailbox.

    Source.messages() -> Item...   the messages not handled yet, as raw bytes
    Source.done(item)              a report was recorded: never read it again
    Source.skip(item)              not a bounce: leave it for a human
    Source.close()

``open_source(spec, ...)`` picks one from a path or an ``imap(s)://`` URL. How each keeps
"never processed twice" (the database keeps it too: a report whose Message-ID was recorded
before is not counted again, so a crash between the database and the mailbox is harmless):

- Maildir: handled messages are moved (one atomic rename) into the ``.Processed`` Maildir++
  subfolder, flagged seen; messages in ``new/`` and ``cur/`` are read. Not-bounces stay
  where they are, untouched, and are looked at again on each run.
- mbox: the file is only read (under the mbox lock when it can be taken), never rewritten,
  since the mail system appends to it; the database remembers what was recorded. Rotate or
  empty the file yourself now and then.
- IMAP: handled messages get ``\\Seen`` and the keyword ``$NewsletterProcessed``;
  not-bounces get ``$NewsletterIgnored`` only (they stay unread for a human). Only messages
  with neither keyword are fetched, with BODY.PEEK (reading sets no flag). A server that
  does not allow keywords (no ``\\*`` in PERMANENTFLAGS): handled messages get ``\\Seen``,
  and only unseen messages are fetched. ``imaps://`` is implicit TLS; ``imap://`` upgrades
  with STARTTLS, and logs in without it only on the loopback interface. Certificates are
  verified against the system's trust store (``SSL_CERT_FILE`` is honoured).

Every problem with the source itself (missing path, refused login, lost connection, bad
certificate) is a BounceSourceError with one line.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import mailbox
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ..config import BounceSettings
from ..errors import BounceSourceError

log = logging.getLogger("newsletter.bounces")

PROCESSED_FOLDER = "Processed"
KEYWORD_DONE = "$NewsletterProcessed"
KEYWORD_IGNORED = "$NewsletterIgnored"
IMAP_TIMEOUT = 30.0
FETCH_CHUNK = 25
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class Item:
    """One message of a source: ``key`` is the source's own name for it."""

    key: str
    raw: bytes


class Source(Protocol):
    """A mailbox of bounce messages (see the module docstring)."""

    name: str

    def messages(self) -> Iterator[Item]:
        """The messages not yet handled. Raises BounceSourceError."""
        ...

    def done(self, item: Item) -> None:
        """Mark ``item`` handled so it is never read again. Raises BounceSourceError."""
        ...

    def skip(self, item: Item) -> None:
        """``item`` is not a bounce: leave it for a human (and, where the source can, do not
        read it again). Raises BounceSourceError."""
        ...

    def close(self) -> None:
        """Write pending marks and let go of the mailbox. Raises BounceSourceError."""
        ...


def open_source(spec: str, settings: BounceSettings, *, base_dir: Path | str = ".") -> Source:
    """The source ``spec`` names: an ``imap://`` or ``imaps://`` URL, a Maildir folder (one
    with cur/ and new/) or an mbox file. Relative paths are taken from ``base_dir``.

    Raises BounceSourceError when it cannot be opened (IMAP: connected and logged in here).
    """
    spec = spec.strip()
    if not spec:
        raise BounceSourceError("no bounce source given")
    if re.match(r"(?i)imaps?://", spec):
        return ImapSource.connect(spec, password=settings.imap_password,
                                  password_env=settings.imap_password_env)  # fmt: skip
    path = Path(base_dir) / Path(spec).expanduser()
    if path.is_dir():
        return MaildirSource(path)
    if path.is_file():
        return MboxSource(path)
    raise BounceSourceError(f"bounce source {str(path)!r} does not exist")


# --- Maildir --------------------------------------------------------------------------------


class MaildirSource:
    """A Maildir: reads new/ and cur/, moves handled messages into .Processed/cur/."""

    def __init__(self, path: Path) -> None:
        if not ((path / "new").is_dir() and (path / "cur").is_dir()):
            raise BounceSourceError(f"{path} is a folder but not a Maildir (no cur/ and new/)")
        self.path = path
        self.name = f"maildir:{path}"
        self._processed: Path | None = None

    def messages(self) -> Iterator[Item]:
        for sub in ("new", "cur"):
            try:
                names = sorted(e.name for e in os.scandir(self.path / sub) if e.is_file())
            except OSError as exc:
                raise BounceSourceError(f"cannot read {self.path / sub}: {exc}") from exc
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    raw = (self.path / sub / name).read_bytes()
                except FileNotFoundError:  # moved away by someone else meanwhile
                    continue
                except OSError as exc:
                    raise BounceSourceError(f"cannot read {self.path / sub / name}: {exc}") from exc
                yield Item(f"{sub}/{name}", raw)

    def _folder(self) -> Path:
        if self._processed is None:
            try:
                mailbox.Maildir(self.path, create=False).add_folder(PROCESSED_FOLDER)
            except OSError as exc:
                raise BounceSourceError(f"cannot make the Processed folder: {exc}") from exc
            self._processed = self.path / f".{PROCESSED_FOLDER}"
        return self._processed

    def done(self, item: Item) -> None:
        sub, _, name = item.key.partition("/")
        base, _, info = name.partition(":")
        flags = set(info[2:]) if info.startswith("2,") else set()
        target = self._folder() / "cur" / f"{base}:2,{''.join(sorted(flags | {'S'}))}"
        try:
            os.rename(self.path / sub / name, target)
        except FileNotFoundError:
            pass  # already moved
        except OSError as exc:
            raise BounceSourceError(f"cannot move {name} to {target.parent}: {exc}") from exc

    def skip(self, item: Item) -> None:
        return None

    def close(self) -> None:
        return None


# --- mbox -----------------------------------------------------------------------------------


class MboxSource:
    """An mbox file, only read; what was recorded is remembered by the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"mbox:{path}"
        try:
            self._box = mailbox.mbox(path, create=False)
        except (OSError, mailbox.Error) as exc:
            raise BounceSourceError(f"cannot open mbox {path}: {exc}") from exc
        self._locked = False
        try:
            self._box.lock()
            self._locked = True
        except mailbox.ExternalClashError as exc:
            raise BounceSourceError(f"mbox {path} is locked by another program; try later") from exc
        except OSError as exc:  # no right to make the dot-lock: read without it
            log.warning("bounces.mbox_unlocked path=%s error=%s", path, exc)

    def messages(self) -> Iterator[Item]:
        try:
            for key in self._box.iterkeys():
                yield Item(str(key), self._box.get_bytes(key))
        except (OSError, mailbox.Error) as exc:
            raise BounceSourceError(f"cannot read mbox {self.path}: {exc}") from exc

    def done(self, item: Item) -> None:
        return None

    def skip(self, item: Item) -> None:
        return None

    def close(self) -> None:
        try:
            if self._locked:
                self._box.unlock()
            self._box.close()
        except OSError as exc:
            raise BounceSourceError(f"cannot close mbox {self.path}: {exc}") from exc


# --- IMAP -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """``imap[s]://user@host[:port]/MAILBOX`` taken apart (the user may contain "@")."""

    tls: bool
    user: str
    host: str
    port: int
    mailbox: str

    @classmethod
    def parse(cls, url: str) -> ImapUrl:
        """Raises BounceSourceError for a URL without user or host, or with a password."""
        parts = urlsplit(url)
        tls = parts.scheme.lower() == "imaps"
        try:
            port = parts.port or (993 if tls else 143)
        except ValueError as exc:
            raise BounceSourceError(f"bad port in {url!r}") from exc
        if parts.password is not None:
            raise BounceSourceError(
                "put no password in the IMAP URL: it is read from the environment variable "
                "named by bounces.imap_password_env"
            )
        user, host = unquote(parts.username or ""), parts.hostname or ""
        if not user or not host:
            raise BounceSourceError(f"the IMAP URL {url!r} needs a user and a host: "
                                    "imaps://user@host/INBOX")  # fmt: skip
        box = unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(tls, user, host, port, box)

    def __str__(self) -> str:
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.mailbox}"


def _quote(mailbox_name: str) -> str:
    escaped = mailbox_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class ImapSource:
    """An IMAP mailbox; see the module docstring for the flags it sets."""

    def __init__(self, url: ImapUrl, conn: imaplib.IMAP4, *, keywords: bool) -> None:
        self.url = url
        self.name = str(url)
        self._conn = conn
        self._keywords = keywords
        self._done: list[str] = []
        self._skipped: list[str] = []

    @classmethod
    def connect(cls, url: str, *, password: str, password_env: str) -> ImapSource:
        """Connect, log in and select the mailbox. Raises BounceSourceError."""
        target = ImapUrl.parse(url)
        if not password:
            raise BounceSourceError(
                f"no IMAP password: set the environment variable {password_env or '(unset)'}"
                " (named by bounces.imap_password_env)"
            )
        context = ssl.create_default_context()
        conn: imaplib.IMAP4 | None = None
        try:
            if target.tls:
                conn = imaplib.IMAP4_SSL(
                    target.host, target.port, ssl_context=context, timeout=IMAP_TIMEOUT
                )
            else:
                conn = imaplib.IMAP4(target.host, target.port, timeout=IMAP_TIMEOUT)
                if "STARTTLS" in conn.capabilities:
                    conn.starttls(ssl_context=context)
                elif target.host not in LOOPBACK:
                    raise imaplib.IMAP4.error(
                        "the server offers no STARTTLS and the password would cross the "
                        "network in clear; use imaps://"
                    )
            conn.login(target.user, password)
            typ, data = conn.select(_quote(target.mailbox))
            if typ != "OK":
                raise imaplib.IMAP4.error(_text(data) or f"cannot select {target.mailbox}")
            flags = b" ".join(x for x in conn.response("PERMANENTFLAGS")[1] if x)
        except (imaplib.IMAP4.error, OSError) as exc:
            if conn is not None:
                _logout(conn)
            raise BounceSourceError(f"IMAP {target}: {_describe(exc)}") from exc
        return cls(target, conn, keywords=b"\\*" in flags)

    def _call(self, *args: str) -> list:
        try:
            typ, data = self._conn.uid(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise BounceSourceError(f"IMAP {self.url}: {_describe(exc)}") from exc
        if typ != "OK":
            raise BounceSourceError(f"IMAP {self.url}: {args[0]} failed: {_text(data)}")
        return data

    def messages(self) -> Iterator[Item]:
        if self._keywords:
            query = ("UNDELETED", "UNKEYWORD", KEYWORD_DONE, "UNKEYWORD", KEYWORD_IGNORED)
        else:
            query = ("UNDELETED", "UNSEEN")
        data = self._call("SEARCH", *query)
        uids = b" ".join(d for d in data if d).decode().split()
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            data = self._call("FETCH", ",".join(chunk), "(UID BODY.PEEK[])")
            for uid, raw in _fetched(data):
                yield Item(uid, raw)
            self._flush()

    def done(self, item: Item) -> None:
        self._done.append(item.key)

    def skip(self, item: Item) -> None:
        if self._keywords:
            self._skipped.append(item.key)

    def _flush(self) -> None:
        flags = f"(\\Seen {KEYWORD_DONE})" if self._keywords else "(\\Seen)"
        for uids, how in ((self._done, flags), (self._skipped, f"({KEYWORD_IGNORED})")):
            if uids:
                self._call("STORE", ",".join(uids), "+FLAGS.SILENT", how)
                uids.clear()

    def close(self) -> None:
        try:
            self._flush()
        finally:
            _logout(self._conn)


def _fetched(data: list) -> Iterator[tuple[str, bytes]]:
    """(uid, message) pairs from a UID FETCH response, whichever side of the literal the
    server put the UID on."""
    pending: bytes | None = None
    for entry in data:
        if isinstance(entry, tuple) and len(entry) == 2:
            head, raw = entry
            m = re.search(rb"UID (\d+)", head)
            if m:
                yield m.group(1).decode(), raw
                pending = None
            else:
                pending = raw
        elif isinstance(entry, bytes) and pending is not None:
            m = re.search(rb"UID (\d+)", entry)
            if m:
                yield m.group(1).decode(), pending
            pending = None


def _logout(conn: imaplib.IMAP4) -> None:
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        conn.logout()


def _text(data: list) -> str:
    return " ".join(d.decode("utf-8", "replace") for d in data if isinstance(d, bytes))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, imaplib.IMAP4.error):
        text = text.strip("b'\"")
    return " ".join(text.split())
