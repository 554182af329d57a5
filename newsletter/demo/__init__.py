"""`newsletter demo`: the whole flow on the embedded defaults, in a fresh folder.

Writes a config and a SQLite database, imports the bundled subscriber CSV (with the kind of
problems real exports have), serves the bundled blog feed from a local HTTP server and
fetches it, composes an issue from the newest post, writes its preview (HTML and .eml),
checks it with `issue lint`, sends it through the maildir transport (one .eml file per
reader in outbox/new), then runs the web service for a moment: the archive page, a one-click
unsubscribe from a delivered message's List-Unsubscribe header, and a newcomer who signs up
on the form and confirms with the link in their email, after which the welcome sequence's
first email arrives. Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import uvicorn
from lxml import html as lxml_html
from sqlalchemy import Engine

from ..config import Settings, database_url, load_settings
from ..content.library import poll_feed
from ..delivery.send import send_issue
from ..errors import InvalidInputError
from ..issues import lint, preview
from ..issues.render import prepare
from ..issues.report import issue_report
from ..issues.service import audience_size, create_issue
from ..sequences.advance import advance_all
from ..sequences.service import add_step, create_sequence
from ..store import upgrade, writer_sessions
from ..store.engine import PRIVATE_FILE_MODE, open_database
from ..subscribers.importer import import_subscribers
from ..subscribers.service import create_list
from ..web import create_app
from ..web.server import listen, uvicorn_config

MARKER = ".newsletter-demo"
CONFIG = """\
# Written by `newsletter demo`. Every key is documented in config.example.toml.
[site]
name = "Field Notes"
base_url = "https://news.example.com"
postal_address = "Field Notes AB, Sveavägen 1, 111 57 Stockholm, Sweden"

[sender]
from_name = "Maria at Field Notes"
from_address = "maria@news.example.com"

[database]
url = "sqlite:///newsletter.db"

[sending]
transport = "maildir"
maildir_path = "outbox"

[web]
# Visitors may join "blog" on the subscribe form, so its issues are in the public archive.
lists = ["blog"]

