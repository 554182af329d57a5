"""`newsletter sequence …`: welcome and drip series (docs/marketers.md, "Sequences")."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..sequences import service
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json, print_json_array

sequence_app = typer.Typer(
    help="Sequences: a welcome email and drip series for new readers.", no_args_is_help=True
)
step_app = typer.Typer(help="The steps (emails) of a sequence.", no_args_is_help=True)
sequence_app.add_typer(step_app, name="step")

NAME = typer.Argument(..., help="Sequence name.")
STEP = typer.Argument(..., help="Step number (`sequence step ls NAME`).", min=1)


def register(app: typer.Typer) -> None:
    app.add_typer(sequence_app, name="sequence")


@sequence_app.command("create")
def create(
    ctx: typer.Context,
    name: str = NAME,
    list_name: str = typer.Option(..., "--list", "-l", help="The list whose readers get it."),
    trigger: str = typer.Option(
        "confirm",
        "--trigger",
        help="confirm (double opt-in done, or added with --trigger-sequences), join (added to "
        "the list) or tag:NAME (given the tag).",
    ),
) -> None:
    """Create a sequence (add its emails with `sequence step add`)."""
    with app_context(ctx).transaction() as session:
        sequence = service.create_sequence(session, name, list_name, trigger)
    console.print(f"Created sequence {sequence.name!r} (list {list_name}, trigger "
                  f"{sequence.trigger}).")  # fmt: skip
    console.print(f"Next: newsletter sequence step add {sequence.name} welcome.md --after 0s")


@sequence_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List sequences."""
    with app_context(ctx).reading() as session:
        shown = [service.show(session, s.name) for s in service.list_sequences(session)]
    rows = [
        {k: v for k, v in r.items() if k != "steps"} | {"steps": len(r["steps"])} for r in shown
    ]
    if as_json:
        print_json_array(rows)
        return
    table = Table("name", "list", "trigger", "status", "steps", "in progress", "done", "left")
    for r in rows:
        table.add_row(r["name"], r["list"], r["trigger"], r["status"], str(r["steps"]),
                      str(r["in_progress"]), str(r["done"]), str(r["left"]))  # fmt: skip
    console.print(table)


def _print_steps(found: dict) -> None:
    table = Table("step", "after", "window", "subject", "waiting", "sent", "skipped", "failed",
                  "clicks")  # fmt: skip
    for s in found["steps"]:
        table.add_row(str(s["step"]), s["after"], s["window"] or "", s["subject"],
                      str(s["waiting"]), str(s["sent"]), str(s["skipped"]), str(s["failed"]),
                      str(s["clicks"]))  # fmt: skip
    console.print(table)


@sequence_app.command("show")
def show(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPT) -> None:
    """A sequence and, per step: waiting, sent, skipped, failed and clicks."""
    with app_context(ctx).reading() as session:
        found = service.show(session, name)
    if as_json:
        print_json(found)
        return
    console.print(f"{found['name']}: list {found['list']}, trigger {found['trigger']}, "
                  f"{found['status']}")  # fmt: skip
    console.print(f"  readers  {found['enrolled']} enrolled: {found['in_progress']} in "
                  f"progress, {found['done']} done, {found['left']} left")  # fmt: skip
    if not found["steps"]:
        console.print(f"  no steps yet: newsletter sequence step add {name} FILE.md --after 0s")
        return
    _print_steps(found)


@sequence_app.command("pause")
def pause(ctx: typer.Context, name: str = NAME) -> None:
    """Hold the sequence's due steps (nothing is sent until `sequence resume`)."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        service.set_paused(session, nl.settings, name, True)
    console.print(f"Paused sequence {name!r}: due steps wait until `sequence resume {name}`.")


@sequence_app.command("resume")
def resume(ctx: typer.Context, name: str = NAME) -> None:
    """Send the held steps again (those more than [sequences] max_late late are skipped)."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        _, skipped = service.set_paused(session, nl.settings, name, False)
    late = nl.settings.sequences.max_late
    extra = f"; {skipped} waiting message(s) more than {late} late skipped" if skipped else ""
    console.print(f"Resumed sequence {name!r}{extra}. Readers more than {late} late for a "
                  "step skip it.")  # fmt: skip


