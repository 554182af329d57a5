"""`newsletter serve`: the subscriber web service (subscribe, confirm, unsubscribe,
preferences, archive). Nothing of the admin commands is reachable over HTTP."""

from __future__ import annotations

import typer

from ..web import create_app
from ..web.server import serve as run_server
from .context import app_context


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default: web.host)."
    ),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="Port to listen on (default: web.port)."
    ),
) -> None:
    """Serve the subscriber pages until Ctrl-C or SIGTERM."""
    nl = app_context(ctx)
    nl.sessions()  # config and schema problems are reported before listening
    web = nl.settings.web
    app = create_app(nl.settings, nl.engine)
    run_server(app, web, host=host or web.host, port=web.port if port is None else port)
