"""`newsletter stats`: the list's growth per week and each sent issue's click rate."""

from __future__ import annotations

from pathlib import Path

import typer

from ..reports import page
from ..reports.stats import ListStats, list_stats
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json
from .params import since_date
from .tables import print_rows


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)


def stats(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", help="Only from this date on (ISO 8601: 2026-01-31, UTC unless given)."
    ),
    as_json: bool = JSON_OPT,
    out: Path | None = typer.Option(
        None, "--out", help="Write an HTML page with charts to this file (the reports extra)."
    ),
) -> None:
    """List growth per week and click rates per issue."""
    with app_context(ctx).reading() as session:
        result = list_stats(session, since=since_date(since))
    if out is not None:
        size = page.save(out, page.stats_html(result))
        (err_console if as_json else console).print(f"Wrote {out} ({size // 1024 or 1} KB).")
    if as_json:
        print_json(result.as_json())
    elif out is None:
        _print(result)


def _print(result: ListStats) -> None:
    if result.weeks:
        print_rows(
            ("week", "new", "confirmed", "unsubscribed", "bounced"),
            [(w.week, w.new, w.confirmed, w.unsubscribed, w.bounced) for w in result.weeks],
            right=(1, 2, 3, 4),
        )
    else:
        console.print("No subscribers yet.")
    console.print()
    if not result.issues:
        console.print("No issue has been sent yet.")
        return
    rows = [
        (i.id, i.sent, i.delivered, i.clicked,
         "-" if i.click_rate is None else f"{i.click_rate:.1%}", i.unsubscribes, i.subject)
        for i in result.issues
    ]  # fmt: skip
    print_rows(
        ("issue", "sent", "delivered", "clicked", "rate", "unsubscribed", "subject"),
        rows,
        right=(0, 1, 2, 3, 4, 5),
    )
