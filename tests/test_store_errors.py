"""Database errors are translated once (store/errors.py): each real driver error we meet
reads as the same one line in the CLI, the web service and the daemon's jobs."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from newsletter import scheduler
from newsletter.cli import context as cli_context
from newsletter.errors import StoreError
from newsletter.store.errors import translate, translating
from newsletter.web.state import WebApp


def _caught(engine_url: str, *statements: str, connect_args: dict | None = None) -> DBAPIError:
    engine = create_engine(engine_url, connect_args=connect_args or {})
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
            conn.commit()
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"no error from {statements}")


def real_errors(tmp_path: Path) -> dict[str, tuple[DBAPIError, str]]:
    db = tmp_path / "n.db"
    setup = sqlite3.connect(db)
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    setup.execute("INSERT INTO t (email) VALUES ('a@example.com')")
    setup.commit()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = _caught(f"sqlite:///{db}", "INSERT INTO t (email) VALUES ('b@example.com')",
                         connect_args={"timeout": 0})  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, " * 100)
    return {
        "locked": (locked, "database is locked"),
        "read-only": (
            _caught(f"sqlite:///file:{db}?mode=ro&uri=true", "CREATE TABLE u (id INTEGER)"),
            "attempt to write a readonly database",
        ),
        "not a database": (_caught(f"sqlite:///{junk}", "SELECT 1 FROM t"), "not a database"),
        "connection refused": (
            _caught("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test", "SELECT 1"),
            "127.0.0.1",
        ),
        "unique violation": (
            _caught(f"sqlite:///{db}", "INSERT INTO t (email) VALUES ('a@example.com')"),
            "UNIQUE constraint failed: t.email",
        ),
    }


def test_each_driver_error_is_the_same_one_line_everywhere(tmp_path, caplog) -> None:
    assert cli_context.translating is translating  # the CLI's sessions and connections
    for kind, (exc, words) in real_errors(tmp_path).items():
        ours = translate(exc)
        assert isinstance(ours, StoreError), kind
        line = str(ours)
        assert line.startswith("database error: ") and words in line, (kind, line)
        assert "\n" not in line and "s3cret" not in line, (kind, line)

        web = WebApp._transaction(lambda exc=exc: _raising_session(exc))
        with pytest.raises(StoreError) as in_web, web:  # the web service's transactions
            pass
        assert str(in_web.value) == line, kind

        caplog.clear()  # a daemon job
        with caplog.at_level(logging.ERROR, logger=scheduler.log.name):
            scheduler._run_job("dispatch", lambda exc=exc: _raise(exc))
        assert [r.getMessage() for r in caplog.records] == [
            f"job.error job=dispatch error={line}"
        ], kind


def test_an_error_we_do_not_know_is_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError), translating():
        raise ZeroDivisionError


def _raise(exc: BaseException) -> None:
    raise exc


class _raising_session:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __enter__(self) -> _raising_session:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def begin(self) -> _raising_session:
        raise self.exc
