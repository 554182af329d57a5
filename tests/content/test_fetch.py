"""fetch_feed against a real HTTP server on 127.0.0.1 (see conftest.FeedServer)."""

from __future__ import annotations

from email.utils import formatdate

import httpx
import pytest

from newsletter.content import fetch_feed, parse_feed
from newsletter.errors import FeedError

from . import FEEDS
from .conftest import FeedServer


def test_fetch_returns_body_and_validators(feed_server: FeedServer) -> None:
    url = feed_server.url("/feed.xml")

    result = fetch_feed(url)

    assert result.status == "ok"
    assert result.body == (FEEDS / "founder_rss2.xml").read_bytes()
    assert result.etag == FeedServer.ETAG
    assert result.last_modified == FeedServer.LAST_MODIFIED
    assert result.url == url
    sent = feed_server.headers_for("/feed.xml")[-1]
    assert sent["user-agent"].startswith("newsletter")
    assert "application/rss+xml" in sent["accept"]
    assert "if-none-match" not in sent


def test_conditional_refetch_gets_not_modified(feed_server: FeedServer) -> None:
    url = feed_server.url("/feed.xml")
    first = fetch_feed(url)

    again = fetch_feed(url, etag=first.etag, last_modified=first.last_modified)

    assert again.status == "not_modified"
    assert again.body == b""
    assert (again.etag, again.last_modified) == (first.etag, first.last_modified)
    sent = feed_server.headers_for("/feed.xml")[-1]
    assert sent["if-none-match"] == FeedServer.ETAG
    assert sent["if-modified-since"] == FeedServer.LAST_MODIFIED


def test_changed_etag_gets_the_full_body(feed_server: FeedServer) -> None:
    result = fetch_feed(feed_server.url("/feed.xml"), etag='"founder-v0"')

    assert result.status == "ok"
    assert result.etag == FeedServer.ETAG
    assert b"Why we stopped doing annual contracts" in result.body


@pytest.mark.parametrize(
    ("since", "status"),
    [
        (FeedServer.LAST_MODIFIED, "not_modified"),
        (formatdate(usegmt=True), "not_modified"),
        ("Mon, 01 Jan 2024 00:00:00 GMT", "ok"),
    ],
    ids=["the-same-time", "now", "before"],  # fixed ids: every xdist worker collects the same
)
def test_if_modified_since_alone(feed_server: FeedServer, since: str, status: str) -> None:
    result = fetch_feed(feed_server.url("/dated.xml"), last_modified=since)

    assert result.status == status
    # A 304 without validators keeps the ones we sent, so the next fetch is conditional too.
    expected = FeedServer.LAST_MODIFIED if status == "ok" else since
    assert result.last_modified == expected
    assert feed_server.headers_for("/dated.xml")[-1]["if-modified-since"] == since


def test_redirect_is_followed_and_final_url_reported(feed_server: FeedServer) -> None:
    result = fetch_feed(feed_server.url("/moved"))

    assert result.status == "ok"
    assert result.url == feed_server.url("/feed.xml")
    feed = parse_feed(result.body, base_url=result.url)
    assert feed.entries[0].title == "Why we stopped doing annual contracts"


def test_server_error_raises_one_line_naming_the_url(feed_server: FeedServer) -> None:
    url = feed_server.url("/error")

    with pytest.raises(FeedError) as caught:
        fetch_feed(url)

    message = str(caught.value)
    assert message == f"cannot fetch feed {url}: HTTP 500 Internal Server Error"


def test_not_found_raises(feed_server: FeedServer) -> None:
    with pytest.raises(FeedError, match="HTTP 404"):
        fetch_feed(feed_server.url("/nowhere.xml"))


def test_connection_refused_raises(closed_port_url: str) -> None:
    with pytest.raises(FeedError) as caught:
        fetch_feed(closed_port_url)

    message = str(caught.value)
    assert message.startswith(f"cannot fetch feed {closed_port_url}: ")
    assert "refused" in message.lower()
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_redirect_loop_raises(feed_server: FeedServer) -> None:
    with pytest.raises(FeedError, match="redirect"):
        fetch_feed(feed_server.url("/loop"))


def test_timeout_raises(feed_server: FeedServer) -> None:
    try:
        with pytest.raises(FeedError, match=r"cannot fetch feed .*/stall: .*timed out"):
            fetch_feed(feed_server.url("/stall"), timeout=0.2)
    finally:
        feed_server.release.set()


@pytest.mark.parametrize("path", ["/big", "/big-unsized"])
def test_body_larger_than_the_limit_is_refused(feed_server: FeedServer, path: str) -> None:
    with pytest.raises(FeedError, match=r"larger than 1000 bytes"):
        fetch_feed(feed_server.url(path), max_bytes=1000)

    # At the limit it is accepted.
    result = fetch_feed(feed_server.url(path), max_bytes=FeedServer.BIG_SIZE)
    assert len(result.body) == FeedServer.BIG_SIZE


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/feed.xml", "http://"])
def test_unusable_url_raises_feed_error(url: str) -> None:
    with pytest.raises(FeedError, match="cannot fetch feed"):
        fetch_feed(url)


def test_given_client_is_used_and_left_open(feed_server: FeedServer) -> None:
    with httpx.Client(headers={"User-Agent": "custom-agent/1"}) as client:
        fetch_feed(feed_server.url("/feed.xml"), client=client)
        assert feed_server.headers_for("/feed.xml")[-1]["user-agent"] == "custom-agent/1"
        assert not client.is_closed
        assert fetch_feed(feed_server.url("/moved"), client=client).status == "ok"
