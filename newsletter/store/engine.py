"""Engine and session factory for SQLite (embedded default) and PostgreSQL.

A database URL may hold a password: every message that shows a URL, or a driver's error
text, shows it through ``mask_password``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from ..errors import StoreError

if TYPE_CHECKING:  # the ORM is imported by the commands that use sessions, not by all
    from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
PRIVATE_FILE_MODE = 0o600
"""Mode of the files holding subscriber data that we create (database, config, messages)."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# In a message: "scheme://user:secret@host", the secret running to the last "@" of the word.
_URL_SECRET = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)\S*@")
# libpq keywords ("password=secret" in a conninfo string or a URL query).
_OPTION_SECRET = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s&'\"]+)", re.IGNORECASE)


def mask_password(text: str) -> str:
    """``text`` (a database URL, or a message that may quote one) with every password shown
    as ``***``: ``postgresql://user:***@host/db``, ``password=***``. Used wherever a URL or a
    driver's error reaches a person or a log.

    A whole URL is masked up to its last "@" (a password may hold "@" or a space); in other
    text, up to the last "@" before a space."""
    scheme = _SCHEME.match(text)
    if scheme and text.startswith("sqlite"):  # a file path: no user part
        return text
    if scheme:
        userinfo, at, rest = text[scheme.end() :].rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            text = f"{text[: scheme.end()]}{user}:***@{rest}"
    else:
        text = _URL_SECRET.sub(r"\1***@", text)
    return _OPTION_SECRET.sub(r"\1***", text)


def db_error_line(exc: BaseException) -> str:
    """One line for a database driver's error (SQLAlchemy's wrapper stripped), masked."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return mask_password(lines[0] if lines else type(orig).__name__)


def _normalise_url(url: str) -> str:
    # "postgresql://" and "postgres://" mean psycopg 3 here, the only driver we ship.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connect(url: str) -> Engine:
    """Create an engine. SQLite gets WAL, foreign keys and a busy timeout on every connection.

    Nothing is opened yet (a missing SQLite file is created on first use: see
    ``open_database``). Raises StoreError for a URL that cannot work: unparsable, a port
    outside 1-65535, another database, a missing driver; the message masks the password."""
    shown = mask_password(url)
    try:
        parsed = make_url(_normalise_url(url))
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise StoreError(f"bad database URL {shown}: port {parsed.port} is not 1-65535")
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; let
            # SQLAlchemy emit BEGIN itself (documented recipe for the pysqlite driver).
            # engine.execution_options(sqlite_begin="IMMEDIATE") takes the write lock at
            # BEGIN, for short read-then-write transactions such as claiming deliveries.
            event.listen(engine, "begin", _sqlite_begin)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise StoreError(f"unsupported database URL {shown}: use sqlite:/// or postgresql://")
    except ValueError as exc:  # make_url reads the port with int()
        raise StoreError(f"bad database URL {shown}: the port is not a number") from exc
    except (ArgumentError, NoSuchModuleError) as exc:
        raise StoreError(f"bad database URL {shown}: {mask_password(str(exc))}") from exc
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"database driver missing for {shown}: pip install 'newsletter[postgres]'"
        ) from exc
    return engine


def open_database(url: str, *, create: bool = False) -> Engine:
    """An engine on a database that exists and answers, for the commands and services:
    ``connect`` plus one connection opened now, so a wrong URL, a server that cannot be
    reached or a file that is not a database is one StoreError here, not a traceback later.

    A missing SQLite file is StoreError ("run `newsletter init`") unless ``create`` (init and
    db upgrade), which creates it readable by its owner only (the ``-wal`` and ``-shm``
    files SQLite adds take the same mode), so a read command never leaves an empty
    database behind."""
    engine = connect(url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        if not create:
            engine.dispose()
            raise StoreError(
                f"database {path} does not exist: run `newsletter init` (or "
                "`newsletter db upgrade`), or check database.url"
            )
        _create_private_file(path)
    try:
        with engine.connect():
            pass
    except (DBAPIError, ValueError) as exc:
        engine.dispose()
        where = path if path is not None else mask_password(url)
        raise StoreError(f"cannot open the database {where}: {db_error_line(exc)}") from exc
    return engine


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for PostgreSQL, memory and URI databases and
    for a URL that cannot be parsed (``connect`` reports that one)."""
    try:
        parsed = make_url(_normalise_url(url))
    except (ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def _create_private_file(path: Path) -> None:
    """Create an empty ``path`` with PRIVATE_FILE_MODE whatever the umask (SQLite takes an
    empty file as an empty database). Raises StoreError if it cannot."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def _sqlite_begin(conn) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # see the "begin" listener above
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the CLI prints them)."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def writer_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for transactions that write. On SQLite they BEGIN IMMEDIATE: the write lock
    is taken (or waited for, up to the busy timeout) at the start, so a transaction that reads
    and then writes cannot fail with "database is locked" when another writer got in between.
    Elsewhere the same as ``session_factory``."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)


@contextmanager
def lean_transaction(conn: Connection, *, one_statement: bool = False) -> Iterator[None]:
    """A write transaction on ``conn``'s driver connection, without SQLAlchemy's transaction
    bookkeeping: ~30 µs instead of ~100 for a loop of small commits (the delivery ledger
    records answers a few at a time). Inside it, only the driver's cursor may be used
    (``conn.connection.cursor()``), never ``conn.execute``. SQLite takes the write lock at
    once (BEGIN IMMEDIATE), as ``writer_sessions`` do.

    ``one_statement``: the body runs a single statement. On PostgreSQL it then runs in
    autocommit, a transaction of its own: one round trip to the server instead of three
    (BEGIN, the statement, COMMIT), which was most of the cost of a small commit here."""
    raw = conn.connection.driver_connection
    if one_statement and conn.dialect.name == "postgresql":
        raw.autocommit = True
        try:
            yield
        finally:
            raw.autocommit = False
        return
    if conn.dialect.name == "sqlite":
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        return
    try:
        yield
    except BaseException:
        raw.rollback()
        raise
    raw.commit()


def one_writer_at_a_time(engine: Engine) -> bool:
    """True for SQLite, whose writers take turns (one write lock for the whole file)."""
    return engine.dialect.name == "sqlite"


def frequent_commits(engine: Engine) -> Connection:
    """A connection for a stream of small write transactions (the ledger's groups of
    answers): SQLite transactions on it BEGIN IMMEDIATE; on PostgreSQL its commits do not
    wait for the WAL flush (``synchronous_commit`` off for this session only: a server crash
    may lose the last few commits, never corrupt them). Close it with ``close_frequent``."""
    conn = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET synchronous_commit TO OFF")
        conn.commit()
    return conn


def close_frequent(conn: Connection) -> None:
    """Close a ``frequent_commits`` connection, its session setting reset before the pool
    gets it back; a connection that is gone is invalidated, never handed back."""
    try:
        if conn.dialect.name == "postgresql" and not conn.invalidated:
            conn.rollback()
            conn.exec_driver_sql("RESET synchronous_commit")
            conn.commit()
        conn.close()
    except Exception:  # the connection is gone: never hand it back to the pool
        conn.invalidate()
        conn.close()
