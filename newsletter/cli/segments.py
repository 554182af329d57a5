"""`newsletter segment create|ls|show|rm`: named audiences in the segment language
(docs/marketers.md, "Segments")."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.table import Table

from ..audiences import segments as service
from ..errors import SegmentSyntaxError
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json, print_json_array

segment_app = typer.Typer(
    help="Segments: named audiences (tags, lists, attributes, clicks).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(segment_app, name="segment")


@contextmanager
def expression_usage() -> Iterator[None]:
    """A segment expression that cannot be read is a usage error: its one line, exit 2."""
    try:
        yield
    except SegmentSyntaxError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def print_warnings(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        err_console.print(f"Warning: {line}")


@segment_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Segment name, used as --segment NAME elsewhere."),
    expression: str = typer.Argument(..., help="Who: e.g. 'tag:customer and not tag:churned'."),
) -> None:
    """Create a segment; the expression is checked first."""
    nl = app_context(ctx)
    with expression_usage(), nl.transaction() as session:
        segment = service.create_segment(session, name, expression)
        found = service.warnings(
            session, segment.expression, per_subscriber=nl.settings.tracking.per_subscriber
        )
    print_warnings(found)
    console.print(f"Created segment {segment.name!r}: {segment.expression}")


@segment_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List segments and their expressions."""
    with app_context(ctx).reading() as session:
        rows = [
            {"name": s.name, "expression": s.expression, "created_at": s.created_at.isoformat()}
            for s in service.list_segments(session)
        ]
    if as_json:
        print_json_array(rows)
        return
    table = Table("name", "expression")
    for r in rows:
        table.add_row(r["name"], r["expression"])
    console.print(table)


@segment_app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Segment name."),
    as_json: bool = JSON_OPT,
) -> None:
    """Who matches now: the count of active subscribers and a sample of addresses."""
    nl = app_context(ctx)
    with nl.reading() as session:
        found = service.show_segment(
            session, name, per_subscriber=nl.settings.tracking.per_subscriber
        )
    if as_json:
        print_json(found.as_json())
        return
    print_warnings(found.warnings)
    console.print(f"{found.name}: {found.expression}")
    console.print(f"  matches  {found.count} active subscribers")
    for address in found.sample:
        console.print(f"  {address}")
    if found.count > len(found.sample):
        console.print(f"  and {found.count - len(found.sample)} more")


@segment_app.command("rm")
def rm(ctx: typer.Context, name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Delete a segment (refused while an unsent issue uses it)."""
    with app_context(ctx).transaction() as session:
        service.remove_segment(session, name)
    console.print(f"Removed segment {name!r}.")
