"""parse_feed on fixture feeds: RSS 2.0, Atom, RSS 1.0, relative links, hostile markup, junk."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime

import pytest

from newsletter.content import FeedData, content_hash, parse_feed
from newsletter.errors import FeedError

from . import FEEDS

FETCHED_FROM = "https://fetch.example.com/blog/feed.xml"


def parse(name: str, base_url: str = FETCHED_FROM) -> FeedData:
    return parse_feed((FEEDS / name).read_bytes(), base_url=base_url)


def test_rss2_founder_blog() -> None:
    feed = parse("founder_rss2.xml")

    assert feed.title == "Notes from the Founder\u2019s Desk"
    assert feed.link == "https://founder.example.com"
    assert [p.title for p in feed.entries] == [
        "Why we stopped doing annual contracts",
        "Hiring your first account executive",
    ]
    post = feed.entries[0]
    assert post.guid == "https://founder.example.com/?p=1042"
    assert post.url == "https://founder.example.com/2024/03/why-we-stopped-doing-annual-contracts/"
    assert post.published_at == datetime(2024, 3, 5, 7, 0, tzinfo=UTC)
    assert post.updated_at is None
    assert post.author == "Maria Lindqvist"
    # content:encoded is the body; the description is the summary.
    assert "<h2>What the numbers said</h2>" in post.html
    assert "3× higher" in post.html
    assert post.summary == (
        "Annual contracts looked great on our board deck. "
        "They were quietly killing our product feedback loop. […]"
    )
    # WordPress noise is gone, the image itself stays.
    assert 'alt="Renewal churn by cohort"' in post.html
    assert 'width="1024"' in post.html
    for noise in ("srcset", "class=", "decoding", "sizes="):
        assert noise not in post.html
    assert post.image_url.endswith("/renewals-300x169.png")  # media:thumbnail
    assert post.content_hash == content_hash(post.title, post.html)
    assert re.fullmatch(r"[0-9a-f]{64}", post.content_hash)

    second = feed.entries[1]
    assert second.image_url == "https://founder.example.com/wp-content/uploads/2024/02/ae.jpg"
    assert "<ol><li>Hire for the process you have" in second.html


def test_atom_feed() -> None:
    feed = parse("atom.xml")

    assert feed.title == "Engineering at Acme"
    assert feed.link == "https://acme.example.org/blog/"
    post, xhtml = feed.entries
    assert post.title == "Postgres SKIP LOCKED in practice"  # type="html" title as plain text
    assert post.guid == "tag:acme.example.org,2024:skip-locked"
    assert post.published_at == datetime(2024, 4, 1, 7, 30, tzinfo=UTC)
    assert post.updated_at == datetime(2024, 4, 2, 10, 0, tzinfo=UTC)
    assert post.author == "Jonas Berg"
    assert post.summary == "Queues on Postgres without a queue server."
    assert "<pre><code>SELECT id FROM jobs\n  FOR UPDATE SKIP LOCKED\n" in post.html

    assert xhtml.html == "<p>Written in <strong>XHTML</strong>.</p>"
    assert xhtml.author == "Acme Engineering"  # inherited from the feed
    # Only <updated>: it stands in for the publication time too.
    assert xhtml.published_at == xhtml.updated_at == datetime(2024, 3, 15, 12, tzinfo=UTC)
    assert xhtml.summary == "Written in XHTML."


def test_rss1_rdf_feed() -> None:
    feed = parse("rss1_rdf.xml")

    assert feed.title == "An Old-School Weblog"
    (post,) = feed.entries
    assert post.title == "RDF lives on"
    assert post.url == post.guid == "https://old.example.net/2024/01/rdf-lives.html"
    assert post.published_at == datetime(2024, 1, 20, 17, 45, tzinfo=UTC)
    assert post.author == "Sam Old"
    assert post.html == "<p>Some feeds <em>never</em> change, and that is fine.</p>"


def test_relative_links_are_resolved_against_the_entry_link() -> None:
    feed = parse("relative_links.xml")

    assert feed.link == "https://fetch.example.com/blog/"
    first, lonely, untitled = feed.entries
    assert first.url == "https://fetch.example.com/blog/2024/relative-everything/"
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', first.html)
    assert hrefs == [
        "https://fetch.example.com/blog/2024/older-post/",
        "https://fetch.example.com/about",
        "https://fetch.example.com/blog/2024/relative-everything/#comments",
        "https://fetch.example.com/blog/2024/relative-everything/images/diagram.png",
        "https://cdn.example.com/pic.jpg",
    ]
    assert first.image_url == hrefs[3]  # the first image of the body
    assert 'alt=""' in first.html  # an empty alt stays (the composer decides)

    # No link: the body is resolved against the feed's link; the guid is the content hash.
    assert lonely.url == ""
    assert lonely.guid == f"sha256:{lonely.content_hash}"
    assert lonely.image_url == "https://fetch.example.com/img/lone.png"

    # No title: the start of the body stands in.
    assert untitled.title == "Untitled microblog item about shipping the new importer today."
    assert untitled.guid == "rel-3"


HOSTILE_LEFTOVERS = [
    "<script", "document.cookie", "alert(", "<style", "display: none", "<iframe",
    "iframe fallback", "onerror", "onclick", "onmouseover", "onload", "javascript:",
    "JaVaScRiPt", "data:", "<svg", "svg text", "<form", "<input", "<button", "Log in",
    "<object", "object fallback", "style=", "class=", "id=", "<!--", "<math", "evil.example",
]  # fmt: skip


def test_hostile_markup_is_sanitised() -> None:
    (post,) = parse("hostile.xml").entries

    for leftover in HOSTILE_LEFTOVERS:
        assert leftover not in post.html, leftover
    assert "<p>Hello <b>reader</b></p>" in post.html
    assert '<img src="https://hostile.example.com/post/x.png" alt="broken">' in post.html
    assert "<p>Styled</p>" in post.html
    assert "click me" in post.html  # the text of a dropped link stays
    # The CR/LF in the title cannot smuggle a header into an email built from it.
    assert post.title == "Totally normal post Bcc: victim@example.com"
    assert "alert" not in post.summary


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.xml", "the body is empty"),
        ("not_a_feed.html", "not RSS or Atom"),
        ("garbage.bin", "not RSS or Atom (<unknown>:"),
    ],
)
def test_non_feed_bodies_raise_feed_error(name: str, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse(name)

    message = str(caught.value)
    assert message.startswith(f"cannot parse feed {FETCHED_FROM}: {reason}")
    assert "\n" not in message


def test_bytes_that_look_like_a_path_are_not_opened() -> None:
    # feedparser reads a file when given its path; parse_feed must only ever parse the bytes.
    path = str(FEEDS / "founder_rss2.xml").encode()

    with pytest.raises(FeedError, match="not RSS or Atom"):
        parse_feed(path, base_url=FETCHED_FROM)


def test_feed_without_entries_is_valid() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>New blog</title>
        <link>https://new.example.com/</link></channel></rss>"""

    feed = parse_feed(body, base_url=FETCHED_FROM)

    assert feed == FeedData(title="New blog", link="https://new.example.com/", entries=())


