"""A small real HTTP server on 127.0.0.1 whose routes a test sets: path -> (status, body,
headers). It honours If-None-Match against an ETag route header, like a real web server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Routes(dict):
    """path -> (status, body, headers); ``hits`` counts requests per path."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self.base_url = ""

    def url(self, path: str) -> str:
        return self.base_url + path


def _handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            routes.hits[self.path] = routes.hits.get(self.path, 0) + 1
            status, body, headers = routes.get(self.path, (404, b"not found", {}))
            etag = headers.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                status, body = 304, b""
            self.send_response(status)
            for name, value in {"Content-Type": "application/xml", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve() -> Iterator[Routes]:
    routes = Routes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes))
    httpd.daemon_threads = True
    routes.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield routes
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
