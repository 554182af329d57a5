"""Locks between processes that share the database: one scheduler at a time."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

ADVISORY_LOCK_KEY = 0x6E6C5F72  # "nl_r": the first half of the two-key advisory lock


class SchedulerLock:
    """The right to schedule: a PostgreSQL advisory lock held by a connection of its own
    (released by the server the moment the process dies), or an flock on a file beside the
    SQLite database (released by the kernel)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._file: Any = None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; False if one does."""
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            # One lock per database and schema: deployments sharing a server don't collide.
            got = conn.execute(
                text(
                    "SELECT pg_try_advisory_lock(:key, "
                    "hashtext(current_database() || '.' || current_schema()))"
                ),
                {"key": ADVISORY_LOCK_KEY},
            ).scalar()
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return bool(got)
        path = Path(self.engine.url.database or "newsletter.db").with_suffix(".scheduler.lock")
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False once the connection that holds the PostgreSQL lock is gone (the server may
        then have given the lock to a standby). An flock lasts as long as the process."""
        if self._conn is None:
            return True
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
        except Exception:  # any failure means the session, and with it the lock, is gone
            return False
        return True

    def release(self) -> None:
        """Give the lock up (a standby may take it at once)."""
        if self._conn is not None:
            self._conn.close()  # the session ends, and with it the advisory lock
            self._conn = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
