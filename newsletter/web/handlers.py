"""HTTP handlers: read the request, call the core through ``WebApp.run``, answer.

The small ``_...(session, ...)`` functions here run inside one transaction: they look the
link token up first (so an unknown or tampered link is a 404 whatever else is wrong), then
check the form token (FormExpiredError, a 403), then call the use case in
``subscribers.optin``. A GET never changes anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from ..compose import render_web_html
from ..content import xml_safe
from ..errors import FormExpiredError, InvalidInputError, NotFoundError, RateLimitedError
from ..subscribers.optin import (
    ConfirmOutcome,
    OptInPolicy,
    SignupRequest,
    confirm,
    confirmation_state,
    editable_lists,
    erase_self,
    find_confirmation,
    person_export,
    subscriber_by_token,
    unsubscribe_by_token,
    update_preferences,
)
from .archive import FEED_SIZE, public_slug, published_issue, published_issues
from .inputs import clean, path_token, read_json
from .security import CSRF_FIELD, same_origin

if TYPE_CHECKING:
    from .app import WebApp

MAX_FIELD = 1000  # characters kept of any form field (the core validates further)
PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}
# A private issue's page, seen through its signed link: no shared cache, no search engine.
PRIVATE_PAGE = {"Cache-Control": "private, max-age=300", "X-Robots-Tag": "noindex"}
PENDING = "Thanks! If this address can receive the newsletter, a confirmation email is on its way."
STATUS_TEXT = {
    "active": "Subscribed",
    "unconfirmed": "Not confirmed yet",
    "unsubscribed": "Unsubscribed",
    "bounced": "Paused: emails to this address bounced",
    "complained": "Unsubscribed (marked as spam)",
}


def _web(request: Request) -> WebApp:
    return request.app.state.web


def _ip(request: Request) -> str:
    """The client's address (from X-Forwarded-For only when the peer is one of
    ``web.trusted_proxies``: ``security.ClientAddressMiddleware`` decides)."""
    return request.client.host if request.client else ""


def _ua(request: Request) -> str:
    return clean(request.headers.get("user-agent", "")[:MAX_FIELD])


def _referer(request: Request) -> str:
    return clean(request.headers.get("referer", "")[:MAX_FIELD])


async def _read_form(request: Request) -> FormData:
    """The urlencoded or multipart form; no file uploads (a file part is a 400)."""
    return await request.form(max_files=0, max_fields=50, max_part_size=16 * 1024)


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return clean(value[:MAX_FIELD]) if isinstance(value, str) else ""


def _texts(form: FormData, key: str) -> tuple[str, ...]:
    return tuple(clean(v[:MAX_FIELD]) for v in form.getlist(key) if isinstance(v, str))[:50]


def _csrf_ok(request: Request, form: FormData, purpose: str, token: str) -> bool:
    web = _web(request)
    return same_origin(request, web.base_url) and web.csrf.verify(
        _text(form, CSRF_FIELD), purpose, token, now=web.clock()
    )


def _form_expired() -> FormExpiredError:
    return FormExpiredError("the form has expired")


# --- subscribe -----------------------------------------------------------------------------


def _form_context(
    web: WebApp, *, email: str = "", name: str = "", lists: tuple[str, ...] = (), source: str = ""
) -> dict[str, Any]:
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


async def home(request: Request) -> Response:
    web = _web(request)
    issues = await web.read(published_issues, web.settings, limit=5)
    source = _referer(request)
    return web.page("web/home.html", {"form": _form_context(web, source=source), "issues": issues})


async def subscribe_page(request: Request) -> Response:
    web = _web(request)
    source = _referer(request)
    return web.page("web/subscribe.html", {"form": _form_context(web, source=source), "error": ""})


async def thanks(request: Request) -> Response:
    web = _web(request)
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
    web = _web(request)
    form = await _read_form(request)
    req = SignupRequest(
        email=_text(form, "email"),
        name=_text(form, "name"),
        lists=_texts(form, "list"),
        ip=_ip(request),
        user_agent=_ua(request),
        source_page=_text(form, "source") or _referer(request),
        consent_version=_text(form, "consent_version"),
        channel="form",
        honeypot=_text(form, "website"),
    )
    try:
        mail = await web.signup(req)
    except RateLimitedError as exc:
        return _too_many(web, exc)
    except InvalidInputError as exc:
        context = _form_context(
            web, email=req.email, name=req.name, lists=req.lists, source=req.source_page
        )
        return web.page("web/subscribe.html", {"form": context, "error": str(exc)}, status_code=400)
    task = BackgroundTask(web.deliver_confirmation, mail) if mail else None
    return RedirectResponse(f"{web.base_url}/subscribe/thanks", status_code=303, background=task)


def _json_error(message: str, status_code: int, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers or None)


async def api_subscribe(request: Request) -> Response:
    """POST /api/subscribe with a JSON object: ``email`` and optionally ``name``, ``lists``
    (or ``list``), ``source``, ``consent_version`` and the honeypot ``website``. 202 with
    ``{"status": "pending"}`` whatever the store knows; 400, 415 or 429 with ``error``."""
    web = _web(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return _json_error("send a JSON object (Content-Type: application/json)", 415)
    try:
        data = await read_json(request)
    except InvalidInputError as exc:
        return _json_error(str(exc), 400)
    if not isinstance(data, dict):
        return _json_error("send a JSON object", 400)
    lists = data.get("lists", data.get("list", []))
    lists = [lists] if isinstance(lists, str) else lists
    fields = ("email", "name", "source", "consent_version", "website")
    if not isinstance(lists, list) or not all(isinstance(x, str) for x in lists):
        return _json_error("lists must be a list of list names", 400)
    if not all(isinstance(data.get(f, ""), str) for f in fields):
        return _json_error(f"{', '.join(fields)} must be strings", 400)
    req = SignupRequest(
        email=data.get("email", "")[:MAX_FIELD],
        name=data.get("name", "")[:MAX_FIELD],
        lists=tuple(x[:MAX_FIELD] for x in lists[:50]),
        ip=_ip(request),
        user_agent=_ua(request),
        source_page=(data.get("source", "") or _referer(request))[:MAX_FIELD],
        consent_version=data.get("consent_version", "")[:MAX_FIELD],
        channel="api",
        honeypot=data.get("website", "")[:MAX_FIELD],
    )
    try:
        mail = await web.signup(req)
    except RateLimitedError as exc:
        return _json_error(str(exc), 429, **{"Retry-After": str(exc.retry_after)})
    except InvalidInputError as exc:
        return _json_error(str(exc), 400)
    task = BackgroundTask(web.deliver_confirmation, mail) if mail else None
    return JSONResponse({"status": "pending", "message": PENDING}, status_code=202, background=task)


# --- confirm -------------------------------------------------------------------------------


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
    web = _web(request)
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
        raise _form_expired()
    return confirm(session, token, policy, **who)


async def confirm_post(request: Request) -> Response:
    web = _web(request)
    token = path_token(request)
    form = await _read_form(request)
    result = await web.run(
        _confirm,
        token,
        _csrf_ok(request, form, "confirm", token),
        web.policy,
        ip=_ip(request),
        user_agent=_ua(request),
        now=web.clock(),
    )
    return _confirm_answer(web, result.outcome, result.token)


# --- unsubscribe ---------------------------------------------------------------------------


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
    web = _web(request)
    token = path_token(request)
    person = await web.read(_person, token)
    context = _unsubscribe_context(web, token, person)
    context["csrf_token"] = web.csrf.issue("unsubscribe", token, now=web.clock())
    return web.page("web/unsubscribe.html", context)


def _unsubscribe_by_page(session: Session, token: str, csrf_ok: bool, ip: str) -> dict[str, str]:
    if not csrf_ok:
        subscriber_by_token(session, token)
        raise _form_expired()
    sub = unsubscribe_by_token(session, token, method="page", ip=ip)
    return {"email": sub.email, "status": sub.status}


async def unsubscribe_post(request: Request) -> Response:
    """Both ways to unsubscribe at the List-Unsubscribe URL:

    - RFC 8058 one-click: a body ``List-Unsubscribe=One-Click`` (urlencoded or multipart),
      sent by mail providers without cookies or any page: no form token, 200 with a line of
      text, never a redirect, the same answer every time.
    - The button of the unsubscribe page: needs its form token (403 otherwise).
    """
    web = _web(request)
    token = path_token(request)
    form = await _read_form(request)
    if _text(form, "List-Unsubscribe") == "One-Click":
        await web.run(unsubscribe_by_token, token, method="one-click", ip=_ip(request))
        return PlainTextResponse("You have been unsubscribed.\n")
    person = await web.run(
        _unsubscribe_by_page, token, _csrf_ok(request, form, "unsubscribe", token), _ip(request)
    )
    return web.page("web/unsubscribe.html", _unsubscribe_context(web, token, person))


# --- preferences ---------------------------------------------------------------------------


def _preferences(session: Session, token: str, policy: OptInPolicy) -> dict[str, Any]:
    sub = subscriber_by_token(session, token)
    member = {m.name for m in sub.lists}
    return {
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "status_text": STATUS_TEXT.get(sub.status, sub.status),
        "lists": [{"name": n, "member": n in member} for n in editable_lists(sub, policy)],
    }


async def _preferences_response(
    request: Request, *, saved: bool = False, error: str = "", status_code: int = 200
) -> Response:
    web = _web(request)
    token = path_token(request)
    view = await web.read(_preferences, token, web.policy)
    now = web.clock()
    action = f"{web.base_url}/preferences/{token}"
    context = view | {
        "saved": saved,
        "error": error,
        "action": action,
        "unsubscribe_url": f"{web.base_url}/unsubscribe/{token}",
        "csrf_token": web.csrf.issue("preferences", token, now=now),
        "export_token": web.csrf.issue("export", token, now=now),
        "erase_token": web.csrf.issue("erase", token, now=now),
    }
    return web.page("web/preferences.html", context, status_code=status_code)


async def preferences_page(request: Request) -> Response:
    """The preferences link of every email: name, lists, data download, erasure."""
    return await _preferences_response(request, saved=request.query_params.get("saved") == "1")


def _save(
    session: Session,
    token: str,
    csrf_ok: bool,
    policy: OptInPolicy,
    *,
    name: str | None,
    lists: list[str],
    ip: str,
) -> None:
    sub = subscriber_by_token(session, token)
    if not csrf_ok:
        raise _form_expired()
    update_preferences(session, sub, policy, name=name, lists=lists, ip=ip)


async def preferences_post(request: Request) -> Response:
    web = _web(request)
    token = path_token(request)
    form = await _read_form(request)
    name = form.get("name")
    try:
        await web.run(
            _save,
            token,
            _csrf_ok(request, form, "preferences", token),
            web.policy,
            name=name[:MAX_FIELD] if isinstance(name, str) else None,
            lists=list(_texts(form, "list")),
            ip=_ip(request),
        )
    except InvalidInputError as exc:
        return await _preferences_response(request, error=str(exc), status_code=400)
    return RedirectResponse(f"{web.base_url}/preferences/{token}?saved=1", status_code=303)


def _export(session: Session, token: str, csrf_ok: bool) -> dict[str, Any]:
    sub = subscriber_by_token(session, token)
    if not csrf_ok:
        raise _form_expired()
    return person_export(session, sub)


async def preferences_export(request: Request) -> Response:
    """Everything stored about the person, as a JSON download."""
    web = _web(request)
    token = path_token(request)
    form = await _read_form(request)
    data = await web.read(_export, token, _csrf_ok(request, form, "export", token))
    return JSONResponse(
        data, headers={"Content-Disposition": 'attachment; filename="newsletter-my-data.json"'}
    )


def _erase(session: Session, token: str, csrf_ok: bool, confirmed: bool) -> None:
    sub = subscriber_by_token(session, token)
    if not csrf_ok:
        raise _form_expired()
    if not confirmed:
        raise InvalidInputError("tick the box to confirm that your data should be erased")
    erase_self(session, sub)


async def preferences_erase(request: Request) -> Response:
    web = _web(request)
    token = path_token(request)
    form = await _read_form(request)
    await web.run(
        _erase,
        token,
        _csrf_ok(request, form, "erase", token),
        _text(form, "confirm") == "yes",
    )
    return web.message(
        "Your data has been erased",
        "Your address, name and history are deleted. We keep only an irreversible fingerprint "
        "of the address so that it is never mailed again.",
        status_code=200,
    )


# --- archive -------------------------------------------------------------------------------


async def archive_index(request: Request) -> Response:
    web = _web(request)
    issues = await web.read(published_issues, web.settings)
    return web.page("web/archive.html", {"issues": issues}, headers=PUBLIC_CACHE)


async def archive_feed(request: Request) -> Response:
    """An Atom feed of the archive (the latest FEED_SIZE issues)."""
    web = _web(request)
    issues = await web.read(published_issues, web.settings, limit=FEED_SIZE)
    updated = issues[0].published_at.isoformat() if issues else "1970-01-01T00:00:00+00:00"
    body = xml_safe(web.render("web/feed.xml", {"issues": issues, "updated": updated}))
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=PUBLIC_CACHE)


async def archive_issue(request: Request) -> Response:
    """The "view in browser" page: the email without any personal field. A public issue's
    page is ``/archive/<slug>``; a private one answers only with its signature (``?k=``, in
    its emails' web-view link), is not cached by shared caches and not indexed. An old
    ``/archive/<id>`` link of a public issue is redirected to its slug."""
    web = _web(request)
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
