"""`newsletter post fetch|add|ls`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import typer
from rich.table import Table

from ..content import library
from ..content.fetch import USER_AGENT
from ..errors import InvalidInputError
from ..issues.announce import announce_pending
from ..store.errors import translating
from .context import app_context
from .output import JSON_OPT, console, err_console, print_json_array

post_app = typer.Typer(help="Posts: from the blog's feeds or Markdown files.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(post_app, name="post")


@post_app.command("fetch")
def fetch(
    ctx: typer.Context,
    url: str | None = typer.Argument(None, help="Poll this feed URL instead of \\[\\[feeds]]."),
) -> None:
    """Poll the configured feeds now (or one URL); new and edited posts are stored."""
    nl = app_context(ctx)
    configured = {f.url: f for f in nl.settings.feeds}
    urls = [url] if url else list(configured)
    if not urls:
        raise InvalidInputError("no feeds configured: add a [[feeds]] table or pass a URL")
    failed = 0
    fetch_settings = nl.settings.fetch
    with (
        translating(),
        httpx.Client(headers={"User-Agent": USER_AGENT}) as client,
        ThreadPoolExecutor(max_workers=fetch_settings.concurrency) as pool,
    ):
        sessions = nl.sessions()

        def poll(feed_url: str) -> library.FeedOutcome:
            feed = configured.get(feed_url)
            return library.poll_feed(
                sessions,
                feed_url,
                mode=feed.mode if feed else "",
                announce_backlog=feed.announce_backlog if feed else False,
                client=client,
                deadline=fetch_settings.deadline_seconds,
            )

        # a few at a time, so a slow feed does not hold up the rest; reported in order
        for feed_url, outcome in zip(urls, pool.map(poll, urls), strict=True):
            if outcome.status == "error":
                failed += 1
                err_console.print(f"Error: {outcome.error}")
            elif outcome.status == "not_modified":
                console.print(f"{feed_url}: not modified")
            else:
                console.print(
                    f"{feed_url}: {outcome.new} new, {outcome.updated} updated, "
                    f"{outcome.unchanged} unchanged"
                )
    with nl.transaction() as session:
        for a in announce_pending(session, nl.settings):
            what = "scheduled to send now" if a.mode == "send" else "drafted"
            console.print(f"Issue {a.issue_id} {what} from post {a.post_id}.")
    if failed:
        raise typer.Exit(1)


@post_app.command("add")
def add(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Markdown file with front matter (title, date...)."),
) -> None:
    """Add (or update) a post from a Markdown file."""
    nl = app_context(ctx)
    with nl.transaction() as session:
        post, change = library.add_markdown_post(session, file, base_url=nl.settings.site.base_url)
    console.print(f"Post {post.id} {change}: {post.title}")


@post_app.command("ls")
def ls(
    ctx: typer.Context,
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """List posts, newest first."""
    with app_context(ctx).transaction() as session:
        rows = [library.post_row(p) for p in library.iter_posts(session, limit=limit)]
    if as_json:
        print_json_array(rows)
        return
    table = Table("id", "published", "title", "url")
    for r in rows:
        table.add_row(str(r["id"]), (r["published_at"] or "")[:16], r["title"], r["url"])
    console.print(table)
