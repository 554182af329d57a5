"""`newsletter subscriber add|list|show|tag|untag|export|unsubscribe|erase|import`.

Each command imports what it uses: `subscriber list` reads with Core queries
(subscribers/listing.py), the others load the ORM use cases (subscribers/service.py).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer
from rich.table import Table

from ..errors import ImportFileError, InvalidInputError
from ..subscribers import listing
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json, print_json_array

sub_app = typer.Typer(help="Subscribers: add, import, list, export, erase.", no_args_is_help=True)

LIST_OPT = typer.Option(None, "--list", "-l", help="Only members of this list.")
TAG_NAMES = typer.Argument(..., help="Tag names (any case; stored lower-cased).")


def register(app: typer.Typer) -> None:
    app.add_typer(sub_app, name="subscriber")


def _status(confirmed: bool, unconfirmed: bool) -> str:
    if confirmed and unconfirmed:
        raise typer.BadParameter("use either --confirmed or --unconfirmed")
    return "unconfirmed" if unconfirmed else "active"


TRIGGER_SEQUENCES = typer.Option(
    False,
    "--trigger-sequences",
    help="Start the sequences (welcome series) their lists and tags trigger, as for a reader "
    "who confirmed.",
)
RESTART_SEQUENCES = typer.Option(
    False,
    "--restart",
    help="With --trigger-sequences: who is in a sequence already starts it again.",
)


@sub_app.command("add")
def add(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Email address."),
    name: str = typer.Option("", "--name", "-n", help="Display name."),
    lists: list[str] = typer.Option([], "--list", "-l", help="Add to this list (repeatable)."),
    confirmed: bool = typer.Option(False, "--confirmed", help="Active at once (the default)."),
    unconfirmed: bool = typer.Option(
        False, "--unconfirmed", help="Unconfirmed: receives nothing until confirmed."
    ),
    trigger_sequences: bool = TRIGGER_SEQUENCES,
    restart: bool = RESTART_SEQUENCES,
) -> None:
    """Add a subscriber (active unless --unconfirmed), or add an existing one to lists."""
    from ..store.models import utcnow
    from ..subscribers import enrol, service

    status = _status(confirmed, unconfirmed)
    with app_context(ctx).transaction() as session:
        sub, created = service.add_subscriber(session, email, name=name, lists=lists, status=status)
        names = [m.name for m in sub.lists]
        enrolled = (
            enrol.confirmed(session, sub.id, None, utcnow(), restart=restart)
            if trigger_sequences
            else 0
        )
    verb = "Added" if created else "Updated"
    where = f" to {', '.join(names)}" if names else ""
    console.print(f"{verb} {sub.email} ({sub.status}, id {sub.id}){where}.")
    if trigger_sequences:
        console.print(f"Started {enrolled} sequence(s).")


@sub_app.command("list")
def list_(
    ctx: typer.Context,
    list_name: str | None = LIST_OPT,
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    search: str | None = typer.Option(None, "--search", "-s", help="Substring of email or name."),
    tags: list[str] = typer.Option(
        [], "--tag", "-t", help="Only those with this tag (repeatable: with all of them)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """List subscribers (streams: works on millions)."""
    with app_context(ctx).connection() as conn:
        rows = listing.summaries(
            conn, list_name=list_name, status=status, search=search, tags=tags, limit=limit
        )
        if as_json:
            print_json_array(rows)
            return
        table = Table("id", "email", "name", "status", "lists")
        for r in rows:
            table.add_row(str(r["id"]), r["email"], r["name"], r["status"], ", ".join(r["lists"]))
        console.print(table)


@sub_app.command("show")
def show(
    ctx: typer.Context,
    who: str = typer.Argument(..., help="Email address or id."),
    as_json: bool = JSON_OPT,
) -> None:
    """Everything held on one person: fields, lists, history and consent records."""
    from ..subscribers import service

    with app_context(ctx).transaction() as session:
        data = service.person_data(service.find_subscriber(session, who))
    if as_json:
        print_json(data)
        return
    for key in ("id", "email", "name", "status", "source", "created_at", "confirmed_at"):
        console.print(f"{key:<13} {data[key] if data[key] is not None else ''}")
    console.print(f"{'lists':<13} {', '.join(data['lists'])}")
    chosen = {k: v for k, v in data["cadences"].items() if v}
    if chosen:
        console.print(f"{'cadence':<13} " + ", ".join(f"{k}: {v}" for k, v in chosen.items()))
    if data["timezone"]:
        console.print(f"{'timezone':<13} {data['timezone']}")
    console.print(f"{'tags':<13} {', '.join(data['tags'])}")
    if data["attributes"]:
        console.print(f"{'attributes':<13} {data['attributes']}")
    for e in data["events"]:
        console.print(f"  {e['at']}  {e['kind']:<12} {e['source']} {e['ip']} {e['detail'] or ''}")


@sub_app.command("set")
def set_(
    ctx: typer.Context,
    who: str = typer.Argument(..., help="Email address or id."),
    timezone: str | None = typer.Option(
        None, "--timezone", help='Their time zone, e.g. Asia/Tokyo ("" to clear).'
    ),
    cadence: str | None = typer.Option(
        None, "--cadence", help="post (every post), weekly or monthly; default: the list's."
    ),
    list_name: str | None = typer.Option(None, "--list", "-l", help="The list of --cadence."),
) -> None:
    """Set a subscriber's time zone, or their cadence on one of their lists."""
    from ..subscribers import preferences, service

    if timezone is None and cadence is None:
        raise typer.BadParameter("give --timezone, or --cadence with --list")
    if cadence is not None and not list_name:
        raise typer.BadParameter("--cadence needs --list: a cadence is per list")
    with app_context(ctx).transaction() as session:
        sub = service.find_subscriber(session, who)
        said = []
        if timezone is not None:
            zone = preferences.set_timezone(sub, timezone)
            said.append(f"time zone {zone or '(the list’s)'}")
        if cadence is not None and list_name:
            chosen = preferences.set_cadence(
                session, sub, service.get_list(session, list_name), cadence
            )
            said.append(f"cadence on {list_name}: {chosen or 'the list’s default'}")
        email = sub.email
    console.print(f"{email}: {'; '.join(said)}.")


