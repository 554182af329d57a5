"""Request input, bounded and typed before any handler uses it.

Every string from a request (form fields, JSON values, path parameters, query values) goes
through ``clean``, which keeps what XML 1.0 allows (``content.text.xml_safe``): NUL and the
other C0 controls but tab and line breaks, lone surrogates (which no database can store and
no encoder can write) and non-characters are removed. A JSON body is
parsed with a bound on its nesting; a path token that cannot be one of ours is a plain 404
before the store is asked. What is left is the core's to validate (addresses, lengths).

A sign-up is read the same way from the HTML form and the JSON API: ``signup_request``
builds the one ``SignupRequest`` both hand to the core.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..content.text import xml_safe
from ..errors import InvalidInputError, NotFoundError
from ..subscribers.optin import SignupRequest

log = logging.getLogger("newsletter.web")
MAX_JSON_DEPTH = 10  # an object of lists of strings needs 2
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,200}")
MAX_FIELD = 1000  # characters kept of any form field (the core validates further)
MAX_LISTS = 50  # list names kept of a sign-up or a preferences form


def clean(value: str) -> str:
    """``value`` without control characters (tab, CR and LF stay), lone surrogates and
    non-characters: the one rule for what is never kept, shared with the archive feed."""
    return xml_safe(value)


async def read_json(request: Request) -> Any:
    """The request's JSON body with every string cleaned. InvalidInputError for a body that
    is not UTF-8 JSON or is nested deeper than MAX_JSON_DEPTH (the body's size is bounded
    by the app's max_body_size)."""
    body = await request.body()
    try:
        data = json.loads(body)
    except RecursionError:
        raise InvalidInputError("the JSON body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("the body is not valid JSON") from None
    return _cleaned(data, 0)


def _cleaned(value: Any, depth: int) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInputError("the JSON body is nested too deeply")
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_cleaned(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {clean(k): _cleaned(v, depth + 1) for k, v in value.items()}
    if isinstance(value, float) and value != value:  # NaN: not JSON, but Python reads it
        raise InvalidInputError("the body is not valid JSON")
    return value


def path_token(request: Request, name: str = "token") -> str:
    """A token from the path: NotFoundError unless it has the shape of one of ours (URL-safe
    base64, 8 to 200 characters), so no odd value reaches a query."""
    value = request.path_params.get(name, "")
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise NotFoundError("no such link")
    return value


async def read_form(request: Request) -> FormData:
    """The urlencoded or multipart form; no file uploads (a file part is a 400)."""
    return await request.form(max_files=0, max_fields=50, max_part_size=16 * 1024)


def form_text(form: FormData, key: str) -> str:
    """The field ``key`` cut to MAX_FIELD and cleaned ("" if absent or a file)."""
    value = form.get(key)
    return clean(value[:MAX_FIELD]) if isinstance(value, str) else ""


def form_texts(form: FormData, key: str) -> tuple[str, ...]:
    """Every value of the field ``key`` (up to MAX_LISTS), each as ``form_text`` keeps it."""
    return tuple(clean(v[:MAX_FIELD]) for v in form.getlist(key) if isinstance(v, str))[:MAX_LISTS]


def client_ip(request: Request) -> str:
    """The client's address (from X-Forwarded-For only when the peer is one of
    ``web.trusted_proxies``: ``security.ClientAddressMiddleware`` decides)."""
    return request.client.host if request.client else ""


def user_agent(request: Request) -> str:
    return clean(request.headers.get("user-agent", "")[:MAX_FIELD])


def referer(request: Request) -> str:
    return clean(request.headers.get("referer", "")[:MAX_FIELD])


SIGNUP_FIELDS = ("email", "name", "source", "consent_version", "website", "timezone")
"""The text fields of a sign-up, in the form and in the JSON body alike (``website`` is the
honeypot, left empty by people)."""


def signup_request(
    request: Request,
    fields: Mapping[str, str],
    lists: Sequence[str],
    *,
    channel: Literal["form", "api"],
) -> SignupRequest:
    """The sign-up ``request`` asks for: ``fields`` holds the cleaned SIGNUP_FIELDS (a missing
    one is ""), ``lists`` the cleaned list names; each is cut to MAX_FIELD, the lists to
    MAX_LISTS. The client's address, user agent and (when no ``source`` is given) referrer
    come from the request."""

    def field(name: str) -> str:
        return fields.get(name, "")[:MAX_FIELD]

    return SignupRequest(
        email=field("email"),
        name=field("name"),
        lists=tuple(name[:MAX_FIELD] for name in lists[:MAX_LISTS]),
        ip=client_ip(request),
        user_agent=user_agent(request),
        source_page=field("source") or referer(request),
        consent_version=field("consent_version"),
        channel=channel,
        honeypot=field("website"),
        timezone=field("timezone")[:64],
    )


class UnexpectedErrorMiddleware:
    """The last net: an exception no handler knows becomes a plain 500 page (inside the
    security-headers middleware, so the page carries them) and one log line naming the
    request's route and where the code failed, without the exception's text or the path's
    values (they may hold an address or a token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[::-1])
            route = "/" + scope.get("path", "").lstrip("/").split("/", 1)[0]
            log.error(
                "unexpected %s on %s %s at %s", type(exc).__name__, scope["method"], route, where
            )
            # (if the answer had started, the server refuses a second one: nothing to add)
            with contextlib.suppress(RuntimeError):
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, send
                )
