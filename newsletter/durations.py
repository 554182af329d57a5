"""Durations as people write them on the command line and in the config: "90d", "12h", "2w",
"30m", "5s" (one number and one unit)."""

from __future__ import annotations

import re
from datetime import timedelta

_SPAN = re.compile(r"(\d{1,6})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXAMPLES = "such as 0s, 30m, 12h, 3d or 1w"


def duration(text: str) -> timedelta | None:
    """``text`` as a timedelta; None for anything else."""
    span = _SPAN.fullmatch(text.strip().lower())
    return timedelta(**{_UNITS[span[2]]: int(span[1])}) if span else None


def spoken(seconds: float) -> str:
    """A duration the way it is written here: 259200 -> "3d", 90 -> "90s"."""
    seconds = int(seconds)
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
