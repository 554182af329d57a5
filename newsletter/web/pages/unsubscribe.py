"""The unsubscribe link of every email: the page with one button and RFC 8058 one-click."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ...subscribers.optin import subscriber_by_token, unsubscribe_by_token
from ..inputs import client_ip, form_text, path_token, read_form
from ..state import WebApp, web_app
from .csrf import csrf_valid, form_expired


def _person(session: Session, token: str) -> dict[str, str]:
    sub = subscriber_by_token(session, token)
    return {"email": sub.email, "status": sub.status}


def _unsubscribe_context(web: WebApp, token: str, person: dict[str, str]) -> dict[str, Any]:
    return {
        "email": person["email"],
        "state": "done" if person["status"] in ("unsubscribed", "bounced", "complained") else "ask",
        "action": f"{web.base_url}/unsubscribe/{token}",
        "csrf_token": "",
        "preferences_url": f"{web.base_url}/preferences/{token}",
    }


async def unsubscribe_page(request: Request) -> Response:
    """The unsubscribe link of every email: a page with one button. A GET changes nothing."""
    web = web_app(request)
    token = path_token(request)
    person = await web.read(_person, token)
    context = _unsubscribe_context(web, token, person)
    context["csrf_token"] = web.csrf.issue("unsubscribe", token, now=web.clock())
    return web.page("web/unsubscribe.html", context)


def _unsubscribe_by_page(session: Session, token: str, csrf_ok: bool, ip: str) -> dict[str, str]:
    if not csrf_ok:
        subscriber_by_token(session, token)
        raise form_expired()
    sub = unsubscribe_by_token(session, token, method="page", ip=ip)
    return {"email": sub.email, "status": sub.status}


async def unsubscribe_post(request: Request) -> Response:
    """Both ways to unsubscribe at the List-Unsubscribe URL:

    - RFC 8058 one-click: a body ``List-Unsubscribe=One-Click`` (urlencoded or multipart),
      sent by mail providers without cookies or any page: no form token, 200 with a line of
      text, never a redirect, the same answer every time.
    - The button of the unsubscribe page: needs its form token (403 otherwise).
    """
    web = web_app(request)
    token = path_token(request)
    form = await read_form(request)
    if form_text(form, "List-Unsubscribe") == "One-Click":
        await web.run(unsubscribe_by_token, token, method="one-click", ip=client_ip(request))
        return PlainTextResponse("You have been unsubscribed.\n")
    person = await web.run(
        _unsubscribe_by_page,
        token,
        csrf_valid(request, form, "unsubscribe", token),
        client_ip(request),
    )
    return web.page("web/unsubscribe.html", _unsubscribe_context(web, token, person))
