"""`newsletter bounces process|ls`: bounces and complaints from the return mailbox."""

from __future__ import annotations

from pathlib import Path

import typer

from ..bounces import iter_bounces, process_spec
from ..errors import InvalidInputError
from ..store.errors import translating
from ..subscribers.service import find_subscriber
from .context import app_context
from .output import JSON_OPT, console, print_json, print_json_array

bounce_app = typer.Typer(
    help="Bounces and complaints: process the return mailbox, list what came back.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(bounce_app, name="bounces")


@bounce_app.command("process")
def process(
    ctx: typer.Context,
    source: str | None = typer.Argument(
        None,
        help="A Maildir folder, an mbox file or imaps://user@host/INBOX "
        "(default: [bounces] source).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would happen; change nothing."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Read bounces (DSN), complaints (ARF) and the rest from the return mailbox once."""
    nl = app_context(ctx)
    spec = source or nl.settings.bounces.source
    if not spec:
        raise InvalidInputError(
            "no bounce source: give a Maildir, an mbox file or an imaps:// URL, "
            "or set [bounces] source"
        )
    base_dir = Path.cwd() if source else Path(nl.settings.base_dir)
    with translating():
        summary = process_spec(spec, nl.sessions(), nl.settings, base_dir=base_dir, dry_run=dry_run)
    if as_json:
        print_json(summary.as_dict())
        return
    console.print(summary.line())
    for c in summary.changes:
        console.print(f"  {c['email']}: {c['status']} ({c['rule']})")


@bounce_app.command("ls")
def ls(
    ctx: typer.Context,
    kind: str | None = typer.Option(None, "--kind", help="Only hard, soft or complaint."),
    who: str | None = typer.Option(None, "--subscriber", help="Only this address or id."),
    issue: int | None = typer.Option(None, "--issue", help="Only this issue."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """Bounces and complaints recorded, newest first."""
    with app_context(ctx).transaction() as session:
        subscriber_id = find_subscriber(session, who).id if who else None
        rows = iter_bounces(
            session, kind=kind, subscriber_id=subscriber_id, issue_id=issue, limit=limit
        )
        if as_json:
            print_json_array(rows)
            return
        for r in rows:
            issue_ref = f"issue {r['issue_id']}" if r["issue_id"] else "no issue"
            console.print(
                f"{r['id']:>6}  {r['received_at'][:19]}  {r['kind']:<9} {r['status'] or '-':<7} "
                f"{r['email'] or '(unknown)'}  {issue_ref}  {r['matched_by'] or 'unmatched'}  "
                f"{r['diagnostic'][:80]}"
            )
