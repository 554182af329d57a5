"""The sequence job's rules on a real database (the daemon's process is in
test_sequence_daemon.py): leaving, pausing and max_late, edited delays, re-joining and
--restart, send windows in the reader's hours, and once per reader and step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from newsletter.config import database_url, load_settings
from newsletter.sequences.advance import advance_all
from newsletter.store import connect, writer_sessions
from newsletter.store.models import Delivery, Membership, Subscriber
from tests.sequences.conftest import FOLLOW_UP, WELCOME, step_file

DAY = timedelta(days=1)


class World:
    def __init__(self, cli, tmp_path, *, window: str | None = None) -> None:
        self.cli = cli
        cli.config.write_text(cli.config.read_text() + '\n[sequences]\nmax_late = "1d"\n')
        cli.ok("list", "create", "blog")
        cli.ok("sequence", "create", "welcome", "--list", "blog")
        cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "1.md", WELCOME)),
               "--after", "0s")  # fmt: skip
        extra = ["--window", window] if window else []
        cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "2.md", FOLLOW_UP)),
               "--after", "3d", *extra)  # fmt: skip
        self.settings = load_settings(cli.config)
        self.engine = connect(database_url(self.settings))
        self.sessions = writer_sessions(self.engine)

    def add(self, *emails: str) -> None:
        for e in emails:
            self.cli.ok("subscriber", "add", e, "--list", "blog", "--trigger-sequences")

    def tick(self, at: datetime):
        return advance_all(self.sessions, self.settings, now=at)

    def ledger(self, step: int) -> dict[str, str]:
        issue_id = self.show()["steps"][step - 1]["issue_id"]
        with self.sessions() as s:
            rows = s.execute(
                select(Subscriber.email, Delivery.status, Delivery.next_attempt_at)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.issue_id == issue_id)
            ).all()
        self.times = {e: t for e, _, t in rows}
        return {e: st for e, st, _ in rows}

    def show(self) -> dict:
        return json.loads(self.cli.ok("sequence", "show", "welcome", "--json").stdout)


def test_due_readers_reach_each_step_once_and_leavers_leave(cli, tmp_path) -> None:
    w = World(cli, tmp_path)
    w.add("a@example.com", "b@example.com", "c@example.com")
    now = datetime.now(UTC)
    assert w.tick(now).queued == 3
    assert w.tick(now).taken == 0  # nothing due until step 2's time
    assert set(w.ledger(1).values()) == {"pending"}
    # b unsubscribes; c leaves the list; a gets step 2 three days later.
    cli.ok("subscriber", "unsubscribe", "b@example.com")
    with w.sessions() as s, s.begin():
        c = s.scalar(select(Subscriber.id).where(Subscriber.email == "c@example.com"))
        s.execute(delete(Membership).where(Membership.subscriber_id == c))
    assert w.tick(now + 2 * DAY).taken == 0
    got = w.tick(now + 3 * DAY + timedelta(seconds=1))
    assert (got.queued, got.left, got.done) == (1, 2, 1)
    assert w.ledger(2) == {"a@example.com": "pending"}
    # The job never adds a reader to a step twice, however often it runs.
    assert w.tick(now + 30 * DAY).taken == 0
    shown = w.show()
    assert (shown["done"], shown["left"], shown["in_progress"]) == (1, 2, 0)
    # Re-joining does not restart it; --restart does, without sending a step twice.
    cli.ok("subscriber", "add", "c@example.com", "--list", "blog", "--trigger-sequences")
    assert w.show()["left"] == 2
    cli.ok("sequence", "enrol", "welcome", "a@example.com", "--restart")
    cli.ok("subscriber", "add", "c@example.com", "--list", "blog", "--trigger-sequences",
           "--restart")  # fmt: skip
    assert w.show()["in_progress"] == 2
    assert w.tick(now + 31 * DAY).taken == 2
    assert w.ledger(1) == {e: "pending" for e in ("a@example.com", "b@example.com",
                                                  "c@example.com")}  # fmt: skip


def test_a_paused_sequence_holds_and_resuming_skips_what_is_too_late(cli, tmp_path) -> None:
    w = World(cli, tmp_path)
    w.add("a@example.com", "b@example.com")
    now = datetime.now(UTC)
    w.tick(now)
    cli.ok("sequence", "pause", "welcome")
    assert w.tick(now + 5 * DAY).taken == 0  # held
    out = cli.ok("sequence", "resume", "welcome")
    assert "Resumed" in out.stdout
    got = w.tick(now + 5 * DAY)  # step 2 was due at day 3: 2 days late > max_late 1d
    assert got.skipped == 2 and got.queued == 0
    assert w.ledger(2) == {"a@example.com": "skipped", "b@example.com": "skipped"}
    shown = w.show()
    assert [s["skipped"] for s in shown["steps"]] == [0, 2]
    missed = json.loads(cli.ok("sequence", "missed", "welcome", "--json").stdout)
    assert {(m["step"], m["status"]) for m in missed} >= {(2, "skipped")}
    assert all("max_late" in m["reason"] for m in missed if m["step"] == 2)


def test_an_edited_delay_moves_the_readers_waiting_for_that_step(cli, tmp_path) -> None:
    w = World(cli, tmp_path)
    w.add("a@example.com")
    now = datetime.now(UTC)
    w.tick(now)
    cli.ok("sequence", "step", "edit", "welcome", "2", "--after", "1d")
    assert w.tick(now + DAY + timedelta(seconds=1)).queued == 1


def test_a_window_sends_in_the_readers_own_hours(cli, tmp_path) -> None:
    w = World(cli, tmp_path, window="09:00-10:00")
    w.add("tokyo@example.com", "nozone@example.com")
    cli.ok("subscriber", "set", "tokyo@example.com", "--timezone", "Asia/Tokyo")
    now = datetime.now(UTC)
    w.tick(now)
    at = now + 3 * DAY + timedelta(seconds=1)
    w.tick(at)
    w.ledger(2)
    tokyo = w.times["tokyo@example.com"].astimezone(UTC)
    utc = w.times["nozone@example.com"].astimezone(UTC)  # the list's zone: UTC here
    for moment, offset in ((tokyo, 9), (utc, 0)):
        local = moment + timedelta(hours=offset)
        assert ((local.hour, local.minute) >= (9, 0) and local.hour < 10) or moment == at
        assert at <= moment < at + DAY
