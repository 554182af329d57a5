"""`newsletter run` as a real process: schedules, restarts, feeds, digests, failover."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, Cli, write_config

from .test_send_issue import seed, smtp_config

FEEDS = FIXTURES / "feeds"


_running: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test():
    """A failed assertion must not leave a `newsletter run` holding the scheduler lock."""
    yield
    while _running:
        proc = _running.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


class Daemon:
    """A `newsletter run` process whose log lines the test can wait for."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _running.append(self.proc)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._q.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if text in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"daemon exited: {''.join(self.lines)}"
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in the daemon's log:\n{''.join(self.lines)}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        while not self._q.empty():
            self.lines.append(self._q.get())
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def daemon_config(cli, server, extra: str = "", **sending) -> None:
    smtp_config(cli, server, **sending)
    cli.config.write_text(
        cli.config.read_text()
        + "\n[scheduler]\ndispatch_interval_seconds = 0.3\nstandby_poll_seconds = 0.3\n"
        + extra
    )


def due_in(seconds: float) -> datetime:
    """A whole second at least ``seconds`` from now (--at takes whole seconds)."""
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    return when.replace(microsecond=0) + timedelta(seconds=1)


def at(seconds: float) -> str:
    return due_in(seconds).strftime("%Y-%m-%d %H:%M:%S")


