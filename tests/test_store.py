"""Schema: migrations on an empty database, and models and migrations agree."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from newsletter.errors import StoreError
from newsletter.store import connect, current_revision, head_revision, upgrade
from newsletter.store.migrate import require_current
from newsletter.store.models import Base


def test_upgrade_creates_every_table(database_url: str) -> None:
    engine = connect(database_url)
    try:
        assert current_revision(engine) is None
        with pytest.raises(StoreError, match="db upgrade"):
            require_current(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        require_current(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        upgrade(engine)  # idempotent
    finally:
        engine.dispose()


def test_models_and_migrations_agree(engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_unreachable_database_is_one_clear_error() -> None:
    engine = connect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="cannot reach the database"):
        current_revision(engine)


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        connect("mysql://x@y/z")
