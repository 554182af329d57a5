"""`newsletter webhook add|ls|rm|test|log`: outgoing webhooks (docs/api.md, "Webhooks")."""

from __future__ import annotations

import typer

from ..store.outbox import EVENTS
from ..webhooks import service
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json_array
from .tables import print_rows

webhook_app = typer.Typer(help="Outgoing webhooks, signed per Standard Webhooks.",
                          no_args_is_help=True)  # fmt: skip
NAME = typer.Argument(..., help="Webhook name (`webhook ls`).")


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")


@webhook_app.command("add")
def add(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="Where to POST the events (http or https)."),
    events: list[str] = typer.Option(
        ..., "--events", help=f"Comma-separated (repeatable): {', '.join(EVENTS)}, or all."
    ),
    name: str | None = typer.Option(None, "--name", help="A name (default: from the host)."),
) -> None:
    """Add a webhook; its signing secret is printed once."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        hook, secret = service.add_webhook(session, nl.settings.webhooks, url, events, name=name)
        hook_name, wanted = hook.name, ", ".join(hook.events)
    err_console.print(f"Added webhook {hook_name!r} for {wanted}. Its signing secret, shown "
                      "once (verify webhook-signature with it):")  # fmt: skip
    console.print(secret)


@webhook_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Webhooks: name, URL, events, enabled (or why not)."""
    with app_context(ctx).reading() as session:
        rows = service.list_webhooks(session)
    if as_json:
        print_json_array(rows)
        return
    print_rows(
        ("name", "url", "events", "state"),
        [(r["name"], r["url"], ",".join(r["events"]),
          "enabled" if r["enabled"] else r["disabled_reason"] or "disabled") for r in rows],
    )  # fmt: skip


@webhook_app.command("rm")
def rm(ctx: typer.Context, name: str = NAME) -> None:
    """Remove a webhook (and what still waited for it)."""
    with app_context(ctx).transaction() as session:
        service.remove_webhook(session, name)
    console.print(f"Removed webhook {name!r}.")


@webhook_app.command("test")
def test(ctx: typer.Context, name: str = NAME) -> None:
    """POST a signed "webhook.test" event now and say what the receiver answered."""
    nl = app_context(ctx)
    with nl.reading() as session:
        outcome = service.send_test(session, nl.settings.webhooks, name)
    if not outcome.ok:
        err_console.print(f"Webhook {name!r}: {outcome.error}")
        raise typer.Exit(1)
    console.print(f"Webhook {name!r} answered {outcome.status}.")


@webhook_app.command("log")
def log(
    ctx: typer.Context,
    name: str = NAME,
    limit: int = typer.Option(50, "--limit", min=1, help="The newest this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """A webhook's messages, newest first: event, status, attempts, last answer."""
    with app_context(ctx).reading() as session:
        rows = service.message_log(session, name, limit=limit)
    if as_json:
        print_json_array(rows)
        return
    print_rows(
        ("created", "event", "status", "attempts", "last answer"),
        [(r["created_at"][:19], r["event"], r["status"], r["attempts"],
          r["last_error"] or (r["last_status"] or "")) for r in rows],
    )  # fmt: skip
