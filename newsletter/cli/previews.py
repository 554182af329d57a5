"""The preview both `issue preview` and `sequence preview` print: the HTML and .eml written
for a sample reader, and optionally one test message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from sqlalchemy.orm import Session

from ..delivery.testsend import test_send
from ..issues import preview as preview_
from ..issues.render import prepare
from ..store.models import Issue
from .context import AppContext
from .output import console


def show_preview(
    nl: AppContext, find: Callable[[Session], Issue], out: Path, to: str | None
) -> None:
    """Write the preview of the issue ``find`` returns; with ``to``, send it there too (exit
    1 when the server did not take it)."""
    with nl.transaction() as session:
        issue = find(session)
        prepared = prepare(issue, nl.settings)
        recipient = preview_.sample_recipient(session, issue)
    result = preview_.write_preview(prepared, recipient, out)
    console.print(f"HTML: {result.html_path} ({result.size // 1024} KB)")
    console.print(f".eml: {result.eml_path} (personalised for {recipient.email})")
    if to is not None:
        outcome = test_send(prepared, recipient, to, nl.settings)
        console.print(f"Test message to {to}: {outcome.outcome} ({outcome.code or ''} "
                      f"{outcome.text})".replace("( ", "("))  # fmt: skip
        if outcome.outcome != "sent":
            raise typer.Exit(1)
