"""`newsletter token create|ls|revoke` and `newsletter audit`: the HTTP API's tokens and the
record of what was written with them (docs/api.md)."""

from __future__ import annotations

import typer

from ..tokens import audit as audit_log
from ..tokens import service
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json_array
from .params import since_date
from .tables import print_rows

token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.command("audit")(audit)


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Who or what uses it: blog, crm, ci..."),
    scopes: list[str] = typer.Option(
        ...,
        "--scope",
        help=f"Comma-separated (repeatable): {', '.join(service.SCOPES)}, or all.",
    ),
) -> None:
    """Create a token; it is printed once (only its hash is kept)."""
    with app_context(ctx).transaction() as session:
        row, token = service.create_token(session, name, scopes)
        granted = ", ".join(row.scopes)
    err_console.print(f"Created token {name!r} with {granted}. It is shown once; keep it secret:")
    console.print(token)


@token_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Tokens: name, scopes, created, last used, revoked."""
    with app_context(ctx).reading() as session:
        rows = [
            {
                "name": t.name,
                "scopes": t.scopes,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in service.list_tokens(session)
        ]
    if as_json:
        print_json_array(rows)
        return
    print_rows(
        ("name", "scopes", "created", "last used", "revoked"),
        [(r["name"], ",".join(r["scopes"]), r["created_at"][:16], (r["last_used_at"] or "")[:16],
          (r["revoked_at"] or "")[:16]) for r in rows],
    )  # fmt: skip


@token_app.command("revoke")
def revoke(ctx: typer.Context, name: str = typer.Argument(..., help="Token name.")) -> None:
    """Revoke a token: it stops working at once."""
    with app_context(ctx).transaction() as session:
        service.revoke_token(session, name)
    console.print(f"Revoked token {name!r}.")


def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="From this date or time (ISO 8601)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """What was written through the API: who (the token), what, when, from where."""
    start = since_date(since)
    with app_context(ctx).reading() as session:
        rows = audit_log.entries(session, since=start, limit=limit)
    if as_json:
        print_json_array(rows)
        return
    print_rows(
        ("at", "who", "what", "object", "status", "from"),
        [(r["at"][:19], r["actor"], r["action"], r["target"], r["status"], r["ip"]) for r in rows],
    )
