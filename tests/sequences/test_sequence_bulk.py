"""5,000 readers enrolled at once by an import with --trigger-sequences: each gets step 1
exactly once, at the configured rate, with the daemon and two `newsletter worker` processes
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import pytest

from tests.delivery.test_daemon import Daemon
from tests.delivery.test_send_issue import _newsletter, smtp_config
from tests.sequences.conftest import WELCOME, step_file

N = 5000
RATE = 1000


@pytest.mark.serial
def test_an_import_enrols_5000_and_each_gets_step_one_once(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server, rate_per_second=RATE, batch_size=200)
    cli.config.write_text(cli.config.read_text()
                          + "\n[scheduler]\ndispatch_interval_seconds = 0.3\n")  # fmt: skip
    cli.ok("list", "create", "blog")
    cli.ok("sequence", "create", "welcome", "--list", "blog")
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "1.md", WELCOME)),
           "--after", "0s")  # fmt: skip
    emails = [f"reader{i}@example.com" for i in range(N)]
    csv = tmp_path / "people.csv"
    csv.write_text("email\n" + "".join(f"{e}\n" for e in emails))
    # Without --trigger-sequences an import enrols nobody (an old list gets no welcome).
    cli.ok("subscriber", "import", str(csv), "--list", "blog")
    assert json.loads(cli.ok("sequence", "show", "welcome", "--json").stdout)["enrolled"] == 0

    workers = [_newsletter(cli.config, "worker") for _ in range(2)]
    daemon = Daemon(cli.config)
    try:
        daemon.wait_for("scheduler.leader")
        out = cli.ok("subscriber", "import", str(csv), "--list", "blog", "--trigger-sequences")
        assert f"{N} enrolled in sequences" in out.stdout
        started = time.monotonic()
        deadline = started + 120
        while len(server.handler.messages) < N:
            assert time.monotonic() < deadline, len(server.handler.messages)
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        assert daemon.stop() == 0
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=60) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    received = Counter(server.handler.recipients())
    assert set(received) == set(emails) and max(received.values()) == 1
    assert elapsed >= (N - RATE) / RATE  # paced: not all at once
    shown = json.loads(cli.ok("sequence", "show", "welcome", "--json").stdout)
    assert shown["steps"][0]["sent"] == N and shown["done"] == N
    assert "Traceback" not in "".join(daemon.lines) + "".join(e for _, e in outputs)
