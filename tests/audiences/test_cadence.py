"""Each reader's cadence: a send-mode feed's posts go at once to "every post" readers and in
one digest to weekly readers, exactly once, across daemon restarts (real `newsletter run`,
aiosmtpd, a feed served over HTTP)."""

from __future__ import annotations

import email
import email.policy
import json
from collections import Counter

from tests.conftest import FIXTURES
from tests.delivery.test_daemon import Daemon, daemon_config, wait_until

FEEDS = FIXTURES / "feeds"
NEVER = "0 0 1 1 *"  # the weekly digest's time, while posts arrive: not during the test


def _item(n: int) -> bytes:
    return (
        f"<item><title>Fresh essay {n}</title>"
        f"<link>https://founder.example.com/2024/05/fresh-{n}/</link>"
        f"<guid>https://founder.example.com/?p=30{n}</guid>"
        f"<pubDate>Wed, 0{n} May 2024 08:00:00 +0000</pubDate>"
        f"<description>Essay number {n}.</description></item>"
    ).encode()


def _config(cli, server, feed_url: str, weekly: str) -> None:
    base = cli.config.read_text().split("\n[[feeds]]")[0].split("\n[smtp]")[0]
    cli.config.write_text(
        base
        + f'\n[[feeds]]\nurl = "{feed_url}"\nlist = "blog"\nmode = "send"\n'
        + "interval_minutes = 0.01\n"
    )
    daemon_config(cli, server, extra=f'\n[cadence]\nweekly = "{weekly}"\n')


def _subjects(server, rcpt: str) -> list[str]:
    found = []
    for m in server.handler.messages:
        if rcpt in m.rcpt_tos:
            found.append(email.message_from_bytes(m.content, policy=email.policy.default))
    return [str(msg["Subject"]) for msg in found], found


def test_every_post_reader_gets_each_post_and_weekly_reader_one_digest(
    cli, smtp_server, http_server
) -> None:
    server = smtp_server()
    rss = (FEEDS / "founder_rss2.xml").read_bytes()
    http_server["/feed"] = (200, rss, {})
    feed_url = http_server.url("/feed")
    _config(cli, server, feed_url, NEVER)
    cli.ok("list", "create", "blog")
    cli.ok("subscriber", "add", "each@example.com", "--list", "blog")
    cli.ok("subscriber", "add", "weekly@example.com", "--list", "blog")
    out = cli.ok("subscriber", "set", "weekly@example.com", "--cadence", "weekly", "--list", "blog")
    assert "cadence on blog: weekly" in out.stdout
    shown = json.loads(cli.ok("subscriber", "show", "weekly@example.com", "--json").stdout)
    assert shown["cadences"] == {"blog": "weekly"}

    daemon = Daemon(cli.config)
    daemon.wait_for(f"feed.poll url={feed_url} status=fetched new=2")  # the backlog: not mailed
    items = b""
    for n in (1, 2, 3):
        items = _item(n) + items
        http_server["/feed"] = (200, rss.replace(b"<item>", items + b"<item>", 1), {})
        daemon.wait_for(f"feed.issue id={n} ")
        wait_until(lambda n=n: len(server.handler.messages) == n)
        if n == 2:  # a restart in the middle: nothing is sent again, nothing is lost
            assert daemon.stop() == 0
            daemon = Daemon(cli.config)
            daemon.wait_for("scheduler.leader")
    assert daemon.stop() == 0
    subjects, _ = _subjects(server, "each@example.com")
    assert sorted(subjects) == ["Fresh essay 1", "Fresh essay 2", "Fresh essay 3"]
    assert _subjects(server, "weekly@example.com")[0] == []
    plan = json.loads(cli.ok("issue", "plan", "3", "--json").stdout)
    assert plan["recipients"] == 1 and plan["excluded"]["preferences"] == 1

    # The digest's time comes (every 2 s here); restarted twice: one digest, the three posts.
    _config(cli, server, feed_url, "*/2 * * * * *")
    daemon = Daemon(cli.config)
    daemon.wait_for("cadence.digest id=4 cadence=weekly")
    wait_until(lambda: len(server.handler.messages) == 4)
    assert daemon.stop() == 0
    daemon = Daemon(cli.config)
    daemon.wait_for("scheduler.leader")
    hits = http_server.hits["/feed"]
    wait_until(lambda: http_server.hits["/feed"] >= hits + 3)  # and a few digest times pass
    assert daemon.stop() == 0
    assert not any("cadence.digest id=5" in line for line in daemon.lines)
    subjects, messages = _subjects(server, "weekly@example.com")
    assert len(messages) == 1
    body = messages[0].get_body(("plain",)).get_content()
    assert all(f"Fresh essay {n}" in body for n in (1, 2, 3))
    assert Counter(r for m in server.handler.messages for r in m.rcpt_tos) == {
        "each@example.com": 3,
        "weekly@example.com": 1,
    }
    digest = json.loads(cli.ok("issue", "show", "4", "--json").stdout)
    assert digest["kind"] == "digest" and digest["cadence"] == "weekly"
    assert digest["deliveries"]["sent"] == 1
    assert json.loads(cli.ok("issue", "missed", "4", "--json").stdout) == []
