"""`newsletter run` (the scheduler daemon) and `newsletter schedule ls`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from ..cron import cron_trigger
from ..issues import schedule
from ..scheduler import Daemon
from ..store.errors import translating
from ..store.models import Feed, utcnow
from .context import app_context
from .output import JSON_OPT, console, print_json_array
from .signals import StopSignals

schedule_app = typer.Typer(help="What will happen when.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.add_typer(schedule_app, name="schedule")


def run(ctx: typer.Context) -> None:
    """The scheduler daemon: sends due issues, polls feeds, builds digests, retries."""
    nl = app_context(ctx)
    nl.sessions()  # config and schema problems are reported before anything starts
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request (and redirect)
    daemon = Daemon(nl.settings, nl.engine)
    with StopSignals(daemon.stop) as signals, translating():
        daemon.run()
    if signals.exit_status:
        raise typer.Exit(signals.exit_status)


def _local(when: datetime | None, tz: str) -> str | None:
    return when.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes") if when else None


@schedule_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Scheduled issues, feed polls and the next digest, soonest first."""
    nl = app_context(ctx)
    settings, now = nl.settings, utcnow()
    tz = settings.scheduler.timezone
    rows = []
    with nl.transaction() as session:
        for issue in schedule.upcoming(session):
            rows.append({
                "what": "issue", "id": issue.id, "subject": issue.subject,
                "at": issue.scheduled_at.isoformat() if issue.scheduled_at else None,
                "local": _local(issue.scheduled_at, tz),
            })  # fmt: skip
        stored = {f.url: (f.last_fetched_at, f.last_error) for f in session.query(Feed)}
    for feed in settings.feeds:
        last, error = stored.get(feed.url, (None, ""))
        due = (last + timedelta(minutes=feed.interval_minutes)) if last else now
        rows.append({
            "what": "feed", "id": feed.url,
            "subject": f"poll ({feed.mode})" + (f"; last poll failed: {error}" if error else ""),
            "at": max(due, now).isoformat(), "local": _local(max(due, now), tz),
            "last_fetched_at": last.isoformat() if last else None, "last_error": error or None,
        })  # fmt: skip
    lists = sorted({f.list for f in settings.feeds if f.mode == "digest" and f.list}
                   | ({settings.digest.list} if settings.digest.list else set()))  # fmt: skip
    if lists:
        trigger = cron_trigger(settings.digest.cron, settings.digest.timezone)
        nxt = trigger.get_next_fire_time(None, now)
        rows.append({
            "what": "digest", "id": ",".join(lists), "subject": f"cron {settings.digest.cron}",
            "at": nxt.isoformat() if nxt else None, "local": _local(nxt, tz),
        })  # fmt: skip
    rows.sort(key=lambda r: r["at"] or "")
    if as_json:
        print_json_array(rows)
        return
    table = Table("when (" + tz + ")", "what", "id", "detail")
    for r in rows:
        table.add_row(r["local"] or "", r["what"], str(r["id"]), r["subject"])
    console.print(table)
