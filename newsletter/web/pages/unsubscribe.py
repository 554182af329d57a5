"""The unsubscribe link of every email: the page with one button, RFC 8058 one-click, and
the optional "why?" asked once the person is unsubscribed.

Every message's link is ``/unsubscribe/<token>?issue=<id>``: the issue is read from the
query string (of the page, its form and the one-click POST alike) so the unsubscription is
counted for it. The "why?" form names the unsubscription it answers; that id travels inside
the form token's subject (link token and id, signed), so no one can answer for another.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ...subscribers.optin import (
    UNSUBSCRIBE_REASONS,
    issue_ref,
    record_unsubscribe_reason,
    subscriber_by_token,
    unsubscribe_by_token,
)
from ..inputs import client_ip, form_text, path_token, read_form
from ..state import WebApp, web_app
from .csrf import csrf_valid, form_expired

WHY_PURPOSE = "unsubscribe-why"
WHY_FIELD = "unsubscribe_id"


def _why_subject(token: str, counted: str) -> str:
    """What the "why?" form token is bound to: the link and the unsubscription's id."""
    return f"{token}.{counted}"


def _person(session: Session, token: str) -> dict[str, Any]:
    sub = subscriber_by_token(session, token)
    return {"email": sub.email, "status": sub.status, "counted": None}


def _unsubscribe_context(
    web: WebApp, token: str, issue_id: int | None, person: dict[str, Any]
) -> dict[str, Any]:
    action = f"{web.base_url}/unsubscribe/{token}"
    context = {
        "email": person["email"],
        "state": "done" if person["status"] in ("unsubscribed", "bounced", "complained") else "ask",
        "action": action if issue_id is None else f"{action}?issue={issue_id}",
        "csrf_token": "",
        "preferences_url": f"{web.base_url}/preferences/{token}",
        "why": None,
    }
    if person["counted"] is not None:
        counted = str(person["counted"])
        subject = _why_subject(token, counted)
        context["why"] = {
            "action": f"{action}/why",
            "unsubscribe_id": counted,
            "csrf_token": web.csrf.issue(WHY_PURPOSE, subject, now=web.clock()),
            "reasons": list(UNSUBSCRIBE_REASONS.items()),
        }
    return context


async def unsubscribe_page(request: Request) -> Response:
    """The unsubscribe link of every email: a page with one button. A GET changes nothing."""
    web = web_app(request)
    token = path_token(request)
    issue_id = issue_ref(request.query_params.get("issue", ""))
    person = await web.read(_person, token)
    context = _unsubscribe_context(web, token, issue_id, person)
    context["csrf_token"] = web.csrf.issue("unsubscribe", token, now=web.clock())
    return web.page("web/unsubscribe.html", context)


def _unsubscribe_by_page(
    session: Session, token: str, csrf_ok: bool, ip: str, issue_id: int | None
) -> dict[str, Any]:
    if not csrf_ok:
        subscriber_by_token(session, token)
        raise form_expired()
    done = unsubscribe_by_token(session, token, method="page", ip=ip, issue_id=issue_id)
    sub = done.subscriber
    return {"email": sub.email, "status": sub.status, "counted": done.counted}


async def unsubscribe_post(request: Request) -> Response:
    """Both ways to unsubscribe at the List-Unsubscribe URL:

    - RFC 8058 one-click: a body ``List-Unsubscribe=One-Click`` (urlencoded or multipart),
      sent by mail providers without cookies or any page: no form token, 200 with a line of
      text, never a redirect, the same answer every time.
    - The button of the unsubscribe page: needs its form token (403 otherwise); the answer
      asks "why?" when this request unsubscribed them.
    """
    web = web_app(request)
    token = path_token(request)
    issue_id = issue_ref(request.query_params.get("issue", ""))
    form = await read_form(request)
    ip = client_ip(request)
    if form_text(form, "List-Unsubscribe") == "One-Click":
        await web.run(unsubscribe_by_token, token, method="one-click", ip=ip, issue_id=issue_id)
        return PlainTextResponse("You have been unsubscribed.\n")
    csrf_ok = csrf_valid(request, form, "unsubscribe", token)
    person = await web.run(_unsubscribe_by_page, token, csrf_ok, ip, issue_id)
    return web.page("web/unsubscribe.html", _unsubscribe_context(web, token, issue_id, person))


def _answer_why(
    session: Session, token: str, csrf_ok: bool, unsubscribe_id: int, reason: str
) -> None:
    subscriber_by_token(session, token)
    if not csrf_ok:
        raise form_expired()
    record_unsubscribe_reason(session, unsubscribe_id, reason)


async def unsubscribe_why(request: Request) -> Response:
    """The answer to "why?": recorded once on the unsubscription the form was issued for
    (403 for a form token that does not match the id sent, 400 for an answer not offered)."""
    web = web_app(request)
    token = path_token(request)
    form = await read_form(request)
    counted = form_text(form, WHY_FIELD)
    csrf_ok = (
        counted.isascii()
        and counted.isdigit()
        and csrf_valid(request, form, WHY_PURPOSE, _why_subject(token, counted))
    )
    await web.run(
        _answer_why, token, csrf_ok, int(counted) if csrf_ok else 0, form_text(form, "reason")
    )
    return web.message(
        "Thank you",
        "You're unsubscribed, and your answer helps make the newsletter better.",
        status_code=200,
    )
