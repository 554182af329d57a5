"""Fetching a feed over HTTP with httpx: conditional requests, redirects, a size limit.

The only network code of the content stage; httpx errors are turned into ``FeedError`` here.
"""

from __future__ import annotations

import contextlib
import time

import httpx

from ..errors import FeedError
from .models import FetchResult
from .text import clean_line

USER_AGENT = "newsletter-feed-fetcher/0.1"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)


def fetch_feed(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 20.0,
    max_bytes: int = 10_000_000,
    deadline: float = 30.0,
) -> FetchResult:
    """GET the feed at ``url``, following redirects. Each network wait is bounded by
    ``timeout`` (at most ``deadline``), and the body must be complete within ``deadline``
    seconds of the start: a server that sends its body a byte a second cannot hold the fetch
    longer. (One that trickles its *headers* is bounded per read only: httpx has no total
    timeout.)

    ``etag`` and ``last_modified`` (from the previous fetch) are sent as If-None-Match and
    If-Modified-Since; a 304 answer gives ``status="not_modified"`` and an empty body. A
    ``client`` may be passed to reuse connections; otherwise one is made and closed here.
    Raises FeedError, one line naming ``url``, on a network error, a timeout, a status other
    than 2xx or 304, a body (after decompression) larger than ``max_bytes``, or the deadline.
    """
    ends = time.monotonic() + deadline
    timeout = min(timeout, deadline)
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(httpx.Client(headers={"User-Agent": USER_AGENT}))
            response = stack.enter_context(
                client.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True)
            )
            if response.status_code == httpx.codes.NOT_MODIFIED:
                return FetchResult(
                    status="not_modified",
                    body=b"",
                    etag=response.headers.get("ETag", etag),
                    last_modified=response.headers.get("Last-Modified", last_modified),
                    url=str(response.url),
                )
            if not response.is_success:
                raise FeedError(
                    f"cannot fetch feed {url}: HTTP {response.status_code} "
                    f"{response.reason_phrase}".rstrip()
                )
            body = _read_limited(response, url, max_bytes, ends, deadline)
            return FetchResult(
                status="ok",
                body=body,
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                url=str(response.url),
            )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= ends:
            reason = f"not complete after {deadline:g} s"  # the last wait ran into the deadline
        else:
            reason = clean_line(str(exc)) or type(exc).__name__
        raise FeedError(f"cannot fetch feed {url}: {reason}") from exc


def _read_limited(
    response: httpx.Response, url: str, max_bytes: int, ends: float, deadline: float
) -> bytes:
    """The response body, refusing (FeedError) one larger than ``max_bytes`` or one that is
    not complete by ``ends`` (time.monotonic)."""
    too_large = FeedError(f"cannot fetch feed {url}: larger than {max_bytes} bytes")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
        if time.monotonic() > ends:
            raise FeedError(f"cannot fetch feed {url}: not complete after {deadline:g} s")
    return bytes(body)
