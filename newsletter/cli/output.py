"""Small output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console

# Options many commands share (Typer copies them per command; sharing the objects is safe).
JSON_OPT = typer.Option(False, "--json", help="JSON output.")
ISSUE_ID = typer.Argument(..., help="Issue id.")

# markup off: subscriber data such as "[test] Ada" must print as written.
console = Console(highlight=False, markup=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def print_json_array(items: Iterable[dict[str, Any]]) -> None:
    """Stream a JSON array to stdout, one object per line, without holding the whole list."""
    out = sys.stdout
    out.write("[")
    first = True
    for item in items:
        out.write("\n" if first else ",\n")
        out.write(json.dumps(item, ensure_ascii=False))
        first = False
    out.write("\n]\n" if not first else "]\n")
    out.flush()


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
