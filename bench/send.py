"""Send benchmark: `newsletter issue send` of a 20 KB issue to 50,000 and 200,000 subscribers.

    python bench/send.py [--sizes 50000,200000] [--pg postgresql://postgres@127.0.0.1/test]
                         [--no-baseline] [--dkim off,rsa,ed25519]

For each store (SQLite, and PostgreSQL when --pg or NEWSLETTER_TEST_DATABASE_URL is given) and
each size: a fresh database, subscribers imported from a generated CSV, a Markdown post of
~20 KB of HTML, then the real CLI `issue send` (default workers: one per core) against
bench/fast_sink.py on 127.0.0.1. Prints messages/s end to end (render + MIME + SMTP +
ledger), the peak RSS of the largest process of the send, and checks with the sink's RCPT log
that every subscriber got exactly one message.

Before each send it runs bench/transport.py (the SMTP transport alone, same message count, 8
connections) and prints the ratio of the two: end to end ÷ transport alone, which tells the
cost of the ledger and composing apart from a slow hour of the machine.

``--dkim off,rsa,ed25519`` sends the same issue once per mode in the same run: without DKIM,
signed with an RSA-2048 key, and with an Ed25519 key (`newsletter dkim keygen`).
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import site_config
from pgschema import pg_schema

HERE = Path(__file__).resolve().parent
EXTRA = os.environ.get("BENCH_SEND_ARGS", "").split()
PARAGRAPH = (
    "Pricing is the most powerful lever a software company has, and the one founders touch "
    "least. We changed ours three times in eighteen months; each change taught us something "
    "about who our customers were and what they valued. "
)
# Runs a command and prints the largest RSS (KB) of any process in its tree.
MEASURE = (
    "import resource, subprocess, sys; "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "print('maxrss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(rc)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "newsletter", "--config", str(config), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def prepare(workdir: Path, url: str, size: int, port: int, dkim: str = "off") -> Path:
    config = workdir / "newsletter.toml"
    config.write_text(
        site_config(url)
        + f"""[smtp]
host = "127.0.0.1"
port = {port}
concurrency = {os.environ.get("BENCH_CONCURRENCY", "8")}
max_messages_per_connection = 1000
timeout = 30.0
[sending]
batch_size = 1000
""",
        encoding="utf-8",
    )
    if dkim != "off":
        key = workdir / f"dkim-{dkim}.pem"
        cli(config, "dkim", "keygen", "--domain", "news.example.com", "--selector", dkim,
            "--type", dkim, "--out", str(key))  # fmt: skip
        with config.open("a", encoding="utf-8") as fh:
            fh.write(f'[dkim]\ndomain = "news.example.com"\nselector = "{dkim}"\n'
                     f'private_key_file = "{key}"\n')  # fmt: skip
    cli(config, "db", "upgrade")
    people = workdir / "people.csv"
    with people.open("w", encoding="utf-8") as fh:
        fh.write("email,name\n")
        for i in range(size):
            fh.write(f"reader{i}@example.com,Reader {i}\n")
    cli(config, "list", "create", "blog")
    cli(config, "subscriber", "import", str(people), "--list", "blog")
    post = workdir / "post.md"
    body = "\n\n".join(f"## Part {i}\n\n{PARAGRAPH * 3}" for i in range(24))
    post.write_text(
        f"---\ntitle: We changed our pricing three times\ndate: 2026-11-24\n---\n\n{body}\n",
        encoding="utf-8",
    )
    cli(config, "post", "add", str(post))
    cli(config, "issue", "create", "--latest", "--list", "blog")
    return config


def transport_alone(size: int) -> float:
    """messages/s of bench/transport.py for ``size`` messages, in a process of its own."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "transport.py"), "--messages", str(size)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"transport bench failed: {proc.stdout}{proc.stderr}")
    return float(proc.stdout.split(" messages/s")[0].split()[-1].replace(",", ""))


def run(
    label: str, url: str, size: int, workdir: Path, baseline: bool = True, dkim: str = "off"
) -> None:
    alone = transport_alone(size) if baseline else 0.0
    port = free_port()
    rcpt_log = workdir / "rcpt.log"
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "fast_sink.py"), str(port), "--rcpt-log", str(rcpt_log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        config = prepare(workdir, url, size, port, dkim)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, sys.executable, "-m", "newsletter", "--config",
             str(config), "issue", "send", "1", *EXTRA],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"send failed: {proc.stderr.strip()}")
        rss_kb = int(proc.stderr.split("maxrss_kb")[1].split()[0])
    finally:
        sink.terminate()
        sink.wait()
    counts = collections.Counter(rcpt_log.read_text().split())
    once = len(counts) == size and set(counts.values()) == {1}
    print(
        f"{label:<10} dkim {dkim:<7} {size:>8,} recipients  {elapsed:6.1f} s  "
        f"{size / elapsed:7,.0f} msg/s  "
        f"peak RSS {rss_kb / 1024:5.0f} MB  each exactly once: {'yes' if once else 'NO'}"
    )
    print(f"{'':<10} {proc.stdout.strip()}")
    if alone:
        print(
            f"{'':<10} transport alone {alone:7,.0f} msg/s in the same run; end to end ÷ "
            f"transport alone = {size / elapsed / alone:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,200000")
    parser.add_argument("--pg", default=os.environ.get("NEWSLETTER_TEST_DATABASE_URL", ""))
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--no-baseline", action="store_true", help="skip bench/transport.py")
    parser.add_argument("--dkim", default="off", help="modes to compare: off,rsa,ed25519")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for size in sizes:
        for mode in args.dkim.split(","):
            if args.only in (None, "sqlite"):
                with tempfile.TemporaryDirectory() as tmp:
                    db = f"sqlite:///{Path(tmp) / 'bench.db'}"
                    run("sqlite", db, size, Path(tmp), not args.no_baseline, mode)
            if args.only in (None, "postgresql") and args.pg:
                with pg_schema(args.pg, "bench_send") as url, tempfile.TemporaryDirectory() as tmp:
                    run("postgresql", url, size, Path(tmp), not args.no_baseline, mode)


if __name__ == "__main__":
    main()
