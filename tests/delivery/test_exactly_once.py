"""Exactly once under the ordinary accidents: kill -9 at random points, Ctrl-C in a real
terminal, a relay that is not there, several `issue send` of one issue at once; and the
reputation guard (a throttling domain, a list that bounces). The real CLI in processes of its
own, SQLite and PostgreSQL, a real aiosmtpd on 127.0.0.1 slowed to 20 ms per message."""

from __future__ import annotations

import json
import os
import pty
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter

import pytest

from newsletter.config import database_url, load_settings
from newsletter.store import connect
from tests.delivery.test_send_issue import (
    POST,
    _newsletter,
    _wait,
    message_ids,
    seed,
    show,
    smtp_config,
)

WINDOW = 8  # 2 x smtp.concurrency (4): on the wire plus waiting to be settled


def _settled(server, timeout: float = 10.0) -> int:
    """Wait until the server has no client connection left (a killed sender's last messages
    are in or gone), then return how many messages it accepted."""
    _wait(lambda: server.handler.open_sessions == 0, timeout)
    return len(server.handler.messages)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(400)
def test_kill_9_at_five_random_points_loses_nobody_and_doubles_at_most_the_window(
    cli, smtp_server, tmp_path
) -> None:
    server = smtp_server(data_delay=0.02)
    smtp_config(cli, server, batch_size=100)
    n = 1500
    emails = seed(cli, tmp_path, n)
    rng = random.Random()
    points = sorted(rng.sample(range(60, n - 150), 5))
    print("kill points (messages at the server):", points)
    boundaries = []
    for point in points:
        proc = _newsletter(cli.config, "issue", "send", "1")
        _wait(lambda p=point, s=proc: len(server.handler.messages) >= p or s.poll() is not None,
              120)  # fmt: skip
        os.killpg(proc.pid, signal.SIGKILL)  # the sender and its worker processes, at once
        proc.wait(timeout=30)
        boundaries.append(_settled(server))
    out = cli.ok("issue", "send", "1").stdout
    assert f"Issue 1 sent: {n} sent" in out

    messages = [m.rcpt_tos[0] for m in server.handler.messages]
    assert set(messages) == set(emails)  # nobody lost
    seen_doubled: set[str] = set()
    for k, b in enumerate(boundaries):
        before = set(messages[:b])
        again = {r for r in messages[b:] if r in before} - seen_doubled
        os.write(2, f"kill {k + 1} at {points[k]} messages: {len(again)} sent again\n".encode())
        assert len(again) <= WINDOW, (k, points[k], sorted(again))
        seen_doubled |= again
    ids = message_ids(server)
    assert len(ids) == n  # a resend carries the same Message-ID
    info = show(cli)
    assert info["deliveries"]["sent"] == n and info["status"] == "sent"


