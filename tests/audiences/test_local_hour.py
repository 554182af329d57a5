"""`issue schedule --local HH:MM`: each reader at that hour of their own time zone, one issue
and one ledger (real `newsletter run`, aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from newsletter.issues.schedule import local_time
from tests.delivery.test_daemon import Daemon, daemon_config, wait_until
from tests.delivery.test_send_issue import seed

ZONES = {
    "tokyo@example.com": "Asia/Tokyo",
    "stockholm@example.com": "Europe/Stockholm",
    "newyork@example.com": "America/New_York",
}


def _next_minute(zone: str, at_least: float) -> tuple[str, datetime]:
    """The first whole minute at least ``at_least`` seconds away, as HH:MM in ``zone``."""
    when = (datetime.now(UTC) + timedelta(seconds=at_least + 60)).replace(second=0, microsecond=0)
    return when.astimezone(ZoneInfo(zone)).strftime("%H:%M"), when


def _arrivals(server) -> dict[str, dict[str, float]]:
    """subject -> recipient -> when the server accepted it (Unix time)."""
    found: dict[str, dict[str, float]] = {}
    for m in server.handler.messages:
        msg = email.message_from_bytes(m.content, policy=email.policy.default)
        for r in m.rcpt_tos:
            assert r not in found.setdefault(str(msg["Subject"]), {}), "sent twice"
            found[str(msg["Subject"])][r] = m.wall
    return found


def test_each_reader_gets_it_at_their_own_hour(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    daemon_config(cli, server, extra='\n[lists.blog]\ntimezone = "Asia/Tokyo"\n')
    seed(cli, tmp_path, 0)  # list "blog", a post, draft issue 1 to the list
    cli.ok("issue", "create", "--latest", "--list", "blog", "--subject", "Second")  # issue 2
    cli.ok("issue", "edit", "1", "--subject", "First")
    for address, zone in ZONES.items():
        cli.ok("subscriber", "add", address, "--list", "blog")
        cli.ok("subscriber", "set", address, "--timezone", zone)
    cli.ok("subscriber", "add", "nozone@example.com", "--list", "blog")  # the list's: Tokyo
    assert "unknown time zone" in cli("subscriber", "set", "nozone@example.com", "--timezone",
                                      "Mars/Olympus").stderr  # fmt: skip

    # Issue 1 at Tokyo's next minute: Tokyo (and the reader with no zone: the list's) now,
    # the others at that hour of their own day.
    hour, tokyo_at = _next_minute("Asia/Tokyo", 5)
    out = cli.ok("issue", "schedule", "1", "--local", hour).stdout
    assert f"at {hour} their time" in out
    # Issue 2 at Stockholm's next minute, within a window that ends 15 s or more after it:
    # those whose hour is not in the window get it at its nearer end (Tokyo: at once, its hour
    # came 8 hours ago; New York: at the end, its hour comes in 6 hours).
    hour2, stockholm_at = _next_minute("Europe/Stockholm", 5)
    within = max(60, int(stockholm_at.timestamp() - time.time()) + 15)  # (1 minute at least)
    window_end = time.time() + within
    cli.ok("issue", "schedule", "2", "--local", hour2, "--within", f"{within}s")
    daemon = Daemon(cli.config)
    daemon.wait_for("issue.start id=1 recipients=4")
    daemon.wait_for("issue.start id=2 recipients=4")
    shown = json.loads(cli.ok("issue", "show", "1", "--json").stdout)
    assert shown["local_time"] == hour and shown["waiting_for_hour"] == 4
    wait_until(lambda: json.loads(cli.ok("issue", "show", "1", "--json").stdout)[
        "deliveries"]["sent"] == 2, timeout=150)  # fmt: skip
    wait_until(lambda: json.loads(cli.ok("issue", "show", "2", "--json").stdout)["status"]
               == "sent", timeout=150)  # fmt: skip
    time.sleep(1.0)  # nothing else may arrive meanwhile: checked below, not synchronisation
    assert daemon.stop() == 0

    by_issue = _arrivals(server)
    first, second = by_issue["First"], by_issue["Second"]
    assert set(first) == {"tokyo@example.com", "nozone@example.com"}  # the others: not yet
    for address in first:
        assert tokyo_at.timestamp() <= first[address] < tokyo_at.timestamp() + 10  # ± the tick
    assert set(second) == set(ZONES) | {"nozone@example.com"}
    assert stockholm_at.timestamp() <= second["stockholm@example.com"]
    assert second["stockholm@example.com"] < stockholm_at.timestamp() + 10
    assert second["tokyo@example.com"] < stockholm_at.timestamp()  # at the window's start
    assert second["newyork@example.com"] >= window_end - 2  # at its end

    text = cli.ok("issue", "show", "1").stdout
    assert "2 sent, 2 waiting for their hour" in text
    missed = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)
    assert {m["email"] for m in missed} == {"stockholm@example.com", "newyork@example.com"}
    assert all(m["reason"].startswith("waiting for the reader's hour") for m in missed)


def test_local_time_rules() -> None:
    start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    day = timedelta(hours=24)
    # the next 09:00 of each zone, within a day
    assert local_time("09:00", "Asia/Tokyo", start, start + day) == datetime(
        2026, 3, 29, 0, 0, tzinfo=UTC
    )
    assert local_time("09:00", "America/New_York", start, start + day) == datetime(
        2026, 3, 28, 13, 0, tzinfo=UTC
    )
    # Stockholm's clocks go forward on 29 March at 02:00: 02:30 does not exist, 03:00 CEST is
    # the moment after the gap
    at = local_time("02:30", "Europe/Stockholm", start, start + day)
    assert at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # a short window: the hour far off is clamped to the nearer end
    short = timedelta(hours=2)
    assert local_time("09:00", "Europe/Stockholm", start, start + short) == start  # 4 h ago
    assert local_time("15:30", "Europe/Stockholm", start, start + short) == start + short
