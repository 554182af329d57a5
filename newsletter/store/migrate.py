"""Run the Alembic migrations shipped in ``newsletter/store/migrations`` from code."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from ..errors import StoreError
from .engine import db_error_line

SCRIPT_LOCATION = "newsletter.store:migrations"


def _config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"cannot reach the database: {db_error_line(exc)}") from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction."""
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot reach the database: {db_error_line(exc)}") from exc


def require_current(engine: Engine) -> None:
    """Raise StoreError unless the database is at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = "empty" if current is None else f"at {current}"
        raise StoreError(
            f"the database is {where}, this version needs {head}: run `newsletter db upgrade`"
        )
