"""The tracked links and the open pixel: ``/l/<token>`` redirects, ``/o/<token>.gif``.

A token that does not verify, and a link the issue does not have, is a plain 404 (the same
as any unknown page), so the redirector is never an open redirect. HEAD is answered like
GET (a link checker gets its redirect) but not counted as a click. The answer never waits
for the database after an issue's first click: the hit is queued (tracking.recorder).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ...errors import NotFoundError
from ...tracking.redirector import Redirector, Target
from ..state import WebApp, web_app

NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


async def _once(web: WebApp, what: object, load: Callable[[], Awaitable[None]]) -> None:
    """Run ``load`` once for all the requests that need ``what`` at the same moment (a
    scanner's burst on a new issue): the first one loads, the others wait for it. A failed
    load fails its waiters; the next request tries again."""
    loading = web.loading
    pending = loading.get(what)
    if pending is None:
        pending = loading[what] = asyncio.ensure_future(load())
        pending.add_done_callback(lambda _: loading.pop(what, None))
    await asyncio.shield(pending)


async def _target(web: WebApp, token: str, kind: str) -> Target:
    redirector: Redirector = web.redirector
    if not redirector.ready:
        await _once(web, "key", lambda: web.run(redirector.load_key))
    target = redirector.parse(token, kind=kind)
    if target is None:
        raise NotFoundError("no such link")
    return target


async def click(request: Request) -> Response:
    web = web_app(request)
    target = await _target(web, request.path_params["token"], "click")
    redirector = web.redirector
    if target.link_idx == 0:  # the honeypot: only a machine follows it
        redirector.record(target, request.method, request.headers, kind="click")
        return Response(status_code=204, headers=NO_STORE)
    if not redirector.has_links(target.issue_id):
        issue_id = target.issue_id
        await _once(web, issue_id, lambda: web.read(redirector.load_links, issue_id))
    url = redirector.url(target)
    if url is None:
        raise NotFoundError("no such link")
    redirector.record(target, request.method, request.headers, kind="click")
    # The URL as stored: ASCII without spaces or controls (tracking.links), so it goes into
    # Location exactly as the author wrote it, query string and fragment included.
    return Response(status_code=302, headers={"Location": url, **NO_STORE})


async def pixel(request: Request) -> Response:
    web = web_app(request)
    token = request.path_params["token"]
    if not token.endswith(".gif"):
        raise NotFoundError("no such image")
    target = await _target(web, token.removesuffix(".gif"), "open")
    web.redirector.record(target, request.method, request.headers, kind="open")
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)
