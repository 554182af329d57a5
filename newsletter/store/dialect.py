"""What differs between PostgreSQL and SQLite in a statement, for the store's modules only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert(session: Session, table: Any) -> Any:
    """An INSERT into ``table`` (a model or a Table) with this database's ON CONFLICT
    clauses (``on_conflict_do_nothing``, ``on_conflict_do_update``: the same API on both)."""
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
