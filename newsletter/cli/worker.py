"""`newsletter worker`: an extra sending process (for PostgreSQL deployments)."""

from __future__ import annotations

import signal
import threading

import typer

from ..delivery.send import run_worker_process
from .context import app_context, translate_db_errors
from .output import err_console


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(ctx: typer.Context) -> None:
    """Claim and send deliveries of any sending issue until SIGTERM or Ctrl-C."""
    nl = app_context(ctx)
    nl.sessions()  # config and schema problems are reported before the loop starts
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err_console.print("Worker running; Ctrl-C or SIGTERM stops it after the batch in flight.")
    with translate_db_errors():
        run_worker_process(nl.config_path, stop)
    err_console.print("Worker stopped; unsent claims were released.")
