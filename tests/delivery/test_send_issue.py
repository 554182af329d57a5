"""The delivery engine end to end: the real CLI, the ledger in SQLite and PostgreSQL, a real
aiosmtpd server on 127.0.0.1 that can misbehave."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, write_config

POST = FIXTURES / "posts" / "pricing-per-seat.md"


def smtp_config(cli, server, **sending) -> None:
    """Point the CLI's config at the test server, with quick retries."""
    values = {"retry_backoff_seconds": 0, "max_attempts": 3, "batch_size": 50} | sending
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    text = cli.config.read_text()
    cli.config.write_text(
        f'{text}\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\ntimeout = 5.0\n'
        f"concurrency = 4\nmax_messages_per_connection = 20\n\n[sending]\n{lines}\n"
    )


def seed(cli, tmp_path: Path, n: int, *, list_name: str = "blog") -> list[str]:
    """n active subscribers on a list, a post and a draft issue 1 to that list."""
    emails = [f"reader{i}@example.com" for i in range(n)]
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\n" + "".join(f"{e},Reader {i}\n" for i, e in enumerate(emails)))
    cli.ok("list", "create", list_name)
    cli.ok("subscriber", "import", str(csv), "--list", list_name)
    cli.ok("post", "add", str(POST))
    cli.ok("issue", "create", "--latest", "--list", list_name)
    return emails


def show(cli, issue: int = 1) -> dict:
    return json.loads(cli.ok("issue", "show", str(issue), "--json").stdout)


def message_ids(server) -> Counter:
    ids = Counter()
    for m in server.handler.messages:
        msg = email.message_from_bytes(m.content, policy=email.policy.default)
        ids[msg["Message-ID"]] += 1
    return ids


def test_every_active_recipient_gets_exactly_one_message(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    emails = seed(cli, tmp_path, 120)
    cli.ok("subscriber", "unsubscribe", emails[0])
    cli.ok("subscriber", "erase", emails[1], "--yes")
    cli.ok("subscriber", "add", "outsider@example.com")  # not on the list
    out = cli.ok("issue", "send", "1", "--workers", "2").stdout
    assert "Issue 1 sent: 118 sent, 0 deferred, 0 failed, 0 bounced" in out
    received = server.handler.recipients()
    assert sorted(received) == sorted(emails[2:])
    assert max(Counter(received).values()) == 1
    assert len(message_ids(server)) == 118
    info = show(cli)
    assert info["status"] == "sent" and info["deliveries"]["sent"] == 118
    # Connections are reused up to the cap: 118 messages over at most ~2 x 4 x (118/20).
    sessions = server.handler.used_sessions()
    assert len(sessions) < 30
    assert all(sum(v == "DATA" for v, _ in s.commands) <= 20 for s in sessions)
    # Sending again changes nothing: no duplicates.
    again = cli("issue", "send", "1")
    assert again.exit_code == 1 and "issue 1 is sent" in again.stderr
    assert len(server.handler.recipients()) == 118


def test_faults_retries_and_bounces(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    emails = seed(cli, tmp_path, 40)
    later, gone, dropped, closing, policy = emails[3], emails[5], emails[7], emails[9], emails[11]
    server.handler.inject("RCPT", later, "451 4.3.0 Try again later")
    server.handler.inject("RCPT", gone, "550 5.1.1 No such user")
    server.handler.inject("DATA", dropped, "DROP")
    server.handler.inject("RCPT", closing, "421 4.7.0 Too many connections, closing")
    server.handler.inject("RCPT", policy, "550 5.7.1 Message rejected by policy")
    out = cli.ok("issue", "send", "1", "--workers", "1").stdout
    assert "38 sent, 0 deferred, 1 failed, 1 bounced" in out
    received = Counter(server.handler.recipients())
    assert received[later] == 1 and received[dropped] == 1 and received[closing] == 1
    assert gone not in received and policy not in received
    assert max(received.values()) == 1
    person = json.loads(cli.ok("subscriber", "show", gone, "--json").stdout)
    assert person["status"] == "bounced" and person["events"][-1]["kind"] == "bounced"
    assert json.loads(cli.ok("subscriber", "show", policy, "--json").stdout)["status"] == "active"
    info = show(cli)
    assert info["status"] == "sent"
    assert {(e["status"], e["enhanced"]) for e in info["errors"]} == {
        ("bounced", "5.1.1"), ("failed", "5.7.1"),
    }  # fmt: skip
    missed = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)
    assert {m["email"]: m["status"] for m in missed} == {gone: "bounced", policy: "failed"}
    assert "5.7.1" in next(m["reason"] for m in missed if m["email"] == policy)
    # The next issue never goes to the bounced address.
    cli.ok("issue", "create", "--latest", "--list", "blog", "--subject", "Second")
    cli.ok("issue", "send", "2", "--workers", "1")
    assert Counter(server.handler.recipients())[gone] == 0


def test_deferred_until_attempts_run_out_then_only_missed(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    emails = seed(cli, tmp_path, 10)
    server.handler.inject("RCPT", emails[2], *["452 4.2.2 Mailbox full"] * 3)
    out = cli.ok("issue", "send", "1", "--workers", "1").stdout
    assert "9 sent, 0 deferred, 1 failed" in out
    missed = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)
    assert [(m["email"], m["attempts"]) for m in missed] == [(emails[2], 3)]
    out = cli.ok("issue", "send", "1", "--only-missed", "--workers", "1").stdout
    assert "10 sent, 0 deferred, 0 failed" in out
    assert Counter(server.handler.recipients())[emails[2]] == 1


def test_deferred_with_backoff_waits_for_a_later_send(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, retry_backoff_seconds=3600)
    emails = seed(cli, tmp_path, 5)
    server.handler.inject("RCPT", emails[0], "451 4.3.0 Later")
    out = cli.ok("issue", "send", "1", "--workers", "1").stdout
    assert "4 sent, 1 deferred" in out and "retried by" in out
    info = show(cli)
    assert info["status"] == "sending" and info["deliveries"]["deferred"] == 1
    reason = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)[0]["reason"]
    assert reason.startswith("deferred until") and "451" in reason


