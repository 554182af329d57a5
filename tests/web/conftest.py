"""The web service under test: the real app served by uvicorn in a thread on 127.0.0.1 (a
random port), a real aiosmtpd server for the emails it sends, the real CLI on the same
config and database (SQLite file or PostgreSQL schema), and an httpx client without cookies.

``web(**options)`` starts one: ``web_options`` become the ``[web]`` section (generous sign-up
limits unless given), ``clock`` moves the app's time (``site.clock.advance(hours=49)``).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from lxml import html as lxml_html
from sqlalchemy.orm import Session

from newsletter.config import database_url as url_of
from newsletter.config import load_settings
from newsletter.store import connect, session_factory
from newsletter.store.models import utcnow
from newsletter.web import create_app
from newsletter.web.server import listen, uvicorn_config
from tests.conftest import FIXTURES, Cli, write_config
from tests.delivery.conftest import Server, smtp_server, tls_files  # noqa: F401  (fixtures)

POST = FIXTURES / "posts" / "pricing-per-seat.md"
DEADLINE = 15.0  # seconds any poll may wait before the test fails


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Clock:
    """The app's clock: real time plus an offset the test moves."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def forms(page: str) -> dict[str, dict[str, Any]]:
    """The forms of an HTML page by action URL: their hidden inputs' values."""
    doc = lxml_html.fromstring(page)
    found = {}
    for form in doc.forms:
        hidden = {i.name: i.value for i in form.inputs if i.get("type") == "hidden"}
        found[form.get("action")] = hidden
    return found


class Site:
    """A running web service with its SMTP server, CLI, database and HTTP client."""

    def __init__(
        self,
        base_url: str,
        cli: Cli,
        smtp: Server,
        engine: Any,
        clock: Clock,
        client: Any,
        app: Any,
    ) -> None:
        self.app = app  # the Starlette app being served
        self.base_url = base_url
        self.cli = cli
        self.smtp = smtp
        self.engine = engine
        self.clock = clock
        self.http: httpx.Client = client
        self.sessions = session_factory(engine)

    # -- store and CLI --------------------------------------------------------------------

    def session(self) -> Session:
        return self.sessions()

    def person(self, address: str) -> dict[str, Any] | None:
        """`subscriber show --json`, or None if there is no such subscriber."""
        result = self.cli("subscriber", "show", address, "--json")
        return json.loads(result.stdout) if result.exit_code == 0 else None

    def token_of(self, address: str) -> str:
        from newsletter.subscribers.service import find_subscriber

        with self.session() as s:
            return find_subscriber(s, address).token

    def seed_issue(self, *, subject: str | None = None) -> int:
        """A post (once) and a draft issue of it to the list "blog"; returns the issue id."""
        if not json.loads(self.cli.ok("post", "ls", "--json").stdout):
            self.cli.ok("post", "add", str(POST))
        args = ["issue", "create", "--latest", "--list", "blog"]
        self.cli.ok(*args, *(["--subject", subject] if subject else []))
        return max(i["id"] for i in json.loads(self.cli.ok("issue", "ls", "--json").stdout))

    def send_issue(self, issue_id: int) -> None:
        self.cli.ok("issue", "send", str(issue_id), "--workers", "1")

    # -- mail -----------------------------------------------------------------------------

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [parse(m.content) for m in self.smtp.handler.messages if address in m.rcpt_tos]

    def wait_for_mails(self, address: str, count: int = 1) -> list[EmailMessage]:
        return wait_for(
            lambda: (m := self.mails_to(address)) and len(m) >= count and m,
            f"{count} message(s) to {address}",
        )

    def confirm_link(self, address: str, index: int = -1) -> str:
        msg = self.wait_for_mails(address, abs(index) if index < 0 else index + 1)[index]
        match = re.search(re.escape(self.base_url) + r"/confirm/[A-Za-z0-9_-]+", text_part(msg))
        assert match, text_part(msg)
        return match.group(0)

    # -- HTTP -----------------------------------------------------------------------------

    def subscribe(self, address: str, **fields: Any) -> httpx.Response:
        headers = fields.pop("headers", None)
        return self.http.post("/subscribe", data={"email": address, **fields}, headers=headers)

    def confirm(self, link: str, **headers: str) -> httpx.Response:
        """Follow a confirmation link as a person does: open it, press the button."""
        page = self.http.get(link)
        assert page.status_code == 200, page.text
        token = forms(page.text)[link]["csrf_token"]
        return self.http.post(link, data={"csrf_token": token}, headers=headers)

    def signed_up(self, address: str, **fields: Any) -> str:
        """Subscribe through the form and confirm; returns the subscriber's link token."""
        before = len(self.mails_to(address))
        assert self.subscribe(address, **fields).status_code == 303
        answer = self.confirm(self.confirm_link(address, before))
        assert "subscribed" in answer.text, answer.text
        return self.token_of(address)


@pytest.fixture
def web(
    tmp_path: Path,
    migrated_url: str,
    smtp_server: Callable[..., Server],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[..., Site]]:
    started: list[tuple[uvicorn.Server, threading.Thread, Any, httpx.Client]] = []

    def start(
        *,
        lists: tuple[str, ...] = ("blog",),
        clock: Clock | None = None,
        cleanup_interval: float | None = None,
        base_url: str | None = None,
        tracking: dict[str, Any] | None = None,
        extra_config: str = "",
        **web_options: Any,
    ) -> Site:
        smtp = smtp_server()
        sock = listen("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        options = {
            "lists": list(lists),
            "signup_limit_per_ip": 1000,
            "signup_limit_per_address": 100,
        } | web_options
        web_section = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
        extra = (
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntimeout = 5.0\n\n'
            f"[sending]\nretry_backoff_seconds = 0\nmax_attempts = 2\n\n[web]\n{web_section}\n"
        )
        if tracking:
            extra += "\n[tracking]\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in tracking.items()
            )
        config = write_config(tmp_path / "newsletter.toml", migrated_url, extra + extra_config)
        text = config.read_text().replace("https://news.example.com", base_url or url)
        config.write_text(text)
        cli = Cli(config, capsys)
        for name in dict.fromkeys([*lists, "blog"]):
            cli.ok("list", "create", name)
        settings = load_settings(config)
        engine = connect(url_of(settings))
        clock = clock or Clock()
        app = create_app(
            settings, engine, clock=clock, secret=b"test-secret", cleanup_interval=cleanup_interval
        )
        server = uvicorn.Server(uvicorn_config(app, settings.web))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_for(lambda: server.started, "uvicorn to start")
        client = httpx.Client(base_url=url, follow_redirects=False, timeout=10.0)
        started.append((server, thread, engine, client))
        return Site(url, cli, smtp, engine, clock, client, app)

    yield start
    for server, thread, engine, client in started:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)
        engine.dispose()
