"""A welcome series with the real parts: subscribe on the web form (uvicorn), confirm with
the link of the real confirmation mail, `newsletter run` as a process, aiosmtpd. Step 1
arrives within a tick, step 2 its delay later, once each: across a kill -9 of the daemon, and
never after a one-click unsubscribe."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

from tests.delivery.test_daemon import Daemon
from tests.sequences.conftest import FOLLOW_UP, WELCOME, step_file

TICK = 0.3
SCHEDULER = f"\n[scheduler]\ndispatch_interval_seconds = {TICK}\nstandby_poll_seconds = {TICK}\n"
STEP_1, STEP_2 = "Welcome, here are my five best essays", "A follow-up, three days later"


def _site(web, tmp_path):
    site = web(extra_config=SCHEDULER)
    cli = site.cli
    cli.ok("sequence", "create", "welcome", "--list", "blog", "--trigger", "confirm")
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "1.md", WELCOME)),
           "--after", "0s")  # fmt: skip
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "2.md", FOLLOW_UP)),
           "--after", "5s")  # fmt: skip
    return site


def _arrivals(site, address: str) -> list[tuple[str, float]]:
    return [
        (str(m["Subject"]), t)
        for m, t in zip(site.mails_to(address), _times(site, address), strict=True)
        if "confirm" not in str(m["Subject"]).lower()
    ]


def _times(site, address: str) -> list[float]:
    return [m.at for m in site.smtp.handler.messages if address in m.rcpt_tos]


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stays(predicate, seconds: float) -> None:
    """``predicate`` holds all along ``seconds`` (nothing more arrives in a few ticks)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate()
        time.sleep(0.05)
    assert predicate()


def test_welcome_series_once_each_across_a_kill_and_a_standby_taking_over(web, tmp_path) -> None:
    site = _site(web, tmp_path)
    daemon = Daemon(site.cli.config)
    daemon.wait_for("scheduler.leader")
    site.signed_up("ada@example.com")
    confirmed = time.monotonic()
    _wait(lambda: len(_arrivals(site, "ada@example.com")) == 1, "step 1")
    ((subject, at),) = _arrivals(site, "ada@example.com")
    assert subject == STEP_1
    assert at - confirmed < 3 * TICK + 2  # within a tick (and the send itself)
    standby = Daemon(site.cli.config)
    standby.wait_for("scheduler.standby")
    daemon.kill()  # kill -9 between the two steps: the standby takes over
    daemon = standby
    daemon.wait_for("scheduler.leader")
    _wait(lambda: len(_arrivals(site, "ada@example.com")) == 2, "step 2")
    (_, first), (subject, second) = _arrivals(site, "ada@example.com")
    assert subject == STEP_2 and 4.5 < second - first < 5 + 3 * TICK + 4
    _stays(lambda: len(_arrivals(site, "ada@example.com")) == 2, seconds=10 * TICK)
    assert daemon.stop() == 0
    assert Counter(s for s, _ in _arrivals(site, "ada@example.com")) == {STEP_1: 1, STEP_2: 1}
    shown = json.loads(site.cli.ok("sequence", "show", "welcome", "--json").stdout)
    assert [(s["sent"], s["waiting"]) for s in shown["steps"]] == [(1, 0), (1, 0)]
    assert shown["done"] == 1
    assert json.loads(site.cli.ok("sequence", "missed", "welcome", "--json").stdout) == []
    assert "Traceback" not in "".join(daemon.lines)


def test_unsubscribing_between_steps_stops_the_series(web, tmp_path) -> None:
    site = _site(web, tmp_path)
    daemon = Daemon(site.cli.config)
    daemon.wait_for("scheduler.leader")
    site.signed_up("grace@example.com")
    _wait(lambda: len(_arrivals(site, "grace@example.com")) == 1, "step 1")
    welcome = next(m for m in site.mails_to("grace@example.com") if str(m["Subject"]) == STEP_1)
    url = re.findall(r"<([^>]+)>", welcome["List-Unsubscribe"])[0]
    assert site.http.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    daemon.wait_for("sequence.steps queued=0 skipped=0 left=1", timeout=15)  # step 2's time
    assert daemon.stop() == 0
    assert [s for s, _ in _arrivals(site, "grace@example.com")] == [STEP_1]
    shown = json.loads(site.cli.ok("sequence", "show", "welcome", "--json").stdout)
    assert shown["left"] == 1 and shown["steps"][1]["sent"] == 0


def test_an_edited_step_reaches_who_has_not_had_it_even_through_a_running_worker(
    cli, smtp_server, tmp_path
) -> None:
    from newsletter.config import database_url, load_settings
    from newsletter.sequences.advance import advance_all
    from newsletter.store import connect, writer_sessions
    from tests.delivery.test_send_issue import _newsletter, smtp_config

    server = smtp_server()
    smtp_config(cli, server)
    cli.ok("list", "create", "blog")
    cli.ok("sequence", "create", "welcome", "--list", "blog")
    path = step_file(tmp_path, "1.md", WELCOME)
    cli.ok("sequence", "step", "add", "welcome", str(path), "--after", "0s")
    settings = load_settings(cli.config)
    engine = connect(database_url(settings))
    sessions = writer_sessions(engine)
    worker = _newsletter(cli.config, "worker")  # a long-running worker keeps its rendering
    try:
        cli.ok("subscriber", "add", "first@example.com", "--list", "blog", "--trigger-sequences")
        advance_all(sessions, settings)
        _wait(lambda: len(server.handler.messages) == 1, "the first reader's step 1")
        step_file(tmp_path, "1.md", WELCOME.replace("Welcome, here", "Welcome (edited), here"))
        cli.ok("sequence", "step", "edit", "welcome", "1")
        cli.ok("subscriber", "add", "second@example.com", "--list", "blog", "--trigger-sequences")
        advance_all(sessions, settings)
        _wait(lambda: len(server.handler.messages) == 2, "the second reader's step 1")
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
        engine.dispose()
    subjects = {
        m.rcpt_tos[0]: re.search(rb"^Subject: (.*)$", m.content, re.M).group(1).strip()
        for m in server.handler.messages
    }
    assert subjects == {
        "first@example.com": b"Welcome, here are my five best essays",
        "second@example.com": b"Welcome (edited), here are my five best essays",
    }
