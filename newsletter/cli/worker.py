"""`newsletter worker`: an extra sending process (for PostgreSQL deployments)."""

from __future__ import annotations

import threading

import typer

from ..delivery.send import run_worker_process
from ..store.errors import translating
from .context import app_context
from .output import err_console
from .signals import StopSignals


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(ctx: typer.Context) -> None:
    """Claim and send deliveries of any sending issue until SIGTERM or Ctrl-C."""
    nl = app_context(ctx)
    nl.sessions()  # config and schema problems are reported before the loop starts
    stop = threading.Event()
    err_console.print("Worker running; Ctrl-C or SIGTERM stops it after the messages on the wire.")
    with StopSignals(stop) as signals, translating():
        counts = run_worker_process(nl.config_path, stop)
    done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing"
    err_console.print(f"Worker stopped: {done}; unsent claims were released.")
    if signals.exit_status:
        raise typer.Exit(signals.exit_status)