@sub_app.command("tag")
def tag(
    ctx: typer.Context,
    who: str = typer.Argument(..., help="Email address or id."),
    names: list[str] = TAG_NAMES,
) -> None:
    """Give someone tags (created as needed; tags they have already are no error)."""
    from ..subscribers import service, tags

    with app_context(ctx).transaction() as session:
        sub = service.find_subscriber(session, who)
        added = tags.tag(session, sub, names)
        now = tags.tags_of(session, sub)
    console.print(f"{sub.email}: {_tag_change('added', added)}; tags now: {', '.join(now)}.")


@sub_app.command("untag")
def untag(
    ctx: typer.Context,
    who: str = typer.Argument(..., help="Email address or id."),
    names: list[str] = TAG_NAMES,
) -> None:
    """Take tags from someone (tags they do not have are no error)."""
    from ..subscribers import service, tags

    with app_context(ctx).transaction() as session:
        sub = service.find_subscriber(session, who)
        removed = tags.untag(session, sub, names)
        now = tags.tags_of(session, sub)
    left = ", ".join(now) or "none"
    console.print(f"{sub.email}: {_tag_change('removed', removed)}; tags now: {left}.")


def _tag_change(verb: str, names: list[str]) -> str:
    return f"{verb} {', '.join(names)}" if names else f"nothing {verb}"


@sub_app.command("export")
def export(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of stdout."),
    list_name: str | None = LIST_OPT,
    status: str | None = typer.Option(None, "--status", help="Only this status."),
) -> None:
    """Export subscribers as CSV (formula-safe for spreadsheets)."""
    from ..subscribers import service
    from ..subscribers.export import write_csv

    with app_context(ctx).reading() as session:
        subs = service.export_subscribers(session, list_name=list_name, status=status)
        if out is None:
            write_csv(subs, sys.stdout)
            return
        try:
            with out.open("w", encoding="utf-8", newline="") as fh:
                n = write_csv(subs, fh)
        except OSError as exc:
            raise InvalidInputError(f"cannot write {out}: {exc.strerror}") from None
    err_console.print(f"Exported {n} subscribers to {out}.")


@sub_app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    who: str = typer.Argument(..., help="Email address or id."),
    reason: str = typer.Option("", "--reason", help="Kept in the history."),
) -> None:
    """Unsubscribe someone (idempotent)."""
    from ..subscribers import service

    with app_context(ctx).transaction() as session:
        sub = service.find_subscriber(session, who)
        changed = service.unsubscribe(session, sub, source="cli", reason=reason)
    console.print(f"{sub.email} {'unsubscribed' if changed else 'was already unsubscribed'}.")


