"""Database errors in our terms: the one place a SQLAlchemy or driver error becomes ours.

The CLI (cli/context.py), the web service (web/state.py) and the daemon's jobs
(scheduler.py) all go through ``translating``, so one failure reads the same everywhere:
``database error: <the driver's first line, password masked>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)

from ..errors import StoreError
from .engine import db_error_line


def translate(exc: BaseException) -> StoreError | None:
    """Our error for a database error we know, else None (a bug: let it show).

    Known: the driver cannot use the database (locked past the busy timeout, read-only, a
    file that is not a database, the server refused or dropped the connection), a
    constraint another writer won (a unique violation from a concurrent insert) and a value
    the column cannot hold. A programming error (bad SQL) is not among them."""
    if isinstance(exc, (OperationalError, InterfaceError, IntegrityError, DataError)) or (
        type(exc) is DatabaseError  # SQLite's "file is not a database"
    ):
        return StoreError(f"database error: {db_error_line(exc)}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreError(f"database error: {db_error_line(exc)}")
    return None


@contextmanager
def translating() -> Iterator[None]:
    """Raise our StoreError (one line, password masked) for a known database error."""
    try:
        yield
    except DBAPIError as exc:
        ours = translate(exc)
        if ours is None:
            raise
        raise ours from exc
