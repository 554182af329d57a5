"""POST /api/subscribe: the JSON sign-up (the same sign-up as the HTML form, answered in
JSON)."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import InvalidInputError, RateLimitedError
from ..inputs import SIGNUP_FIELDS, read_json, signup_request
from ..state import web_app

PENDING = "Thanks! If this address can receive the newsletter, a confirmation email is on its way."


def _json_error(message: str, status_code: int, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers or None)


async def api_subscribe(request: Request) -> Response:
    """POST /api/subscribe with a JSON object: ``email`` and optionally ``name``, ``lists``
    (or ``list``), ``source``, ``consent_version`` and the honeypot ``website``. 202 with
    ``{"status": "pending"}`` whatever the store knows; 400, 415 or 429 with ``error``."""
    web = web_app(request)
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
    if not isinstance(lists, list) or not all(isinstance(x, str) for x in lists):
        return _json_error("lists must be a list of list names", 400)
    if not all(isinstance(data.get(f, ""), str) for f in SIGNUP_FIELDS):
        return _json_error(f"{', '.join(SIGNUP_FIELDS)} must be strings", 400)
    req = signup_request(request, data, lists, channel="api")
    try:
        mail = await web.signup(req)
    except RateLimitedError as exc:
        return _json_error(str(exc), 429, **{"Retry-After": str(exc.retry_after)})
    except InvalidInputError as exc:
        return _json_error(str(exc), 400)
    task = BackgroundTask(web.deliver_confirmation, mail) if mail else None
    return JSONResponse({"status": "pending", "message": PENDING}, status_code=202, background=task)
