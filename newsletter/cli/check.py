"""`newsletter check`."""

from __future__ import annotations

import typer

from ..check import Check, run_checks
from ..errors import ConfigError
from .context import app_context
from .output import console

MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(ctx: typer.Context) -> None:
    """Check the config, database, SMTP server, feeds and templates; send nothing."""
    nl = app_context(ctx)
    try:
        settings = nl.settings
    except ConfigError as exc:
        _show([Check("config", "fail", str(exc))])
        raise typer.Exit(1) from None
    results = [Check("config", "ok", str(nl.config_path)), *run_checks(settings, nl.config_path)]
    _show(results)
    if any(c.level == "fail" for c in results):
        raise typer.Exit(1)


def _show(results: list[Check]) -> None:
    for c in results:
        console.print(f"{MARK[c.level]} {c.name:<10} {c.detail}")
    failed = sum(c.level == "fail" for c in results)
    warned = sum(c.level == "warn" for c in results)
    console.print(f"{failed} problem(s), {warned} warning(s).")
