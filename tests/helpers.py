"""Small helpers shared by tests."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.config import database_url, load_settings
from newsletter.store import connect
from newsletter.store.models import Base


def store_snapshot(config_path) -> dict[str, list[tuple]]:
    """Every row of every table, to check that a failed command changed nothing."""
    engine = connect(database_url(load_settings(config_path)))
    try:
        with engine.connect() as conn:
            return {
                name: sorted(tuple(map(str, row)) for row in conn.execute(select(table)))
                for name, table in Base.metadata.tables.items()
            }
    finally:
        engine.dispose()
