"""Segment benchmark: 1,000,000 subscribers with tags and attributes, on SQLite and PostgreSQL.

    python bench/segments.py [--rows 1000000] [--pg postgresql://postgres@127.0.0.1/test]

Fills a fresh database with SQL (not the importer: bench/import.py measures that): one list
with everyone, 95% active, attributes {"plan", "age"}, eight tags on two people in three
(1.3 tags each on average). Then measures, for the segment
``tag:customer and not tag:churned and attr.plan = "pro" and attr.age > 30``:

- `newsletter segment show` as a user runs it (a child process; count and sample), best of 3;
- `issue send` start-up: the ledger filled for an issue to that segment (ledger.start_issue,
  the one INSERT ... SELECT, committed), and the same for the whole list for comparison;
- readers' cadences: one reader in three on a weekly digest; three send-mode posts started
  (each: the ledger of the "every post" readers and the digest queue of the others, two
  INSERT ... SELECT), then the weekly digest made (the readers grouped by what waits for them,
  the queue rows taken) and started.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import count_seconds, typer_import
from pgschema import pg_schema
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery import ledger
from newsletter.issues.digests import make_cadence_digests
from newsletter.store import connect, upgrade
from newsletter.store.models import Delivery, DigestQueue, Issue, IssuePost, Post, Segment

TAGS = ["customer", "vip", "churned", "trial", "webinar 2024", "partner", "beta", "press"]
EXPRESSION = 'tag:customer and not tag:churned and attr.plan = "pro" and attr.age > 30'

_SQLITE_FILL = [
    "INSERT INTO lists (id, name, description, created_at) "
    "VALUES (1, 'blog', '', '2024-01-01 00:00:00.000000')",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
    "INSERT INTO subscribers (id, email, email_key, name, status, attributes, token, source, "
    "created_at, updated_at, no_tracking) SELECT i, 'user' || i || '@' || "
    "(CASE i % 4 WHEN 0 THEN 'gmail.com' WHEN 1 THEN 'example.com' WHEN 2 THEN 'outlook.com' "
    "ELSE 'example.org' END), 'user' || i || '@x', 'Reader', "
    "CASE WHEN i % 20 = 0 THEN 'unsubscribed' ELSE 'active' END, "
    "json_object('plan', CASE i % 3 WHEN 0 THEN 'pro' WHEN 1 THEN 'free' ELSE 'team' END, "
    "'age', '' || (18 + i % 60)), 'tok' || i, 'bench', "
    "strftime('%Y-%m-%d %H:%M:%f', '2024-01-01', '+' || (i % 900) || ' days'), "
    "'2024-01-01 00:00:00.000000', 0 FROM n",
    "INSERT INTO memberships (list_id, subscriber_id, created_at) "
    "SELECT 1, id, created_at FROM subscribers",
]
_PG_FILL = [
    "INSERT INTO lists (id, name, description, created_at) VALUES (1, 'blog', '', now())",
    "INSERT INTO subscribers (id, email, email_key, name, status, attributes, token, source, "
    "created_at, updated_at, no_tracking) SELECT i, 'user' || i || '@' || "
    "(CASE i % 4 WHEN 0 THEN 'gmail.com' WHEN 1 THEN 'example.com' WHEN 2 THEN 'outlook.com' "
    "ELSE 'example.org' END), 'user' || i || '@x', 'Reader', "
    "CASE WHEN i % 20 = 0 THEN 'unsubscribed' ELSE 'active' END, "
    "json_build_object('plan', CASE i % 3 WHEN 0 THEN 'pro' WHEN 1 THEN 'free' ELSE 'team' "
    "END, 'age', '' || (18 + i % 60)), 'tok' || i, 'bench', "
    "timestamptz '2024-01-01' + (i % 900) * interval '1 day', now(), false "
    "FROM generate_series(1, :rows) AS i",
    "INSERT INTO memberships (list_id, subscriber_id, created_at) "
    "SELECT 1, id, created_at FROM subscribers",
]
# Two people in three get one to three tags; "customer" one in three, "churned" one in eight.
_TAGGING = (
    "INSERT INTO subscriber_tags (subscriber_id, tag_id, created_at) "
    "SELECT id, tag_id, created_at FROM subscribers, (SELECT 1 AS tag_id UNION ALL SELECT 2 "
    "UNION ALL SELECT 3 UNION ALL SELECT 4) t WHERE (tag_id = 1 AND id % 3 = 0) "
    "OR (tag_id = 3 AND id % 8 = 0) OR (tag_id = 2 AND id % 5 = 0) OR (tag_id = 4 AND id % 7 = 1)"
)


def fill(url: str, rows: int) -> float:
    engine = connect(url)
    upgrade(engine)
    began = time.perf_counter()
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for sql in _PG_FILL if pg else _SQLITE_FILL:
            conn.execute(text(sql), {"rows": rows} if ":rows" in sql else {})
        for i, name in enumerate(TAGS, 1):
            conn.execute(text("INSERT INTO tags (id, name, created_at) VALUES (:i, :n, :t)"),
                         {"i": i, "n": name, "t": "2024-01-01 00:00:00"})  # fmt: skip
        conn.execute(text(_TAGGING))
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    with Session(engine) as session, session.begin():
        session.add(Segment(name="loyal", expression=EXPRESSION))
        for rule in ({"segment": "loyal"}, {}):
            session.add(Issue(kind="post", subject="Bench", list_id=1, audience_rule=rule))
    engine.dispose()
    return time.perf_counter() - began


def segment_show(config: Path) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(3):
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", "--config", str(config), "segment", "show",
             "loyal"], capture_output=True, text=True, check=True,
        )  # fmt: skip
        best = min(best, time.perf_counter() - began)
        out = done.stdout
    matches = next(line for line in out.splitlines() if "matches" in line).strip()
    return best, matches


def ledger_fill(url: str, issue_id: int) -> tuple[float, int]:
    engine = connect(url)
    try:
        with Session(engine) as session, session.begin():
            session.execute(delete(Delivery).where(Delivery.issue_id == issue_id))
        began = time.perf_counter()
        with Session(engine) as session, session.begin():
            added = ledger.start_issue(session, session.get_one(Issue, issue_id))
        elapsed = time.perf_counter() - began
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(Delivery)) == added
        with Session(engine) as session, session.begin():
            session.execute(delete(Delivery))
        return elapsed, added
    finally:
        engine.dispose()


def cadence_fill(url: str) -> str:
    """Three send-mode posts to a list where one reader in three chose a weekly digest, then
    that digest: the time of each step (committed)."""
    engine = connect(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE memberships SET cadence = 'weekly' WHERE subscriber_id % 3 = 1")
            )
        starts = []
        for n in range(3):
            with Session(engine) as session, session.begin():
                post = Post(
                    origin="bench", guid=f"cadence-{n}", title=f"Post {n}", content_hash="x"
                )
                issue = Issue(kind="post", subject=f"Post {n}", list_id=1, cadence="post",
                              audience_rule={"default_cadence": "post"})  # fmt: skip
                session.add_all([post, issue])
                session.flush()
                session.add(IssuePost(issue_id=issue.id, post_id=post.id))
                issue_id = issue.id
            began = time.perf_counter()
            with Session(engine) as session, session.begin():
                added = ledger.start_issue(session, session.get_one(Issue, issue_id))
            starts.append(time.perf_counter() - began)
        with Session(engine) as session:
            held = session.scalar(select(func.count()).select_from(DigestQueue))
        began = time.perf_counter()
        with Session(engine) as session, session.begin():
            (digest,) = make_cadence_digests(session, Settings(), "weekly")
            digest_id = digest.id
        made = time.perf_counter() - began
        began = time.perf_counter()
        with Session(engine) as session, session.begin():
            readers = ledger.start_issue(session, session.get_one(Issue, digest_id))
        started = time.perf_counter() - began
        return (f"cadence: 3 posts started (each {added:,} deliveries + the queue) in "
                f"{min(starts):.2f}-{max(starts):.2f} s; {held:,} held; weekly digest made in "
                f"{made:.2f} s, its ledger ({readers:,}) in {started:.2f} s")  # fmt: skip
    finally:
        engine.dispose()


def baselines(url: str) -> str:
    """Figures of this machine in this minute, to read the others against: the time of
    `python -c "import typer"` (part of every CLI start) and of one plain COUNT(*) of the
    subscribers through the driver."""
    typer_s, count_s = typer_import(runs=1), count_seconds(url, "subscribers")
    return f"baselines: import typer {typer_s:.2f} s, plain COUNT(*) of subscribers {count_s:.2f} s"


def run(label: str, url: str, rows: int, workdir: Path) -> None:
    filled = fill(url, rows)
    print(f"{label:10} {baselines(url)}")
    config = workdir / f"{label}.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    show, matches = segment_show(config)
    segment_s, segment_n = ledger_fill(url, 1)
    whole_s, whole_n = ledger_fill(url, 2)
    print(f"{label:10} fill {filled:6.1f} s | segment show {show:5.2f} s ({matches}) | "
          f"ledger fill: segment {segment_n:,} in {segment_s:5.2f} s, whole list "
          f"{whole_n:,} in {whole_s:5.2f} s")  # fmt: skip
    print(f"{label:10} {cadence_fill(url)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", default="", help="PostgreSQL base URL (skipped if empty)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        run("sqlite", f"sqlite:///{workdir / 'bench.db'}", args.rows, workdir)
        if args.pg:
            with pg_schema(args.pg, "bench_segments") as url:
                run("postgresql", url, args.rows, workdir)


if __name__ == "__main__":
    main()
