"""`newsletter demo`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..demo import run_demo
from .output import console


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    folder: Path = typer.Option(
        Path("newsletter-demo"), "--dir", help="Folder for the demo (made fresh each run)."
    ),
) -> None:
    """Run the whole flow on embedded defaults: SQLite, sample subscribers and posts."""
    result = run_demo(folder, console.print)
    config = result.folder / "newsletter.toml"
    console.print("")
    console.print(
        f"Done. {result.imported['new']} subscribers, {result.posts} posts, issue "
        f"{result.issue_id} sent to {result.sent} of {result.audience} readers."
    )
    console.print(f"Open {result.html_path} in a browser to see the email;")
    console.print(f"the messages as delivered are in {result.outbox}.")
    console.print("Try next:")
    program = sys.argv[0] if Path(sys.argv[0]).name == "newsletter" else "newsletter"
    for command in (
        "subscriber list --list blog --limit 5",
        f"issue show {result.issue_id}",
        f"issue missed {result.issue_id}",
        f"issue lint {result.issue_id}",
        "post ls",
        "sequence show welcome",
        "serve    (then open http://127.0.0.1:8000/subscribe)",
    ):
        console.print(f"  {program} --config {config} {command}")
