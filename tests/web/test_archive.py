"""The public archive: the list of sent issues, the "view in browser" page of each, the Atom
feed; nothing personal in any of them, nothing of drafts."""

from __future__ import annotations

import re

import feedparser


def test_archive_pages_and_feed_show_sent_issues_without_personal_data(web) -> None:
    site = web()
    site.cli.ok(
        "subscriber", "add", "ada.lovelace@example.com", "--name", "Ada Lovelace", "--list", "blog"
    )
    token = site.token_of("ada.lovelace@example.com")
    sent = site.seed_issue(subject="Pricing per seat, revisited")
    site.send_issue(sent)
    draft = site.seed_issue(subject="Not out yet")
    mail = site.wait_for_mails("ada.lovelace@example.com")[0]
    web_view = re.search(r"https?://\S+/archive/\d+", mail.get_body(("plain",)).get_content())
    assert web_view and web_view.group(0) == f"{site.base_url}/archive/{sent}"

    def personal(text: str) -> list[str]:
        return [p for p in ("ada.lovelace", "Ada", "Lovelace", token) if p in text]

    index = site.http.get("/archive")
    assert index.status_code == 200 and "Pricing per seat, revisited" in index.text
    assert "Not out yet" not in index.text and personal(index.text) == []
    assert index.headers["cache-control"] == "public, max-age=300"

    page = site.http.get(f"/archive/{sent}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "per seat" in page.text.lower()
    assert personal(page.text) == [] and "/unsubscribe/" not in page.text
    assert "/preferences/" not in page.text

    for missing in (f"/archive/{draft}", "/archive/999", "/archive/x"):
        answer = site.http.get(missing)
        assert answer.status_code == 404 and answer.text == "Not Found", missing

    feed_answer = site.http.get("/archive/feed.xml")
    assert feed_answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(feed_answer.content)
    assert not feed.bozo and feed.version == "atom10"
    assert [e.title for e in feed.entries] == ["Pricing per seat, revisited"]
    assert feed.entries[0].link == f"{site.base_url}/archive/{sent}"
    assert personal(feed_answer.text) == []

    home = site.http.get("/")
    assert home.status_code == 200 and "Pricing per seat, revisited" in home.text
    assert 'action="' + site.base_url + '/subscribe"' in home.text


def test_empty_archive(web) -> None:
    site = web()
    assert "No issues yet" in site.http.get("/archive").text
    feed = feedparser.parse(site.http.get("/archive/feed.xml").content)
    assert not feed.bozo and feed.entries == []