@sequence_app.command("preview")
def preview(
    ctx: typer.Context,
    name: str = NAME,
    step: int = STEP,
    out: Path = typer.Option(Path("preview"), "--out", help="Folder for the .html and .eml."),
    to: str | None = typer.Option(None, "--to", help="Also send one test message here."),
) -> None:
    """Write a step as HTML and .eml for a sample reader (and optionally send a test)."""
    from .previews import show_preview

    show_preview(app_context(ctx), lambda s: service.step_issue(s, name, step), out, to)


@sequence_app.command("missed")
def missed(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPT) -> None:
    """Who has not received a step they reached, and why."""
    with app_context(ctx).reading() as session:
        rows = list(service.missed(session, name))
    if as_json:
        print_json_array(rows)
        return
    for r in rows:
        console.print(f"step {r['step']}  {r['email'] or '(erased)'}  {r['reason']}")
    console.print(f"{len(rows)} step message(s) of sequence {name!r} not received.")


@sequence_app.command("enrol")
def enrol(
    ctx: typer.Context,
    name: str = NAME,
    who: list[str] = typer.Argument(..., help="Email addresses or ids."),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="Readers already in it start again from the first step (steps they received "
        "are not sent twice).",
    ),
) -> None:
    """Put readers (active members of the sequence's list) into it by hand."""
    with app_context(ctx).transaction() as session:
        n, refused = service.enrol(session, name, who, restart=restart)
    for line in refused:
        err_console.print(f"Not enrolled: {line}")
    console.print(f"Enrolled {n} reader(s) in {name!r}.")


# --- steps ---------------------------------------------------------------------------------


@step_app.command("add")
def step_add(
    ctx: typer.Context,
    name: str = NAME,
    file: Path = typer.Argument(
        ..., help="Markdown with front matter: subject, preheader, template."
    ),
    after: str = typer.Option(
        ..., "--after", help="Delay after the step before (or after enrolling): 0s, 3d, 1w."
    ),
    window: str | None = typer.Option(
        None, "--window", help="Send only in these hours of the reader's time: 09:00-17:00."
    ),
) -> None:
    """Add a step at the end of a sequence."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        step = service.add_step(session, nl.settings, name, file, after=after, window=window)
    console.print(f"Added step {step.position} to {name!r}: {step.subject!r}, {after} after "
                  "the one before.")  # fmt: skip


@step_app.command("ls")
def step_ls(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPT) -> None:
    """A sequence's steps, with their counts."""
    with app_context(ctx).reading() as session:
        found = service.show(session, name)
    if as_json:
        print_json_array(found["steps"])
        return
    _print_steps(found)


@step_app.command("edit")
def step_edit(
    ctx: typer.Context,
    name: str = NAME,
    step: int = STEP,
    file: Path | None = typer.Argument(
        None, help="The new Markdown (default: the step's file, read again)."
    ),
    after: str | None = typer.Option(None, "--after", help="A new delay."),
    window: str | None = typer.Option(None, "--window", help="A new window ('' for none)."),
) -> None:
    """Change a step: readers who have not received it yet get the new version."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        changed = service.edit_step(
            session, nl.settings, name, step, path=file, after=after, window=window
        )
    console.print(f"Updated step {changed.position} of {name!r}: {changed.subject!r}.")


@step_app.command("rm")
def step_rm(ctx: typer.Context, name: str = NAME, step: int = STEP) -> None:
    """Remove a step: readers who have not reached it go on to the next one."""
    with app_context(ctx).transaction() as session:
        service.remove_step(session, name, step)
    console.print(f"Removed step {step} of {name!r}.")