@sub_app.command("erase")
def erase(
    ctx: typer.Context,
    who: str = typer.Argument(..., help="Email address or id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """GDPR erasure: delete the person's data, keep only a hash so they are never re-added."""
    from ..subscribers import service

    nl = app_context(ctx)
    if not yes and not typer.confirm(f"Erase {who} and all their data?", err=True):
        raise typer.Exit(1)
    with nl.transaction() as session:
        sub = service.find_subscriber(session, who)
        email = sub.email
        service.erase(session, sub)
    console.print(f"Erased {email}; a suppression hash keeps the address from coming back.")


def _parse_maps(maps: list[str]) -> dict[str, str]:
    result = {}
    for item in maps:
        fld, sep, column = item.partition("=")
        if not sep or not fld.strip() or not column.strip():
            raise typer.BadParameter(f"expected FIELD=COLUMN, got {item!r}", param_hint="--map")
        result[fld.strip()] = column.strip()
    return result


@sub_app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="CSV file (comma, semicolon or tab; UTF-8), or Mailchimp's export .zip."
    ),
    list_name: str | None = typer.Option(None, "--list", "-l", help="Add everyone to this list."),
    preset: str = typer.Option(
        "auto", "--preset", help="auto, mailchimp, substack, listmonk or generic."
    ),
    maps: list[str] = typer.Option(
        [],
        "--map",
        help="FIELD=COLUMN (email, name, first_name, last_name, status, or any "
        "attribute name). Repeatable.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would happen; change nothing."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write rejected, duplicate and suppressed rows here (CSV)."
    ),
    confirmed: bool = typer.Option(False, "--confirmed", help="New people are active (default)."),
    unconfirmed: bool = typer.Option(False, "--unconfirmed", help="New people are unconfirmed."),
    tags: list[str] = typer.Option(
        [], "--tag", "-t", help="Give everyone imported this tag, besides the file's (repeatable)."
    ),
    lenient: bool = typer.Option(
        False,
        "--lenient",
        help="A row whose quote is never closed is rejected into the report and reading goes "
        "on at the next line (without it, such a file is refused).",
    ),
    trigger_sequences: bool = TRIGGER_SEQUENCES,
    restart: bool = RESTART_SEQUENCES,
) -> None:
    """Import subscribers from a CSV export (Mailchimp, Substack, listmonk or any CSV) or from
    Mailchimp's export archive (the .zip of subscribed, unsubscribed and cleaned members)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from ..subscribers.importer import import_subscribers, open_report

    status = _status(confirmed, unconfirmed)
    mapping = _parse_maps(maps)
    nl = app_context(ctx)
    _ = nl.settings  # a config error is reported before the file is touched
    try:
        raw = file.open("rb")
        size = file.stat().st_size
    except OSError as exc:
        raise ImportFileError(f"cannot open {file}: {exc.strerror}") from None
    with contextlib.ExitStack() as stack:
        stack.enter_context(raw)
        # Renamed into place after the transaction commits; a refused import leaves it alone.
        report_fh = None if report is None else stack.enter_context(open_report(report, file))
        progress = stack.enter_context(
            Progress(
                TextColumn("Importing"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
                disable=size < 5_000_000 or not err_console.is_terminal,
            )
        )
        task = progress.add_task("import", total=size)
        with nl.transaction() as session:
            result = import_subscribers(
                session,
                raw,
                name=file.name,
                preset=preset,
                mapping=mapping,
                list_name=list_name,
                status=status,
                dry_run=dry_run,
                report=report_fh,
                progress=lambda n: progress.update(task, completed=n),
                lenient=lenient,
                tags=tags,
                trigger_sequences=trigger_sequences,
                restart_sequences=restart,
            )
    c = result.counts
    head = "Dry run, nothing changed" if dry_run else "Imported"
    console.print(
        f"{head}: {result.rows} rows ({result.preset} format): {c['new']} new, "
        f"{c['updated']} updated, {c['unchanged']} unchanged, {c['duplicate']} duplicate in file, "
        f"{c['suppressed']} suppressed, {c['rejected']} rejected."
    )
    if result.files:
        parts = [f"{name} ({status}): {rows}" for name, status, rows in result.files]
        console.print(f"From {file.name}: {'; '.join(parts)} rows.")
    if result.tags:
        given = "not given in a dry run" if dry_run else f"{result.tagged} given"
        console.print(f"Tags {', '.join(sorted(result.tags))}: {given}.")
    if list_name:
        console.print(f"{result.added_to_list} {'would join' if dry_run else 'joined'} "
                      f"list {list_name!r}.")  # fmt: skip
    if trigger_sequences and not dry_run:
        console.print(f"{result.enrolled} enrolled in sequences.")
    problems = c["rejected"] + c["duplicate"] + c["suppressed"]
    if report is not None:
        console.print(
            f"Report of {problems} row{'s' if problems != 1 else ''} not imported: {report}"
        )
    elif problems:
        console.print("Pass --report FILE to see each row that was not imported and why.")