def _run_in_terminal(argv: list[str]) -> tuple[int, bytearray, threading.Thread]:
    """Start ``argv`` on a new pseudo-terminal as its controlling terminal; returns the pid,
    the output as it comes and the thread that reads it."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once (this process has threads)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    output = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.fd = fd  # type: ignore[attr-defined]
    return pid, output, reader


def _exit_status(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        assert time.monotonic() < deadline, "the command did not stop"
        time.sleep(0.05)


@pytest.mark.timeout(300)
def test_ctrl_c_in_a_terminal_stops_cleanly_with_130_and_doubles_nothing(
    cli, smtp_server, tmp_path
) -> None:
    server = smtp_server(data_delay=0.02)
    smtp_config(cli, server, batch_size=100)
    n = 1500
    emails = seed(cli, tmp_path, n)
    point = random.randint(50, 1000)
    print("Ctrl-C after", point, "messages")
    argv = [sys.executable, "-m", "newsletter", "--config", str(cli.config), "issue", "send", "1"]
    pid, output, reader = _run_in_terminal(argv)
    _wait(lambda: len(server.handler.messages) >= point, 120)
    os.write(reader.fd, b"\x03")  # Ctrl-C, as typed: SIGINT to the terminal's process group
    status = _exit_status(pid, 60)
    reader.join(10)
    text = output.decode("utf-8", "replace")
    assert status == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    stopped = re.search(r"Stopped: (\d+) sent", text)
    assert stopped, text
    accepted = _settled(server)
    assert int(stopped.group(1)) == accepted < n  # the summary's counts are the true ones
    info = show(cli)
    assert info["deliveries"]["sending"] == 0  # every claim settled or given back
    assert info["deliveries"]["sent"] == accepted

    assert f"Issue 1 sent: {n} sent" in cli.ok("issue", "send", "1").stdout
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1  # none doubled


@pytest.mark.timeout(120)
def test_a_relay_that_is_not_there_stops_the_send_and_uses_no_attempt(
    cli, smtp_server, tmp_path
) -> None:
    port = _free_port()  # nothing listens here (yet)
    text = cli.config.read_text()
    cli.config.write_text(
        f'{text}\n[smtp]\nhost = "127.0.0.1"\nport = {port}\ntimeout = 5.0\nconcurrency = 4\n'
        "\n[sending]\nretry_backoff_seconds = 60\nbatch_size = 100\n"
    )
    n = 300
    emails = seed(cli, tmp_path, n)
    proc = _newsletter(cli.config, "issue", "send", "1")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, from the parent only; no traceback
    assert f"127.0.0.1:{port}" in lines[0] and "connection refused" in lines[0]
    assert "smtp.port" in lines[0]
    info = show(cli)
    assert info["deliveries"]["pending"] == n
    missed = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)
    assert len(missed) == n and {m["attempts"] for m in missed} == {0}

    server = smtp_server(port=port)
    started = time.monotonic()
    out = cli.ok("issue", "send", "1").stdout
    assert time.monotonic() - started < 20  # at once: no backoff was started
    assert f"Issue 1 sent: {n} sent" in out
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1


@pytest.mark.timeout(300)
def test_five_sends_of_one_issue_started_together_share_it(cli, smtp_server, tmp_path) -> None:
    server = smtp_server(data_delay=0.005)
    smtp_config(cli, server, batch_size=100)
    n = 1000
    emails = seed(cli, tmp_path, n)
    procs = [_newsletter(cli.config, "issue", "send", "1") for _ in range(5)]
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, (out, err)
        assert "Traceback" not in err and "Error" not in err, err
        assert "Issue 1 sent:" in out, out
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1
    assert show(cli)["deliveries"]["sent"] == n


THROTTLED = "throttled.example.net"


@pytest.mark.serial
@pytest.mark.timeout(300)
def test_a_throttling_domain_backs_off_while_the_others_go_on(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, batch_size=200, retry_backoff_seconds=30)
    n = 2000
    people = [
        f"reader{i}@{THROTTLED if i % 5 == 0 else 'example.com'}" for i in range(n)
    ]  # 20 % at the throttling domain, spread through the list
    csv = tmp_path / "people.csv"
    csv.write_text("email\n" + "\n".join(people) + "\n")
    cli.ok("list", "create", "blog")
    cli.ok("list", "create", "others")
    cli.ok("subscriber", "import", str(csv), "--list", "blog")
    others = [p for p in people if not p.endswith(THROTTLED)]
    (tmp_path / "others.csv").write_text("email\n" + "\n".join(others) + "\n")
    cli.ok("subscriber", "import", str(tmp_path / "others.csv"), "--list", "others")
    cli.ok("post", "add", str(POST))
    cli.ok("issue", "create", "--latest", "--list", "others", "--subject", "Alone")
    cli.ok("issue", "create", "--latest", "--list", "blog", "--subject", "Together")

    def timed_send(issue: int) -> tuple[float, str]:
        started = time.monotonic()
        proc = _newsletter(cli.config, "issue", "send", str(issue))
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (out, err)
        return time.monotonic() - started, out

    alone, _ = timed_send(1)
    server.handler.rule(
        "RCPT",
        lambda a: (
            (
                "421 4.7.28 Our system has detected an unusual rate of unsolicited mail; "
                "try again later"
            )
            if a.endswith(THROTTLED)
            else None
        ),
    )
    tries_before = len(server.handler.commands("RCPT"))
    together, out = timed_send(2)
    print(f"1,600 alone: {alone:.1f} s; with 400 throttled beside them: {together:.1f} s")
    assert f"{len(others)} sent, {n - len(others)} deferred" in out
    assert together <= alone * 1.5 + 2.0
    rcpts = server.handler.commands("RCPT")[tries_before:]
    tries = [a for a in rcpts if THROTTLED in a]
    # A few tries (the messages already on the wire when the first 421 came, per process),
    # then nothing until the backoff ends.
    assert 1 <= len(tries) <= WINDOW, len(tries)
    text = cli.ok("issue", "show", "2").stdout
    assert f"backing off {THROTTLED} until" in text
    info = show(cli, 2)
    (backoff,) = info["backoff"]
    assert backoff["domain"] == THROTTLED and backoff["until"] > info["started_at"]
    # The deferred ones wait for the backoff, without using up attempts.
    missed = json.loads(cli.ok("issue", "missed", "2", "--json").stdout)
    assert {m["email"].rpartition("@")[2] for m in missed} == {THROTTLED}
    untried = [m for m in missed if m["attempts"] == 0]
    assert len(untried) >= len(missed) - WINDOW
    assert all(m["next_attempt_at"] >= backoff["until"][:19] for m in missed)


@pytest.mark.timeout(300)
def test_a_list_that_bounces_pauses_itself_and_resume_goes_on(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, batch_size=100)
    n = 1500
    emails = seed(cli, tmp_path, n)
    bad = set(emails[::10])  # 10 % of the list does not exist
    server.handler.rule("RCPT", lambda a: "550 5.1.1 No such user here" if a in bad else None)
    proc = _newsletter(cli.config, "issue", "send", "1")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (out, err)
    assert "Issue 1 paused itself: hard bounces" in err, err
    info = show(cli)
    assert info["status"] == "paused"
    assert "pause_bounce_rate" in info["pause_reason"]
    d = info["deliveries"]
    attempted = d["sent"] + d["bounced"] + d["failed"] + d["deferred"]
    os.write(2, f"paused after {attempted} attempts\n".encode())
    assert 500 <= attempted <= 700, d  # near the threshold (5 % after 500 attempts)
    assert "paused    by the reputation guard" in cli.ok("issue", "show", "1").stdout

    cli.ok("issue", "resume", "1")
    out = cli.ok("issue", "send", "1").stdout
    assert "Issue 1 sent:" in out
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) - bad and max(received.values()) == 1
    assert show(cli)["pause_reason"] is None


def test_sends_settle_as_answered_and_report_a_true_rate(cli, smtp_server, tmp_path) -> None:
    """The ledger is written while the batch is on the wire, not once at its end: with a
    batch as large as the list, the first messages are settled before the last are sent."""
    server = smtp_server(data_delay=0.01)
    smtp_config(cli, server, batch_size=1000)
    seed(cli, tmp_path, 400)
    engine = connect(database_url(load_settings(cli.config)))
    seen: list[int] = []
    proc = _newsletter(cli.config, "issue", "send", "1", "--workers", "1")
    try:
        from sqlalchemy import func, select

        from newsletter.store.models import Delivery

        while proc.poll() is None:
            with engine.connect() as conn:
                sent = conn.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
                )
            seen.append(sent or 0)
            if 0 < (sent or 0) < 400:
                break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=120)
    finally:
        engine.dispose()
    assert proc.returncode == 0, err
    assert any(0 < s < 400 for s in seen), seen  # part of the one batch was already settled
    info = show(cli)
    # 400 messages over 4 connections at ~10 ms each: about 1 s of settling; the rate is
    # settled / (last - first settlement), not distorted by batch boundaries.
    assert info["rate_per_second"] is not None and 50 < info["rate_per_second"] < 1500


@pytest.mark.parametrize("command", ["worker", "run"])
@pytest.mark.timeout(200)
def test_ctrl_c_stops_worker_and_daemon_mid_send_with_130(
    cli, smtp_server, tmp_path, command
) -> None:
    server = smtp_server(data_delay=0.02)
    smtp_config(cli, server, batch_size=50)
    text = cli.config.read_text()
    cli.config.write_text(text + "\n[scheduler]\ndispatch_interval_seconds = 0.3\n")
    n = 600
    emails = seed(cli, tmp_path, n)
    if command == "worker":  # a worker only helps with an issue that is sending
        _open(cli)
    else:
        cli.ok("issue", "schedule", "1", "--at", _soon())
    proc = _newsletter(cli.config, command)
    _wait(lambda: len(server.handler.messages) >= 100, 60)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    accepted = _settled(server)
    info = show(cli)
    assert info["deliveries"]["sending"] == 0 and info["deliveries"]["sent"] == accepted < n
    assert f"Issue 1 sent: {n} sent" in cli.ok("issue", "send", "1").stdout
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1


def _open(cli) -> None:
    """Open issue 1 for sending without sending anything (as a paused `issue send` would)."""
    from newsletter.delivery.send import open_for_sending
    from newsletter.store import writer_sessions

    engine = connect(database_url(load_settings(cli.config)))
    try:
        with writer_sessions(engine)() as session, session.begin():
            open_for_sending(session, 1)
    finally:
        engine.dispose()


def _soon() -> str:
    from tests.delivery.test_daemon import at

    return at(2)


@pytest.mark.timeout(300)
def test_the_database_dropping_the_senders_connections_mid_send_loses_and_doubles_nothing(
    cli, smtp_server, tmp_path, migrated_url, db_kind
) -> None:
    """PostgreSQL ends every connection of the send (a failover, an admin's
    pg_terminate_backend): the settler records the group again on a new connection, the
    others reconnect, and the send finishes."""
    if db_kind != "postgresql":
        pytest.skip("the connections of a server (SQLite has none)")
    server = smtp_server(data_delay=0.01)
    smtp_config(cli, server, batch_size=100)
    n = 2000
    emails = seed(cli, tmp_path, n)
    name = f"nl-send-{os.getpid()}"  # libpq names the send's connections after PGAPPNAME
    proc = _newsletter(cli.config, "issue", "send", "1", env={**os.environ, "PGAPPNAME": name})
    _wait(lambda: len(server.handler.messages) >= n // 4 or proc.poll() is not None, 60)
    engine = connect(database_url(load_settings(cli.config)))
    try:
        with engine.connect() as conn:
            ended = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %(name)s",
                {"name": name},
            ).scalar()
    finally:
        engine.dispose()
    assert ended >= 2  # at least the settler's and a claiming one
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err and "settle.retry" in err
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1
    assert show(cli)["deliveries"]["sent"] == n
