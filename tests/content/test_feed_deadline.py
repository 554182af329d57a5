"""No feed can stall or crash `post fetch`: a server that trickles a byte at a time, one that
never answers, a redirect loop and dates outside Python's range each end in that feed's one
line within the deadline, while the feeds after it in the same run are stored; exit status 1
says that some feed failed. Real servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from newsletter.content import parse_feed

from . import FEEDS

DEADLINE = 1.5
ODD_DATES = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Odd dates</title><id>tag:odd</id><updated>0001-01-01T00:00:00+01:00</updated>
  <entry><title>From year one</title><id>tag:odd:1</id><link href="https://odd.example/1"/>
    <published>0001-01-01T00:00:00+01:00</published>
    <content type="html">&lt;p&gt;One&lt;/p&gt;</content>
  </entry>
  <entry><title>From the end of time</title><id>tag:odd:2</id><link href="https://odd.example/2"/>
    <updated>9999-12-31T23:59:59-05:00</updated>
    <content type="html">&lt;p&gt;Two&lt;/p&gt;</content>
  </entry>
</feed>
"""


class _Handler(BaseHTTPRequestHandler):
    stop = threading.Event()
    hits: ClassVar[Counter[str]] = Counter()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits[self.path] += 1
        if self.path == "/trickle":  # headers at once, then a byte a second for 50 s
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", "50")
            self.end_headers()
            for _ in range(50):
                if self.stop.wait(1.0):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
        elif self.path == "/silent":  # reads the request, never answers
            self.stop.wait(10)
        elif self.path.startswith("/loop"):  # /loop -> /loop/1 -> ... -> /loop/19 -> /loop
            step = int(self.path.removeprefix("/loop").strip("/") or 0)
            self._send(HTTPStatus.FOUND, b"", Location=f"/loop/{(step + 1) % 20}")
        elif self.path == "/odd.xml":
            self._send(HTTPStatus.OK, ODD_DATES)
        elif self.path == "/good.xml":
            self._send(HTTPStatus.OK, (FEEDS / "atom.xml").read_bytes())
        else:
            self._send(HTTPStatus.NOT_FOUND, b"")

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/atom+xml")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client gives up on the slow routes on purpose


@pytest.fixture
def hostile_server() -> Iterator[str]:
    _Handler.stop.clear()
    _Handler.hits.clear()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_dates_outside_pythons_range_are_missing_not_a_crash() -> None:
    feed = parse_feed(ODD_DATES, base_url="https://odd.example/")
    assert [p.title for p in feed.entries] == ["From year one", "From the end of time"]
    assert [p.published_at for p in feed.entries] == [None, None]


def test_no_feed_stalls_or_crashes_post_fetch(cli, hostile_server: str) -> None:
    bad = ["/trickle", "/silent", "/loop"]
    feeds = "".join(f'[[feeds]]\nurl = "{hostile_server}{path}"\n\n'
                    for path in [*bad, "/odd.xml", "/good.xml"])  # fmt: skip
    text = cli.config.read_text() + f"\n[fetch]\ndeadline_seconds = {DEADLINE}\nconcurrency = 2\n\n"
    cli.config.write_text(text + feeds)
    started = time.monotonic()
    result = cli("post", "fetch")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 3, result.stderr
    for path, line in zip(bad, errors, strict=True):
        assert line.startswith(f"Error: cannot fetch feed {hostile_server}{path}"), line
    assert "Traceback" not in result.stderr + result.stdout
    # two at a time, each bad feed given up by its deadline: well under the servers' 10 s
    assert elapsed < 3 * DEADLINE + 3, elapsed
    titles = {p["title"] for p in json.loads(cli.ok("post", "ls", "--json").stdout)}
    assert {"From year one", "From the end of time", "An XHTML entry"} <= titles
    assert f"{hostile_server}/good.xml: 2 new" in result.stdout


def test_the_daemons_feed_jobs_survive_every_hostile_feed(cli, hostile_server: str) -> None:
    from tests.delivery.test_daemon import Daemon, wait_until

    bad = ["/trickle", "/silent", "/loop"]
    feeds = "".join(
        f'[[feeds]]\nurl = "{hostile_server}{path}"\ninterval_minutes = 0.01\n\n'
        for path in [*bad, "/odd.xml", "/good.xml"]
    )
    text = cli.config.read_text() + f"\n[fetch]\ndeadline_seconds = {DEADLINE}\n\n"
    cli.config.write_text(text + feeds)
    daemon = Daemon(cli.config)
    for path in bad:
        line = daemon.wait_for(f"feed.error url={hostile_server}{path} ")
        assert "Traceback" not in line and line.count("\n") == 1
    daemon.wait_for(f"feed.poll url={hostile_server}/odd.xml status=fetched new=2")
    daemon.wait_for(f"feed.poll url={hostile_server}/good.xml status=fetched new=2")
    # Every feed is polled again: no job died or hangs on its first failure.
    for path in [*bad, "/odd.xml", "/good.xml"]:
        wait_until(lambda path=path: _Handler.hits[path] >= 2)
    assert daemon.stop() == 0
    assert "Traceback" not in "".join(daemon.lines), "".join(daemon.lines)[-3000:]
    rows = json.loads(cli.ok("schedule", "ls", "--json").stdout)
    errors = {r["id"]: r["last_error"] for r in rows if r["what"] == "feed"}
    for path in bad:
        assert errors[f"{hostile_server}{path}"].startswith("cannot fetch feed"), errors
    assert errors[f"{hostile_server}/good.xml"] is None
    titles = {p["title"] for p in json.loads(cli.ok("post", "ls", "--json").stdout)}
    assert {"From year one", "From the end of time", "An XHTML entry"} <= titles


