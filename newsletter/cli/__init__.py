"""The `newsletter` command line: a thin layer that parses, calls one core function, prints.

Errors a user can cause (``NewsletterError``) are translated once, here: one line on stderr,
exit status 1. Usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..errors import NewsletterError
from ..locations import CONFIG_ENV, DEFAULT_CONFIG_PATH
from .params import plain_params

# Every command, the module of ``newsletter.cli`` that registers it, and its one-line help.
# A module is imported only when its command runs (or its own --help is asked for): the
# bare `newsletter --help` and `--version` import none of them, nor the store, the composer
# or the web service (a test keeps it so; bench/startup.py measures it).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "db",
        "Write a starter newsletter.toml (if missing) and create or upgrade the database.",
    ),
    "db": ("db", "Database schema."),
    "subscriber": ("subscriber", "Subscribers: add, import, list, export, erase."),
    "list": ("lists", "Lists (audiences)."),
    "post": ("posts", "Posts: from the blog's feeds or Markdown files."),
    "issue": ("issues", "Issues: editions of the newsletter."),
    "segment": ("segments", "Segments: named audiences (tags, lists, attributes, clicks)."),
    "sequence": ("sequences", "Sequences: a welcome email and drip series for new readers."),
    "token": ("tokens", "API tokens: create, list, revoke."),
    "audit": (
        "tokens",
        "What was written through the API: who (the token), what, when, from where.",
    ),
    "webhook": ("webhooks", "Outgoing webhooks, signed per Standard Webhooks."),
    "dkim": ("dkim", "DKIM signing keys."),
    "stats": ("stats", "List growth per week and click rates per issue."),
    "worker": ("worker", "Claim and send deliveries of any sending issue until SIGTERM or Ctrl-C."),
    "run": ("run", "The scheduler daemon: sends due issues, polls feeds, builds digests, retries."),
    "schedule": ("run", "What will happen when."),
    "check": (
        "check",
        "Check the config, database, SMTP server, feeds and templates; send nothing.",
    ),
    "demo": (
        "demo",
        "Run the whole flow on embedded defaults: SQLite, sample subscribers and posts.",
    ),
    "bounces": (
        "bounces",
        "Bounces and complaints: process the return mailbox, list what came back.",
    ),
    "serve": ("serve", "Serve the subscriber pages until Ctrl-C or SIGTERM."),
}


class LazyGroup(TyperGroup):
    """The root group: each command is loaded from its module on first use; the command
    list of ``--help`` comes from COMMANDS without loading any."""

    _listing = False

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        plain_params(self)  # --config and the completion flags (see cli/params.py)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | None:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:  # the help's table of commands: the name and its line suffice
            text = COMMANDS[cmd_name][1]
            return TyperCommand(cmd_name, help=text, short_help=text)
        if cmd_name not in self.commands:
            module = importlib.import_module(f"{__name__}.{COMMANDS[cmd_name][0]}")
            holder = typer.Typer()
            module.register(holder)
            loaded = typer.main.get_group(holder)
            plain_params(loaded)
            for name, command in loaded.commands.items():
                self.commands.setdefault(name, command)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    rich_markup_mode=None,  # the root's help as click writes it: rich alone takes 100 ms
    help="Self-hosted newsletter: subscribers, posts, issues, delivery over SMTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:  # (the package's own constant: importlib.metadata alone takes 25 ms)
        typer.echo(f"newsletter {__version__}")
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
    from .context import AppContext

    ctx.obj = AppContext(config_path=config)
    ctx.call_on_close(ctx.obj.close)


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
