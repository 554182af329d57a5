"""Sequence benchmark: the daemon with 100,000 enrolled readers, none due, then 5,000 due.

    python bench/sequences.py [--rows 100000] [--due 5000]
                              [--pg postgresql://postgres@127.0.0.1/test]

For SQLite (a temp file) and, with --pg, PostgreSQL (a throwaway schema): a fresh database
filled with SQL (one list, ``--rows`` active subscribers on it), a sequence "welcome" of two
steps made through the service functions (the second 30 days after the first), and every
subscriber enrolled waiting for step 2, due in 30 days (one INSERT ... SELECT). Then:

- nothing due: one ``advance_all`` (the dispatch job's sequence work), best of 5, and the query
  plan of the due query (it must use ``ix_enrollments_due_at``, not scan everyone enrolled);
  then the real `newsletter run` daemon (dispatch every second) left idle for 20 s: its CPU
  time from /proc/PID/stat;
- ``--due`` due: their due time set to now (one committed UPDATE) while the daemon runs,
  against bench/fast_sink.py on 127.0.0.1; the time from due to the first and the last
  message sent (the ledger's ``sent_at``), messages/s, the daemon's CPU over that time, and
  the sink's RCPT log checked: each of them exactly one message, nobody else.

Baselines of the same run are printed beside them: `python -c "import typer"`, one plain
COUNT(*) of the enrollments, and bench/transport.py (the SMTP transport alone) for ``--due``
messages.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from baseline import count_seconds, site_config, typer_import
from pgschema import pg_schema
from send import free_port, transport_alone
from sqlalchemy import Engine, bindparam, event, text
from sqlalchemy.orm import Session

from newsletter.config import Settings, load_settings
from newsletter.sequences.advance import advance_all
from newsletter.sequences.service import add_step, create_sequence
from newsletter.store import connect, upgrade, writer_sessions
from newsletter.store.models import UTCDateTime

HERE = Path(__file__).resolve().parent
IDLE_SECONDS = 20.0
DEADLINE_SECONDS = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
DOMAINS = ("gmail.com", "example.com", "outlook.com", "example.org")  # by i % 4
DUE_QUERY = (
    "SELECT id FROM enrollments WHERE due_at <= :now AND status = 'active' "
    "ORDER BY due_at LIMIT 1000"
)
STEP = """---
subject: {subject}
preheader: A few things to know about Field Notes
---

Hello, and thank you for reading **Field Notes**.

{body}

- [The archive](/archive/) holds every essay so far.
- [Write to us](mailto:letters@news.example.com): we read every reply.
"""
PARAGRAPH = (
    "Every two weeks we write one long essay about how small software companies price, hire "
    "and decide, and what we got wrong. Nothing else arrives from us unless you ask for it. "
)

_SQLITE_FILL = [
    "INSERT INTO lists (id, name, description, created_at) "
    "VALUES (1, 'blog', '', '2024-01-01 00:00:00.000000')",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
    "INSERT INTO subscribers (id, email, email_key, name, status, attributes, token, source, "
    "created_at, updated_at, confirmed_at, no_tracking) SELECT i, 'user' || i || '@' || "
    "(CASE i % 4 WHEN 0 THEN 'gmail.com' WHEN 1 THEN 'example.com' WHEN 2 THEN 'outlook.com' "
    "ELSE 'example.org' END), 'user' || i || '@x', 'Reader', 'active', '{}', 'tok' || i, "
    "'bench', '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000', "
    "'2024-01-01 00:00:00.000000', 0 FROM n",
    "INSERT INTO memberships (list_id, subscriber_id, created_at) "
    "SELECT 1, id, created_at FROM subscribers",
]
_PG_FILL = [
    "INSERT INTO lists (id, name, description, created_at) VALUES (1, 'blog', '', now())",
    "INSERT INTO subscribers (id, email, email_key, name, status, attributes, token, source, "
    "created_at, updated_at, confirmed_at, no_tracking) SELECT i, 'user' || i || '@' || "
    "(CASE i % 4 WHEN 0 THEN 'gmail.com' WHEN 1 THEN 'example.com' WHEN 2 THEN 'outlook.com' "
    "ELSE 'example.org' END), 'user' || i || '@x', 'Reader', 'active', '{}', 'tok' || i, "
    "'bench', timestamptz '2024-01-01', timestamptz '2024-01-01', timestamptz '2024-01-01', "
    "false FROM generate_series(1, :rows) AS i",
    "INSERT INTO memberships (list_id, subscriber_id, created_at) "
    "SELECT 1, id, created_at FROM subscribers",
]
_ENROL = text(
    "INSERT INTO enrollments (sequence_id, subscriber_id, status, next_position, due_at, "
    "enrolled_at, updated_at) SELECT :sequence, id, 'active', 2, :due, :now, :now "
    "FROM subscribers"
).bindparams(bindparam("due", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))
_MAKE_DUE = text(
    "UPDATE enrollments SET due_at = :now, updated_at = :now WHERE subscriber_id <= :due"
).bindparams(bindparam("now", type_=UTCDateTime()))


def email(i: int) -> str:
    return f"user{i}@{DOMAINS[i % 4]}"


def write_config(workdir: Path, label: str, url: str, port: int) -> Path:
    config = workdir / f"{label}.toml"
    config.write_text(
        site_config(url)
        + f"""[smtp]
