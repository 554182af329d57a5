"""Double opt-in: subscribe, the confirmation email in aiosmtpd, the link, the consent record,
the next issue; links used twice or too late; unconfirmed sign-ups expiring."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from newsletter.store.models import Confirmation, Subscriber
from newsletter.subscribers.optin import OptInPolicy, expire_signups
from newsletter.web.server import listen
from tests.conftest import Cli, write_config

from .conftest import POST, Clock, forms, parse, text_part, wait_for


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NEWSLETTER_WEB_SECRET": "a test secret"},
    )


def test_double_opt_in_end_to_end_with_newsletter_serve(
    tmp_path, database_url, smtp_server, capsys
) -> None:
    """`newsletter serve` in its own process, aiosmtpd, and `issue send` from the CLI."""
    smtp = smtp_server()
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    base = f"http://127.0.0.1:{port}"
    config = write_config(
        tmp_path / "newsletter.toml",
        database_url,
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntimeout = 5.0\n\n'
        f'[web]\nlists = ["blog"]\nconsent_version = "2026-11"\n',
    )
    config.write_text(config.read_text().replace("https://news.example.com", base))
    cli = Cli(config, capsys)
    cli.ok("db", "upgrade")
    cli.ok("list", "create", "blog")
    server = _serve(config, port)
    try:
        with httpx.Client(base_url=base, timeout=10.0) as http:

            def up() -> bool:
                assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
                try:
                    return http.get("/subscribe").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, "newsletter serve to answer")
            page = http.get("/subscribe")
            assert (
                'name="website"' in page.text
                and 'name="consent_version" value="2026-11"' in page.text
            )

            for address in ("ada@example.com", "never.confirms@example.org"):
                answer = http.post(
                    "/subscribe",
                    data={
                        "email": address,
                        "name": "Ada",
                        "source": "https://blog.example.com/p/1",
                    },
                    headers={"User-Agent": "Test Browser/1.0"},
                )
                assert answer.status_code == 303
                assert answer.headers["location"] == f"{base}/subscribe/thanks"
                assert "check your inbox" in http.get(answer.headers["location"]).text.lower()

            # Both get a confirmation email; nobody is active yet.
            wait_for(lambda: len(smtp.handler.messages) == 2, "two confirmation emails")
            for address in ("ada@example.com", "never.confirms@example.org"):
                assert (
                    json.loads(cli.ok("subscriber", "show", address, "--json").stdout)["status"]
                    == "unconfirmed"
                )
            received = next(m for m in smtp.handler.messages if m.rcpt_tos == ["ada@example.com"])
            msg = parse(received.content)
            assert msg["To"] == "Ada <ada@example.com>"
            assert msg["Subject"] == "Confirm your subscription to Example Essays"
            assert msg["From"].addresses[0].addr_spec == "letters@example.com"
            assert msg["Message-ID"].endswith("@example.com>") and msg["Date"]
            assert msg.get_content_type() == "multipart/alternative"
            assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
            assert "List-Unsubscribe" not in msg and msg["Auto-Submitted"] == "auto-generated"
            link = text_part(msg).split(f"{base}/confirm/")[1].split()[0]
            link = f"{base}/confirm/{link}"
            assert link in msg.get_body(preferencelist=("html",)).get_content()

            # The link opens a page; only its button confirms (mail scanners follow links).
            page = http.get(link)
            assert page.status_code == 200 and "Yes, subscribe me" in page.text
            assert (
                json.loads(cli.ok("subscriber", "show", "ada@example.com", "--json").stdout)[
                    "status"
                ]
                == "unconfirmed"
            )
            form = forms(page.text)[link]
            done = http.post(link, data=form, headers={"User-Agent": "Test Browser/1.0"})
            assert done.status_code == 200 and "You're subscribed" in done.text
            again = http.post(link, data=form)
            assert again.status_code == 200 and "Already confirmed" in again.text

        person = json.loads(cli.ok("subscriber", "show", "ada@example.com", "--json").stdout)
        assert person["status"] == "active" and person["lists"] == ["blog"]
        assert person["confirmed_at"]
        kinds = [e["kind"] for e in person["events"]]
        assert kinds == ["subscribed", "confirmed"]
        asked, confirmed = person["events"]
        assert asked["ip"] == "127.0.0.1" and asked["source"] == "https://blog.example.com/p/1"
        assert asked["detail"]["user_agent"] == "Test Browser/1.0"
        assert asked["detail"]["consent_version"] == "2026-11"
        assert asked["detail"]["method"] == "double-opt-in"
        assert confirmed["ip"] == "127.0.0.1" and confirmed["detail"]["lists"] == ["blog"]
        assert confirmed["detail"]["requested_at"] and confirmed["at"] >= asked["at"]

        # The next issue goes to the confirmed person only.
        cli.ok("post", "add", str(POST))
        cli.ok("issue", "create", "--latest", "--list", "blog")
        cli.ok("issue", "send", "1", "--workers", "1")
        issue_mail = [m for m in smtp.handler.messages[2:]]
        assert [m.rcpt_tos for m in issue_mail] == [["ada@example.com"]]
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=15)[0].decode()
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "/confirm/…" in output and "/confirm/" + link.rsplit("/", 1)[1] not in output


def test_links_used_or_expired_are_answered_politely(web) -> None:
    site = web(confirm_expiry_hours=1)
    assert site.subscribe("late@example.com").status_code == 303
    assert site.subscribe("soon@example.com").status_code == 303
    late, soon = site.confirm_link("late@example.com"), site.confirm_link("soon@example.com")
    assert site.confirm(soon).status_code == 200
    site.clock.advance(hours=2)
    page = site.http.get(late)
    assert page.status_code == 410 and "expired" in page.text and "subscribe again" in page.text
    assert site.person("late@example.com")["status"] == "unconfirmed"
    # A used link stays "already confirmed", also after its time.
    used = site.http.get(soon)
    assert used.status_code == 200 and "Already confirmed" in used.text
    # A tampered or unknown link is a plain 404.
    for bad in (late[:-1] + ("A" if late[-1] != "A" else "B"), site.base_url + "/confirm/x"):
        answer = site.http.get(bad)
        assert answer.status_code == 404 and answer.text == "Not Found"


def test_unconfirmed_signups_expire(web) -> None:
    clock = Clock()
    site = web(confirm_expiry_hours=48, cleanup_interval=0.05, clock=clock)
    site.cli.ok("subscriber", "add", "admin.added@example.com", "--unconfirmed")
    site.cli.ok("subscriber", "add", "left@example.com")
    site.cli.ok("subscriber", "unsubscribe", "left@example.com")
    for address in ("gone@example.com", "left@example.com", "stays@example.com"):
        assert site.subscribe(address, name="Someone").status_code == 303
    link = site.confirm_link("gone@example.com")
    site.confirm(site.confirm_link("stays@example.com"))
    site.wait_for_mails("left@example.com")

    clock.advance(hours=47)  # the clean-up runs every 50 ms: nothing is due yet
    wait_for(lambda: site.person("gone@example.com") is not None, "the person to stay")
    clock.advance(hours=2)
    wait_for(lambda: site.person("gone@example.com") is None, "the expired sign-up to go")
    assert site.person("admin.added@example.com")["status"] == "unconfirmed"
    assert site.person("left@example.com")["status"] == "unsubscribed"
    assert site.person("stays@example.com")["status"] == "active"
    with site.session() as s:
        rows = s.scalars(select(Confirmation).where(Confirmation.subscriber_id.is_(None))).all()
        assert len(rows) == 1 and rows[0].consent == {} and rows[0].lists == []
        assert s.scalar(select(Subscriber).where(Subscriber.email == "gone@example.com")) is None
    page = site.http.get(link)
    assert page.status_code == 410 and "expired" in page.text
    # After EXPIRED_LINK_MEMORY the link is forgotten: a 404 like any unknown link.
    clock.advance(days=31)
    wait_for(lambda: site.http.get(link).status_code == 404, "the old link to be forgotten")


def test_expiry_is_a_use_case_that_any_process_can_run(engine) -> None:
    """The clean-up is a core function (the scheduler can run it too) and is idempotent."""
    from newsletter.store import session_factory
    from newsletter.store.models import utcnow

    with session_factory(engine)() as s, s.begin():
        done = expire_signups(s, OptInPolicy(), now=utcnow())
    assert (done.expired_people, done.forgotten_links, done.rate_limits) == (0, 0, 0)


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: victim@example.net", "=?utf-8?q?=0D=0ABcc:_x@example.net?="]
)
def test_confirmation_email_cannot_carry_injected_headers(web, name: str) -> None:
    site = web()
    assert site.subscribe("eve@example.com", name=name).status_code == 303
    msg = site.wait_for_mails("eve@example.com")[0]
    assert "Bcc" not in msg and len(msg.get_all("To")) == 1
    assert msg["To"].addresses[0].addr_spec == "eve@example.com"
    assert [m.rcpt_tos for m in site.smtp.handler.messages] == [["eve@example.com"]]
