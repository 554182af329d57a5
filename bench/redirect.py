"""Load benchmark: the click redirector under a burst of concurrent clicks, loopback only.

    .venv/bin/python bench/redirect.py [--clicks 2000] [--connections 2000] [--seconds 10]
                      [--warm 3] [--pg postgresql://postgres@127.0.0.1:5432/test]

For each store (SQLite in a temporary directory; PostgreSQL in a database of its own,
``bench_redirect``, made on the server --pg names, when it is given): a migrated database
with two sent issues, their 20 tracked links each (``store.tracking.save_links``) and
subscribers (tokens from ``tracking.plan.signer``), then the real app (``create_app`` served
by ``web.server.serve``, as `newsletter serve` does, access log included) in a child
process on 127.0.0.1. Bursts of ``--clicks`` GETs of ``/l/<link>.<reader>`` with a
browser's user agent, all fired at once from one asyncio process over ``--connections``
keep-alive connections (by default one per click, all opened at once; with fewer, each
click waits for a free one): "cold" is the server's first burst (the key and the issue's
links are read from the database then), then ``--warm`` more of the same issue, each from
other readers (so every click is a person's first), and "new issue": the first clicks of
the second issue (its links are read then), as when scanners open a new issue's links just
after delivery. A burst ends when every click is answered or after ``--seconds``. Printed
per burst: clicks/s, latency p50, p99 and max (from the request's start on its connection,
the TCP connect of a new one included, to the end of the answer), every answer that is not
a 302, the kernel's listen queue overflows, and the GETs of ``/subscribe`` a third process
made meanwhile (one every 0.1 s on a connection of its own). Then it polls the
tracking_events table until every click is there (30 s at most) and prints written against
sent.

The baseline, in the same run before and after each store's bursts: the same burst against
a bare Starlette app (one route answering 302, no middleware) served the same way, to tell
a slow hour of this machine from a slow redirector; "÷ baseline" divides by the mean of the
two. Exits 1 if a click is lost or answered other than 302.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgschema import pg_schema  # noqa: E402

BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
LINKS = 20
PG_DATABASE = "bench_redirect"
WRITE_DEADLINE = 30.0  # seconds to wait for the clicks to reach the table
PROBE_EVERY = 0.1


def settings_dict(url: str) -> dict:
    return {
        "site": {
            "name": "Field Notes",
            "base_url": "https://fieldnotes.example.com",
            "postal_address": "Field Notes AB, Storgatan 12, 114 51 Stockholm, Sweden",
        },
        "sender": {"from_name": "Field Notes", "from_address": "maja@fieldnotes.example.com"},
        "database": {"url": url},
        "web": {"lists": ["blog"]},
    }


# -- the child processes ------------------------------------------------------------------------


def serve_app(url: str) -> None:
    """The real web service on ``url``'s database, on a free port of 127.0.0.1."""
    from newsletter.config import settings_from_dict
    from newsletter.store import connect
    from newsletter.web import create_app
    from newsletter.web.server import serve

    settings = settings_from_dict(settings_dict(url))
    app = create_app(settings, connect(url), cleanup_interval=None)
    serve(app, settings.web, host="127.0.0.1", port=0)


def serve_trivial() -> None:
    """The baseline: a bare Starlette route answering 302, served the same way."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from newsletter.config import WebSettings
    from newsletter.web.server import serve

    async def redirect(request):
        return Response(status_code=302, headers={"Location": "https://research.example.org/"})

    serve(
        Starlette(routes=[Route("/l/{token}", redirect)]), WebSettings(), host="127.0.0.1", port=0
    )


def probe(url: str) -> None:
    """GET ``url`` every PROBE_EVERY seconds until stdin closes; print (status, seconds)s."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    results = []
    with httpx.Client(timeout=30.0, headers={"user-agent": BROWSER}) as client:
        client.get(url)  # the connection made before the burst
        print("ready", flush=True)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                status = client.get(url).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            results.append((status, time.perf_counter() - t0))
            stop.wait(PROBE_EVERY)
    print(json.dumps(results), flush=True)


class Server:
    """A child process serving the app (``mode`` "app") or the baseline ("trivial")."""

    def __init__(self, mode: str, workdir: Path, url: str = "") -> None:
        self.log = workdir / f"server-{mode}.log"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", mode, "--db", url],
                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while (found := re.search(r"listening on (http://\S+)", self.log.read_text())) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {mode} server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.base_url = found.group(1)
        with httpx.Client() as client:  # listening is not yet serving: wait for an answer
            while True:
                try:
                    client.get(self.base_url + "/")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the store ----------------------------------------------------------------------------------


