"""Import benchmark: a generated Mailchimp-style CSV into SQLite and PostgreSQL.

    python bench/import.py [--rows 1000000] [--pg postgresql://postgres@127.0.0.1/test] [--tags]

Runs the real CLI (`newsletter subscriber import`) in a child process per database, then
prints rows/s end to end (parse, validate, normalise, de-duplicate, write) and the child's
peak RSS. A second run of the same file measures the idempotent re-import. With ``--tags``
the TAGS column is filled the way Mailchimp writes it (one to three of eight tags on two rows
in three, e.g. ``"customer, vip"``) and the import passes ``--tag bench``: compare with a run
without it.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgschema import pg_schema

HEADER = ["Email Address", "First Name", "Last Name", "Company", "MEMBER_RATING", "OPTIN_TIME",
          "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "CC", "LAST_CHANGED", "LEID", "EUID",
          "TAGS"]  # fmt: skip
FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Barbara", "Ken", "Dennis", "Åsa", "Jürgen"]
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Liskov", "Thompson", "Ritchie"]
DOMAINS = ["example.com", "example.org", "Example.NET", "mail.example.co.uk", "bücher.example"]
TAGS = ["customer", "vip", "churned", "Trial", "webinar 2024", "partner", "beta", "press"]


def generate(path: Path, rows: int, seed: int = 1, *, tags: bool = False) -> None:
    """A realistic export: mixed case, ~1% duplicates, ~0.5% invalid, quoted commas."""
    rnd = random.Random(seed)
    tag_rnd = random.Random(seed + 1)  # its own sequence: the same rows with or without tags
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("\ufeff")
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(rows):
            r = rnd.random()
            if r < 0.005:
                email = f"broken{i}.example.com"
            elif r < 0.015 and i > 10:
                email = f"User{rnd.randrange(i)}@{DOMAINS[0].upper()}"
            else:
                email = f"user{i}@{DOMAINS[i % len(DOMAINS)]}"
            cell = ", ".join(tag_rnd.sample(TAGS, 1 + i % 3)) if tags and i % 3 else ""
            w.writerow([email, FIRST[i % 10], LAST[i % 8], "Acme, Inc" if i % 7 == 0 else "",
                        i % 5, "2024-01-03 10:00:00", "192.0.2.10", "2024-01-03 10:05:00",
                        "192.0.2.10", "SE", "2024-01-03 10:05:00", str(i), f"e{i}",
                        cell])  # fmt: skip


def run_import(config: Path, csv_path: Path, extra: list[str]) -> tuple[float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(config), "subscriber", "import",
         str(csv_path), *extra], capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {proc.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: report it only if it grew.
    return elapsed, max(peak, before), proc.stdout.strip()


def bench(label: str, url: str, csv_path: Path, rows: int, workdir: Path, extra: list[str]) -> None:
    config = workdir / f"{label}.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), "db", "upgrade"],
                   check=True, capture_output=True)  # fmt: skip
    for attempt in ("first import", "re-import"):
        elapsed, peak_kb, summary = run_import(config, csv_path, extra)
        print(f"{label:<10} {attempt:<13} {rows:>9,} rows  {elapsed:7.1f} s  "
              f"{rows / elapsed:>9,.0f} rows/s  peak RSS {peak_kb / 1024:6.0f} MB")  # fmt: skip
        print(f"{'':<10} {summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", default=os.environ.get("NEWSLETTER_TEST_DATABASE_URL", ""))
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--tags", action="store_true", help="fill TAGS and pass --tag bench")
    args = parser.parse_args()
    extra = ["--tag", "bench"] if args.tags else []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "mailchimp.csv"
        start = time.perf_counter()
        generate(csv_path, args.rows, tags=args.tags)
        size = csv_path.stat().st_size / 1e6
        print(
            f"generated {args.rows:,} rows ({size:.0f} MB) in {time.perf_counter() - start:.1f} s"
        )
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        if args.only in (None, "sqlite"):
            bench(
                "sqlite", f"sqlite:///{workdir / 'bench.db'}", csv_path, args.rows, workdir, extra
            )
        if args.only in (None, "postgresql") and args.pg:
            with pg_schema(args.pg, "bench_import") as url:
                bench("postgresql", url, csv_path, args.rows, workdir, extra)


if __name__ == "__main__":
    main()
