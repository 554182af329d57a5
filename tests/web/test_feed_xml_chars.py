"""One post or issue cannot break the archive feed for every reader: characters XML 1.0 does not
allow (C0 controls, U+FFFE, U+FFFF) never reach it, whether they came in with a post (removed
when it is stored) or with what a marketer typed (removed from the feed as it is served)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

ATOM = "{http://www.w3.org/2005/Atom}"
FORBIDDEN = ("\uffff", "\ufffe", "\x01")


def entries(feed: bytes) -> list[tuple[str, str]]:
    """(title, summary) of each entry; ElementTree refuses a feed that is not well-formed."""
    root = ET.fromstring(feed)
    return [
        (entry.findtext(f"{ATOM}title") or "", entry.findtext(f"{ATOM}summary") or "")
        for entry in root.iter(f"{ATOM}entry")
    ]


def last_issue(site) -> int:
    return max(i["id"] for i in json.loads(site.cli.ok("issue", "ls", "--json").stdout))


def test_a_post_carrying_characters_xml_forbids_leaves_the_feed_readable(
    web, tmp_path: Path
) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    post = tmp_path / "bad-characters.md"
    post.write_text(
        '---\ntitle: "Broken \\uFFFF feed \\x01 title \\uFFFE"\n'
        'summary: "A summary \\uFFFFwith\\x01 noise\\uFFFE"\n---\n'
        "A body \uffff with \x01 bad \ufffe characters.\n",
        encoding="utf-8",
    )
    site.cli.ok("post", "add", str(post))
    site.cli.ok("issue", "create", "--latest", "--list", "blog")
    site.send_issue(last_issue(site))

    answer = site.http.get("/archive/feed.xml")

    assert answer.status_code == 200
    assert entries(answer.content) == [("Broken feed title", "A summary with noise")]
    assert not [c for c in FORBIDDEN if c in answer.text]
    mail = site.wait_for_mails("ada@example.com")[0]
    body = mail.get_body(("plain",)).get_content()
    assert "A body with bad characters." in body
    assert not [c for c in FORBIDDEN if c in body + str(mail["Subject"])]


def test_a_subject_typed_with_such_characters_is_cleaned_in_the_feed(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    site.seed_issue(subject="Launch \uffffweek\ufffe notes")
    issue = last_issue(site)
    site.cli.ok("issue", "edit", str(issue), "--preheader", "What \uffffshipped")
    site.send_issue(issue)

    answer = site.http.get("/archive/feed.xml")

    assert entries(answer.content) == [("Launch week notes", "What shipped")]
    assert not [c for c in FORBIDDEN if c in answer.text]