def prepare_store(url: str, readers: int, issues: int) -> list[list[str]]:
    """A migrated database with ``issues`` sent issues, their links and ``readers``
    subscribers; per issue, the path of one tracked click for each subscriber (the issue's
    links taken in turn)."""
    from sqlalchemy import insert

    from newsletter.store import connect, session_factory, upgrade
    from newsletter.store import tracking as store
    from newsletter.store.models import Issue, MailingList, Subscriber
    from newsletter.tracking import plan
    from newsletter.tracking.links import HONEYPOT

    engine = connect(url)
    upgrade(engine)
    sessions = session_factory(engine)
    urls = [HONEYPOT] + [
        f"https://research.example.org/notes/{i}?utm_source=fieldnotes&utm_medium=email#p{i}"
        for i in range(1, LINKS + 1)
    ]
    with sessions() as session, session.begin():
        blog = MailingList(name="blog")
        session.add(blog)
        session.flush()
        issue_ids = []
        for n in range(issues):
            issue = Issue(kind="post", status="sent", subject=f"Issue {n}", list_id=blog.id)
            session.add(issue)
            session.flush()
            store.save_links(session, issue.id, urls)
            issue_ids.append(issue.id)
        rows = [
            {"email": f"reader{i}@example.com", "email_key": f"reader{i}@example.com",
             "name": f"Reader {i}", "status": "active"}
            for i in range(readers)
        ]  # fmt: skip
        ids = session.scalars(insert(Subscriber).returning(Subscriber.id), rows).all()
        signer = plan.signer(session)
    engine.dispose()
    paths = []
    for issue_id in issue_ids:
        links = [signer.link(issue_id, idx) for idx in range(1, LINKS + 1)]
        paths.append(
            [f"/l/{links[n % LINKS]}.{signer.reader(issue_id, sid)}" for n, sid in enumerate(ids)]
        )
    return paths


def events(url: str) -> Counter:
    """The tracking_events rows by class ("" is a person's click)."""
    from sqlalchemy import func, select

    from newsletter.store import connect
    from newsletter.store.models import TrackingEvent

    engine = connect(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(TrackingEvent.machine, func.count()).group_by(TrackingEvent.machine)
            )
            return Counter(dict(rows.all()))
    finally:
        engine.dispose()


def wait_for_events(url: str, expected: int) -> tuple[Counter, float]:
    """Poll until ``expected`` events are written (WRITE_DEADLINE at most): (by class,
    seconds waited)."""
    start = time.monotonic()
    while True:
        found = events(url)
        waited = time.monotonic() - start
        if found.total() >= expected or waited > WRITE_DEADLINE:
            return found, waited
        time.sleep(0.05)


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Burst:
    sent: int
    elapsed: float = 0.0  # from the first click fired to the last answer
    latencies: list[float] = field(default_factory=list)  # of the 302s
    answers: Counter = field(default_factory=Counter)  # status (or error name) -> count
    overflows: int = 0  # the kernel's listen queue overflows meanwhile (Linux, every socket)
    probes: list[tuple[int | str, float]] = field(default_factory=list)

    @property
    def redirects(self) -> int:
        return self.answers[302]


def listen_overflows() -> int:
    """TcpExt ListenOverflows from /proc/net/netstat (0 where there is none)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
) -> tuple[int, bool]:
    """Send one GET, read its answer: (status, the server keeps the connection)."""
    writer.write(head)
    answer = await reader.readuntil(b"\r\n\r\n")
    lines = answer.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return status, headers.get("connection") != "close"


async def fire(base_url: str, paths: list[str], connections: int, seconds: float) -> Burst:
    """Every path GET at once over ``connections`` keep-alive connections (each click waits
    for a free one); what is not answered within ``seconds`` counts as "unanswered".

    A plain HTTP/1.1 client on asyncio streams: httpx's AsyncClient, tried first, spent
    3-30 ms of CPU a request here with hundreds in flight (its pool scans every waiting
    request; httpcore imports sniffio, which is not installed, on every request), so it
    measured itself, not the server."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    todo = list(reversed(paths))
    burst = Burst(sent=len(paths))
    clock = time.perf_counter

    async def connection() -> None:
        reader = writer = None
        while todo:
            path = todo.pop()
            head = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {BROWSER}\r\n"
                "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en\r\n\r\n"
            ).encode()
            t0 = clock()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                status, keep = await request(reader, writer, head)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                burst.answers[type(exc).__name__] += 1
                keep = False
            else:
                burst.answers[status] += 1
                if status == 302:
                    burst.latencies.append(clock() - t0)
            if not keep and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    overflows = listen_overflows()
    start = clock()
    tasks = [asyncio.create_task(connection()) for _ in range(min(connections, len(paths)))]
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    burst.elapsed = clock() - start
    burst.overflows = listen_overflows() - overflows
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    unanswered = burst.sent - burst.answers.total()
    if unanswered:
        burst.answers["unanswered"] = unanswered
    return burst


