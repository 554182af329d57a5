"""API load benchmark: `GET /api/v1/subscribers?email=` and `POST /api/v1/subscribers` under
200 concurrent clients, on the real `newsletter serve`, loopback only.

    .venv/bin/python bench/api.py [--clients 200] [--requests 5000] [--seconds 120]
                      [--pg postgresql://postgres@127.0.0.1:5432/test]

For each store (SQLite in a temporary file; PostgreSQL in a throwaway schema, ``bench_api``,
of the server --pg names, when it is given), set up with the real CLI: `db upgrade`, `list
create blog`, `subscriber import` of 10,000 people (reader0@example.com...) into "blog", and
`token create bench --scope subscribers:read,subscribers:write`. The config has ``[api]
requests_per_minute`` far above the load (no 429), ``[sending] transport = "maildir"`` (no
mail leaves) and ``[web]`` on 127.0.0.1 and a free port. Then `newsletter --config CFG serve`
runs as a child process (access log on, as in production), and one asyncio process sends
``--requests`` requests of each kind over ``--clients`` keep-alive connections, all opened
before the clock starts, each sending its next request as soon as the previous one is
answered (closed loop: with 200 in flight, p50 is about 200 / the rate):

- GET /api/v1/openapi.json (no token, no database, a pre-encoded body): the HTTP stack of the
  same server alone, before and after the API loads;
- GET /api/v1/subscribers?email= of random existing addresses (expects 200 with exactly that
  one subscriber);
- POST /api/v1/subscribers of new addresses, ``confirmed: true``, lists ["blog"] (expects
  201; the subscribers table is counted afterwards).

Printed per load: requests/s, latency p50, p99 and max (from writing the request to the end
of its answer), every answer that is not the expected status (or body), and the CPU seconds
per request of the server process, of this client and of the whole machine (the rest is
PostgreSQL or neighbours). Baselines in the same run: `python -c "import typer"` (best of
3), and a plain driver loop (sqlite3 / psycopg, one connection) of the same number of
``SELECT * FROM subscribers WHERE email_key = ?`` on the same database. Finally the server
gets SIGTERM and must log "Application shutdown complete" and exit 0 or, as uvicorn (0.29
and later) raises the signal again once it has shut down, die of that SIGTERM (status -15,
what tests/web/test_optin.py accepts too); its log is searched for ERROR lines and
tracebacks. Exits 1 if any request failed. The client is a plain HTTP/1.1 one on asyncio
streams, as in bench/redirect.py (httpx's pool measured itself with hundreds in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from baseline import typer_import
from pgschema import pg_schema

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "newsletter"]
PEOPLE = 10_000
TICK = os.sysconf("SC_CLK_TCK")
API = "/api/v1"


# -- set-up with the real CLI -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, url: str, port: int, workdir: Path) -> None:
    path.write_text(
        f"""
[site]
name = "Field Notes"
base_url = "https://fieldnotes.example.com"
postal_address = "Field Notes AB, Storgatan 12, 114 51 Stockholm, Sweden"

[sender]
from_name = "Field Notes"
from_address = "maja@fieldnotes.example.com"

[database]
url = "{url}"

[web]
host = "127.0.0.1"
port = {port}
lists = ["blog"]

[api]
requests_per_minute = 10000000

