"""The public archive's pages: the index, the Atom feed and each issue's "view in browser"
page (the queries are ``issues.published``'s)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...compose import render_web_html
from ...content import xml_safe
from ...errors import NotFoundError
from ...issues.published import FEED_SIZE, public_slug, published_issue, published_issues
from ..inputs import clean
from ..state import web_app

PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}
# A private issue's page, seen through its signed link: no shared cache, no search engine.
PRIVATE_PAGE = {"Cache-Control": "private, max-age=300", "X-Robots-Tag": "noindex"}


async def archive_index(request: Request) -> Response:
    web = web_app(request)
    issues = await web.read(published_issues, web.settings)
    return web.page("web/archive.html", {"issues": issues}, headers=PUBLIC_CACHE)


async def archive_feed(request: Request) -> Response:
    """An Atom feed of the archive (the latest FEED_SIZE issues)."""
    web = web_app(request)
    issues = await web.read(published_issues, web.settings, limit=FEED_SIZE)
    updated = issues[0].published_at.isoformat() if issues else "1970-01-01T00:00:00+00:00"
    body = xml_safe(web.render("web/feed.xml", {"issues": issues, "updated": updated}))
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=PUBLIC_CACHE)


async def archive_issue(request: Request) -> Response:
    """The "view in browser" page: the email without any personal field. A public issue's
    page is ``/archive/<slug>``; a private one answers only with its signature (``?k=``, in
    its emails' web-view link), is not cached by shared caches and not indexed. An old
    ``/archive/<id>`` link of a public issue is redirected to its slug."""
    web = web_app(request)
    slug = request.path_params["slug"]
    if slug.isdigit() and len(slug) <= 18:
        slug = await web.read(public_slug, web.settings, int(slug))
        return RedirectResponse(f"{web.base_url}/archive/{slug}", status_code=301)
    if not 8 <= len(slug) <= 32:
        raise NotFoundError("no such issue in the archive")
    signature = request.query_params.get("k")
    signature = None if signature is None else clean(signature)
    content = await web.read(published_issue, web.settings, slug, signature)
    html = await run_in_threadpool(render_web_html, content, web.settings)
    headers = PUBLIC_CACHE if signature is None else PRIVATE_PAGE
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)
