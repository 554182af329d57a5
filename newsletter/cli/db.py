"""`newsletter init` and `newsletter db upgrade`."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import typer

from ..errors import ConfigError
from ..store import current_revision, head_revision, upgrade
from ..store.engine import PRIVATE_FILE_MODE
from .context import AppContext, app_context
from .output import console

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def starter_config() -> str:
    """The documented example config shipped with the package."""
    return files("newsletter").joinpath("config.example.toml").read_text(encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(db_app, name="db")


def init(ctx: typer.Context) -> None:
    """Write a starter newsletter.toml (if missing) and create or upgrade the database."""
    nl = app_context(ctx)
    if nl.config_path.exists():
        console.print(f"Config {nl.config_path} exists; leaving it as it is.")
    else:
        _write_private(nl.config_path, starter_config())
        console.print(f"Wrote {nl.config_path}: edit [site], [sender] and [smtp] before sending.")
    _upgrade(nl)


def _write_private(path: Path, text: str) -> None:
    """Write a new file readable by its owner only, whatever the umask: the config names
    the database and, with PostgreSQL, may hold its password. Raises ConfigError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
            fh.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror or exc}") from exc


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create the database or bring its schema up to date."""
    _upgrade(app_context(ctx))


def _upgrade(nl: AppContext) -> None:
    engine = nl.database(create=True)
    before = current_revision(engine)
    upgrade(engine)
    after = head_revision()
    if before == after:
        console.print(f"Database is up to date (revision {after}).")
    else:
        console.print(f"Database upgraded from {before or 'empty'} to revision {after}.")
