"""`newsletter list create|edit|ls|show`."""

from __future__ import annotations

import typer
from rich.table import Table

from ..config import Settings
from ..issues.archive import list_is_public
from ..store.models import SUBSCRIBER_STATUSES
from ..subscribers import service
from .context import app_context
from .output import JSON_OPT, console, print_json, print_json_array

list_app = typer.Typer(help="Lists (audiences).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(list_app, name="list")


PUBLIC_OPT = typer.Option(
    None,
    "--public/--private",
    help="Its issues are in the public web archive, or not. Default: public only if the list "
    "is on the subscribe form (\\[web] lists).",
)


def _row(mlist, counts: dict[str, int], settings: Settings) -> dict:
    return {
        "id": mlist.id,
        "name": mlist.name,
        "description": mlist.description,
        "public": list_is_public(mlist, settings),
        "created_at": mlist.created_at.isoformat(),
        "members": sum(counts.values()),
        "counts": {s: counts.get(s, 0) for s in SUBSCRIBER_STATUSES},
    }


@list_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="List name, used as --list NAME elsewhere."),
    description: str = typer.Option("", "--description", "-d", help="What the list is for."),
    public: bool | None = PUBLIC_OPT,
) -> None:
    """Create a list."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        mlist = service.create_list(session, name, description, public=public)
        shown = "public" if list_is_public(mlist, nl.settings) else "private"
    console.print(f"Created list {mlist.name!r} (id {mlist.id}); its issues' archive: {shown}.")


@list_app.command("edit")
def edit(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="List name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    public: bool | None = PUBLIC_OPT,
) -> None:
    """Change a list's description, or whether its issues are in the public archive."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        mlist = service.edit_list(session, name, description=description, public=public)
        shown = "public" if list_is_public(mlist, nl.settings) else "private"
    console.print(f"List {mlist.name!r}: its issues' archive is {shown}.")


@list_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Show every list with member counts."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        rows = [_row(m, c, nl.settings) for m, c in service.list_counts(session)]
    if as_json:
        print_json_array(rows)
        return
    table = Table("id", "name", "members", "active", "archive", "description")
    for r in rows:
        table.add_row(
            str(r["id"]), r["name"], str(r["members"]), str(r["counts"]["active"]),
            "public" if r["public"] else "private", r["description"],
        )  # fmt: skip
    console.print(table)


@list_app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="List name."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show one list and its member counts by status."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        mlist = service.get_list(session, name)
        counts = dict(service.list_counts(session))[mlist]
        row = _row(mlist, counts, nl.settings)
    if as_json:
        print_json(row)
        return
    console.print(f"{row['name']} (id {row['id']}) {row['description']}")
    console.print(f"  archive       {'public' if row['public'] else 'private'}")
    for status, n in row["counts"].items():
        console.print(f"  {status:<13} {n}")
    console.print(f"  {'total':<13} {row['members']}")
