"""What every command shares: the config path, the settings, the engine and sessions.

All wiring happens here: the config file becomes typed settings, the settings become an
engine; commands ask for a transaction and call one core function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from sqlalchemy import Connection, Engine

from ..config import Settings, database_url, load_settings
from ..store import session_factory, writer_sessions
from ..store.engine import open_database
from ..store.errors import translating
from ..store.migrate import require_current

if TYPE_CHECKING:  # imported by the commands that use sessions (see store.engine)
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class AppContext:
    config_path: Path
    _settings: Settings | None = None
    _engine: Engine | None = None
    _checked: bool = field(default=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def engine(self) -> Engine:
        """The engine on the configured database, which must exist (StoreError if not)."""
        return self.database()

    def database(self, *, create: bool = False) -> Engine:
        """The engine, opened once; ``create`` (init, db upgrade) makes a missing SQLite file.
        Raises StoreError for a database that cannot be opened (see store.open_database)."""
        if self._engine is None:
            self._engine = open_database(database_url(self.settings), create=create)
        return self._engine

    def sessions(self) -> sessionmaker[Session]:
        """A factory of writing sessions on a database whose schema is current (StoreError if
        not); see store.writer_sessions."""
        self._require_current()
        return writer_sessions(self.engine)

    def _require_current(self) -> None:
        if not self._checked:
            require_current(self.engine)
            self._checked = True

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with translating(), self.sessions()() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction that does not hold SQLite's write lock (long listings and
        exports must not block the daemon or a send)."""
        self._require_current()
        with translating(), session_factory(self.engine)() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A read-only Core transaction (no ORM), for commands that only read and must start
        fast; like ``reading``, it does not hold SQLite's write lock."""
        self._require_current()
        with translating(), self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def app_context(ctx: typer.Context) -> AppContext:
    return ctx.find_root().obj