def test_unsubscribed_after_the_issue_started_gets_nothing(cli, smtp_server, tmp_path) -> None:
    from newsletter.config import database_url, load_settings
    from newsletter.delivery.send import open_for_sending
    from newsletter.store import connect, session_factory

    server = smtp_server()
    smtp_config(cli, server)
    emails = seed(cli, tmp_path, 6)
    engine = connect(database_url(load_settings(cli.config)))
    with session_factory(engine)() as session, session.begin():
        assert open_for_sending(session, 1) == 6
    engine.dispose()
    cli.ok("subscriber", "unsubscribe", emails[4])
    out = cli.ok("issue", "send", "1", "--workers", "1").stdout
    assert "5 sent" in out and "1 skipped" in out
    assert emails[4] not in server.handler.recipients()


def test_pause_resume_cancel(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    seed(cli, tmp_path, 3)
    assert "cannot pause" in cli("issue", "pause", "1").stderr  # a draft is not sending
    cli.ok("issue", "cancel", "1")
    result = cli("issue", "send", "1")
    assert result.exit_code == 1 and "cancelled" in result.stderr
    assert server.handler.recipients() == []


def test_preview_test_send(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    seed(cli, tmp_path, 2)
    out = cli.ok("issue", "preview", "1", "--out", str(tmp_path / "p"), "--to", "me@example.org")
    assert "Test message to me@example.org: sent" in out.stdout
    assert server.handler.recipients() == ["me@example.org"]
    msg = email.message_from_bytes(server.handler.messages[0].content, policy=email.policy.default)
    assert "/unsubscribe/test-message" in msg["List-Unsubscribe"]


def _newsletter(config: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        **kwargs,
    )  # fmt: skip


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill_9_in_the_middle_then_send_again(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, rate_per_second=100, batch_size=40)
    emails = seed(cli, tmp_path, 400)
    proc = _newsletter(cli.config, "issue", "send", "1", "--workers", "2")
    _wait(lambda: len(server.handler.messages) >= 120, 60)
    os.killpg(proc.pid, signal.SIGKILL)  # the sender and its worker processes, at once
    proc.wait(timeout=30)
    before = len(server.handler.messages)
    assert before < 400
    out = cli.ok("issue", "send", "1", "--workers", "2").stdout
    assert "Issue 1 sent: 400 sent" in out
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails)  # nobody lost
    doubled = [r for r, n in received.items() if n > 1]
    # At most the claims in flight at the kill: 2 workers x 40 per batch.
    assert len(doubled) <= 80
    ids = message_ids(server)
    assert len(ids) == 400  # a resend carries the same Message-ID
    assert sum(ids.values()) == len(server.handler.messages)


@pytest.mark.serial
def test_workers_share_an_issue_and_the_rate_limit(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, rate_per_second=150, batch_size=100)
    n = 600
    emails = seed(cli, tmp_path, n)
    workers = [_newsletter(cli.config, "worker") for _ in range(3)]
    try:
        # The sender runs in its own process too, so this one only runs the SMTP server and
        # the arrival times it records are not held up behind a worker in the same process.
        started = time.monotonic()
        sender = _newsletter(cli.config, "issue", "send", "1", "--workers", "1")
        out, err = sender.communicate(timeout=120)
        elapsed = time.monotonic() - started
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=60) for w in workers]
    assert sender.returncode == 0, err
    assert all(w.returncode == 0 for w in workers), outputs
    assert f"Issue 1 sent: {n} sent" in out
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1
    # 600 messages at 150/s across four processes: at least ~3 s. Unpaced, the four would
    # send the 600 in about a second. The receiving server sees no burst: no second holds
    # more than the limit plus one pacing step (a tenth of a second) and the server's own
    # scheduling noise (it shares this 2-core machine with the senders and PostgreSQL), and
    # no three seconds more than 15% over.
    assert elapsed >= (n - 150) / 150
    times = sorted(m.at for m in server.handler.messages)

    def busiest(window: float) -> int:
        return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))

    assert busiest(1.0) <= 150 * 1.3, busiest(1.0)
    assert busiest(3.0) <= 3 * 150 * 1.15, busiest(3.0)
    sessions_used = {m.session for m in server.handler.messages}
    assert len(sessions_used) > 4  # more than one process's connections took part


