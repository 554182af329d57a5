"""Fixtures of the content tests: a real HTTP server on 127.0.0.1 serving the fixture feeds."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from . import FEEDS

ETAG = '"founder-v1"'
LAST_MODIFIED = "Tue, 05 Mar 2024 09:12:44 GMT"
BIG_SIZE = 64 * 1024


@dataclass
class FeedServer:
    """A running server: its base URL and the headers of every request it answered.

    ``/feed.xml`` has an ETag and a Last-Modified and answers conditional requests with 304;
    ``/dated.xml`` has only a Last-Modified; ``/error`` is a 500, ``/moved`` a 301 to
    ``/feed.xml``, ``/loop`` redirects to itself; ``/big`` and ``/big-unsized`` send
    ``BIG_SIZE`` bytes with and without Content-Length; ``/stall`` answers only once
    ``release`` is set.
    """

    ETAG: ClassVar[str] = ETAG
    LAST_MODIFIED: ClassVar[str] = LAST_MODIFIED
    BIG_SIZE: ClassVar[int] = BIG_SIZE

    base_url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers_for(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]


def _not_modified(headers: dict[str, str]) -> bool:
    """The conditional-GET decision of a real server: If-None-Match wins, then the date."""
    if "if-none-match" in headers:
        return headers["if-none-match"] in (ETAG, "*")
    if "if-modified-since" in headers:
        try:
            since = parsedate_to_datetime(headers["if-modified-since"])
        except (TypeError, ValueError):
            return False
        return since >= parsedate_to_datetime(LAST_MODIFIED)
    return False


def _make_handler(server_state: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            server_state.requests.append((self.path, headers))
            route = {
                "/feed.xml": self._feed,
                "/dated.xml": self._dated,
                "/error": self._error,
                "/moved": self._moved,
                "/loop": self._loop,
                "/big": self._big,
                "/big-unsized": self._big_unsized,
                "/stall": self._stall,
            }.get(self.path, self._missing)
            route(headers)

        def _send(self, status: int, body: bytes = b"", **extra: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            for name, value in extra.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _feed(self, headers: dict[str, str]) -> None:
            validators = {"ETag": ETAG, "Last_Modified": LAST_MODIFIED}
            if _not_modified(headers):
                self._send(HTTPStatus.NOT_MODIFIED, **validators)
            else:
                body = (FEEDS / "founder_rss2.xml").read_bytes()
                self._send(HTTPStatus.OK, body, **validators)

        def _dated(self, headers: dict[str, str]) -> None:
            # Only Last-Modified: If-Modified-Since alone must be honoured.
            if _not_modified({k: v for k, v in headers.items() if k != "if-none-match"}):
                self._send(HTTPStatus.NOT_MODIFIED)
            else:
                body = (FEEDS / "atom.xml").read_bytes()
                self._send(HTTPStatus.OK, body, Last_Modified=LAST_MODIFIED)

        def _error(self, headers: dict[str, str]) -> None:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"<h1>boom</h1>")

        def _moved(self, headers: dict[str, str]) -> None:
            self._send(HTTPStatus.MOVED_PERMANENTLY, Location="/feed.xml")

        def _loop(self, headers: dict[str, str]) -> None:
            self._send(HTTPStatus.FOUND, Location="/loop")

        def _big(self, headers: dict[str, str]) -> None:
            self._send(HTTPStatus.OK, b"x" * BIG_SIZE)

        def _big_unsized(self, headers: dict[str, str]) -> None:
            # HTTP/1.0 without Content-Length: the body ends when the connection closes.
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            for _ in range(BIG_SIZE // 1024):
                self.wfile.write(b"y" * 1024)

        def _stall(self, headers: dict[str, str]) -> None:
            # Answers only when the test lets it (or after 5 s): the client must time out first.
            server_state.release.wait(timeout=5)
            self._send(HTTPStatus.OK, b"late")

        def _missing(self, headers: dict[str, str]) -> None:
            self._send(HTTPStatus.NOT_FOUND)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback when a client hangs up early (the
    timeout and size-limit tests do that on purpose)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 (random port) serving the fixture feeds."""
    state = FeedServer(base_url="")
    httpd = _QuietServer(("127.0.0.1", 0), _make_handler(state))
    host, port = httpd.server_address[:2]
    state.base_url = f"http://{host}:{port}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"