host = "127.0.0.1"
port = {port}
concurrency = 8
[sending]
retry_backoff_seconds = 0
[scheduler]
dispatch_interval_seconds = 1.0
""",
        encoding="utf-8",
    )
    return config


def fill(url: str, rows: int, settings: Settings, workdir: Path) -> tuple[float, int]:
    """The database of the run; returns (seconds, the issue id of step 2)."""
    engine = connect(url)
    upgrade(engine)
    began = time.perf_counter()
    pg = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            for sql in _PG_FILL if pg else _SQLITE_FILL:
                conn.execute(text(sql), {"rows": rows} if ":rows" in sql else {})
        files = []
        for n, subject in enumerate(("Welcome to Field Notes", "A month of Field Notes"), 1):
            path = workdir / f"step{n}.md"
            path.write_text(STEP.format(subject=subject, body=PARAGRAPH * 4), encoding="utf-8")
            files.append(path)
        with Session(engine) as session, session.begin():
            sequence = create_sequence(session, "welcome", "blog", "confirm")
            add_step(session, settings, "welcome", files[0], after="0s")
            step2 = add_step(session, settings, "welcome", files[1], after="30d")
            sequence_id, issue_id = sequence.id, step2.issue_id
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(_ENROL, {"sequence": sequence_id, "due": now + timedelta(days=30),
                                  "now": now})  # fmt: skip
        with engine.begin() as conn:  # as autovacuum would after the fill; the ledger, empty,
            for table in ("lists", "subscribers", "memberships", "enrollments"):  # not
                conn.execute(text(f"ANALYZE {table}"))
        return time.perf_counter() - began, issue_id
    finally:
        engine.dispose()


def baselines(url: str, due: int) -> str:
    """Figures of this machine in this minute: `python -c "import typer"`, one plain COUNT(*)
    of the enrollments, the SMTP transport alone for ``due`` messages (bench/transport.py)."""
    typer_s, count_s = typer_import(runs=1), count_seconds(url, "enrollments")
    alone = due / transport_alone(due)
    return (f"baselines: import typer {typer_s:.2f} s, COUNT(*) of enrollments {count_s:.3f} s, "
            f"transport alone {due:,} in {alone:.2f} s (~20 KB messages)")  # fmt: skip


def _plan(conn: Any, sql: str, params: Any) -> list[str]:
    if conn.dialect.name == "sqlite":
        return [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
    return [row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}", params)]


def one_tick(url: str, settings: Settings) -> tuple[float, list[str], list[str]]:
    """Best of 5 ``advance_all`` with nothing due (ms); the plan of the due query of the
    brief and the plan of the query the daemon actually sent (captured from the cursor)."""
    engine = connect(url)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "FROM enrollments" in statement and "due_at <=" in statement and not seen:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        sessions = writer_sessions(engine)
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            got = advance_all(sessions, settings)
            best = min(best, time.perf_counter() - began)
            assert got.taken == 0, got
        event.remove(engine, "before_cursor_execute", capture)
        now = datetime.now(UTC)
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                sql, params = DUE_QUERY.replace(":now", "?"), (f"{now:%Y-%m-%d %H:%M:%S.%f}",)
                brief = _plan(conn, sql, params)
            else:
                brief = _plan(conn, DUE_QUERY.replace(":now", "%(now)s"), {"now": now})
            daemon = _plan(conn, *seen[0]) if seen else ["(not captured)"]
        return best * 1000, brief, daemon
    finally:
        engine.dispose()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while "scheduler.leader" not in log.read_text(errors="replace"):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise SystemExit(f"newsletter run did not become leader:\n{log.read_text()}")
        time.sleep(0.05)
    return daemon


def start_sink(port: int, rcpt_log: Path) -> subprocess.Popen[str]:
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "fast_sink.py"), str(port), "--rcpt-log", str(rcpt_log)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sink.stdout is not None
    if sink.stdout.readline().strip() != "ready":
        sink.kill()
        raise SystemExit("fast_sink.py did not start")
    return sink


def _ledger(engine: Engine, issue_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM deliveries WHERE issue_id = :i GROUP BY status"),
            {"i": issue_id},
        )
        return {status: n for status, n in rows}


def due_run(url: str, issue_id: int, due: int, daemon: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Make ``due`` readers due now and wait until the daemon has sent them all."""
    engine = connect(url)
    try:
        cpu0 = cpu_seconds(daemon.pid)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            changed = conn.execute(_MAKE_DUE, {"now": now, "due": due}).rowcount
        committed = (datetime.now(UTC) - now).total_seconds()
        assert changed == due, changed
        queued_after = None
        ledger: dict[str, int] = {}
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline and daemon.poll() is None:
            ledger = _ledger(engine, issue_id)
            if queued_after is None and sum(ledger.values()) >= due:
                queued_after = (datetime.now(UTC) - now).total_seconds()
            if ledger.get("sent", 0) >= due:
                break
            time.sleep(0.1)
        cpu = cpu_seconds(daemon.pid) - cpu0 if daemon.poll() is None else float("nan")
        with engine.connect() as conn:
            first, last = conn.execute(
                text("SELECT min(sent_at), max(sent_at) FROM deliveries WHERE issue_id = :i "
                     "AND status = 'sent'"),
                {"i": issue_id},
            ).one()  # fmt: skip
            done = conn.execute(
                text("SELECT count(*) FROM enrollments WHERE status = 'done'")
            ).scalar()
        return {"now": now, "committed": committed, "queued_after": queued_after, "cpu": cpu,
                "ledger": ledger, "first": first, "last": last, "done": done}  # fmt: skip
    finally:
        engine.dispose()


