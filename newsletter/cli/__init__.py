"""The `newsletter` command line: a thin layer that parses, calls one core function, prints.

Errors a user can cause (``NewsletterError``) are translated once, here: one line on stderr,
exit status 1. Usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import typer

from ..config import CONFIG_ENV, DEFAULT_CONFIG_PATH
from ..errors import NewsletterError
from . import bounces, check, db, demo, issues, lists, posts, run, serve, subscriber, worker
from .context import AppContext

app = typer.Typer(
    help="Self-hosted newsletter: subscribers, posts, issues, delivery over SMTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"newsletter {version('newsletter')}")
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            typer.echo("newsletter (not installed)")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path = typer.Option(
        DEFAULT_CONFIG_PATH,
        "--config",
        envvar=CONFIG_ENV,
        help="Config file (TOML).",
        show_default=True,
    ),
    _version_flag: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Self-hosted newsletter: subscribers, posts, issues, delivery over SMTP."""
    ctx.obj = AppContext(config_path=config)
    ctx.call_on_close(ctx.obj.close)


db.register(app)
subscriber.register(app)
lists.register(app)
posts.register(app)
issues.register(app)
worker.register(app)
run.register(app)
check.register(app)
demo.register(app)
bounces.register(app)
serve.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Exits 0, 1 (our errors), 2 (usage errors)."""
    try:
        app(args=argv, prog_name="newsletter")
    except NewsletterError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C outside a command that handles it: nothing half-done
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