# Your blog's feed goes here, e.g.
# [[feeds]]
# url = "https://blog.example.com/feed.xml"
# list = "blog"
"""


@dataclass
class DemoResult:
    folder: Path
    imported: dict[str, int]
    posts: int
    issue_id: int
    subject: str
    audience: int
    html_path: Path
    eml_path: Path
    sent: int
    outbox: Path
    findings: list[lint.Finding] = field(default_factory=list)


def _bundled(name: str) -> bytes:
    return files("newsletter.demo").joinpath(name).read_bytes()


@contextmanager
def _serve_feed(body: bytes) -> Iterator[str]:
    """The bundled feed on a local HTTP server (127.0.0.1, random port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def prepare_folder(folder: Path) -> None:
    """Use an empty or absent folder, or one a previous demo made; refuse anything else."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise InvalidInputError(
                f"{folder} exists and is not a demo folder; pass --dir to choose another"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `newsletter demo`; safe to delete\n")


@dataclass(frozen=True)
class WebShown:
    url: str
    unsubscribed: str
    clicked: str  # where the tracked link the demo followed went
    newcomer: str  # who signed up on the form and confirmed


NEWCOMER = "newcomer@example.com"


def _mail_to(outbox: Path, address: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(outbox.iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if any(a.addr_spec == address for a in message["To"].addresses):
            found.append(message)
    return found


def _sign_up(http: httpx.Client, outbox: Path, base_url: str) -> None:
    """Subscribe NEWCOMER on the form and confirm with the link in the email they got, as a
    person does (open the link, press the button). Raises InvalidInputError otherwise."""
    if http.post("/subscribe", data={"email": NEWCOMER}).status_code != 303:
        raise InvalidInputError("demo: the subscribe form did not accept a sign-up")
    deadline = time.monotonic() + 15  # the web service sends it beside its answer
    while not (mails := _mail_to(outbox, NEWCOMER)) and time.monotonic() < deadline:
        time.sleep(0.05)
    text = mails[-1].get_body(preferencelist=("plain",)).get_content() if mails else ""
    link = re.search(re.escape(base_url.rstrip("/")) + r"(/confirm/[A-Za-z0-9_-]+)", text)
    if link is None:
        raise InvalidInputError("demo: no confirmation email with a link arrived")
    page = http.get(link.group(1))
    doc = lxml_html.document_fromstring(page.text)
    token = doc.xpath("//input[@name='csrf_token']/@value")
    answer = http.post(link.group(1), data={"csrf_token": token[0] if token else ""})
    if answer.status_code != 200:
        raise InvalidInputError(f"demo: confirming answered {answer.status_code}")


def _follow_a_link(http: httpx.Client, message: email.message.EmailMessage, base_url: str) -> str:
    """Follow the first tracked link of ``message`` as a reader's browser would; return where
    the redirector sent it. Raises InvalidInputError if it did not answer with a redirect."""
    body = message.get_body(preferencelist=("html",))
    doc = lxml_html.document_fromstring(body.get_content() if body is not None else "<p></p>")
    prefix = base_url.rstrip("/") + "/l/"
    links = [
        a.get("href", "")
        for a in doc.iter("a")
        if a.get("href", "").startswith(prefix)
        and "display:none" not in a.get("style", "").replace(" ", "")  # not the honeypot
    ]
    if not links:
        raise InvalidInputError("demo: the sent message has no tracked link")
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0"}
    answer = http.get(urlsplit(links[0]).path, headers=browser)
    if answer.status_code != 302:
        raise InvalidInputError(f"demo: a tracked link answered {answer.status_code}")
    return answer.headers["location"]


def _show_web(settings: Settings, engine: Engine, outbox: Path, subject: str) -> WebShown:
    """Run `newsletter serve`'s app on 127.0.0.1 briefly: read the archive, and unsubscribe
    one reader through the one-click URL of a message they got. Raises InvalidInputError if
    the pages do not answer as they should."""
    app = create_app(settings, engine, cleanup_interval=None)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn_config(app, settings.web))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=base, timeout=10) as http:
            archive = http.get("/archive")
            if archive.status_code != 200 or html_escape(subject) not in archive.text:
                raise InvalidInputError(f"demo: the archive at {base}/archive did not list it")
            message = email.message_from_bytes(
                sorted(outbox.iterdir())[0].read_bytes(), policy=email.policy.default
            )
            clicked = _follow_a_link(http, message, settings.site.base_url)
            links = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
            one_click = next((u for u in links if u.startswith("http")), "")
            parts = urlsplit(one_click)
            path = f"{parts.path}?{parts.query}"  # the query names the issue
            answer = http.post(path, data={"List-Unsubscribe": "One-Click"})
            if answer.status_code != 200:
                raise InvalidInputError(
                    f"demo: one-click unsubscribe answered {answer.status_code}"
                )
            _sign_up(http, outbox, settings.site.base_url)
        return WebShown(base, str(message["To"].addresses[0].addr_spec), clicked, NEWCOMER)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def run_demo(folder: Path, say: Callable[[str], None]) -> DemoResult:
    """Run the whole flow in ``folder``; ``say`` receives one line per step."""
    prepare_folder(folder)
    (folder / "subscribers.csv").write_bytes(_bundled("subscribers.csv"))
    with _serve_feed(_bundled("feed.xml")) as feed_url:
        config_path = folder / "newsletter.toml"
        config_path.write_text(CONFIG, encoding="utf-8")
        config_path.chmod(PRIVATE_FILE_MODE)  # like `init`: it may name a database password
        settings = load_settings(config_path)
        say(f"1. Config written: {config_path}")
        engine = open_database(database_url(settings), create=True)  # created 0600
        try:
            upgrade(engine)
            sessions = writer_sessions(engine)
            say(f"2. Database created: {folder / 'newsletter.db'} (SQLite, WAL)")
            with sessions() as session, session.begin():
                create_list(session, "blog", "Readers of the blog")
                report_path = folder / "import-report.csv"
                with (
                    (folder / "subscribers.csv").open("rb") as raw,
                    report_path.open("w", encoding="utf-8", newline="") as report,
                ):
                    imported = import_subscribers(
                        session, raw, name="subscribers.csv", list_name="blog", report=report
                    )
            c = imported.counts
            say(
                f"3. Imported subscribers.csv ({imported.preset} export): {c['new']} new, "
                f"{c['duplicate']} duplicate, {c['rejected']} rejected (see {report_path.name})"
            )
            outcome = poll_feed(sessions, feed_url)
            if outcome.status == "error":
                raise InvalidInputError(f"demo feed: {outcome.error}")
            say(f"4. Fetched the blog feed from {feed_url}: {outcome.new} posts")
            with sessions() as session, session.begin():
                issue = create_issue(session, settings, latest=True, list_name="blog")
                prepared = prepare(issue, settings)
                recipient = preview.sample_recipient(session, issue)
                audience = audience_size(session, issue)
                issue_id, subject = issue.id, issue.subject
            say(f"5. Issue {issue_id} drafted from the newest post: {subject!r}")
            (folder / "welcome.md").write_bytes(_bundled("welcome.md"))
            with sessions() as session, session.begin():
                sequence = create_sequence(session, "welcome", "blog", "confirm")
                step = add_step(session, settings, sequence.name, folder / "welcome.md", after="0s")
                welcome_issue = step.issue_id
            shown = preview.write_preview(prepared, recipient, folder / "preview")
            say(f"6. Preview for {recipient.email}: {shown.html_path} and {shown.eml_path}")
            findings = lint.lint_prepared(
                prepared, recipient, subject=subject, postal_address=settings.site.postal_address
            )
            errors = [f for f in findings if f.level == "error"]
            say(f"7. Lint: {len(errors)} errors, {len(findings) - len(errors)} warnings")
            sent = send_issue(engine, config_path, issue_id, workers=1)
            outbox = folder / settings.sending.maildir_path / "new"
            say(
                f"8. Sent issue {issue_id}: {sent.counts.get('sent', 0)} messages delivered to "
                f"the local maildir {outbox} in {sent.seconds:.1f} s"
            )
            web = _show_web(settings, engine, outbox, subject)
            say(
                f"9. Web service up for a moment at {web.url}: the archive lists {subject!r}; "
                f"a reader's click on a link went to {web.clicked}; "
                f"{web.unsubscribed} unsubscribed with one click (RFC 8058) from the "
                "List-Unsubscribe header of the message they received"
            )
            with sessions() as session, session.begin():
                report = issue_report(session, settings, issue_id)
            say(
                f"10. `newsletter issue show {issue_id}`: {report.clicks.total} click by a "
                f"person, {report.clicks.machine} by machines, {report.unsubscribes} "
                "unsubscribed because of this issue"
            )
            # What the daemon does each tick: the due sequence step into its ledger, sent.
            advance_all(sessions, settings)
            send_issue(engine, config_path, welcome_issue, workers=1)
            welcome = [str(m["Subject"]) for m in _mail_to(outbox, web.newcomer)][-1:]
            if welcome != ["Welcome to Field Notes"]:
                raise InvalidInputError("demo: the welcome sequence's email did not arrive")
            say(
                f"11. {web.newcomer} signed up on the form and confirmed with the link in "
                f"their email; the welcome sequence (`newsletter sequence show welcome`, "
                f"from {folder / 'welcome.md'}) sent them {welcome[0]!r}"
            )
        finally:
            engine.dispose()
    return DemoResult(
        folder=folder,
        imported=dict(imported.counts),
        posts=outcome.new,
        issue_id=issue_id,
        subject=subject,
        audience=audience,
        html_path=shown.html_path,
        eml_path=shown.eml_path,
        sent=sent.counts.get("sent", 0),
        outbox=outbox,
        findings=findings,
    )
