"""The preferences link of every email: name, lists and "don't track my clicks", the data
download, erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...config import Settings
from ...errors import InvalidInputError
from ...subscribers import preferences
from ...subscribers.optin import (
    OptInPolicy,
    editable_lists,
    erase_self,
    person_export,
    subscriber_by_token,
    update_preferences,
)
from ..inputs import MAX_FIELD, MAX_LISTS, client_ip, form_text, form_texts, path_token, read_form
from ..state import web_app
from .csrf import csrf_valid, form_expired

CADENCE_FIELD = "cadence:"  # a form field per list: cadence:NAME = post | weekly | monthly
STATUS_TEXT = {
    "active": "Subscribed",
    "unconfirmed": "Not confirmed yet",
    "unsubscribed": "Unsubscribed",
    "bounced": "Paused: emails to this address bounced",
    "complained": "Unsubscribed (marked as spam)",
}


def _cadence_lists(settings: Settings) -> set[str]:
    """Lists whose readers choose how often they hear from them: a "send" feed's."""
    return {f.list for f in settings.feeds if f.mode == "send" and f.list}


def _preferences(
    session: Session, token: str, policy: OptInPolicy, settings: Settings
) -> dict[str, Any]:
    sub = subscriber_by_token(session, token)
    member = {m.name for m in sub.lists}
    offered = _cadence_lists(settings)
    chosen = preferences.cadences(session, settings, sub)
    return {
        "cadences": [
            {"list": name, "cadence": c["cadence"]}
            for name, c in sorted(chosen.items())
            if name in offered
        ],
        "cadence_labels": preferences.LABELS,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "status_text": STATUS_TEXT.get(sub.status, sub.status),
        "lists": [{"name": n, "member": n in member} for n in editable_lists(sub, policy)],
        "no_tracking": sub.no_tracking,
    }


async def _preferences_response(
    request: Request, *, saved: bool = False, error: str = "", status_code: int = 200
) -> Response:
    web = web_app(request)
    token = path_token(request)
    view = await web.read(_preferences, token, web.policy, web.settings)
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
    """The preferences link of every email: name, lists, don't-track, data download, erasure."""
    return await _preferences_response(request, saved=request.query_params.get("saved") == "1")


def _save(
    session: Session,
    token: str,
    csrf_ok: bool,
    policy: OptInPolicy,
    *,
    name: str | None,
    lists: list[str],
    no_tracking: bool,
    ip: str,
    settings: Settings,
    cadences: dict[str, str],
) -> None:
    sub = subscriber_by_token(session, token)
    if not csrf_ok:
        raise form_expired()
    update_preferences(session, sub, policy, name=name, lists=lists, no_tracking=no_tracking, ip=ip)
    current = preferences.cadences(session, settings, sub)
    offered = _cadence_lists(settings)
    for list_name, value in cadences.items():
        if list_name not in offered or list_name not in current:
            continue
        wanted = preferences.normalise_cadence(value)
        if wanted != current[list_name]["cadence"]:
            mlist = next(m for m in sub.lists if m.name == list_name)
            preferences.set_cadence(session, sub, mlist, wanted)


async def preferences_post(request: Request) -> Response:
    web = web_app(request)
    token = path_token(request)
    form = await read_form(request)
    name = form.get("name")
    try:
        await web.run(
            _save,
            token,
            csrf_valid(request, form, "preferences", token),
            web.policy,
            name=name[:MAX_FIELD] if isinstance(name, str) else None,
            lists=list(form_texts(form, "list")),
            no_tracking=form_text(form, "no_tracking") == "yes",  # an unticked box is absent
            ip=client_ip(request),
            settings=web.settings,
            cadences={
                key.removeprefix(CADENCE_FIELD): form_text(form, key)
                for key in list(form.keys())[:MAX_LISTS]
                if key.startswith(CADENCE_FIELD)
            },
        )
    except InvalidInputError as exc:
        return await _preferences_response(request, error=str(exc), status_code=400)
    return RedirectResponse(f"{web.base_url}/preferences/{token}?saved=1", status_code=303)


def _export(session: Session, token: str, csrf_ok: bool) -> dict[str, Any]:
    sub = subscriber_by_token(session, token)
    if not csrf_ok:
        raise form_expired()
    return person_export(session, sub)


async def preferences_export(request: Request) -> Response:
    """Everything stored about the person, as a JSON download."""
    web = web_app(request)
    token = path_token(request)
    form = await read_form(request)
    data = await web.read(_export, token, csrf_valid(request, form, "export", token))
    return JSONResponse(
        data, headers={"Content-Disposition": 'attachment; filename="newsletter-my-data.json"'}
    )


def _erase(session: Session, token: str, csrf_ok: bool, confirmed: bool) -> None:
    sub = subscriber_by_token(session, token)
    if not csrf_ok:
        raise form_expired()
    if not confirmed:
        raise InvalidInputError("tick the box to confirm that your data should be erased")
    erase_self(session, sub)


async def preferences_erase(request: Request) -> Response:
    web = web_app(request)
    token = path_token(request)
    form = await read_form(request)
    await web.run(
        _erase,
        token,
        csrf_valid(request, form, "erase", token),
        form_text(form, "confirm") == "yes",
    )
    return web.message(
        "Your data has been erased",
        "Your address, name and history are deleted. We keep only an irreversible fingerprint "
        "of the address so that it is never mailed again.",
        status_code=200,
    )
