"""Posts from real feeds over HTTP and Markdown files; issues made from them."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES
from tests.helpers import store_snapshot

FEEDS = FIXTURES / "feeds"
POSTS = FIXTURES / "posts"


def feeds_config(cli, *urls: str) -> None:
    tables = "".join(f'\n[[feeds]]\nurl = "{u}"\nlist = "blog"\nmode = "draft"\n' for u in urls)
    cli.config.write_text(cli.config.read_text() + tables)


def posts(cli) -> list[dict]:
    return json.loads(cli.ok("post", "ls", "--json").stdout)


def test_fetch_configured_feeds_conditionally_and_survive_a_broken_one(cli, http_server) -> None:
    rss = (FEEDS / "founder_rss2.xml").read_bytes()
    http_server["/rss"] = (200, rss, {"ETag": '"v1"'})
    http_server["/atom"] = (200, (FEEDS / "atom.xml").read_bytes(), {})
    http_server["/broken"] = (500, b"oops", {})
    http_server["/html"] = (200, (FEEDS / "not_a_feed.html").read_bytes(), {})
    urls = [http_server.url(p) for p in ("/rss", "/broken", "/html", "/atom")]
    feeds_config(cli, *urls)
    result = cli("post", "fetch")
    assert result.exit_code == 1
    assert f"{urls[0]}: 2 new, 0 updated, 0 unchanged" in result.stdout
    assert f"{urls[3]}: 2 new" in result.stdout
    assert result.stderr.count("Error:") == 2 and "HTTP 500" in result.stderr
    listed = posts(cli)
    assert len(listed) == 4
    assert {"id", "title", "url", "published_at"} <= set(listed[0])
    assert listed == sorted(listed, key=lambda p: p["published_at"], reverse=True)
    # Second poll: the RSS feed answers 304 to our If-None-Match; nothing is duplicated.
    again = cli("post", "fetch")
    assert f"{urls[0]}: not modified" in again.stdout
    assert len(posts(cli)) == 4
    # An edited post is updated in place.
    http_server["/rss"] = (200, rss.replace(b"quietly killing", b"slowly killing"), {})
    out = cli("post", "fetch", urls[0]).stdout
    assert "0 new, 1 updated, 1 unchanged" in out


def test_fetch_one_url_that_is_down(cli, http_server) -> None:
    result = cli("post", "fetch", http_server.url("/missing"))
    assert result.exit_code == 1 and "HTTP 404" in result.stderr
    assert result.stderr.count("\n") == 1


def test_fetch_without_feeds_says_how(cli) -> None:
    result = cli("post", "fetch")
    assert result.exit_code == 1 and "[[feeds]]" in result.stderr


def test_hostile_feed_is_sanitised_before_it_is_stored(cli, http_server) -> None:
    http_server["/hostile"] = (200, (FEEDS / "hostile.xml").read_bytes(), {})
    cli.ok("post", "fetch", http_server.url("/hostile"))
    dump = json.dumps(store_snapshot(cli.config)["posts"]).lower()
    assert "<script" not in dump and "javascript:" not in dump and "onerror" not in dump


def test_markdown_posts(cli) -> None:
    out = cli.ok("post", "add", str(POSTS / "pricing-per-seat.md")).stdout
    assert "new" in out
    assert "unchanged" in cli.ok("post", "add", str(POSTS / "pricing-per-seat.md")).stdout
    result = cli("post", "add", str(POSTS / "missing-title.md"))
    assert result.exit_code == 1 and "title" in result.stderr and "Traceback" not in result.stderr
    assert len(posts(cli)) == 1


def test_issues_from_posts_and_digests(cli, http_server) -> None:
    http_server["/rss"] = (200, (FEEDS / "founder_rss2.xml").read_bytes(), {})
    cli.ok("list", "create", "blog")
    cli.ok("post", "fetch", http_server.url("/rss"))
    cli.ok("post", "add", str(POSTS / "pricing-per-seat.md"))
    newest = posts(cli)[0]
    out = cli.ok("issue", "create", "--latest", "--list", "blog").stdout
    assert "Created draft issue 1" in out
    issue = json.loads(cli.ok("issue", "show", "1", "--json").stdout)
    assert issue["subject"] == newest["title"] and issue["status"] == "draft"
    assert issue["post_ids"] == [newest["id"]] and issue["list"] == "blog"
    # The digest takes every post not yet in an issue to that list, newest first.
    cli.ok("issue", "create", "--digest", "--list", "blog")
    digest = json.loads(cli.ok("issue", "show", "2", "--json").stdout)
    others = [p["id"] for p in posts(cli) if p["id"] != newest["id"]]
    assert digest["kind"] == "digest" and digest["post_ids"] == others
    assert digest["subject"] == "Example Essays digest: 2 new posts"
    refused = cli("issue", "create", "--digest", "--list", "blog")
    assert refused.exit_code == 1 and "nothing for a digest" in refused.stderr
    # Another audience has not had them yet.
    cli.ok("issue", "create", "--digest", "--subject", "All of it")
    listed = json.loads(cli.ok("issue", "ls", "--json").stdout)
    assert [i["id"] for i in listed] == [3, 2, 1]
    assert {"id", "subject", "status", "scheduled_at"} <= set(listed[0])


def test_issue_errors(cli) -> None:
    assert "no posts yet" in cli("issue", "create", "--latest").stderr
    assert "no post with id 9" in cli("issue", "create", "--post", "9").stderr
    assert "exactly one" in cli("issue", "create", "--latest", "--digest").stderr
    cli.ok("post", "add", str(POSTS / "pricing-per-seat.md"))
    bad = cli("issue", "create", "--latest", "--subject", "\r\n")
    assert bad.exit_code == 1 and "subject" in bad.stderr
    injected = cli.ok("issue", "create", "--latest", "--subject", "Hi\r\nBcc: x@example.org")
    assert "'Hi Bcc: x@example.org'" in injected.stdout
    assert "no issue with id 42" in cli("issue", "show", "42").stderr


def test_a_digest_feed_backlog_stays_out_of_the_scheduled_digest(cli, http_server) -> None:
    from newsletter.config import database_url, load_settings
    from newsletter.issues.service import create_issue
    from newsletter.store import connect, writer_sessions

    rss = (FEEDS / "founder_rss2.xml").read_bytes()
    http_server["/feed"] = (200, rss, {})
    url = http_server.url("/feed")
    cli.config.write_text(
        cli.config.read_text() + f'\n[[feeds]]\nurl = "{url}"\nlist = "blog"\nmode = "digest"\n'
    )
    cli.ok("list", "create", "blog")
    cli.ok("post", "fetch")  # first poll: the backlog (2 posts) is recorded as seen
    new_item = (
        b"<item><title>Fresh essay</title><link>https://founder.example.com/new/</link>"
        b"<guid>fresh-1</guid><pubDate>Mon, 01 Apr 2024 08:00:00 +0000</pubDate>"
        b"<description>New.</description></item>"
    )
    http_server["/feed"] = (200, rss.replace(b"<item>", new_item + b"<item>", 1), {})
    assert "1 new" in cli.ok("post", "fetch").stdout
    settings = load_settings(cli.config)
    engine = connect(database_url(settings))
    with writer_sessions(engine)() as session, session.begin():
        issue = create_issue(session, settings, digest=True, list_name="blog", waiting_only=True)
        titles = [p.title for p in issue.posts]
    engine.dispose()
    assert titles == ["Fresh essay"]
    # A digest made by hand still offers everything not yet sent to the list.
    out = cli.ok("issue", "create", "--digest", "--list", "blog").stdout
    assert "2 posts" in out
