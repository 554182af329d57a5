"""The API tests: the web service (real uvicorn), tokens made with the real CLI, and an HTTP
receiver of the test's own for the webhooks."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.delivery.conftest import smtp_server, tls_files  # noqa: F401  (fixtures)
from tests.web.conftest import web  # noqa: F401  (fixture)

WEBHOOKS = "\n[webhooks]\nallow_private = true\ninterval_seconds = 0.2\n"


def token(site, name: str, scopes: str) -> str:
    out = site.cli.ok("token", "create", name, "--scope", scopes)
    value = out.stdout.strip().splitlines()[-1]
    assert value.startswith("nl_") and value not in out.stderr
    return value


def client(site, value: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {value}"} if value else {}
    return httpx.Client(base_url=site.base_url + "/api/v1", headers=headers, timeout=10)


@pytest.fixture
def api_site(web):  # noqa: F811
    def start(**options):
        return web(extra_config=WEBHOOKS + options.pop("extra_config", ""), **options)

    return start


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that can be stopped and started again on its port."""

    port: int = 0
    posts: list[Received] = field(default_factory=list)
    status: int = 204
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.posts.append(Received({k.lower(): v for k, v in self.headers.items()},
                                               body))  # fmt: skip
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()  # fmt: skip
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def events(self) -> list[dict]:
        return [json.loads(p.body) for p in self.posts]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()
