"""The public archive: the list of sent issues, the "view in browser" page of each, the Atom
feed; nothing personal in any of them, nothing of drafts, nothing of private issues (their
recipients' web-view links work all the same), no page named by a guessable id."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import feedparser
import pytest

from .conftest import POST


def show(site, issue_id: int) -> dict:
    return json.loads(site.cli.ok("issue", "show", str(issue_id), "--json").stdout)


def web_view_link(site, address: str, count: int = 1) -> str:
    mail = site.wait_for_mails(address, count)[count - 1]
    found = re.search(r"https?://\S+/archive/[^\s\]>]+", mail.get_body(("plain",)).get_content())
    assert found, "no web-view link in the email"
    return found.group(0)


def test_archive_pages_and_feed_show_sent_issues_without_personal_data(web) -> None:
    site = web()
    site.cli.ok(
        "subscriber", "add", "ada.lovelace@example.com", "--name", "Ada Lovelace", "--list", "blog"
    )
    token = site.token_of("ada.lovelace@example.com")
    sent = site.seed_issue(subject="Pricing per seat, revisited")
    site.send_issue(sent)
    draft = site.seed_issue(subject="Not out yet")
    slug = show(site, sent)["slug"]
    assert len(slug) >= 20 and not slug.isdigit()
    assert web_view_link(site, "ada.lovelace@example.com") == f"{site.base_url}/archive/{slug}"

    def personal(text: str) -> list[str]:
        return [p for p in ("ada.lovelace", "Ada", "Lovelace", token) if p in text]

    index = site.http.get("/archive")
    assert index.status_code == 200 and "Pricing per seat, revisited" in index.text
    assert "Not out yet" not in index.text and personal(index.text) == []
    assert index.headers["cache-control"] == "public, max-age=300"

    page = site.http.get(f"/archive/{slug}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "per seat" in page.text.lower()
    assert personal(page.text) == [] and "/unsubscribe/" not in page.text
    assert "/preferences/" not in page.text

    old_link = site.http.get(f"/archive/{sent}")  # links of emails sent before slugs
    assert old_link.status_code == 301
    assert old_link.headers["location"] == f"{site.base_url}/archive/{slug}"

    draft_slug = show(site, draft)["slug"]
    for missing in (f"/archive/{draft}", f"/archive/{draft_slug}", "/archive/999", "/archive/x"):
        answer = site.http.get(missing)
        assert answer.status_code == 404 and answer.text == "Not Found", missing

    feed_answer = site.http.get("/archive/feed.xml")
    assert feed_answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(feed_answer.content)
    assert not feed.bozo and feed.version == "atom10"
    assert [e.title for e in feed.entries] == ["Pricing per seat, revisited"]
    assert feed.entries[0].link == f"{site.base_url}/archive/{slug}"
    assert personal(feed_answer.text) == []

    home = site.http.get("/")
    assert home.status_code == 200 and "Pricing per seat, revisited" in home.text
    assert 'action="' + site.base_url + '/subscribe"' in home.text


def test_empty_archive(web) -> None:
    site = web()
    assert "No issues yet" in site.http.get("/archive").text
    feed = feedparser.parse(site.http.get("/archive/feed.xml").content)
    assert not feed.bozo and feed.entries == []


def test_private_list_issue_is_not_in_the_archive_but_its_web_view_link_works(web) -> None:
    """A list not on the subscribe form is private by default: its issue is 404 in the
    archive (by id, by slug, and with a forged signature), absent from the index and the
    feed, while the link in its recipients' emails shows it."""
    site = web(lists=("blog",))
    site.cli.ok("list", "create", "customers")
    site.cli.ok("subscriber", "add", "grace@example.com", "--list", "customers")
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    public = site.seed_issue(subject="Open letter to readers")
    site.send_issue(public)
    site.cli.ok("issue", "create", "--latest", "--list", "customers", "--subject", "Renewal prices")
    private = max(i["id"] for i in json.loads(site.cli.ok("issue", "ls", "--json").stdout))
    site.send_issue(private)
    details = show(site, private)
    assert details["public"] is False and details["status"] == "sent"
    slug = details["slug"]

    link = web_view_link(site, "grace@example.com")
    assert link.startswith(f"{site.base_url}/archive/{slug}?k=")
    page = site.http.get(link)
    assert page.status_code == 200 and "renewal prices" in page.text.lower()
    assert page.headers["x-robots-tag"] == "noindex"
    assert page.headers["cache-control"].startswith("private")

    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    for path in (f"/archive/{private}", f"/archive/{slug}", forged, f"/archive/{slug}?k="):
        answer = site.http.get(path)
        assert answer.status_code == 404, path
        assert "renewal" not in answer.text.lower()

    index = site.http.get("/archive").text
    assert "Open letter to readers" in index and "Renewal prices" not in index
    feed_text = site.http.get("/archive/feed.xml").text
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in
              ET.fromstring(feed_text).iter("{http://www.w3.org/2005/Atom}entry")]  # fmt: skip
    assert titles == ["Open letter to readers"] and slug not in feed_text


def test_marketer_decides_what_is_public(web) -> None:
    """--archive publishes an issue of a private list; `issue unpublish` takes a sent one
    out (its recipients' links keep working); `list edit --public` opens a whole list."""
    site = web(lists=("blog",))
    site.cli.ok("list", "create", "customers")
    site.cli.ok("subscriber", "add", "grace@example.com", "--list", "customers")
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    site.cli.ok("post", "add", str(POST))
    site.cli.ok(
        "issue", "create", "--latest", "--list", "customers", "--subject", "Shared", "--archive"
    )
    shared = max(i["id"] for i in json.loads(site.cli.ok("issue", "ls", "--json").stdout))
    site.send_issue(shared)
    assert "Shared" in site.http.get("/archive").text

    blog = site.seed_issue(subject="Blog post")
    site.send_issue(blog)
    link = web_view_link(site, "ada@example.com")
    assert site.http.get(link).status_code == 200 and "?k=" not in link
    assert "no longer in" in site.cli.ok("issue", "unpublish", str(blog)).stdout
    assert "Blog post" not in site.http.get("/archive").text
    assert "Blog post" not in site.http.get("/archive/feed.xml").text
    slug = show(site, blog)["slug"]
    assert site.http.get(f"/archive/{slug}").status_code == 404
    signed = show(site, blog)["web_url"]
    assert "?k=" in signed and site.http.get(signed).status_code == 200

    site.cli.ok("issue", "edit", str(blog), "--archive")
    assert "Blog post" in site.http.get("/archive").text
    site.cli.ok("list", "edit", "customers", "--public")
    assert json.loads(site.cli.ok("list", "show", "customers", "--json").stdout)["public"] is True
    lists = {r["name"]: r["public"] for r in json.loads(site.cli.ok("list", "ls", "--json").stdout)}
    assert lists == {"blog": True, "customers": True}

    refused = site.cli("issue", "edit", str(blog), "--subject", "Too late")
    assert refused.exit_code != 0 and "no longer change" in refused.stderr


@pytest.mark.parametrize("value", ["9223372036854775808", "0" * 40, "%00", "..%2f..%2fetc"])
def test_odd_archive_paths_are_404(web, value: str) -> None:
    site = web()
    assert site.http.get(f"/archive/{value}").status_code == 404
