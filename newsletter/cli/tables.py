"""Rows for the terminal: a compact table on a TTY, plain aligned columns in a pipe (a
header line, then one line per row, columns apart by two spaces, the last one not padded,
so `awk` and `cut` can read them and text such as a subject or a URL goes last)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from rich import box
from rich.padding import Padding
from rich.table import Table

from .output import console


def print_rows(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Collection[int] = (),
    indent: int = 0,
) -> None:
    """Print ``rows`` under ``headers``; the columns numbered in ``right`` align right."""
    cells = [[str(c) for c in row] for row in rows]
    if console.is_terminal:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
        for i, header in enumerate(headers):
            table.add_column(header, justify="right" if i in right else "left")
        for row in cells:
            table.add_row(*row)
        console.print(Padding(table, (0, 0, 0, indent)))
        return
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    last = len(headers) - 1
    for row in (list(headers), *cells):
        line = "  ".join(
            c.rjust(w) if i in right else (c if i == last else c.ljust(w))
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        console.print(" " * indent + line)
