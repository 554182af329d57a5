"""The confirmation link of the double opt-in: a page with one button, and its POST."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from ...subscribers.optin import (
    ConfirmOutcome,
    OptInPolicy,
    confirm,
    confirmation_state,
    find_confirmation,
)
from ..inputs import client_ip, path_token, read_form, user_agent
from ..state import WebApp, web_app
from .csrf import csrf_valid, form_expired


def _confirm_context(web: WebApp, state: str, token: str = "") -> dict[str, Any]:
    return {
        "state": state,
        "action": "",
        "csrf_token": "",
        "consent_text": web.settings.web.consent_text,
        "preferences_url": f"{web.base_url}/preferences/{token}" if token else "",
        "expiry_hours": round(web.settings.web.confirm_expiry_hours),
    }


def _confirm_answer(web: WebApp, outcome: ConfirmOutcome, token: str) -> Response:
    status = 410 if outcome == "expired" else 200
    return web.page("web/confirm.html", _confirm_context(web, outcome, token), status_code=status)


async def confirm_page(request: Request) -> Response:
    """The confirmation link: a page with one button (mail scanners follow links; only a
    person presses the button), or a polite word if the link was used or is too old."""
    web = web_app(request)
    token = path_token(request)
    now = web.clock()
    state = await web.read(lambda s: confirmation_state(find_confirmation(s, token), now=now))
    if state is not None:
        return _confirm_answer(web, state, "")
    context = _confirm_context(web, "ask") | {
        "action": f"{web.base_url}/confirm/{token}",
        "csrf_token": web.csrf.issue("confirm", token, now=now),
    }
    return web.page("web/confirm.html", context)


def _confirm(session: Session, token: str, csrf_ok: bool, policy: OptInPolicy, **who: Any) -> Any:
    if not csrf_ok:
        find_confirmation(session, token)  # an unknown link is a 404 before anything else
        raise form_expired()
    return confirm(session, token, policy, **who)


async def confirm_post(request: Request) -> Response:
    web = web_app(request)
    token = path_token(request)
    form = await read_form(request)
    result = await web.run(
        _confirm,
        token,
        csrf_valid(request, form, "confirm", token),
        web.policy,
        ip=client_ip(request),
        user_agent=user_agent(request),
        now=web.clock(),
    )
    return _confirm_answer(web, result.outcome, result.token)
