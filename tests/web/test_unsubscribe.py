"""Unsubscribing with the List-Unsubscribe URL of a message `issue send` really sent:
RFC 8058 one-click (urlencoded and multipart), the page with one button, forged links."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .conftest import forms


def _seed_readers(site, n: int = 3) -> list[str]:
    readers = [f"reader{i}@example.com" for i in range(n)]
    for address in readers:
        site.cli.ok("subscriber", "add", address, "--list", "blog", "--name", "Reader")
    return readers


def _unsubscribe_url(site, address: str) -> str:
    msg = site.wait_for_mails(address)[-1]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
    assert urls[0].startswith(site.base_url + "/unsubscribe/")
    assert address not in urls[0]  # an opaque token, not the address
    return urls[0]


def _unsubscribed_events(site, address: str) -> list[dict]:
    return [e for e in site.person(address)["events"] if e["kind"] == "unsubscribed"]


def test_one_click_from_a_sent_message(web) -> None:
    site = web()
    first, second, third = _seed_readers(site)
    site.send_issue(site.seed_issue())
    url_first, url_second = _unsubscribe_url(site, first), _unsubscribe_url(site, second)
    site.http.cookies.clear()

    # A GET (a mail scanner, a preview) changes nothing.
    page = site.http.get(url_first)
    assert page.status_code == 200 and "Unsubscribe" in page.text
    assert site.person(first)["status"] == "active"

    # urlencoded, as most providers send it: 2xx, no redirect, no cookie.
    answer = site.http.post(url_first, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "location" not in answer.headers
    assert "set-cookie" not in answer.headers and not answer.request.headers.get("cookie")
    assert site.person(first)["status"] == "unsubscribed"
    events = _unsubscribed_events(site, first)
    assert len(events) == 1 and events[0]["source"] == "web-one-click"
    assert events[0]["ip"] == "127.0.0.1"
    # Idempotent: the same answer again, nothing more logged.
    again = site.http.post(
        url_first,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 200 and again.text == answer.text
    assert len(_unsubscribed_events(site, first)) == 1

    # multipart/form-data works the same.
    answer = site.http.post(url_second, files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.request.headers["content-type"].startswith("multipart/form-data")
    assert answer.status_code == 200 and site.person(second)["status"] == "unsubscribed"

    # Forged tokens: a plain 404, and nobody changes.
    token = urlsplit(url_first).path.rsplit("/", 1)[1]  # without the ?issue= of the URL
    for forged in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token[:8] + "x" * (len(token) - 8),
        "A" * 22,
        token[:8],
        "../preferences",
    ):
        bad = site.http.post(
            f"{site.base_url}/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"}
        )
        assert bad.status_code == 404 and bad.text == "Not Found", forged
    assert site.person(third)["status"] == "active"

    # The next issue goes to the one who stayed only.
    site.smtp.handler.messages.clear()
    site.send_issue(site.seed_issue(subject="Second"))
    assert [m.rcpt_tos for m in site.smtp.handler.messages] == [[third]]


def test_unsubscribe_page_button(web) -> None:
    site = web()
    (reader,) = _seed_readers(site, 1)
    url = f"{site.base_url}/unsubscribe/{site.token_of(reader)}"
    page = site.http.get(url)
    assert reader in page.text and site.person(reader)["status"] == "active"
    # Without the page's form token (and without One-Click) nothing happens.
    refused = site.http.post(url, data={"anything": "else"})
    assert refused.status_code == 403 and site.person(reader)["status"] == "active"
    done = site.http.post(url, data=forms(page.text)[url])
    assert done.status_code == 200 and "You're unsubscribed" in done.text
    assert site.person(reader)["status"] == "unsubscribed"
    assert _unsubscribed_events(site, reader)[0]["source"] == "web-page"
    # The page now says so and offers no button.
    assert "You're unsubscribed" in site.http.get(url).text


def test_bounced_people_stay_bounced(web) -> None:
    """One-click on a bounced address answers 200 and keeps the more telling status."""
    from newsletter.subscribers.service import find_subscriber

    site = web()
    (reader,) = _seed_readers(site, 1)
    with site.session() as s, s.begin():
        find_subscriber(s, reader).status = "bounced"
    url = f"{site.base_url}/unsubscribe/{site.token_of(reader)}"
    assert site.http.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert site.person(reader)["status"] == "bounced"
