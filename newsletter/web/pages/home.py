"""The home page: the sign-up form and the latest issues of the archive."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...issues.published import published_issues
from ..inputs import referer
from ..state import web_app
from .subscribe import form_context


async def home(request: Request) -> Response:
    web = web_app(request)
    issues = await web.read(published_issues, web.settings, limit=5)
    source = referer(request)
    return web.page("web/home.html", {"form": form_context(web, source=source), "issues": issues})
