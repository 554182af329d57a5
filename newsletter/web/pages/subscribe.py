"""The subscribe page and its form (ours, or the snippet on the blog), and the thank-you page."""

from __future__ import annotations

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...errors import InvalidInputError, RateLimitedError
from ...subscribers.optin import OptInPolicy
from ..inputs import SIGNUP_FIELDS, form_text, form_texts, read_form, referer, signup_request
from ..state import WebApp, web_app


def form_context(
    web: WebApp, *, email: str = "", name: str = "", lists: tuple[str, ...] = (), source: str = ""
) -> dict[str, Any]:
    """What the sign-up form's template needs, filled with what the visitor typed."""
    policy: OptInPolicy = web.policy
    return {
        "email": email,
        "name": name,
        "lists": list(lists) or list(policy.lists[:1]),
        "offered": list(policy.lists),
        "source": source,
        "consent_version": policy.consent_version,
        "consent_text": web.settings.web.consent_text,
    }


async def subscribe_page(request: Request) -> Response:
    web = web_app(request)
    source = referer(request)
    return web.page("web/subscribe.html", {"form": form_context(web, source=source), "error": ""})


async def thanks(request: Request) -> Response:
    web = web_app(request)
    return web.page(
        "web/thanks.html", {"expiry_hours": round(web.settings.web.confirm_expiry_hours)}
    )


def _too_many(web: WebApp, exc: RateLimitedError) -> Response:
    minutes = max(1, round(exc.retry_after / 60))
    return web.message(
        "Too many attempts",
        f"There were too many sign-ups from here or for this address. Please try again in "
        f"{minutes} minute{'s' if minutes != 1 else ''}.",
        status_code=429,
        **{"Retry-After": str(exc.retry_after)},
    )


async def subscribe_form(request: Request) -> Response:
    """The HTML form (our page or the snippet on the blog): 303 to the thank-you page,
    whatever the store knows about the address."""
    web = web_app(request)
    form = await read_form(request)
    fields = {name: form_text(form, name) for name in SIGNUP_FIELDS}
    req = signup_request(request, fields, form_texts(form, "list"), channel="form")
    try:
        mail = await web.signup(req)
    except RateLimitedError as exc:
        return _too_many(web, exc)
    except InvalidInputError as exc:
        context = form_context(
            web, email=req.email, name=req.name, lists=req.lists, source=req.source_page
        )
        return web.page("web/subscribe.html", {"form": context, "error": str(exc)}, status_code=400)
    task = BackgroundTask(web.deliver_confirmation, mail) if mail else None
    return RedirectResponse(f"{web.base_url}/subscribe/thanks", status_code=303, background=task)
