"""`newsletter init` and `newsletter db upgrade`."""

from __future__ import annotations

from importlib.resources import files

import typer

from ..store import current_revision, head_revision, upgrade
from .context import app_context
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
        nl.config_path.parent.mkdir(parents=True, exist_ok=True)
        nl.config_path.write_text(starter_config(), encoding="utf-8")
        console.print(f"Wrote {nl.config_path}: edit [site], [sender] and [smtp] before sending.")
    _upgrade(nl)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create the database or bring its schema up to date."""
    _upgrade(app_context(ctx))


def _upgrade(nl) -> None:
    before = current_revision(nl.engine)
    upgrade(nl.engine)
    after = head_revision()
    if before == after:
        console.print(f"Database is up to date (revision {after}).")
    else:
        console.print(f"Database upgraded from {before or 'empty'} to revision {after}.")
