"""`newsletter list create|ls|show`."""

from __future__ import annotations

import typer
from rich.table import Table

from ..store.models import SUBSCRIBER_STATUSES
from ..subscribers import service
from .context import app_context
from .output import JSON_OPT, console, print_json, print_json_array

list_app = typer.Typer(help="Lists (audiences).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(list_app, name="list")


def _row(mlist, counts: dict[str, int]) -> dict:
    return {
        "id": mlist.id,
        "name": mlist.name,
        "description": mlist.description,
        "created_at": mlist.created_at.isoformat(),
        "members": sum(counts.values()),
        "counts": {s: counts.get(s, 0) for s in SUBSCRIBER_STATUSES},
    }


@list_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="List name, used as --list NAME elsewhere."),
    description: str = typer.Option("", "--description", "-d", help="What the list is for."),
) -> None:
    """Create a list."""
    with app_context(ctx).transaction() as session:
        mlist = service.create_list(session, name, description)
    console.print(f"Created list {mlist.name!r} (id {mlist.id}).")


@list_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Show every list with member counts."""
    with app_context(ctx).transaction() as session:
        rows = [_row(m, c) for m, c in service.list_counts(session)]
    if as_json:
        print_json_array(rows)
        return
    table = Table("id", "name", "members", "active", "description")
    for r in rows:
        table.add_row(
            str(r["id"]), r["name"], str(r["members"]), str(r["counts"]["active"]), r["description"]
        )
    console.print(table)


@list_app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="List name."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show one list and its member counts by status."""
    with app_context(ctx).transaction() as session:
        mlist = service.get_list(session, name)
        counts = dict(service.list_counts(session))[mlist]
        row = _row(mlist, counts)
    if as_json:
        print_json(row)
        return
    console.print(f"{row['name']} (id {row['id']}) {row['description']}")
    for status, n in row["counts"].items():
        console.print(f"  {status:<13} {n}")
    console.print(f"  {'total':<13} {row['members']}")
