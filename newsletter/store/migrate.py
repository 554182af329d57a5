"""Run the Alembic migrations shipped in ``newsletter/store/migrations`` from code.

Every command checks that the database is at HEAD before it runs (``require_current``); that
check reads the version table with one query and compares it with the HEAD constant, without
importing Alembic (80 ms of every command's start otherwise). A test keeps HEAD equal to the
newest migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError

from ..errors import StoreError
from .engine import db_error_line

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "newsletter.store:migrations"
HEAD = "0014"  # the newest migration's revision (tests/test_store.py checks it)


def _config(connection=None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration's revision, as Alembic reads the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as exc:
        raise StoreError(f"cannot reach the database: {db_error_line(exc)}") from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction."""
    try:
        with engine.begin() as conn:
            from alembic import command

            command.upgrade(_config(conn), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot reach the database: {db_error_line(exc)}") from exc


def require_current(engine: Engine) -> None:
    """Raise StoreError unless the database is at the head revision."""
    current, head = current_revision(engine), HEAD
    if current != head:
        where = "empty" if current is None else f"at {current}"
        raise StoreError(
            f"the database is {where}, this version needs {head}: run `newsletter db upgrade`"
        )
