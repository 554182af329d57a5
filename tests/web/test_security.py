"""Security: form (CSRF) tokens and the origin check, headers on every answer, no cookies,
no admin over HTTP, link tokens (size, constant-time lookup through the selector index),
tokens kept out of the logs."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text

from newsletter.store.models import Subscriber
from newsletter.subscribers.optin import subscriber_by_token
from newsletter.web.security import CsrfSigner, redact_path

from .conftest import forms, wait_for

SECURITY_HEADERS = {
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "permissions-policy",
}


def test_state_changing_forms_need_their_token_and_our_origin(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com", "--name", "Ada", "--list", "blog")
    token = site.token_of("ada@example.com")
    other = site.cli.ok("subscriber", "add", "bob@example.com") and site.token_of("bob@example.com")
    url = f"{site.base_url}/preferences/{token}"
    page = site.http.get(url).text
    good = forms(page)[url]["csrf_token"]
    bobs = forms(site.http.get(f"{site.base_url}/preferences/{other}").text)
    attempts = [
        ({}, {}),  # no token
        ({"csrf_token": "garbage"}, {}),
        ({"csrf_token": forms(page)[f"{url}/erase"]["csrf_token"]}, {}),  # another form's
        ({"csrf_token": bobs[f"{site.base_url}/preferences/{other}"]["csrf_token"]}, {}),
        ({"csrf_token": good}, {"Origin": "https://evil.example.net"}),
        ({"csrf_token": good}, {"Origin": "null"}),
    ]
    for data, headers in attempts:
        answer = site.http.post(url, data={**data, "name": "Mallory"}, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert "This form has expired" in answer.text
    for action in ("export", "erase"):
        answer = site.http.post(f"{url}/{action}", data={"confirm": "yes"})
        assert answer.status_code == 403
    assert site.person("ada@example.com")["name"] == "Ada"
    # Our own origin and the right token work; a token older than 12 hours does not.
    ok = site.http.post(
        url,
        data={"csrf_token": good, "name": "Ada B.", "list": "blog"},
        headers={"Origin": site.base_url},
    )
    assert ok.status_code == 303 and site.person("ada@example.com")["name"] == "Ada B."
    site.clock.advance(hours=13)
    late = site.http.post(url, data={"csrf_token": good, "name": "Late"})
    assert late.status_code == 403
    # A forged link is a 404 before the form token is even looked at.
    assert site.http.post(url[:-2] + "zz", data={}).status_code == 404


def test_confirm_button_needs_its_token(web) -> None:
    site = web()
    site.subscribe("new@example.com")
    link = site.confirm_link("new@example.com")
    assert site.http.post(link, data={}).status_code == 403
    assert site.person("new@example.com")["status"] == "unconfirmed"
    assert site.confirm(link).status_code == 200
    assert site.person("new@example.com")["status"] == "active"


def test_every_answer_has_the_security_headers_and_no_cookie(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com")
    token = site.token_of("ada@example.com")
    answers = [
        site.http.get("/"),
        site.http.get("/subscribe"),
        site.subscribe("x@example.com"),
        site.http.get("/subscribe/thanks"),
        site.http.post("/api/subscribe", json={"email": "y@example.com"}),
        site.http.get(f"/unsubscribe/{token}"),
        site.http.get(f"/preferences/{token}"),
        site.http.get("/archive"),
        site.http.get("/archive/feed.xml"),
        site.http.get("/nothing-here"),
        site.http.get("/unsubscribe/forged-token-aaaaaaaaaaaa"),
        site.http.post(f"/preferences/{token}", data={}),
    ]
    for answer in answers:
        assert set(answer.headers) >= SECURITY_HEADERS, answer.url
        assert "set-cookie" not in answer.headers and "server" not in answer.headers
        assert "strict-transport-security" not in answer.headers  # http base URL
    csp = answers[0].headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # one script may run, by its hash: the time-zone field's; no inline or foreign other
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    assert script_src.startswith("script-src 'sha256-") and script_src.count(" ") == 1
    assert "unsafe-inline" not in script_src
    assert answers[0].headers["x-frame-options"] == "DENY"
    assert answers[6].headers["cache-control"] == "no-store"  # a personal page
    assert "no-referrer" not in answers[0].headers["referrer-policy"]  # Origin must be sent
    assert not site.http.cookies


def test_https_base_url_adds_hsts(web) -> None:
    site = web(base_url="https://news.example.com")
    assert site.http.get("/").headers["strict-transport-security"] == "max-age=31536000"


def test_nothing_of_the_admin_cli_is_served(web) -> None:
    site = web()
    app_paths = {getattr(r, "path", "") for r in site.app.routes}
    assert app_paths == {
        "/",
        "/subscribe",
        "/subscribe/thanks",
        "/api/subscribe",
        "/confirm/{token}",
        "/unsubscribe/{token}",
        "/preferences/{token}",
        "/preferences/{token}/export",
        "/preferences/{token}/erase",
        "/archive",
        "/archive/feed.xml",
        "/archive/{slug}",
        "/l/{token}",
        "/o/{token}",
        "/unsubscribe/{token}/why",
        "/api/v1",  # the HTTP API: every route needs a token (tests/api)
    }
    for path in ("/admin", "/subscribers", "/api/subscribers", "/issues/1/send", "/lists"):
        assert site.http.get(path).status_code == 404
    assert site.http.delete("/subscribe").status_code == 405


def test_tokens_are_long_random_and_found_through_the_selector_index(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com")
    token = site.token_of("ada@example.com")
    assert len(token) >= 22  # 16 random bytes, URL-safe base64: 128 bits
    site.subscribe("new@example.com")
    link_token = site.confirm_link("new@example.com").rsplit("/", 1)[1]
    assert len(link_token) >= 32  # 24 random bytes: 192 bits
    with site.session() as s:
        assert subscriber_by_token(s, token).email == "ada@example.com"
        stored = s.scalars(
            select(text("selector || ' ' || verifier")).select_from(text("confirmations"))
        ).one()
        assert link_token not in stored  # only the selector and a hash are kept
        dialect = s.get_bind().dialect.name
        query = "SELECT id FROM subscribers WHERE substr(token, 1, 8) = :sel"
        if dialect == "sqlite":
            plan = s.execute(text("EXPLAIN QUERY PLAN " + query), {"sel": token[:8]}).all()
            assert "ix_subscribers_token_selector" in str(plan)
        else:
            s.execute(text("SET LOCAL enable_seqscan = off"))
            plan = s.execute(text("EXPLAIN " + query), {"sel": token[:8]}).all()
            assert "ix_subscribers_token_selector" in str(plan)
        # The application's own query renders the indexed expression.
        from sqlalchemy import func, literal_column

        expr = func.substr(Subscriber.token, literal_column("1"), literal_column("8"))
        assert "substr(subscribers.token, 1, 8)" in str(select(Subscriber.id).where(expr == "x"))


def test_csrf_tokens_are_bound_and_expire() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, tzinfo=UTC)
    signer = CsrfSigner(b"k")
    token = signer.issue("preferences", "abc", now=now)
    assert signer.verify(token, "preferences", "abc", now=now + timedelta(hours=1))
    assert not signer.verify(token, "erase", "abc", now=now)
    assert not signer.verify(token, "preferences", "abd", now=now)
    assert not signer.verify(token, "preferences", "abc", now=now + timedelta(hours=13))
    assert not CsrfSigner(b"other").verify(token, "preferences", "abc", now=now)
    assert not signer.verify("", "preferences", "abc", now=now)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/unsubscribe/AbCdEf0123456789_-xyzW", "/unsubscribe/…"),
        ("/l/AQEQTAEhngQXww.ApsCxB2imfUL", "/l/…"),
        ("/o/AQCFIGe1rugtDw.ApsCxB2imfUL.gif", "/o/…"),
        ("/preferences/AbCdEf0123456789_-xyzW/export", "/preferences/…/export"),
        ("/confirm/AbCdEf0123456789_-xyzWAbCdEf0123456789", "/confirm/…"),
        ("/archive/3", "/archive/3"),
    ],
)
def test_access_log_hides_link_tokens(path: str, shown: str) -> None:
    assert redact_path(path) == shown


def test_access_log_lines(web, caplog) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com")
    token = site.token_of("ada@example.com")
    with caplog.at_level(logging.INFO, logger="newsletter.web.access"):
        site.http.get(f"/preferences/{token}")
        # The line is written once the answer is out: wait for it.
        wait_for(lambda: '"GET /preferences/…" 200' in caplog.text, "the access log line")
    assert token not in caplog.text
