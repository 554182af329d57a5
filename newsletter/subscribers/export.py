"""Streaming CSV export of subscribers, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import TextIO

from ..store.models import Subscriber

EXPORT_COLUMNS = ("email", "name", "status", "lists", "tags", "created_at", "confirmed_at",
                  "attributes", "timezone")  # fmt: skip
# Cells a spreadsheet would evaluate as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with a single quote."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_csv(subscribers: Iterable[tuple[Subscriber, Sequence[str]]], out: TextIO) -> int:
    """Write one row per (subscriber, tag names) as they stream in: lists separated by ";",
    tags by "," (an import reads the ``tags`` and ``timezone`` columns back). Returns the
    number of rows."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for sub, tags in subscribers:
        writer.writerow(
            [
                neutralise(sub.email),
                neutralise(sub.name),
                sub.status,
                neutralise(";".join(m.name for m in sub.lists)),
                neutralise(",".join(tags)),
                sub.created_at.isoformat(),
                sub.confirmed_at.isoformat() if sub.confirmed_at else "",
                neutralise(json.dumps(sub.attributes, ensure_ascii=False))
                if sub.attributes
                else "",
                sub.timezone or "",
            ]
        )
        n += 1
    return n