@pytest.mark.postgres
def test_three_workers_and_send_share_20000_exactly_once(
    postgres_url, smtp_server, tmp_path, capsys
) -> None:
    from tests.conftest import Cli

    cli = Cli(write_config(tmp_path / "n.toml", postgres_url), capsys)
    cli.ok("db", "upgrade")
    server = smtp_server()
    smtp_config(cli, server, batch_size=500)
    emails = seed(cli, tmp_path, 20_000)
    workers = [_newsletter(cli.config, "worker") for _ in range(3)]
    try:  # the sender in a process of its own: this one is the SMTP server's
        sender = _newsletter(cli.config, "issue", "send", "1", "--workers", "1")
        out, err = sender.communicate(timeout=300)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=60) for w in workers]
    assert sender.returncode == 0, err
    assert all(w.returncode == 0 for w in workers), outputs
    assert "Issue 1 sent: 20000 sent" in out
    received = Counter(server.handler.recipients())
    assert len(received) == 20_000 and set(received) == set(emails)
    assert max(received.values()) == 1


def test_sigterm_stops_cleanly_releases_claims_and_doubles_nothing(
    cli, smtp_server, tmp_path
) -> None:
    from sqlalchemy import func, select

    from newsletter.config import database_url, load_settings
    from newsletter.store import connect
    from newsletter.store.models import Delivery

    server = smtp_server()
    smtp_config(cli, server, rate_per_second=100, batch_size=40)
    emails = seed(cli, tmp_path, 300)
    proc = _newsletter(cli.config, "issue", "send", "1", "--workers", "2")
    _wait(lambda: len(server.handler.messages) >= 60, 60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("Stopped:")
    engine = connect(database_url(load_settings(cli.config)))
    with engine.connect() as conn:
        in_flight = conn.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "sending")
        )
    engine.dispose()
    assert in_flight == 0  # every claim was settled or given back
    assert len(server.handler.messages) < 300
    assert "Issue 1 sent: 300 sent" in cli.ok("issue", "send", "1").stdout
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1


def test_a_wrong_password_stops_the_send_without_using_up_attempts(
    cli, smtp_server, tls_files, tmp_path, monkeypatch
) -> None:
    from .conftest import PASSWORD, USERNAME

    server = smtp_server(tls="starttls", auth=True)
    smtp_config(cli, server)
    cli.config.write_text(
        cli.config.read_text().replace(
            "concurrency = 4",
            f'concurrency = 4\nsecurity = "starttls"\nusername = "{USERNAME}"\n'
            f'ca_file = "{tls_files.ca}"',
        )
    )
    emails = seed(cli, tmp_path, 6)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "not-" + PASSWORD)
    result = cli("issue", "send", "1", "--workers", "1")
    assert result.exit_code == 1
    assert "authentication" in result.stderr and result.stderr.count("\n") == 1
    missed = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)
    assert {(m["status"], m["attempts"]) for m in missed} == {("pending", 0)}
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
    assert "Issue 1 sent: 6 sent" in cli.ok("issue", "send", "1", "--workers", "1").stdout
    assert sorted(server.handler.recipients()) == sorted(emails)


@pytest.mark.serial
def test_cancel_under_a_rate_limit_stops_within_a_pacing_step(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, rate_per_second=50, batch_size=200)
    seed(cli, tmp_path, 400)
    proc = _newsletter(cli.config, "issue", "send", "1", "--workers", "2")
    _wait(lambda: len(server.handler.messages) >= 40, 60)
    cli.ok("issue", "cancel", "1")
    at_cancel = len(server.handler.messages)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    # Each worker may finish the chunk it had reserved (rate / 10 = 5 messages).
    assert len(server.handler.messages) <= at_cancel + 10
    info = show(cli)
    assert info["status"] == "cancelled" and info["deliveries"]["sending"] == 0


def test_a_missed_issue_can_be_rescheduled_sent_or_cancelled(cli, smtp_server, tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    from newsletter.config import database_url, load_settings
    from newsletter.store import connect
    from newsletter.store.models import Issue

    server = smtp_server()
    smtp_config(cli, server)
    emails = seed(cli, tmp_path, 3)
    cli.ok("issue", "create", "--latest", "--list", "blog", "--subject", "Second")
    engine = connect(database_url(load_settings(cli.config)))
    with engine.begin() as conn:
        conn.execute(
            Issue.__table__.update().values(
                status="missed", scheduled_at=datetime.now(UTC) - timedelta(days=3)
            )
        )
    engine.dispose()
    assert "was never sent: none of its 3 recipients" in cli.ok("issue", "missed", "1").stdout
    cli.ok("issue", "schedule", "1", "--at", "2030-01-01 09:00")
    assert show(cli, 1)["status"] == "scheduled"
    assert "Issue 2 sent: 3 sent" in cli.ok("issue", "send", "2").stdout
    assert sorted(server.handler.recipients()) == sorted(emails)
    cli.ok("issue", "cancel", "1")
    assert show(cli, 1)["status"] == "cancelled"