def test_a_stored_feed_error_is_one_line(cli, hostile_server: str) -> None:
    cli.config.write_text(cli.config.read_text() + "\n[fetch]\ndeadline_seconds = 1.0\n")
    result = cli("post", "fetch", f"{hostile_server}/trickle")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "not complete after 1 s" in result.stderr


def test_a_port_that_accepts_and_never_answers(cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml"
        cli.config.write_text(cli.config.read_text() + "\n[fetch]\ndeadline_seconds = 1.0\n")
        started = time.monotonic()
        result = cli("post", "fetch", url)
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: cannot fetch feed {url}")
    assert time.monotonic() - started < 5


def test_relative_urls_resolve_against_xml_base() -> None:
    """xml:base of the entry, else of the feed, wins over the entry's link for the body."""
    data = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://cdn.example.com/blog/">
  <title>T</title><id>tag:t</id>
  <entry xml:base="posts/2026/"><title>A</title><id>tag:a</id>
    <link href="https://www.example.com/a"/>
    <content type="html">&lt;p&gt;&lt;img src="images/x.png" alt="x"&gt;&lt;/p&gt;</content></entry>
  <entry><title>B</title><id>tag:b</id><link href="https://www.example.com/b"/>
    <content type="html">&lt;p&gt;&lt;a href="more.html"&gt;more&lt;/a&gt;&lt;/p&gt;</content>
  </entry>
  <entry><title>C</title><id>tag:c</id><link href="c.html"/>
    <content type="html">&lt;p&gt;&lt;a href="/top"&gt;top&lt;/a&gt;&lt;/p&gt;</content></entry>
</feed>"""
    a, b, c = parse_feed(data, base_url="https://feeds.example.net/atom.xml").entries
    assert 'src="https://cdn.example.com/blog/posts/2026/images/x.png"' in a.html
    assert 'href="https://cdn.example.com/blog/more.html"' in b.html
    assert c.url == "https://cdn.example.com/blog/c.html"
    assert 'href="https://cdn.example.com/top"' in c.html


UNTITLED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Notes</title><link>https://notes.example/</link>
  <description>d</description>
  <item><guid isPermaLink="false">note-1</guid>
    <description>&lt;p&gt;Shipped the new onboarding today, and the first ten customers went
    through it without a single support ticket.&lt;/p&gt;</description></item>
</channel></rss>
"""


def test_untitled_linkless_post_becomes_an_issue_with_no_empty_link(
    cli, http_server, tmp_path
) -> None:
    from lxml import html as lxml_html

    http_server["/notes.xml"] = (200, UNTITLED, {"Content-Type": "application/rss+xml"})
    cli.ok("post", "fetch", http_server.url("/notes.xml"))
    created = cli.ok("issue", "create", "--latest")
    assert "Created draft issue 1: 'Shipped the new onboarding today" in created.stdout
    cli.ok("issue", "preview", "1", "--out", str(tmp_path / "preview"))
    page = (tmp_path / "preview" / "issue-1.html").read_text()
    hrefs = [a.get("href") for a in lxml_html.fromstring(page).iter("a")]
    assert hrefs and all(h and h.strip() for h in hrefs), hrefs
    web_url = json.loads(cli.ok("issue", "show", "1", "--json").stdout)["web_url"]
    assert web_url in hrefs  # "Read on the web" goes to the issue's own page


def test_a_post_with_neither_title_nor_text_names_subject(cli, http_server) -> None:
    empty = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>
      <link>https://n.example/</link><description>d</description>
      <item><guid isPermaLink="false">empty-1</guid></item></channel></rss>"""
    http_server["/empty.xml"] = (200, empty, {"Content-Type": "application/rss+xml"})
    cli.ok("post", "fetch", http_server.url("/empty.xml"))
    refused = cli("issue", "create", "--latest")
    assert refused.exit_code == 1 and "--subject" in refused.stderr
    assert refused.stderr.count("\n") == 1
    cli.ok("issue", "create", "--latest", "--subject", "A note")
