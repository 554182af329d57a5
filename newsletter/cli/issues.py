"""`newsletter issue ...`: the commands that make, change, show, send and schedule issues
(`newsletter issue --help` lists them). Each parses its options, calls the core and prints."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..delivery.send import SendSummary, default_workers, send_issue, set_issue_status
from ..delivery.send import abort as abort_send
from ..durations import duration
from ..errors import InvalidInputError
from ..issues import archive as archive_
from ..issues import lint as lint_
from ..issues import plan as plan_
from ..issues import preview as preview_
from ..issues import report as report_
from ..issues import schedule, service
from ..issues.render import prepare
from ..issues.report import Engagement, IssueReport
from ..reports import issue as issue_page
from ..reports import page
from ..store.errors import translating
from ..store.models import FINAL_DELIVERY_STATUSES
from ..tracking.robots import NOT_CLICKS
from .context import AppContext, app_context
from .output import ISSUE_ID, JSON_OPT, console, err_console, print_json, print_json_array
from .params import since_date
from .previews import show_preview
from .segments import expression_usage, print_warnings
from .signals import StopSignals
from .tables import print_rows

issue_app = typer.Typer(help="Issues: editions of the newsletter.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(issue_app, name="issue")


@issue_app.command("create")
def create(
    ctx: typer.Context,
    post: int | None = typer.Option(None, "--post", help="Make the issue from this post id."),
    latest: bool = typer.Option(False, "--latest", help="Make it from the newest post."),
    digest: bool = typer.Option(False, "--digest", help="A digest of posts not yet sent."),
    since: str | None = typer.Option(None, "--since", help="Digest: only posts since this date."),
    list_name: str | None = typer.Option(
        None, "--list", "-l", help="Send to this list (default: every active subscriber)."
    ),
    segment: str | None = typer.Option(
        None, "--segment", help="Only the subscribers of this segment (`segment ls`)."
    ),
    where: str | None = typer.Option(
        None, "--where", help="Only those matching this expression: 'tag:customer and not ...'."
    ),
    exclude_lists: list[str] = typer.Option(
        [], "--exclude-list", help="Leave out the members of this list (repeatable)."
    ),
    exclude_segments: list[str] = typer.Option(
        [], "--exclude-segment", help="Leave out the subscribers of this segment (repeatable)."
    ),
    resend_of: int | None = typer.Option(
        None, "--resend-of", help="A resend of this issue's content (with --to)."
    ),
    to: str | None = typer.Option(
        None, "--to", help="Resend to: non-clickers, non-openers or not-delivered."
    ),
    after: str | None = typer.Option(
        None, "--after", help="Resend: schedule it this long after the first finished (3d, 12h)."
    ),
    subject: str | None = typer.Option(None, "--subject", help="Default: the post's title."),
    preheader: str | None = typer.Option(None, "--preheader", help="Inbox preview text."),
    archive: bool | None = typer.Option(
        None,
        "--archive/--no-archive",
        help="In the public web archive, or not. Default: as its list says (`list edit "
        "--public/--private`); an issue to every subscriber is public; a resend is not.",
    ),
) -> None:
    """Create a draft issue from a post, as a digest, or as a resend of another issue."""
    nl = app_context(ctx)
    audience = service.Audience(where, segment, tuple(exclude_lists), tuple(exclude_segments))
    with expression_usage(), nl.transaction() as session:
        if resend_of is not None or to is not None:
            if post is not None or latest or digest or list_name or preheader is not None:
                raise InvalidInputError(
                    "a resend has its first issue's posts, list and preheader: "
                    "give only --resend-of ID --to WHO [--subject] [--after]"
                )
            if resend_of is None or to is None:
                raise InvalidInputError("a resend needs both --resend-of ID and --to WHO")
            issue = service.create_resend(
                session,
                nl.settings,
                resend_of=resend_of,
                to=to,
                subject=subject,
                after=_duration(after),
                archive=archive,
                audience=audience,
            )
        else:
            if after is not None:
                raise InvalidInputError("--after is for resends (--resend-of ID --to WHO)")
            issue = service.create_issue(
                session,
                nl.settings,
                post_id=post,
                latest=latest,
                digest=digest,
                since=since_date(since),
                list_name=list_name,
                subject=subject,
                preheader=preheader,
                archive=archive,
                audience=audience,
            )
        n_posts = len(issue.posts)
        audience_now = service.audience_size(session, issue)
        when = issue.scheduled_at
    kind = "scheduled" if when else "draft"
    console.print(
        f"Created {kind} issue {issue.id}: {issue.subject!r} ({issue.kind}, {n_posts} post"
        f"{'s' if n_posts != 1 else ''}, {audience_now} active recipients now)."
    )
    if when:
        console.print(f"It is sent at {when.strftime('%Y-%m-%d %H:%M')} UTC, to whoever "
                      "matches then.")  # fmt: skip
    console.print(f"Next: newsletter issue preview {issue.id}, issue plan {issue.id}")


def _duration(value: str | None) -> timedelta | None:
    if value is None:
        return None
    span = duration(value)
    if span is None:
        raise InvalidInputError(f"--after {value!r}: use a duration such as 3d, 12h or 2w")
    return span


@issue_app.command("edit")
def edit(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    subject: str | None = typer.Option(None, "--subject", help="New subject (before sending)."),
    preheader: str | None = typer.Option(None, "--preheader", help="New inbox preview text."),
    archive: bool | None = typer.Option(
        None, "--archive/--no-archive", help="Put it in the public web archive, or take it out."
    ),
) -> None:
    """Change an issue's subject or preheader (before it is sent), or its archive setting."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        issue = service.edit_issue(
            session, issue_id, subject=subject, preheader=preheader, archive=archive
        )
        public = archive_.is_public(issue, nl.settings)
        subject_now = issue.subject
    console.print(
        f"Issue {issue_id}: {subject_now!r}; archive: {'public' if public else 'private'}."
    )