def run_burst(base_url: str, paths: list[str], args: argparse.Namespace, probe_url: str) -> Burst:
    """A burst with the /subscribe probe beside it (when ``probe_url``)."""
    prober = None
    if probe_url:
        prober = subprocess.Popen(
            [sys.executable, __file__, "--probe", probe_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        assert prober.stdout is not None and prober.stdout.readline().strip() == "ready"
    burst = asyncio.run(fire(base_url, paths, args.connections, args.seconds))
    if prober is not None:
        out, _ = prober.communicate(timeout=60)
        burst.probes = [tuple(p) for p in json.loads(out)]
    return burst


# -- the report ---------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def describe(label: str, burst: Burst) -> str:
    lat = burst.latencies
    line = (
        f"  {label}: {burst.redirects:,} of {burst.sent:,} answered 302 in {burst.elapsed:.2f} s,"
        f" {burst.redirects / burst.elapsed:,.0f} clicks/s; latency p50 {ms(percentile(lat, 0.5))},"
        f" p99 {ms(percentile(lat, 0.99))}, max {ms(max(lat, default=float('nan')))}"
    )
    others = {k: v for k, v in burst.answers.items() if k != 302}
    line += f"; not 302: {dict(others) if others else 0}"
    if burst.overflows:
        line += f"; listen queue overflows: {burst.overflows}"
    if burst.probes:
        times = [t for _, t in burst.probes]
        statuses = Counter(s for s, _ in burst.probes)
        line += (
            f"\n    GET /subscribe meanwhile: {len(times)} requests {dict(statuses)}, "
            f"median {ms(statistics.median(times))}, max {ms(max(times))}"
        )
    return line


def baseline(workdir: Path, paths: list[str], args: argparse.Namespace) -> Burst:
    trivial = Server("trivial", workdir)
    try:
        return run_burst(trivial.base_url, paths, args, "")
    finally:
        trivial.stop()


def bench_store(label: str, url: str, workdir: Path, args: argparse.Namespace) -> bool:
    """The baseline, the cold and the warm bursts, the baseline again, on one store.
    True if every click was answered 302 and written."""
    n = args.clicks
    first, second = prepare_store(url, (1 + args.warm) * n, issues=2)
    chunks = {"cold": first[:n]}
    chunks |= {f"warm {i}": first[i * n : (i + 1) * n] for i in range(1, 1 + args.warm)}
    chunks["new issue"] = second[:n]

    before = baseline(workdir, chunks["cold"], args)
    server = Server("app", workdir, url)
    try:
        bursts = {}
        for name, paths in chunks.items():
            bursts[name] = run_burst(server.base_url, paths, args, server.base_url + "/subscribe")
        sent = sum(b.redirects for b in bursts.values())
        written, waited = wait_for_events(url, sent)
    finally:
        server.stop()
    after = baseline(workdir, chunks["cold"], args)

    print(f"{label}:")
    print(describe("baseline before, a bare Starlette 302 route", before))
    base_rate = (before.redirects / before.elapsed + after.redirects / after.elapsed) / 2
    for name, burst in bursts.items():
        rate = burst.redirects / burst.elapsed
        print(describe(f"redirector, {name}", burst) + f"\n    ÷ baseline: {rate / base_rate:.2f}")
    print(describe("baseline after", after))
    kinds = ", ".join(f"{k or 'human'} {n:,}" for k, n in sorted(written.items()))
    print(
        f"  tracking_events: {written.total():,} written of {sent:,} redirected ({kinds}), "
        f"all there {waited:.2f} s after the last burst"
    )
    lost = any(set(b.answers) != {302} for b in bursts.values())
    return not lost and written.total() == sent


def pg_database(url: str) -> str:
    """The URL of our own database on ``url``'s server (made if missing): other tests use
    the database ``url`` names, which this benchmark only connects to to make ours."""
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
        if found.fetchone() is None:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return make_url(url).set(database=PG_DATABASE).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=2000, help="clicks per burst")
    parser.add_argument("--connections", type=int, default=2000, help="client connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per burst")
    parser.add_argument("--warm", type=int, default=3, help="warm bursts after the first")
    parser.add_argument("--pg", default="", help="a PostgreSQL server's URL")
    parser.add_argument("--serve", choices=("app", "trivial"), help=argparse.SUPPRESS)
    parser.add_argument("--db", default="", help=argparse.SUPPRESS)
    parser.add_argument("--probe", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "app":
        return serve_app(args.db)
    if args.serve == "trivial":
        return serve_trivial()
    if args.probe:
        return probe(args.probe)

    print(
        f"python {platform.python_version()}, {platform.machine()}, nproc {os.cpu_count()}; "
        f"{args.clicks:,} clicks per burst fired at once over {args.connections:,} connections, "
        f"{args.seconds:g} s limit"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ok &= bench_store("SQLite", f"sqlite:///{workdir / 'bench.db'}", workdir, args)
        if args.pg:
            with pg_schema(pg_database(args.pg), "bench") as url:
                ok &= bench_store("PostgreSQL", url, workdir, args)
    if not ok:
        print("FAILED: a click was dropped or not answered 302", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