[sending]
transport = "maildir"
maildir_path = "{workdir / "outbox"}"
""",
        encoding="utf-8",
    )


def cli(config: Path, *args: str) -> str:
    done = subprocess.run([*CLI, "--config", str(config), *args], capture_output=True, text=True,
                          cwd=config.parent, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"newsletter {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def set_up(config: Path) -> tuple[str, float]:
    """The schema, the list, PEOPLE subscribers, a token: (the token, seconds taken)."""
    began = time.perf_counter()
    cli(config, "db", "upgrade")
    cli(config, "list", "create", "blog")
    people = config.parent / "people.csv"
    rows = "".join(f"reader{i}@example.com,Reader {i}\n" for i in range(PEOPLE))
    people.write_text("email,name\n" + rows, encoding="utf-8")
    cli(config, "subscriber", "import", str(people), "--list", "blog")
    out = cli(config, "token", "create", "bench", "--scope", "subscribers:read,subscribers:write")
    token = out.strip().splitlines()[-1]
    assert token.startswith("nl_"), out
    return token, time.perf_counter() - began


def plain_selects(url: str, keys: list[str]) -> tuple[float, int]:
    """The same lookups as the GETs through the bare driver, one connection: (seconds,
    rows found)."""
    found = 0
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = "SELECT * FROM subscribers WHERE email_key = ?"
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        sql = "SELECT * FROM subscribers WHERE email_key = %s"
    try:
        began = time.perf_counter()
        for key in keys:
            found += len(conn.execute(sql, (key,)).fetchall())
        return time.perf_counter() - began, found
    finally:
        conn.close()


def count_subscribers(url: str) -> int:
    from sqlalchemy import text

    from newsletter.store import connect

    engine = connect(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM subscribers")).scalar_one()
    finally:
        engine.dispose()


# -- the server ---------------------------------------------------------------------------------


class Server:
    """`newsletter --config CFG serve` in a child process, answering."""

    def __init__(self, config: Path, port: int) -> None:
        self.log = config.with_suffix(".log")
        self.base_url = f"http://127.0.0.1:{port}"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen([*CLI, "--config", str(config), "serve"],
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         cwd=config.parent)  # fmt: skip
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.base_url) as client:
            while True:
                try:
                    if client.get(API + "/openapi.json").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start:\n{self.log.read_text()}")
                time.sleep(0.05)

    def cpu(self) -> float:
        """User + system CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM: (exit status, seconds to exit); killed after 30 s (status None)."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, time.monotonic() - began

    def problems(self) -> list[str]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [ln for ln in lines if " ERROR " in ln or "Traceback" in ln or " CRITICAL " in ln]


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (every core, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICK


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Load:
    sent: int
    expect: int
    elapsed: float = 0.0  # from the first request written to the last answer read
    latencies: list[float] = field(default_factory=list)  # of the expected answers
    answers: Counter = field(default_factory=Counter)  # status (or error name) -> count
    wrong_body: int = 0  # the expected status with an unexpected body
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> bool:
        return self.ok != self.sent


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    """Send one request, read its answer: (status, body, the server keeps the connection)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    if "transfer-encoding" in headers:
        raise ValueError("chunked answer")
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, body, headers.get("connection") != "close"


async def fire(
    port: int,
    requests: list[bytes],
    expect: int,
    check: Callable[[int, bytes], bool] | None,
    clients: int,
    seconds: float,
) -> Load:
    """Every request over ``clients`` keep-alive connections (opened first, untimed), each
    connection sending its next as soon as the last is answered; what is not answered
    within ``seconds`` counts as "unanswered". ``check(i, body)`` tells a right body."""
    load = Load(sent=len(requests), expect=expect)
    clock = time.perf_counter
    todo = list(range(len(requests) - 1, -1, -1))

    async def opened() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port)

    conns = []
    for start in range(0, clients, 50):  # the listen backlog is 128
        conns += await asyncio.gather(*(opened() for _ in range(min(50, clients - start))))

    async def connection(reader: asyncio.StreamReader | None, writer: Any) -> None:
        while todo:
            i = todo.pop()
            t0 = clock()
            try:
                if writer is None:
                    reader, writer = await opened()
                assert reader is not None
                status, body, keep = await exchange(reader, writer, requests[i])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                load.answers[type(exc).__name__] += 1
                keep = False
            else:
                took = clock() - t0
                load.answers[status] += 1
                if status == expect:
                    if check is None or check(i, body):
                        load.latencies.append(took)
                    else:
                        load.wrong_body += 1
            if not keep and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    start = clock()
    tasks = [asyncio.create_task(connection(r, w)) for r, w in conns]
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    load.elapsed = clock() - start
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    unanswered = load.sent - load.answers.total()
    if unanswered:
        load.answers["unanswered"] = unanswered
    return load


def run_load(
    server: Server,
    requests: list[bytes],
    expect: int,
    check: Callable[[int, bytes], bool] | None,
    args: argparse.Namespace,
) -> Load:
    cpu0, client0, busy0 = server.cpu(), time.process_time(), machine_busy()
    port = int(server.base_url.rsplit(":", 1)[1])
    load = asyncio.run(fire(port, requests, expect, check, args.clients, args.seconds))
    load.server_cpu = server.cpu() - cpu0
    load.client_cpu = time.process_time() - client0
    load.machine_cpu = machine_busy() - busy0
    return load


def get(path: str, host: str, token: str = "") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/json\r\n"
            "\r\n").encode()  # fmt: skip


def post(path: str, host: str, token: str, body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data  # fmt: skip


# -- the report ---------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def describe(label: str, what: str, load: Load) -> str:
    lat = load.latencies
    others = {k: v for k, v in load.answers.items() if k != load.expect}
    if load.wrong_body:
        others[f"{load.expect} wrong body"] = load.wrong_body
    per = 1000 / max(load.sent, 1)
    return (
        f"{label:10} {what:44} {load.ok:,}/{load.sent:,} {load.expect} in {load.elapsed:5.2f} s "
        f"{load.ok / load.elapsed:7,.0f} req/s | p50 {ms(percentile(lat, 0.5))}, "
        f"p99 {ms(percentile(lat, 0.99))}, max {ms(max(lat, default=float('nan')))} | "
        f"not {load.expect}: {others or 0} | CPU ms/req: server {load.server_cpu * per:.2f}, "
        f"client {load.client_cpu * per:.2f}, machine {load.machine_cpu * per:.2f}"
    )


def bench_store(label: str, url: str, workdir: Path, args: argparse.Namespace) -> bool:
    """Set-up, baselines, the loads and the shutdown on one store; True if all went right."""
    n = args.requests
    port = free_port()
    config = workdir / f"{label}.toml"
    write_config(config, url, port, workdir)
    token, setup_s = set_up(config)
    rnd = random.Random(1)
    readers = [rnd.randrange(PEOPLE) for _ in range(n)]
    addresses = [f"reader{i}@example.com" for i in readers]

    plain_s, plain_found = plain_selects(url, addresses)
    print(
        f"{label:10} set-up (CLI: db upgrade, list, import {PEOPLE:,}, token) {setup_s:.1f} s | "
        f"baselines: import typer {typer_import():.2f} s, plain {n:,} SELECT by email_key "
        f"{plain_s:.2f} s ({n / plain_s:,.0f}/s, {plain_s / n * 1e6:.0f} µs each, "
        f"{plain_found:,} found)",
        flush=True,
    )

    host = f"127.0.0.1:{port}"
    doc = get(API + "/openapi.json", host)
    gets = [get(f"{API}/subscribers?email={a}", host, token) for a in addresses]
    news = [f"new{i}@example.org" for i in range(n)]
    posts = [post(API + "/subscribers", host, token,
                  {"email": a, "confirmed": True, "lists": ["blog"]}) for a in news]  # fmt: skip

    def one_found(i: int, body: bytes) -> bool:
        data = json.loads(body)["data"]
        return len(data) == 1 and data[0]["email"] == addresses[i]

    def made(i: int, body: bytes) -> bool:
        return json.loads(body)["email"] == news[i]

    before = count_subscribers(url)
    server = Server(config, port)
    try:
        with httpx.Client(base_url=server.base_url) as client:  # the token's first use
            first = client.get(API + "/subscribers", params={"email": addresses[0]},
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert first.status_code == 200, first.text
        loads = [
            ("GET openapi.json (HTTP stack, no db/token)", run_load(server, [doc] * n, 200,
                                                                     None, args)),
            ("GET /api/v1/subscribers?email=", run_load(server, gets, 200, one_found, args)),
            ("POST /api/v1/subscribers (new, confirmed)", run_load(server, posts, 201, made,
                                                                    args)),
            ("GET openapi.json again", run_load(server, [doc] * n, 200, None, args)),
        ]  # fmt: skip
    finally:
        code, stop_s = server.stop()
    for what, load in loads:
        print(describe(label, what, load), flush=True)
    after = count_subscribers(url)
    made_n = loads[2][1].answers[201]
    problems = server.problems()
    clean = "Application shutdown complete" in server.log.read_text(errors="replace")
    print(
        f"{label:10} SIGTERM: exit status {code} in {stop_s:.2f} s, "
        f"{'shutdown complete' if clean else 'NO shutdown line'} | subscribers {before:,} -> "
        f"{after:,} (+{after - before:,}, {made_n:,} answered 201) | server log: "
        f"{len(problems)} ERROR/Traceback lines",
        flush=True,
    )
    for line in problems[:5]:
        print(f"{label:10}   {line[:200]}")
    stopped = code in (0, -signal.SIGTERM) and clean and not problems
    counted = after - before == made_n and plain_found == n
    return stopped and counted and not any(load.failed for _, load in loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent connections")
    parser.add_argument("--requests", type=int, default=5000, help="requests per load")
    parser.add_argument("--seconds", type=float, default=120.0, help="time limit per load")
    parser.add_argument("--pg", default="", help="a PostgreSQL server's URL")
    args = parser.parse_args()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, python {platform.python_version()}, "
        f"{platform.machine()}, nproc {os.cpu_count()}; {args.requests:,} requests per load "
        f"over {args.clients} keep-alive connections, {PEOPLE:,} subscribers",
        flush=True,
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ok &= bench_store("sqlite", f"sqlite:///{workdir / 'bench.db'}", workdir, args)
        if args.pg:
            with pg_schema(args.pg, "bench_api") as url:
                ok &= bench_store("postgresql", url, workdir, args)
    if not ok:
        print("FAILED: a request failed, the count is off, or the server did not stop cleanly",
              file=sys.stderr)  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    main()