def _as_utc(value: Any) -> datetime | None:
    """A min()/max() of sent_at as the driver gives it (text on SQLite) as an aware time."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stop(proc: subprocess.Popen[Any], timeout: float = 120) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def run(label: str, url: str, rows: int, due: int, workdir: Path) -> None:
    port = free_port()
    config = write_config(workdir, label, url, port)
    settings = load_settings(config)
    filled, issue_id = fill(url, rows, settings, workdir)
    print(f"{label:10} {baselines(url, due)}", flush=True)
    tick_ms, brief_plan, daemon_plan = one_tick(url, settings)
    uses = all("ix_enrollments_due_at" in " ".join(p) for p in (brief_plan, daemon_plan))
    index = "index ix_enrollments_due_at" if uses else "INDEX NOT USED"

    rcpt_log, daemon_log = workdir / f"{label}-rcpt.log", workdir / f"{label}-daemon.log"
    sink = start_sink(port, rcpt_log)
    daemon = None
    try:
        daemon = start_daemon(config, daemon_log)
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle_cpu, idle_s = cpu_seconds(daemon.pid) - cpu0, time.monotonic() - t0
        print(f"{label:10} {rows:,} enrolled, none due: one tick {tick_ms:.1f} ms ({index}), "
              f"daemon CPU {idle_cpu / idle_s * 60:.2f} s/min ({idle_cpu / idle_s:.1%} of a "
              f"core; fill {filled:.1f} s)", flush=True)  # fmt: skip
        for name, plan in (("due query plan", brief_plan), ("daemon's query", daemon_plan)):
            print(f"{'':10}   {name}: " + " | ".join(line.strip() for line in plan))
        got = due_run(url, issue_id, due, daemon)
    finally:
        code = stop(daemon) if daemon is not None else None
        stop(sink, 30)
        sink_out = sink.stdout.read().strip() if sink.stdout else ""
    counts = collections.Counter(rcpt_log.read_text().split())
    expected = {email(i) for i in range(1, due + 1)}
    once = counts.keys() == expected and set(counts.values()) == {1}
    twice = sum(1 for n in counts.values() if n > 1)
    first, last = _as_utc(got["first"]), _as_utc(got["last"])
    sent = got["ledger"].get("sent", 0)
    if first and last and sent:
        a, b = (first - got["now"]).total_seconds(), (last - got["now"]).total_seconds()
        rate = sent / b if b > 0 else float("inf")
        span = f", {(sent - 1) / (b - a):,.0f}/s first to last" if b > a else ""
        timing = f"first sent after {a:.2f} s, last after {b:.2f} s ({rate:,.0f} msg/s{span})"
    else:
        timing = "nothing sent"
    check = ("each once" if once else f"NOT each once: {len(expected - counts.keys()):,} "
             f"missing, {twice:,} twice, {len(counts.keys() - expected):,} unexpected")  # fmt: skip
    print(f"{label:10} {due:,} due: {timing}, daemon CPU {got['cpu']:.1f} s, {check}")
    queued = got["queued_after"]
    errors = [ln for ln in daemon_log.read_text(errors="replace").splitlines()
              if " ERROR " in ln or " WARNING " in ln or "Traceback" in ln]  # fmt: skip
    print(f"{'':10}   ledger {dict(sorted(got['ledger'].items()))}, all queued after "
          f"{queued if queued is None else f'{queued:.2f} s'} (UPDATE committed in "
          f"{got['committed']:.3f} s), enrollments done {got['done']:,}, sink {sink_out}, "
          f"daemon exit {code}, {len(errors)} warning/error lines in its log")  # fmt: skip
    for line in errors[:5]:
        print(f"{'':10}   log: {line[:160]}")
    keep = os.environ.get("BENCH_KEEP_LOGS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / daemon_log.name).write_bytes(daemon_log.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=5_000)
    parser.add_argument("--pg", default="", help="PostgreSQL base URL (skipped if empty)")
    args = parser.parse_args()
    if not 0 < args.due <= args.rows:
        parser.error("--due must be 1..--rows")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        run("sqlite", f"sqlite:///{workdir / 'bench.db'}", args.rows, args.due, workdir)
        if args.pg:
            with pg_schema(args.pg, "bench_sequences") as url:
                run("postgresql", url, args.rows, args.due, workdir)


if __name__ == "__main__":
    main()