def test_repeated_guid_is_kept_once() -> None:
    item = "<item><title>{}</title><guid isPermaLink='false'>same</guid></item>"
    body = f"""<rss version="2.0"><channel><title>t</title>
        {item.format("First")}{item.format("Second")}</channel></rss>""".encode()

    feed = parse_feed(body, base_url=FETCHED_FROM)

    assert [p.title for p in feed.entries] == ["First"]


def test_an_edited_post_keeps_its_guid_and_changes_its_hash() -> None:
    original = (FEEDS / "founder_rss2.xml").read_bytes()
    edited = original.replace(b"3&times; higher", b"4&times; higher")

    before = parse_feed(original, base_url=FETCHED_FROM).entries[0]
    after = parse_feed(edited, base_url=FETCHED_FROM).entries[0]

    assert after.guid == before.guid
    assert after.content_hash != before.content_hash
    assert parse_feed(original, base_url=FETCHED_FROM).entries[0] == before  # deterministic


def test_plain_text_content_becomes_escaped_paragraphs() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
        <entry><id>x</id><title>Plain</title><updated>2024-01-01T00:00:00Z</updated>
        <content type="text">Use &lt;b&gt; for bold.

Second paragraph.</content></entry></feed>"""

    (post,) = parse_feed(body, base_url=FETCHED_FROM).entries

    assert post.html == "<p>Use &lt;b&gt; for bold.</p><p>Second paragraph.</p>"


def test_rss_author_email_is_not_exposed() -> None:
    body = b"""<rss version="2.0"><channel><title>t</title>
        <item><title>a</title><guid>1</guid><author>ann@example.com (Ann Author)</author></item>
        <item><title>b</title><guid>2</guid><author>bob@example.com</author></item>
        </channel></rss>"""

    first, second = parse_feed(body, base_url=FETCHED_FROM).entries

    assert (first.author, second.author) == ("Ann Author", "")


@pytest.mark.parametrize("name", ["founder_rss2.xml", "atom.xml", "rss1_rdf.xml"])
def test_parsing_raises_no_warnings(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse(name)


def test_declared_encoding_is_honoured() -> None:
    body = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel>'
        "<title>Caf\u00e9</title><item><title>Sm\u00f6rg\u00e5s</title><guid>1</guid></item>"
        "</channel></rss>"
    ).encode("latin-1")

    feed = parse_feed(body, base_url=FETCHED_FROM)

    assert (feed.title, feed.entries[0].title) == ("Caf\u00e9", "Sm\u00f6rg\u00e5s")
