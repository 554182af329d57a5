"""Cron expressions as users write them, as APScheduler 3 triggers.

Five fields (minute hour day month weekday) as in crontab, or six with seconds first. Weekday
numbers follow crontab (0 or 7 = Sunday, 1 = Monday); APScheduler's own numbering starts at
Monday, so numbers are turned into names before APScheduler sees them.
"""

from __future__ import annotations

import re

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """Raises ValueError with the reason for an expression APScheduler cannot use."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"{expression!r} needs 5 fields (or 6 with seconds first)")
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    weekday = re.sub(r"\d+", lambda m: _WEEKDAYS[int(m.group()) % 7], weekday)
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday,
        timezone=timezone,
    )