@issue_app.command("unpublish")
def unpublish(ctx: typer.Context, issue_id: int = ISSUE_ID) -> None:
    """Take an issue out of the public web archive and its feed (its recipients' web-view
    links keep working)."""
    with app_context(ctx).transaction() as session:
        service.edit_issue(session, issue_id, archive=False)
    console.print(f"Issue {issue_id} is no longer in the public archive.")


@issue_app.command("ls")
def ls(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List issues, newest first."""
    with app_context(ctx).transaction() as session:
        rows = [service.issue_row(i) for i in service.iter_issues(session)]
    if as_json:
        print_json_array(rows)
        return
    table = Table("id", "status", "kind", "list", "scheduled", "subject")
    for r in rows:
        table.add_row(
            str(r["id"]), r["status"], r["kind"], r["list"] or "(all)",
            (r["scheduled_at"] or "")[:16], r["subject"],
        )  # fmt: skip
    console.print(table)


@issue_app.command("show")
def show(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    as_json: bool = JSON_OPT,
) -> None:
    """Status of one issue, its posts and its audience."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        report = report_.issue_report(session, nl.settings, issue_id)
    if as_json:
        print_json(report.as_json())
        return
    console.print(f"Issue {report.id}: {report.subject}")
    console.print(f"  status    {report.status}")
    if report.pause_reason:
        console.print(f"  paused    by the reputation guard: {report.pause_reason}")
    console.print(f"  kind      {report.kind}")
    console.print(f"  list      {report.list_name or '(every active subscriber)'}")
    console.print(f"  audience  {report.audience} active subscribers")
    if report.audience_rule:
        console.print(f"  rule      {_rule_line(report.audience_rule)}")
    console.print(f"  archive   {'public' if report.public else 'private'}: {report.web_url}")
    for p in report.posts:
        console.print(f"  post {p.id:<5} {p.title}")
    if report.local_time:
        console.print(f"  hour      {report.local_time} in each reader's time zone")
    if any(report.deliveries.values()):
        console.print("  " + ", ".join(f"{n} {s}" for s, n in report.deliveries.items() if n))
        if report.local_time:
            sent, waiting = report.deliveries.get("sent", 0), report.waiting_for_hour
            nxt = report.next_local_at.isoformat(timespec="minutes") if report.next_local_at else ""
            console.print(f"  local     {sent} sent, {waiting} waiting for their hour"
                          + (f" (next at {nxt} UTC)" if waiting else ""))  # fmt: skip
        if report.rate_per_second:
            console.print(f"  rate      {report.rate_per_second:.0f} messages/s")
        for name, by_status in report.relays.items():
            counts = ", ".join(f"{n} {s}" for s, n in by_status.items() if n)
            console.print(f"  relay     {name}: {counts}")
    if any(report.bounces.values()):
        b = report.bounces
        console.print(f"  reports   {b['hard']} hard bounces, {b['soft']} soft, "
                      f"{b['complaint']} complaints")  # fmt: skip
    for e in report.errors:
        console.print(f"  {e.count:>6} {e.status}: {e.reply}")
    for d in report.backoffs:
        console.print(f"  backing off {', '.join(d.domains)} until "
                      f"{d.until.isoformat(timespec='seconds')} "
                      f"(throttled {d.strikes}x in a row: {d.reply})")  # fmt: skip
    if report.started_at or report.clicks.total or report.clicks.machine:
        _print_engagement(report)


def _rule_line(rule: dict) -> str:
    """'segment loyal; excluding lists staff; resend of 3 to non-clickers'."""
    parts = [f"segment {rule['segment']}"] if "segment" in rule else []
    parts += [f"where {rule['where']}"] if "where" in rule else []
    if rule.get("exclude_lists"):
        parts.append(f"excluding lists {', '.join(rule['exclude_lists'])}")
    if rule.get("exclude_segments"):
        parts.append(f"excluding segments {', '.join(rule['exclude_segments'])}")
    if "resend_of" in rule:
        parts.append(f"resend of {rule['resend_of']} to {rule['to']}")
    if "default_cadence" in rule:
        parts.append(f"readers of every post (the list's default: {rule['default_cadence']})")
    return "; ".join(parts)


LINKS_SHOWN = 10


def _print_engagement(report: IssueReport) -> None:
    """People's clicks first, machines' apart; the most clicked links; opens when counted;
    unsubscribes and why."""
    console.print(f"  clicks    {_engagement(report.clicks)}")
    links = report.clicks.links
    if links:
        rows = [(link.total, link.unique, link.url) for link in links[:LINKS_SHOWN]]
        print_rows(("clicks", "unique", "link"), rows, right=(0, 1), indent=12)
        if len(links) > LINKS_SHOWN:
            more = len(links) - LINKS_SHOWN
            console.print(f"{'':12}and {more} more (`issue report {report.id} --out` lists all)")
    if report.opens is not None:
        console.print(f"  opens     {_engagement(report.opens)}")
    why = ", ".join(f"{reason} {n}" for reason, n in report.unsubscribe_reasons.items())
    console.print(f"  unsubscribed {report.unsubscribes}" + (f" (why: {why})" if why else ""))


def _engagement(e: Engagement) -> str:
    """One line: "12 (9 unique) by people; 30 by machines (burst 20, user_agent 10); not
    counted: head 2" (HEAD and prefetch requests are never clicks)."""
    rules = sorted(e.filtered.items(), key=lambda item: (-item[1], item[0]))
    machines = ", ".join(f"{r} {n}" for r, n in rules if r not in NOT_CLICKS)
    ignored = ", ".join(f"{r} {n}" for r, n in rules if r in NOT_CLICKS)
    line = f"{e.total} ({e.unique} unique) by people; {e.machine} by machines"
    line += f" ({machines})" if machines else ""
    return line + (f"; not counted: {ignored}" if ignored else "")


@issue_app.command("plan")
def plan(ctx: typer.Context, issue_id: int = ISSUE_ID, as_json: bool = JSON_OPT) -> None:
    """Who would get the issue if it were sent now, who is left out and why, by list and by
    receiving domain, and how long it takes at the configured rate."""
    nl = app_context(ctx)
    with nl.reading() as session:
        found = plan_.plan_issue(session, nl.settings, issue_id)
    if as_json:
        print_json(found.as_json())
        return
    print_warnings(found.warnings)
    if found.started:
        err_console.print(f"Note: issue {issue_id} has started sending: its recipients are "
                          "fixed in its ledger; this is who would match now.")  # fmt: skip
    x = found.excluded
    console.print(f"Issue {found.issue}: {found.recipients} recipients")
    console.print(f"  left out   {x['suppressed']} suppressed (unsubscribed, bounced, "
                  f"complained), {x['unconfirmed']} unconfirmed, {x['not_matching']} not in "
                  f"its segment, {x['exclusions']} excluded")  # fmt: skip
    if x["preferences"]:
        console.print(f"  cadence    {x['preferences']} left out by their own cadence (every "
                      "post, weekly or monthly digest)")  # fmt: skip
    if found.by_list:
        console.print("  by list    " + ", ".join(f"{k} {n}" for k, n in found.by_list.items()))
    if found.by_domain:
        console.print("  by domain  " + ", ".join(f"{k} {n}" for k, n in found.by_domain.items()))
    if found.estimated_seconds is None:
        console.print("  duration   no rate limit ([sending] rate_per_second and rate_per_hour "
                      "are 0): as fast as the relay accepts")  # fmt: skip
    else:
        console.print(f"  duration   about {_span(found.estimated_seconds)} at "
                      f"{found.rate_per_second:g} messages/s")  # fmt: skip
    for address in found.sample:
        console.print(f"  {address}")


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@issue_app.command("report")
def write_report(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    out: Path = typer.Option(..., "--out", help="The HTML file to write."),
) -> None:
    """Write the issue's report as one HTML file with charts (opens offline): funnel, clicks
    over the first 72 hours, links, people and machines, bounces. Needs the reports extra."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        values = issue_page.gather(session, nl.settings, issue_id)
    size = page.save(out, page.issue_html(values))
    console.print(f"Wrote {out} ({size // 1024 or 1} KB).")


@issue_app.command("send")
def send(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    workers: int = typer.Option(
        0,
        "--workers",
        min=0,
        help="Sending processes (default: one on SQLite, one per CPU core on PostgreSQL).",
    ),
    only_missed: bool = typer.Option(
        False, "--only-missed", help="Retry the failed and deferred deliveries only."
    ),
) -> None:
    """Send an issue now; returns when every delivery is sent, deferred or failed."""
    started = datetime.now(UTC)  # a send finished by another process after this: joined
    nl = app_context(ctx)
    stop = threading.Event()
    with StopSignals(stop, on_abort=abort_send) as signals:
        summary = _send_with_progress(nl, issue_id, workers, only_missed, stop, started)
    c = summary.counts
    head = "Stopped" if summary.stopped else f"Issue {issue_id} {summary.status}"
    console.print(
        f"{head}: {c.get('sent', 0)} sent, {c.get('deferred', 0)} deferred, "
        f"{c.get('failed', 0)} failed, {c.get('bounced', 0)} bounced, "
        f"{c.get('skipped', 0)} skipped, {c.get('pending', 0) + c.get('sending', 0)} not sent "
        f"({summary.seconds:.1f} s)."
    )
    if summary.pause_reason:
        err_console.print(f"Issue {issue_id} paused itself: {summary.pause_reason}")
    if c.get("deferred"):
        console.print(f"Deferred ones are retried by `newsletter issue send {issue_id}` later.")
    if c.get("pending") and not summary.stopped:
        console.print(f"{c['pending']} wait for their reader's hour (issue schedule --local): "
                      "`newsletter run` sends each at its time.")  # fmt: skip
    if signals.exit_status:
        raise typer.Exit(signals.exit_status)


def _send_with_progress(
    nl: AppContext,
    issue_id: int,
    workers: int,
    only_missed: bool,
    stop: threading.Event,
    started: datetime,
) -> SendSummary:
    with nl.transaction() as session:
        total = service.audience_size(session, service.get_issue(session, issue_id))
    columns = (
        TextColumn("Sending"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("send", total=total, rate="")
        began = time.monotonic()

        def show(counts: dict[str, int]) -> None:
            done = sum(counts.get(s, 0) for s in FINAL_DELIVERY_STATUSES)
            elapsed = max(time.monotonic() - began, 1e-6)
            bar.update(task, completed=done, total=max(total, sum(counts.values())),
                       rate=f"{counts.get('sent', 0) / elapsed:,.0f}/s")  # fmt: skip

        with translating():
            return send_issue(
                nl.engine, nl.config_path, issue_id,
                workers=workers or default_workers(nl.engine), only_missed=only_missed,
                progress=show, stop=stop, started_at=started,
            )  # fmt: skip


def _set_status(ctx: typer.Context, issue_id: int, action: str) -> None:
    with app_context(ctx).transaction() as session:
        issue = set_issue_status(session, issue_id, action)
    console.print(f"Issue {issue_id} is now {issue.status}.")


@issue_app.command("pause")
def pause(ctx: typer.Context, issue_id: int = ISSUE_ID) -> None:
    """Stop sending after the batches in flight; `resume` continues."""
    _set_status(ctx, issue_id, "pause")


@issue_app.command("resume")
def resume(ctx: typer.Context, issue_id: int = ISSUE_ID) -> None:
    """Allow a paused issue to send again (run `issue send` or a worker)."""
    _set_status(ctx, issue_id, "resume")


@issue_app.command("cancel")
def cancel(ctx: typer.Context, issue_id: int = ISSUE_ID) -> None:
    """Cancel an issue: nothing more is sent."""
    _set_status(ctx, issue_id, "cancel")


@issue_app.command("missed")
def missed(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    as_json: bool = JSON_OPT,
) -> None:
    """Who has not received the issue, and why."""
    with app_context(ctx).reading() as session:
        issue = service.get_issue(session, issue_id)
        rows = report_.missed(session, issue)
        if as_json:
            print_json_array(rows)
            return
        n = 0
        for r in rows:
            n += 1
            console.print(f"{r['email'] or '(erased)'}  {r['reason']}")
        never = issue.started_at is None
        audience = service.audience_size(session, issue) if never else 0
    if never:
        console.print(f"Issue {issue_id} is {issue.status} and was never sent: none of its "
                      f"{audience} recipients has received it.")  # fmt: skip
    else:
        console.print(f"{n} recipient(s) have not received issue {issue_id}.")


@issue_app.command("preview")
def preview(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    out: Path = typer.Option(Path("preview"), "--out", help="Folder for the .html and .eml."),
    to: str | None = typer.Option(None, "--to", help="Also send one test message here."),
) -> None:
    """Write the issue as HTML and .eml for a sample subscriber (and optionally send a test)."""
    show_preview(app_context(ctx), lambda s: service.get_issue(s, issue_id), out, to)


@issue_app.command("lint")
def lint(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
) -> None:
    """Check size, alt text, links, unsubscribe, postal address, subject and spam score."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        issue = service.get_issue(session, issue_id)
        prepared = prepare(issue, nl.settings)
        recipient = preview_.sample_recipient(session, issue)
    findings = lint_.lint_prepared(
        prepared, recipient, subject=issue.subject, postal_address=nl.settings.site.postal_address
    )
    score = lint_.spam_score(prepared.message_bytes(recipient))
    if score is None:
        findings.append(lint_.Finding("info", "spamassassin not installed: spam score skipped"))
    else:
        value, rules = score
        level = "error" if value >= lint_.SPAM_BAR else "info"
        findings.append(lint_.Finding(level, f"SpamAssassin score {value} ({', '.join(rules)})"))
    for f in findings:
        console.print(f"{f.level}: {f.message}")
    errors = sum(f.level == "error" for f in findings)
    console.print(f"{errors} error(s), {sum(f.level == 'warning' for f in findings)} warning(s).")
    if errors:
        raise typer.Exit(1)


@issue_app.command("schedule")
def schedule_(
    ctx: typer.Context,
    issue_id: int = ISSUE_ID,
    at: str | None = typer.Option(None, "--at", help="Local time, 'YYYY-MM-DD HH:MM'."),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="Time zone of --at, e.g. Europe/Stockholm (default: \\[scheduler] timezone).",
    ),
    local: str | None = typer.Option(
        None, "--local", help="'HH:MM' in each reader's own time zone (instead of --at)."
    ),
    within: str = typer.Option(
        "24h", "--within", help="With --local: every reader gets it within this (e.g. 24h)."
    ),
) -> None:
    """Send the issue at a time (stored in UTC; `newsletter run` sends it), or with --local
    at that hour of each reader's own day."""
    nl = app_context(ctx)
    if (at is None) == (local is None):
        raise InvalidInputError("give --at 'YYYY-MM-DD HH:MM' or --local HH:MM")
    if local is not None:
        span = duration(within)
        if span is None:
            raise InvalidInputError(f"--within {within!r}: use a duration such as 24h or 12h")
        with nl.transaction() as session:
            issue = service.get_issue(session, issue_id)
            zone = nl.settings.list_timezone(
                issue.mailing_list.name if issue.mailing_list else None
            )
            issue = schedule.schedule_local(session, issue, local, within=span, default_zone=zone)
            hour = issue.local_time
        console.print(f"Issue {issue_id} goes to each reader at {hour} their time, within "
                      f"{within} from now (readers with no time zone: {zone}).")  # fmt: skip
        return
    zone = tz or nl.settings.scheduler.timezone
    when = schedule.parse_local_time(at or "", zone)
    with nl.transaction() as session:
        issue = schedule.schedule_issue(session, service.get_issue(session, issue_id), when)
    local_at = when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    utc = when.strftime("%Y-%m-%d %H:%M")
    console.print(f"Issue {issue.id} scheduled for {local_at} {zone} ({utc} UTC).")


@issue_app.command("unschedule")
def unschedule(ctx: typer.Context, issue_id: int = ISSUE_ID) -> None:
    """Take an issue off the schedule (it becomes a draft again)."""
    with app_context(ctx).transaction() as session:
        schedule.unschedule_issue(session, service.get_issue(session, issue_id))
    console.print(f"Issue {issue_id} is a draft again.")
