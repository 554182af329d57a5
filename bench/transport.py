"""SMTP transport benchmark: messages/s from one process into a fast local sink.

    python bench/transport.py [--messages 50000] [--size 20000] [--concurrency 8]
                              [--batch 500] [--per-connection 100] [--no-pipelining]
                              [--relays 1,2]

Starts bench/fast_sink.py as a child process on a free 127.0.0.1 port with --rcpt-log, sends
N pre-built ~20 KB messages (one recipient each, in batches as the dispatcher would) through
``SmtpTransport`` (or, with ``--relays 2``, a ``RelayPool`` of two sinks sharing the
connections), and prints messages/s, MB/s and the CPU each side spent per message. Then
it checks the sink's recipient log: every recipient exactly once, nothing else (exit 1 if not).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newsletter.config import SmtpSettings
from newsletter.delivery.transports import Envelope, Relay, RelayPool, SmtpTransport, Transport

SINK = Path(__file__).with_name("fast_sink.py")
SENDER = "bounces@news.example.com"
DISTINCT_BODIES = 64


def build_messages(size: int) -> list[bytes]:
    """DISTINCT_BODIES messages of about ``size`` bytes: headers, then quoted-printable-like
    76-character lines, some starting with "." so dot-stuffing has work to do."""
    messages = []
    for n in range(DISTINCT_BODIES):
        head = (
            f"From: News <{SENDER}>\r\nTo: <reader{n}@example.com>\r\n"
            f"Subject: Issue {n}\r\nMessage-ID: <{n}.bench@news.example.com>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        lines = []
        total = len(head)
        i = 0
        while total < size:
            line = (b"." if i % 50 == 0 else b"") + (b"word%05d " % i * 8)[:74] + b"\r\n"
            lines.append(line)
            total += len(line)
            i += 1
        messages.append(head + b"".join(lines))
    return messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink(port: int, rcpt_log: Path) -> subprocess.Popen[str]:
    sink = subprocess.Popen(
        [sys.executable, str(SINK), str(port), "--rcpt-log", str(rcpt_log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    if sink.stdout.readline().strip() != "ready":  # blocks until the sink listens
        sink.kill()
        raise SystemExit("fast_sink.py did not start")
    return sink


async def send_all(
    transport: Transport, envelopes: list[Envelope], batch: int
) -> collections.Counter[str]:
    outcomes: collections.Counter[str] = collections.Counter()
    try:
        for start in range(0, len(envelopes), batch):
            results = await transport.send(envelopes[start : start + batch])
            outcomes.update(r.outcome for r in results)
    finally:
        await transport.aclose()
    return outcomes


def make(args: argparse.Namespace, relays: int) -> tuple[Transport, list[int]]:
    """One SmtpTransport, or a RelayPool of ``relays`` sharing the connections; the ports."""
    ports = [free_port() for _ in range(relays)]
    settings = [
        SmtpSettings(
            name=f"sink{i}",
            host="127.0.0.1",
            port=port,
            concurrency=max(1, args.concurrency // relays),
            max_messages_per_connection=args.per_connection,
        )
        for i, port in enumerate(ports)
    ]
    pipelining = not args.no_pipelining
    if relays == 1:
        return SmtpTransport(settings[0], pipelining=pipelining), ports
    pool = RelayPool(
        [Relay(s, SmtpTransport(s, pipelining=pipelining)) for s in settings],
        down_seconds=60,
    )
    return pool, ports


def run(args: argparse.Namespace, envelopes: list[Envelope], relays: int) -> bool:
    """Send every envelope through ``relays`` sinks; print the figures; True if each
    recipient arrived exactly once."""
    transport, ports = make(args, relays)
    with tempfile.TemporaryDirectory() as tmp:
        logs = [Path(tmp) / f"rcpt{i}.log" for i in range(relays)]
        sinks = [start_sink(port, log) for port, log in zip(ports, logs, strict=True)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            cpu0, t0 = time.process_time(), time.perf_counter()
            outcomes = asyncio.run(send_all(transport, envelopes, args.batch))
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            for sink in sinks:
                sink.send_signal(signal.SIGTERM)
            sink_outs = [sink.communicate(timeout=30)[0].strip() for sink in sinks]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        logged: collections.Counter[str] = collections.Counter()
        for log in logs:
            logged.update(log.read_bytes().decode().split())
    sink_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    n = len(envelopes)
    mb = sum(len(e.data) for e in envelopes) / 1e6
    kind = "one relay" if relays == 1 else f"a pool of {relays} relays"
    print(
        f"{n} messages of ~{args.size // 1000} KB, {kind}, concurrency {args.concurrency} "
        f"in all, {args.per_connection}/connection, batches of {args.batch}, "
        f"pipelining {'off' if args.no_pipelining else 'on'}"
    )
    print(f"  {n / elapsed:,.0f} messages/s, {mb / elapsed:,.0f} MB/s ({elapsed:.2f} s)")
    print(f"  CPU per message: transport {cpu / n * 1e6:.0f} µs, sinks {sink_cpu / n * 1e6:.0f} µs")
    print(f"  outcomes: {dict(outcomes)}; sinks: {'; '.join(sink_outs)}")

    expected = {f"user{i}@example.com" for i in range(n)}
    twice = [r for r, count in logged.items() if count > 1]
    missing = expected - logged.keys()
    extra = logged.keys() - expected
    if outcomes != {"sent": n} or twice or missing or extra:
        print(f"  FAILED: {len(missing)} missing, {len(twice)} twice, {len(extra)} unexpected")
        return False
    print(f"  rcpt logs: each of the {n} recipients exactly once")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=20_000, help="bytes per message")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500, help="envelopes per Transport.send")
    ap.add_argument("--per-connection", type=int, default=100, help="messages per connection")
    ap.add_argument("--no-pipelining", action="store_true")
    ap.add_argument(
        "--relays", default="1", help="comma-separated relay counts to measure in turn, e.g. 1,2"
    )
    args = ap.parse_args()

    bodies = build_messages(args.size)
    envelopes = [
        Envelope(i, SENDER, f"user{i}@example.com", bodies[i % DISTINCT_BODIES])
        for i in range(args.messages)
    ]
    ok = [run(args, envelopes, int(count)) for count in args.relays.split(",")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
