"""`newsletter issue create|ls|show|preview|lint`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from ..errors import InvalidInputError
from ..issues import lint as lint_
from ..issues import preview as preview_
from ..issues import service
from .context import app_context
from .output import console, print_json, print_json_array

issue_app = typer.Typer(help="Issues: editions of the newsletter.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(issue_app, name="issue")


def _parse_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"--since {value!r} is not an ISO 8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    subject: str | None = typer.Option(None, "--subject", help="Default: the post's title."),
    preheader: str | None = typer.Option(None, "--preheader", help="Inbox preview text."),
) -> None:
    """Create a draft issue from a post or as a digest."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        issue = service.create_issue(
            session,
            nl.settings,
            post_id=post,
            latest=latest,
            digest=digest,
            since=_parse_date(since),
            list_name=list_name,
            subject=subject,
            preheader=preheader,
        )
        n_posts = len(issue.posts)
        audience = service.audience_size(session, issue)
    console.print(
        f"Created draft issue {issue.id}: {issue.subject!r} ({issue.kind}, {n_posts} post"
        f"{'s' if n_posts != 1 else ''}, {audience} active recipients now)."
    )
    console.print(f"Next: newsletter issue preview {issue.id}")


@issue_app.command("ls")
def ls(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
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
    issue_id: int = typer.Argument(..., help="Issue id."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Status of one issue, its posts and its audience."""
    with app_context(ctx).transaction() as session:
        issue = service.get_issue(session, issue_id)
        row = service.issue_row(issue)
        row["audience"] = service.audience_size(session, issue)
        row["posts"] = [{"id": p.id, "title": p.title, "url": p.url} for p in issue.posts]
    if as_json:
        print_json(row)
        return
    console.print(f"Issue {row['id']}: {row['subject']}")
    console.print(f"  status    {row['status']}")
    console.print(f"  kind      {row['kind']}")
    console.print(f"  list      {row['list'] or '(every active subscriber)'}")
    console.print(f"  audience  {row['audience']} active subscribers")
    for p in row["posts"]:
        console.print(f"  post {p['id']:<5} {p['title']}")


@issue_app.command("preview")
def preview(
    ctx: typer.Context,
    issue_id: int = typer.Argument(..., help="Issue id."),
    out: Path = typer.Option(Path("preview"), "--out", help="Folder for the .html and .eml."),
    to: str | None = typer.Option(None, "--to", help="Also send one test message here."),
) -> None:
    """Write the issue as HTML and .eml for a sample subscriber (and optionally send a test)."""
    if to is not None:
        raise InvalidInputError("test sends (--to) are not available yet: files only for now")
    nl = app_context(ctx)
    with nl.transaction() as session:
        issue = service.get_issue(session, issue_id)
        prepared = preview_.prepare(issue, nl.settings)
        recipient = preview_.sample_recipient(session, issue)
    result = preview_.write_preview(prepared, recipient, out)
    console.print(f"HTML: {result.html_path} ({result.size // 1024} KB)")
    console.print(f".eml: {result.eml_path} (personalised for {recipient.email})")


@issue_app.command("lint")
def lint(
    ctx: typer.Context,
    issue_id: int = typer.Argument(..., help="Issue id."),
) -> None:
    """Check size, alt text, links, unsubscribe, postal address, subject and spam score."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        issue = service.get_issue(session, issue_id)
        prepared = preview_.prepare(issue, nl.settings)
        recipient = preview_.sample_recipient(session, issue)
    html, text = prepared.html_for(recipient), prepared.text_for(recipient)
    findings = lint_.lint_message(
        subject=issue.subject,
        html=html,
        text=text,
        unsubscribe_url=f"{nl.settings.site.base_url.rstrip('/')}/unsubscribe/{recipient.token}",
        postal_address=nl.settings.site.postal_address,
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