def wait_until(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def status(cli, issue: int) -> str:
    return json.loads(cli.ok("issue", "show", str(issue), "--json").stdout)["status"]


def test_scheduled_issue_is_sent_once_and_not_again_after_restart(
    cli, smtp_server, tmp_path
) -> None:
    server = smtp_server()
    daemon_config(cli, server)
    emails = seed(cli, tmp_path, 5)
    daemon = Daemon(cli.config)
    daemon.wait_for("scheduler.leader")
    cli.ok("issue", "schedule", "1", "--at", at(2), "--tz", "UTC")
    daemon.wait_for("issue.start id=1")
    wait_until(lambda: status(cli, 1) == "sent")
    assert daemon.stop() == 0
    restarted = Daemon(cli.config)
    restarted.wait_for("scheduler.leader")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # two seconds of dispatching: nothing is re-sent
        assert len(server.handler.messages) == 5
        time.sleep(0.1)
    assert restarted.stop() == 0
    assert "issue.start" not in "".join(restarted.lines)
    assert sorted(server.handler.recipients()) == sorted(emails)


def test_issue_due_while_the_daemon_was_down_is_sent_on_start(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    daemon_config(cli, server, extra="misfire_grace_seconds = 60\n")
    emails = seed(cli, tmp_path, 4)
    cli.ok("issue", "create", "--latest", "--list", "blog", "--subject", "Too late")
    due = due_in(2)
    cli.ok("issue", "schedule", "1", "--at", due.strftime("%Y-%m-%d %H:%M:%S"), "--tz", "UTC")
    wait_until(lambda: datetime.now(UTC) > due + timedelta(seconds=0.5))  # due while down
    # Issue 2 is "due" far beyond the grace: it must be reported missed, not sent.
    from newsletter.config import database_url, load_settings
    from newsletter.store import connect
    from newsletter.store.models import Issue

    engine = connect(database_url(load_settings(cli.config)))
    with engine.begin() as conn:
        conn.execute(
            Issue.__table__.update()
            .where(Issue.id == 2)
            .values(status="scheduled", scheduled_at=datetime.now(UTC) - timedelta(hours=3))
        )
    engine.dispose()
    daemon = Daemon(cli.config)
    daemon.wait_for("issue.start id=1")
    daemon.wait_for("issue.missed id=2")
    wait_until(lambda: status(cli, 1) == "sent")
    assert daemon.stop() == 0
    assert sorted(server.handler.recipients()) == sorted(emails)
    assert status(cli, 2) == "missed"


def test_time_zones_across_a_dst_change(cli) -> None:
    cli.ok("post", "add", str(FIXTURES / "posts" / "pricing-per-seat.md"))
    for _ in range(3):
        cli.ok("issue", "create", "--latest")
    cli.ok("issue", "schedule", "1", "--at", "2027-03-27 09:00", "--tz", "Europe/Stockholm")
    cli.ok("issue", "schedule", "2", "--at", "2027-03-28 09:00", "--tz", "Europe/Stockholm")
    cli.ok("issue", "schedule", "3", "--at", "2027-10-31 02:30", "--tz", "Europe/Stockholm")
    when = {i["id"]: i["scheduled_at"] for i in json.loads(cli.ok("issue", "ls", "--json").stdout)}
    assert when[1] == "2027-03-27T08:00:00+00:00"  # CET, UTC+1
    assert when[2] == "2027-03-28T07:00:00+00:00"  # CEST, UTC+2, the day the clocks change
    assert when[3] == "2027-10-31T00:30:00+00:00"  # the repeated hour: its first occurrence
    skipped = cli("issue", "schedule", "1", "--at", "2027-03-28 02:30", "--tz", "Europe/Stockholm")
    assert skipped.exit_code == 1 and "does not exist" in skipped.stderr
    past = cli("issue", "unschedule", "1")
    assert (
        past.exit_code == 0
        and json.loads(cli.ok("issue", "show", "1", "--json").stdout)["scheduled_at"] is None
    )
    assert "in the past" in cli("issue", "schedule", "1", "--at", "2001-01-01 09:00").stderr


def test_send_mode_feed_mails_a_new_post_once(cli, smtp_server, http_server, tmp_path) -> None:
    server = smtp_server()
    rss = (FEEDS / "founder_rss2.xml").read_bytes()
    http_server["/feed"] = (200, rss, {})
    http_server["/broken"] = (500, b"down", {})
    feeds = (
        f'\n[[feeds]]\nurl = "{http_server.url("/broken")}"\nlist = "blog"\nmode = "send"\n'
        f"interval_minutes = 0.01\n"
        f'\n[[feeds]]\nurl = "{http_server.url("/feed")}"\nlist = "blog"\nmode = "send"\n'
        f"interval_minutes = 0.01\n"
    )
    cli.config.write_text(cli.config.read_text() + feeds)
    daemon_config(cli, server)
    emails = [f"r{i}@example.com" for i in range(3)]
    cli.ok("list", "create", "blog")
    for e in emails:
        cli.ok("subscriber", "add", e, "--list", "blog")
    daemon = Daemon(cli.config)
    daemon.wait_for(f"feed.poll url={http_server.url('/feed')} status=fetched new=2")
    daemon.wait_for(f"feed.error url={http_server.url('/broken')}")
    # The backlog of a new feed is recorded, not mailed. Now a new post appears.
    new_item = (
        b"<item><title>A brand new essay</title>"
        b"<link>https://founder.example.com/2024/04/new/</link>"
        b"<guid>https://founder.example.com/?p=2000</guid>"
        b"<pubDate>Mon, 01 Apr 2024 08:00:00 +0000</pubDate>"
        b"<description>Fresh.</description></item>"
    )
    http_server["/feed"] = (200, rss.replace(b"<item>", new_item + b"<item>", 1), {})
    daemon.wait_for("feed.issue id=1")
    wait_until(lambda: len(server.handler.messages) == 3)
    hits = http_server.hits["/feed"]
    wait_until(lambda: http_server.hits["/feed"] >= hits + 3)  # several more polls
    assert daemon.stop() == 0
    again = Daemon(cli.config)
    again.wait_for("scheduler.leader")
    hits = http_server.hits["/feed"]
    wait_until(lambda: http_server.hits["/feed"] >= hits + 3)
    assert again.stop() == 0
    assert sorted(server.handler.recipients()) == sorted(emails)  # one message each, once
    issues = json.loads(cli.ok("issue", "ls", "--json").stdout)
    assert len(issues) == 1 and issues[0]["subject"] == "A brand new essay"


def test_digest_on_a_cron_schedule(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    daemon_config(cli, server, extra='\n[digest]\ncron = "*/2 * * * * *"\nlist = "blog"\n')
    emails = seed(cli, tmp_path, 3)  # issue 1 (the latest post) is a draft to "blog"
    cli.ok("post", "add", str(FIXTURES / "posts" / "minimal-post.md"))
    daemon = Daemon(cli.config)
    daemon.wait_for("digest.created id=2 list=blog posts=1")
    daemon.wait_for("digest.skip list=blog")  # the next fire finds nothing new
    wait_until(lambda: len(server.handler.messages) == 3)
    daemon.wait_for("digest.skip list=blog")
    assert daemon.stop() == 0
    assert sorted(server.handler.recipients()) == sorted(emails)
    issues = json.loads(cli.ok("issue", "ls", "--json").stdout)
    assert [i["kind"] for i in issues] == ["digest", "post"]


def test_deferred_deliveries_are_retried_by_the_daemon(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    daemon_config(cli, server, retry_backoff_seconds=1)
    emails = seed(cli, tmp_path, 4)
    server.handler.inject("RCPT", emails[1], "451 4.7.1 Greylisted, come back later")
    daemon = Daemon(cli.config)
    daemon.wait_for("scheduler.leader")
    cli.ok("issue", "schedule", "1", "--at", at(2), "--tz", "UTC")
    wait_until(lambda: status(cli, 1) == "sent", timeout=30)
    assert daemon.stop() == 0
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1


def test_two_daemons_on_postgresql_one_schedules_and_the_other_takes_over(
    postgres_url, smtp_server, tmp_path, capsys
) -> None:
    cli = Cli(write_config(tmp_path / "n.toml", postgres_url), capsys)
    cli.ok("db", "upgrade")
    server = smtp_server()
    daemon_config(cli, server)
    emails = seed(cli, tmp_path, 30)
    first = Daemon(cli.config)
    first.wait_for("scheduler.leader")
    second = Daemon(cli.config)
    second.wait_for("scheduler.standby")
    cli.ok("issue", "schedule", "1", "--at", at(3), "--tz", "UTC")
    first.kill()  # kill -9: the advisory lock goes with its connection
    second.wait_for("scheduler.leader")
    second.wait_for("issue.start id=1")
    wait_until(lambda: status(cli, 1) == "sent")
    assert second.stop() == 0
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1


def test_a_missing_feed_list_stops_the_daemon_with_one_line(cli, smtp_server) -> None:
    server = smtp_server()
    cli.config.write_text(
        cli.config.read_text() + '\n[[feeds]]\nurl = "http://127.0.0.1:9/x"\nlist = "nope"\n'
    )
    daemon_config(cli, server)
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(cli.config), "run"],
        capture_output=True, text=True, timeout=60, env=os.environ,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.strip() == (
        "Error: no list named 'nope' (create it with `newsletter list create`)"
    )


def test_schedule_ls_shows_issues_feeds_and_the_next_digest(cli) -> None:
    cli.config.write_text(
        cli.config.read_text()
        + '\n[[feeds]]\nurl = "https://blog.example.com/feed.xml"\nlist = "blog"\n'
        + 'mode = "digest"\n\n[digest]\ncron = "0 9 * * 1"\ntimezone = "Europe/Stockholm"\n'
        + '\n[scheduler]\ntimezone = "Europe/Stockholm"\n'
    )
    cli.ok("post", "add", str(FIXTURES / "posts" / "pricing-per-seat.md"))
    cli.ok("issue", "create", "--latest")
    cli.ok("issue", "schedule", "1", "--at", "2027-01-04 08:30")
    rows = json.loads(cli.ok("schedule", "ls", "--json").stdout)
    by_kind = {r["what"]: r for r in rows}
    assert by_kind["issue"]["at"] == "2027-01-04T07:30:00+00:00"
    assert by_kind["issue"]["local"] == "2027-01-04T08:30+01:00"
    assert by_kind["feed"]["id"] == "https://blog.example.com/feed.xml"
    digest = datetime.fromisoformat(by_kind["digest"]["local"])
    assert digest.weekday() == 0 and (digest.hour, digest.minute) == (9, 0)  # Monday 09:00
    assert rows[0]["what"] == "feed"  # soonest first: the feed is due now


def test_a_leader_that_loses_its_lock_connection_stops(postgres_url, tmp_path, capsys) -> None:
    from sqlalchemy import text

    from newsletter.store import connect
    from newsletter.store.locks import ADVISORY_LOCK_KEY

    cli = Cli(write_config(tmp_path / "n.toml", postgres_url), capsys)
    cli.ok("db", "upgrade")
    cli.config.write_text(cli.config.read_text() + "\n[scheduler]\nstandby_poll_seconds = 0.3\n")
    daemon = Daemon(cli.config)
    daemon.wait_for("scheduler.leader")
    engine = connect(postgres_url)
    with engine.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :key AND objid::bigint = "
                "(hashtext(current_database() || '.' || current_schema())::bigint & 4294967295)"
            ),
            {"key": ADVISORY_LOCK_KEY},
        ).all()
    engine.dispose()
    assert killed == [(True,)]
    daemon.wait_for("scheduler.lost_lock")
    assert daemon.proc.wait(timeout=30) == 1
    while not daemon._q.empty():
        daemon.lines.append(daemon._q.get())
    assert "Error: lost the scheduler lock" in "".join(daemon.lines)
